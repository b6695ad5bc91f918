using System.Collections.Concurrent;
using System.Globalization;
using System.Diagnostics.Metrics;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;
using Sovereign.Metering.Budgets;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Metering.RateLimiting;
using Sovereign.Storage;

namespace Sovereign.Gateway.Metering;

/// <summary>What admission decided for one request: its price and the reservation made for it.</summary>
public sealed class MeterTicket
{
    internal MeterTicket(EffectivePrice? price, string currency, long admittedTokens, int weight, Inference.Scheduling.PriorityClass priority, bool reservedWithGrain, PriceBook? book = null, decimal reservedCost = 0m)
    {
        Price = price;
        Book = book ?? PriceBook.Empty;
        ReservedCost = reservedCost;
        Currency = currency;
        AdmittedTokens = admittedTokens;
        Weight = weight;
        Priority = priority;
        ReservedWithGrain = reservedWithGrain;
    }

    /// <summary>The price in force when the request arrived; null when the plan prices nothing for the model (free).</summary>
    public EffectivePrice? Price { get; }

    /// <summary>The plan's currency.</summary>
    public string Currency { get; }

    /// <summary>Tokens counted against the rate limit at admission (prompt + the most it may generate).</summary>
    public long AdmittedTokens { get; }

    /// <summary>The plan's fair-share weight.</summary>
    public int Weight { get; }

    /// <summary>The plan's priority class.</summary>
    public Inference.Scheduling.PriorityClass Priority { get; }

    internal bool ReservedWithGrain { get; }

    /// <summary>The price book the request was priced from at admission: it is priced from this one until it settles.</summary>
    internal PriceBook Book { get; }

    /// <summary>The most the request may cost, as reserved with the tenant's grain.</summary>
    internal decimal ReservedCost { get; }

    /// <summary>
    /// For a request admitted from this gateway's budget lease: the tenant's grain confirming it (authorization and its
    /// own reservation carved from the lease), which throws the refusal to answer with. Awaited before any of its
    /// content reaches the client, and before it settles; null when the grain admitted it directly.
    /// </summary>
    internal Task? Confirmation => Leased?.Task;

    /// <summary>The grain's confirmation of a request admitted from a lease, with what it answered (null otherwise).</summary>
    internal LeaseConfirmation? Leased { get; init; }
}

/// <summary>
/// The grain's confirmation of a request admitted from this gateway's budget lease, and what it answered: the rate
/// limits' view for the answer's headers and whether the caller proved unauthorized. The request's own thread applies
/// them (<see cref="RequestMetering.ApplyConfirmation"/>) once it has awaited <see cref="Task"/>: the confirmation
/// completes on another thread, and the request's headers and items are not safe to touch from two.
/// </summary>
internal sealed class LeaseConfirmation
{
    public Task Task { get; set; } = Task.CompletedTask;

    public AdmissionResult? Result { get; set; }

    public bool Unauthorized { get; set; }
}

/// <summary>
/// Meters every request exactly: before any work, the tenant's grain applies its rate limits and reserves the most
/// the request can cost; when it ends, the usage record is committed to the durable ledger (before the client gets
/// its last byte) and then the grain settles the actual cost. Refused requests are recorded too.
/// </summary>
public sealed class RequestMetering
{
    /// <summary>Upper bound of compute-seconds reserved when a price charges them, and billed.</summary>
    public const decimal MaxComputeSecondsPerRequest = 600m;

    private readonly GrainReferences<ITenantGrain> _tenants;
    private readonly UsageLedger _ledger;
    private readonly PriceBookProvider _prices;
    private readonly TimeProvider _time;
    // Exact sums, handed to the exporter as one double each: a Counter<double> added each cost as a double, and the sum
    // drifted from the ledger's (60 requests at 0.000006 EUR read 0.00035999999999999986, not 0.00036).
    private readonly ConcurrentDictionary<(string Tenant, string Currency), decimal> _spend = new();
    private readonly ConcurrentDictionary<(string Tenant, string Currency), decimal> _remaining = new();
    private readonly LanguageTaxCache _languageTax;
    private readonly BilledTokens _billedTokens;
    private readonly ILogger<RequestMetering> _logger;
    private readonly LanguageRouting _languages;
    private readonly CallerAuthenticator _authenticator;
    private readonly BudgetLeases? _leases;
    private readonly SiloAddress? _gateway;

    /// <summary>Creates the service and its spend and remaining-budget metrics.</summary>
    public RequestMetering(GrainReferences<ITenantGrain> tenants, CallerAuthenticator authenticator, UsageLedger ledger, PriceBookProvider prices, LanguageTaxCache languageTax, LanguageRouting languages, Microsoft.Extensions.Options.IOptions<Hosting.SovereignOptions> options, TimeProvider time, IMeterFactory meters, ILogger<RequestMetering> logger, BudgetLeases? leases = null, ILocalSiloDetails? silo = null)
    {
        _leases = leases is { Enabled: true } ? leases : null;

        // Named in each admission, so that the tenant's grain settles what this gateway admitted if it is declared dead.
        _gateway = silo?.SiloAddress;
        _logger = logger;
        _authenticator = authenticator;
        _languageTax = languageTax;
        _languages = languages;
        // As the detector names them (tl is fil), since the detected code is what is matched.
        // A plan naming a group (hbs, msa) waives its members, decided or not; naming a member, only that member once
        // decided (Sovereign.Languages.LanguageGroups.Covers): a coin toss between members waives nothing.
        _billedTokens = new BilledTokens(options.Value.Metering.CharacterEquivalentLanguages.Select(p =>
            new KeyValuePair<string, IEnumerable<string>>(p.Key, LanguageRouting.Canonical(p.Value) ?? [])), Sovereign.Languages.LanguageGroups.Covers);
        _tenants = tenants;
        _ledger = ledger;
        _prices = prices;
        _time = time;
        var meter = meters.Create(EngineMetrics.MeterName);
        meter.CreateObservableCounter(SpendMetric, ObserveSpend, "{currency}", "Settled spend, by tenant and currency.");
        meter.CreateObservableGauge(BudgetRemainingMetric, ObserveRemaining, "{currency}", "Remaining budget after the last settlement, by tenant.");
    }

    /// <summary>
    /// Admits a request or throws the 429 to answer with, with OpenAI's <c>x-ratelimit-*</c> headers either way. The
    /// tenant grain decides (rate limits, then a reservation of the most the request can cost); this turns its
    /// decision into OpenAI's status, error type (<c>requests</c>, <c>tokens</c>, <c>insufficient_quota</c>) and code.
    /// <paramref name="outputLimit"/> is the field the request bounds its output with (<c>max_tokens</c>,
    /// <c>max_completion_tokens</c>, <c>max_output_tokens</c>), which a refusal names; null for work without output.
    /// </summary>
    /// <remarks>
    /// A rate-limit refusal is recorded in the ledger unless <paramref name="countRateLimitRefusal"/> (its key is
    /// limited, and <see cref="RateLimitRefusals"/> counts it instead of recording it alone); other refusals always are.
    /// </remarks>
    /// <remarks>
    /// With <paramref name="mayLease"/> (a relay to a cluster node, whose content the pipeline holds until
    /// <see cref="MeterTicket.Confirmation"/>) and budget leases on, a provisional caller is admitted from this gateway's
    /// lease for its key when it has one that covers the request (no grain call before the relay), and otherwise asks
    /// the grain for one beside its admission.
    /// </remarks>
    public async Task<MeterTicket> AdmitAsync(HttpContext context, RoutedRequest routed, long promptTokens, long maxTokens, string? outputLimit = "max_tokens", bool countRateLimitRefusal = false, bool mayLease = false)
    {
        var caller = routed.Caller;
        var book = _prices.Current;
        var plan = book.FindPlan(caller.Plan);
        var weight = plan?.Weight ?? 1;
        var priority = (Inference.Scheduling.PriorityClass)(int)(plan?.Priority ?? PriorityClass.Interactive);

        var price = PriceOf(book, routed);
        var currency = price?.Currency ?? plan?.Currency ?? UnpricedCurrency;
        var tokens = promptTokens + maxTokens;
        var maxCost = price is null ? 0m : CostCalculator.MaxCost(price, promptTokens, maxTokens, MaxComputeSecondsPerRequest);
        if (maxCost > CostCalculator.MaxRequestCost)
        {
            // Its record could not be stored: it ran, then failed with a 500 and was billed nothing.
            throw OpenAIException.BadRequest(
                string.Create(CultureInfo.InvariantCulture,
                    $"This request could cost up to {maxCost} {currency}, more than the {CostCalculator.MaxRequestCost} {currency} one request may be billed; {Reduce(outputLimit)}."),
                outputLimit, "request_cost_out_of_range");
        }

        if (caller.IsAnonymous)
        {
            return new MeterTicket(price, currency, tokens, weight, priority, false, book);
        }

        // Named here too (not only in an authorized admission): a key's first request at this gateway, admitted by AdmitAsync,
        // is settled from the ledger (or released) by the tenant's grain if this gateway is declared dead before settling it.
        var admission = new AdmissionRequest(routed.RequestId, caller.KeyId, tokens, maxCost, currency, Unpriced: price is null, Gateway: _gateway);
        AdmissionResult result;
        if (caller.Provisional is { } provisional)
        {
            // Authorized from this gateway's cache: the one grain call of the request confirms the key and the tenant
            // the decision was made on, and admits in the same turn, or refuses with nothing taken or reserved.
            var authorized = new AuthorizedAdmissionRequest(admission, provisional.Identity.ExpiresAt, provisional.DecisionVersion, _gateway);
            AuthorizedAdmission answer;
            if (mayLease && _leases is { } leases && caller.KeyId is { } keyId && !countRateLimitRefusal)
            {
                if (leases.TryTake(caller.TenantId, keyId, provisional.DecisionVersion, maxCost, tokens, currency, price is null) is { } held)
                {
                    // Admitted here: the grain confirms it while the relay leaves, and its content waits for that.
                    var confirmation = new LeaseConfirmation();
                    confirmation.Task = ConfirmLeasedAsync(confirmation, routed, provisional, held, authorized, tokens, currency, weight, priority, outputLimit);
                    return new MeterTicket(price, currency, tokens, weight, priority, true, book, maxCost) { Leased = confirmation };
                }

                answer = await AdmitAskingLeaseAsync(leases, caller.TenantId, keyId, authorized, maxCost, tokens, currency);
            }
            else
            {
                answer = await _tenants.Get(caller.TenantId).AdmitAuthorizedAsync(authorized);
            }

            provisional.Confirmed = true;
            if (answer.Admission is not { } admitted)
            {
                throw await RefusedAsync(routed, answer, tokens, currency, weight, priority, outputLimit, RefusalAt.Admission, unauthorized: () => KnownCallers.Forget(context));
            }

            result = admitted;
        }
        else
        {
            result = await _tenants.Get(caller.TenantId).AdmitAsync(admission);
        }

        WriteRateLimitHeaders(context.Response.Headers, result);

        if (!result.Allowed)
        {
            throw await RefusedAsync(routed, new AuthorizedAdmission(AuthorizationRefusal.None, result, null), tokens, currency, weight, priority, outputLimit,
                countRateLimitRefusal ? RefusalAt.AdmissionCountingRateLimits : RefusalAt.Admission);
        }

        return new MeterTicket(price, currency, tokens, weight, priority, true, book, maxCost);
    }

    /// <summary>Where a refusal of the tenant's grain comes: what differs in how it is answered and recorded.</summary>
    private enum RefusalAt
    {
        /// <summary>Before any work left: a changed caller is decided again (<see cref="CallerChangedException"/>, not recorded).</summary>
        Admission,

        /// <summary>As <see cref="Admission"/>, a rate-limit refusal left to <see cref="RateLimitRefusals"/> to count instead of recorded alone.</summary>
        AdmissionCountingRateLimits,

        /// <summary>
        /// The confirmation of a request admitted from a lease: its relay has left, so it cannot be decided again, and a
        /// changed caller is a 503 <c>policy_changed</c> the client retries (recorded as any refusal).
        /// </summary>
        LeaseConfirmation,
    }

    /// <summary>
    /// The exception to answer a refusal of the tenant's grain with, and its usage record at no cost: a key or tenant
    /// that no longer authorizes the caller (401/403: <paramref name="unauthorized"/> is called, so the caller is no
    /// longer counted as known), a policy changed since the decision (see <see cref="RefusalAt"/>), or its limits
    /// (429, or 403 <c>model_not_priced</c> under a budget). The decision's audit entry is followed by its rejected
    /// outcome in the pipeline's accounting.
    /// </summary>
    private async Task<Exception> RefusedAsync(RoutedRequest routed, AuthorizedAdmission answer, long tokens, string currency, int weight,
        Inference.Scheduling.PriorityClass priority, string? outputLimit, RefusalAt at, Action? unauthorized = null)
    {
        Exception refused;
        if (answer.Admission is { } result)
        {
            var refusal = result.Outcome == AdmissionOutcome.Unpriced ? UnpricedRefusal(routed) : Refusal(result, tokens, currency, outputLimit);
            if (at == RefusalAt.AdmissionCountingRateLimits && RateLimitRefusals.IsRateLimit(refusal))
            {
                return refusal;
            }

            refused = refusal;
        }
        else
        {
            refused = _authenticator.RefusalOf(routed.Caller, answer);
            if (at == RefusalAt.LeaseConfirmation && refused is CallerChangedException)
            {
                refused = new OpenAIException(StatusCodes.Status503ServiceUnavailable,
                    "The tenant's policy changed while this request was being admitted; try again.", "server_error", null, CallerAuthenticator.PolicyChangedCode, TimeSpan.FromSeconds(1));
            }

            if (refused is not OpenAIException { Status: var status })
            {
                // Decided again on the changed caller: no answer yet, so nothing to record.
                return refused;
            }

            if (status is StatusCodes.Status401Unauthorized or StatusCodes.Status403Forbidden)
            {
                unauthorized?.Invoke();
            }
        }

        await _ledger.AppendAsync(UsageRecordOf(routed, new MeterTicket(null, currency, 0, weight, priority, false), 0, 0, null, UsageOutcome.Refused, ((OpenAIException)refused).Code));
        return refused;
    }

    /// <summary>Admits with the grain, asking for the key's budget lease beside it unless another request of the key is asking.</summary>
    private async Task<AuthorizedAdmission> AdmitAskingLeaseAsync(BudgetLeases leases, string tenant, string keyId, AuthorizedAdmissionRequest authorized, decimal maxCost, long tokens, string currency)
    {
        if (leases.TryBeginAsk(tenant, keyId) is not { } ask)
        {
            return await _tenants.Get(tenant).AdmitAuthorizedAsync(authorized);
        }

        try
        {
            var askedAt = System.Diagnostics.Stopwatch.GetTimestamp();
            var leased = await _tenants.Get(tenant).AdmitAuthorizedLeasingAsync(authorized, leases.Ask(maxCost, tokens, currency));
            if (leased.Lease is { } lease)
            {
                leases.Install(tenant, keyId, lease, askedAt, ask);
            }

            return leased.Answer;
        }
        finally
        {
            leases.EndAsk(ask);
        }
    }

    /// <summary>
    /// The grain's confirmation of a request admitted from this gateway's lease: authorized in the grain's turn as an
    /// admission is, its reservation carved from the lease (or, the lease closed, made afresh). A refusal is answered
    /// and recorded as at admission: the 401/403 of a key or tenant that no longer authorizes it, a 429 of its limits, a
    /// 503 <c>policy_changed</c> for a policy or plan changed since it was decided (it cannot be decided again: its
    /// relay has left). The rate limits' headers are the grain's.
    /// </summary>
    private async Task ConfirmLeasedAsync(LeaseConfirmation confirmation, RoutedRequest routed, ProvisionalAuthorization provisional, BudgetLeases.Held held,
        AuthorizedAdmissionRequest authorized, long tokens, string currency, int weight, Inference.Scheduling.PriorityClass priority, string? outputLimit)
    {
        var caller = routed.Caller;
        LeasedAdmission leased;
        try
        {
            leased = await _tenants.Get(caller.TenantId).AdmitFromLeaseAsync(held.Id, authorized);
        }
        catch
        {
            // No answer: whether the grain still holds the lease is unknown; it is not used again here.
            _leases!.Answered(held, null);
            throw;
        }

        _leases!.Answered(held, leased.Lease);
        provisional.Confirmed = true;
        var answer = leased.Answer;
        confirmation.Result = answer.Admission;
        if (answer.Admission is not { Allowed: true })
        {
            // The caller is forgotten on the request's own thread (ApplyConfirmation): this one is not the request's.
            throw await RefusedAsync(routed, answer, tokens, currency, weight, priority, outputLimit, RefusalAt.LeaseConfirmation,
                unauthorized: () => confirmation.Unauthorized = true);
        }
    }

    /// <summary>
    /// On the request's own thread, once <see cref="MeterTicket.Confirmation"/> completed (admitted or refused): the rate
    /// limits' headers as the grain answered, and a caller that proved unauthorized no longer counted as known.
    /// </summary>
    internal static void ApplyConfirmation(HttpContext context, MeterTicket ticket)
    {
        if (ticket.Leased is not { } confirmation)
        {
            return;
        }

        if (confirmation.Unauthorized)
        {
            KnownCallers.Forget(context);
        }

        if (confirmation.Result is { } result && !context.Response.HasStarted)
        {
            WriteRateLimitHeaders(context.Response.Headers, result);
        }
    }

    /// <summary>
    /// Counts a request that spends no tokens and no money (<c>POST /v1/language/detect</c>) against the caller's
    /// requests-per-minute limits, or throws the 429 to answer with; OpenAI's <c>x-ratelimit-*</c> headers either way.
    /// One grain call and no reservation, so nothing to settle; not a usage record (the work is not metered).
    /// </summary>
    public async Task CountRequestAsync(HttpContext context, Caller caller)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(caller);
        if (caller.IsAnonymous)
        {
            return;
        }

        var result = await _tenants.Get(caller.TenantId).CountRequestAsync(caller.KeyId);
        WriteRateLimitHeaders(context.Response.Headers, result);

        if (!result.Allowed)
        {
            throw Refusal(result, 0, UnpricedCurrency);
        }
    }

    /// <summary>
    /// Gives back the request <see cref="CountRequestAsync"/> or <see cref="AdmitAsync"/> counted when the work refused it
    /// as the client's mistake (a node's 400 for a relayed <c>/detokenize</c>, <c>/v1/completions</c> or
    /// <c>/v1/embeddings</c>), with the limits' headers after it where the answer has not started: an invalid request is
    /// not counted, as a local one refused before the count is not. A grain that does not answer leaves the request
    /// counted (logged, event 4116): the client's 400 stands.
    /// </summary>
    public async Task RefundRequestAsync(HttpContext context, Caller caller)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(caller);
        if (caller.IsAnonymous)
        {
            return;
        }

        AdmissionResult result;
        try
        {
            result = await _tenants.Get(caller.TenantId).RefundRequestAsync(caller.KeyId);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Observability.GatewayLog.RequestRefundFailed(_logger, ex, caller.TenantId);
            return;
        }

        if (context.Response.HasStarted)
        {
            return;
        }

        WriteRateLimitHeaders(context.Response.Headers, result);
    }

    /// <summary>
    /// The ticket of a request that failed over to another node: priced for its new placement (another pool or device
    /// class may have another compute rate) from the same book as at admission, on the same reservation. Null when
    /// the reservation does not cover the new price's maximum cost: the request cannot run there on the money held.
    /// </summary>
    public static MeterTicket? Reprice(MeterTicket ticket, RoutedRequest routed, long promptTokens, long maxTokens)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        ArgumentNullException.ThrowIfNull(routed);
        var price = PriceOf(ticket.Book, routed);
        if (ticket.ReservedWithGrain && price is not null
            && CostCalculator.MaxCost(price, promptTokens, maxTokens, MaxComputeSecondsPerRequest) > ticket.ReservedCost)
        {
            return null;
        }

        return new MeterTicket(price, ticket.Currency, ticket.AdmittedTokens, ticket.Weight, ticket.Priority, ticket.ReservedWithGrain, ticket.Book, ticket.ReservedCost)
        {
            Leased = ticket.Leased,
        };
    }

    /// <summary>
    /// The price in force when the request arrived, not when admission got to it. Where it runs decides the compute
    /// rate (pool, device class); a request not placed is priced by model alone.
    /// </summary>
    private static EffectivePrice? PriceOf(PriceBook book, RoutedRequest routed)
    {
        EffectivePrice? price;
        _ = routed.Placement is { } placement
            ? book.TryPriceFor(routed.Caller.Plan, routed.Model, placement, routed.ArrivedAt, out price)
            : book.TryPriceFor(routed.Caller.Plan, routed.Model, routed.ArrivedAt, out price);
        return price;
    }

    /// <summary>
    /// The currency of records of requests no plan prices (they cost nothing): ISO 4217's "no currency", as an empty
    /// invoice's. It was USD, so a tenant with no plan (or anonymous callers) read "0 USD" in usage and invoices.
    /// </summary>
    private const string UnpricedCurrency = InvoiceBuilder.NoCurrency;

    /// <summary>
    /// Writes OpenAI's rate-limit headers for the counters the grain reported; Retry-After only on a rate-limit refusal
    /// waiting can cure. Straight into the response's headers, as <see cref="OpenAIRateLimitHeaders.For"/> formats them:
    /// every admitted request sends them, and building the list and a decision for each was garbage on every request.
    /// </summary>
    internal static void WriteRateLimitHeaders(IHeaderDictionary headers, AdmissionResult result)
    {
        if (result.RateLimits is not { } rate)
        {
            return;
        }

        if (rate.LimitRequests is { } limitRequests)
        {
            headers[OpenAIRateLimitHeaders.LimitRequests] = OpenAIRateLimitHeaders.FormatLimit(limitRequests);
        }

        if (rate.LimitTokens is { } limitTokens)
        {
            headers[OpenAIRateLimitHeaders.LimitTokens] = OpenAIRateLimitHeaders.FormatLimit(limitTokens);
        }

        if (rate.RemainingRequests is { } remainingRequests)
        {
            headers[OpenAIRateLimitHeaders.RemainingRequests] = remainingRequests.ToString(CultureInfo.InvariantCulture);
        }

        if (rate.RemainingTokens is { } remainingTokens)
        {
            headers[OpenAIRateLimitHeaders.RemainingTokens] = remainingTokens.ToString(CultureInfo.InvariantCulture);
        }

        if (rate.LimitRequests is not null)
        {
            headers[OpenAIRateLimitHeaders.ResetRequests] = OpenAIRateLimitHeaders.FormatDuration(rate.ResetRequests);
        }

        if (rate.LimitTokens is not null)
        {
            headers[OpenAIRateLimitHeaders.ResetTokens] = OpenAIRateLimitHeaders.FormatDuration(rate.ResetTokens);
        }

        // As OpenAIRateLimitHeaders.For: only a limited refusal (not one too large to ever fit) says when to retry.
        if (result.Outcome is AdmissionOutcome.RateLimitedRequests or AdmissionOutcome.RateLimitedTokens && !result.TooLarge && result.RetryAfter is { } retryAfter)
        {
            headers[OpenAIRateLimitHeaders.RetryAfter] = OpenAIRateLimitHeaders.RetryAfterSeconds(retryAfter).ToString(CultureInfo.InvariantCulture);
        }
    }

    /// <summary>The 429 for a refusal: OpenAI's error type per limit (tokens, requests, insufficient_quota), our code, and a message with the numbers.</summary>
    /// <summary>
    /// A model the tenant's plan does not price, asked for by a tenant or key with a budget: 403, which SDKs do not retry,
    /// since only the operator can cure it (a price, or no budget).
    /// </summary>
    internal static OpenAIException UnpricedRefusal(RoutedRequest routed) => new(StatusCodes.Status403Forbidden,
        $"The model '{routed.Model}' has no price in your plan '{routed.Caller.Plan}', and a budget applies to your requests: their cost could not be counted against it. Ask the operator to price the model (sovereign plans price).",
        "permission_error", "model", UnpricedCode);

    /// <summary>The error code of <see cref="UnpricedRefusal"/>.</summary>
    public const string UnpricedCode = "model_not_priced";

    /// <summary>What to make smaller: the prompt, and the output limit by the name the request used, if it has one.</summary>
    private static string Reduce(string? outputLimit) => outputLimit is null ? "reduce the input" : $"reduce the prompt or {outputLimit}";

    internal static OpenAIException Refusal(AdmissionResult result, long requestedTokens, string requestCurrency, string? outputLimit = "max_tokens")
    {
        var whose = result.RefusedScopeKeyId is null ? "this organization" : "this API key";
        var rate = result.RateLimits;
        switch (result.Outcome)
        {
            case AdmissionOutcome.RateLimitedRequests or AdmissionOutcome.RateLimitedTokens:
            {
                var tokens = result.Outcome == AdmissionOutcome.RateLimitedTokens;
                var what = tokens ? "tokens per min (TPM)" : "requests per min (RPM)";
                var limit = tokens ? rate?.LimitTokens : rate?.LimitRequests;
                var requested = tokens ? requestedTokens : 1;
                var message = result.TooLarge
                    ? string.Create(CultureInfo.InvariantCulture, $"Request too large for {what} on {whose}: Limit {limit}, Requested {requested}. The request can never fit; {Reduce(outputLimit)}.")
                    : string.Create(CultureInfo.InvariantCulture,
                        $"Rate limit reached for {what} on {whose}: Limit {limit}, Remaining {(tokens ? rate?.RemainingTokens : rate?.RemainingRequests)}, Requested {requested}. Please try again in {OpenAIRateLimitHeaders.FormatDuration(result.RetryAfter ?? TimeSpan.Zero)}.");
                // The wait itself: Retry-After says it in whole seconds rounded up, retry-after-ms to the millisecond.
                var retryAfter = result.TooLarge || result.RetryAfter is not { } wait ? (TimeSpan?)null : wait;
                return new OpenAIException(StatusCodes.Status429TooManyRequests, message, tokens ? "tokens" : "requests", null,
                    result.TooLarge ? "rate_limit_request_too_large" : "rate_limit_exceeded", retryAfter) { Final = result.TooLarge };
            }

            case AdmissionOutcome.BudgetExceeded when result.Budget is { } budget:
            {
                var scope = budget.KeyId is null ? "the tenant's" : $"key {budget.KeyId}'s";
                var resets = budget.ResetsAt is { } at ? string.Create(CultureInfo.InvariantCulture, $"; it resets at {at:yyyy-MM-ddTHH:mm:ssZ}") : "";
                return new OpenAIException(StatusCodes.Status429TooManyRequests,
                    string.Create(CultureInfo.InvariantCulture,
                        $"This request could cost up to {budget.Requested} {budget.Currency}, but {scope} {budget.Period} budget of {budget.Limit} {budget.Currency} has {budget.Remaining} {budget.Currency} left{resets}."),
                    "insufficient_quota", null, BudgetRefusal.ErrorCode) { Final = budget.Final };
            }

            case AdmissionOutcome.BudgetCurrencyMismatch:
                return new OpenAIException(StatusCodes.Status429TooManyRequests,
                    $"This request is priced in {requestCurrency}, but the tenant's budgets are in {result.Budget?.Currency}; a budget never mixes currencies. The operator must set the budgets again in the plan's currency.",
                    "insufficient_quota", null, "budget_currency_mismatch") { Final = true };

            default:
                // Fail closed on a decision this gateway does not know.
                return new OpenAIException(StatusCodes.Status429TooManyRequests, $"The request was refused ({result.Outcome}).", "insufficient_quota", null, "admission_refused") { Final = true };
        }
    }

    /// <summary>
    /// The request's usage record priced from the price book (the ticket's prices), as <see cref="FinishAsync"/> bills it:
    /// the language tax's waiver, cached prompt tokens, compute seconds bounded by what the reservation covered.
    /// </summary>
    private (UsageRecord Record, decimal ComputeSeconds) Priced(RoutedRequest routed, MeterTicket ticket, int promptTokens, int completionTokens, GenerationResult? timing, UsageOutcome outcome, int cachedTokens, string? refusalCode)
    {
        cachedTokens = Math.Clamp(cachedTokens, 0, promptTokens);
        var computeSeconds = Math.Round((decimal)(timing?.ComputeSeconds ?? 0), 6);
        if (computeSeconds > MaxComputeSecondsPerRequest)
        {
            // As tokens are billed at most up to the demand: the reservation, which a budget holds, covered this much.
            Observability.GatewayLog.ComputeAboveReservation(_logger, routed.RequestId, routed.NodeId, computeSeconds, MaxComputeSecondsPerRequest);
            computeSeconds = MaxComputeSecondsPerRequest;
        }

        // The waiver covers the share of the text in the request's language: the prompt's over all of its text, the
        // completion's over what was delivered of it.
        var (billedPrompt, billedCompletion, basis) = _billedTokens.For(routed.Caller.Plan, routed.Language, promptTokens, completionTokens,
            // Serbian in Latin letters tokenizes unlike Serbian in Cyrillic: the ratio of the script the prompt is in.
            () => routed.Language is { } language
                ? _languageTax.RatioToEnglish(routed.Model, language, Sovereign.Languages.LanguageTax.ScriptOf(routed.Prompt ?? Sovereign.Languages.PromptText.Empty, language))
                : null,
            () =>
            {
                var share = _languages.ShareOf(routed.Prompt ?? Sovereign.Languages.PromptText.Empty, routed.Language!, routed.RequestId);
                return (share.LanguageLetters, share.PromptLetters, share.Basis);
            },
            () =>
            {
                if (routed.Completion is not { } completion)
                {
                    // Nothing gathered (the plan waived nothing when the work started): nothing verified, billed per token.
                    return (0, 0);
                }

                var share = _languages.ShareOf(completion, routed.Language!);
                return (share.LanguageLetters, share.PromptLetters);
            },
            routed.LanguageGroup ?? routed.AliasChoice?.UndecidedGroup);
        routed.CharacterEquivalent = basis;
        var billedCached = promptTokens == 0 ? 0 : (int)((long)cachedTokens * billedPrompt / promptTokens);
        // Billed to millionths with the tenant's carry: what lies below a millionth is kept for its next requests, so
        // many requests that each cost less than one are billed their sum (rounded alone, each was free).
        var exact = ticket.Price is null ? 0m : CostCalculator.ExactCost(ticket.Price, billedPrompt, billedCompletion, computeSeconds, billedCached);
        var cost = exact == 0m ? 0m : _ledger.CostCarry.Bill(routed.Caller.TenantId, ticket.Currency, exact);
        // A refused record needs its rule; a refusal after admission without one (an unexpected error) says so.
        var code = outcome == UsageOutcome.Refused ? refusalCode ?? "refused_after_admission" : null;
        var record = UsageRecordOf(routed, ticket, promptTokens, completionTokens, timing, outcome, code, cost, cachedTokens) with
        {
            ComputeSeconds = computeSeconds,
            ExactCost = exact == cost ? null : exact,

            // Why the bill is what it is, on the record the invoice sums: the basis and the tokens it did not bill.
            CharacterEquivalent = basis,
            WaivedPromptTokens = promptTokens - billedPrompt,
            WaivedCompletionTokens = completionTokens - billedCompletion,
        };
        routed.Billed = (record.Cost, record.Currency);
        return (record, computeSeconds);
    }

    /// <summary>
    /// The usage record of a request that delivered tokens but whose books could not be written when it ended (the
    /// database down), priced exactly as <see cref="FinishAsync"/> would have billed it, for
    /// <see cref="ControlPlane.DeferredOutcomes"/> to write once the database is back. It was written at cost 0.
    /// </summary>
    internal UsageRecord PricedUnwritten(RoutedRequest routed, MeterTicket ticket, int promptTokens, int completionTokens, GenerationResult? timing, UsageOutcome outcome, int cachedTokens, string refusalCode) =>
        Priced(routed, ticket, promptTokens, completionTokens, timing, outcome, cachedTokens, refusalCode).Record with { RefusalCode = refusalCode };

    /// <summary>
    /// Settles the reservation of a request whose priced record (<see cref="PricedUnwritten"/>) waits for the database,
    /// at that record's cost: the budget counts what was delivered at once, and the ledger holds the same cost once the
    /// record is written (a budget rebuilt from the ledger meanwhile lacks it until then; it never counts it twice: a
    /// settlement is once per request, and a rebuild replaces what the activation held).
    /// </summary>
    internal async Task SettleUnwrittenAsync(RoutedRequest routed, MeterTicket ticket, UsageRecord priced)
    {
        try
        {
            await SettleAsync(routed, ticket, priced.Cost, priced.PromptTokens + priced.CompletionTokens);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // As after a committed record: the reservation expires, and the tenant's grain then settles it at the cost
            // the ledger holds for it by then (8104), or releases it if the record was never written (8101).
            LogSettlementFailure(ex, routed);
        }
    }

    /// <summary>
    /// Says why a committed request's reservation was not settled: the tenant's grain did not answer (its member gone
    /// or stopping, the call timed out: event 4114), or it answered with an exception of its own, a refused argument
    /// or a defect in it (event 4123). Both were 4114, which sent an operator looking for an unavailable member while
    /// the grain was refusing every settlement.
    /// </summary>
    private void LogSettlementFailure(Exception exception, RoutedRequest routed)
    {
        if (GrainDidNotAnswer(exception))
        {
            Observability.GatewayLog.SettlementFailed(_logger, exception, routed.RequestId, routed.Caller.TenantId);
        }
        else
        {
            Observability.GatewayLog.SettlementRefused(_logger, exception, routed.RequestId, routed.Caller.TenantId, exception.GetType().Name);
        }
    }

    /// <summary>
    /// Whether a grain call failed for want of an answer (Orleans' own failures: the message rejected, the member
    /// unavailable or unreachable, the runtime stopping, the response timed out) rather than with an exception the
    /// grain's code threw, which Orleans hands back to the caller as thrown.
    /// </summary>
    internal static bool GrainDidNotAnswer(Exception exception) =>
        exception is TimeoutException or Orleans.Runtime.OrleansException or ObjectDisposedException;

    /// <summary>Counts a record's cost in the spend series once the ledger holds it (<see cref="FinishAsync"/>'s own, or a deferred one).</summary>
    internal void CountWritten(UsageRecord record)
    {
        if (record.Cost > 0)
        {
            _spend.AddOrUpdate((record.Tenant, record.Currency), record.Cost, (_, sum) => sum + record.Cost);
        }
    }

    /// <summary>
    /// Commits the usage record (durably), then settles the reservation at the actual cost. With
    /// <paramref name="auditOutcome"/> (which appends the request's outcome to the audit log, carrying the write it is
    /// given) the record commits in the audit entry's transaction: one commit for both, and never one without the other.
    /// </summary>
    /// <remarks>
    /// <paramref name="cachedTokens"/> of the prompt tokens came from the prefix cache and are charged at the cached-input
    /// rate; when the language tax is waived, the same share of the billed prompt tokens is. <paramref name="refusalCode"/>
    /// names the rule that refused work after its admission (outcome Refused). If the commit fails, nothing is settled:
    /// the reservation holds the money until it expires, and the error is thrown. Returns the compute seconds billed.
    /// </remarks>
    public async Task<decimal> FinishAsync(RoutedRequest routed, MeterTicket ticket, int promptTokens, int completionTokens, GenerationResult? timing, UsageOutcome outcome, int cachedTokens = 0, string? refusalCode = null, Func<ICarriedWrite?, Task>? auditOutcome = null)
    {
        var (record, computeSeconds) = Priced(routed, ticket, promptTokens, completionTokens, timing, outcome, cachedTokens, refusalCode);
        var cost = record.Cost;
        if (auditOutcome is null)
        {
            await _ledger.AppendAsync(record);
        }
        else if (_ledger.Carry(record) is { } carried)
        {
            using var span = Observability.GatewayTelemetry.Source.StartActivity(Observability.GatewayTelemetry.AuditOutcome);
            await auditOutcome(carried);
            await carried.Stored;
        }
        else
        {
            // This ledger commits on its own (stricter durability): the two commits run side by side.
            using var span = Observability.GatewayTelemetry.Source.StartActivity(Observability.GatewayTelemetry.AuditOutcome);
            await Task.WhenAll(_ledger.AppendAsync(record), Task.Run(() => auditOutcome(null)));
        }

        Observability.GenAiMetrics.Instance.Record(routed, promptTokens, completionTokens, timing, outcome);
        try
        {
            await SettleAsync(routed, ticket, cost, promptTokens + completionTokens);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The record is committed: it is the bill, and the answer is the client's. The tenant's grain was on a
            // member going away (a gateway restarting); its next activation rebuilds the spend from the ledger, which
            // holds this cost. Thrown, it cut a stream before its [DONE] and turned a billed answer into a 503 that
            // SDKs retry, paying twice.
            LogSettlementFailure(ex, routed);
        }

        CountWritten(record);
        return computeSeconds;
    }

    /// <summary>
    /// A sample to gather the completion's letters in, when the caller's plan bills some language per
    /// character-equivalent (its completion is billed at its own mix); null otherwise, so other requests pay nothing.
    /// </summary>
    public Sovereign.Languages.LetterSample? CompletionSampleFor(RoutedRequest routed) =>
        _billedTokens.WaivesAny(routed.Caller.Plan) ? _languages.NewSample(routed.RequestId) : null;

    /// <summary>
    /// Gives a reservation back without a usage record, for a request nothing ran for whose refusal the ledger could
    /// not record either (a full or failing disk): no work, no cost, so no money is held for it.
    /// </summary>
    public Task ReleaseAsync(RoutedRequest routed, MeterTicket ticket) => SettleAsync(routed, ticket, 0m, 0);

    /// <summary>
    /// The usage record, at no cost, of a request whose books could not be written when it ended because the database
    /// was down (its reservation already given back): kept with its outcome entry until the database is back
    /// (<see cref="ControlPlane.DeferredOutcomes"/>), so the ledger and the audit log agree without a restart.
    /// </summary>
    internal UsageRecord UnbilledRecord(RoutedRequest routed, MeterTicket ticket, int promptTokens, int completionTokens, UsageOutcome outcome, string refusalCode)
    {
        var record = UsageRecordOf(routed, ticket, promptTokens, completionTokens, null, outcome, refusalCode);
        routed.Billed = (record.Cost, record.Currency);
        return record;
    }

    /// <summary>Settles the reservation at <paramref name="cost"/> and remembers what the budget has left for the next answer's headers.</summary>
    private async Task SettleAsync(RoutedRequest routed, MeterTicket ticket, decimal cost, long usedTokens)
    {
        if (ticket.ReservedWithGrain)
        {
            var admittedTokens = ticket.AdmittedTokens;
            if (ticket.Confirmation is { } confirmation)
            {
                // Admitted from a lease: settled after the grain's confirmation (its reservation made), never before.
                try
                {
                    await confirmation;
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // The grain did not admit it (or did not answer): nothing was taken for it, so what it used, if
                    // anything, is charged as used (no tokens were counted at admission).
                    if (cost == 0m && usedTokens == 0)
                    {
                        return;
                    }

                    admittedTokens = 0;
                }
            }

            using var span = Observability.GatewayTelemetry.Source.StartActivity(Observability.GatewayTelemetry.Settle);
            var remaining = await _tenants.Get(routed.Caller.TenantId)
                .SettleAsync(new SettlementRequest(routed.RequestId, routed.Caller.KeyId, cost, admittedTokens, usedTokens));
            if (remaining is { } left)
            {
                _remaining[(routed.Caller.TenantId, ticket.Currency)] = left; // a tuple, not a joined string per settlement
            }
        }
    }

    /// <summary>Records a request refused before admission (e.g. by residency), at no cost, at its arrival time (now if not given).</summary>
    public Task RecordRefusalAsync(Caller caller, string requestId, string model, string node, string jurisdiction, string? code, DateTimeOffset? arrivedAt = null) =>
        _ledger.AppendAsync(new UsageRecord
        {
            RequestId = requestId,
            Timestamp = arrivedAt ?? _time.GetUtcNow(),
            Tenant = caller.TenantId,
            KeyId = caller.KeyId ?? "-",
            Model = model,
            Node = node,
            Jurisdiction = jurisdiction,
            Outcome = UsageOutcome.Refused,
            RefusalCode = code,
            Currency = _prices.Current.FindPlan(caller.Plan)?.Currency ?? UnpricedCurrency,
        });

    private static UsageRecord UsageRecordOf(RoutedRequest routed, MeterTicket? ticket, int promptTokens, int completionTokens, GenerationResult? timing, UsageOutcome outcome, string? refusalCode, decimal cost = 0m, int cachedTokens = 0) =>
        new()
        {
            RequestId = routed.RequestId,

            // Arrival, not the end: the day, month and budget period a request counts in are those it arrived in.
            Timestamp = routed.ArrivedAt,
            Tenant = routed.Caller.TenantId,
            KeyId = routed.Caller.KeyId ?? "-",
            Model = routed.Model,
            Node = routed.NodeId,
            Jurisdiction = routed.Jurisdiction,
            Pool = routed.Placement?.Pool,
            DeviceClass = routed.Placement?.DeviceClass,
            Language = routed.Language,
            PromptTokens = promptTokens,
            CompletionTokens = completionTokens,
            CachedTokens = cachedTokens,
            QueueTimeMs = (long)(timing?.QueueTime.TotalMilliseconds ?? 0),
            TimeToFirstTokenMs = timing?.TimeToFirstToken is { } ttft ? (long)ttft.TotalMilliseconds : null,
            DurationMs = (long)(timing?.Duration.TotalMilliseconds ?? 0),
            ComputeSeconds = Math.Round((decimal)(timing?.ComputeSeconds ?? 0), 6),
            Outcome = outcome,
            RefusalCode = refusalCode,
            Cost = cost,
            Currency = ticket?.Currency ?? UnpricedCurrency,
            PriceVersion = ticket?.Price?.Version,
        };

    /// <summary>The settled spend per tenant and currency (<c>sovereign_spend_total</c>).</summary>
    internal const string SpendMetric = "sovereign.spend";

    /// <summary>The least a tenant-wide budget has left, per tenant and currency (<c>sovereign_budget_remaining</c>).</summary>
    internal const string BudgetRemainingMetric = "sovereign.budget_remaining";

    /// <summary>
    /// Notes a tenant's budgets as its limits now stand (after the operator changed or read them), for the
    /// remaining-budget metric: the least a tenant-wide budget has left, or no series once it has none. It was noted
    /// only at a settlement, so a budget raised, lowered or cleared kept showing what was left under the old one.
    /// </summary>
    public void NoteBudgets(string tenant, IReadOnlyList<BudgetStatusView> budgets)
    {
        ArgumentNullException.ThrowIfNull(budgets);
        var tenantWide = budgets.Where(b => b.KeyId is null).ToList();
        foreach (var key in _remaining.Keys.Where(k => string.Equals(k.Tenant, tenant, StringComparison.Ordinal)))
        {
            if (!tenantWide.Any(b => string.Equals(key.Currency, b.Currency, StringComparison.Ordinal)))
            {
                _remaining.TryRemove(key, out _);
            }
        }

        foreach (var currency in tenantWide.GroupBy(b => b.Currency))
        {
            _remaining[(tenant, currency.Key)] = currency.Min(b => b.Remaining);
        }
    }

    private IEnumerable<Measurement<double>> ObserveSpend()
    {
        foreach (var ((tenant, currency), sum) in _spend)
        {
            yield return new Measurement<double>((double)sum, new KeyValuePair<string, object?>("tenant", tenant), new KeyValuePair<string, object?>("currency", currency));
        }
    }

    private IEnumerable<Measurement<double>> ObserveRemaining()
    {
        foreach (var ((tenant, currency), remaining) in _remaining)
        {
            yield return new Measurement<double>((double)remaining, new KeyValuePair<string, object?>("tenant", tenant), new KeyValuePair<string, object?>("currency", currency));
        }
    }
}
