namespace Sovereign.Gateway.Routing;

/// <summary>Audits how a locally run request ended, however it ended (completed, failed or the client left).</summary>
internal sealed class LocalAccounting(InferenceRouter router, RoutedRequest routed, int promptTokens) : IAsyncDisposable
{
    /// <summary>Tokens generated so far (set by the handler when it knows them).</summary>
    public int? CompletionTokens { get; set; }

    public async ValueTask DisposeAsync() =>
        await router.CompleteAsync(routed, promptTokens, CompletionTokens ?? 0, CompletionTokens is null ? "failed" : "completed");
}
