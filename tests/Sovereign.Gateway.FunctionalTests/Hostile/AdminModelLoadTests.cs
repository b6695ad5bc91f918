using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.Models;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// <c>POST /admin/v1/models/{id}/load</c> with settings or a file the engine cannot take: a precise 4xx, never a 500, and
/// the model loads again afterwards with sound settings.
/// </summary>
public sealed class AdminModelLoadTests : IDisposable
{
    private const string AdminToken = "model-load-admin-token";

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-model-load-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>
    /// A context of 2^30 tokens for 256 sequences overflowed the KV cache's cell count (<c>checked</c> int): a 500 with a
    /// logged stack, and the configured model kept those settings, so every later load without a body was a 500 too,
    /// until a restart.
    /// </summary>
    [Fact]
    public async Task AContextTooLargeForTheKvCache_Is400NamingContextLength_AndTheModelStillLoads()
    {
        await using var app = await StartAsync();
        using var client = Client(app);
        await UnloadAsync(client);

        using (var refused = await client.PostAsJsonAsync($"/admin/v1/models/{BuiltInTestModel.Id}/load", new { parallel = 256, context_length = 1 << 30 }))
        {
            var error = await ErrorAsync(refused);
            Assert.Equal(400, (int)refused.StatusCode);
            Assert.Equal("context_length", error.GetProperty("param").GetString());
            Assert.Equal("invalid_value", error.GetProperty("code").GetString());
        }

        using var loaded = await client.PostAsync($"/admin/v1/models/{BuiltInTestModel.Id}/load", null);
        Assert.True((int)loaded.StatusCode == 200, await loaded.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// A configured model whose file is gone or is no GGUF when it is loaded again: llama.cpp's refusal was a 500. It is a
    /// 409 naming what is wrong with the file, audited as a refused load, and the model loads once the file is back.
    /// </summary>
    [Fact]
    public async Task AModelWhoseFileCannotBeLoaded_Is409ModelLoadFailed_AndAudited()
    {
        await using var app = await StartAsync();
        using var client = Client(app);
        await UnloadAsync(client);
        var file = Path.Combine(_directory, "models", BuiltInTestModel.FileName);
        var aside = file + ".aside";
        File.Move(file, aside);

        using (var missing = await client.PostAsync($"/admin/v1/models/{BuiltInTestModel.Id}/load", null))
        {
            var error = await ErrorAsync(missing);
            Assert.Equal(409, (int)missing.StatusCode);
            Assert.Equal("model_load_failed", error.GetProperty("code").GetString());
            Assert.Contains("does not exist", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        await File.WriteAllTextAsync(file, "not a GGUF file");
        using (var garbage = await client.PostAsync($"/admin/v1/models/{BuiltInTestModel.Id}/load", null))
        {
            Assert.Equal(409, (int)garbage.StatusCode);
            Assert.Equal("model_load_failed", (await ErrorAsync(garbage)).GetProperty("code").GetString());
        }

        var audit = JsonDocument.Parse(await client.GetStringAsync("/admin/v1/audit")).RootElement.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(2, audit.Count(e => e.GetProperty("action").GetString() == "model.load_refused"
            && e.GetProperty("details").GetProperty("reason").GetString() == "load_failed"));

        File.Delete(file);
        File.Move(aside, file);
        using var loaded = await client.PostAsync($"/admin/v1/models/{BuiltInTestModel.Id}/load", null);
        Assert.True((int)loaded.StatusCode == 200, await loaded.Content.ReadAsStringAsync());
    }

    private async Task<Microsoft.AspNetCore.Builder.WebApplication> StartAsync()
    {
        var app = ServeCommand.Build(new ServeSettings
        {
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Threads = 1,
            Overrides = new Dictionary<string, string?> { ["Sovereign:AdminToken"] = AdminToken, ["Sovereign:BuiltInEmbeddings"] = "false" },
        }, []);
        await app.StartAsync();
        return app;
    }

    private static HttpClient Client(Microsoft.AspNetCore.Builder.WebApplication app)
    {
        var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        return client;
    }

    private static async Task UnloadAsync(HttpClient client)
    {
        using var unloaded = await client.PostAsync($"/admin/v1/models/{BuiltInTestModel.Id}/unload", null);
        Assert.True((int)unloaded.StatusCode == 200, await unloaded.Content.ReadAsStringAsync());
    }

    private static async Task<JsonElement> ErrorAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").Clone();
}
