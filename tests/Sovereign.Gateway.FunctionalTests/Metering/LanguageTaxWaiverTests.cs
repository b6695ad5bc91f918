using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Metering;

public sealed class LanguageTaxWaiverTests(LocalLanguageFixture fixture) : IClassFixture<LocalLanguageFixture>
{
    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>
    /// The tool definitions and the calls an assistant turn made are rendered into the prompt and billed as its tokens,
    /// so their letters count in the waiver's share. Found by sending a Thai question with an English tool description
    /// (and an English call in the history): the basis counted the Thai messages' letters alone, share 1, and billed the
    /// English tool text at a sixth of its tokens, a discount any client could take by moving text into a tool.
    /// </summary>
    [Theory]
    [InlineData("/v1/chat/completions")]
    [InlineData("/v1/responses")]
    public async Task ToolDefinitionsAndCalls_CountAsPromptLetters(string endpoint)
    {
        const string thai = "สวัสดีครับ ช่วยบอกพยากรณ์อากาศของเชียงใหม่ให้หน่อย";
        const string description = "Looks up the weather forecast for a city in the north of the country, by day, with rain and temperature.";
        const string arguments = """{"city":"Chiang Mai","days":3}""";
        var parameters = new { type = "object", properties = new { city = new { type = "string" }, days = new { type = "integer" } } };
        var body = endpoint == "/v1/chat/completions"
            ? JsonSerializer.Serialize(new
            {
                model = LocalLanguageFixture.Model,
                messages = new object[]
                {
                    new { role = "user", content = thai },
                    new { role = "assistant", content = (string?)null, tool_calls = new[] { new { id = "call_1", type = "function", function = new { name = "forecast", arguments } } } },
                    new { role = "tool", tool_call_id = "call_1", content = "ฝนตก" },
                    new { role = "user", content = thai },
                },
                tools = new[] { new { type = "function", function = new { name = "forecast", description, parameters } } },
                max_tokens = 2,
                temperature = 0,
            })
            : JsonSerializer.Serialize(new
            {
                model = LocalLanguageFixture.Model,
                input = new object[]
                {
                    new { role = "user", content = thai },
                    new { type = "function_call", call_id = "call_1", name = "forecast", arguments },
                    new { type = "function_call_output", call_id = "call_1", output = "ฝนตก" },
                    new { role = "user", content = thai },
                },
                tools = new[] { new { type = "function", name = "forecast", description, parameters } },
                max_output_tokens = 16,
                temperature = 0,
            });
        using var client = fixture.TenantClient(await fixture.NewTenantAsync());
        using var response = await client.PostAsync(endpoint, Json(body));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        var id = response.Headers.GetValues("x-sovereign-audit-id").Single();

        var record = JsonDocument.Parse(await client.GetStringAsync($"/v1/usage/{id}")).RootElement;
        var basis = record.GetProperty("character_equivalent");
        var prompt = basis.GetProperty("prompt");
        var thaiLetters = ThaiLetters(thai + thai + "ฝนตก");
        var language = prompt.GetProperty("language_letters").GetInt64();
        var letters = prompt.GetProperty("letters").GetInt64();
        Assert.Equal(thaiLetters, language);
        // The letters of the tool's description, its parameters and the call are the prompt's too (at least those).
        var english = (description + "forecast" + arguments + "objectpropertiescitystringdaysinteger").Count(char.IsAsciiLetter);
        Assert.True(letters >= thaiLetters + english, $"{language}/{letters}, expected at least {thaiLetters}/{thaiLetters + english}");
        var ratio = basis.GetProperty("ratio_to_english").GetDouble();
        var tokens = record.GetProperty("prompt_tokens").GetInt32();
        Assert.Equal((int)Math.Ceiling(tokens / (1 + ((double)language / letters * (ratio - 1)))), record.GetProperty("billed_prompt_tokens").GetInt32());
    }

    private static long ThaiLetters(string text) => text.EnumerateRunes().Count(r => System.Text.Rune.IsLetter(r) && r.Value is >= 0x0E00 and <= 0x0E7F);
}
