namespace Sovereign.Gateway.Routing;

/// <summary>
/// Audits how a locally run request ended, however it ended (completed, failed or the client left), with the
/// request's language (detected here, after the response, so detection never delays the first token).
/// </summary>
internal sealed class LocalAccounting(InferenceRouter router, LanguageRouting languages, RoutedRequest routed, int promptTokens, string languageSample) : IAsyncDisposable
{
    /// <summary>Tokens generated so far (set by the handler when it knows them).</summary>
    public int? CompletionTokens { get; set; }

    public async ValueTask DisposeAsync()
    {
        routed.Language ??= languages.DetectForUsage(languageSample);
        await router.CompleteAsync(routed, promptTokens, CompletionTokens ?? 0, CompletionTokens is null ? "failed" : "completed");
    }
}
