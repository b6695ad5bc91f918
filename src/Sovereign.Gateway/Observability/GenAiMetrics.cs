using System.Diagnostics.Metrics;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.Observability;

/// <summary>
/// Token usage and latency of every metered request, named and bucketed as the OpenTelemetry GenAI semantic
/// conventions say (<c>gen_ai.client.token.usage</c>, <c>gen_ai.server.request.duration</c>,
/// <c>gen_ai.server.time_to_first_token</c>, <c>gen_ai.server.time_per_output_token</c>). They also carry the
/// tenant (the only exporter is /metrics, which only the operator may read) unless the operator turns it off
/// (<c>Sovereign:Metering:GenAiTenantLabel</c>); each keeps <c>Sovereign:Metering:GenAiSeriesLimit</c> series (<see cref="View"/>).
/// </summary>
public sealed class GenAiMetrics
{
    /// <summary>The meter name to subscribe to.</summary>
    public const string MeterName = "Sovereign.Gateway";

    /// <summary>What <c>gen_ai.provider.name</c> says for models served here and through registered engines.</summary>
    public const string ProviderName = "sovereign";

    /// <summary>
    /// The process-wide instruments. One set serves every gateway in the process: OpenTelemetry subscribes to meters
    /// by name, so per-container meters of one name would be exported together anyway.
    /// </summary>
    public static GenAiMetrics Instance { get; } = new();

    private readonly Histogram<long> _tokenUsage;
    private readonly Histogram<double> _requestDuration;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<double> _timePerOutputToken;

    private GenAiMetrics()
    {
        var meter = new Meter(MeterName);

        // Bucket boundaries as the conventions advise.
        _tokenUsage = meter.CreateHistogram("gen_ai.client.token.usage", "{token}", "Tokens used per request, by type (input, output).",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864] });
        _requestDuration = meter.CreateHistogram("gen_ai.server.request.duration", "s", "Time from admission to the last token.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] });
        _timeToFirstToken = meter.CreateHistogram("gen_ai.server.time_to_first_token", "s", "Time to generate the first token.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0] });
        _timePerOutputToken = meter.CreateHistogram("gen_ai.server.time_per_output_token", "s", "Time per output token after the first.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5] });
    }

    /// <summary>The histograms (for tests).</summary>
    internal IReadOnlyList<Instrument> Instruments => [_tokenUsage, _requestDuration, _timeToFirstToken, _timePerOutputToken];

    /// <summary>The label every series of these histograms carries unless the operator turns it off.</summary>
    internal const string TenantTag = "tenant";

    /// <summary>The labels kept when the tenant label is off (<see cref="Hosting.MeteringOptions.GenAiTenantLabel"/>).</summary>
    private static readonly string[] KeptWithoutTenant = ["gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "error.type", "gen_ai.token.type"];

    /// <summary>
    /// The view for this meter's histograms: at most <paramref name="seriesLimit"/> series each, and without the
    /// <c>tenant</c> label when <paramref name="tenantLabel"/> is false. Null for any other instrument.
    /// </summary>
    internal static OpenTelemetry.Metrics.MetricStreamConfiguration? View(Instrument instrument, bool tenantLabel, int seriesLimit) =>
        instrument.Meter.Name == MeterName && instrument.Name.StartsWith("gen_ai.", StringComparison.Ordinal)
            ? new OpenTelemetry.Metrics.MetricStreamConfiguration { CardinalityLimit = seriesLimit, TagKeys = tenantLabel ? null : KeptWithoutTenant }
            : null;

    /// <summary>
    /// The GenAI operation of a request (OpenTelemetry's well-known values): <c>embeddings</c> for embedding models,
    /// <c>text_completion</c> for the legacy completions endpoint, <c>chat</c> otherwise.
    /// </summary>
    public static string OperationOf(RoutedRequest routed) =>
        routed?.Operation ?? (routed?.Local?.Kind == ModelKind.Embedding ? "embeddings" : "chat");

    /// <summary>Records one finished request (called once per request, where it is metered).</summary>
    public void Record(RoutedRequest routed, int promptTokens, int completionTokens, GenerationResult? timing, UsageOutcome outcome)
    {
        ArgumentNullException.ThrowIfNull(routed);
        var tags = new System.Diagnostics.TagList
        {
            { "gen_ai.operation.name", OperationOf(routed) },
            { "gen_ai.provider.name", ProviderName },
            { "gen_ai.request.model", routed.Model },
            { TenantTag, routed.Caller.TenantId },
        };
        if (outcome is not UsageOutcome.Completed)
        {
            tags.Add("error.type", outcome.ToString().ToLowerInvariant());
        }

        if (outcome is not UsageOutcome.Refused)
        {
            var input = tags;
            input.Add("gen_ai.token.type", "input");
            _tokenUsage.Record(promptTokens, input);
            if (completionTokens > 0 || routed.Local?.Kind != ModelKind.Embedding)
            {
                var output = tags;
                output.Add("gen_ai.token.type", "output");
                _tokenUsage.Record(completionTokens, output);
            }
        }

        if (timing is null)
        {
            return;
        }

        _requestDuration.Record(timing.Duration.TotalSeconds, tags);
        if (timing.TimeToFirstToken is { } first)
        {
            _timeToFirstToken.Record(first.TotalSeconds, tags);
            if (timing.CompletionTokens > 1)
            {
                _timePerOutputToken.Record((timing.Duration - first).TotalSeconds / (timing.CompletionTokens - 1), tags);
            }
        }
    }
}
