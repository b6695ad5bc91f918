using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// temperature and top_p at the ends of OpenAI's ranges, alike on chat, completions and responses: 0 and 2, 0 and 1
/// are accepted; top_p 0 (OpenAI's smallest nucleus, which it accepts) is greedy. It was a 400 on all three.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class SamplingEdgeValuesTests(ServerFixture server)
{
    private static readonly string[] Endpoints = ["/v1/chat/completions", "/v1/completions", "/v1/responses"];

    // Responses has no seed (nor has OpenAI's).
    private static string Body(string path, string sampling) => path switch
    {
        "/v1/chat/completions" => $$"""{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":24,"seed":11,{{sampling}}}""",
        "/v1/completions" => $$"""{"model":"stories","prompt":"Once upon a time","max_tokens":24,"seed":11,{{sampling}}}""",
        _ => $$"""{"model":"stories","input":"Once upon a time","max_output_tokens":24,{{sampling}}}""",
    };

    private static string TextOf(string path, JsonElement body) => path switch
    {
        "/v1/chat/completions" => body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!,
        "/v1/completions" => body.GetProperty("choices")[0].GetProperty("text").GetString()!,
        _ => body.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString()!,
    };

    [Fact]
    public async Task TopPZero_IsGreedy_OnEveryEndpoint()
    {
        foreach (var path in Endpoints)
        {
            var (greedyStatus, greedy, _) = await server.PostJsonAsync(path, Body(path, "\"temperature\":0"));
            var (status, nucleus, _) = await server.PostJsonAsync(path, Body(path, "\"temperature\":1.5,\"top_p\":0"));

            Assert.True(greedyStatus == 200 && status == 200, $"{path}: {greedyStatus} {status} {nucleus}");
            Assert.Equal(TextOf(path, greedy), TextOf(path, nucleus));
        }
    }

    [Theory]
    [InlineData("\"temperature\":0,\"top_p\":1")]
    [InlineData("\"temperature\":2,\"top_p\":1")]
    [InlineData("\"temperature\":2,\"top_p\":0")]
    [InlineData("\"temperature\":0,\"top_p\":0")]
    public async Task RangeEnds_AreAccepted_OnEveryEndpoint(string sampling)
    {
        foreach (var path in Endpoints)
        {
            var (status, body, _) = await server.PostJsonAsync(path, Body(path, sampling));
            Assert.True(status == 200, $"{path} {sampling}: {status} {body}");
        }
    }

    [Theory]
    [InlineData("\"temperature\":2.01", "temperature")]
    [InlineData("\"temperature\":-0.01", "temperature")]
    [InlineData("\"top_p\":1.01", "top_p")]
    [InlineData("\"top_p\":-0.01", "top_p")]
    public async Task PastTheRange_Is400NamingTheField_OnEveryEndpoint(string sampling, string field)
    {
        foreach (var path in Endpoints)
        {
            var (status, body, _) = await server.PostJsonAsync(path, Body(path, sampling));
            Assert.True(status == 400, $"{path} {sampling}: {status} {body}");
            Assert.Equal(field, body.GetProperty("error").GetProperty("param").GetString());
        }
    }
}
