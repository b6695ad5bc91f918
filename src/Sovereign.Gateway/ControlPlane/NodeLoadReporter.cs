using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Cluster.Hosting;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Models;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Keeps this node's row of the registry live: every second, and at once when a model loads or unloads, it reports
/// the models served, each one's busy and free slots, queue depth and KV-cache use, and the node's accelerators
/// (GPUs from <c>nvidia-smi</c> where present, else the CPU). Gateways route on it and treat a node whose report is
/// older than <see cref="SovereignClusterOptions.NodeStaleSeconds"/> as down.
/// </summary>
internal sealed partial class NodeLoadReporter(
    NodeDirectory nodes,
    ModelCatalog catalog,
    FrontedEngines engines,
    Pipeline.RouteGates gates,
    RelayLoads relays,
    IHttpClientFactory httpClients,
    IOptions<SovereignOptions> options,
    IOptions<SovereignClusterOptions> cluster,
    TimeProvider time,
    ILogger<NodeLoadReporter> logger) : BackgroundService
{
    /// <summary>How often the load is reported.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    /// <summary>How often a GPU node asks nvidia-smi again for its GPUs' memory in use (an engine's allocations change it).</summary>
    public static readonly TimeSpan AcceleratorRefresh = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Raised after each report the registry took, with the load reported (and the directory invalidated when the row
    /// changed): tests wait on it for a report that follows a change, rather than on time.
    /// </summary>
    internal event Action<NodeLoad>? Reported;

    private readonly SemaphoreSlim _changed = new(0, 1);
    private IReadOnlyList<Accelerator> _accelerators = [];

    // Which fronted engines the log last said were down (a relay may mark one down before a probe sees it).
    private bool[] _saidDown = [];

    /// <summary>
    /// The models this process serves, as the registry lists them, with their kind: a gateway relays chat work to a
    /// node's chat models and embeddings to its embedding models. The capacity is what the node holds before it
    /// refuses: a chat model's sequences and queue, an embedding model's slots and its route queue, a fronted engine's
    /// capacity and its route queue. A fronted engine that does not answer lists none of its models (as if unloaded).
    /// Gateways send a node's models by the node's own ids; the node maps them to the engine's names.
    /// </summary>
    public static List<NodeModel> ModelsOf(ModelCatalog catalog, int routeQueue, FrontedEngines? engines = null) =>
        [.. catalog.All.Select(m => m.Kind == Sovereign.Inference.Engine.ModelKind.Embedding
            ? new NodeModel(m.Id, m.Id, Pipeline.Executors.EmbeddingExecutor.Slots + routeQueue, m.Model?.Options.License, m.Model?.Options.Origin, NodeModelKinds.Embedding)
            : new NodeModel(m.Id, m.Id, m.Model is { } model ? model.Options.Parallel + model.Options.MaxQueue : 64, m.Model?.Options.License, m.Model?.Options.Origin, NodeModelKinds.Chat,
                Routing.LanguageRouting.Canonical(m.Model?.Options.Languages))),
         .. (engines?.All ?? []).Where(m => !engines!.IsMarkedDown(m.Engine))
            .Select(m => m.Model with { Upstream = m.Id, Capacity = m.Model.Capacity + routeQueue })];

    /// <summary>
    /// The load of each served model now: a chat model's sequences from its engine; an embedding model's slots from
    /// the route gate its executor takes on this node (they read 0 running and 0 free, so the cluster's free-slot
    /// counts left embedding models out).
    /// </summary>
    public static List<ModelLoad> LoadOf(
        ModelCatalog catalog, Pipeline.RouteGates gates, string nodeId, FrontedEngines? engines = null, IReadOnlyList<double?>? engineKvUse = null, RelayLoads? relays = null) =>
        [.. LoadOfModels(catalog, gates, nodeId, engines, engineKvUse).Select(load => relays?.Of(load.Model) is { } fromGateways ? load with { FromGateways = fromGateways } : load)];

    private static IEnumerable<ModelLoad> LoadOfModels(ModelCatalog catalog, Pipeline.RouteGates gates, string nodeId, FrontedEngines? engines, IReadOnlyList<double?>? engineKvUse) =>
        [.. catalog.All.Select(m =>
        {
            if (m.Batcher is { } b)
            {
                return new ModelLoad(m.Id, b.RunningCount, Math.Max(0, b.Model.Options.Parallel - b.RunningCount), b.WaitingCount, Math.Round(b.KvCacheUsage, 4));
            }

            if (m.Kind == Sovereign.Inference.Engine.ModelKind.Embedding)
            {
                var (running, waiting) = gates.For(nodeId, m.Id, Pipeline.Executors.EmbeddingExecutor.Slots).Occupancy;
                return new ModelLoad(m.Id, running, Math.Max(0, Pipeline.Executors.EmbeddingExecutor.Slots - running), waiting, 0);
            }

            return new ModelLoad(m.Id, 0, 0, 0, 0);
        }),
         .. (engines?.All ?? []).Where(m => !engines!.IsMarkedDown(m.Engine)).Select(m =>
         {
             // What this node holds in the engine's route gate; KV use as the engine reports it on /metrics, where it does.
             var (running, waiting) = gates.For(nodeId, m.Id, m.Model.Capacity).Occupancy;
             var kv = engineKvUse is { } reported && m.Engine < reported.Count ? reported[m.Engine] ?? 0 : 0;
             return new ModelLoad(m.Id, running, Math.Max(0, m.Model.Capacity - running), waiting, Math.Round(kv, 4));
         })];

    /// <summary>
    /// Models this node could serve but has not loaded now (its registry's, its configured ones, the built-in embedding
    /// model), and those of fronted engines that do not answer (a gateway answers 503, not 404, for them).
    /// </summary>
    private List<string> AvailableOf(ModelCatalog catalog)
    {
        try
        {
            return [.. catalog.NotLoadedIds(),
                .. engines.All.Where(m => engines.IsMarkedDown(m.Engine)).Select(m => m.Id)];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or InvalidDataException or Sovereign.Inference.Registry.ModelRegistryException)
        {
            LogReportFailed("the model registry cannot be read: " + ex.Message);
            return [];
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!cluster.Value.ServesModels || string.IsNullOrWhiteSpace(options.Value.Jurisdiction))
        {
            return;
        }

        _accelerators = await LocalDevice.AcceleratorsAsync(stoppingToken);
        catalog.Changed += Signal;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    var kvUse = await ProbeEnginesAsync(stoppingToken);
                    await RefreshAcceleratorsAsync(stoppingToken);
                    var now = time.GetUtcNow().ToUnixTimeMilliseconds();
                    var models = ModelsOf(catalog, options.Value.Limits.RouteQueue, engines);
                    var load = new NodeLoad(now, LoadOf(catalog, gates, options.Value.NodeId, engines, kvUse, relays), _accelerators, AvailableOf(catalog), DeviceClasses.Canonical(cluster.Value.DeviceClass) ?? DeviceClasses.Of(_accelerators));
                    if (await nodes.Registry.ReportAsync(options.Value.NodeId, models, load))
                    {
                        nodes.Invalidate();
                    }

                    Reported?.Invoke(load);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The registry's silo may be moving (a member left); the next tick reports again.
                    LogReportFailed(ex.Message);
                }

                // Wait for the next tick, or less when a model loaded or unloaded.
                await _changed.WaitAsync(Interval, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            catalog.Changed -= Signal;
        }
    }

    private void Signal()
    {
        try
        {
            _changed.Release();
        }
        catch (SemaphoreFullException)
        {
            // A report is already due.
        }
    }

    private DateTimeOffset _acceleratorsAt;

    /// <summary>On a node with GPUs, reads their memory in use again every <see cref="AcceleratorRefresh"/> (a CPU node never asks again).</summary>
    private async Task RefreshAcceleratorsAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (_acceleratorsAt == default)
        {
            _acceleratorsAt = now;
            return;
        }

        if (now - _acceleratorsAt < AcceleratorRefresh || !_accelerators.Any(a => a.Kind == "gpu"))
        {
            return;
        }

        _acceleratorsAt = now;
        if (await DetectAcceleratorsAsync(cancellationToken) is { Count: > 0 } detected && detected.Any(a => a.Kind == "gpu"))
        {
            _accelerators = detected;
        }
    }

    /// <summary>How long a probe of a fronted engine may take before the engine counts as not answering.</summary>
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Asks each fronted engine for its Prometheus metrics: any HTTP answer means it is up (Ollama has no /metrics and
    /// answers 404), no answer marks it down. Returns each engine's KV-cache use where its metrics carry it.
    /// </summary>
    internal async Task<IReadOnlyList<double?>> ProbeEnginesAsync(CancellationToken cancellationToken)
    {
        if (engines.BaseUrls.Count == 0)
        {
            return [];
        }

        var client = httpClients.CreateClient(Routing.UpstreamProxy.ClientName);
        if (_saidDown.Length != engines.BaseUrls.Count)
        {
            _saidDown = new bool[engines.BaseUrls.Count];
        }

        return await Task.WhenAll(engines.BaseUrls.Select(async (baseUrl, index) =>
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(ProbeTimeout);
            try
            {
                // With the engine's key: llama-server started with --api-key answers /metrics 401 without it (vLLM
                // asks for none there), and the KV-cache use was then never reported.
                using var request = new HttpRequestMessage(HttpMethod.Get, baseUrl + "/metrics");
                if (engines.ApiKeys[index] is { } key)
                {
                    request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
                }

                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                engines.MarkUp(index);
                if (_saidDown[index])
                {
                    _saidDown[index] = false;
                    LogEngineBack(baseUrl);
                }

                if (!response.IsSuccessStatusCode || response.Content.Headers.ContentLength > EnginePrometheusMetrics.MaxBytes)
                {
                    return (double?)null;
                }

                if (await EnginePrometheusMetrics.ReadPageAsync(response.Content, timeout.Token) is not { } page)
                {
                    return null;
                }

                engines.NoteUsageOnEveryEvent(index, EnginePrometheusMetrics.IsVllm(page));
                return EnginePrometheusMetrics.KvCacheUse(page);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && engines.AnsweredWithin(index, ProbeTimeout))
            {
                // No answer to the probe, but its streams are flowing: busy, not down (its KV-cache use unknown this time).
                // Marked down, a llama-server with every HTTP thread streaming turned away new requests with 503s.
                return null;
            }
            catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                engines.MarkDown(index);
                if (!_saidDown[index])
                {
                    _saidDown[index] = true;
                    LogEngineDown(baseUrl, ex is OperationCanceledException ? $"no answer within {ProbeTimeout.TotalSeconds:0} s" : ex.Message);
                }
                return null;
            }
        }));
    }

    /// <summary>GPUs as nvidia-smi lists them; without it (or without GPUs) the CPU.</summary>
    internal static async Task<IReadOnlyList<Accelerator>> DetectAcceleratorsAsync(CancellationToken cancellationToken)
    {
        try
        {
            var start = new ProcessStartInfo("nvidia-smi", "--query-gpu=name,memory.total,memory.used --format=csv,noheader,nounits")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using var process = Process.Start(start);
            if (process is not null)
            {
                var output = await process.StandardOutput.ReadToEndAsync(cancellationToken);
                await process.WaitForExitAsync(cancellationToken).WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);
                var gpus = ParseNvidiaSmi(output);
                if (process.ExitCode == 0 && gpus.Count > 0)
                {
                    return gpus;
                }
            }
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException or TimeoutException)
        {
            // No nvidia-smi here: a CPU node.
        }

        var memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes >> 20;
        return [new Accelerator("cpu", $"{CpuName()} ({Environment.ProcessorCount} cores)", memory, 0)];
    }

    /// <summary>
    /// The GPUs in <c>nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader,nounits</c>'s output,
    /// one line each (on an H200 machine: <c>NVIDIA H200, 143771, 0</c>).
    /// </summary>
    internal static List<Accelerator> ParseNvidiaSmi(string output) =>
        [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(',', StringSplitOptions.TrimEntries))
            .Where(f => f.Length == 3 && f[0].Length > 0)
            .Select(f => new Accelerator("gpu", f[0], ParseMiB(f[1]), ParseMiB(f[2])))];

    private static long ParseMiB(string text) => long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : 0;

    private static string CpuName()
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "CPU";
        }
        catch (IOException)
        {
            return "CPU";
        }
        catch (UnauthorizedAccessException)
        {
            return "CPU";
        }
    }

    public override void Dispose()
    {
        _changed.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 3006, Level = LogLevel.Warning, Message = "Could not report this node's load to the registry: {Problem}")]
    private partial void LogReportFailed(string problem);

    [LoggerMessage(EventId = 3030, Level = LogLevel.Warning, Message = "The engine this node fronts at {BaseUrl} does not answer ({Problem}): its models take no requests until it does")]
    private partial void LogEngineDown(string baseUrl, string problem);

    [LoggerMessage(EventId = 3031, Level = LogLevel.Information, Message = "The engine this node fronts at {BaseUrl} answers again")]
    private partial void LogEngineBack(string baseUrl);
}
