using System.Text;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// A seeded generator of hostile requests for the surfaces <see cref="HostileRequests"/> reaches only by accident: every
/// route the server maps (operator keys, join tokens, the cluster join, revocations, checkpoints, compute prices, usage
/// records, the tenant's own keys and limits, a stored response's cancel, /ready, /metrics, the console), each given
/// the query parameters it declares with hostile values (the old generator's queries were mostly names a route does
/// not take, refused before any value was read); request headers the server reads (<c>x-sovereign-*</c>, If-Match,
/// <c>api-key</c>, Content-Encoding, Origin) and some it does not, oversized, non-ASCII, with control characters,
/// repeated or empty; and language-detection batches. Case <c>i</c> of seed <c>s</c> is always the same request.
/// Every prompt, text and key it sends carries <see cref="Marker"/>, so a test can look for it in what the server logged.
/// Requests authenticate with <paramref name="tenantKey"/>; what they change, disable, rotate or revoke is
/// <paramref name="victimTenant"/> and its key <paramref name="victimKeyId"/>, so the key stays usable throughout.
/// </summary>
public sealed class HostileSurfaceRequests(int seed, string adminToken, string tenantKey, string victimTenant, string victimKeyId)
{
    /// <summary>Written into every prompt, input text and made-up secret: it must never reach a log line.</summary>
    public const string Marker = "ZQXCONTENT";

    /// <summary>The made-up secret sent where keys go: it has no known secret prefix, so redaction by prefix cannot hide it.</summary>
    public const string ForeignSecret = "pk-" + Marker + "-5f2b9c";

    private const string IdSlot = "{id}";
    private const string OtherSlot = "{other}";

    /// <summary>A route: method, path (with slots), the query parameters it declares, and a valid body or null.</summary>
    private sealed record Route(string Method, string Path, string[] Query, string? Body = null);

    private static readonly Route[] Routes =
    [
        new("GET", "/admin/v1/tenants", ["limit", "after"]),
        new("POST", "/admin/v1/tenants/{id}/keys/{other}/rotate", [], """{"name":"rotated","expires_in":3600}"""),
        new("POST", "/admin/v1/tenants/{id}/keys", [], """{"name":"k","expires_at":"2031-01-01T00:00:00Z"}"""),
        new("PATCH", "/admin/v1/tenants/{id}", [], """{"name":"Fuzz","disabled":false}"""),
        new("GET", "/admin/v1/cluster", []),
        new("GET", "/admin/v1/cluster/revocations", []),
        new("POST", "/admin/v1/cluster/revocations", [], """{"serial":"0A1B2C","reason":"lost"}"""),
        new("POST", "/admin/v1/audit/checkpoint", []),
        new("POST", "/admin/v1/audit/verify", ["max_uncovered_seconds"]),
        new("GET", "/admin/v1/audit", ["tenant", "from", "to", "limit", "order", "after", "id"]),
        new("GET", "/admin/v1/plans", []),
        new("PUT", "/admin/v1/plans/{id}", [], """{"currency":"EUR","weight":2,"priority":"batch"}"""),
        new("POST", "/admin/v1/plans/{id}/compute-prices", [], """{"pool":"eu.h100","device_class":"h100","model":"stories","per_compute_second":0.002,"effective_from":"2026-01-01T00:00:00Z"}"""),
        new("DELETE", "/admin/v1/plans/{id}/prices", ["model", "effective_from"]),
        new("DELETE", "/admin/v1/plans/{id}/compute-prices", ["pool", "device_class", "model", "effective_from"]),
        new("PUT", "/admin/v1/tenants/{id}/limits", [], """{"budgets":[{"period":"month","amount":10}],"rate_limits":[{"requests_per_minute":6000}]}"""),
        new("GET", "/admin/v1/usage", ["tenant", "from", "to", "group_by", "model", "jurisdiction", "pool", "key_id", "limit", "after"]),
        new("GET", "/admin/v1/usage/{other}", []),
        new("GET", "/admin/v1/tenants/{id}/invoice", ["format", "from", "to", "currency"]),
        new("POST", "/admin/v1/nodes/join-tokens", [], """{"jurisdiction":"DE","pool":"eu","ttl_seconds":600,"device_class":"h100"}"""),
        new("DELETE", "/admin/v1/nodes/join-tokens/{other}", []),
        new("POST", "/cluster/v1/join", [], """{"token":"sjt_ZQXCONTENT","node_id":"n1","url":"http://127.0.0.1:9","csr":null,"jurisdiction":"DE"}"""),
        new("GET", "/admin/v1/operator-keys", []),
        new("POST", "/admin/v1/operator-keys", [], """{"name":"fuzz-ops","expires_in":600}"""),
        new("DELETE", "/admin/v1/operator-keys/{other}", []),
        new("POST", "/admin/v1/nodes", [], """{"id":"n1","jurisdiction":"DE","base_url":"http://127.0.0.1:9","models":[{"id":"m","upstream":"m","capacity":2,"kind":"chat","languages":["de"]}],"api_key":"pk-ZQXCONTENT-5f2b9c","pool":"eu","prompt_cache":"off"}"""),
        new("PUT", "/admin/v1/nodes/{other}/state", [], """{"state":"draining"}"""),
        new("POST", "/admin/v1/models/{other}/load", [], """{"parallel":1}"""),
        new("GET", "/admin/v1/models/{other}/languages", []),
        new("GET", "/v1/keys", []),
        new("GET", "/v1/limits", []),
        new("GET", "/v1/usage", ["from", "to", "group_by", "model", "jurisdiction", "pool", "key_id", "limit", "after"]),
        new("GET", "/v1/usage/{other}", []),
        new("GET", "/v1/audit", ["from", "to", "limit", "order", "after", "id"]),
        new("GET", "/v1/responses/{other}", ["stream", "include", "include[]", "include_obfuscation", "starting_after"]),
        new("GET", "/v1/responses/{other}/input_items", ["limit", "order", "after", "include", "include[]"]),
        new("POST", "/v1/responses/{other}/cancel", []),
        new("DELETE", "/v1/responses/{other}", []),
        new("GET", "/v1/models/{other}", []),
        new("GET", "/ready", []),
        new("GET", "/health", []),
        new("GET", "/metrics", []),
        new("GET", "/console/", []),
        new("GET", "/console/tenants/{id}", []),
        new("GET", "/console/tenants/{id}/invoice", ["from", "to", "currency"]),
        new("GET", "/console/usage", ["from", "to", "tenant", "group_by"]),
        new("GET", "/console/audit", ["tenant", "from", "to", "after"]),
        new("POST", "/console/login", []),
        new("POST", "/console/tenants/{id}/policy", []),
        new("GET", "/console/assets/{other}", []),
    ];

    /// <summary>Cheap valid requests the header cases ride on: one token, a short input.</summary>
    private static readonly (string Method, string Path, string? Body)[] Carriers =
    [
        ("POST", "/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Once ZQXCONTENT time"}],"max_tokens":1,"temperature":0}"""),
        ("POST", "/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Once ZQXCONTENT time"}],"max_tokens":1,"stream":true}"""),
        ("POST", "/v1/completions", """{"model":"stories","prompt":"The ZQXCONTENT dog","max_tokens":1}"""),
        ("POST", "/v1/embeddings", """{"model":"all-MiniLM-L6-v2","input":"a ZQXCONTENT cat"}"""),
        ("POST", "/v1/responses", """{"model":"stories","input":"Once ZQXCONTENT time","max_output_tokens":16}"""),
        ("POST", "/v1/language/detect", """{"input":["Bonjour ZQXCONTENT tout le monde","Dobar dan ZQXCONTENT kako ste"]}"""),
        ("POST", "/tokenize", """{"model":"stories","content":"Hello ZQXCONTENT"}"""),
        ("GET", "/v1/models", null),
        ("GET", "/v1/usage", null),
        ("GET", "/admin/v1/tenants/{id}", null),
        ("PATCH", "/admin/v1/tenants/{id}", """{"name":"Fuzz ZQXCONTENT"}"""),
        ("PUT", "/admin/v1/tenants/{id}/limits", """{"budgets":[{"period":"month","amount":10}]}"""),
    ];

    private static readonly string[] HeaderNames =
    [
        "x-sovereign-stream-audit-entry", "x-sovereign-audit-entry", "x-sovereign-cache-partition", "x-sovereign-usage-so-far",
        "x-sovereign-gateway", "x-sovereign-relay-of", "x-sovereign-prompt-tokens", "x-sovereign-compute-seconds",
        "x-sovereign-not-started", "x-sovereign-language", "x-sovereign-jurisdiction", "x-sovereign-node", "If-Match", "api-key",
        "x-api-key", "x-litellm-api-key", "Content-Encoding", "Origin", "Sec-Fetch-Site", "x-request-id", "OpenAI-Organization",
        "OpenAI-Project", "Idempotency-Key", "priority", "Accept", "Accept-Encoding", "Accept-Charset", "Cookie", "Expect", "Range",
        "If-None-Match", "X-HTTP-Method-Override", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Stainless-Retry-Count",
        "Content-Language", "traceparent", "tracestate", "baggage",
    ];

    // Header values written as bytes: \u0100 and above never appear (the writer takes chars below 256 as one byte each).
    private static readonly string[] HeaderValues =
    [
        "", " ", "comment", "COMMENT ", "1", "-1", "0", "99999999999999999999", "1e309", "NaN", "req_" + new string('f', 32),
        "*", "W/\"x\"", "\"a\", \"b\"", "\"unterminated", "gzip", "br, deflate, x-unknown", "identity;q=0", "100-continue",
        "bytes=0-", "application/json", "text/event-stream", "*/*;q=x", "null", "http://evil.example", "same-site",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-" + new string('z', 60), "a=b,c", "for=\"[::1]\";proto=https",
        "Bearer " + ForeignSecret, "sov_" + Marker + "secret", ForeignSecret, new string('a', 255), new string('0', 32), new string('F', 32),
    ];

    private static readonly string[] QueryValues =
    [
        "", "-1", "0", "1", "2147483648", "99999999999999999999", "1e309", "NaN", "-0", "0x10", "1.5", "%00", "%FF", "%FF%FE",
        "%ED%A0%80", "%E2%80%AE", "%C0%AF", "%0D%0ASet-Cookie:%20x=1", "%1B%5B31m", "2026-13-45", "1970-01-01", "0001-01-01",
        "9999-12-31T23:59:59Z", "2026-01-01T00:00:00%2B99:00", "-62135596801", "253402300800", "2026-01-01", "asc", "desc", "up",
        "csv", "json", "pdf", "EUR", "usd", "XXX", "day", "model,day,,key", "tenant", "true", "false", "[]", "%5B%5D",
        "req_" + new string('0', 32), "resp_" + Marker, "sov_" + Marker, ForeignSecret, new string('q', 2000), "a%20b", "%2E%2E%2F",
        "%F0%9F%99%82", "stories", "default", "DE", "eu.h100",
    ];

    // Ids name things, and paths are logged (without their query): no marker here.
    private static readonly string[] Ids =
    [
        "%20", "%09", "%00", "%0A", "%FF", "%ED%A0%80", "%E2%80%AE", "..", "%2E%2E", "-", "Upper", "a_b", new string('a', 300), "%F0%9F%99%82",
        "x%3Fy", "%25", "nope", "fuzz-victim", "default", "stories", "operator", "opk_0f0f", "req_" + new string('0', 32),
        "resp_0f0f", "jt_1", "%22%3Cscript%3E", "a%2Fb", "sov_0f0f",
    ];

    private static readonly string[] BodyValues =
    [
        "null", "true", "0", "-1", "1e309", "99999999999999999999", "\"\"", "\" \"", "\"\\u0000\"", "[]", "{}", "\"\\ud800\"",
        "\"\\u202e" + Marker + "\"", "\"" + new string('z', 3000) + "\"", "\"" + Marker + "\\r\\n\\u001b[2J\"", "[[[[[]]]]]",
        "\"2026-02-30T00:00:00Z\"", "\"9999-12-31T23:59:59+14:00\"", "-62135596801", "253402300800", "\"sov_" + Marker + "\"",
    ];

    /// <summary>The seed; printed with every failure so a run can be repeated.</summary>
    public int Seed { get; } = seed;

    /// <summary>The case with this index.</summary>
    public HostileCase Create(int index)
    {
        var random = new Random(HashCode.Combine(Seed, index, 0x5EED));
        return random.Next(10) switch
        {
            < 4 => RouteCase(random),
            < 7 => HeaderCase(random),
            7 => RequestLineCase(random),
            _ => LanguageBatchCase(random),
        };
    }

    private HostileCase RouteCase(Random random)
    {
        var route = Routes[random.Next(Routes.Length)];
        var path = Fill(route.Path, random);
        var query = new List<string>();
        var steps = new List<string>();
        for (var i = route.Query.Length == 0 ? 0 : random.Next(0, 4); i > 0; i--)
        {
            var name = route.Query[random.Next(route.Query.Length)];
            query.Add(name.Replace("[]", "%5B%5D", StringComparison.Ordinal) + "=" + QueryValues[random.Next(QueryValues.Length)]);
        }

        switch (random.Next(8))
        {
            case 0 when query.Count > 0:
                query.Add(query[0]);
                steps.Add("repeated parameter");
                break;
            case 1:
                query.Add(random.Next(2) == 0 ? "api_key=" + ForeignSecret : "x_" + random.Next(9) + "=" + Marker);
                steps.Add("unknown parameter");
                break;
            case 2 when query.Count > 0:
                query.Add("=" + QueryValues[random.Next(QueryValues.Length)]);
                steps.Add("parameter without a name");
                break;
            case 3 when query.Count > 0:
                query[0] = query[0].Split('=')[0];
                steps.Add("parameter without '='");
                break;
        }

        var target = query.Count > 0 ? path + "?" + string.Join('&', query) : path;
        byte[]? body = null;
        if (route.Body is { } json)
        {
            body = Encoding.UTF8.GetBytes(MutateBody(json, random, steps));
        }
        else if (route.Method is "POST" or "PUT" && random.Next(3) == 0)
        {
            body = Encoding.UTF8.GetBytes(random.Next(2) == 0 ? "{\"x\":\"" + Marker + "\"}" : "{}");
            steps.Add("a body it does not take");
        }

        var headers = new List<string>();
        if (body is not null)
        {
            headers.Add("Content-Type: " + (route.Path.StartsWith("/console", StringComparison.Ordinal) && random.Next(2) == 0 ? "application/x-www-form-urlencoded" : "application/json"));
        }

        headers.Add(Auth(route.Path, random));
        return new HostileCase($"{route.Method} {Shorten(target)} {string.Join("; ", steps)} [{Shorten(headers[^1])}]",
            Bytes(route.Method, target, body, headers, []));
    }

    private string MutateBody(string json, Random random, List<string> steps)
    {
        if (random.Next(4) == 0)
        {
            return json;
        }

        // Replace one value (a string, number, boolean or null after a key) with a hostile one.
        var keys = new List<int>();
        for (var at = json.IndexOf("\":", StringComparison.Ordinal); at >= 0; at = json.IndexOf("\":", at + 2, StringComparison.Ordinal))
        {
            keys.Add(at + 2);
        }

        var start = keys[random.Next(keys.Count)];
        var end = start;
        if (json[end] == '"')
        {
            end = json.IndexOf('"', end + 1) + 1;
        }
        else if (json[end] is '[' or '{')
        {
            var depth = 0;
            do
            {
                depth += json[end] is '[' or '{' ? 1 : json[end] is ']' or '}' ? -1 : 0;
                end++;
            }
            while (depth > 0);
        }
        else
        {
            while (json[end] is not (',' or '}' or ']'))
            {
                end++;
            }
        }

        var value = BodyValues[random.Next(BodyValues.Length)];
        steps.Add($"value at {start} = {Shorten(value)}");
        return json[..start] + value + json[end..];
    }

    private HostileCase HeaderCase(Random random)
    {
        var (method, template, body) = Carriers[random.Next(Carriers.Length)];
        var path = template.Replace(IdSlot, victimTenant, StringComparison.Ordinal);
        var headers = new List<string>();
        if (body is not null)
        {
            headers.Add("Content-Type: application/json");
        }

        var auth = path.StartsWith("/admin", StringComparison.Ordinal) ? "Authorization: Bearer " + adminToken : "Authorization: Bearer " + tenantKey;
        var raw = new List<byte[]>();
        var steps = new List<string>();
        for (var i = random.Next(1, 4); i > 0; i--)
        {
            var name = HeaderNames[random.Next(HeaderNames.Length)];
            switch (random.Next(9))
            {
                case 0:
                    // Oversized, still under Kestrel's 32 KiB for all headers.
                    var size = random.Next(4_000, 12_000);
                    headers.Add(name + ": " + Marker + new string('v', size));
                    steps.Add($"{name}: {size} bytes");
                    break;
                case 1:
                    // Raw UTF-8 (Kestrel takes ASCII only: a 400 before the application).
                    raw.Add([.. Encoding.ASCII.GetBytes(name + ": "), .. Encoding.UTF8.GetBytes(Marker + " héllo 🙂")]);
                    steps.Add($"{name}: non-ASCII");
                    break;
                case 2:
                    var control = (byte)new[] { 0x01, 0x00, 0x07, 0x1B, 0x7F, 0x0B, 0x0C }[random.Next(7)];
                    raw.Add([.. Encoding.ASCII.GetBytes(name + ": " + Marker), control, .. "x"u8]);
                    steps.Add($"{name}: control 0x{control:X2}");
                    break;
                case 3:
                    var value = HeaderValues[random.Next(HeaderValues.Length)];
                    headers.Add(name + ": " + value);
                    headers.Add(name + ": " + HeaderValues[random.Next(HeaderValues.Length)]);
                    steps.Add($"{name} twice");
                    break;
                case 4:
                    headers.Add(name + ":");
                    steps.Add($"{name} empty");
                    break;
                case 5:
                    // Latin-1 bytes that are not UTF-8.
                    raw.Add([.. Encoding.ASCII.GetBytes(name + ": " + Marker), 0xE9, 0xFF]);
                    steps.Add($"{name}: Latin-1");
                    break;
                default:
                    var chosen = HeaderValues[random.Next(HeaderValues.Length)];
                    headers.Add(name + ": " + chosen);
                    steps.Add($"{name}: {Shorten(chosen)}");
                    break;
            }
        }

        switch (random.Next(6))
        {
            case 0:
                auth = "Authorization: Bearer " + ForeignSecret;
                steps.Add("a foreign key");
                break;
            case 1:
                auth = "";
                steps.Add("no Authorization");
                break;
        }

        if (auth.Length > 0)
        {
            headers.Add(auth);
        }

        return new HostileCase($"{method} {path} with {string.Join("; ", steps)}",
            Bytes(method, path, body is null ? null : Encoding.UTF8.GetBytes(body), headers, raw));
    }

    /// <summary>
    /// A request line Kestrel parses before any application code: a target with a NUL, a raw byte, a control character,
    /// a fragment, too long; odd forms and versions. The query carries a secret: the refusal must not log it.
    /// </summary>
    private HostileCase RequestLineCase(Random random)
    {
        var (method, path, body) = Carriers[random.Next(Carriers.Length)];
        path = path.Replace(IdSlot, victimTenant, StringComparison.Ordinal);
        var query = "?api_key=" + ForeignSecret;
        int? rightful = null;
        byte[] line;
        string what;
        switch (random.Next(10))
        {
            case 0:
                line = Encoding.ASCII.GetBytes($"{method} {path}%00{query} HTTP/1.1");
                what = "%00 in the path";
                break;
            case 1:
                line = [.. Encoding.ASCII.GetBytes($"{method} {path}"), (byte)random.Next(0x80, 0x100), .. Encoding.ASCII.GetBytes($"{query} HTTP/1.1")];
                what = "a raw byte above 0x7F";
                break;
            case 2:
                line = [.. Encoding.ASCII.GetBytes($"{method} {path}{query}"), (byte)new[] { 0x01, 0x7F, 0x09, 0x1B, 0x00 }[random.Next(5)], .. " HTTP/1.1"u8];
                what = "a control character";
                break;
            case 3:
                line = Encoding.ASCII.GetBytes($"{method} {path}{query}#{Marker} HTTP/1.1");
                what = "a fragment";
                break;
            case 4:
                line = Encoding.ASCII.GetBytes($"{method} http://127.0.0.1{path}{query} HTTP/1.1");
                what = "absolute form";
                break;
            case 5:
                line = Encoding.ASCII.GetBytes($"{method} *{query} HTTP/1.1");
                what = "asterisk form";
                break;
            case 6:
                line = Encoding.ASCII.GetBytes($"{method} {path}{query}&pad={new string('p', random.Next(9_000, 40_000))} HTTP/1.1");
                what = "a target too long";
                break;
            case 7:
                line = Encoding.ASCII.GetBytes($"{method.ToLowerInvariant()} {path}{query} HTTP/1.1");
                what = "a lowercase method";
                break;
            case 8:
                var version = new[] { "HTTP/2.0", "HTTP/1.9", "HTTP/0.9", "HTTX/1.1", "HTTP/1.1 extra" }[random.Next(5)];
                line = Encoding.ASCII.GetBytes($"{method} {path}{query} {version}");
                // Kestrel answers any version it does not speak with 505 (the protocol's own answer), a line with more with 400.
                rightful = version.Contains(' ', StringComparison.Ordinal) ? null : 505;
                what = "version " + version;
                break;
            default:
                line = Encoding.ASCII.GetBytes($"{method} {path}{query}  HTTP/1.1");
                what = "two spaces";
                break;
        }

        var head = new List<byte>(line);
        head.AddRange("\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer "u8.ToArray());
        head.AddRange(Encoding.ASCII.GetBytes(tenantKey));
        var content = body is null ? null : Encoding.UTF8.GetBytes(body);
        head.AddRange(Encoding.ASCII.GetBytes(content is null ? "\r\n\r\n" : $"\r\nContent-Type: application/json\r\nContent-Length: {content.Length}\r\n\r\n"));
        return new HostileCase($"request line of {method} {path}: {what}", [.. head, .. content ?? []], Rightful5xx: rightful);
    }

    private HostileCase LanguageBatchCase(Random random)
    {
        var inputs = new List<string>();
        var what = new List<string>();
        var count = random.Next(5) switch { 0 => 0, 1 => random.Next(100, 3000), _ => random.Next(1, 8) };
        for (var i = 0; i < count; i++)
        {
            inputs.Add(random.Next(12) switch
            {
                0 => "\"\"",
                1 => "\" \"",
                2 => "null",
                3 => "42",
                4 => "[\"nested " + Marker + "\"]",
                5 => "\"\\ud800" + Marker + "\"",
                6 => "\"" + string.Concat(Enumerable.Repeat(Marker + " ", random.Next(500, 4000))) + "\"",
                7 => "{\"text\":\"" + Marker + "\"}",
                8 => "\"\\u0000\\u001b[31m" + Marker + "\"",
                9 => "\"ព្រះរាជាណាចក្រ " + Marker + "\"",
                _ => "\"Das ist ein " + Marker + " Satz, der deutsch ist.\"",
            });
        }

        var input = random.Next(6) switch
        {
            0 => "\"Bonjour " + Marker + " tout le monde\"",
            1 => "{}",
            _ => "[" + string.Join(',', inputs) + "]",
        };
        what.Add(input.StartsWith('[') ? $"{count} inputs" : Shorten(input));
        var extra = random.Next(5) switch
        {
            0 => ",\"model\":\"stories\"",
            1 => ",\"languages\":[\"xx\",\"fr\"]",
            2 => ",\"min_confidence\":1e309",
            3 => ",\"input\":\"again\"",
            _ => "",
        };
        var body = Encoding.UTF8.GetBytes("{\"input\":" + input + extra + "}");
        var auth = random.Next(4) == 0 ? "Authorization: Bearer " + ForeignSecret : "Authorization: Bearer " + tenantKey;
        return new HostileCase($"POST /v1/language/detect: {string.Join("; ", what)}{extra}", Bytes("POST", "/v1/language/detect", body, ["Content-Type: application/json", auth], []));
    }

    private string Fill(string template, Random random)
    {
        var path = template;
        if (path.Contains(IdSlot, StringComparison.Ordinal))
        {
            path = path.Replace(IdSlot, random.Next(3) == 0 ? victimTenant : Ids[random.Next(Ids.Length)], StringComparison.Ordinal);
        }

        if (path.Contains(OtherSlot, StringComparison.Ordinal))
        {
            path = path.Replace(OtherSlot, random.Next(4) == 0 ? victimKeyId : Ids[random.Next(Ids.Length)], StringComparison.Ordinal);
        }

        return path;
    }

    private string Auth(string path, Random random)
    {
        var admin = path.StartsWith("/admin", StringComparison.Ordinal) || path is "/metrics" || path.StartsWith("/console", StringComparison.Ordinal);
        return random.Next(6) switch
        {
            0 => "Authorization: Bearer " + ForeignSecret,
            1 => "Authorization: Bearer sov_" + Marker,
            2 => "X-Nothing: x",
            _ => "Authorization: Bearer " + (admin ? adminToken : tenantKey),
        };
    }

    /// <summary>An HTTP/1.1 request as bytes; <paramref name="raw"/> header lines go in as they are (any byte).</summary>
    private static byte[] Bytes(string method, string target, byte[]? body, List<string> headers, List<byte[]> raw)
    {
        var head = new List<byte>(Encoding.ASCII.GetBytes($"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"));
        foreach (var header in headers)
        {
            head.AddRange(Encoding.Latin1.GetBytes(header + "\r\n"));
        }

        foreach (var line in raw)
        {
            head.AddRange(line);
            head.AddRange("\r\n"u8.ToArray());
        }

        if (body is not null)
        {
            head.AddRange(Encoding.ASCII.GetBytes($"Content-Length: {body.Length}\r\n"));
        }

        head.AddRange("\r\n"u8.ToArray());
        return [.. head, .. body ?? []];
    }

    private static string Shorten(string value) => value.Length > 60 ? value[..60] + "..." : value;
}
