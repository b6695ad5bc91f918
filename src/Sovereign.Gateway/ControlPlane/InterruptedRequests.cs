using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Hosting;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Observability;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;
using Sovereign.Storage;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// At start, before the server listens: closes the requests this gateway's previous process allowed and never
/// recorded an outcome for (it was killed or crashed between the decision and the outcome, which otherwise stayed
/// open forever, indistinguishable from a request still running). Each gets an <c>inference.interrupted</c> entry
/// naming the decision, with unknown (null) tokens, and a usage record at no cost (outcome failed, code
/// <see cref="Code"/>) in the same transaction, so the ledger and the audit log agree and invoices list it.
/// </summary>
/// <remarks>
/// Sound only where no other live process can be writing decisions under this gateway id: one server per SQLite file
/// and one server alone on PostgreSQL hold the database exclusively (<see cref="ServerDatabaseLock"/>), so whoever
/// wrote an earlier decision has stopped. The gateways of a cluster share the database and nothing stops two of them
/// from sharing an id, so a cluster gateway closes nothing (event 4213). A killed process's reservation is not held
/// here: on one machine it lived in that process's grain and went with it; in a cluster the tenant grain releases
/// it after <c>Sovereign:Metering:ReservationLifetime</c> (event 8101).
/// </remarks>
internal sealed class InterruptedRequests(
    Lazy<AuditLog> audit,
    Lazy<UsageLedger> ledger,
    Lazy<ControlPlaneStore> store,
    Lazy<PriceBookProvider> prices,
    IOptions<SovereignOptions> options,
    IOptions<SovereignClusterOptions> cluster,
    ILogger<InterruptedRequests> logger) : IHostedService
{
    /// <summary>The usage record's code (outcome failed): the process stopped before the request's outcome was recorded.</summary>
    public const string Code = "interrupted";

    /// <summary>The currency of a record whose tenant's plan has none (as a refusal's record on an unpriced plan).</summary>
    private const string UnpricedCurrency = "USD";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Resolved only past this check: a cluster node may hold a database role that cannot open the ledger.
        var gateway = options.Value.NodeId;
        if (string.Equals(options.Value.Database.Provider, nameof(SqlProvider.PostgreSql), StringComparison.OrdinalIgnoreCase) && cluster.Value.IsDistributed)
        {
            GatewayLog.InterruptedNotClosedInCluster(logger, gateway);
            return;
        }

        try
        {
            var open = await audit.Value.FindOpenDecisionsAsync(gateway, cancellationToken);
            foreach (var decision in open.Decisions)
            {
                await CloseAsync(decision);
            }

            await audit.Value.MarkOutcomesCheckedAsync(gateway, open.CheckedThrough, cancellationToken);
        }
        catch (Exception ex) when (ex is not (OperationCanceledException or AuditIntegrityException))
        {
            // Serving goes on: the decisions stay open as they were, and the next start looks again. A log that was
            // truncated or rewritten stops the start instead (serve exits 3): nothing may be appended to it.
            GatewayLog.InterruptedNotClosed(logger, ex, gateway);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task CloseAsync(AuditEntry decision)
    {
        var requestId = decision.Details["request_id"];

        // The ledger may already hold the request (a ledger that commits on its own): then its tokens are known.
        var recorded = await ledger.Value.GetAsync(requestId);
        var details = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["request_id"] = requestId,
            ["outcome"] = Code,
            ["decision_sequence"] = decision.Sequence.ToString(CultureInfo.InvariantCulture),
            ["reason"] = recorded is null
                ? "the gateway process stopped (killed or crashed) before it recorded how this request ended; the tokens delivered before it stopped are unknown and nothing was billed"
                : "the gateway process stopped after the usage record and before this outcome entry; the tokens are the usage record's",
        };
        if (decision.Details.TryGetValue("endpoint", out var endpoint))
        {
            details["endpoint"] = endpoint;
        }

        var entry = new AuditRecord
        {
            Kind = AuditKind.Inference,
            Actor = decision.Actor,
            Action = AuditActions.InferenceInterrupted,
            Tenant = decision.Tenant,
            KeyId = decision.KeyId,
            Model = decision.Model,
            Gateway = decision.Gateway,
            Node = decision.Node,
            Jurisdiction = decision.Jurisdiction,
            Decision = AuditDecision.Allowed,
            PromptTokens = recorded?.PromptTokens,
            CompletionTokens = recorded?.CompletionTokens,
            Details = details,
        };

        var usage = recorded is null ? await UsageRecordAsync(decision, requestId) : null;
        var carried = usage is null ? null : ledger.Value.Carry(usage);
        await audit.Value.AppendAsync(entry, carried);
        if (carried is not null)
        {
            await carried.Stored;
        }
        else if (usage is not null)
        {
            await ledger.Value.AppendAsync(usage); // a ledger that commits on its own (PowerLoss durability)
        }

        GatewayLog.InterruptedRequestClosed(logger, requestId, decision.Sequence, decision.Tenant);
    }

    /// <summary>The request's usage record at no cost, at its decision's time (its arrival, to the millisecond or so).</summary>
    private async Task<UsageRecord?> UsageRecordAsync(AuditEntry decision, string requestId)
    {
        if (decision.Tenant is not { } tenant || decision.Model is not { } model)
        {
            return null;
        }

        var plan = tenant == Caller.AnonymousTenant ? "default" : (await store.Value.GetTenantAsync(tenant))?.Plan ?? "default";
        var arrivedAt = DateTimeOffset.FromUnixTimeMilliseconds(decision.Timestamp);
        if (arrivedAt < ledger.Value.PurgedBefore)
        {
            return null; // past the ledger's retention: its day is closed, and the audit entry says enough
        }

        return new UsageRecord
        {
            RequestId = requestId,
            Timestamp = arrivedAt,
            Tenant = tenant,
            KeyId = decision.KeyId ?? "-",
            Model = model,
            Node = decision.Node ?? decision.Gateway ?? "-",
            Jurisdiction = decision.Jurisdiction ?? "-",
            Outcome = UsageOutcome.Failed,
            RefusalCode = Code,
            Currency = prices.Value.Current.FindPlan(plan)?.Currency ?? UnpricedCurrency,
        };
    }
}
