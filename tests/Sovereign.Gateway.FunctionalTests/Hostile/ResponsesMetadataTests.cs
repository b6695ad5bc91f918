using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// <c>metadata</c> on /v1/responses keeps OpenAI's bounds (16 pairs, keys up to 64 characters, values up to 512): it is
/// echoed in every response and kept with a stored one. A 5,000-character value, or thousands of pairs, were accepted
/// and echoed back.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ResponsesMetadataTests(ConsoleFixture fixture)
{
    public static TheoryData<string, string, string> Refused => new()
    {
        { JsonSerializer.Serialize(Enumerable.Range(0, 17).ToDictionary(i => $"k{i}", i => "v")), "metadata", "object_above_max_properties" },
        { JsonSerializer.Serialize(new Dictionary<string, string> { [new string('k', 65)] = "v" }), "metadata", "string_above_max_length" },
        { JsonSerializer.Serialize(new Dictionary<string, string> { ["note"] = new string('v', 513) }), "metadata.note", "string_above_max_length" },
        { """{"note":null}""", "metadata.note", "invalid_type" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public async Task MetadataBeyondOpenAIsBounds_Is400(string metadata, string param, string code)
    {
        using var response = await PostAsync(metadata);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
    }

    /// <summary>Chat completions take the same <c>metadata</c> with the same bounds (OpenAI's, for stored completions).</summary>
    [Theory]
    [MemberData(nameof(Refused))]
    public async Task MetadataBeyondOpenAIsBounds_OnChat_Is400(string metadata, string param, string code)
    {
        var body = new JsonObject
        {
            ["model"] = ConsoleFixture.Model,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Once upon a time" }),
            ["max_tokens"] = 4,
            ["metadata"] = JsonNode.Parse(metadata),
        };
        using var response = await PostAsync("/v1/chat/completions", body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task MetadataAtOpenAIsBounds_IsEchoed()
    {
        var metadata = Enumerable.Range(0, 16).ToDictionary(i => $"{i:D2}" + new string('k', 62), i => new string('v', 512));
        using var response = await PostAsync(JsonSerializer.Serialize(metadata));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 200, text);
        Assert.Equal(16, JsonDocument.Parse(text).RootElement.GetProperty("metadata").EnumerateObject().Count());
    }

    private Task<HttpResponseMessage> PostAsync(string metadata) =>
        PostAsync("/v1/responses", new JsonObject { ["model"] = ConsoleFixture.Model, ["input"] = "Once upon a time", ["max_output_tokens"] = 16, ["metadata"] = JsonNode.Parse(metadata) });

    private async Task<HttpResponseMessage> PostAsync(string path, JsonObject body)
    {
        using var client = new HttpClient { BaseAddress = fixture.Address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", fixture.HospitalKey);
        return await client.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
    }
}
