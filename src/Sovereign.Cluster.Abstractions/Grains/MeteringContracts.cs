namespace Sovereign.Cluster.Grains;

/// <summary>
/// A tenant's budgets and rate limits, as the operator set them. <paramref name="Currency"/> is the currency every
/// budget amount is in: the tenant's plan's when the limits were set (the grain fills it in; null in limits stored
/// before currencies were recorded, which then take the plan's).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TenantLimits(
    [property: Id(0)] IReadOnlyList<BudgetSetting> Budgets,
    [property: Id(1)] IReadOnlyList<RateLimitSetting> RateLimits,
    [property: Id(2)] string? Currency = null)
{
    /// <summary>No budgets, no rate limits.</summary>
    public static TenantLimits None { get; } = new([], []);

    /// <summary>
    /// Whether <paramref name="other"/> sets the same budgets, rate limits and currency: setting it again changes
    /// nothing (the one comparison; the record's own equality compares the lists by reference). A currency that
    /// differs is a change, the same amounts included: 500 USD is not 500 EUR.
    /// </summary>
    public bool HasSameSettingsAs(TenantLimits other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Budgets.SequenceEqual(other.Budgets) && RateLimits.SequenceEqual(other.RateLimits) && string.Equals(Currency, other.Currency, StringComparison.Ordinal);
    }
}

/// <summary>
/// A budget: per tenant (no key) or per key, per day, month or in total. Its amount is in the currency of the
/// tenant's plan (<see cref="BudgetStatusView.Currency"/>); a budget never counts spend in another currency.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record BudgetSetting([property: Id(0)] string? KeyId, [property: Id(1)] string Period, [property: Id(2)] decimal Amount);

/// <summary>Requests and tokens per minute, per tenant (no key) or per key.</summary>
[GenerateSerializer, Immutable]
public sealed record RateLimitSetting([property: Id(0)] string? KeyId, [property: Id(1)] long? RequestsPerMinute, [property: Id(2)] long? TokensPerMinute);

/// <summary>
/// Asks to admit a request: the most it can cost (in <paramref name="Currency"/>, the price's) and the most tokens it can
/// use. <paramref name="Gateway"/> (session 56; null from a gateway of an earlier release) is the asking gateway's silo,
/// as <see cref="AuthorizedAdmissionRequest.Gateway"/> is for an authorized admission: if the cluster declares it dead
/// before it settles the request, the grain settles the reservation from the ledger (or releases it) then, not at the
/// end of its lifetime.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record AdmissionRequest(
    [property: Id(0)] string RequestId,
    [property: Id(1)] string? KeyId,
    [property: Id(2)] long Tokens,
    [property: Id(3)] decimal MaxCost,
    [property: Id(4)] string Currency,
    [property: Id(5)] bool Unpriced = false,
    [property: Id(6)] SiloAddress? Gateway = null);

/// <summary>
/// Asks to admit a request (<see cref="Admission"/>) for a key whose authorization the gateway took from its cache: the
/// tenant's single activation admits only if the key is still valid (not revoked; not past <see cref="KeyExpiresAt"/>,
/// unix ms, fixed when the key was issued), the tenant exists and is not disabled, and its policy and plan are still
/// those the gateway decided on (<see cref="DecisionVersion"/>, <see cref="TenantVersions.DecisionOf"/>).
/// <see cref="Gateway"/> (session 55; null from a gateway of an earlier release) is the asking gateway's silo: if the
/// cluster declares it dead before it settles the request, the grain settles it from the ledger (or releases it) then,
/// not at the end of its reservation's lifetime.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record AuthorizedAdmissionRequest(
    [property: Id(0)] AdmissionRequest Admission,
    [property: Id(1)] long? KeyExpiresAt,
    [property: Id(2)] string DecisionVersion,
    [property: Id(3)] SiloAddress? Gateway = null);

/// <summary>Why <see cref="ITenantGrain.AdmitAuthorizedAsync"/> refused before admission: nothing was taken or reserved then.</summary>
public enum AuthorizationRefusal
{
    /// <summary>Authorized: <see cref="AuthorizedAdmission.Admission"/> holds the admission's decision.</summary>
    None = 0,

    /// <summary>The tenant does not exist.</summary>
    TenantNotFound = 1,

    /// <summary>The key was revoked.</summary>
    KeyRevoked = 2,

    /// <summary>The key's expiry has passed.</summary>
    KeyExpired = 3,

    /// <summary>The tenant is disabled.</summary>
    TenantDisabled = 4,

    /// <summary>The tenant's policy or plan changed after the version the gateway decided on: decide again on <see cref="AuthorizedAdmission.Tenant"/>.</summary>
    DecisionStale = 5,
}

/// <summary>
/// The answer of <see cref="ITenantGrain.AdmitAuthorizedAsync"/>: refused by <see cref="Refusal"/> with nothing taken, or
/// the admission's own decision (<see cref="Admission"/>, which may refuse too). <see cref="Tenant"/> is the tenant as
/// its activation holds it now (null when it does not exist), so a gateway refreshes its cache without another call.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record AuthorizedAdmission(
    [property: Id(0)] AuthorizationRefusal Refusal,
    [property: Id(1)] AdmissionResult? Admission,
    [property: Id(2)] TenantView? Tenant);

/// <summary>What the tenant grain decided about a request: a domain answer; the HTTP layer maps it to OpenAI's wire format.</summary>
public enum AdmissionOutcome
{
    /// <summary>Admitted: rate-limit capacity taken and the most it can cost reserved.</summary>
    Admitted = 0,

    /// <summary>Refused by a requests-per-minute limit.</summary>
    RateLimitedRequests = 1,

    /// <summary>Refused by a tokens-per-minute limit.</summary>
    RateLimitedTokens = 2,

    /// <summary>Refused: a budget has less left than the request could cost.</summary>
    BudgetExceeded = 3,

    /// <summary>
    /// Refused: the request is priced in another currency than the tenant's budgets (the plan's currency changed
    /// under them). Spend in two currencies is never summed, so the operator must set the budgets again.
    /// </summary>
    BudgetCurrencyMismatch = 4,

    /// <summary>
    /// Refused: the model has no price in the tenant's plan while a budget applies to the request, so its cost could not
    /// be counted against the budget (fail closed: it used to run at no cost, past any budget).
    /// </summary>
    Unpriced = 5,
}

/// <summary>The rate-limit counters that answered, as OpenAI reports them in its <c>x-ratelimit-*</c> headers (null: unlimited).</summary>
[GenerateSerializer, Immutable]
public sealed record RateLimitView(
    [property: Id(0)] long? LimitRequests,
    [property: Id(1)] long? RemainingRequests,
    [property: Id(2)] TimeSpan ResetRequests,
    [property: Id(3)] long? LimitTokens,
    [property: Id(4)] long? RemainingTokens,
    [property: Id(5)] TimeSpan ResetTokens);

/// <summary>
/// The budget that refused a request: whose it is, its period, its limit, what it has left and what was asked, in its
/// currency; <see cref="Final"/> when no release of reservations in flight could make room before it resets.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record BudgetRefusalView(
    [property: Id(0)] string? KeyId,
    [property: Id(1)] string Period,
    [property: Id(2)] decimal Limit,
    [property: Id(3)] decimal Remaining,
    [property: Id(4)] decimal Requested,
    [property: Id(5)] string Currency,
    [property: Id(6)] DateTimeOffset? ResetsAt,
    [property: Id(7)] bool Final = false);

/// <summary>
/// The answer to <see cref="ITenantGrain.AdmitAsync"/>. <see cref="RetryAfter"/> is set when waiting can cure a
/// rate-limit refusal, and for a day or month budget the time until it resets; <see cref="TooLarge"/> when the
/// request alone exceeds a whole per-minute limit (waiting never helps).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record AdmissionResult(
    [property: Id(0)] AdmissionOutcome Outcome,
    [property: Id(1)] RateLimitView? RateLimits,
    [property: Id(2)] TimeSpan? RetryAfter = null,
    [property: Id(3)] bool TooLarge = false,
    [property: Id(4)] string? RefusedScopeKeyId = null,
    [property: Id(5)] BudgetRefusalView? Budget = null)
{
    /// <summary>True when the request may run.</summary>
    public bool Allowed => Outcome == AdmissionOutcome.Admitted;
}

/// <summary>What an admitted request actually cost.</summary>
[GenerateSerializer, Immutable]
public sealed record SettlementRequest(
    [property: Id(0)] string RequestId,
    [property: Id(1)] string? KeyId,
    [property: Id(2)] decimal ActualCost,
    [property: Id(3)] long AdmittedTokens,
    [property: Id(4)] long ActualTokens);

/// <summary>
/// One budget's state now, in the currency of the tenant's plan. <see cref="Reserved"/> is what requests in flight
/// hold; <see cref="Leased"/> what gateways' budget leases hold and have not admitted yet, counted in
/// <see cref="Remaining"/> (the tenant's to spend: it returns when they close).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record BudgetStatusView(
    [property: Id(0)] string? KeyId,
    [property: Id(1)] string Period,
    [property: Id(2)] decimal Limit,
    [property: Id(3)] decimal Settled,
    [property: Id(4)] decimal Reserved,
    [property: Id(5)] decimal Remaining,
    [property: Id(6)] string Currency,
    [property: Id(7)] decimal Leased = 0m);

/// <summary>Why a change to a tenant's plan or limits was refused (nothing changed), or <see cref="None"/>.</summary>
public enum TenantChangeRefusal
{
    /// <summary>Applied.</summary>
    None = 0,

    /// <summary>The tenant does not exist.</summary>
    TenantNotFound = 1,

    /// <summary>Budgets need a plan with a currency, and the tenant's plan is not in the price book.</summary>
    PlanWithoutCurrency = 2,

    /// <summary>The new plan has another currency than the tenant's budgets: clear or set the budgets first.</summary>
    BudgetCurrencyConflict = 3,

    /// <summary>The limits changed after the version the change was based on was read (<c>If-Match</c>).</summary>
    VersionChanged = 4,
}

/// <summary>
/// The answer to a tenant change: applied (with the tenant before and after it, for an edit of the tenant), or refused
/// with the reason and the currencies involved. Every conditional change reports a stale version this way. A change of
/// the limits that was applied states the limits it replaced (<see cref="PreviousLimits"/>; null from a silo older
/// than it), read in the same turn as the write, for the audit entry; <see cref="Unchanged"/> when the limits asked
/// for were those already held (<see cref="TenantLimits.HasSameSettingsAs"/>), so nothing was written and there is
/// nothing to audit (false from a silo older than it: audited, never missed).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TenantChangeResult(
    [property: Id(0)] TenantChangeRefusal Refusal,
    [property: Id(1)] string? BudgetCurrency = null,
    [property: Id(2)] string? PlanCurrency = null,
    [property: Id(3)] TenantUpdate? Update = null,
    [property: Id(4)] TenantLimits? PreviousLimits = null,
    [property: Id(5)] bool Unchanged = false)
{
    /// <summary>True when the change was made.</summary>
    public bool Applied => Refusal == TenantChangeRefusal.None;

    /// <summary>Applied.</summary>
    public static TenantChangeResult Ok { get; } = new(TenantChangeRefusal.None);
}

/// <summary>
/// A tenant cannot move to a plan in another currency while it has budgets in the old one: spend in two currencies
/// is never summed or converted. Clear the budgets (or set them again after the move) first.
/// </summary>
[GenerateSerializer]
public sealed class BudgetCurrencyConflictException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public BudgetCurrencyConflictException()
    {
    }

    /// <summary>Creates the exception with its message.</summary>
    public BudgetCurrencyConflictException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its message and cause.</summary>
    public BudgetCurrencyConflictException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>What a refused move of <paramref name="tenant"/> to <paramref name="plan"/> says, thrown or returned.</summary>
    public static string MessageFor(string tenant, string? budgetCurrency, string plan, string? planCurrency) =>
        $"Tenant '{tenant}' has budgets in {budgetCurrency}, but plan '{plan}' " +
        (planCurrency is null ? "is not in the price book" : $"is in {planCurrency}") +
        ". Spend in two currencies is never summed: clear the tenant's budgets first, then set them again on the new plan.";
}

/// <summary>
/// The price book's version for the whole cluster (key <see cref="Key"/>): a gateway that saves a price change
/// publishes the new version here, and every process compares it with its own book's each second and reloads the book
/// from the database only when it is behind. Requests never wait for it.
/// </summary>
public interface IPriceBookGrain : IGrainWithStringKey
{
    /// <summary>The key of the one price-book grain.</summary>
    public const string Key = "default";

    /// <summary>The newest version of the stored price book that this grain knows of.</summary>
    [Orleans.Concurrency.ReadOnly]
    Task<long> GetVersionAsync();

    /// <summary>A process saved version <paramref name="version"/> of the book (older versions are ignored).</summary>
    Task PublishedAsync(long version);
}

/// <summary>
/// A grain met its database unreachable (a transient failure: down, restarting, a connection broken). Thrown in the
/// driver's place so that it reaches callers on every cluster member as itself: the driver's exception type is not one
/// Orleans carries across members. The gateway answers it 503 <c>storage_unavailable</c>, which clients retry.
/// </summary>
[GenerateSerializer]
public sealed class StorageUnavailableException : Exception
{
    /// <summary>
    /// How the message of one thrown for stored data found damaged begins (<c>DatabaseFailures.IsDamaged</c>): the
    /// gateway answers it 503 <c>database_damaged</c>, not <c>storage_unavailable</c>. A message, not a member, so the
    /// type's wire form is unchanged.
    /// </summary>
    public const string DamagedPrefix = "The database's stored data is damaged";

    /// <summary>Whether this one was thrown for stored data found damaged (see <see cref="DamagedPrefix"/>).</summary>
    public bool IsDamaged => Message.StartsWith(DamagedPrefix, StringComparison.Ordinal);

    /// <summary>Creates the exception.</summary>
    public StorageUnavailableException()
    {
    }

    /// <summary>Creates the exception with its message.</summary>
    public StorageUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its message and cause.</summary>
    public StorageUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// What a gateway asks of a tenant's grain beside an admission (<see cref="ITenantGrain.AdmitAuthorizedLeasingAsync"/>):
/// a budget lease, a slice of the key's remaining budget (at most <see cref="Money"/>, none below <see cref="MinMoney"/>)
/// and of its rate limits (at most <see cref="Requests"/> requests and <see cref="Tokens"/> tokens, none below
/// <see cref="MinTokens"/>), which the gateway spends on its own until the lease's term ends. Its money is in
/// <see cref="Currency"/>, the price's.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record BudgetLeaseAsk(
    [property: Id(0)] Guid LeaseId,
    [property: Id(1)] decimal Money,
    [property: Id(2)] decimal MinMoney,
    [property: Id(3)] int Requests,
    [property: Id(4)] long Tokens,
    [property: Id(5)] long MinTokens,
    [property: Id(6)] string Currency,
    [property: Id(7)] SiloAddress? Holder = null);

/// <summary>
/// The budget leases one gateway holds (<see cref="BudgetLeaseAsk.Holder"/>), keyed by its silo address
/// (<see cref="SiloAddress.ToParsableString"/>) and placed on that silo: a tenant's grain recalls its leases there
/// before a change of the tenant, its limits or its keys answers, so the gateway's next request is admitted by the
/// grain under the change.
/// </summary>
/// <remarks>Version 1 added <see cref="ReclaimAsync"/> (session 54).</remarks>
[Orleans.CodeGeneration.Version(1)]
public interface IBudgetLeaseHolderGrain : IGrainWithStringKey
{
    /// <summary>Stops admitting from every lease of <paramref name="tenantId"/> (its grain has closed them).</summary>
    Task RecallAsync(string tenantId);

    /// <summary>
    /// Stops admitting from every lease of <paramref name="tenantId"/> and answers, for each lease this gateway still
    /// knows (held, or dropped with requests admitted from it not yet confirmed), what it had not admitted: its grain
    /// takes that back and keeps the rest for the confirmations on their way, so a request whose relay left is not
    /// refused because another gateway's request needed the lease's money.
    /// </summary>
    Task<IReadOnlyList<BudgetLeaseUnused>> ReclaimAsync(string tenantId);
}

/// <summary>
/// What a gateway had not admitted of one lease when its grain reclaimed it (<see cref="IBudgetLeaseHolderGrain.ReclaimAsync"/>):
/// the lease's money, requests and tokens less what the gateway took for requests it admitted from it.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record BudgetLeaseUnused(
    [property: Id(0)] Guid LeaseId,
    [property: Id(1)] decimal Money,
    [property: Id(2)] int Requests,
    [property: Id(3)] long Tokens);

/// <summary>
/// A budget lease as the tenant's grain granted it (or, answering a request admitted from it, as it stands now): the
/// money it holds (<see cref="Money"/>, reserved in the grain under the lease; unbounded when no budget applies to the
/// key, <see cref="BudgetApplies"/> false), the requests and tokens of the rate limits taken for it, how long it lasts
/// from when it was asked for (<see cref="Term"/>), the decision version and currency it admits for, and the rate
/// limits' view when it was granted (their remaining counts exclude the whole lease).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record BudgetLease(
    [property: Id(0)] Guid LeaseId,
    [property: Id(1)] string? KeyId,
    [property: Id(2)] decimal Money,
    [property: Id(3)] bool BudgetApplies,
    [property: Id(4)] int Requests,
    [property: Id(5)] long Tokens,
    [property: Id(6)] TimeSpan Term,
    [property: Id(7)] string DecisionVersion,
    [property: Id(8)] string Currency,
    [property: Id(9)] RateLimitView? RateLimits);

/// <summary>
/// The answer of <see cref="ITenantGrain.AdmitAuthorizedLeasingAsync"/> and <see cref="ITenantGrain.AdmitFromLeaseAsync"/>:
/// the authorized admission's answer, and the lease (granted, or still open); null when none was granted or the lease
/// is closed (its holder stops admitting from it).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record LeasedAdmission(
    [property: Id(0)] AuthorizedAdmission Answer,
    [property: Id(1)] BudgetLease? Lease);
