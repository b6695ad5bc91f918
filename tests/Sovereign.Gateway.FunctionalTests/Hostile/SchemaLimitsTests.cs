using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// A schema (response_format, text.format, a forced tool's parameters) is compiled into a grammar before any work:
/// what the engine cannot run, or what would take unbounded time to compile, is a 400 naming the schema, fast, and the
/// server keeps serving. Found: <c>maxLength: 2000</c> (or anything up to the old cap of 100,000) crashed the whole
/// server: llama.cpp cannot parse a repetition of 2,000 or more, and its grammar sampler was then null.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class SchemaLimitsTests(ConsoleFixture fixture)
{
    public static TheoryData<string> RepetitionsOverTheEnginesLimit => new()
    {
        """{"type":"string","maxLength":2000}""",
        """{"type":"string","minLength":2500,"maxLength":2500}""",
        """{"type":"array","items":{"type":"boolean"},"minItems":2000,"maxItems":2000}""",
        """{"type":"object","properties":{"a":{"type":"array","items":{"type":"boolean"},"maxItems":100000}}}""",
    };

    [Theory]
    [MemberData(nameof(RepetitionsOverTheEnginesLimit))]
    public async Task RepetitionOverTheEnginesLimit_Is400_AndTheServerKeepsServing(string schema)
    {
        var error = await RefusedAsync("/v1/chat/completions", ChatBody(schema));
        Assert.Equal("response_format.json_schema.schema", error.GetProperty("param").GetString());

        Assert.Equal(200, await fixture.ChatAsync(fixture.HospitalKey));
    }

    [Fact]
    public async Task SchemaThatExpandsExponentially_Is400_OnResponses_AndTheServerKeepsServing()
    {
        // 25 $defs, each using the next twice: 3 KB that expanded 2^25 times, holding a core after the client left.
        var defs = new JsonObject();
        for (var i = 0; i < 25; i++)
        {
            defs[$"d{i}"] = JsonNode.Parse($$$"""{"type":"object","properties":{"x":{"$ref":"#/$defs/d{{{i + 1}}}"},"y":{"$ref":"#/$defs/d{{{i + 1}}}"}},"required":["x","y"]}""");
        }

        defs["d25"] = new JsonObject { ["type"] = "string" };
        var body = new JsonObject
        {
            ["model"] = ConsoleFixture.Model,
            ["input"] = "Once upon a time",
            ["max_output_tokens"] = 16,
            ["text"] = new JsonObject
            {
                ["format"] = new JsonObject { ["type"] = "json_schema", ["name"] = "x", ["schema"] = new JsonObject { ["$ref"] = "#/$defs/d0", ["$defs"] = defs } },
            },
        };
        var error = await RefusedAsync("/v1/responses", body);
        Assert.Equal("text.format.schema", error.GetProperty("param").GetString());
        Assert.Equal(200, await fixture.ChatAsync(fixture.HospitalKey));
    }

    [Fact]
    public async Task RepetitionAtTheEnginesLimit_IsServed()
    {
        using var response = await Client().PostAsync("/v1/chat/completions", Json(ChatBody("""{"type":"string","maxLength":1999}""")));
        Assert.True((int)response.StatusCode == 200, await response.Content.ReadAsStringAsync());
    }

    private static JsonObject ChatBody(string schema) => new()
    {
        ["model"] = ConsoleFixture.Model,
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Once upon a time" }),
        ["max_tokens"] = 4,
        ["response_format"] = new JsonObject
        {
            ["type"] = "json_schema",
            ["json_schema"] = new JsonObject { ["name"] = "x", ["schema"] = JsonNode.Parse(schema) },
        },
    };

    private async Task<JsonElement> RefusedAsync(string path, JsonObject body)
    {
        var clock = Stopwatch.StartNew();
        using var response = await Client().PostAsync(path, Json(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, $"{(int)response.StatusCode} after {clock.ElapsedMilliseconds} ms: {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("error");
    }

    private HttpClient Client()
    {
        var client = new HttpClient { BaseAddress = fixture.Address, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", fixture.HospitalKey);
        return client;
    }

    private static StringContent Json(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");
}
