using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.OpenAI;

/// <summary>
/// The second official SDK: OpenAI's JavaScript library (npm <c>openai</c>, pinned in <c>tests/sdks/node</c>) runs
/// <c>checks.mjs</c> against a real server as a tenant developer would, covering what the .NET SDK's tests do not
/// reach the same way: its base64 embeddings by default, its stream helpers and client-side aborts, its error classes
/// (which decide what it retries). Needs Node.js and the npm registry (<c>npm ci</c> on first run), as the console's
/// tests need chromium.
/// </summary>
public sealed class OfficialNodeSdkTests : IAsyncLifetime
{
    private const string AdminToken = "node-sdk-admin-token";
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-node-sdk-").FullName;
    private Microsoft.AspNetCore.Builder.WebApplication _app = null!;

    private static string ChecksFolder
    {
        get
        {
            var directory = new DirectoryInfo(AppContext.BaseDirectory);
            while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Sovereign.slnx")))
            {
                directory = directory.Parent;
            }

            return Path.Combine(directory?.FullName ?? throw new DirectoryNotFoundException("The repository root (Sovereign.slnx) was not found."), "tests", "sdks", "node");
        }
    }

    public async Task InitializeAsync()
    {
        _app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, ContextLength = 1024, Parallel = 4, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Overrides = new Dictionary<string, string?> { ["Sovereign:Jurisdiction"] = "TH", ["Sovereign:AdminToken"] = AdminToken },
        }, []);
        await _app.StartAsync();
    }

    [Fact]
    public async Task TheJavaScriptSdk_ChatCompletionsEmbeddingsResponsesAndErrors_WorkAsItsReadmeSays()
    {
        await InstallSdkAsync();
        var key = await TenantKeyAsync();

        var (exit, output) = await RunAsync("node", ["checks.mjs"], new()
        {
            ["SOVEREIGN_BASE_URL"] = _app.Urls.First(),
            ["SOVEREIGN_KEY"] = key,
            ["SOVEREIGN_CHAT_MODEL"] = "stories",
            ["SOVEREIGN_EMBEDDING_MODEL"] = "all-MiniLM-L6-v2",
            ["SOVEREIGN_JURISDICTION"] = "TH",
        });

        Assert.True(exit == 0, output);
        Assert.Matches(@"(?m)^\d+ passed, 0 failed$", output);
    }

    /// <summary>The pinned SDK, installed from package-lock.json once per checkout (node_modules is not committed).</summary>
    private static async Task InstallSdkAsync()
    {
        if (File.Exists(Path.Combine(ChecksFolder, "node_modules", "openai", "package.json")))
        {
            return;
        }

        var (exit, output) = await RunAsync("npm", ["ci", "--no-audit", "--no-fund"], []);
        Assert.True(exit == 0, "npm ci in tests/sdks/node failed (Node.js and the npm registry are needed):\n" + output);
    }

    private async Task<string> TenantKeyAsync()
    {
        using var admin = new HttpClient { BaseAddress = new Uri(_app.Urls.First()) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        using var tenant = await admin.PostAsJsonAsync("/admin/v1/tenants", new { id = "node-sdk", name = "Node SDK", policy = new { allowed_jurisdictions = new[] { "TH" } } });
        Assert.True(tenant.IsSuccessStatusCode, await tenant.Content.ReadAsStringAsync());
        using var key = await admin.PostAsJsonAsync("/admin/v1/tenants/node-sdk/keys", new { name = "sdk" });
        var text = await key.Content.ReadAsStringAsync();
        Assert.True(key.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text).RootElement.GetProperty("secret").GetString()!;
    }

    private static async Task<(int Exit, string Output)> RunAsync(string file, string[] arguments, Dictionary<string, string> environment)
    {
        var (exit, stdout, stderr) = await ChildProcess.RunAsync(file, arguments, TimeSpan.FromMinutes(8), ChecksFolder, environment);
        return (exit, stdout + stderr);
    }

    public async Task DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
