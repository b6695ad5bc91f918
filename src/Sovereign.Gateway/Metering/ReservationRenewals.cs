using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;

namespace Sovereign.Gateway.Metering;

/// <summary>
/// Keeps the budget reservations of this gateway's running requests alive. The tenant grain releases a reservation
/// held longer than <see cref="TenantMoneyOptions.ReservationLifetime"/> (its caller crashed); a request that really runs
/// that long (a slow stream) would lose its reservation while still spending, and the budget could be overspent by it.
/// While a request runs, its reservation is renewed every third of the lifetime, one grain call per tenant for all of
/// its long requests; requests shorter than that cost nothing here.
/// </summary>
public sealed class ReservationRenewals : IDisposable
{
    private readonly ConcurrentDictionary<string, Held> _held = new(StringComparer.Ordinal);
    private readonly Func<string, IReadOnlyList<string>, Task<int>> _renew;
    private readonly TimeProvider _time;
    private readonly ILogger<ReservationRenewals> _logger;
    private readonly TimeSpan _renewAfter;
    private readonly ITimer _timer;

    public ReservationRenewals(GrainReferences<ITenantGrain> tenants, IOptions<TenantMoneyOptions> money, TimeProvider time, ILogger<ReservationRenewals> logger)
        : this((tenant, ids) => tenants.Get(tenant).RenewReservationsAsync(ids), money.Value.ReservationLifetime, time, logger)
    {
    }

    internal ReservationRenewals(Func<string, IReadOnlyList<string>, Task<int>> renew, TimeSpan lifetime, TimeProvider time, ILogger<ReservationRenewals> logger)
    {
        (_renew, _time, _logger) = (renew, time, logger);
        _renewAfter = lifetime / 3;

        // Looked at twice per renewal period: a reservation is renewed between a third and half of its lifetime.
        var interval = TimeSpan.FromTicks(Math.Clamp(lifetime.Ticks / 6, TimeSpan.TicksPerSecond, 5 * TimeSpan.TicksPerMinute));
        _timer = time.CreateTimer(_ => _ = RenewDueAsync(), null, interval, interval);
    }

    /// <summary>Requests whose reservations are kept alive now.</summary>
    internal int Count => _held.Count;

    /// <summary>Keeps the reservation of <paramref name="requestId"/> alive until the returned handle is disposed.</summary>
    public IDisposable Hold(string tenantId, string requestId)
    {
        _held[requestId] = new Held(tenantId, _time.GetUtcNow());
        return new Release(_held, requestId);
    }

    /// <summary>Renews every reservation not renewed for a third of the lifetime; the timer's work.</summary>
    internal async Task RenewDueAsync()
    {
        var now = _time.GetUtcNow();
        var due = _held.Where(h => Sovereign.Cluster.Hosting.WallClock.HasPassed(now, h.Value.RenewedAt, _renewAfter)).GroupBy(h => h.Value.TenantId, h => h.Key);
        foreach (var tenant in due)
        {
            var ids = tenant.ToArray();
            try
            {
                await _renew(tenant.Key, ids);
                foreach (var id in ids)
                {
                    // Only those still running: one that ended meanwhile is gone, and stays gone.
                    _held.TryUpdate(id, new Held(tenant.Key, now), _held.TryGetValue(id, out var held) ? held : default);
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Tried again at the next tick, while half a lifetime remains.
                Observability.GatewayLog.ReservationRenewalFailed(_logger, ex, tenant.Key, ids.Length);
            }
        }
    }

    public void Dispose() => _timer.Dispose();

    private readonly record struct Held(string TenantId, DateTimeOffset RenewedAt);

    private sealed class Release(ConcurrentDictionary<string, Held> held, string requestId) : IDisposable
    {
        public void Dispose() => held.TryRemove(requestId, out _);
    }
}
