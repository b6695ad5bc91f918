using Microsoft.AspNetCore.Builder;
using Sovereign.Cli.Commands;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A TH server of its own that fronts one engine (<c>Sovereign:Engines:0</c>) under <paramref name="model"/>, for tests
/// whose engine misbehaves in its own way; anonymous callers (no tenant exists), its data directory deleted after.
/// </summary>
internal sealed class FrontedNode : IAsyncDisposable
{
    private readonly string _data;

    private FrontedNode(WebApplication app, string data) => (App, _data) = (app, data);

    public WebApplication App { get; }

    public HttpClient Client { get; private set; } = null!;

    public static async Task<FrontedNode> StartAsync(string engineUrl, string model)
    {
        var data = Directory.CreateTempSubdirectory("sovereign-fronted-node-").FullName;
        var node = new FrontedNode(ServeCommand.Build(new ServeSettings
        {
            Urls = "http://127.0.0.1:0",
            DataDirectory = data,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Jurisdiction"] = "TH",
                ["Sovereign:BuiltInEmbeddings"] = "false",
                ["Sovereign:Engines:0:BaseUrl"] = engineUrl,
                ["Sovereign:Engines:0:Models:0:Id"] = model,
            },
        }, []), data);
        await node.App.StartAsync();
        node.Client = new HttpClient { BaseAddress = new Uri(node.App.Urls.First()) };
        return node;
    }

    public async ValueTask DisposeAsync()
    {
        Client?.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }
}
