using System.Net.Http.Json;
using System.Text.Json;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// A registered model (<c>sovereign models pull|import</c>) is served at every start when the configuration names it
/// by id alone (<c>serve --model ID</c>, <c>Sovereign:Models:N:Id</c> without a path). <c>models load</c> lasts until a
/// restart, and <c>--model ID</c> was read as a path that did not exist, so such a model could not be made to load at start.
/// </summary>
public sealed class RegistryModelAtStartTests
{
    private const string Id = "stories-at-start";

    [Fact]
    public async Task ARegisteredModelNamedByIdAlone_LoadsAtStart_WithTheRegistrysFacts()
    {
        var dataDirectory = Directory.CreateTempSubdirectory("sovereign-registry-start-").FullName;
        try
        {
            var (exit, _, stderr) = await CliProcess.RunAsync("models", "import", TestModels.Stories260K, "--id", Id,
                "--license", "MIT", "--origin-publisher", "Andrej Karpathy", "--origin-country", "US", "--language", "en", "--data-dir", dataDirectory);
            Assert.True(exit == 0, stderr);

            var models = ServeCommand.Parse([Id], ModelKind.Chat).ToList();
            Assert.Equal((Id, ""), (Assert.Single(models).Id, models[0].Path));
            var app = ServeCommand.Build(new ServeSettings { Models = models, Urls = "http://127.0.0.1:0", DataDirectory = dataDirectory, Threads = 1, ContextLength = 256 }, []);
            await app.StartAsync();
            try
            {
                using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
                using var response = await http.PostAsJsonAsync("/v1/chat/completions", new { model = Id, messages = new[] { new { role = "user", content = "Once upon a time" } }, max_tokens = 2 });
                var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
                Assert.True((int)response.StatusCode == 200, body.ToString());
                Assert.Equal(2, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
            }
            finally
            {
                await app.StopAsync();
                await app.DisposeAsync();
            }
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task AnIdTheRegistryDoesNotHold_StopsTheStartNamingTheSetting()
    {
        var dataDirectory = Directory.CreateTempSubdirectory("sovereign-registry-start-").FullName;
        try
        {
            var (exit, _, stderr) = await CliProcess.RunAsync("serve", "--model", "not-registered", "--data-dir", dataDirectory, "--urls", "http://127.0.0.1:0");

            Assert.Equal(2, exit);
            Assert.Contains("Sovereign:Models:0:Id names a model in the registry", stderr, StringComparison.Ordinal);
            Assert.Contains("'not-registered' is not registered", stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }
}
