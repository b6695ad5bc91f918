using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Sovereign.Cli.Commands;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// The built-in all-MiniLM-L6-v2 loads on first use (about 390 MB of ONNX model, seconds on a small machine). That
/// load ran inside the first request's compute-second window, so whichever tenant embedded first was billed for it:
/// 2.5 compute seconds for two three-word inputs, where the next request took 0.005.
/// </summary>
public sealed class BuiltInEmbeddingsLoadTests : IDisposable
{
    private const string AdminToken = "minilm-load-admin-token";

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-minilm-load-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task TheFirstEmbeddingRequest_IsNotBilledForLoadingTheModel()
    {
        await using var app = ServeCommand.Build(new ServeSettings
        {
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Threads = 1,
            Overrides = new Dictionary<string, string?> { ["Sovereign:AdminToken"] = AdminToken },
        }, []);
        await app.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);

        var started = Stopwatch.GetTimestamp();
        using var embedded = await client.PostAsJsonAsync("/v1/embeddings", new { model = "all-MiniLM-L6-v2", input = new[] { "a cat", "a dog" } });
        var wall = Stopwatch.GetElapsedTime(started).TotalSeconds;
        Assert.True((int)embedded.StatusCode == 200, await embedded.Content.ReadAsStringAsync());
        var requestId = embedded.Headers.GetValues("x-sovereign-audit-id").Single();

        using var record = await client.GetAsync($"/admin/v1/usage/{requestId}");
        var text = await record.Content.ReadAsStringAsync();
        Assert.True((int)record.StatusCode == 200, text);
        var computeSeconds = JsonDocument.Parse(text).RootElement.GetProperty("compute_seconds").GetDouble();

        // Nearly all of this request's time was the model's load; what it is billed for is the embedding alone.
        Assert.True(computeSeconds < wall / 4, $"billed {computeSeconds} compute seconds of a {wall:0.000} s request that loaded the model");
    }
}
