using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Sovereign.Inference.Engine;

/// <summary>
/// The serving metrics operators know from vLLM and llama-server, as OpenTelemetry instruments on the
/// <c>Sovereign.Inference</c> meter. Every instrument is tagged with the model id; none carries content.
/// </summary>
public sealed class EngineMetrics : IDisposable
{
    /// <summary>The meter name to subscribe to.</summary>
    public const string MeterName = "Sovereign.Inference";

    private static readonly double[] LatencyBuckets =
        [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];

    private readonly Meter _meter;
    private readonly ConcurrentDictionary<string, ContinuousBatcher> _batchers = new();
    private readonly Counter<long> _promptTokens;
    private readonly Counter<long> _cachedPromptTokens;
    private readonly Counter<long> _generationTokens;
    private readonly Counter<long> _requests;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<double> _interTokenLatency;
    private readonly Histogram<double> _endToEndLatency;
    private readonly Histogram<double> _queueTime;

    /// <summary>Creates the instruments on a meter from the factory (or a standalone meter).</summary>
    public EngineMetrics(IMeterFactory? meterFactory = null)
    {
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        _promptTokens = _meter.CreateCounter<long>("sovereign.prompt_tokens", "{token}", "Prompt tokens processed.");
        _cachedPromptTokens = _meter.CreateCounter<long>("sovereign.prompt_tokens_cached", "{token}", "Prompt tokens reused from the prefix cache instead of prefilled.");
        _generationTokens = _meter.CreateCounter<long>("sovereign.generation_tokens", "{token}", "Tokens generated.");
        _requests = _meter.CreateCounter<long>("sovereign.requests", "{request}", "Finished generation requests, by finish reason.");
        _timeToFirstToken = Histogram("sovereign.time_to_first_token", "Time from submission to the first generated token.");
        _interTokenLatency = Histogram("sovereign.inter_token_latency", "Time between two generated tokens of one request.");
        _endToEndLatency = Histogram("sovereign.e2e_request_latency", "Time from submission to the last token.");
        _queueTime = Histogram("sovereign.request_queue_time", "Time a request waited for a sequence slot and KV space.");
        _meter.CreateObservableGauge("sovereign.num_requests_running", () => Observe(b => b.RunningCount), "{request}", "Requests decoding in a batch.");
        _meter.CreateObservableGauge("sovereign.num_requests_waiting", () => Observe(b => b.WaitingCount), "{request}", "Requests waiting for capacity.");
        _meter.CreateObservableGauge("sovereign.kv_cache_usage", () => Observe(b => b.KvCacheUsage), "1", "Fraction of KV-cache cells in use (0..1).");
        _meter.CreateObservableGauge("sovereign.prefix_cache_cells", () => Observe(b => b.PrefixCacheCells), "{token}", "KV-cache cells kept for prompt-prefix reuse.");
        _meter.CreateObservableGauge("sovereign.prefix_cache_parked_bytes", () => Observe(b => b.PrefixCacheParkedBytes), "By", "Host memory holding prefix-cache entries parked out of the KV cache.");
    }

    internal void Register(ContinuousBatcher batcher) => _batchers[batcher.ModelId] = batcher;

    internal void Unregister(ContinuousBatcher batcher) => _batchers.TryRemove(new KeyValuePair<string, ContinuousBatcher>(batcher.ModelId, batcher));

    internal void PromptProcessed(string model, int tokens, int cached)
    {
        _promptTokens.Add(tokens, Tag(model));
        if (cached > 0)
        {
            _cachedPromptTokens.Add(cached, Tag(model));
        }
    }

    internal void TokenGenerated(string model, TimeSpan? sincePrevious)
    {
        _generationTokens.Add(1, Tag(model));
        if (sincePrevious is { } gap)
        {
            _interTokenLatency.Record(gap.TotalSeconds, Tag(model));
        }
    }

    internal void FirstToken(string model, TimeSpan elapsed) => _timeToFirstToken.Record(elapsed.TotalSeconds, Tag(model));

    internal void Admitted(string model, TimeSpan queued) => _queueTime.Record(queued.TotalSeconds, Tag(model));

    internal void Finished(string model, GenerationResult result)
    {
        _endToEndLatency.Record(result.Duration.TotalSeconds, Tag(model));
        _requests.Add(1, Tag(model), new KeyValuePair<string, object?>("finish_reason", result.FinishReason.ToString().ToLowerInvariant()));
    }

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();

    private Histogram<double> Histogram(string name, string description) =>
        _meter.CreateHistogram(name, "s", description, tags: null, new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });

    private IEnumerable<Measurement<T>> Observe<T>(Func<ContinuousBatcher, T> read)
        where T : struct
    {
        foreach (var batcher in _batchers.Values)
        {
            yield return new Measurement<T>(read(batcher), Tag(batcher.ModelId));
        }
    }

    private static KeyValuePair<string, object?> Tag(string model) => new("model", model);
}
