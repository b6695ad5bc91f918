using System.Net.Http.Json;
using System.Text.Json;
using Sovereign.Cli.Commands;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// OpenAI caps one embeddings request at 300,000 tokens summed across its inputs (<c>max_tokens_per_request</c>); here
/// nothing did, and 2,048 inputs each as long as the model takes held an embedding model's slot for minutes (explorer12,
/// session 38: 7 minutes of CPU for 2,048 inputs of about 200 tokens). Refused as the inputs are counted, before any
/// work or money; the cap is <c>Sovereign:Limits:MaxEmbeddingTokensPerRequest</c>, lowered here to keep the test small.
/// </summary>
public sealed class EmbeddingRequestCapTests : IDisposable
{
    private const int Cap = 100;

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-embedding-cap-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task InputsSummingPastTheCap_Are400MaxTokensPerRequest_AndAtTheCapAreServed()
    {
        await using var app = ServeCommand.Build(new ServeSettings
        {
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Threads = 1,
            Overrides = new Dictionary<string, string?> { ["Sovereign:Limits:MaxEmbeddingTokensPerRequest"] = Cap.ToString(System.Globalization.CultureInfo.InvariantCulture) },
        }, []);
        await app.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        var text = string.Join(' ', Enumerable.Repeat("the dog ran", 10));

        // One input's count, then as many inputs as fit within the cap, and one more.
        var perInput = await PromptTokensAsync(client, [text]);
        var fitting = Cap / perInput;
        Assert.True(fitting >= 2, $"{perInput} tokens an input");
        Assert.Equal(fitting * perInput, await PromptTokensAsync(client, [.. Enumerable.Repeat(text, fitting)]));

        using var refused = await client.PostAsJsonAsync("/v1/embeddings", new { model = "all-MiniLM-L6-v2", input = Enumerable.Repeat(text, fitting + 1).ToArray() });
        var body = await refused.Content.ReadAsStringAsync();
        Assert.True((int)refused.StatusCode == 400, body);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal(("max_tokens_per_request", "input"), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
        Assert.Contains($"max {Cap} tokens per request", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    private static async Task<int> PromptTokensAsync(HttpClient client, string[] inputs)
    {
        using var response = await client.PostAsJsonAsync("/v1/embeddings", new { model = "all-MiniLM-L6-v2", input = inputs });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 200, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
    }
}
