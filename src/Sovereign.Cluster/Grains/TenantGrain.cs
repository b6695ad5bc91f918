using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Hosting;
using Sovereign.Metering.Budgets;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Metering.RateLimiting;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Cluster.Grains;

/// <summary>
/// Loads the tenant's row on activation and writes through on every change. It also owns the tenant's money:
/// budgets and rate limits live in this one activation (single writer). Budgets are in the currency of the tenant's
/// plan (recorded with the limits) and count only spend in that currency. Settled spend is rebuilt on first use from
/// the ledger's durable per-tenant and per-key period aggregates, which survive the retention of raw rows, so a crash
/// loses only in-flight reservations, never settled spend. Reservations expire: a grain timer releases any held
/// longer than <see cref="TenantMoneyOptions.ReservationLifetime"/>, and the activation is not collected meanwhile.
/// </summary>
internal sealed class TenantGrain(
    ControlPlaneStore store, UsageLedger ledger, PriceBookProvider prices, IOptions<TenantMoneyOptions> money, TimeProvider time, ILogger<TenantGrain> logger)
    : Grain, ITenantGrain
{
    /// <summary>ISO 4217's "no currency": the budgets of a tenant whose plan is unknown (nothing is priced, so nothing is spent).</summary>
    internal const string NoCurrency = "XXX";

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);
    private TenantRecord? _tenant;
    private TenantLimits _limits = TenantLimits.None;
    private BudgetAccount? _budget;

    // Requests admitted while no budget applied (none set, or cleared), with the most each may cost: a budget set while
    // they run holds that for them, or it admitted new requests against all of it and was overspent when they settled.
    private readonly Dictionary<string, (string? KeyId, decimal MaxCost, string Currency, DateTimeOffset At)> _unbudgeted = new(StringComparer.Ordinal);
    private TenantRateLimiter? _rates;
    private IGrainTimer? _expiryTimer;

    // The budget leases granted to gateways, by id (one activation's: a new one knows none, and admits their requests afresh).
    private readonly Dictionary<Guid, Lease> _leases = [];
    private IGrainTimer? _leaseTimer;
    private readonly HashSet<SiloAddress> _recall = [];

    // Gateways that did not answer a reclaim or a recall: a reclaim closes their leases whole at once instead of waiting
    // for them again (each wait held up the tenant's requests), until one answers a recall or the cluster declares it dead.
    private readonly HashSet<SiloAddress> _unanswered = [];

    // The gateway each outstanding reservation was admitted at, where a lease's ask named it: one the cluster declares
    // dead neither settles nor renews them, so they are settled from the ledger (or released) then, not at their lifetime.
    private readonly Dictionary<string, (SiloAddress Holder, string? KeyId, bool LookedAtDeath)> _admittedAt = new(StringComparer.Ordinal);

    // When this grain first saw each gateway of _admittedAt dead: a reservation with no record is released a grace after.
    private readonly Dictionary<SiloAddress, DateTimeOffset> _deadSince = [];

    // Reservations released at their gateway's death with no usage record yet: looked up once more a lifetime later, so a
    // record committed as it died is charged once (a settlement that still comes is charged as unreserved, once).
    private readonly Dictionary<string, (string? KeyId, DateTimeOffset At)> _releasedAtDeath = new(StringComparer.Ordinal);

    // Outstanding reservations admitted at a gateway that did not name itself (an earlier release, before
    // AdmissionRequest.Gateway): any member the cluster declares dead may be theirs, so at each such death each is looked
    // up in the ledger and settled at its record's cost where it has one; never released before its lifetime, since
    // their gateway may be alive and still spending.
    private readonly Dictionary<string, string?> _holderUnknown = new(StringComparer.Ordinal);

    // The members this grain has seen dead since it began to keep _holderUnknown: a death not in it is new.
    private HashSet<SiloAddress>? _deadSeen;
    private HashSet<string> _revokedKeys = [];

    // The view of _tenant (the record it was made from) and its decision version, made once per change of the tenant.
    private TenantRecord? _viewOf;
    private TenantView? _view;
    private string? _decisionVersion;

    public override Task OnActivateAsync(CancellationToken cancellationToken) => StorageFailures.ActivateAsync(async () =>
    {
        _tenant = await store.GetTenantAsync(this.GetPrimaryKeyString(), cancellationToken);
        _revokedKeys = _tenant is null ? [] :
            (await store.ListKeysAsync(_tenant.Id, cancellationToken)).Where(k => k.RevokedAt is not null).Select(k => k.Id).ToHashSet(StringComparer.Ordinal);
        _limits = _tenant?.LimitsJson is { } json ? JsonSerializer.Deserialize<TenantLimits>(json, JsonOptions) ?? TenantLimits.None : TenantLimits.None;
    });

    public Task<TenantLimits> GetLimitsAsync() => Task.FromResult(_limits with { Currency = BudgetCurrency() });

    public async Task<TenantChangeResult> SetLimitsAsync(TenantLimits limits)
    {
        if (_tenant is null)
        {
            return new TenantChangeResult(TenantChangeRefusal.TenantNotFound);
        }

        var planCurrency = PlanCurrency(_tenant.Plan);
        if (limits.Budgets.Count > 0 && planCurrency is null)
        {
            return new TenantChangeResult(TenantChangeRefusal.PlanWithoutCurrency);
        }

        // Read in this turn, as the write: the audit entry states what the change replaced.
        var previous = await GetLimitsAsync();
        limits = limits with { Currency = limits.Budgets.Count > 0 ? planCurrency : null };
        if (_limits.HasSameSettingsAs(limits))
        {
            // The same limits again (as stored, currency included): nothing is written, and the counters and budgets
            // keep their state.
            return new TenantChangeResult(TenantChangeRefusal.None, PreviousLimits: previous, Unchanged: true);
        }

        var next = _tenant with { LimitsJson = JsonSerializer.Serialize(limits, JsonOptions), UpdatedAt = time.GetUtcNow().ToUnixTimeMilliseconds() };
        await store.UpsertTenantAsync(next);

        // Before the new limits apply: what the leases hold returns, and their holders ask again under the new limits.
        CloseAllLeases();
        await RecallClosedLeasesAsync();
        _tenant = next;
        _limits = limits;

        // Changed in place: rebuilt, every counter started full, so each edit gave a tenant at its limit a fresh minute.
        _rates?.UpdatePolicies(TenantRatePolicy(), KeyRatePolicies());
        if (_budget is { } account && limits.Budgets.Count > 0 && account.Currency == limits.Currency)
        {
            // Changed in place, so the reservations of requests in flight keep holding their money.
            await ApplyBudgetsAsync(account, replace: true);
        }
        else
        {
            if (_budget is { } cleared)
            {
                // Its requests in flight still spend: a budget set again must count them.
                foreach (var held in cleared.Snapshot().Reservations)
                {
                    _unbudgeted[held.ReservationId] = (held.KeyId, held.Amount, cleared.Currency, held.ReservedAt);
                }
            }

            _budget = null;
        }

        return new TenantChangeResult(TenantChangeRefusal.None, PreviousLimits: previous);
    }

    public async Task<TenantChangeResult> SetLimitsIfVersionAsync(TenantLimits limits, string? ifVersion)
    {
        // Compared and written in one turn of this activation: no other change can come between.
        if (_tenant is not null && ifVersion is not null && ifVersion != TenantVersions.Of(await GetLimitsAsync()))
        {
            return new TenantChangeResult(TenantChangeRefusal.VersionChanged);
        }

        return await SetLimitsAsync(limits);
    }

    public Task<AdmissionResult> AdmitAsync(AdmissionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return AdmitAtAsync(request, request.Gateway);
    }

    /// <summary>
    /// <see cref="AdmitAsync"/>, remembering the gateway that asked (<paramref name="gateway"/>; null: it did not say) while
    /// the admitted request's reservation is outstanding: a gateway declared dead neither settles nor renews it.
    /// </summary>
    private async Task<AdmissionResult> AdmitAtAsync(AdmissionRequest request, SiloAddress? gateway)
    {
        var result = await AdmitOnceAsync(request);
        if (result.Outcome is AdmissionOutcome.RateLimitedRequests or AdmissionOutcome.RateLimitedTokens or AdmissionOutcome.BudgetExceeded
            && !result.TooLarge && result.Budget is not { Final: true } && await ReclaimLeasesAsync())
        {
            // Refused while gateways' leases held what it needed (money, requests or tokens they have not admitted): the
            // leases close, what they held returns, and the request is admitted again against it, so a lease never makes
            // a tenant's limit refuse below what it allows. A budget's refusal had counted the request: counted once.
            if (result.Outcome == AdmissionOutcome.BudgetExceeded)
            {
                Rates().RefundRequest(request.KeyId);
            }

            result = await AdmitOnceAsync(request);
        }

        if (result.Allowed)
        {
            AdmittedAt(request.RequestId, request.KeyId, gateway);
        }

        return result;
    }

    private async Task<AdmissionResult> AdmitOnceAsync(AdmissionRequest request)
    {
        var now = time.GetUtcNow();
        var (view, refused) = TakeRate(request.KeyId, request.Tokens, now);
        if (refused is not null)
        {
            return refused;
        }

        return await ReserveAsync(request, view, now, request.RequestId);
    }

    /// <summary>
    /// Takes back what every lease holds and its gateway has not admitted yet; false when none holds anything. Each
    /// holder is asked first (<see cref="IBudgetLeaseHolderGrain.ReclaimAsync"/>, awaited at most
    /// <see cref="TenantMoneyOptions.LeaseReclaimTimeout"/>; a holder that did not answer an earlier reclaim or recall is not
    /// asked again until it answers a recall or is declared dead): it stops admitting from them and says what it had not taken, which returns, while
    /// what it took for requests whose relay has left stays in the lease (draining) for their confirmations. Closed
    /// whole and told, not awaited, as before: a lease without a holder, or whose holder does not answer (a gateway of
    /// an earlier release, one cut off: event 4186), whose confirmations on their way are then admitted afresh.
    /// </summary>
    /// <remarks>
    /// Closed whole, a lease's requests admitted at its gateway just before were admitted afresh at their confirmation,
    /// after the request that closed it had taken the money back: near a limit, a request another gateway had already
    /// relayed was refused (its node's work wasted), and each such fresh admission could close the next gateway's lease.
    /// This grain is not reentrant, so nothing else runs in it while the holders answer.
    /// </remarks>
    private async Task<bool> ReclaimLeasesAsync()
    {
        var open = _leases.Values.Where(l => !l.Draining && (l.Requests > 0 || l.Tokens > 0 || (l.BudgetApplies && l.Money > 0))).ToList();
        if (open.Count == 0)
        {
            return false;
        }

        var tenant = this.GetPrimaryKeyString();
        MoneyLog.LeasesReclaimed(logger, tenant, open.Count);
        var holders = open.Select(l => l.Holder).OfType<SiloAddress>().Distinct().ToList();
        ForgetDeadHolders();
        foreach (var silent in holders.Where(_unanswered.Contains))
        {
            // It did not answer last time: asked again, it would hold up the tenant's requests as long once more.
            MoneyLog.LeaseHolderNotAskedAgain(logger, tenant, silent.ToParsableString());
        }

        // A holder the cluster declared dead is not asked either (it cannot answer: the wait would be the whole timeout);
        // its leases close whole, as the lease timer would close them at its next tick.
        var members = Membership();
        var answers = await Task.WhenAll(holders.Where(h => !_unanswered.Contains(h) && members?.GetSiloStatus(h) != SiloStatus.Dead)
            .Select(async holder => (Holder: holder, Unused: await UnusedAtAsync(holder, tenant))));
        foreach (var (holder, unused) in answers)
        {
            if (unused is null)
            {
                _unanswered.Add(holder);
            }
        }

        foreach (var lease in open)
        {
            if (!_leases.ContainsKey(lease.Id))
            {
                continue;
            }

            var answered = lease.Holder is { } holder ? answers.FirstOrDefault(a => a.Holder.Equals(holder)).Unused : null;
            if (answered?.FirstOrDefault(u => u.LeaseId == lease.Id) is { } unused)
            {
                Drain(lease, unused);
                continue;
            }

            // No holder to ask, one that did not answer (told it is closed, not awaited), or one that no longer knows
            // the lease (it admits nothing from it: used up and confirmed, or not installed yet, which it then refuses).
            CloseLease(lease);
            if (answered is null && lease.Holder is { } unanswered)
            {
                _recall.Add(unanswered);
            }
        }

        _ = RecallClosedLeasesAsync();
        return true;
    }

    /// <summary>What a holder had not admitted of this tenant's leases, or null when it did not answer.</summary>
    private async Task<IReadOnlyList<BudgetLeaseUnused>?> UnusedAtAsync(SiloAddress holder, string tenant)
    {
        RequestContext.Set(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey, holder);
        try
        {
            return await GrainFactory.GetGrain<IBudgetLeaseHolderGrain>(holder.ToParsableString()).ReclaimAsync(tenant).WaitAsync(money.Value.LeaseReclaimTimeout);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            MoneyLog.LeaseReclaimUnanswered(logger, ex, tenant, holder.ToParsableString());
            return null;
        }
        finally
        {
            RequestContext.Remove(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey);
        }
    }

    /// <summary>
    /// Returns what <paramref name="unused"/> says the lease's holder had not admitted, and keeps the rest (the requests
    /// it admitted that this grain has not confirmed yet) until their confirmations come: the lease closes at the last of
    /// them, or at its term. Its holder admits nothing more from it.
    /// </summary>
    private void Drain(Lease lease, BudgetLeaseUnused unused)
    {
        var requests = Math.Clamp(unused.Requests, 0, lease.Requests);
        var tokens = Math.Clamp(unused.Tokens, 0, lease.Tokens);
        var money = lease.BudgetApplies ? Math.Clamp(unused.Money, 0m, lease.Money) : 0m;
        if (money > 0m)
        {
            // Carved off the lease's reservation and released: exactly that much returns to every budget it counts in.
            var part = lease.ReservationId + "/unused";
            if (_budget is not { } budget || !budget.TryCarve(lease.ReservationId, part, money, time.GetUtcNow()))
            {
                CloseLease(lease);
                return;
            }

            budget.Release(part);
            lease.Money -= money;
        }

        lease.Draining = true;
        lease.Requests -= requests;
        lease.Tokens -= tokens;
        Rates().Refund(lease.KeyId, tokens);
        RefundRequests(lease.KeyId, requests);
        if (lease.Requests == 0)
        {
            CloseLease(lease);
            return;
        }

        MoneyLog.LeaseReclaimedKeeping(logger, lease.Id, this.GetPrimaryKeyString(), lease.Requests, lease.BudgetApplies ? lease.Money : 0m);
    }

    /// <summary>
    /// The money half of an admission whose rate limits are already taken: reserves the most the request can cost
    /// (under <paramref name="reservationId"/>; carved from a lease when <paramref name="leaseReservation"/> names one),
    /// or refuses, giving the rate limits back.
    /// </summary>
    private async Task<AdmissionResult> ReserveAsync(AdmissionRequest request, RateLimitView view, DateTimeOffset now, string reservationId, string? leaseReservation = null)
    {
        // A refused request holds no tokens: given back to the rate limits, or (taken from a lease) left to the caller to put back into it.
        void GiveBack()
        {
            if (leaseReservation is null)
            {
                Rates().Refund(request.KeyId, request.Tokens);
            }
        }

        if (await BudgetAsync() is { } budget)
        {
            // A request the plan does not price cannot be counted against a budget that applies to it: refused, as a
            // budget must never be passed by a model nobody priced.
            if (request.Unpriced && budget.Limits.Any(l => l.KeyId is null || string.Equals(l.KeyId, request.KeyId, StringComparison.Ordinal)))
            {
                GiveBack();
                return new AdmissionResult(AdmissionOutcome.Unpriced, RateView(request.KeyId, now));
            }

            // A budget never mixes currencies: a request priced in another one cannot be counted against it.
            if (request.MaxCost > 0 && !string.Equals(request.Currency, budget.Currency, StringComparison.Ordinal))
            {
                GiveBack();
                return new AdmissionResult(AdmissionOutcome.BudgetCurrencyMismatch, RateView(request.KeyId, now),
                    Budget: new BudgetRefusalView(null, "", 0m, 0m, request.MaxCost, budget.Currency, null));
            }

            if (leaseReservation is not null && budget.TryCarve(leaseReservation, reservationId, request.MaxCost, now))
            {
                EnsureExpiryTimer();
                return new AdmissionResult(AdmissionOutcome.Admitted, view);
            }

            var reserved = budget.TryReserve(reservationId, request.KeyId, request.MaxCost, now);
            if (!reserved.Succeeded)
            {
                GiveBack();
                var refusal = reserved.Refusal;

                // The headers show the counters after the refund: the refused request holds no tokens.
                return new AdmissionResult(AdmissionOutcome.BudgetExceeded, RateView(request.KeyId, now),
                    RetryAfter: refusal.ResetsAt is { } resets ? resets - now : null,
                    Budget: new BudgetRefusalView(refusal.KeyId, PeriodName(refusal.Period), refusal.Limit, refusal.Remaining, refusal.Requested, budget.Currency, refusal.ResetsAt, refusal.Final));
            }

            EnsureExpiryTimer();
        }
        else if (request.MaxCost > 0)
        {
            _unbudgeted[request.RequestId] = (request.KeyId, request.MaxCost, request.Currency, now);
            EnsureExpiryTimer();
        }

        return new AdmissionResult(AdmissionOutcome.Admitted, view);
    }

    public async Task<AuthorizedAdmission> AdmitAuthorizedAsync(AuthorizedAdmissionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);

        // Checked in the same turn as the admission: no revocation, disabling or policy change can come between them.
        // Each refusal takes and reserves nothing, and says the tenant as it is now, for the gateway's cache.
        var refusal = Authorize(request, out var view);
        if (refusal != AuthorizationRefusal.None)
        {
            DeactivateIfUnknown();
            return new AuthorizedAdmission(refusal, null, view);
        }

        var admitted = await AdmitAtAsync(request.Admission, request.Gateway ?? request.Admission.Gateway);
        return new AuthorizedAdmission(AuthorizationRefusal.None, admitted, null);
    }

    public async Task<LeasedAdmission> AdmitAuthorizedLeasingAsync(AuthorizedAdmissionRequest request, BudgetLeaseAsk ask)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(ask);
        var answer = await AdmitAuthorizedAsync(request);
        if (answer.Admission is not { Allowed: true })
        {
            return new LeasedAdmission(answer, null);
        }

        AdmittedAt(request.Admission.RequestId, request.Admission.KeyId, ask.Holder ?? request.Gateway ?? request.Admission.Gateway);
        return new LeasedAdmission(answer, await GrantLeaseAsync(request, ask));
    }

    public async Task<LeasedAdmission> AdmitFromLeaseAsync(Guid leaseId, AuthorizedAdmissionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var admission = request.Admission;
        var now = time.GetUtcNow();
        if (!_leases.TryGetValue(leaseId, out var lease))
        {
            // Closed, expired, or granted by an earlier activation (whose reservations this one never held): admitted
            // as if no lease existed, against the budgets and rate limits as they are now.
            return new LeasedAdmission(await AdmitAuthorizedAsync(request), null);
        }

        var refusal = Authorize(request, out var view);
        if (refusal != AuthorizationRefusal.None)
        {
            CloseLease(lease);
            return new LeasedAdmission(new AuthorizedAdmission(refusal, null, view), null);
        }

        var usable = lease.ClosesAt > now
            && string.Equals(lease.KeyId, admission.KeyId, StringComparison.Ordinal)
            && string.Equals(lease.DecisionVersion, request.DecisionVersion, StringComparison.Ordinal)
            && lease.Requests >= 1 && lease.Tokens >= admission.Tokens
            && (!lease.BudgetApplies || (lease.Money >= admission.MaxCost && !admission.Unpriced
                && (admission.MaxCost == 0 || string.Equals(admission.Currency, lease.Currency, StringComparison.Ordinal))));
        if (!usable)
        {
            // Its holder spent more than it holds (never, while both count alike) or asks for what it does not cover:
            // closed, and the request admitted as without one.
            CloseLease(lease);
            var afresh = await AdmitAtAsync(admission, lease.Holder ?? request.Gateway ?? admission.Gateway);
            return new LeasedAdmission(new AuthorizedAdmission(AuthorizationRefusal.None, afresh, null), null);
        }

        lease.Requests--;
        lease.Tokens -= admission.Tokens;
        var result = await ReserveAsync(admission, RateView(admission.KeyId, now), now, admission.RequestId, lease.BudgetApplies ? lease.ReservationId : null);
        if (!result.Allowed)
        {
            if (lease.Draining)
            {
                // Reclaimed: its holder sends nothing more, so what this request held returns to the rate limits.
                Rates().Refund(lease.KeyId, admission.Tokens);
                RefundRequests(lease.KeyId, 1);
            }
            else
            {
                // Its request and tokens go back into the lease, which holds them for the rate limits.
                lease.Requests++;
                lease.Tokens += admission.Tokens;
            }
        }
        else
        {
            if (lease.BudgetApplies)
            {
                lease.Money -= admission.MaxCost;
            }

            // A lease without money (no budget applies to its key) still admits against a budget of another key's: any
            // reservation made is its gateway's to settle.
            AdmittedAt(admission.RequestId, admission.KeyId, lease.Holder ?? request.Gateway ?? admission.Gateway);
        }

        if (lease.Draining && lease.Requests == 0)
        {
            // The last request its holder admitted before the reclaim is confirmed: what is left returns.
            CloseLease(lease);
            return new LeasedAdmission(new AuthorizedAdmission(AuthorizationRefusal.None, result, null), null);
        }

        return new LeasedAdmission(new AuthorizedAdmission(AuthorizationRefusal.None, result, null), lease.View());
    }

    public Task ReturnLeaseAsync(Guid leaseId)
    {
        if (_leases.TryGetValue(leaseId, out var lease))
        {
            CloseLease(lease);
        }

        return Task.CompletedTask;
    }

    /// <summary>
    /// A lease as <paramref name="ask"/> asks for the key of <paramref name="request"/> (just admitted), or null: leases
    /// off, a budget or rate limit that leaves less than the smallest lease (<see cref="TenantMoneyOptions.LeaseMinRequests"/>
    /// requests' worth of <see cref="TenantMoneyOptions.LeaseShare"/> of what it has left), or another currency.
    /// </summary>
    private async Task<BudgetLease?> GrantLeaseAsync(AuthorizedAdmissionRequest request, BudgetLeaseAsk ask)
    {
        var options = money.Value;
        var keyId = request.Admission.KeyId;
        if (options.LeaseTerm <= TimeSpan.Zero || _leases.ContainsKey(ask.LeaseId) || ask.Requests < 1 || ask.Money < 0 || ask.Tokens < 0)
        {
            return null;
        }

        var now = time.GetUtcNow();
        var budget = await BudgetAsync();
        var applies = budget is not null && budget.Limits.Any(l => l.KeyId is null || string.Equals(l.KeyId, keyId, StringComparison.Ordinal));
        var leaseMoney = 0m;
        if (applies)
        {
            if (!string.Equals(ask.Currency, budget!.Currency, StringComparison.Ordinal))
            {
                return null;
            }

            // A share of what the tightest budget has left, in whole millionths: a small or nearly spent budget gives no
            // lease, and its last requests each ask this grain.
            var least = budget.Remaining(now).Where(b => b.Limit.KeyId is null || string.Equals(b.Limit.KeyId, keyId, StringComparison.Ordinal)).Min(b => b.Remaining);
            leaseMoney = Math.Min(ask.Money, Math.Floor(Math.Max(0m, least) * options.LeaseShare * 1_000_000m) / 1_000_000m);
            if (leaseMoney < ask.MinMoney || leaseMoney <= 0m)
            {
                return null;
            }
        }

        var requests = (long)ask.Requests;
        var tokens = ask.Tokens;
        foreach (var policy in RatePoliciesOf(keyId))
        {
            if (policy.RequestsPerMinute is { } perMinute)
            {
                requests = Math.Min(requests, (long)(perMinute * options.LeaseShare));
            }

            if (policy.TokensPerMinute is { } tokensPerMinute)
            {
                tokens = Math.Min(tokens, (long)(tokensPerMinute * options.LeaseShare));
            }
        }

        if (requests < options.LeaseMinRequests || tokens < ask.MinTokens)
        {
            return null;
        }

        var rate = Rates().TryAcquire(keyId, (int)requests, tokens, now);
        if (!rate.Allowed)
        {
            return null;
        }

        var lease = new Lease(ask.LeaseId, keyId, request.DecisionVersion, ask.Currency, applies, now + options.LeaseTerm + TenantMoneyOptions.LeaseGrace, options.LeaseTerm)
        {
            Holder = ask.Holder,
            Money = leaseMoney,
            Requests = (int)requests,
            Tokens = tokens,
            RateLimits = View(rate),
        };
        if (applies && !budget!.TryReserve(lease.ReservationId, keyId, leaseMoney, now).Succeeded)
        {
            Rates().Refund(keyId, tokens);
            RefundRequests(keyId, (int)requests);
            return null;
        }

        _leases.Add(lease.Id, lease);
        EnsureExpiryTimer();
        EnsureLeaseTimer();
        return lease.View();
    }

    /// <summary>The rate policies that apply to a key's requests: the tenant's, and the key's own.</summary>
    private IEnumerable<RateLimitPolicy> RatePoliciesOf(string? keyId)
    {
        yield return TenantRatePolicy();
        if (keyId is not null && KeyRatePolicies().TryGetValue(keyId, out var own))
        {
            yield return own;
        }
    }

    private void RefundRequests(string? keyId, int requests)
    {
        var rates = Rates();
        for (var i = 0; i < requests; i++)
        {
            rates.RefundRequest(keyId);
        }
    }

    /// <summary>Closes a lease: its unspent money, requests and tokens return to the budgets and rate limits.</summary>
    private void CloseLease(Lease lease)
    {
        if (!_leases.Remove(lease.Id))
        {
            return;
        }

        if (lease.BudgetApplies)
        {
            _budget?.Release(lease.ReservationId);
        }

        Rates().Refund(lease.KeyId, lease.Tokens);
        RefundRequests(lease.KeyId, lease.Requests);
        MoneyLog.LeaseClosed(logger, lease.Id, this.GetPrimaryKeyString(), lease.KeyId, lease.BudgetApplies ? lease.Money : null, lease.Requests, lease.Tokens);
    }

    /// <summary>
    /// Every lease closes before a change of the tenant, its limits or its keys applies (what they hold returns, and
    /// their holders' next requests are admitted by this grain under the change), so no lease spends past it.
    /// </summary>
    private void CloseAllLeases()
    {
        foreach (var lease in _leases.Values.ToList())
        {
            CloseLease(lease);
            if (lease.Holder is { } holder)
            {
                _recall.Add(holder);
            }
        }
    }

    /// <summary>
    /// Tells the gateways whose leases <see cref="CloseAllLeases"/> closed, before the change's answer, so that their
    /// next request asks this grain (under the change) instead of admitting from a lease it no longer holds. What
    /// membership knows decides the wait: a gateway the cluster declared dead is not asked (event 4182); one that did
    /// not answer an earlier reclaim or recall is told and not waited for (event 4183); the others are asked in
    /// parallel and awaited at most <see cref="TenantMoneyOptions.LeaseRecallTimeout"/> in total (5 s by default; before
    /// session 56 a constant 5 s, and a silent gateway was waited for at every change). A gateway that has not heard is
    /// left to its confirmations, which this grain refuses or admits afresh before any byte reaches the client (the
    /// pipeline awaits the confirmation): a revoked key still fails on its next request there, and the closed lease's
    /// money is no longer its to spend, so the change holds either way.
    /// </summary>
    private async Task RecallClosedLeasesAsync()
    {
        if (_recall.Count == 0)
        {
            return;
        }

        var holders = _recall.ToList();
        _recall.Clear();
        var tenant = this.GetPrimaryKeyString();
        var members = Membership();
        var awaited = new List<Task>();
        foreach (var holder in holders)
        {
            if (members?.GetSiloStatus(holder) == SiloStatus.Dead)
            {
                // Declared dead: it cannot answer, and it admits nothing this grain confirms from a closed lease.
                _unanswered.Remove(holder);
                MoneyLog.LeaseRecallSkippedDead(logger, tenant, holder.ToParsableString());
                continue;
            }

            if (_unanswered.Contains(holder))
            {
                // Silent last time: told (an answer makes it asked again), not waited for, or every change of the tenant
                // would wait the whole timeout for it again.
                MoneyLog.LeaseRecallNotAwaited(logger, tenant, holder.ToParsableString());
                _ = RecallAtAsync(holder, tenant, wait: null);
                continue;
            }

            awaited.Add(RecallAtAsync(holder, tenant, money.Value.LeaseRecallTimeout));
        }

        // Asked together, each bounded by the same timeout from the same moment: at most that, in total.
        await Task.WhenAll(awaited);
    }

    /// <summary>
    /// Tells <paramref name="holder"/> that this tenant's leases there are closed: answered, it is asked again by the next
    /// reclaim; not within <paramref name="wait"/> (null: the call's own response timeout, for a recall nobody awaits),
    /// it is remembered as silent (<see cref="_unanswered"/>). Never throws.
    /// </summary>
    private async Task RecallAtAsync(SiloAddress holder, string tenant, TimeSpan? wait)
    {
        RequestContext.Set(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey, holder);
        try
        {
            var recall = GrainFactory.GetGrain<IBudgetLeaseHolderGrain>(holder.ToParsableString()).RecallAsync(tenant);
            await (wait is { } timeout ? recall.WaitAsync(timeout) : recall);

            // It answers again: the next reclaim asks it what it admitted.
            _unanswered.Remove(holder);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            MoneyLog.LeaseRecallFailed(logger, ex, tenant, holder.ToParsableString());
            _unanswered.Add(holder);
        }
        finally
        {
            RequestContext.Remove(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey);
        }
    }

    /// <summary>
    /// Closes the leases whose term (and grace) has passed, their holders having stopped admitting from them, and those
    /// whose holder the cluster declared dead (killed: it returns nothing, and would hold its slice until the term).
    /// </summary>
    private void CloseExpiredLeases()
    {
        var now = time.GetUtcNow();
        var members = _leases.Values.Any(l => l.Holder is not null) ? Membership() : null;
        foreach (var lease in _leases.Values.ToList())
        {
            if (lease.ClosesAt <= now)
            {
                CloseLease(lease);
            }
            else if (lease.Holder is { } holder && members?.GetSiloStatus(holder) == SiloStatus.Dead)
            {
                MoneyLog.LeaseHolderDead(logger, lease.Id, this.GetPrimaryKeyString(), holder.ToParsableString());
                CloseLease(lease);
            }
        }
    }

    /// <summary>The cluster's membership as this member sees it now (null outside a cluster).</summary>
    private ClusterMembershipSnapshot? Membership() => ServiceProvider.GetService<IClusterMembershipService>()?.CurrentSnapshot;

    /// <summary>Forgets the silent gateways the cluster has declared dead (their leases are closed): the set stays bounded.</summary>
    private void ForgetDeadHolders()
    {
        if (_unanswered.Count > 0 && Membership() is { } members)
        {
            _unanswered.RemoveWhere(h => members.GetSiloStatus(h) == SiloStatus.Dead);
        }
    }

    /// <summary>
    /// Remembers the gateway that admitted <paramref name="requestId"/> (named by the admission or its lease's ask),
    /// while its reservation is outstanding: if the cluster declares that gateway dead, nothing will settle or renew it.
    /// This grain's own member is not remembered: if it dies, so does this activation (and what it holds).
    /// </summary>
    private void AdmittedAt(string requestId, string? keyId, SiloAddress? holder)
    {
        if (_budget?.FindReservation(requestId) is null)
        {
            return;
        }

        if (holder is null)
        {
            // Not named (a gateway of an earlier release): which member holds it is unknown, so every death is looked at.
            if (Membership() is { } members && !_admittedAt.ContainsKey(requestId))
            {
                _deadSeen ??= DeadIn(members);
                _holderUnknown[requestId] = keyId;
                EnsureLeaseTimer();
            }

            return;
        }

        _holderUnknown.Remove(requestId);
        if (!holder.Equals(ServiceProvider.GetService<ILocalSiloDetails>()?.SiloAddress))
        {
            _admittedAt[requestId] = (holder, keyId, false);
            EnsureLeaseTimer();
        }
    }

    private static HashSet<SiloAddress> DeadIn(ClusterMembershipSnapshot members) =>
        members.Members.Values.Where(m => m.Status == SiloStatus.Dead).Select(m => m.SiloAddress).ToHashSet();

    /// <summary>
    /// The fallback for reservations whose gateway is unknown (<see cref="_holderUnknown"/>: admitted at a gateway of an
    /// earlier release): whenever the cluster declares a member dead that this grain had not seen dead, each is looked up
    /// in the ledger, and one with a usage record is settled at the record's cost (event 4179): that member may have been
    /// its gateway, killed between the record's commit and the settlement. One without a record is left held until its
    /// lifetime (as before this release): its gateway may be alive and still running it, and releasing its money could
    /// let the tenant spend it twice over. Settling from the record is safe whoever holds it: the record is the bill, and
    /// a settlement that still comes is the same request id (idempotent).
    /// </summary>
    private async Task SettleUnknownHoldersAtDeathsAsync()
    {
        var budget = _budget;
        if (_holderUnknown.Count > 0 && budget is not null)
        {
            foreach (var requestId in _holderUnknown.Keys.Where(id => budget.FindReservation(id) is null).ToList())
            {
                // Settled, released or expired meanwhile.
                _holderUnknown.Remove(requestId);
            }
        }
        else
        {
            _holderUnknown.Clear();
        }

        if (_holderUnknown.Count == 0 || Membership() is not { } members)
        {
            _deadSeen = null;
            return;
        }

        _deadSeen ??= DeadIn(members);
        var newlyDead = DeadIn(members).Where(d => !_deadSeen.Contains(d)).ToList();
        if (newlyDead.Count == 0)
        {
            return;
        }

        var now = time.GetUtcNow();
        var member = string.Join(", ", newlyDead.Select(d => d.ToParsableString()));
        foreach (var (requestId, keyId) in _holderUnknown.ToList())
        {
            UsageRecord? record;
            try
            {
                record = await ledger.GetAsync(requestId);
            }
            catch (System.Data.Common.DbException)
            {
                // Unknown whether it was billed: held, and these deaths looked at again at the next tick.
                return;
            }

            if (record is not null && budget?.FindReservation(requestId) is { } held)
            {
                _holderUnknown.Remove(requestId);
                budget.Settle(requestId, record.Cost, now, keyId);
                MoneyLog.ReservationSettledAtMemberDeath(logger, requestId, this.GetPrimaryKeyString(), keyId, held.Amount, budget.Currency, member, record.Cost);
            }
        }

        _deadSeen.UnionWith(newlyDead);
    }

    /// <summary>
    /// Settles the outstanding reservations of requests admitted at a gateway the cluster has declared dead (a SIGKILL,
    /// a cut-off member): at its usage record's cost where the ledger has one (the gateway commits the record, with its
    /// audit entry, before the client's last byte, then settles: killed between the two), else, once the gateway has been
    /// dead for <see cref="SovereignClusterOptions.InterruptedGraceSeconds"/> (60 s) by this grain's clock with still no
    /// record, released (it was killed before the request ended; its decision is closed as interrupted, at no cost, after
    /// the same grace). The grace is there because a gracefully stopping gateway is dead in membership at once and still
    /// finishes its streams, and a silo declared dead takes a moment to learn it and stop: their records may still come,
    /// and releasing their money meanwhile would let the tenant spend it twice. The ledger is read at the first sight of
    /// the death and at the grace's end, not at every tick. Before, all of them held their money until
    /// <see cref="TenantMoneyOptions.ReservationLifetime"/> (30 min). Each settles once: a settlement from the gateway
    /// that still comes is the same id (idempotent), and a released one's is charged as unreserved.
    /// </summary>
    private async Task SettleDeadHoldersReservationsAsync()
    {
        if (_admittedAt.Count == 0)
        {
            _deadSince.Clear();
            return;
        }

        if (_budget is not { } budget)
        {
            _admittedAt.Clear();
            _deadSince.Clear();
            return;
        }

        var members = Membership();
        var grace = TimeSpan.FromSeconds(Math.Max(0, ServiceProvider.GetService<IOptions<SovereignClusterOptions>>()?.Value.InterruptedGraceSeconds ?? 60));
        foreach (var (requestId, (holder, keyId, looked)) in _admittedAt.ToList())
        {
            if (budget.FindReservation(requestId) is not { } held)
            {
                // Settled, released or expired meanwhile.
                _admittedAt.Remove(requestId);
                continue;
            }

            if (members?.GetSiloStatus(holder) != SiloStatus.Dead)
            {
                continue;
            }

            var now = time.GetUtcNow();
            if (!_deadSince.TryGetValue(holder, out var since))
            {
                _deadSince[holder] = since = now;
            }

            var graceOver = now - since >= grace;
            if (looked && !graceOver)
            {
                continue;
            }

            UsageRecord? record;
            try
            {
                record = await ledger.GetAsync(requestId);
            }
            catch (System.Data.Common.DbException)
            {
                // Unknown whether it was billed: held, and looked up again at the next tick (as at expiry).
                break;
            }

            if (record is not null)
            {
                _admittedAt.Remove(requestId);
                budget.Settle(requestId, record.Cost, now, keyId);
                MoneyLog.ReservationSettledAtHolderDeath(logger, requestId, this.GetPrimaryKeyString(), keyId, held.Amount, budget.Currency, holder.ToParsableString(), record.Cost);
            }
            else if (!graceOver)
            {
                // Its gateway may still be finishing it (stopping gracefully, or not yet aware it was declared dead).
                _admittedAt[requestId] = (holder, keyId, true);
            }
            else
            {
                _admittedAt.Remove(requestId);
                if (budget.Release(requestId))
                {
                    _releasedAtDeath[requestId] = (keyId, now);
                    EnsureExpiryTimer();
                    MoneyLog.ReservationReleasedAtHolderDeath(logger, requestId, this.GetPrimaryKeyString(), keyId, held.Amount, budget.Currency, holder.ToParsableString());
                }
            }
        }

        foreach (var gone in _deadSince.Keys.Where(h => !_admittedAt.Values.Any(a => a.Holder.Equals(h))).ToList())
        {
            _deadSince.Remove(gone);
        }
    }

    /// <summary>
    /// Looks up once more, a reservation lifetime after their release, the reservations released at their gateway's death
    /// without a record: one the gateway committed as it died (declared dead before it had stopped) is charged then, once.
    /// </summary>
    private async Task ChargeLateRecordsAsync(BudgetAccount? budget, DateTimeOffset now)
    {
        var lifetime = money.Value.ReservationLifetime;
        foreach (var (requestId, (keyId, at)) in _releasedAtDeath.Where(r => r.Value.At + lifetime <= now).ToList())
        {
            UsageRecord? record;
            try
            {
                record = await ledger.GetAsync(requestId);
            }
            catch (System.Data.Common.DbException)
            {
                break;
            }

            _releasedAtDeath.Remove(requestId);
            if (record is { Cost: > 0m } && budget is not null && string.Equals(record.Currency, budget.Currency, StringComparison.Ordinal)
                && budget.Settle(requestId, record.Cost, now, keyId) is { Unreserved: true } settled && settled.Actual > 0m)
            {
                MoneyLog.ReleasedReservationRecordedLate(logger, requestId, this.GetPrimaryKeyString(), keyId, record.Cost, budget.Currency);
            }
        }
    }

    private void EnsureLeaseTimer()
    {
        if (_leaseTimer is null)
        {
            var interval = money.Value.LeaseCheckInterval;
            _leaseTimer = this.RegisterGrainTimer(async _ =>
            {
                CloseExpiredLeases();
                ForgetDeadHolders();
                await SettleDeadHoldersReservationsAsync();
                await SettleUnknownHoldersAtDeathsAsync();
                if (_leases.Count == 0 && _admittedAt.Count == 0 && _holderUnknown.Count == 0)
                {
                    _leaseTimer?.Dispose();
                    _leaseTimer = null;
                }
            }, new GrainTimerCreationOptions(interval, interval));
        }
    }

    /// <summary>Checks a request authorized from a gateway's cache against the tenant and its keys as they are now.</summary>
    private AuthorizationRefusal Authorize(AuthorizedAdmissionRequest request, out TenantView? view)
    {
        view = _tenant is null ? null : CurrentView();
        return request.KeyExpiresAt is { } expires && time.GetUtcNow().ToUnixTimeMilliseconds() >= expires ? AuthorizationRefusal.KeyExpired
            : request.Admission.KeyId is { } keyId && _revokedKeys.Contains(keyId) ? AuthorizationRefusal.KeyRevoked
            : view is null ? AuthorizationRefusal.TenantNotFound
            : view.Disabled ? AuthorizationRefusal.TenantDisabled
            : !string.Equals(request.DecisionVersion, _decisionVersion, StringComparison.Ordinal) ? AuthorizationRefusal.DecisionStale
            : AuthorizationRefusal.None;
    }

    /// <summary>A gateway's budget lease: the money reserved under <see cref="ReservationId"/> and the requests and tokens taken from the rate limits, less what it admitted.</summary>
    private sealed class Lease(Guid id, string? keyId, string decisionVersion, string currency, bool budgetApplies, DateTimeOffset closesAt, TimeSpan term)
    {
        public Guid Id { get; } = id;

        public string? KeyId { get; } = keyId;

        public string DecisionVersion { get; } = decisionVersion;

        public string Currency { get; } = currency;

        public bool BudgetApplies { get; } = budgetApplies;

        public DateTimeOffset ClosesAt { get; } = closesAt;

        public string ReservationId => "lease/" + Id.ToString("N");

        public decimal Money { get; set; }

        public int Requests { get; set; }

        public long Tokens { get; set; }

        public RateLimitView? RateLimits { get; init; }

        public SiloAddress? Holder { get; init; }

        /// <summary>Reclaimed: its holder admits nothing more from it; it holds only what the requests it admitted before need, until confirmed.</summary>
        public bool Draining { get; set; }

        public BudgetLease View() => new(Id, KeyId, Money, BudgetApplies, Requests, Tokens, term, DecisionVersion, Currency, RateLimits);
    }

    /// <summary>The tenant's view, and the version of its policy and plan (<see cref="TenantVersions.DecisionOf"/>), made once per change.</summary>
    private TenantView CurrentView()
    {
        if (!ReferenceEquals(_viewOf, _tenant))
        {
            _view = ToView(_tenant!);
            _decisionVersion = TenantVersions.DecisionOf(_view);
            _viewOf = _tenant;
        }

        return _view!;
    }

    public async Task<AdmissionResult> CountRequestAsync(string? keyId)
    {
        var (view, refused) = TakeRate(keyId, 0, time.GetUtcNow());

        // Refused while gateways' leases hold requests they have not admitted: closed and counted again against what
        // returned, as AdmitAsync does (event 4126), so a lease never refuses a language detection (or any request only
        // counted) below the tenant's limits. It was refused while up to a tenth of the limit sat unused in leases.
        if (refused is { TooLarge: false } && await ReclaimLeasesAsync())
        {
            (view, refused) = TakeRate(keyId, 0, time.GetUtcNow());
        }

        return refused ?? new AdmissionResult(AdmissionOutcome.Admitted, view);
    }

    public Task<AdmissionResult> RefundRequestAsync(string? keyId)
    {
        Rates().RefundRequest(keyId);
        return Task.FromResult(new AdmissionResult(AdmissionOutcome.Admitted, RateView(keyId, time.GetUtcNow())));
    }

    /// <summary>The rate limits' view now, taking nothing.</summary>
    private RateLimitView RateView(string? keyId, DateTimeOffset now) => Visible(keyId, Rates().TryAcquire(keyId, 0, 0, now), now);

    /// <summary>
    /// The rate limits' view as the key's caller is told it (OpenAI's <c>x-ratelimit-*</c> headers): what open leases
    /// took but have not admitted counts as remaining, since it returns when they close and their holders admit from it.
    /// </summary>
    private RateLimitView Visible(string? keyId, RateLimitDecision rate, DateTimeOffset now)
    {
        if (_leases.Count == 0)
        {
            return View(rate);
        }

        (long Requests, long Tokens) tenantHeld = (0, 0), keyHeld = (0, 0);
        // A draining lease's requests and tokens are its gateway's requests in flight: spent, not the caller's to send.
        foreach (var lease in _leases.Values.Where(l => !l.Draining))
        {
            tenantHeld = (tenantHeld.Requests + lease.Requests, tenantHeld.Tokens + lease.Tokens);
            if (keyId is not null && string.Equals(lease.KeyId, keyId, StringComparison.Ordinal))
            {
                keyHeld = (keyHeld.Requests + lease.Requests, keyHeld.Tokens + lease.Tokens);
            }
        }

        return View(Rates().PeekReturning(keyId, now, tenantHeld, keyHeld));
    }

    private static RateLimitView View(RateLimitDecision rate) =>
        new(rate.LimitRequests, rate.RemainingRequests, rate.ResetRequests, rate.LimitTokens, rate.RemainingTokens, rate.ResetTokens);

    /// <summary>Takes one request and <paramref name="tokens"/> from the rate limits: the limits' view, and the refusal when they refuse.</summary>
    private (RateLimitView View, AdmissionResult? Refused) TakeRate(string? keyId, long tokens, DateTimeOffset now)
    {
        var rate = Rates().TryAcquire(keyId, 1, tokens, now);
        var view = Visible(keyId, rate, now);
        return rate.Allowed
            ? (view, null)
            : (view, new AdmissionResult(
                rate.RefusedDimension == RateLimitDimension.Tokens ? AdmissionOutcome.RateLimitedTokens : AdmissionOutcome.RateLimitedRequests,
                view,
                rate.Outcome == RateLimitOutcome.Limited ? rate.RetryAfter : null,
                TooLarge: rate.Outcome == RateLimitOutcome.TooLarge,
                RefusedScopeKeyId: rate.RefusedScope == RateLimitScope.Key ? keyId : null));
    }

    public Task<decimal?> SettleAsync(SettlementRequest settlement)
    {
        Rates().Settle(settlement.KeyId, settlement.AdmittedTokens, settlement.ActualTokens);
        _unbudgeted.Remove(settlement.RequestId);
        _admittedAt.Remove(settlement.RequestId);
        _holderUnknown.Remove(settlement.RequestId);
        _releasedAtDeath.Remove(settlement.RequestId);

        // Not built since activation: the ledger (written before this settle) already has the cost for the rebuild.
        if (_budget is not { } budget)
        {
            return Task.FromResult<decimal?>(null);
        }

        var now = time.GetUtcNow();
        var settled = budget.Settle(settlement.RequestId, settlement.ActualCost, now, settlement.KeyId);
        if (settled.Unreserved && settled.Actual > 0)
        {
            MoneyLog.UnreservedSettlement(logger, settlement.RequestId, this.GetPrimaryKeyString(), settlement.KeyId, settled.Actual, budget.Currency);
        }
        else if (settled.Overrun && !settled.Unreserved)
        {
            MoneyLog.SettlementOverrun(logger, settlement.RequestId, this.GetPrimaryKeyString(), settled.Actual, settled.Reserved, budget.Currency);
        }

        return Task.FromResult(Positions(budget, now).Where(p => p.Status.Limit.KeyId is null).Select(p => (decimal?)(p.Status.Remaining + p.Leased)).Min());
    }

    public async Task<IReadOnlyList<BudgetStatusView>> GetBudgetsAsync()
    {
        if (await BudgetAsync() is not { } budget)
        {
            return [];
        }

        return Positions(budget, time.GetUtcNow())
            .Select(p => new BudgetStatusView(p.Status.Limit.KeyId, PeriodName(p.Status.Limit.Period), p.Status.Limit.Amount, p.Status.Settled,
                p.Status.Reserved - p.Leased, p.Status.Remaining + p.Leased, budget.Currency, p.Leased))
            .ToList();
    }

    /// <summary>
    /// Every budget's position now, with the money open leases hold in it and have not admitted yet: reserved for their
    /// gateways, yet still the tenant's to spend (it returns when they close), so a caller is told it as remaining.
    /// </summary>
    private IEnumerable<(BudgetStatus Status, decimal Leased)> Positions(BudgetAccount budget, DateTimeOffset now)
    {
        foreach (var status in budget.Remaining(now))
        {
            var leased = 0m;
            foreach (var lease in _leases.Values)
            {
                // A draining lease's money is its gateway's requests in flight (reserved), no longer the tenant's to spend.
                if (lease.BudgetApplies && !lease.Draining && budget.FindReservation(lease.ReservationId) is { } held
                    && held.Charges.Any(c => string.Equals(c.KeyId, status.Limit.KeyId, StringComparison.Ordinal) && c.Period == status.Limit.Period && c.PeriodStart == status.PeriodStart))
                {
                    leased += held.Amount;
                }
            }

            yield return (status, leased);
        }
    }

    public async Task<int> ReleaseExpiredReservationsAsync()
    {
        CloseExpiredLeases();
        await SettleDeadHoldersReservationsAsync();
        await SettleUnknownHoldersAtDeathsAsync();
        await ChargeLateRecordsAsync(_budget, time.GetUtcNow());
        var released = 0;
        if (_budget is { } budget)
        {
            var lifetime = money.Value.ReservationLifetime;
            var now = time.GetUtcNow();
            foreach (var reservation in budget.Expired(now, lifetime))
            {
                // Its gateway committed the usage record but could not settle (event 4114: this grain's member was
                // stopping, or the call timed out): the record is the bill, so it is charged, not given back. Released,
                // the cost was missing from this activation's spend until a rebuild from the ledger.
                UsageRecord? record;
                try
                {
                    record = await ledger.GetAsync(reservation.ReservationId);
                }
                catch (System.Data.Common.DbException)
                {
                    // The ledger cannot be read (a database outage): whether the request was billed is unknown, so its
                    // reservation stays held (never released unread, never charged unread), and the next tick reads
                    // again. Thrown, the exception reached Orleans' timer, which logged the driver's stack trace on every
                    // tick of an outage longer than the reservation lifetime (the gateway logs an outage once, event
                    // 4160), as PriceBookGrain's timer did.
                    break;
                }

                if (record is not null)
                {
                    budget.Settle(reservation.ReservationId, record.Cost, now, reservation.KeyId);
                    MoneyLog.ReservationSettledFromLedger(logger, reservation.ReservationId, this.GetPrimaryKeyString(), reservation.KeyId, record.Cost, budget.Currency, reservation.Amount);
                    continue;
                }

                budget.Release(reservation.ReservationId);
                MoneyLog.ReservationExpired(logger, reservation.ReservationId, this.GetPrimaryKeyString(), reservation.KeyId, reservation.Amount, budget.Currency, reservation.ReservedAt, lifetime);
                released++;
            }
        }

        var stale = time.GetUtcNow() - money.Value.ReservationLifetime;
        foreach (var (requestId, _) in _unbudgeted.Where(u => u.Value.At < stale).ToList())
        {
            // Never settled (its gateway died): it holds nothing, so forgetting it moves no money.
            _unbudgeted.Remove(requestId);
        }

        if (_budget is not { OutstandingCount: > 0 } && _unbudgeted.Count == 0 && _leases.Count == 0 && _releasedAtDeath.Count == 0 && _expiryTimer is not null)
        {
            // Nothing held: stop looking, and let the activation be collected when idle.
            _expiryTimer.Dispose();
            _expiryTimer = null;
            DelayDeactivation(TimeSpan.Zero);
        }

        return released;
    }

    public Task<int> RenewReservationsAsync(IReadOnlyList<string> requestIds)
    {
        ArgumentNullException.ThrowIfNull(requestIds);
        var now = time.GetUtcNow();
        var renewed = 0;
        foreach (var requestId in requestIds)
        {
            if (_unbudgeted.TryGetValue(requestId, out var running))
            {
                _unbudgeted[requestId] = running with { At = now };
                renewed++;
            }
        }

        return Task.FromResult(renewed + (_budget?.Renew(requestIds, now) ?? 0));
    }

    private void EnsureExpiryTimer()
    {
        if (_expiryTimer is null)
        {
            var interval = money.Value.ExpiryCheckInterval;

            _expiryTimer = this.RegisterGrainTimer(_ => ReleaseExpiredReservationsAsync(), new GrainTimerCreationOptions(interval, interval));

            // An activation collected while it holds reservations would forget them: none is, until they are gone.
            DelayDeactivation(Timeout.InfiniteTimeSpan);
        }
    }

    private TenantRateLimiter Rates()
    {
        if (_rates is not null)
        {
            return _rates;
        }

        _rates = new TenantRateLimiter(TenantRatePolicy(), time);
        _rates.UpdatePolicies(TenantRatePolicy(), KeyRatePolicies());
        return _rates;
    }

    private RateLimitPolicy TenantRatePolicy() =>
        _limits.RateLimits.FirstOrDefault(r => r.KeyId is null) is { } t ? new RateLimitPolicy(t.RequestsPerMinute, t.TokensPerMinute) : RateLimitPolicy.Unlimited;

    // The first entry per key, as for the tenant: the previous release's admin API stored two for one key (then
    // answered 500), and ToDictionary's throw made every request of the tenant a 500 from the next activation on.
    private Dictionary<string, RateLimitPolicy> KeyRatePolicies() =>
        _limits.RateLimits.Where(r => r.KeyId is not null).DistinctBy(r => r.KeyId, StringComparer.Ordinal)
            .ToDictionary(r => r.KeyId!, r => new RateLimitPolicy(r.RequestsPerMinute, r.TokensPerMinute), StringComparer.Ordinal);

    /// <summary>The plan's currency, or null when the plan is not in the price book.</summary>
    private string? PlanCurrency(string plan) => prices.Current.FindPlan(plan)?.Currency;

    /// <summary>The currency of the budgets: recorded with them; for limits stored before that, the plan's.</summary>
    private string? BudgetCurrency() =>
        _limits.Budgets.Count == 0 ? null : _limits.Currency ?? (_tenant is null ? null : PlanCurrency(_tenant.Plan)) ?? NoCurrency;

    /// <summary>
    /// The budget account (null without budgets), rebuilt on first use after activation or a change from the
    /// ledger's durable aggregates of spend in the budgets' currency.
    /// </summary>
    private async Task<BudgetAccount?> BudgetAsync()
    {
        if (_budget is not null || _limits.Budgets.Count == 0)
        {
            return _budget;
        }

        var account = new BudgetAccount(this.GetPrimaryKeyString(), BudgetCurrency()!);
        await ApplyBudgetsAsync(account, replace: false);
        var now = time.GetUtcNow();
        foreach (var (requestId, running) in _unbudgeted.Where(u => u.Value.Currency == account.Currency).ToList())
        {
            account.Hold(requestId, running.KeyId, running.MaxCost, running.At, now);
            _unbudgeted.Remove(requestId);
        }

        _budget = account;
        return account;
    }

    /// <summary>Makes the account's limits those of <see cref="_limits"/>; a new limit starts at its period's spend so far.</summary>
    private async Task ApplyBudgetsAsync(BudgetAccount account, bool replace)
    {
        var now = time.GetUtcNow();
        var wanted = _limits.Budgets.Select(b => new BudgetLimit(b.KeyId, Enum.Parse<BudgetPeriod>(b.Period, ignoreCase: true), b.Amount)).ToList();
        if (replace)
        {
            foreach (var old in account.Limits.Where(l => !wanted.Any(w => w.KeyId == l.KeyId && w.Period == l.Period)))
            {
                account.RemoveLimit(old.KeyId, old.Period);
            }
        }

        var existing = account.Limits;
        foreach (var limit in wanted)
        {
            if (existing.Any(l => l.KeyId == limit.KeyId && l.Period == limit.Period))
            {
                account.SetLimit(limit, now);
                continue;
            }

            var spent = await ledger.GetSpendAsync(account.TenantId, limit.KeyId, ToUsagePeriod(limit.Period), now, account.Currency);
            account.SetLimit(limit, now, spent);
        }
    }

    private static UsagePeriod ToUsagePeriod(BudgetPeriod period) => period switch
    {
        BudgetPeriod.Day => UsagePeriod.Day,
        BudgetPeriod.Month => UsagePeriod.Month,
        _ => UsagePeriod.Total,
    };

    private static string PeriodName(BudgetPeriod period) => period.ToString().ToLowerInvariant();

    public Task<TenantView?> GetAsync()
    {
        DeactivateIfUnknown();
        return Task.FromResult(_tenant is null ? null : ToView(_tenant));
    }

    public Task<KeyAuthorization> AuthorizeKeyAsync(string keyId)
    {
        DeactivateIfUnknown();
        return Task.FromResult(new KeyAuthorization(_tenant is null ? null : ToView(_tenant), _revokedKeys.Contains(keyId)));
    }

    /// <summary>
    /// No such tenant: the activation goes once this call ends, as the key grain's does for a guessed key. Every
    /// admin GET of a made-up tenant id used to leave one behind until idle collection (15 minutes). A call that
    /// creates the tenant next simply reaches a fresh activation. An activation holding reservations (a caller
    /// without a tenant row can still be metered) is kept.
    /// </summary>
    private void DeactivateIfUnknown()
    {
        if (_tenant is null && _expiryTimer is null && _budget is null)
        {
            DeactivateOnIdle();
        }
    }

    public async Task<TenantView> UpsertAsync(string name, string policyJson, string plan, bool disabled)
    {
        if (_tenant is not null && !string.Equals(_tenant.Plan, plan, StringComparison.OrdinalIgnoreCase)
            && BudgetCurrency() is { } budgetCurrency && PlanCurrency(plan) is var planCurrency && planCurrency != budgetCurrency)
        {
            throw new BudgetCurrencyConflictException(BudgetCurrencyConflictException.MessageFor(this.GetPrimaryKeyString(), budgetCurrency, plan, planCurrency));
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var next = new TenantRecord(this.GetPrimaryKeyString(), name, policyJson, plan, disabled, _tenant?.CreatedAt ?? now, now, _tenant?.LimitsJson);
        await store.UpsertTenantAsync(next);

        // A tenant disabled, or its policy or plan changed: no lease admits on the old one (their requests come here).
        CloseAllLeases();
        await RecallClosedLeasesAsync();
        _tenant = next;
        return ToView(next);
    }

    public async Task<TenantView?> CreateAsync(string name, string policyJson, string plan, bool disabled) =>
        _tenant is null ? await UpsertAsync(name, policyJson, plan, disabled) : null;

    public async Task<TenantUpdate?> UpdateAsync(string? name, string? policyJson, string? plan, bool? disabled)
    {
        if (_tenant is null)
        {
            DeactivateIfUnknown();
            return null;
        }

        var before = ToView(_tenant);
        var (nextName, nextPolicy, nextPlan, nextDisabled) = (name ?? before.Name, policyJson ?? before.PolicyJson, plan ?? before.Plan, disabled ?? before.Disabled);
        if (nextName == before.Name && nextPolicy == before.PolicyJson && nextPlan == before.Plan && nextDisabled == before.Disabled)
        {
            // Nothing changes: nothing is written (its updated_at stays), and the caller records nothing.
            return new TenantUpdate(before, before);
        }

        var after = await UpsertAsync(nextName, nextPolicy, nextPlan, nextDisabled);
        return new TenantUpdate(before, after);
    }

    public async Task<TenantUpdate?> UpdateIfVersionAsync(string? ifVersion, string? name, string? policyJson, string? plan, bool? disabled)
    {
        if (_tenant is not null && ifVersion is not null && ifVersion != TenantVersions.Of(ToView(_tenant)))
        {
            throw new TenantVersionConflictException(
                $"Tenant '{this.GetPrimaryKeyString()}' changed after version \"{ifVersion}\" was read; it is now \"{TenantVersions.Of(ToView(_tenant))}\".");
        }

        return await UpdateAsync(name, policyJson, plan, disabled);
    }

    public async Task<TenantChangeResult> TryUpdateIfVersionAsync(string? ifVersion, string? name, string? policyJson, string? plan, bool? disabled)
    {
        if (_tenant is null)
        {
            DeactivateIfUnknown();
            return new TenantChangeResult(TenantChangeRefusal.TenantNotFound);
        }

        if (ifVersion is not null && ifVersion != TenantVersions.Of(ToView(_tenant)))
        {
            return new TenantChangeResult(TenantChangeRefusal.VersionChanged);
        }

        if (plan is not null && !string.Equals(_tenant.Plan, plan, StringComparison.OrdinalIgnoreCase)
            && BudgetCurrency() is { } budgetCurrency && PlanCurrency(plan) is var planCurrency && planCurrency != budgetCurrency)
        {
            return new TenantChangeResult(TenantChangeRefusal.BudgetCurrencyConflict, budgetCurrency, planCurrency);
        }

        return TenantChangeResult.Ok with { Update = await UpdateAsync(name, policyJson, plan, disabled) };
    }

    public async Task<IReadOnlyList<ApiKeyView>> ListKeysAsync() =>
        (await store.ListKeysAsync(this.GetPrimaryKeyString())).Select(ToView).ToList();

    public async Task<CreatedApiKey> CreateKeyAsync(string name, string? policyJson, long? expiresAt = null)
    {
        if (_tenant is null)
        {
            throw new InvalidOperationException($"Tenant '{this.GetPrimaryKeyString()}' does not exist.");
        }

        var (id, secret, prefix, hash) = ApiKeySecrets.Create();
        var record = new ApiKeyRecord(id, _tenant.Id, prefix, hash, name, policyJson, time.GetUtcNow().ToUnixTimeMilliseconds(), null, expiresAt);
        await store.InsertKeyAsync(record);
        return new CreatedApiKey(ToView(record), secret);
    }

    public async Task<bool> RevokeKeyAsync(string keyId) => await RevokeKeyOnceAsync(keyId) is not null;

    public async Task<KeyRevocation?> RevokeKeyOnceAsync(string keyId)
    {
        var key = await store.GetKeyAsync(keyId);
        if (key is null || key.TenantId != this.GetPrimaryKeyString())
        {
            return null;
        }

        if (key.RevokedAt is { } revokedAt)
        {
            return new KeyRevocation(revokedAt, Newly: false);
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await store.RevokeKeyAsync(keyId, now);
        _revokedKeys.Add(keyId);
        CloseAllLeases();
        await RecallClosedLeasesAsync();
        await GrainFactory.GetGrain<IApiKeyGrain>(key.SecretHash).RefreshAsync();
        return new KeyRevocation(now, Newly: true);
    }

    private static TenantView ToView(TenantRecord t) => new(t.Id, t.Name, t.PolicyJson, t.Plan, t.Disabled, t.CreatedAt, t.UpdatedAt);

    private static ApiKeyView ToView(ApiKeyRecord k) => new(k.Id, k.TenantId, k.Prefix, k.Name, k.PolicyJson, k.CreatedAt, k.RevokedAt, k.ExpiresAt);
}

/// <summary>Caches one key's identity in memory; the tenant grain refreshes it on revocation.</summary>
internal sealed class ApiKeyGrain(ControlPlaneStore store) : Grain, IApiKeyGrain
{
    private KeyIdentity? _identity;

    public override Task OnActivateAsync(CancellationToken cancellationToken) => StorageFailures.ActivateAsync(() => LoadAsync(cancellationToken));

    public Task<KeyIdentity?> ResolveAsync()
    {
        if (_identity is null)
        {
            // No such key: a guessed key must not leave an activation behind (kept 15 minutes when idle), or anyone
            // without a key could fill the gateway's memory with them.
            DeactivateOnIdle();
        }

        return Task.FromResult(_identity);
    }

    public Task RefreshAsync() => LoadAsync(CancellationToken.None);

    private async Task LoadAsync(CancellationToken cancellationToken)
    {
        var key = await store.FindKeyByHashAsync(this.GetPrimaryKeyString(), cancellationToken);
        _identity = key is null ? null : new KeyIdentity(key.Id, key.TenantId, key.PolicyJson, key.RevokedAt is not null, key.ExpiresAt);
    }
}
