using System.Text;
using System.Text.Json.Nodes;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>One generated request: what it is (for the failure message) and its bytes on the wire.</summary>
/// <param name="Description">How the case was made, e.g. "chat: set messages[0].content to lone-surrogate".</param>
/// <param name="Bytes">The full HTTP/1.1 request.</param>
/// <param name="MayGoUnanswered">The request stops before its declared end, so the server may close without answering.</param>
/// <param name="Rightful5xx">
/// A 5xx that is the protocol's own answer, not a fault: 505 for an HTTP version the server does not speak. It still
/// needs the error object.
/// </param>
public sealed record HostileCase(string Description, byte[] Bytes, bool MayGoUnanswered = false, int? Rightful5xx = null);

/// <summary>
/// A seeded generator of hostile requests: valid OpenAI and admin requests, mutated. Case <c>i</c> of seed <c>s</c> is
/// always the same request, whatever order cases run in. Mutations: wrong types, nulls, huge and out-of-range numbers,
/// invalid UTF-8 and lone surrogate escapes, repeated keys, deep nesting, truncated and bit-flipped bodies, broken
/// chunked framing, odd content types and auth headers, and admin paths with hostile ids.
/// </summary>
public sealed class HostileRequests(int seed, string adminToken)
{
    private const string InvalidMarker = "\u0001RAW\u0001";

    // The first templates are the public surface (/v1, /tokenize, /detokenize); the rest are admin bodies.
    private const int PublicTemplates = 13;

    // Generation stays cheap: every valid template asks for one token, and mutations never raise max_tokens above it.
    private static readonly (string Path, string Json)[] Templates =
    [
        ("/v1/chat/completions", """{"model":"stories","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Once upon a time"}],"max_tokens":1,"temperature":0.7,"top_p":0.9,"n":1,"stop":["\n"],"seed":7,"stream":false,"user":"u1"}"""),
        ("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":[{"type":"text","text":"Hello"}]}],"max_completion_tokens":1,"stream":true,"stream_options":{"include_usage":true},"response_format":{"type":"text"}}"""),
        ("/v1/completions", """{"model":"stories","prompt":"The little dog","max_tokens":1,"temperature":0,"n":2,"stop":"."}"""),
        ("/v1/completions", """{"model":"stories","prompt":[[1,2,3],"a story"],"max_tokens":1,"top_k":5,"min_p":0.1,"presence_penalty":0.5,"frequency_penalty":0.5,"logit_bias":{"5":-3,"7":2.5}}"""),
        ("/v1/embeddings", """{"model":"all-MiniLM-L6-v2","input":["a cat on a mat","a dog"],"encoding_format":"float"}"""),
        ("/v1/embeddings", """{"model":"all-MiniLM-L6-v2","input":"hello","encoding_format":"base64","user":"u2"}"""),
        ("/v1/embeddings", """{"model":"all-MiniLM-L6-v2","input":[[101,1996,4937,102],[101,102]]}"""),
        ("/v1/embeddings", """{"model":"all-MiniLM-L6-v2","input":[101,7592,2088,102]}"""),
        ("/v1/responses", """{"model":"stories","input":"Once upon a time","instructions":"Be brief.","max_output_tokens":16,"temperature":0.5,"store":false}"""),
        ("/v1/responses", """{"model":"stories","input":[{"role":"user","content":[{"type":"input_text","text":"Hello"}]}],"max_output_tokens":16,"stream":true,"text":{"format":{"type":"text"}}}"""),
        ("/tokenize", """{"model":"stories","content":"Hello world","add_special":true,"with_pieces":true}"""),
        ("/detokenize", """{"model":"stories","tokens":[1,2,3]}"""),
        ("/v1/language/detect", """{"input":["Bonjour tout le monde, comment allez-vous ?","Dobar dan, kako ste danas?"]}"""),
        ("/admin/v1/tenants", """{"id":"fuzz-tenant","name":"Fuzz","plan":"default","policy":{"allowed_jurisdictions":["DE","EU"],"allowed_models":["stories"],"retention":{"store_prompts":false}},"disabled":false}"""),
        ("/admin/v1/plans/fuzz-plan", """{"currency":"EUR","weight":2,"priority":"batch"}"""),
        ("/admin/v1/plans/default/prices", """{"model":"stories","input_per_million":1.5,"output_per_million":2,"per_compute_second":0.001,"effective_from":"2026-01-01T00:00:00Z"}"""),
        ("/admin/v1/tenants/fuzz-tenant/limits", """{"budgets":[{"period":"month","amount":10},{"key_id":"k","period":"day","amount":1}],"rate_limits":[{"requests_per_minute":60,"tokens_per_minute":1000}]}"""),
        ("/admin/v1/tenants/fuzz-tenant/keys", """{"name":"k","policy":{"allowed_jurisdictions":["DE"]}}"""),
        ("/admin/v1/models/stories/load", """{"parallel":2,"context_length":128,"threads":1}"""),
    ];

    private static readonly string[] HostileValues =
    [
        "null", "true", "false", "0", "-1", "1.5", "-0", "1e309", "-1e309", "99999999999999999999999999999", "2147483648",
        "9223372036854775808", "1e-400", "\"\"", "\" \"", "\"\\u0000\"", "[]", "{}", "[null]", "[[[]]]", "{\"a\":{\"b\":{}}}",
        "\"\\ud800\"", "\"\\udfff\\ud800\"", "\"x\\ud83d\"", "\"" + InvalidMarker + "\"", "\"\\u202e\\u200b\"", "\"🙂🙂\"",
        "\"<|im_start|>system\"", "\"" + new string('a', 3000) + "\"", "[" + string.Join(',', Enumerable.Repeat("\"s\"", 300)) + "]",
        new string('[', 40) + new string(']', 40), "\"NaN\"", "\"Infinity\"", "\"1\"",
    ];

    private static readonly string[] HostileIds =
    [
        "%20", "%09", "%0A", "%0D%0A", "%E3%80%80", "%C2%A0", "a%20b", "%FF", "%C0%AF", "%ED%A0%80", "%E2%80%AE", "..", "%2E%2E",
        "Upper", "-", "a_b", new string('a', 300), "%F0%9F%99%82", "x%3Fy", "%25", "nope", "fuzz-tenant", "default",
    ];

    private static readonly string[] AdminRoutes =
    [
        "GET /admin/v1/tenants/{id}", "PATCH /admin/v1/tenants/{id}", "GET /admin/v1/tenants/{id}/keys", "POST /admin/v1/tenants/{id}/keys",
        "DELETE /admin/v1/tenants/{id}/keys/{id}", "PUT /admin/v1/nodes/{id}/state", "DELETE /admin/v1/nodes/{id}",
        "GET /admin/v1/models/{id}/languages", "POST /admin/v1/models/{id}/unload", "PUT /admin/v1/plans/{id}",
        "POST /admin/v1/plans/{id}/prices", "GET /admin/v1/tenants/{id}/limits", "PUT /admin/v1/tenants/{id}/limits",
        "GET /admin/v1/tenants/{id}/invoice", "GET /admin/v1/usage", "GET /admin/v1/audit", "POST /admin/v1/audit/verify",
        "GET /admin/v1/jurisdictions", "GET /admin/v1/models", "GET /admin/v1/nodes", "POST /admin/v1/nodes",
        "GET /v1/models/{id}", "GET /v1/models", "GET /v1/usage", "GET /v1/audit", "DELETE /v1/chat/completions",
        "GET /v1/responses/{id}", "DELETE /v1/responses/{id}", "GET /v1/responses/{id}/input_items",
        "TRACE /v1/chat/completions", "GET /v1/embeddings", "OPTIONS /tokenize", "PUT /admin/v1/tenants",
    ];

    private static readonly string[] UnusualMethods = ["TRACE", "OPTIONS", "PUT", "PATCH", "DELETE", "POST", "GET", "CONNECTX", "PROPFIND"];

    private static readonly string[] HostileQueries =
    [
        "", "?from=yesterday", "?from=99999999999999999999&to=-1", "?group_by=planet", "?group_by=day,,model,tenant,jurisdiction",
        "?format=xml", "?from=2026-13-45", "?to=1970-01-01&from=2100-01-01", "?tenant=%20", "?tenant=%FF%FE", "?currency=%00",
        "?model=" + new string('m', 500), "?from=0&to=0", "?api_key=sk-secret", "?from=%ED%A0%80",
        "?limit=-1", "?limit=99999999999999999999", "?order=up", "?after=%FF", "?after=-7", "?include=everything",
    ];

    private static readonly string[] ContentTypes =
    [
        "application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zz", "application/json; charset=utf-16", "application/json; charset=", "garbage",
        "application/json; charset=\"utf-8\"", ";;;", "application/json; q=\"unterminated",
    ];

    private static readonly string[] AuthHeaders =
    [
        "", "Authorization: Bearer", "Authorization: Bearer ", "Authorization: Bearer sov_", "Authorization: Bearer sov_not-a-key",
        "Authorization: Basic Zm9vOmJhcg==", "Authorization: Bearer " + new string('k', 4000), "Authorization: bearer\tx",
        "Authorization: Bearer sk-1234", "Authorization: Bearer a, Bearer b",
    ];

    /// <summary>The seed; printed with every failure so a run can be repeated.</summary>
    public int Seed { get; } = seed;

    /// <summary>The case with this index.</summary>
    public HostileCase Create(int index)
    {
        var random = new Random(HashCode.Combine(Seed, index));
        return random.Next(10) switch
        {
            < 5 => MutatedJson(random),
            5 or 6 => MutatedBytes(random),
            7 => BrokenFraming(random),
            _ => HostilePath(random),
        };
    }

    private HostileCase MutatedJson(Random random)
    {
        var (path, json) = Templates[random.Next(Templates.Length)];
        var root = JsonNode.Parse(json)!;
        var steps = new List<string>();
        var raws = new List<string>();
        for (var i = random.Next(1, 4); i > 0; i--)
        {
            steps.Add(Mutate(root, random, raws));
        }

        var text = root.ToJsonString();
        if (random.Next(6) == 0)
        {
            // A repeated key, written by hand since no JSON writer produces one.
            text = text.Insert(1, "\"model\":\"tiny\",");
            steps.Add("repeat model");
        }

        var body = Splice(text, random, raws);
        return Build(random, "POST", path, body, $"{path}: {string.Join("; ", steps)}");
    }

    private static string Mutate(JsonNode root, Random random, List<string> raws)
    {
        var containers = new List<JsonNode>();
        Collect(root, containers);
        var target = containers[random.Next(containers.Count)];
        var value = HostileValues[random.Next(HostileValues.Length)];
        switch (target)
        {
            case JsonObject obj when obj.Count > 0 && random.Next(5) > 0:
                var key = obj.ElementAt(random.Next(obj.Count)).Key;
                if (key is "max_tokens" or "max_completion_tokens" && random.Next(2) == 0)
                {
                    obj.Remove(key);
                    obj[key] = JsonNode.Parse("0");
                    return $"set {key} to 0";
                }

                if (random.Next(6) == 0 && key is not ("max_tokens" or "max_completion_tokens"))
                {
                    obj.Remove(key);
                    return $"remove {key}";
                }

                obj[key] = Value(value, raws);
                return $"set {key} to {Shorten(value)}";
            case JsonObject obj:
                var name = random.Next(3) == 0 ? InvalidMarker : "x_" + random.Next(100);
                obj[name] = Value(value, raws);
                return $"add {Shorten(name)} = {Shorten(value)}";
            case JsonArray array when array.Count > 0:
                var index = random.Next(array.Count);
                array[index] = Value(value, raws);
                return $"set [{index}] to {Shorten(value)}";
            case JsonArray array:
                array.Add(Value(value, raws));
                return $"append {Shorten(value)}";
            default:
                return "nothing";
        }
    }

    /// <summary>A placeholder for a hostile value, written verbatim by <see cref="Splice"/> (no JSON writer would write it).</summary>
    private static JsonNode Value(string json, List<string> raws)
    {
        raws.Add(json);
        return JsonValue.Create($"{InvalidMarker}RAW{raws.Count - 1}{InvalidMarker}");
    }

    private static void Collect(JsonNode? node, List<JsonNode> containers)
    {
        switch (node)
        {
            case JsonObject obj:
                containers.Add(obj);
                foreach (var (_, child) in obj)
                {
                    Collect(child, containers);
                }

                break;
            case JsonArray array:
                containers.Add(array);
                foreach (var child in array)
                {
                    Collect(child, containers);
                }

                break;
        }
    }

    /// <summary>Writes the JSON as UTF-8: a placeholder string becomes its raw value, any other marker invalid bytes.</summary>
    private static byte[] Splice(string text, Random random, List<string> raws)
    {
        var escapedMarker = System.Text.Json.JsonSerializer.Serialize(InvalidMarker)[1..^1];
        text = text.Replace(escapedMarker, InvalidMarker, StringComparison.Ordinal);
        var output = new List<byte>();
        var position = 0;
        while (text.IndexOf(InvalidMarker, position, StringComparison.Ordinal) is var at and >= 0)
        {
            output.AddRange(Encoding.UTF8.GetBytes(text[position..at]));
            position = at + InvalidMarker.Length;
            if (string.CompareOrdinal(text, position, "RAW", 0, 3) == 0 && text.IndexOf(InvalidMarker, position, StringComparison.Ordinal) is var end and >= 0
                && int.TryParse(text.AsSpan(position + 3, end - position - 3), System.Globalization.CultureInfo.InvariantCulture, out var raw))
            {
                // Replace the whole string token "<marker>RAWn<marker>", quotes included, with the raw value.
                if (output.Count > 0 && output[^1] == '"')
                {
                    output.RemoveAt(output.Count - 1);
                }

                output.AddRange(Splice(raws[raw], random, []));
                position = end + InvalidMarker.Length;
                if (position < text.Length && text[position] == '"')
                {
                    position++;
                }

                continue;
            }

            output.AddRange(InvalidBytes(random));
        }

        output.AddRange(Encoding.UTF8.GetBytes(text[position..]));
        return [.. output];
    }

    private static byte[] InvalidBytes(Random random) => random.Next(5) switch
    {
        0 => [0xFF],
        1 => [0xC3],
        2 => [0xED, 0xA0, 0x80],
        3 => [0xC0, 0xAF],
        _ => [0xF8, 0x88, 0x80, 0x80, 0x80],
    };

    private HostileCase MutatedBytes(Random random)
    {
        var (path, json) = Templates[random.Next(PublicTemplates)];
        var bytes = Encoding.UTF8.GetBytes(json).ToList();
        string what;
        switch (random.Next(5))
        {
            case 0:
                var cut = random.Next(bytes.Count);
                bytes.RemoveRange(cut, bytes.Count - cut);
                what = $"truncate at {cut}";
                break;
            case 1:
                var at = random.Next(bytes.Count);
                bytes[at] ^= (byte)(1 << random.Next(8));
                what = $"flip a bit at {at}";
                break;
            case 2:
                var insertAt = random.Next(bytes.Count);
                bytes.InsertRange(insertAt, InvalidBytes(random));
                what = $"insert invalid UTF-8 at {insertAt}";
                break;
            case 3:
                bytes.InsertRange(0, new byte[] { 0xEF, 0xBB, 0xBF });
                what = "byte order mark";
                break;
            default:
                var depth = random.Next(33, 3000);
                bytes = [.. Encoding.ASCII.GetBytes("{\"model\":\"stories\",\"messages\":" + new string('[', depth) + new string(']', depth) + "}")];
                what = $"nesting {depth}";
                break;
        }

        return Build(random, "POST", path, [.. bytes], $"{path}: {what}");
    }

    private HostileCase BrokenFraming(Random random)
    {
        var (path, json) = Templates[random.Next(PublicTemplates)];
        var body = Encoding.UTF8.GetBytes(json);
        var auth = "Authorization: Bearer unused";
        switch (random.Next(8))
        {
            case 0:
                var size = random.Next(3) switch { 0 => "ffffffffffffffffffff", 1 => "zz", _ => "-5" };
                return new HostileCase($"{path}: chunk size {size}",
                    RawHttp.Request("POST", path, [.. Encoding.ASCII.GetBytes(size + "\r\n"), .. body, .. "\r\n0\r\n\r\n"u8], "Content-Type: application/json", "Transfer-Encoding: chunked", auth));
            case 1:
                var split = random.Next(1, body.Length);
                var chunked = Encoding.ASCII.GetBytes($"{split:x}\r\n").Concat(body.Take(split)).Concat(Encoding.ASCII.GetBytes($"\r\n{body.Length - split:x}\r\n")).Concat(body.Skip(split)).Concat("\r\n0\r\n\r\n"u8.ToArray()).ToArray();
                return new HostileCase($"{path}: valid chunks split at {split}",
                    RawHttp.Request("POST", path, chunked, "Content-Type: application/json", "Transfer-Encoding: chunked", auth));
            case 2:
                var declared = body.Length - random.Next(1, body.Length);
                return new HostileCase($"{path}: content-length {declared} of {body.Length}",
                    RawHttp.Request("POST", path, body.Take(declared).ToArray(), "Content-Type: application/json", auth));
            case 3:
                return new HostileCase($"{path}: body ends before its content-length", RawHttp.Request("POST", path, body, "Content-Type: application/json", $"Content-Length: {body.Length + 100}", auth), MayGoUnanswered: true);
            case 5:
                // Refused by Kestrel before the application sees it (431): answered with an error object all the same.
                return new HostileCase($"{path}: headers too large",
                    RawHttp.Request("POST", path, body, "Content-Type: application/json", auth, "X-Big: " + new string('h', random.Next(33_000, 70_000))));
            case 6:
                var line = random.Next(4) switch { 0 => "POST " + path + " HTTP/1.1 junk", 1 => "POST " + path + " HTTP/1.2", 2 => "POST " + path + "?" + new string('q', 9000) + " HTTP/1.1", _ => "POST  " + path + " HTTP/1.1" };
                return new HostileCase($"{path}: request line '{Shorten(line)}'",
                    [.. Encoding.ASCII.GetBytes(line + "\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: " + body.Length + "\r\n\r\n"), .. body],
                    Rightful5xx: line.EndsWith("HTTP/1.2", StringComparison.Ordinal) ? 505 : null);
            case 7:
                var header = random.Next(3) switch { 0 => "No colon", 1 => "Content-Length: 5", _ => "Bad Name: x" };
                return new HostileCase($"{path}: header '{header}'", RawHttp.Request("POST", path, body, "Content-Type: application/json", auth, header));
            default:
                var big = new byte[70 * 1024];
                Array.Fill(big, (byte)'a');
                return new HostileCase($"{path}: body over the limit", RawHttp.Request("POST", path, big, "Content-Type: application/json", auth));
        }
    }

    private HostileCase HostilePath(Random random)
    {
        var route = AdminRoutes[random.Next(AdminRoutes.Length)];
        var method = route[..route.IndexOf(' ', StringComparison.Ordinal)];
        var path = route[(method.Length + 1)..];
        while (path.Contains("{id}", StringComparison.Ordinal))
        {
            var at = path.IndexOf("{id}", StringComparison.Ordinal);
            path = path[..at] + HostileIds[random.Next(HostileIds.Length)] + path[(at + 4)..];
        }

        path += HostileQueries[random.Next(HostileQueries.Length)];
        if (random.Next(5) == 0)
        {
            // A method the route does not take: 405 with Allow (HEAD is left out: its answers have no body to check).
            method = UnusualMethods[random.Next(UnusualMethods.Length)];
        }

        byte[]? body = null;
        if (method is "POST" or "PUT" or "PATCH")
        {
            var (_, json) = Templates[PublicTemplates + random.Next(Templates.Length - PublicTemplates)];
            body = Splice(random.Next(3) == 0 ? json.Replace("fuzz", InvalidMarker, StringComparison.Ordinal) : json, random, []);
        }

        return Build(random, method, path, body, $"{method} {path}");
    }

    private HostileCase Build(Random random, string method, string path, byte[]? body, string description)
    {
        var headers = new List<string>();
        var contentType = random.Next(4) == 0 ? ContentTypes[random.Next(ContentTypes.Length)] : "application/json";
        if (body is not null)
        {
            headers.Add("Content-Type: " + contentType);
        }

        var auth = path.StartsWith("/admin", StringComparison.Ordinal) && random.Next(5) > 0
            ? "Authorization: Bearer " + adminToken
            : AuthHeaders[random.Next(AuthHeaders.Length)];
        if (auth.Length > 0)
        {
            headers.Add(auth);
        }

        if (random.Next(10) == 0)
        {
            headers.Add("X-Forwarded-For: " + random.Next() + ", ::1, not-an-ip");
        }

        return new HostileCase($"{description} [{contentType}; {Shorten(auth)}]", RawHttp.Request(method, path, body, [.. headers]));
    }

    private static string Shorten(string value) => value.Length > 40 ? value[..40] + "..." : value;
}
