using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// What real clients and broken ones send, answered the OpenAI way. Found: a body that starts with a UTF-8 byte order
/// mark (PowerShell, some .NET clients) was a 400; Kestrel's own rejections (431, 400 for a malformed request line,
/// 414, 505) came without a body; TRACE or GET on a /v1 POST endpoint answered 404 instead of 405 with Allow.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class WireCompatibilityTests(ServerFixture server)
{
    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":1}""")]
    [InlineData("/v1/completions", """{"model":"stories","prompt":"Hi","max_tokens":1}""")]
    [InlineData("/v1/responses", """{"model":"stories","input":"Hi","max_output_tokens":16}""")]
    [InlineData("/v1/embeddings", """{"model":"stories-embed","input":"Hi"}""")]
    [InlineData("/v1/language/detect", """{"input":"Bonjour tout le monde"}""")]
    [InlineData("/tokenize", """{"model":"stories","content":"Hi"}""")]
    public async Task ByteOrderMark_BeforeTheJson_IsServed(string path, string json)
    {
        using var content = new ByteArrayContent([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(json)]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        using var response = await server.Http.PostAsync(path, content);

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
    }

    [Fact]
    public async Task ByteOrderMark_Alone_IsTheEmptyBody400()
    {
        using var content = new ByteArrayContent([0xEF, 0xBB, 0xBF]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        using var response = await server.Http.PostAsync("/v1/chat/completions", content);

        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("empty", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    public static TheoryData<string, int, string> KestrelRejections => new()
    {
        { "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + new string('a', 40_000) + "\r\n\r\n", 431, "request_headers_too_large" },
        { "GET /v1/models HTTP/1.1 trailing\r\nHost: x\r\n\r\n", 400, "malformed_request" },
        { "GET /v1/models HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400, "malformed_request" },
        { "GET /v1/models?" + new string('q', 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, "url_too_long" },
        { "GET /v1/models HTTP/1.2\r\nHost: x\r\n\r\n", 505, "http_version_not_supported" },
        { "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}", 400, "malformed_request" },
    };

    [Theory]
    [MemberData(nameof(KestrelRejections))]
    public async Task KestrelsOwnRejection_KeepsItsStatus_AndGetsAnOpenAIErrorBody(string request, int status, string code)
    {
        var response = await RawHttp.SendAsync(server.BaseAddress, Encoding.ASCII.GetBytes(request));

        Assert.Equal(status, response.Status);
        Assert.Equal("application/json; charset=utf-8", response.Headers["Content-Type"]);
        Assert.Equal(response.Body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), response.Headers["Content-Length"]);
        var error = JsonDocument.Parse(response.Body).RootElement.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));

        // OpenAI's headers, as on every answer of the application: they were missing here.
        Assert.Equal("2020-10-01", response.Headers["openai-version"]);
        Assert.Equal("0", response.Headers["openai-processing-ms"]);
    }

    [Fact]
    public async Task KestrelRejection_AfterAnAnswerOnTheSameConnection_LeavesThatAnswerWhole()
    {
        // Two pipelined requests: the first is answered by the application, the second refused by Kestrel.
        var request = "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1 trailing\r\nHost: x\r\n\r\n";

        var text = Encoding.UTF8.GetString(await RawHttp.ExchangeAsync(server.BaseAddress, Encoding.ASCII.GetBytes(request)));

        Assert.StartsWith("HTTP/1.1 200 OK\r\n", text);
        var second = text.IndexOf("HTTP/1.1 400 Bad Request\r\n", StringComparison.Ordinal);
        Assert.True(second > 0, text);
        Assert.Contains("""{"status":"ok"}""", text[..second]);
        Assert.EndsWith("0\r\n\r\n", text[..second]);
        var refusal = text[second..];
        var body = refusal[(refusal.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..];
        Assert.Equal("malformed_request", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("TRACE", "/v1/chat/completions", "POST")]
    [InlineData("GET", "/v1/chat/completions", "POST")]
    [InlineData("PUT", "/v1/embeddings", "POST")]
    [InlineData("DELETE", "/v1/models", "GET, HEAD")]
    [InlineData("TRACE", "/v1/models/stories", "GET, HEAD")]
    [InlineData("POST", "/v1/responses/resp_1", "DELETE, GET, HEAD")]
    [InlineData("TRACE", "/tokenize", "POST")]
    public async Task KnownRoute_WithAMethodItDoesNotTake_Is405WithAllow(string method, string path, string allow)
    {
        var response = await RawHttp.SendAsync(server.BaseAddress, RawHttp.Request(method, path, null));

        Assert.Equal(405, response.Status);
        Assert.Equal(allow, response.Headers["Allow"]);
        var error = JsonDocument.Parse(response.Body).RootElement.GetProperty("error");
        Assert.Equal("method_not_allowed", error.GetProperty("code").GetString());
    }

    /// <summary>
    /// The console's pages answer a method they do not take as the API's routes do: 405 with Allow (its own page, in
    /// HTML). Its fallback took every method, so OPTIONS /console was a 404 "no console page".
    /// </summary>
    [Theory]
    [InlineData("OPTIONS", "/console", "GET, HEAD")]
    [InlineData("DELETE", "/console/tenants", "GET, HEAD")]
    [InlineData("GET", "/console/login", "POST")]
    public async Task ConsolePage_WithAMethodItDoesNotTake_Is405WithAllow(string method, string path, string allow)
    {
        var response = await RawHttp.SendAsync(server.BaseAddress, RawHttp.Request(method, path, null));

        Assert.Equal(405, response.Status);
        Assert.Equal(allow, response.Headers["Allow"]);
        Assert.StartsWith("text/html", response.Headers["Content-Type"], StringComparison.Ordinal);

        var unknown = await RawHttp.SendAsync(server.BaseAddress, RawHttp.Request(method, "/console/no-such-page", null));
        Assert.Equal(404, unknown.Status);
    }

    /// <summary>
    /// HEAD is answered wherever GET is (RFC 9110): the same status and headers, no body. GET /v1/models and the other
    /// GET endpoints answered HEAD with a 405; only /health and /ready took it.
    /// </summary>
    [Theory]
    [InlineData("/health", 200)]
    [InlineData("/ready", 200)]
    [InlineData("/v1/models", 200)]
    [InlineData("/v1/models/stories", 200)]
    [InlineData("/v1/models/no-such-model", 404)]
    [InlineData("/v1/models?bogus=1", 400)]
    [InlineData("/admin/v1/tenants", 200)]
    [InlineData("/admin/v1/tenants/no-such-tenant", 404)]
    [InlineData("/console", 200)]
    public async Task Head_AnswersAsGetDoes_WithoutTheBody(string path, int status)
    {
        using var client = path.StartsWith("/admin", StringComparison.Ordinal) ? server.AdminClient() : new HttpClient { BaseAddress = server.BaseAddress };
        using var get = await client.GetAsync(path);
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));

        Assert.Equal(status, (int)get.StatusCode);
        Assert.True((int)head.StatusCode == status, $"HEAD {path}: {(int)head.StatusCode}");
        Assert.Equal(get.Content.Headers.ContentType?.ToString(), head.Content.Headers.ContentType?.ToString());
        Assert.NotEmpty(await get.Content.ReadAsByteArrayAsync());
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Head_OnAPostEndpoint_Is405WithAllow()
    {
        using var response = await server.Http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/v1/chat/completions"));

        Assert.Equal(405, (int)response.StatusCode);
        Assert.Equal("POST", string.Join(", ", response.Content.Headers.Allow));
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task UnknownRoute_IsStill404()
    {
        var response = await RawHttp.SendAsync(server.BaseAddress, RawHttp.Request("TRACE", "/v1/no-such-thing", null));

        Assert.Equal(404, response.Status);
        Assert.Equal("unknown_url", JsonDocument.Parse(response.Body).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    /// <summary>
    /// <c>user</c> is an end-user id: Responses echo it in every response object and keep it with a stored one, and
    /// relays forward it. It was unbounded (a megabyte came back in the answer).
    /// </summary>
    [Theory]
    [InlineData("/v1/responses", """{"model":"stories","input":"Hi","max_output_tokens":16,"user":"USER"}""")]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":1,"user":"USER"}""")]
    [InlineData("/v1/completions", """{"model":"stories","prompt":"Hi","max_tokens":1,"user":"USER"}""")]
    [InlineData("/v1/embeddings", """{"model":"stories-embed","input":"Hi","user":"USER"}""")]
    public async Task UserLongerThan256Characters_Is400(string path, string json)
    {
        var (status, body, _) = await server.PostJsonAsync(path, json.Replace("USER", new string('u', 257), StringComparison.Ordinal));

        Assert.Equal(400, status);
        Assert.Equal("user", body.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("string_above_max_length", body.GetProperty("error").GetProperty("code").GetString());

        var (okStatus, _, _) = await server.PostJsonAsync(path, json.Replace("USER", new string('u', 256), StringComparison.Ordinal));
        Assert.Equal(200, okStatus);
    }

    [Theory]
    [InlineData("a name with spaces")]
    [InlineData("\u202Eevil")]
    [InlineData("nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn")]
    public async Task ResponsesFormatName_OutsideOpenAIsRule_Is400(string name)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/responses",
            """{"model":"stories","input":"Hi","max_output_tokens":16,"text":{"format":{"type":"json_schema","name":"NAME","schema":{"type":"object"}}}}""".Replace("NAME", name, StringComparison.Ordinal));

        Assert.Equal(400, status);
        Assert.Equal("text.format.name", body.GetProperty("error").GetProperty("param").GetString());
    }

    /// <summary>
    /// A structured-output format's <c>description</c> is at most 1,024 characters (OpenAI's bound for a function's
    /// description): Responses echo <c>text.format</c> in every response object and keep it with a stored one, and it
    /// was unbounded (a 5,000-character description was served and echoed). Chat's <c>json_schema.name</c> follows
    /// OpenAI's rule when given (it was not checked at all).
    /// </summary>
    [Theory]
    [InlineData("/v1/responses", """{"model":"stories","input":"Hi","max_output_tokens":16,"text":{"format":{"type":"json_schema","name":"n","description":"DESC","schema":{"type":"object"}}}}""", "text.format.description")]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":1,"response_format":{"type":"json_schema","json_schema":{"name":"n","description":"DESC","schema":{"type":"object"}}}}""", "response_format.json_schema.description")]
    [InlineData("/v1/completions", """{"model":"stories","prompt":"Hi","max_tokens":1,"response_format":{"type":"json_schema","json_schema":{"name":"n","description":"DESC","schema":{"type":"object"}}}}""", "response_format.json_schema.description")]
    public async Task FormatDescription_Over1024Characters_Is400(string path, string json, string param)
    {
        var (status, body, _) = await server.PostJsonAsync(path, json.Replace("DESC", new string('d', 1025), StringComparison.Ordinal));

        Assert.True(status == 400, $"{status} {body}");
        Assert.Equal(param, body.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("string_above_max_length", body.GetProperty("error").GetProperty("code").GetString());

        var (okStatus, ok, _) = await server.PostJsonAsync(path, json.Replace("DESC", new string('d', 1024), StringComparison.Ordinal));
        Assert.True(okStatus == 200, ok.ToString());
    }

    [Theory]
    [InlineData("a name with spaces")]
    [InlineData("")]
    [InlineData("nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn")]
    public async Task ChatFormatName_OutsideOpenAIsRule_Is400(string name)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions",
            """{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":1,"response_format":{"type":"json_schema","json_schema":{"name":"NAME","schema":{"type":"object"}}}}""".Replace("NAME", name, StringComparison.Ordinal));

        Assert.True(status == 400, $"{status} {body}");
        Assert.Equal("response_format.json_schema.name", body.GetProperty("error").GetProperty("param").GetString());
    }

    /// <summary>
    /// An error message echoes a client's value by the one rule (<c>RequestReader.Shorten</c>: 64 characters, control
    /// and bidirectional characters as '?'). A 5,000-character model name came back whole in the 404, as did roles,
    /// part types, item types and tool names.
    /// </summary>
    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"LONG","messages":[{"role":"user","content":"x"}],"max_tokens":1}""")]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"LONG","content":"x"}],"max_tokens":1}""")]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":[{"type":"LONG"}]}],"max_tokens":1}""")]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"tool","tool_call_id":"LONG","content":"x"}],"max_tokens":1}""")]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"x"}],"max_tokens":1,"tools":[{"type":"LONG"}]}""")]
    [InlineData("/v1/responses", """{"model":"stories","input":[{"type":"LONG"}],"max_output_tokens":16}""")]
    [InlineData("/v1/responses", """{"model":"stories","input":[{"role":"LONG","content":"x"}],"max_output_tokens":16}""")]
    // These came back whole: tool_choice's value and function name, response_format's and text.format's type, a hosted
    // tool's type, an unanswered call_id.
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"x"}],"max_tokens":1,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"LONG"}""")]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"x"}],"max_tokens":1,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"LONG"}}}""")]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"x"}],"max_tokens":1,"response_format":{"type":"LONG"}}""")]
    [InlineData("/v1/completions", """{"model":"stories","prompt":"x","max_tokens":1,"response_format":{"type":"LONG"}}""")]
    [InlineData("/v1/responses", """{"model":"stories","input":"x","max_output_tokens":16,"tools":[{"type":"LONG"}]}""")]
    [InlineData("/v1/responses", """{"model":"stories","input":"x","max_output_tokens":16,"tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"LONG"}}""")]
    [InlineData("/v1/responses", """{"model":"stories","input":"x","max_output_tokens":16,"text":{"format":{"type":"LONG"}}}""")]
    [InlineData("/v1/responses", """{"model":"stories","input":[{"type":"function_call_output","call_id":"LONG","output":"1"}],"max_output_tokens":16}""")]
    public async Task EchoedValues_AreShortened(string path, string json)
    {
        var (status, body, _) = await server.PostJsonAsync(path, json.Replace("LONG", "\u202E" + new string('v', 5000), StringComparison.Ordinal));

        Assert.InRange(status, 400, 404);
        var message = body.GetProperty("error").GetProperty("message").GetString()!;
        Assert.True(message.Length < 400, message);
        Assert.False(message.Contains('\u202E', StringComparison.Ordinal), message);
        Assert.Contains("?vvv", message);
    }
}
