using Sovereign.Gateway.Metering;
using Sovereign.Inference.Engine;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.Routing;

/// <summary>
/// Closes the books of one locally run request however it ends: the usage record and the settlement (committed
/// before the client receives its last byte, so a completed request is always metered), the audit entry, and the
/// request's language (detected here, so detection never delays the first token).
/// </summary>
internal sealed class LocalAccounting(
    InferenceRouter router, RequestMetering metering, LanguageRouting languages, RoutedRequest routed, MeterTicket ticket, int promptTokens, string languageSample, CancellationToken aborted)
    : IAsyncDisposable
{
    private bool _finished;

    /// <summary>Tokens generated so far, for a request that ends early.</summary>
    public int CompletionTokens { get; set; }

    /// <summary>Records a completed request; call before writing the response's last bytes.</summary>
    public Task CompleteAsync(IReadOnlyList<GenerationResult> results) =>
        FinishAsync(results.Sum(r => r.CompletionTokens), Combine(results), UsageOutcome.Completed);

    public async ValueTask DisposeAsync()
    {
        if (!_finished)
        {
            await FinishAsync(CompletionTokens, null, aborted.IsCancellationRequested ? UsageOutcome.Cancelled : UsageOutcome.Failed);
        }
    }

    private async Task FinishAsync(int completionTokens, GenerationResult? timing, UsageOutcome outcome)
    {
        _finished = true;
        routed.Language ??= languages.DetectForUsage(languageSample);
        // The ledger record and the audit entry are independent commits: wait for both at once.
        await Task.WhenAll(
            metering.FinishAsync(routed, ticket, promptTokens, completionTokens, timing, outcome),
            router.CompleteAsync(routed, promptTokens, completionTokens, outcome.ToString().ToLowerInvariant()));
    }

    /// <summary>The n choices of a request as one: their tokens and compute add up; it lasted as long as the longest.</summary>
    private static GenerationResult? Combine(IReadOnlyList<GenerationResult> results) => results.Count == 0 ? null : new GenerationResult
    {
        FinishReason = results[0].FinishReason,
        PromptTokens = results[0].PromptTokens,
        CompletionTokens = results.Sum(r => r.CompletionTokens),
        QueueTime = results.Max(r => r.QueueTime),
        TimeToFirstToken = results.Min(r => r.TimeToFirstToken),
        Duration = results.Max(r => r.Duration),
        ComputeSeconds = results.Sum(r => r.ComputeSeconds),
    };
}
