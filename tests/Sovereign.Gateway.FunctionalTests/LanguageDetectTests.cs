using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary><c>POST /v1/language/detect</c> through HTTP, and the language settings checked at start.</summary>
[Collection(ServerCollection.Name)]
public sealed class LanguageDetectTests(ServerFixture server)
{
    [Fact]
    public async Task Detect_OneText_LanguageScriptConfidenceAndRunnerUp()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/language/detect", """{"input":"Hoxe imos mercar pan e queixo na tenda do barrio."}""");

        Assert.Equal(200, status);
        Assert.Equal("list", body.GetProperty("object").GetString());
        var item = body.GetProperty("data").EnumerateArray().Single();
        Assert.Equal("language.detection", item.GetProperty("object").GetString());
        Assert.Equal(0, item.GetProperty("index").GetInt32());
        Assert.Equal("gl", item.GetProperty("language").GetString());
        Assert.Equal("Latn", item.GetProperty("script").GetString());
        var confidence = item.GetProperty("confidence").GetDouble();
        Assert.InRange(confidence, 0.4, 1.0);
        var runnerUp = item.GetProperty("runner_up");
        Assert.NotEqual("gl", runnerUp.GetProperty("language").GetString());
        Assert.InRange(runnerUp.GetProperty("confidence").GetDouble(), 0, confidence);
    }

    [Fact]
    public async Task Detect_Batch_OneAnswerPerTextInOrder()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/language/detect", JsonSerializer.Serialize(new
        {
            input = new[] { "ภาษาไทยเป็นภาษาราชการของประเทศไทย", "Следеће недеље идемо возом у Београд.", "ok", "Saya nak beli kereta baharu tetapi duit tak cukup lagi." },
        }));

        Assert.Equal(200, status);
        var data = body.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2, 3], data.Select(d => d.GetProperty("index").GetInt32()));
        Assert.Equal(["th", "sr", "und", "ms"], data.Select(d => d.GetProperty("language").GetString()));
        Assert.Equal(["Thai", "Cyrl", "Latn", "Latn"], data.Select(d => d.GetProperty("script").GetString()));
        Assert.Equal("script", data[0].GetProperty("method").GetString());
    }

    [Theory]
    [InlineData("{}", "input", "missing_required_parameter")]
    [InlineData("""{"input":null}""", "input", "missing_required_parameter")]
    [InlineData("""{"input":42}""", "input", "invalid_type")]
    [InlineData("""{"input":[]}""", "input", "invalid_value")]
    [InlineData("""{"input":["ok", 7]}""", "input[1]", "invalid_type")]
    [InlineData("""{"input":"\ud800"}""", "input", "invalid_encoding")]
    [InlineData("""{"input":"unterminated""", null, null)]
    public async Task Detect_BadInput_OpenAIError400(string json, string? param, string? code)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/language/detect", json);

        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        if (param is not null)
        {
            Assert.Equal(param, error.GetProperty("param").GetString());
            Assert.Equal(code, error.GetProperty("code").GetString());
        }
    }

    [Fact]
    public async Task Detect_WrongKey_401()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server.BaseAddress, "/v1/language/detect"))
        {
            Content = new StringContent("""{"input":"hello there my friend"}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-sov-not-a-real-key");
        using var http = new HttpClient();

        using var response = await http.SendAsync(request);

        Assert.Equal(401, (int)response.StatusCode);
    }

    [Theory]
    [InlineData("""["en", "xx"]""", "Sovereign:Languages:Languages:1 'xx' is not a language")]
    [InlineData("""["fil", "en", "tl"]""", "Sovereign:Languages:Languages:2 'tl' repeats Sovereign:Languages:Languages:0")]
    [InlineData("""["en", ""]""", "Sovereign:Languages:Languages:1 is empty")]
    public async Task Serve_BadLanguageSetting_StopsTheStartNamingIt(string languages, string message) =>
        Assert.Contains(message, await StartFailure.WithSovereignSectionAsync("""{"Languages":{"Languages":""" + languages + "}}"), StringComparison.Ordinal);
}
