using System.Globalization;
using OpenAI.Chat;

namespace Sovereign.Gateway.FunctionalTests.OpenAI;

/// <summary>
/// OpenAI sends <c>openai-version: 2020-10-01</c> and <c>openai-processing-ms</c> on every answer, errors and streams
/// included; clients read them (openai-python 0.x's <c>response_ms</c>, .NET clients that call
/// <c>GetValues("Openai-Processing-Ms")</c>, which throws when the header is missing). Neither was sent.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class OpenAIHeadersTests(ServerFixture server)
{
    [Theory]
    [InlineData("POST", "/v1/chat/completions", """{"model":"stories","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}""", 200)]
    [InlineData("POST", "/v1/chat/completions", """{"model":"stories","max_tokens":2,"stream":true,"messages":[{"role":"user","content":"hi"}]}""", 200)]
    [InlineData("POST", "/v1/responses", """{"model":"stories","max_output_tokens":16,"input":"hi","stream":true}""", 200)]
    [InlineData("POST", "/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}""", 400)]
    [InlineData("POST", "/v1/chat/completions", """{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}""", 404)]
    [InlineData("GET", "/v1/models", null, 200)]
    [InlineData("DELETE", "/v1/models/stories", null, 405)]
    [InlineData("GET", "/v1/no-such-endpoint", null, 404)]
    public async Task EveryV1Answer_CarriesOpenAIsVersionAndProcessingMs(string method, string path, string? json, int status)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (json is not null)
        {
            request.Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        }

        using var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("2020-10-01", Assert.Single(response.Headers.GetValues("openai-version")));
        var milliseconds = long.Parse(Assert.Single(response.Headers.GetValues("openai-processing-ms")), NumberStyles.None, CultureInfo.InvariantCulture);
        Assert.InRange(milliseconds, 0, 120_000);
        await response.Content.ReadAsStringAsync();
    }

    /// <summary>
    /// OpenAI streams as <c>text/event-stream; charset=utf-8</c>; the gateway said <c>text/event-stream</c> alone, so a
    /// client that decodes by the declared charset (or compares the header whole) read our streams otherwise than OpenAI's.
    /// </summary>
    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"stories","max_tokens":2,"stream":true,"messages":[{"role":"user","content":"hi"}]}""", "data: [DONE]")]
    [InlineData("/v1/completions", """{"model":"stories","max_tokens":2,"stream":true,"prompt":"hi"}""", "data: [DONE]")]
    [InlineData("/v1/responses", """{"model":"stories","max_output_tokens":16,"input":"hi","stream":true}""", "event: response.incomplete")]
    public async Task Streams_AreTextEventStreamInUtf8_AsOpenAIsAre(string path, string json, string last)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json") };

        using var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("text/event-stream; charset=utf-8", response.Content.Headers.GetValues("Content-Type").Single());
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith(last, events[^1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task OfficialDotNetSdk_SeesThem_OnTheRawResponse()
    {
        var result = await server.OpenAI.GetChatClient(ServerFixture.Stories).CompleteChatAsync(
            [new UserChatMessage("hi")], new ChatCompletionOptions { MaxOutputTokenCount = 2 });

        var headers = result.GetRawResponse().Headers;
        Assert.True(headers.TryGetValue("openai-version", out var version) && version == "2020-10-01", version);
        Assert.True(headers.TryGetValue("openai-processing-ms", out var ms) && long.TryParse(ms, NumberStyles.None, CultureInfo.InvariantCulture, out _), ms);
    }

    [Fact]
    public async Task NotOnAnswersOutsideV1()
    {
        using var response = await server.Http.GetAsync("/health");

        Assert.False(response.Headers.Contains("openai-version"));
        Assert.False(response.Headers.Contains("openai-processing-ms"));
    }
}
