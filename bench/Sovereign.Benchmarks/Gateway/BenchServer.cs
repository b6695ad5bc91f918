using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.Models;
using Sovereign.Inference.Engine;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>How to build the server under test.</summary>
internal sealed record ServerConfig
{
    /// <summary>Decode threads of the model (1 is the steadiest on 2 cores).</summary>
    public int Threads { get; init; } = 1;

    /// <summary>Sequences decoded together.</summary>
    public int Parallel { get; init; } = 8;

    /// <summary>Tokens per sequence (0: the model's own).</summary>
    public int ContextLength { get; init; }

    /// <summary>Where the data directory (SQLite database, audit log, ledger) is created; null: the system temp folder.</summary>
    public string? DataRoot { get; init; }

    /// <summary>Serve /v1 without a key too (tenant keys still authenticate as tenants).</summary>
    public bool AnonymousAccess { get; init; }

    /// <summary>Extra configuration entries.</summary>
    public IReadOnlyDictionary<string, string?> Extra { get; init; } = new Dictionary<string, string?>();
}

/// <summary>
/// The real server, built by <c>sovereign serve</c>'s own <see cref="ServeCommand.Build"/> (slim builder,
/// AddSovereignGateway, UseSovereignGateway, the Orleans silo in-process, SQLite in a fresh data directory), bound to
/// an ephemeral loopback port, with an HTTP client and helpers for the admin API.
/// </summary>
internal sealed class BenchServer : IAsyncDisposable
{
    /// <summary>The operator token configured for the admin API.</summary>
    public const string AdminToken = "bench-admin-token";

    /// <summary>The id the model is served under.</summary>
    public const string ModelId = "stories";

    /// <summary>The jurisdiction the server declares.</summary>
    public const string Jurisdiction = "TH";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private readonly string _dataDirectory;

    private BenchServer(WebApplication app, string dataDirectory, Uri address, ServedModel model)
    {
        App = app;
        _dataDirectory = dataDirectory;
        Address = address;
        Model = model;
        Client = CreateClient(address);
    }

    public WebApplication App { get; }

    public Uri Address { get; }

    public ServedModel Model { get; }

    public ContinuousBatcher Batcher => Model.Batcher!;

    public HttpClient Client { get; }

    public string DataDirectory => _dataDirectory;

    public T Get<T>()
        where T : notnull => App.Services.GetRequiredService<T>();

    public static string FindStoriesModel()
    {
        const string relative = "shared/models/stories260K.gguf";
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, relative);
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        throw new FileNotFoundException($"{relative} was not found in the working directory or any folder above it.");
    }

    public static async Task<BenchServer> StartAsync(ServerConfig config)
    {
        var data = config.DataRoot is null
            ? Directory.CreateTempSubdirectory("sovereign-gwbench-").FullName
            : Directory.CreateDirectory(Path.Combine(config.DataRoot, "sovereign-gwbench-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        var overrides = new Dictionary<string, string?>
        {
            ["Sovereign:Jurisdiction"] = Jurisdiction,
            ["Sovereign:AdminToken"] = AdminToken,
            ["Sovereign:BuiltInEmbeddings"] = "false",

            // The default level (Information) writes ASP.NET Core's per-request lines to the console; a benchmark
            // (and any production deployment) runs at Warning.
            ["Logging:LogLevel:Default"] = "Warning",

            // Orleans warns about workstation GC and a starved watchdog on a loaded 2-core box; llama.cpp about
            // token ids. Neither is about what is measured.
            ["Logging:LogLevel:Orleans"] = "Error",
            ["Logging:LogLevel:llama.cpp"] = "Error",
        };
        if (config.AnonymousAccess)
        {
            overrides["Sovereign:AnonymousAccess"] = "true";
        }

        foreach (var (key, value) in config.Extra)
        {
            overrides[key] = value;
        }

        var settings = new ServeSettings
        {
            Models = [new ModelOptions { Id = ModelId, Path = FindStoriesModel(), Threads = config.Threads, Parallel = config.Parallel, ContextLength = config.ContextLength }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = data,
            Overrides = overrides,
        };
        var app = ServeCommand.Build(settings, []);
        await app.StartAsync();
        var catalog = app.Services.GetRequiredService<ModelCatalog>();
        if (!catalog.TryGet(ModelId, out var model) || model.Batcher is null)
        {
            await app.DisposeAsync();
            throw new InvalidOperationException("The server did not load the model.");
        }

        return new BenchServer(app, data, new Uri(app.Urls.First().TrimEnd('/') + "/"), model);
    }

    public static HttpClient CreateClient(Uri address)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            MaxConnectionsPerServer = int.MaxValue,
        };
        return new HttpClient(handler) { BaseAddress = address, Timeout = TimeSpan.FromMinutes(5) };
    }

    /// <summary>Calls the admin API; throws with the body on a non-2xx answer.</summary>
    public async Task<JsonElement> AdminAsync(HttpMethod method, string path, object? body)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        if (body is not null)
        {
            request.Content = new StringContent(JsonSerializer.Serialize(body, Json), Encoding.UTF8, "application/json");
        }

        using var response = await Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"{method} {path}: {(int)response.StatusCode} {text}");
        }

        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>A JSON body in the admin API's snake_case.</summary>
    public static byte[] Body(object value) => JsonSerializer.SerializeToUtf8Bytes(value, Json);

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
