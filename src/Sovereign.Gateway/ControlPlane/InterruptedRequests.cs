using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Hosting;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Observability;
using Sovereign.Gateway.Routing;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;
using Sovereign.Storage;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Closes the requests a killed or crashed process allowed and never recorded an outcome for (they otherwise
/// stayed open forever, indistinguishable from a request still running). Each gets an <c>inference.interrupted</c>
/// entry naming the decision, with unknown (null) tokens, and a usage record at no cost (outcome failed, code
/// <see cref="Code"/>) in the same transaction, so the ledger and the audit log agree and invoices list it.
/// </summary>
/// <remarks>
/// A server that holds its database alone (one server per SQLite file, one server alone on PostgreSQL:
/// <see cref="ServerDatabaseLock"/>) closes its own gateway id's open decisions at start, before it listens: whoever
/// wrote them has stopped. The members of a cluster share the database and may share an id, so there each process,
/// gateway or node, registers itself at start (<see cref="GatewayInstance"/>, its silo address, which its decisions
/// carry) and every gateway closes the open decisions of a process (a node's own decisions for the work a gateway
/// relayed to it included) only once Orleans' membership table has declared its silo dead, or no longer lists it (Redis
/// restarted empty, or the entry was cleaned up), and its heartbeat count (<see cref="InstanceHeartbeat"/>) has not moved
/// for <see cref="SovereignClusterOptions.InterruptedGraceSeconds"/> (a silo that learns it is dead stops itself, and a
/// graceful stop finishes its requests within the host's shutdown timeout; a process that lost Redis but still writes
/// to PostgreSQL keeps counting, so it is never closed while it serves). One conditional UPDATE of
/// the process's row claims the work, so however many gateways look at once, one closes it; a closer that dies
/// before it finished is replaced once it is dead in turn. A killed process's reservation is not held here: on one
/// machine it lived in that process's grain and went with it; in a cluster the tenant grain releases it after
/// <c>Sovereign:Metering:ReservationLifetime</c> (event 8101).
/// </remarks>
internal sealed class InterruptedRequests(
    Lazy<AuditLog> audit,
    Lazy<UsageLedger> ledger,
    Lazy<ControlPlaneStore> store,
    Lazy<PriceBookProvider> prices,
    GatewayInstance instance,
    IOptions<SovereignOptions> options,
    IOptions<SovereignClusterOptions> cluster,
    IServiceProvider services,
    TimeProvider time,
    ILogger<InterruptedRequests> logger) : BackgroundService
{
    /// <summary>The usage record's code (outcome failed): the process stopped before the request's outcome was recorded.</summary>
    public const string Code = "interrupted";

    /// <summary>How often a cluster gateway looks for processes (gateways' and nodes') membership has declared dead.</summary>
    internal static readonly TimeSpan ClusterRoundInterval = TimeSpan.FromSeconds(5);

    /// <summary>The currency of a record whose tenant's plan has none (as a refusal's record on an unpriced plan).</summary>
    private const string UnpricedCurrency = InvoiceBuilder.NoCurrency;

    // Per process that membership shows dead or does not list: its heartbeat count as last seen, and since when (this
    // process's clock) the count has not moved. The grace runs from there; only counts are compared, never clocks.
    private readonly Dictionary<string, Sighting> _sightings = new(StringComparer.Ordinal);

    /// <summary>How many processes this gateway remembers a sighting of (for tests: it must not grow with every dead process).</summary>
    internal int RememberedProcesses => _sightings.Count;

    /// <summary>
    /// How long a process that membership does not list (Redis lost its table, or its entry was cleaned up) must have
    /// stopped counting heartbeats before it is taken for dead: the grace, but never less than the time membership
    /// takes to declare a silo dead nor three heartbeats, since nothing else says it stopped.
    /// </summary>
    internal TimeSpan UnlistedBound => TimeSpan.FromSeconds(Math.Max(
        Math.Max(0, cluster.Value.InterruptedGraceSeconds),
        Math.Max(cluster.Value.DeathSeconds, 3 * InstanceHeartbeat.Interval.TotalSeconds)));

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var gateway = options.Value.NodeId;
        if (instance.Id is { } id)
        {
            // Before the server listens, so the row exists before this process's first decision.
            await audit.Value.RegisterInstanceAsync(id, gateway, cancellationToken);
            if (cluster.Value.Role != ServerRole.Node)
            {
                // Only gateways close: a node may hold a database role that cannot open the ledger. A dead node's
                // process is closed by them like a dead gateway's (it is not restarted by any gateway).
                await base.StartAsync(cancellationToken);
            }

            return;
        }

        try
        {
            var open = await audit.Value.FindOpenDecisionsAsync(gateway, cancellationToken);
            foreach (var decision in open.Decisions)
            {
                await CloseAsync(decision, closedBy: null);
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

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        PeriodicRefresh.RunAsync(ClusterRoundInterval, _ => CloseDeadInstancesAsync(services.GetRequiredService<IClusterMembershipService>().CurrentSnapshot, stoppingToken),
            ex => GatewayLog.InterruptedNotClosed(logger, ex, options.Value.NodeId), stoppingToken);

    /// <summary>
    /// One round on a cluster gateway: every registered process nobody has closed yet that is gone is claimed (once
    /// across the cluster) and its open decisions closed. Gone: <paramref name="membership"/> shows it dead, or does not
    /// list it at all, and its heartbeat count (<see cref="InstanceHeartbeat"/>) has not moved for the grace (for one
    /// not listed, <see cref="UnlistedBound"/>). A process membership lists alive, or whose count moves, is never
    /// closed. Returns how many decisions this process closed.
    /// </summary>
    internal async Task<int> CloseDeadInstancesAsync(ClusterMembershipSnapshot membership, CancellationToken cancellationToken)
    {
        var me = instance.Id ?? throw new InvalidOperationException("Only a cluster gateway closes other processes' requests.");
        var now = time.GetUtcNow();
        var grace = TimeSpan.FromSeconds(Math.Max(0, cluster.Value.InterruptedGraceSeconds));
        var unlistedBound = UnlistedBound;
        var closed = 0;
        var unclosedInstances = await audit.Value.ListUnclosedInstancesAsync(cancellationToken);
        ForgetAllBut(unclosedInstances);
        var heartbeats = unclosedInstances.ToDictionary(u => u.Instance, u => u.Heartbeats, StringComparer.Ordinal);
        var members = new Dictionary<string, SiloStatus>(StringComparer.Ordinal);
        foreach (var member in membership.Members.Values)
        {
            members[member.SiloAddress.ToParsableString()] = member.Status;
        }

        foreach (var unclosed in unclosedInstances)
        {
            if (unclosed.Instance == me || !IsGone(unclosed.Instance))
            {
                continue;
            }

            // A claim held by a live closer is that closer's to finish; one held by a dead closer is taken over.
            var replacing = unclosed.Closer;
            if (replacing is not null && (replacing == me || !IsGone(replacing)))
            {
                continue;
            }

            if (!await audit.Value.TryClaimInstanceAsync(unclosed.Instance, me, replacing, cancellationToken))
            {
                continue; // another gateway claimed it first
            }

            var open = await audit.Value.FindOpenDecisionsAsync(unclosed, cancellationToken);
            foreach (var decision in open.Decisions)
            {
                await CloseAsync(decision, closedBy: options.Value.NodeId);
                closed++;
            }

            await audit.Value.MarkInstanceClosedAsync(unclosed.Instance, me, cancellationToken);
            GatewayLog.InterruptedInstanceClosed(logger, unclosed.Instance, unclosed.Gateway, open.Decisions.Count);
        }

        return closed;

        // Dead in the membership table or not in it, and not counting heartbeats for the bound. Membership alone was
        // the rule, so a process the table lost stayed open for ever; a heartbeat alone would close a process that only
        // lost PostgreSQL for a while, and membership alone could close one cut off from Redis while it still serves.
        bool IsGone(string silo)
        {
            var listed = members.TryGetValue(silo, out var status);
            if (listed && status != SiloStatus.Dead)
            {
                _sightings.Remove(silo);
                return false;
            }

            // A closer whose own row is closed counts no more heartbeats: null, as a process of an older version.
            long? count = heartbeats.TryGetValue(silo, out var beats) ? beats : null;
            if (!_sightings.TryGetValue(silo, out var seen) || seen.Heartbeats != count)
            {
                _sightings[silo] = seen = new Sighting(count, now);
            }
            else if (WallClock.WaitStart(now, seen.Since) != seen.Since)
            {
                // The clock stepped back: the wait starts again from now (closing is drastic, so never early), where it
                // stalled for the length of the step.
                _sightings[silo] = seen = seen with { Since = now };
            }

            return now - seen.Since >= (listed ? grace : unlistedBound);
        }
    }

    /// <summary>
    /// Forgets the processes nobody needs to close any more (closed, by this gateway or another): only the unclosed and
    /// their closers are looked at again. It kept one entry per dead process for as long as the gateway ran.
    /// </summary>
    private void ForgetAllBut(IReadOnlyList<AuditInstance> unclosed)
    {
        var wanted = unclosed.Select(u => u.Instance).Concat(unclosed.Select(u => u.Closer).OfType<string>()).ToHashSet(StringComparer.Ordinal);
        foreach (var silo in _sightings.Keys.Where(silo => !wanted.Contains(silo)).ToList())
        {
            _sightings.Remove(silo);
        }
    }

    private async Task CloseAsync(AuditEntry decision, string? closedBy)
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

        if (decision.Details.TryGetValue(InferenceRouter.ResponseIdDetail, out var responseId))
        {
            // The body's id, which the decision named (chosen before it): the client may have received it before the stop.
            details[InferenceRouter.ResponseIdDetail] = responseId;
        }

        if (closedBy is not null)
        {
            // The entry stays the dead process's (its gateway id, its decision's instance): this one only wrote it.
            details[AuditLog.InstanceDetail] = decision.Details[AuditLog.InstanceDetail];
            details["closed_by"] = closedBy;
            details["reason"] = (recorded is null, decision.Tenant == ClusterRelay.RelayTenant) switch
            {
                (true, true) => "the node process stopped (killed or crashed; its cluster member was declared dead or left membership, and its heartbeats stopped) before it recorded how this relayed request ended; the gateway that relayed it records the request's own outcome and bills the tenant for what reached the client",
                (true, false) => "the gateway process stopped (killed or crashed; its cluster member was declared dead or left membership, and its heartbeats stopped) before it recorded how this request ended; the tokens delivered before it stopped are unknown and nothing was billed",
                (false, true) => "the node process stopped (its cluster member was declared dead or left membership, and its heartbeats stopped) after the usage record and before this outcome entry; the tokens are the usage record's",
                (false, false) => "the gateway process stopped (its cluster member was declared dead or left membership, and its heartbeats stopped) after the usage record and before this outcome entry; the tokens are the usage record's",
            };
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

        // Reserved tenants (anonymous; cluster-relay, a node's relayed work) have no row.
        var plan = ResourceIds.ReservedTenantIds.Contains(tenant) ? "default" : (await store.Value.GetTenantAsync(tenant))?.Plan ?? "default";
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

    /// <summary>A process's heartbeat count as this gateway last saw it, and since when it has not moved.</summary>
    private readonly record struct Sighting(long? Heartbeats, DateTimeOffset Since);
}
