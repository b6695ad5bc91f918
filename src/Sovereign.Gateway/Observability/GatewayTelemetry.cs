using System.Diagnostics;

namespace Sovereign.Gateway.Observability;

/// <summary>
/// The gateway's trace source. Spans carry ids, models and token counts; never prompts or outputs. A governed request
/// has one span per stage of the pipeline, children of the request's span, so a trace shows where its time went:
/// <see cref="Authenticate"/>, <see cref="Route"/> (the residency decision), <see cref="AuditDecision"/> (its entry
/// committing, beside measuring and admission), <see cref="Measure"/>, <see cref="Admit"/> (rate limits, the
/// reservation, a reserved pool's slot), <see cref="Execute"/> (the route's fair queue, then the engine taking the
/// work, or a relayed engine's answer headers), and <see cref="Account"/> with <see cref="AuditOutcome"/> (the outcome
/// entry and the usage record, one commit) and <see cref="Settle"/> inside it.
/// </summary>
public static class GatewayTelemetry
{
    /// <summary>The <see cref="ActivitySource"/> name to subscribe to.</summary>
    public const string ActivitySourceName = "Sovereign.Gateway";

    public const string Authenticate = "sovereign.authenticate";
    public const string Route = "sovereign.route";
    public const string AuditDecision = "sovereign.audit.decision";
    public const string Measure = "sovereign.measure";
    public const string Admit = "sovereign.admit";
    public const string Execute = "sovereign.execute";
    public const string Account = "sovereign.account";
    public const string AuditOutcome = "sovereign.audit.outcome";
    public const string Settle = "sovereign.settle";

    /// <summary>
    /// The source. <c>using (Source.StartActivity(name)) { ... }</c> around a stage: null, and nearly free, when no one
    /// listens (spans are exported only where <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set).
    /// </summary>
    internal static readonly ActivitySource Source = new(ActivitySourceName);
}
