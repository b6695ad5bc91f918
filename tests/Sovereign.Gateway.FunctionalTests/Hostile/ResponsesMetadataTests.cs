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

    /// <summary>
    /// LiteLLM-style tags (<c>"metadata": {"tags": [...]}</c>) and other values that are not strings: a 400 that names
    /// the key, says what OpenAI's metadata takes and what was sent, as OpenAI words it (<c>Invalid type for
    /// 'metadata.tags': expected a string, but got an array instead.</c>), param the key. It said "Invalid type or value
    /// for 'metadata.tags'." on both endpoints.
    /// </summary>
    [Theory]
    [InlineData("/v1/chat/completions", """{"tags":["prod","team-a"]}""", "metadata.tags", "Invalid type for 'metadata.tags': expected a string, but got an array instead.")]
    [InlineData("/v1/responses", """{"tags":["prod","team-a"]}""", "metadata.tags", "Invalid type for 'metadata.tags': expected a string, but got an array instead.")]
    [InlineData("/v1/chat/completions", """{"user":{"id":1}}""", "metadata.user", "Invalid type for 'metadata.user': expected a string, but got an object instead.")]
    [InlineData("/v1/chat/completions", """{"retries":3}""", "metadata.retries", "Invalid type for 'metadata.retries': expected a string, but got a number instead.")]
    [InlineData("/v1/chat/completions", """["prod"]""", "metadata", "Invalid type for 'metadata': expected an object of up to 16 keys (strings of at most 64 characters) to string values of at most 512 characters, but got an array instead.")]
    public async Task MetadataValueThatIsNotAString_Is400NamingTheKeyAndTheRule(string path, string metadata, string param, string message)
    {
        var body = path == "/v1/responses"
            ? new JsonObject { ["model"] = ConsoleFixture.Model, ["input"] = "Once upon a time", ["max_output_tokens"] = 16, ["metadata"] = JsonNode.Parse(metadata) }
            : new JsonObject
            {
                ["model"] = ConsoleFixture.Model,
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Once upon a time" }),
                ["max_tokens"] = 4,
                ["metadata"] = JsonNode.Parse(metadata),
            };
        using var response = await PostAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal(("invalid_request_error", param, "invalid_type"), (error.GetProperty("type").GetString(), error.GetProperty("param").GetString(), error.GetProperty("code").GetString()));
        Assert.StartsWith(message, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        if (param != "metadata")
        {
            Assert.Contains("a list (such as tags) goes in one string", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
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
