using System.Text.Json;
using Microsoft.AspNetCore.Connections;
using Sovereign.Gateway.Hosting;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.OpenAI;

/// <summary>Reads, parses and validates OpenAI request bodies, turning every client mistake into a precise 400.</summary>
internal static class RequestReader
{
    /// <summary>The index of a path frame that is an object, not an array.</summary>
    private const int InObject = -2;

    /// <summary>The raw body of the request, kept for forwarding to an upstream engine.</summary>
    public static ReadOnlyMemory<byte> RawBody(HttpContext context) =>
        context.Items.TryGetValue(typeof(RequestReader), out var raw) && raw is ReadOnlyMemory<byte> bytes ? bytes : ReadOnlyMemory<byte>.Empty;

    /// <summary>
    /// Endpoint metadata (the admin group carries it): the endpoint's body is read strictly, with
    /// <see cref="OpenAIJson.AdminOptions"/>, so a field it does not know is a 400 naming it.
    /// </summary>
    internal sealed class StrictBody
    {
        public static readonly StrictBody Instance = new();

        private StrictBody()
        {
        }
    }

    /// <summary>How long the rest of an aborted request's body is read to tell a client's FIN from a reset (it is all buffered already).</summary>
    internal static readonly TimeSpan AbortedBodyReadBound = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Reads the body as <typeparamref name="T"/>: leniently (unknown fields skipped by the serializer) unless the
    /// endpoint carries <see cref="StrictBody"/> or <paramref name="options"/> say otherwise. With
    /// <paramref name="known"/> (a /v1 endpoint's <see cref="RequestFields.For{T}"/>), a field name it does not know, at
    /// any depth, is a 400 naming its path, found while the body's text is validated (no pass of its own).
    /// </summary>
    public static async Task<T> ReadAsync<T>(HttpContext context, KnownFields? known = null, JsonSerializerOptions? options = null)
        where T : class
    {
        options ??= context.GetEndpoint()?.Metadata.GetMetadata<StrictBody>() is not null ? OpenAIJson.AdminOptions : OpenAIJson.Options;
        RequireJsonContentType(context.Request.ContentType);
        RequireIdentityEncoding(context.Request.Headers.ContentEncoding.ToString());

        // Buffer the body (Kestrel enforces the size limit while reading) so it can be validated here and forwarded as is.
        using var buffer = new MemoryStream();
        try
        {
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted)
        {
            // Kestrel aborts the request when the client's side of the connection ends (a FIN) as well as when it resets:
            // which the read saw first, the abort or the end of the body, was up to the thread pool, so a body cut
            // short by the client's FIN was a 400 malformed_request (logged) or a client gone (not logged) by chance
            // (HostileInputTests.BodyCutShort..., flaky under load). What is left of the body says which it was: the
            // end of the client's stream before the announced length is Kestrel's BadHttpRequestException (the 400),
            // a reset is an I/O error (a client that left). Bounded, should neither ever come.
            using var bound = new CancellationTokenSource(AbortedBodyReadBound);
            await context.Request.Body.CopyToAsync(buffer, bound.Token);
            throw;
        }
        catch (IOException ex) when (ex is not BadHttpRequestException and not ConnectionResetException && !context.RequestAborted.IsCancellationRequested)
        {
            // Kestrel reports broken framing of a chunked body (e.g. a chunk size that overflows) as a plain IOException.
            // A reset connection is a client that left (the error middleware's concern), not a body to refuse.
            throw OpenAIException.BadRequest("The request body could not be read: " + ex.Message, code: OpenAIErrorResults.MalformedRequestCode);
        }

        var bytes = WithoutByteOrderMark(new ReadOnlyMemory<byte>(buffer.GetBuffer(), 0, (int)buffer.Length));
        context.Items[typeof(RequestReader)] = bytes;
        if (bytes.Length == 0)
        {
            throw OpenAIException.BadRequest("We could not parse the JSON body of your request: the request body is empty.");
        }

        // Every string must decode before anything reads it: JsonElement.GetString() throws a plain
        // InvalidOperationException on invalid UTF-8 or a lone surrogate escape, long after parsing.
        ValidateText(bytes.Span, known);
        RequireObject(bytes.Span);
        if (options.UnmappedMemberHandling == System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow)
        {
            RequireKnownFields(bytes, options.GetTypeInfo(typeof(T)));
        }

        T? body;
        try
        {
            body = JsonSerializer.Deserialize<T>(bytes.Span, options);
        }
        catch (JsonException ex)
        {
            var param = ex.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : null;
            if (param is not null && ex is ContentPartException part)
            {
                var at = param + part.PathWithinContent;
                throw OpenAIException.BadRequest($"{at} {part.Problem}", at, part.Code);
            }

            throw param is null
                ? OpenAIException.BadRequest("We could not parse the JSON body of your request: " + FirstSentence(ex.Message))
                : InvalidType(bytes.Span, ex.Path!, param);
        }

        return body ?? throw OpenAIException.BadRequest("The request body must be a JSON object.");
    }

    /// <summary>
    /// The 400 for a value the body's contract cannot take, at <paramref name="param"/> (the serializer's
    /// <paramref name="jsonPath"/> without <c>$.</c>), as OpenAI words it: what was expected where that is one rule
    /// (<c>metadata</c>: an object of string values), and what was sent. It said only "Invalid type or value for
    /// 'metadata.tags'." to a LiteLLM-style <c>"metadata": {"tags": ["a"]}</c>.
    /// </summary>
    internal static OpenAIException InvalidType(ReadOnlySpan<byte> body, string jsonPath, string param)
    {
        var got = KindAt(body, jsonPath) is { } kind ? Describe(kind) : null;
        var shown = Shorten(param);
        if (param == "metadata")
        {
            return OpenAIException.BadRequest(
                $"Invalid type for 'metadata': expected an object of up to {MetadataRule}" + (got is null ? "." : $", but got {got} instead."), param, "invalid_type");
        }

        if (param.StartsWith("metadata.", StringComparison.Ordinal) || param.StartsWith("metadata[", StringComparison.Ordinal))
        {
            return OpenAIException.BadRequest(
                $"Invalid type for '{shown}': expected a string" + (got is null ? "" : $", but got {got} instead") +
                $". metadata maps up to {MetadataRule}; a list (such as tags) goes in one string, e.g. \"a,b\".", param, "invalid_type");
        }

        return OpenAIException.BadRequest($"Invalid type or value for '{shown}'" + (got is null ? "." : $": got {got}."), param, "invalid_type");
    }

    /// <summary>OpenAI's rule for <c>metadata</c>, as the messages state it.</summary>
    private const string MetadataRule = "16 keys (strings of at most 64 characters) to string values of at most 512 characters";

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        JsonValueKind.String => "a string",
        _ => "another value",
    };

    /// <summary>The kind of the value at a serializer path (<c>$.a.b[0]['c d']</c>) of <paramref name="body"/>, or null when it is not found.</summary>
    internal static JsonValueKind? KindAt(ReadOnlySpan<byte> body, string jsonPath)
    {
        try
        {
            var reader = new Utf8JsonReader(body);
            using var document = JsonDocument.ParseValue(ref reader);
            var at = document.RootElement;
            var i = jsonPath.StartsWith('$') ? 1 : 0;
            while (i < jsonPath.Length)
            {
                if (jsonPath[i] == '.')
                {
                    var end = jsonPath.IndexOfAny(['.', '['], i + 1);
                    end = end < 0 ? jsonPath.Length : end;
                    if (at.ValueKind != JsonValueKind.Object || !at.TryGetProperty(jsonPath[(i + 1)..end], out at))
                    {
                        return null;
                    }

                    i = end;
                }
                else if (jsonPath.AsSpan(i).StartsWith("['"))
                {
                    var end = jsonPath.IndexOf("']", i + 2, StringComparison.Ordinal);
                    if (end < 0 || at.ValueKind != JsonValueKind.Object || !at.TryGetProperty(jsonPath[(i + 2)..end], out at))
                    {
                        return null;
                    }

                    i = end + 2;
                }
                else if (jsonPath[i] == '[')
                {
                    var end = jsonPath.IndexOf(']', i + 1);
                    if (end < 0 || at.ValueKind != JsonValueKind.Array
                        || !int.TryParse(jsonPath.AsSpan(i + 1, end - i - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index)
                        || index >= at.GetArrayLength())
                    {
                        return null;
                    }

                    at = at[index];
                    i = end + 1;
                }
                else
                {
                    return null;
                }
            }

            return at.ValueKind;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Reads the body as <see cref="ReadAsync{T}"/> does, where a request without one means every field's default (a
    /// POST that creates something with defaults: a key, a model load): <c>Content-Length: 0</c>, or neither a length
    /// nor chunked framing. A body that is sent is read and checked as always, an empty chunked one included.
    /// </summary>
    public static Task<T> ReadOptionalAsync<T>(HttpContext context)
        where T : class, new() =>
        context.Request.ContentLength == 0 || context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false }
            ? Task.FromResult(new T())
            : ReadAsync<T>(context);

    /// <summary>
    /// A UTF-8 byte order mark before the JSON is dropped, as RFC 8259 allows a parser to: PowerShell's
    /// <c>Invoke-RestMethod</c> with a UTF-8 encoded file and some .NET clients (<c>Encoding.UTF8.GetPreamble</c>)
    /// send one, and <see cref="Utf8JsonReader"/> refuses it ("'0xEF' is an invalid start of a value"). The body is
    /// forwarded without it too: an engine behind us may refuse it as we did.
    /// </summary>
    internal static ReadOnlyMemory<byte> WithoutByteOrderMark(ReadOnlyMemory<byte> bytes) =>
        bytes.Span.StartsWith("\uFEFF"u8) ? bytes[3..] : bytes;

    /// <summary>
    /// A strict body names its first field the target type does not have, by walking the JSON against the
    /// serializer's own contract (<see cref="System.Text.Json.Serialization.Metadata.JsonTypeInfo"/>): objects by their
    /// properties, arrays by their element type; dictionaries' keys and raw <see cref="JsonElement"/> values are data.
    /// The serializer's refusal says the same in a message meant for people, naming our class.
    /// </summary>
    private static void RequireKnownFields(ReadOnlyMemory<byte> json, System.Text.Json.Serialization.Metadata.JsonTypeInfo contract)
    {
        using var document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = OpenAIJson.Options.MaxDepth });
        if (UnknownField(document.RootElement, contract, "") is { } field)
        {
            throw OpenAIException.BadRequest($"Unknown parameter: '{Shorten(field)}'.", Shorten(field), "unknown_parameter");
        }
    }

    private static string? UnknownField(JsonElement value, System.Text.Json.Serialization.Metadata.JsonTypeInfo contract, string path)
    {
        switch (contract.Kind)
        {
            case System.Text.Json.Serialization.Metadata.JsonTypeInfoKind.Object when value.ValueKind == JsonValueKind.Object:
                foreach (var property in value.EnumerateObject())
                {
                    var field = path.Length == 0 ? property.Name : path + "." + property.Name;
                    var known = contract.Properties.FirstOrDefault(p => p.Name == property.Name);
                    if (known is null)
                    {
                        return field;
                    }

                    if (UnknownField(property.Value, contract.Options.GetTypeInfo(known.PropertyType), field) is { } inner)
                    {
                        return inner;
                    }
                }

                break;
            case System.Text.Json.Serialization.Metadata.JsonTypeInfoKind.Enumerable when value.ValueKind == JsonValueKind.Array && contract.ElementType is { } element:
                var items = contract.Options.GetTypeInfo(element);
                var i = 0;
                foreach (var item in value.EnumerateArray())
                {
                    if (UnknownField(item, items, $"{path}[{i++}]") is { } inner)
                    {
                        return inner;
                    }
                }

                break;
        }

        return null;
    }

    /// <summary>
    /// Every request body is a JSON object. Without this check the serializer's refusal of an array, a string or a
    /// number names the internal type it was reading into ("could not be converted to Sovereign.Gateway...").
    /// </summary>
    private static void RequireObject(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        if (reader.Read() && reader.TokenType != JsonTokenType.StartObject)
        {
            var got = reader.TokenType switch
            {
                JsonTokenType.StartArray => "an array",
                JsonTokenType.String => "a string",
                JsonTokenType.Number => "a number",
                JsonTokenType.True or JsonTokenType.False => "a boolean",
                _ => "null",
            };
            throw OpenAIException.BadRequest($"The request body must be a JSON object; got {got}.", null, "invalid_type");
        }
    }

    /// <summary>
    /// Bodies are read as sent: a compressed one (<c>Content-Encoding: gzip</c>) is a 415 naming the coding, as RFC 9110
    /// asks. A gzip body used to be parsed as JSON ("'0x1F' is an invalid start of a value") and a body labelled
    /// <c>br</c> but sent plain was served.
    /// </summary>
    internal static void RequireIdentityEncoding(string contentEncoding)
    {
        var codings = contentEncoding.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var coding in codings)
        {
            if (!coding.Equals("identity", StringComparison.OrdinalIgnoreCase))
            {
                throw UnsupportedMediaType($"The body's Content-Encoding is '{Shorten(coding)}'; send request bodies uncompressed.");
            }
        }
    }

    /// <summary>
    /// Refuses bodies whose declared type says they are not UTF-8 JSON. A body without a Content-Type is read as JSON
    /// (some curl and script users send none); otherwise the type must be JSON: <c>application/json</c>, a
    /// <c>+json</c> type (RFC 6839) or <c>text/json</c> (what ASP.NET Core's own JSON input takes). Anything else, form
    /// encodings, <c>text/plain</c> and <c>application/xml</c> included, is a 415 naming the type, as are charsets
    /// other than UTF-8. <c>text/plain</c> was read as JSON: the three form-like types are the ones a web page may
    /// send to another origin without a CORS preflight, so refusing them keeps a page from driving a local gateway.
    /// </summary>
    internal static void RequireJsonContentType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return;
        }

        if (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var media))
        {
            throw UnsupportedMediaType($"The Content-Type '{Shorten(contentType)}' cannot be parsed.");
        }

        var type = media.MediaType.Value ?? "";
        if (!IsJsonMediaType(type))
        {
            throw UnsupportedMediaType($"The body is sent as '{Shorten(type)}'; this endpoint takes JSON: send it with 'Content-Type: application/json'.");
        }

        var charset = media.Charset.Value;
        if (!string.IsNullOrEmpty(charset) && !charset.Trim('"').Equals("utf-8", StringComparison.OrdinalIgnoreCase) && !charset.Trim('"').Equals("utf8", StringComparison.OrdinalIgnoreCase))
        {
            throw UnsupportedMediaType($"The body's charset is '{Shorten(charset)}'; JSON request bodies must be UTF-8.");
        }
    }

    /// <summary>
    /// One pass over the body with the same depth limit as the serializer: the JSON must be well formed, every
    /// string and property name must be valid UTF-8 without lone surrogates, and no object may repeat a property name
    /// (compared decoded, so <c>"model"</c> and <c>"mod\u0065l"</c> are the same). Names the field at fault.
    /// </summary>
    /// <remarks>
    /// A repeated key is ambiguous: the serializer keeps the last copy, an engine we relay to may keep the first, and an
    /// auditor cannot tell which was used. The serializer's own check (<c>AllowDuplicateProperties = false</c>) missed
    /// the values we read as <see cref="JsonElement"/> (chat content parts, Responses input items) and named only the
    /// enclosing object; here every object is checked, the repeated property named, with the names this pass decodes anyway.
    /// </remarks>
    internal static void ValidateText(ReadOnlySpan<byte> json, KnownFields? known = null)
    {
        // The walk's lists and sets are the thread's, reused from body to body (every /v1 request is checked here); a
        // body that leaves them large, or throws, does not give them back.
        var scratch = t_textCheck ?? new TextCheck();
        t_textCheck = null;
        var fields = known is null ? null : scratch.Walk(known);
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = OpenAIJson.Options.MaxDepth, CommentHandling = JsonCommentHandling.Disallow });

        // One frame per open object (Index = InObject, Name = the current property) or array (Index = the current item).
        var path = scratch.Path;

        // The property names of each open object, by its depth in path; a depth's set is cleared and reused.
        var names = scratch.Names;
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        var name = PropertyNameOrNull(ref reader) ?? throw InvalidText(path, isName: true);
                        path[^1] = (name, InObject);
                        if (!names[path.Count - 1].Add(name))
                        {
                            var param = PathOf(path);
                            throw OpenAIException.BadRequest(
                                $"The JSON body repeats the property '{Shorten(param)}'; send each property once (which copy would count is ambiguous).",
                                Shorten(param), "duplicate_property");
                        }

                        fields?.Property(name, path);
                        break;
                    case JsonTokenType.StartObject:
                        Advance(path);
                        fields?.Open(isObject: true);
                        path.Add((null, InObject));
                        while (names.Count < path.Count)
                        {
                            names.Add(new HashSet<string>(StringComparer.Ordinal));
                        }

                        names[path.Count - 1].Clear();
                        break;
                    case JsonTokenType.StartArray:
                        Advance(path);
                        fields?.Open(isObject: false);
                        path.Add((null, -1));
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        fields?.Close(path);
                        path.RemoveAt(path.Count - 1);
                        break;
                    case JsonTokenType.String:
                        Advance(path);
                        if (!IsDecodable(ref reader))
                        {
                            throw InvalidText(path, isName: false);
                        }

                        fields?.String(ref reader);
                        break;
                    default:
                        Advance(path);
                        break;
                }
            }
        }
        catch (JsonException ex)
        {
            throw OpenAIException.BadRequest("We could not parse the JSON body of your request: " + FirstSentence(ex.Message));
        }

        if (scratch.Reusable())
        {
            t_textCheck = scratch;
        }
    }

    [ThreadStatic]
    private static TextCheck? t_textCheck;

    /// <summary><see cref="ValidateText"/>'s working state, kept by a thread between bodies.</summary>
    private sealed class TextCheck
    {
        private const int MostNamesKept = 64;

        private KnownFieldWalk? _walk;

        public List<(string? Name, int Index)> Path { get; } = [];

        public List<HashSet<string>> Names { get; } = [];

        public KnownFieldWalk Walk(KnownFields known)
        {
            if (_walk is null)
            {
                return _walk = new KnownFieldWalk(known);
            }

            _walk.Reset(known);
            return _walk;
        }

        /// <summary>Cleared for the next body; false when a set grew past what is worth keeping (a body of many names).</summary>
        public bool Reusable()
        {
            Path.Clear();
            foreach (var set in Names)
            {
                if (set.Count > MostNamesKept)
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>
    /// A property name, decoded: the same string for the same name each time (a small process-wide table of the names
    /// bodies use, <c>model</c>, <c>messages</c>, <c>role</c>...), so a request's names allocate nothing; an escaped,
    /// long or new name once the table is full is decoded as <see cref="DecodedOrNull"/> decodes it.
    /// </summary>
    private static string? PropertyNameOrNull(ref Utf8JsonReader reader)
    {
        if (reader.ValueIsEscaped || reader.HasValueSequence || reader.ValueSpan.Length > MaxKeptNameBytes)
        {
            return DecodedOrNull(ref reader);
        }

        Span<char> chars = stackalloc char[MaxKeptNameBytes];
        if (System.Text.Unicode.Utf8.ToUtf16(reader.ValueSpan, chars, out _, out var written, replaceInvalidSequences: false) != System.Buffers.OperationStatus.Done)
        {
            return null;
        }

        var text = chars[..written];
        if (KeptNames.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(text, out var kept))
        {
            return kept;
        }

        var name = new string(text);
        if (KeptNames.Count < MostKeptNames)
        {
            KeptNames.TryAdd(name, name);
        }

        return name;
    }

    private const int MaxKeptNameBytes = 64;
    private const int MostKeptNames = 2048;
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> KeptNames = new(StringComparer.Ordinal);

    private static void Advance(List<(string? Name, int Index)> path)
    {
        if (path.Count > 0 && path[^1].Index != InObject)
        {
            path[^1] = (null, path[^1].Index + 1);
        }
    }

    private static bool IsDecodable(ref Utf8JsonReader reader) =>
        reader.ValueIsEscaped ? DecodedOrNull(ref reader) is not null : System.Text.Unicode.Utf8.IsValid(reader.ValueSpan);

    private static string? DecodedOrNull(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>A path as OpenAI names parameters (<c>messages[0].content</c>); empty for the body itself.</summary>
    internal static string PathOf(IEnumerable<(string? Name, int Index)> path)
    {
        var text = new System.Text.StringBuilder();
        foreach (var (name, index) in path)
        {
            if (index >= 0)
            {
                text.Append('[').Append(index).Append(']');
            }
            else if (name is not null)
            {
                text.Append(text.Length > 0 ? "." : "").Append(name);
            }
        }

        return text.ToString();
    }

    /// <summary>The 400 for undecodable text, naming the field as OpenAI names parameters (<c>messages[0].content</c>).</summary>
    private static OpenAIException InvalidText(List<(string? Name, int Index)> path, bool isName)
    {
        var text = PathOf(isName ? path.Take(path.Count - 1) : path);
        var param = text.Length > 0 ? text : null;
        var what = isName ? "A property name" : "The text";
        return OpenAIException.BadRequest(
            $"{what} in {(param is null ? "the request body" : $"'{param}'")} is not valid Unicode: it has invalid UTF-8 bytes or an unpaired surrogate escape.",
            param, "invalid_encoding");
    }

    private static bool IsJsonMediaType(string type) =>
        type.Equals("application/json", StringComparison.OrdinalIgnoreCase)
        || type.Equals("text/json", StringComparison.OrdinalIgnoreCase)
        || (type.EndsWith("+json", StringComparison.OrdinalIgnoreCase) && type.IndexOf('/', StringComparison.Ordinal) is > 0 and var slash && slash < type.Length - "+json".Length - 1);

    private static OpenAIException UnsupportedMediaType(string message) =>
        new(StatusCodes.Status415UnsupportedMediaType, message, "invalid_request_error", null, "unsupported_media_type");

    /// <summary>
    /// A client's value as an error message may echo it: at most 64 characters; control characters, surrogates and
    /// bidirectional overrides (which make text display as other text) as '?'; a secret (a key pasted where its id
    /// belongs) cut after its prefix (<see cref="Observability.GatewayLog.RedactSecrets"/>). The one rule for every echo.
    /// </summary>
    internal static string Shorten(string value)
    {
        value = Observability.GatewayLog.RedactSecrets(value);
        var shown = new string(value.Take(64).Select(c => Disguises(c) || char.IsSurrogate(c) || IsInvisible(c) ? '?' : c).ToArray());
        return value.Length > 64 ? shown + "..." : shown;
    }

    /// <summary>
    /// A character that makes text show as other text on an operator's screen: a control character (NUL, newline, an
    /// ESC sequence) or a bidirectional override (U+202A-U+202E, U+2066-U+2069).
    /// </summary>
    internal static bool Disguises(char c) => char.IsControl(c) || c is (>= '\u202A' and <= '\u202E') or (>= '\u2066' and <= '\u2069');

    /// <summary>What <see cref="IsInvisible"/> refuses in a model id, as a message names the rule.</summary>
    internal const string InvisibleRule =
        "invisible characters: Unicode format characters such as the zero-width spaces and joiners U+200B-U+200F, the word joiners U+2060-U+2064, " +
        "the byte order mark U+FEFF and the soft hyphen U+00AD, the Hangul fillers and variation selectors";

    /// <summary>
    /// A character that shows nothing, so two ids that differ by it look the same in every table, invoice and log: a
    /// Unicode format character (category Cf: zero-width space, non-joiner and joiner, the marks U+200E-U+200F, word
    /// joiner, invisible operators U+2061-U+2064, byte order mark, soft hyphen, bidirectional controls), the combining
    /// grapheme joiner, the Hangul fillers and the variation selectors.
    /// </summary>
    internal static bool IsInvisible(char c) =>
        char.GetUnicodeCategory(c) == System.Globalization.UnicodeCategory.Format
        || c is '\u034F' or '\u115F' or '\u1160' or '\u3164' or '\uFFA0' or (>= '\u180B' and <= '\u180F') or (>= '\uFE00' and <= '\uFE0F');

    /// <summary>The first invisible character of <paramref name="id"/> (<see cref="IsInvisible"/>), or null.</summary>
    internal static char? FirstInvisible(string? id)
    {
        foreach (var c in id ?? string.Empty)
        {
            if (IsInvisible(c))
            {
                return c;
            }
        }

        return null;
    }

    /// <summary>The 400 for a model id holding an invisible character, naming <paramref name="param"/> and the rule.</summary>
    internal static OpenAIException InvisibleInModelId(string id, char invisible, string param) => OpenAIException.BadRequest(
        $"{param} must not contain {InvisibleRule}; got U+{(int)invisible:X4} in '{Shorten(id)}'.", param, "invalid_value");

    /// <summary>Most characters of the <c>user</c> field (an end-user id); a bound of our own, OpenAI documents none.</summary>
    public const int MaxUserLength = 256;

    /// <summary>
    /// The <c>user</c> field is an end-user id: Responses echo it in every response object and keep it with a stored
    /// one, and the relay forwards it to engines; unbounded, it was a way to store megabytes outside any size rule.
    /// </summary>
    public static void RequireUser(string? user)
    {
        if (user is { Length: > MaxUserLength })
        {
            throw OpenAIException.BadRequest($"user is an end-user id of at most {MaxUserLength} characters; got {user.Length}.", "user", "string_above_max_length");
        }
    }

    /// <summary>The most characters of a <c>safety_identifier</c>, as OpenAI allows.</summary>
    public const int MaxSafetyIdentifierLength = 64;

    /// <summary>
    /// <c>safety_identifier</c> and <c>prompt_cache_key</c> are ids too: Responses echo them in every response object
    /// and keep them with a stored one, so they are bounded (a 400 naming the field beyond it): <c>safety_identifier</c>
    /// by OpenAI's 64 characters, <c>prompt_cache_key</c> by <c>user</c>'s 256.
    /// </summary>
    public static void RequireIdentifier(string? value, string param)
    {
        if (param == "safety_identifier" && value is { Length: > MaxSafetyIdentifierLength })
        {
            // OpenAI's bound and words: safety_identifier is at most 64 characters (maxLength 64 in its API reference).
            throw OpenAIException.BadRequest(
                $"Invalid 'safety_identifier': string too long. Expected a string with maximum length {MaxSafetyIdentifierLength}, but got a string with length {value.Length} instead.",
                param, "string_above_max_length");
        }

        if (value is { Length: > MaxUserLength })
        {
            throw OpenAIException.BadRequest($"{param} is an id of at most {MaxUserLength} characters; got {value.Length}.", param, "string_above_max_length");
        }
    }

    private static readonly HashSet<string> ServiceTiers = new(StringComparer.Ordinal) { "auto", "default", "flex", "scale", "priority" };

    /// <summary>
    /// <c>service_tier</c> is one of OpenAI's tiers (as OpenAI refuses any other); this server has one tier, so a valid
    /// value changes nothing.
    /// </summary>
    public static void RequireServiceTier(string? tier)
    {
        if (tier is not null && !ServiceTiers.Contains(tier))
        {
            throw OpenAIException.BadRequest(
                $"service_tier '{Shorten(tier)}' is not one of auto, default, flex, scale, priority.", "service_tier", "invalid_value");
        }
    }

    /// <summary>
    /// <c>prompt_cache_retention</c> is one of OpenAI's values (<c>in-memory</c>, <c>24h</c>); ignored here (the prefix
    /// cache keeps what it can), but any other value was served as if valid, unlike <c>service_tier</c>.
    /// </summary>
    public static void RequirePromptCacheRetention(string? retention)
    {
        if (retention is not null and not ("in-memory" or "24h"))
        {
            throw OpenAIException.BadRequest(
                $"prompt_cache_retention '{Shorten(retention)}' is not one of in-memory, 24h.", "prompt_cache_retention", "invalid_value");
        }
    }

    /// <summary>Validates the shared sampling fields against OpenAI's ranges and the server's limits.</summary>
    /// <param name="minMaxTokens">The least output limit: 1, or 0 where the prompt alone is worth evaluating (completions' <c>echo</c>).</param>
    public static (SamplingOptions Sampling, int? MaxTokens, IReadOnlyList<string> Stop, int N) ValidateSampling(
        SamplingRequest request, int? maxTokens, string maxTokensParam, LimitsOptions limits, int minMaxTokens = 1)
    {
        RequireUser(request.User);
        Range(request.Temperature, 0, 2, "temperature");
        // top_p 0 is OpenAI's smallest nucleus, the most likely token alone: greedy (SamplingOptions.IsGreedy).
        Range(request.TopP, 0, 1, "top_p");

        Range(request.MinP, 0, 1, "min_p");
        Range(request.PresencePenalty, -2, 2, "presence_penalty");
        Range(request.FrequencyPenalty, -2, 2, "frequency_penalty");
        if (request.TopK is < 0)
        {
            throw OpenAIException.BadRequest("top_k must be 0 (disabled) or positive.", "top_k", "invalid_value");
        }

        if (maxTokens < minMaxTokens)
        {
            throw OpenAIException.BadRequest(
                maxTokens == 0 && minMaxTokens == 1 && request is CompletionRequest
                    ? $"{maxTokensParam} must be at least 1; 0 is allowed only with echo (the prompt's log-probabilities alone)."
                    : $"{maxTokensParam} must be at least {minMaxTokens}.",
                maxTokensParam, "invalid_value");
        }

        if (limits.MaxOutputTokens > 0 && maxTokens > limits.MaxOutputTokens)
        {
            throw OpenAIException.BadRequest(
                $"{maxTokensParam} is {maxTokens}, above this server's limit of {limits.MaxOutputTokens}.", maxTokensParam, "invalid_value");
        }

        var n = request.N ?? 1;
        if (n < 1 || n > limits.MaxChoices)
        {
            throw OpenAIException.BadRequest($"n must be between 1 and {limits.MaxChoices}.", "n", "invalid_value");
        }

        var stop = request.Stop ?? [];
        if (stop.Count > limits.MaxStopSequences)
        {
            throw OpenAIException.BadRequest($"stop may have at most {limits.MaxStopSequences} sequences.", "stop", "invalid_value");
        }

        if (stop.Any(s => s.Length == 0))
        {
            throw OpenAIException.BadRequest("stop sequences must not be empty.", "stop", "invalid_value");
        }

        if (request.CacheSalt is { Length: 0 or > MaxCacheSaltLength })
        {
            throw OpenAIException.BadRequest($"cache_salt must be a non-empty string of at most {MaxCacheSaltLength} characters.", "cache_salt", "invalid_value");
        }

        if (request.StreamOptions is not null && request.Stream != true)
        {
            throw OpenAIException.BadRequest("stream_options is only allowed when stream is true.", "stream_options", "invalid_value");
        }

        var sampling = new SamplingOptions
        {
            Temperature = request.Temperature ?? 1f,
            TopP = request.TopP ?? 1f,
            TopK = request.TopK ?? 0,
            MinP = request.MinP ?? 0f,
            PresencePenalty = request.PresencePenalty ?? 0f,
            FrequencyPenalty = request.FrequencyPenalty ?? 0f,
            Seed = request.Seed,
            LogitBias = ReadLogitBias(request.LogitBias),
        };

        // Without an explicit limit the server cap applies, still bounded by the context at submission.
        var resolvedMax = maxTokens ?? (limits.MaxOutputTokens > 0 ? limits.MaxOutputTokens : null);
        return (sampling, resolvedMax, stop, n);
    }

    /// <summary>Longest <c>cache_salt</c>: a salt needs no more (vLLM suggests 43 characters), and it is kept per cached prompt.</summary>
    public const int MaxCacheSaltLength = 256;

    /// <summary>Most entries of <c>logit_bias</c>, OpenAI's own cap: each one is work on every sampled token.</summary>
    public const int MaxLogitBiasEntries = 300;

    /// <summary>
    /// OpenAI's <c>logit_bias</c>: an object of at most <see cref="MaxLogitBiasEntries"/> entries whose keys are token
    /// ids written as decimal strings and whose values are numbers from -100 to 100. Whether each id is in the
    /// vocabulary is checked where the model is known.
    /// </summary>
    private static IReadOnlyDictionary<int, float> ReadLogitBias(JsonElement? value)
    {
        if (value is not { } bias || bias.ValueKind == JsonValueKind.Null)
        {
            // Shared, not a new dictionary per request: most requests send none.
            return System.Collections.Frozen.FrozenDictionary<int, float>.Empty;
        }

        if (bias.ValueKind != JsonValueKind.Object)
        {
            throw OpenAIException.BadRequest("logit_bias must be an object that maps token ids to biases from -100 to 100.", "logit_bias", "invalid_type");
        }

        var biases = new Dictionary<int, float>();
        foreach (var entry in bias.EnumerateObject())
        {
            if (biases.Count == MaxLogitBiasEntries)
            {
                // Unbounded, a body's worth of entries (about 5,000 in 64 KiB) was checked and biased on every token.
                throw OpenAIException.BadRequest(
                    $"Invalid 'logit_bias': too many tokens. Expected at most {MaxLogitBiasEntries}, but got {bias.EnumerateObject().Count()}.", "logit_bias", "invalid_value");
            }

            if (!int.TryParse(entry.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var token))
            {
                throw OpenAIException.BadRequest(
                    $"logit_bias has the key '{Shorten(entry.Name)}'; each key must be a token id (a non-negative integer written as a string).", "logit_bias", "invalid_value");
            }

            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetDouble(out var number) || number is < -100 or > 100)
            {
                throw OpenAIException.BadRequest(
                    $"logit_bias['{entry.Name}'] must be a number between -100 and 100.", "logit_bias", "invalid_value");
            }

            if (!biases.TryAdd(token, (float)number))
            {
                throw OpenAIException.BadRequest($"logit_bias names token {token} more than once.", "logit_bias", "invalid_value");
            }
        }

        return biases;
    }

    /// <summary>Clamps a default (not client-chosen) output limit to what the context leaves.</summary>
    public static int? ClampDefault(int? requested, int? resolved, int promptTokens, int contextLength) =>
        requested is null && resolved is { } max ? Math.Max(1, Math.Min(max, contextLength - promptTokens)) : resolved;

    private static void Range(float? value, float min, float max, string param)
    {
        if (value is { } v && (float.IsNaN(v) || v < min || v > max))
        {
            throw OpenAIException.BadRequest($"{param} must be between {min} and {max}; got {v}.", param, "invalid_value");
        }
    }

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }
}
