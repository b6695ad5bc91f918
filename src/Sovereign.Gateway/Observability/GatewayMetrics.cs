using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Sovereign.Gateway.Observability;

/// <summary>
/// The gateway's own answers as an on-call engineer counts them: every error answer (a refusal, a shed request, a
/// fault) by its HTTP status and OpenAI error code, so an alert can tell a residency refusal from a spent budget, a
/// rate limit, a full queue or an outage (<c>sovereign_error_answers_total</c>). ASP.NET Core's
/// <c>http_server_request_duration_seconds</c> has the status by route, not the rule that refused.
/// </summary>
/// <remarks>
/// No tenant, key, model or request id: the series stay few whatever the callers send. The code is one of the
/// gateway's own (a fixed vocabulary), but a relayed engine's answer can carry another, so at most
/// <see cref="MaxCodes"/> distinct codes get a series of their own and any code not shaped like one
/// (<c>[a-z0-9_.]</c>, up to 64 characters) or past that bound counts as <c>other</c>.
/// </remarks>
internal static class GatewayMetrics
{
    /// <summary>The instrument of error answers (<c>sovereign_error_answers_total</c> on /metrics).</summary>
    public const string ErrorAnswersMetric = "sovereign.error_answers";

    /// <summary>How many distinct error codes get a series of their own; later ones are <c>other</c>.</summary>
    internal const int MaxCodes = 200;

    private static readonly Meter Meter = new(GenAiMetrics.MeterName);
    private static readonly Counter<long> ErrorAnswers = Meter.CreateCounter<long>(ErrorAnswersMetric, "{answer}",
        "Error answers (refusals, shed requests, faults) by HTTP status and OpenAI error code.");

    private static readonly ConcurrentDictionary<string, string> Codes = new(StringComparer.Ordinal);

    /// <summary>Counts one error answer.</summary>
    public static void ErrorAnswered(int status, string? code) =>
        ErrorAnswers.Add(1,
            new KeyValuePair<string, object?>("http.response.status_code", status),
            new KeyValuePair<string, object?>("code", Bounded(code)));

    /// <summary>The code as a label value: <c>none</c> when absent, <c>other</c> when not code-shaped or past the bound.</summary>
    internal static string Bounded(string? code)
    {
        if (string.IsNullOrEmpty(code))
        {
            return "none";
        }

        if (Codes.TryGetValue(code, out var known))
        {
            return known;
        }

        if (code.Length > 64 || !code.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '.') || Codes.Count >= MaxCodes)
        {
            return "other";
        }

        return Codes.GetOrAdd(code, code);
    }
}
