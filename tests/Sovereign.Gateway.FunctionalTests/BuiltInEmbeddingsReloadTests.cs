using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Sovereign.Cli.Commands;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// The built-in all-MiniLM-L6-v2 could be unloaded (<c>sovereign models unload all-MiniLM-L6-v2</c>) but not loaded
/// again: 404 "neither in the registry nor in the configuration" until a restart.
/// </summary>
public sealed class BuiltInEmbeddingsReloadTests : IDisposable
{
    private const string AdminToken = "reload-admin-token";

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-minilm-reload-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task TheBuiltInEmbeddingModel_Unloaded_LoadsAgain_AndEmbeds()
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

        using (var unloaded = await client.PostAsJsonAsync("/admin/v1/models/all-MiniLM-L6-v2/unload", new { }))
        {
            Assert.Equal(200, (int)unloaded.StatusCode);
        }

        using (var gone = await client.PostAsJsonAsync("/v1/embeddings", new { model = "all-MiniLM-L6-v2", input = "a cat" }))
        {
            // Not loaded now, but this server can load it: 503, which SDKs retry.
            Assert.Equal(503, (int)gone.StatusCode);
        }

        using var loaded = await client.PostAsJsonAsync("/admin/v1/models/all-MiniLM-L6-v2/load", new { });
        Assert.True((int)loaded.StatusCode == 200, await loaded.Content.ReadAsStringAsync());

        using var embedded = await client.PostAsJsonAsync("/v1/embeddings", new { model = "all-MiniLM-L6-v2", input = "a cat" });
        var text = await embedded.Content.ReadAsStringAsync();
        Assert.True((int)embedded.StatusCode == 200, text);
        Assert.Equal(384, JsonDocument.Parse(text).RootElement.GetProperty("data")[0].GetProperty("embedding").GetArrayLength());
    }
}
