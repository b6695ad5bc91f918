using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Models;
using Sovereign.Inference.Engine;
using Sovereign.Residency.Audit;

namespace Sovereign.Benchmarks.Inference;

/// <summary>
/// The real server, built the way ServeCommand.Build does (slim builder, AddSovereignGateway, UseSovereignGateway,
/// settings through configuration) and bound to an ephemeral loopback port. ServeCommand itself is internal to
/// Sovereign.Cli, so it is mirrored here rather than called.
/// </summary>
internal sealed class ServerHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _dataDirectory;

    private ServerHost(WebApplication app, string dataDirectory, Uri address, ContinuousBatcher batcher)
    {
        _app = app;
        _dataDirectory = dataDirectory;
        Address = address;
        Batcher = batcher;
    }

    public Uri Address { get; }

    /// <summary>The batcher the server decodes with, for the engine-without-HTTP route.</summary>
    public ContinuousBatcher Batcher { get; }

    /// <param name="dataRoot">Where to create the server's fresh data directory (default: the system temp folder).</param>
    /// <param name="nativeLogLevel">The least severe llama.cpp log line the server writes to its console.</param>
    public static async Task<ServerHost> StartAsync(ModelOptions model, string? dataRoot = null, LogLevel nativeLogLevel = LogLevel.Error)
    {
        var data = dataRoot is null
            ? Directory.CreateTempSubdirectory("sovereign-bench-data-").FullName
            : Directory.CreateDirectory(System.IO.Path.Combine(dataRoot, "sovereign-bench-data-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = data });
        string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Sovereign:DataDirectory"] = data,
            ["Sovereign:BuiltInEmbeddings"] = "false",
            ["Sovereign:Models:0:Id"] = model.Id,
            ["Sovereign:Models:0:Path"] = model.Path,
            ["Sovereign:Models:0:Parallel"] = Invariant(model.Parallel),
            ["Sovereign:Models:0:ContextLength"] = Invariant(model.ContextLength),
            ["Sovereign:Models:0:BatchSize"] = Invariant(model.BatchSize),
            ["Sovereign:Models:0:Threads"] = Invariant(model.Threads),
            ["Sovereign:Models:0:MaxQueue"] = Invariant(model.MaxQueue),
            ["Sovereign:Models:0:PrefixCacheSequences"] = model.PrefixCacheSequences is { } cache ? Invariant(cache) : null,
        });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.AddSovereignGateway();

        // The benchmark prints llama.cpp's load warnings once itself; the server would repeat them per load.
        builder.Logging.AddFilter("llama.cpp", nativeLogLevel);
        var app = builder.Build();
        app.UseSovereignGateway();
        await app.StartAsync();
        var catalog = app.Services.GetRequiredService<ModelCatalog>();
        if (!catalog.TryGet(model.Id, out var served) || served.Batcher is not { } batcher)
        {
            await app.DisposeAsync();
            throw new InvalidOperationException($"The server did not load '{model.Id}'.");
        }

        var address = new Uri(app.Urls.First().TrimEnd('/') + "/");
        return new ServerHost(app, data, address, batcher);
    }

    /// <summary>
    /// Times the server's audit log append (an "allowed" entry is committed before every /v1 request starts
    /// generating, so it is part of TTFT), in ms. Writes <paramref name="count"/> entries into this run's throwaway
    /// database. Empty when the server has no audit log.
    /// </summary>
    public async Task<double[]> TimeAuditAppendsAsync(int count)
    {
        if (_app.Services.GetService<AuditLog>() is not { } audit)
        {
            return [];
        }

        var times = new double[count];
        for (var i = 0; i < count; i++)
        {
            var start = System.Diagnostics.Stopwatch.GetTimestamp();
            await audit.AppendAsync(new AuditRecord { Kind = AuditKind.Inference, Actor = "benchmark", Action = "benchmark.audit_probe" });
            times[i] = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        return times;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
