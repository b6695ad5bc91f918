using Microsoft.Extensions.DependencyInjection;

namespace Sovereign.Gateway.Observability;

/// <summary>
/// The gateway's operator log events, source-generated with stable event ids (4xxx) so that alerts and dashboards
/// can match them. Messages carry paths without query strings, ids, statuses and codes; never content or secrets.
/// </summary>
internal static partial class GatewayLog
{
    /// <summary>The category the request-level events are written under.</summary>
    public const string RequestsCategory = "Sovereign.Gateway.Requests";

    /// <summary>
    /// A refusal: at Information, but at Debug for a 401 (no key, an unknown or malformed key, a wrong token): anyone
    /// can send any number of those, so at Information an anonymous client decided the log's volume. They are still
    /// counted by the request metrics (status 401).
    /// </summary>
    [LoggerMessage(EventId = 4001, EventName = "RequestRefused",
        Message = "Refused {Method} {Path} with {Status} {ErrorType}/{Code} (param {Param}); request {RequestId}")]
    public static partial void RequestRefused(ILogger logger, LogLevel level, string method, string? path, int status, string errorType, string? code, string? param, string requestId);

    [LoggerMessage(EventId = 4002, EventName = "RequestShed", Level = LogLevel.Warning,
        Message = "Shed {Method} {Path} with {Status} {Code}: no capacity; request {RequestId}")]
    public static partial void RequestShed(ILogger logger, string method, string? path, int status, string? code, string requestId);

    [LoggerMessage(EventId = 4003, EventName = "RequestFailed", Level = LogLevel.Error,
        Message = "Request {Method} {Path} failed; request {RequestId}")]
    public static partial void RequestFailed(ILogger logger, Exception? exception, string method, string? path, string requestId);

    /// <summary>
    /// A client that reset its connection while its request was read: nothing was answered, so nothing was refused or
    /// failed. At Debug, since any client can send those (each was a 400 at Information, or a 4003 at Error).
    /// </summary>
    [LoggerMessage(EventId = 4007, EventName = "ClientLeft", Level = LogLevel.Debug,
        Message = "The client of {Method} {Path} reset its connection before it was answered")]
    public static partial void ClientLeft(ILogger logger, string method, string? path);

    /// <summary>At Debug, as the 401 itself: an anonymous client must not decide the log's volume.</summary>
    [LoggerMessage(EventId = 4004, EventName = "MetricsScrapeRefused", Level = LogLevel.Debug,
        Message = "Refused a /metrics scrape without the operator token")]
    public static partial void MetricsScrapeRefused(ILogger logger);

    /// <summary>
    /// A revoked key presented again: at Information although the answer is a 401, since only someone who once held a
    /// valid key can cause it (a leaked key still in use, or a client not yet rotated).
    /// </summary>
    [LoggerMessage(EventId = 4005, EventName = "RevokedKeyUsed", Level = LogLevel.Information,
        Message = "Refused revoked key {KeyId} of tenant {TenantId}")]
    public static partial void RevokedKeyUsed(ILogger logger, string keyId, string tenantId);

    /// <summary>An expired key presented: a client still on a key whose validity the operator limited.</summary>
    [LoggerMessage(EventId = 4006, EventName = "ExpiredKeyUsed", Level = LogLevel.Information,
        Message = "Refused expired key {KeyId} of tenant {TenantId}")]
    public static partial void ExpiredKeyUsed(ILogger logger, string keyId, string tenantId);

    /// <summary>Once until it reads again: a scrape's sovereign_cluster_nodes could not be read, so it has no series.</summary>
    [LoggerMessage(EventId = 4166, EventName = "PoolMetricsUnread", Level = LogLevel.Warning,
        Message = "The node registry did not answer a /metrics scrape within {Seconds} s: sovereign_cluster_nodes is left out until it does")]
    public static partial void PoolMetricsUnread(ILogger logger, Exception? exception, double seconds);

    [LoggerMessage(EventId = 4100, EventName = "NodeUnreachable", Level = LogLevel.Warning,
        Message = "Node {NodeId} could not be reached; routing around it until it reports again")]
    public static partial void NodeUnreachable(ILogger logger, string nodeId);

    [LoggerMessage(EventId = 4101, EventName = "RequestFailedOver", Level = LogLevel.Warning,
        Message = "Request {RequestId} failed over from unreachable node {FailedNode}: {Reason}")]
    public static partial void RequestFailedOver(ILogger logger, string requestId, string failedNode, string reason);

    [LoggerMessage(EventId = 4130, EventName = "RequestNotStartedByNode", Level = LogLevel.Information,
        Message = "Request {RequestId} was not started by node {NodeId} ({Status} {Code}); routed again to another node the policy allows, around that one until it reports again")]
    public static partial void RequestNotStartedByNode(ILogger logger, string requestId, string nodeId, int status, string? code);

    [LoggerMessage(EventId = 4131, EventName = "StreamCutAtShutdown", Level = LogLevel.Warning,
        Message = "Cut {Method} {Path} at shutdown: the stop's grace ran out while its answer streamed; it ended with a server_shutting_down error event, billed for what it delivered")]
    public static partial void StreamCutAtShutdown(ILogger logger, string method, string? path);

    [LoggerMessage(EventId = 4115, EventName = "EngineClosedConnection", Level = LogLevel.Debug,
        Message = "The engine at {Upstream} closed a connection without answering ({Reason}); the request was sent again on another connection")]
    public static partial void EngineClosedConnection(ILogger logger, string upstream, string reason);

    [LoggerMessage(EventId = 4102, EventName = "UpstreamFailedMidAnswer", Level = LogLevel.Warning,
        Message = "The engine at {Upstream} stopped mid-answer (streamed: {Streamed}, chunks delivered: {Delivered}); the client was told and is billed for what it received")]
    public static partial void UpstreamFailedMidAnswer(ILogger logger, string? upstream, bool streamed, int delivered);

    [LoggerMessage(EventId = 4103, EventName = "UpstreamAnswerInvalid", Level = LogLevel.Warning,
        Message = "The engine at {Upstream} answered in a form that cannot be relayed or metered ({Code}): {Problem}")]
    public static partial void UpstreamAnswerInvalid(ILogger logger, string? upstream, string code, string problem);

    /// <summary>
    /// At Error; at Debug when the database is down (<see cref="ControlPlane.DatabaseHealth"/>), whose outage is logged
    /// once (4160): each refused request logged this with a stack trace, about 50 lines a request.
    /// </summary>
    [LoggerMessage(EventId = 4104, EventName = "DecisionAuditFailed",
        Message = "The audit entry of request {RequestId}'s routing decision could not be committed; the request was refused before any work was sent")]
    public static partial void DecisionAuditFailed(ILogger logger, LogLevel level, Exception exception, string requestId);

    [LoggerMessage(EventId = 4105, EventName = "RegistryRefreshFailed", Level = LogLevel.Warning,
        Message = "Could not re-read the node registry; routing keeps the last verified view meanwhile")]
    public static partial void RegistryRefreshFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 4106, EventName = "PoolSlotReleaseFailed", Level = LogLevel.Warning,
        Message = "Could not give back request {RequestId}'s slot of pool {Pool}: the gateway holding the pool's count did not answer (a successor rebuilds the count from the gateways' tables, without it)")]
    public static partial void PoolSlotReleaseFailed(ILogger logger, Exception exception, string requestId, string pool);

    [LoggerMessage(EventId = 4107, EventName = "UsageAboveReservation", Level = LogLevel.Warning,
        Message = "Request {RequestId}: node {Node} reported {PromptTokens} prompt and {CompletionTokens} completion tokens, more than the request could use ({PromptBound} and {OutputBound}); billed at the bound. The engine does not honour max_tokens or miscounts: look at it")]
    public static partial void UsageAboveReservation(ILogger logger, string requestId, string node, int promptTokens, int completionTokens, long promptBound, long outputBound);

    [LoggerMessage(EventId = 4110, EventName = "ComputeAboveReservation", Level = LogLevel.Warning,
        Message = "Request {RequestId} ran {ComputeSeconds} compute seconds on node {Node}, more than the {Bound} its reservation was made for; billed at the bound")]
    public static partial void ComputeAboveReservation(ILogger logger, string requestId, string node, decimal computeSeconds, decimal bound);

    [LoggerMessage(EventId = 4111, EventName = "NodeNotTrusted", Level = LogLevel.Warning,
        Message = "Node {NodeId} ({Jurisdiction}) is registered, but its credential is not signed by this gateway's operator key or does not bind its id, jurisdiction and URL: it is never routed to. Give it the operator's key (operator-key.pem) or join it with a token (sovereign nodes join-token), then restart it")]
    public static partial void NodeNotTrusted(ILogger logger, string nodeId, string jurisdiction);

    [LoggerMessage(EventId = 4152, EventName = "NodeCredentialKeyRefused", Level = LogLevel.Warning,
        Message = "Node {NodeId} ({Jurisdiction}) is not trusted: {Reason}. See the operator guide's \"Rotating secrets\" (the operator key)")]
    public static partial void NodeCredentialKeyRefused(ILogger logger, string nodeId, string jurisdiction, string reason);

    [LoggerMessage(EventId = 4153, EventName = "OperatorKeyHistoryLoaded", Level = LogLevel.Information,
        Message = "Signing with operator key {KeyId}; the operator key history ({Path}) holds {Keys} keys, {Compromised} marked compromised: what they signed is verified with them")]
    public static partial void OperatorKeyHistoryLoaded(ILogger logger, string keyId, string path, int keys, int compromised);

    [LoggerMessage(EventId = 4112, EventName = "ReservationRenewalFailed", Level = LogLevel.Warning,
        Message = "Could not renew the budget reservations of {Count} running requests of tenant {Tenant}; tried again shortly (they expire after the reservation lifetime without it)")]
    public static partial void ReservationRenewalFailed(ILogger logger, Exception exception, string tenant, int count);

    [LoggerMessage(EventId = 4114, EventName = "SettlementFailed", Level = LogLevel.Warning,
        Message = "Request {RequestId} of tenant {Tenant} is billed (its usage record committed), but its budget reservation could not be settled: the tenant's grain did not answer (its gateway stopping or gone). The answer was delivered; the grain's next activation counts the spend from the ledger, and one that outlived this settles the reservation from the ledger when it expires (event 8104)")]
    public static partial void SettlementFailed(ILogger logger, Exception exception, string requestId, string tenant);

    [LoggerMessage(EventId = 4123, EventName = "SettlementRefused", Level = LogLevel.Error,
        Message = "Request {RequestId} of tenant {Tenant} is billed (its usage record committed), but the tenant's grain answered its settlement with {ExceptionType}: a refused argument or a defect in the grain, not an unavailable member (that is event 4114). The answer was delivered; the reservation holds its money until it expires, when the grain settles it from the ledger (event 8104). Report it with this entry's exception")]
    public static partial void SettlementRefused(ILogger logger, Exception exception, string requestId, string tenant, string exceptionType);

    [LoggerMessage(EventId = 4117, EventName = "RateLimitSummaryFailed", Level = LogLevel.Error,
        Message = "The audit entry counting {Count} rate-limit refusals of tenant {Tenant} could not be written; the counts are kept and written with the next interval's")]
    public static partial void RateLimitSummaryFailed(ILogger logger, Exception exception, string tenant, long count);

    [LoggerMessage(EventId = 4116, EventName = "RequestRefundFailed", Level = LogLevel.Warning,
        Message = "A request of tenant {Tenant} refused as the client's mistake where it was relayed could not be given back to its requests-per-minute limit: the tenant's grain did not answer. It stays counted until the minute passes")]
    public static partial void RequestRefundFailed(ILogger logger, Exception exception, string tenant);

    [LoggerMessage(EventId = 4118, EventName = "RateLimitRefusalsCounted", Level = LogLevel.Information,
        Message = "Key {KeyId} of tenant {Tenant} was refused {Count} more times by its rate limits between {FirstAt:O} and {LastAt:O}; counted into one audit entry (inference.rate_limited), each at Debug")]
    public static partial void RateLimitRefusalsCounted(ILogger logger, string tenant, string keyId, long count, DateTimeOffset firstAt, DateTimeOffset lastAt);

    /// <summary>
    /// A key's refused reads of its own records after its first (which is a 4001 at Information), each at Debug: a
    /// tenant flooding <c>/v1/usage</c> or <c>/v1/models</c> chose the log's volume.
    /// </summary>
    /// <summary>
    /// A known caller's repeated refusals of one status and code, each at Debug after the first (<see cref="RefusalLogSummary"/>):
    /// a client sending only bad requests chose the log's volume.
    /// </summary>
    [LoggerMessage(EventId = 4170, EventName = "RefusalsCounted", Level = LogLevel.Information,
        Message = "{Caller} was refused {Count} more requests with {Status} {Code} between {FirstAt:O} and {LastAt:O}, each at Debug")]
    public static partial void RefusalsCounted(ILogger logger, string caller, int status, string? code, long count, DateTimeOffset firstAt, DateTimeOffset lastAt);

    [LoggerMessage(EventId = 4150, EventName = "TenantReadRefusalsCounted", Level = LogLevel.Information,
        Message = "Key {KeyId} of tenant {Tenant} was refused {Count} more reads of its records by the tenant read limit between {FirstAt:O} and {LastAt:O}, each at Debug")]
    public static partial void TenantReadRefusalsCounted(ILogger logger, string tenant, string keyId, long count, DateTimeOffset firstAt, DateTimeOffset lastAt);

    /// <summary>At Error; at Debug during a database outage, logged once (4160), as <see cref="DecisionAuditFailed"/>.</summary>
    [LoggerMessage(EventId = 4109, EventName = "RefusalNotRecorded",
        Message = "Request {RequestId} was refused before any work because the audit log could not record it, and the usage ledger could not record the refusal either (a full or failing disk?); its budget reservation was given back")]
    public static partial void RefusalNotRecorded(ILogger logger, LogLevel level, Exception exception, string requestId);

    /// <summary>
    /// A stream under way when the database failed: neither its outcome nor its usage could be recorded, so it is not
    /// billed and its reservation was given back. At Warning, one per stream cut (bounded by the streams in flight at
    /// the failure); the outage itself is 4160.
    /// </summary>
    /// <summary>
    /// A cluster node's stream ended with its own database refusal (<c>audit_unavailable</c>, <c>storage_unavailable</c>)
    /// after its headers: at Warning, as its unstreamed 503 passed on is (4001); the node logs its outage (4160).
    /// </summary>
    [LoggerMessage(EventId = 4143, EventName = "NodeRefusedMidAnswer", Level = LogLevel.Warning,
        Message = "The node at {Upstream} could not record this request in its database and ended its stream with {Code} after {Delivered} content chunks: its database's refusal, passed on to the client (the node logs its outage), not a fault of the node")]
    public static partial void NodeRefusedMidAnswer(ILogger logger, string? upstream, string? code, int delivered);

    /// <summary>At Error: only the operator can mend it (the engine's URL, or the setting), and it refuses every request sent there.</summary>
    [LoggerMessage(EventId = 4144, EventName = "EngineAddressRefused", Level = LogLevel.Error,
        Message = "The engine at {Upstream} was not connected to: {Problem} Its URL was stored before this rule, or set where it is not checked (Sovereign:Engines, a copied or imported database), or its name resolves elsewhere now; register it at another address or set the option. The request was treated as unable to reach it")]
    public static partial void EngineAddressRefused(ILogger logger, string upstream, string problem);

    /// <summary>
    /// Once per run of failures: the usage ledger's background fold of period aggregates failed. A database's refusal is
    /// named without its stack (an outage already logs 4160 once, with no stack trace per attempt); anything else with it.
    /// </summary>
    public static void AggregateFoldFailed(ILogger logger, Exception exception)
    {
        if (exception is System.Data.Common.DbException)
        {
            AggregateFoldFailed(logger, null, $"{exception.GetType().Name}: {exception.Message}");
        }
        else
        {
            AggregateFoldFailed(logger, exception, exception.GetType().Name);
        }
    }

    [LoggerMessage(EventId = 4193, EventName = "AggregateFoldFailed", Level = LogLevel.Warning,
        Message = "The usage ledger could not fold its new records into the period aggregates ({Error}); it tries again every Sovereign:Metering:AggregateFoldIntervalMs. Budgets, usage and invoices stay exact (readers add the unfolded records), only slower while this lasts")]
    private static partial void AggregateFoldFailed(ILogger logger, Exception? exception, string error);

    [LoggerMessage(EventId = 4162, EventName = "StreamNotBilled", Level = LogLevel.Warning,
        Message = "Request {RequestId}'s stream was under way when the database failed: its {PromptTokens} prompt and {CompletionTokens} completion tokens could not be recorded now: their usage record, priced as the request would have been billed, is written when the database is back (its budget reservation settled at that cost now), or, past the outcomes kept for the database's return (4141), they go unbilled and the reservation is given back")]
    public static partial void StreamNotBilled(ILogger logger, string requestId, int promptTokens, int completionTokens);

    [LoggerMessage(EventId = 4201, EventName = "AuditArchived", Level = LogLevel.Information,
        Message = "Archived audit entries {FirstSequence}..{LastSequence} ({Entries} entries, written before {Before:u}) to {Path} (SHA-256 {Sha256}); it verified with the operator's public key, and {Removed} entries left the database under a signed archive record")]
    public static partial void AuditArchived(ILogger logger, long? firstSequence, long? lastSequence, long entries, DateTimeOffset before, string path, string? sha256, long removed);

    [LoggerMessage(EventId = 4202, EventName = "AuditArchiveFailed", Level = LogLevel.Error,
        Message = "Archiving the audit entries written before {Before:u} into {Directory} failed: {Reason}. Entries leave the database only after their file verified; the next run, in {Interval}, tries again")]
    public static partial void AuditArchiveFailed(ILogger logger, Exception? exception, DateTimeOffset before, string directory, string reason, TimeSpan interval);

    [LoggerMessage(EventId = 4203, EventName = "AuditArchiveBusy", Level = LogLevel.Information,
        Message = "Another process (a gateway or 'sovereign audit archive') is archiving the audit log now; this run (entries before {Before:u}) is skipped, the next one tries again")]
    public static partial void AuditArchiveBusy(ILogger logger, DateTimeOffset before);

    [LoggerMessage(EventId = 4204, EventName = "AuditArchiveNothingDue", Level = LogLevel.Debug,
        Message = "No audit entry written before {Before:u} can leave the database (none, or only the newest): nothing to archive")]
    public static partial void AuditArchiveNothingDue(ILogger logger, DateTimeOffset before);

    [LoggerMessage(EventId = 4211, EventName = "InterruptedRequestClosed", Level = LogLevel.Warning,
        Message = "Request {RequestId} (decision entry {DecisionSequence}, tenant {Tenant}) was allowed by this gateway's previous process, which stopped before it recorded how the request ended; recorded now as inference.interrupted, its tokens unknown and nothing billed")]
    public static partial void InterruptedRequestClosed(ILogger logger, string requestId, long decisionSequence, string? tenant);

    [LoggerMessage(EventId = 4212, EventName = "InterruptedRequestsNotClosed", Level = LogLevel.Error,
        Message = "The requests a stopped process of gateway {Gateway} left without an outcome could not be closed; they stay open and are looked for again (at the next start; in a cluster, at the next round)")]
    public static partial void InterruptedNotClosed(ILogger logger, Exception exception, string gateway);

    // 4213 (InterruptedRequestsNotClosedInCluster) is retired: a cluster node now registers its process, and the
    // gateways close what a dead one left open (4214).

    [LoggerMessage(EventId = 4214, EventName = "InterruptedInstanceClosed", Level = LogLevel.Warning,
        Message = "Cluster process {Instance} ({Gateway}, a gateway or node) was declared dead by the cluster's membership, or is no longer listed there, and its heartbeats stopped; this gateway closed the {Count} requests it left without an outcome as inference.interrupted")]
    public static partial void InterruptedInstanceClosed(ILogger logger, string instance, string gateway, int count);

    /// <summary>The secret prefixes a path segment is redacted after: tenant keys, operator keys, node join tokens.</summary>
    private static readonly string[] SecretPrefixes = [Residency.ControlPlane.ApiKeySecrets.Prefix, ControlPlane.AdminToken.KeyPrefix, "sjt_"];

    /// <summary>
    /// A request's path as the log may hold it: escaped, so a decoded control character cannot forge a log line, and
    /// with any segment that is a secret (a key pasted where its id belongs: <c>keys revoke TENANT sk-sov-...</c>,
    /// <c>DELETE /admin/v1/operator-keys/sov-op-...</c>) cut after its prefix: it reached the log at Information.
    /// </summary>
    public static string LoggedPath(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return RedactSecrets(context.Request.Path.ToUriComponent());
    }

    /// <summary><paramref name="text"/> with every secret that starts with a known prefix cut to the prefix and <c>[redacted]</c>.</summary>
    public static string RedactSecrets(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var prefix in SecretPrefixes)
        {
            for (var at = text.IndexOf(prefix, StringComparison.Ordinal); at >= 0; at = text.IndexOf(prefix, at + prefix.Length, StringComparison.Ordinal))
            {
                var end = at + prefix.Length;
                while (end < text.Length && (char.IsAsciiLetterOrDigit(text[end]) || text[end] is '-' or '_' or '%'))
                {
                    end++;
                }

                text = string.Concat(text.AsSpan(0, at + prefix.Length), "[redacted]", text.AsSpan(end));
            }
        }

        return text;
    }

    /// <summary>
    /// Information for a known caller's first refusal of a status and code, Debug for the same ones after it, which
    /// <see cref="RefusalLogSummary"/> counts into one line per interval (4170).
    /// </summary>
    private static LogLevel FirstOrCounted(HttpContext context, int status, string? code, LogLevel level) =>
        level == LogLevel.Information && Hosting.KnownCallers.Who(context) is { } caller
            && context.RequestServices.GetService<RefusalLogSummary>() is { } summary && !summary.IsFirst(caller, status, code)
            ? LogLevel.Debug
            : level;

    /// <summary>Writes the event for an error answer: refusals (4xx), shedding (other 5xx) or faults (500).</summary>
    /// <param name="byACaller">Whether a refusal is an authenticated caller's (Information), not a stranger's (Debug).</param>
    public static void ErrorAnswered(ILogger logger, HttpContext context, int status, string errorType, string? code, string? param, Exception? exception, bool byACaller,
        bool databaseOutage = false)
    {
        var method = context.Request.Method;
        var path = LoggedPath(context);
        // The id the client was given (x-request-id), so an operator finds why a request a tenant quotes was refused:
        // no line said which request it was (the console format writes no scopes, and hosting's scope is off).
        var requestId = Hosting.RequestIds.Of(context);
        GatewayMetrics.ErrorAnswered(status, code);
        if (databaseOutage)
        {
            // Not shed for want of capacity: refused because the database cannot record it. The outage is logged once
            // (4160) and counted (sovereign_database_refusals); each refusal was a 4002 "no capacity" at Warning.
            RequestRefused(logger, LogLevel.Debug, method, path, status, errorType, code, param, requestId);
        }
        else if (status == StatusCodes.Status500InternalServerError)
        {
            RequestFailed(logger, exception, method, path, requestId);
        }
        else if (status >= 500 && code is OpenAI.OpenAIErrorResults.AuditUnavailableCode or OpenAI.OpenAIErrorResults.StorageUnavailableCode or OpenAI.OpenAIErrorResults.DatabaseDamagedCode)
        {
            // Not shed for want of capacity either: a cluster node this request was relayed to could not record it in
            // its database and refused it (its 503, passed on; the node logs its outage). This database is up, or the
            // refusal would be the outage's above.
            RequestRefused(logger, LogLevel.Warning, method, path, status, errorType, code, param, requestId);
        }
        else if (status >= 500 && (code is OpenAI.OpenAIErrorResults.ModelUnavailableCode || Routing.InferenceRouter.RefusedAsNotLoaded(context)))
        {
            // Not shed for want of capacity: the model was unloaded (or the server is stopping) under the request, or
            // is not loaded now, as the operator asked. Each of these was a 4002 "no capacity" at Warning, which reads
            // as overload; a known caller's repeated ones are counted as its other refusals are (4170).
            RequestRefused(logger, FirstOrCounted(context, status, code, LogLevel.Information), method, path, status, errorType, code, param, requestId);
        }
        else if (status >= 500)
        {
            RequestShed(logger, method, path, status, code, requestId);
        }
        else
        {
            // A rate-limited key's repeated 429s are counted, not logged one by one at Information: a flood chose the
            // log's volume as it did the audit log's; the summary's line (4118) says how many.
            // So are a known caller's repeated refusals of any other kind (a client sending only bad requests): the first
            // is logged, the ones after it counted, and a summary line (4170) says how many.
            var level = byACaller && !Metering.RateLimitRefusals.WasCounted(context) ? LogLevel.Information : LogLevel.Debug;
            RequestRefused(logger, status == StatusCodes.Status429TooManyRequests ? level : FirstOrCounted(context, status, code, level), method, path, status, errorType, code, param, requestId);
        }
    }
}
