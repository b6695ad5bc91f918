namespace Sovereign.Cluster.Grains;

/// <summary>How the tenant grain treats money that is held but never settled (bound from <c>Sovereign:Metering</c>).</summary>
public sealed class TenantMoneyOptions
{
    /// <summary>
    /// How long a budget reservation may stay unsettled before a grain timer releases it and logs a money
    /// correction (its caller crashed or lost the settle). Longer than any request may run: a request settled
    /// after this is still charged in full, as an unreserved settlement.
    /// </summary>
    public TimeSpan ReservationLifetime { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>The longest <see cref="LeaseTerm"/> allowed.</summary>
    public static readonly TimeSpan MaxLeaseTerm = TimeSpan.FromMinutes(5);

    /// <summary>The <see cref="LeaseTerm"/> of a gateway in a multi-process cluster (<c>--role gateway</c>) where none is set.</summary>
    public static readonly TimeSpan ClusterGatewayLeaseTerm = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a gateway's budget lease lasts (0: no leases, every admission asks the tenant's grain; the default
    /// except on a <c>--role gateway</c> member of a multi-process cluster, where it is <see cref="ClusterGatewayLeaseTerm"/>). A
    /// gateway that relays to a cluster node takes a slice of the key's remaining budget and rate limits from the
    /// tenant's grain and admits requests from it without a grain call on the path to the first token; each one is
    /// confirmed by the grain before any of its content reaches the client. What the lease did not spend returns when
    /// the term ends (or its gateway stops); a gateway that dies returns nothing and the grain closes its lease one
    /// second after the term.
    /// </summary>
    public TimeSpan LeaseTerm { get; set; } = TimeSpan.Zero;

    /// <summary>How many requests' worth a gateway asks a lease for: that many times the asking request's most cost and tokens (default 32).</summary>
    public int LeaseRequests { get; set; } = 32;

    /// <summary>
    /// The fewest requests' worth a lease is granted for (default 4): where the budget (times <see cref="LeaseShare"/>)
    /// or a rate limit leaves less, no lease is granted and every request asks the grain, so the last of a budget is
    /// spent exactly.
    /// </summary>
    public int LeaseMinRequests { get; set; } = 4;

    /// <summary>The most of a budget's remaining amount, and of a per-minute rate limit, one lease may hold (default 0.1).</summary>
    public decimal LeaseShare { get; set; } = 0.1m;

    /// <summary>The longest <see cref="LeaseReclaimTimeout"/> allowed: the tenant's other requests wait meanwhile.</summary>
    public static readonly TimeSpan MaxLeaseReclaimTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a reclaim of a tenant's leases waits for one gateway to say what it admitted from them (default 1 s; at
    /// most <see cref="MaxLeaseReclaimTimeout"/>). The grain is not reentrant: the request that reclaims and the tenant's
    /// other requests wait meanwhile. A gateway that does not answer in time has its leases closed whole, and is not
    /// asked again (its leases close whole at once) until it answers a recall or the cluster declares it dead, so an
    /// unreachable gateway costs this wait once, not at every reclaim.
    /// </summary>
    public TimeSpan LeaseReclaimTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest <see cref="LeaseRecallTimeout"/> allowed: the change of the tenant waits meanwhile.</summary>
    public static readonly TimeSpan MaxLeaseRecallTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a change of a tenant (its limits, a key revoked, disabled, a new policy or plan) waits, in total, for the
    /// gateways whose leases it closed to hear of it (default 5 s; at most <see cref="MaxLeaseRecallTimeout"/>). They are
    /// asked in parallel; a gateway the cluster has declared dead is not asked, and one that did not answer an earlier
    /// reclaim or recall is told without being waited for. The change holds without the answer: a gateway that has not
    /// heard admits from a lease the grain has closed, and the grain decides each such request afresh at its
    /// confirmation, before any byte reaches its client.
    /// </summary>
    public TimeSpan LeaseRecallTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long the grain keeps a lease past its term before closing it itself (its holder stops using it at the term).</summary>
    internal static readonly TimeSpan LeaseGrace = TimeSpan.FromSeconds(1);

    private TimeSpan? _expiryCheckInterval;

    /// <summary>
    /// How often the grain looks for expired reservations while it holds any: a quarter of the lifetime, between 1 s and
    /// 1 min. Set (internal, never bound from configuration) only by tests that drive the timer's work by hand
    /// (<see cref="System.Threading.Timeout.InfiniteTimeSpan"/>: it never ticks), so a tick in real time cannot do that
    /// work between a test's clock move and its own call.
    /// </summary>
    /// <summary>
    /// How often the grain closes leases past their term or of gateways declared dead, and settles what dead gateways
    /// admitted, while it holds any (1 s). Set (internal, never bound from configuration) only by tests that drive that
    /// work by hand (<see cref="System.Threading.Timeout.InfiniteTimeSpan"/>: it never ticks).
    /// </summary>
    internal TimeSpan LeaseCheckInterval { get; set; } = TimeSpan.FromSeconds(1);

    internal TimeSpan ExpiryCheckInterval
    {
        get => _expiryCheckInterval ?? TimeSpan.FromTicks(Math.Clamp(ReservationLifetime.Ticks / 4, TimeSpan.TicksPerSecond, TimeSpan.TicksPerMinute));
        set => _expiryCheckInterval = value;
    }
}
