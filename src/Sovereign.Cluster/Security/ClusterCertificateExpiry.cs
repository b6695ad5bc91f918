using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Sovereign.Cluster.Security;

/// <summary>
/// This member's own cluster certificate, and how long it has left. Peers refuse an expired one, so a member whose
/// certificate runs out drops out of the cluster with nothing said before: it now warns (event 3021) when the
/// certificate expires within <see cref="Hosting.SovereignClusterOptions.CertificateExpiryWarningDays"/>, at start and
/// then once a day per certificate, and exports the seconds left as the gauge
/// <c>sovereign.cluster.certificate.expiry</c> (<c>sovereign_cluster_certificate_expiry_seconds</c> on /metrics, tagged
/// with the member). <c>cluster status</c> shows the date. A certificate rotated in place is the one read next.
/// </summary>
public sealed partial class ClusterCertificateExpiry(ClusterTlsCredentials tls, TimeProvider time, ILogger<ClusterCertificateExpiry> logger) : BackgroundService
{
    /// <summary>The meter the gauge is in (the gateway's /metrics subscribes to it).</summary>
    public const string MeterName = "Sovereign.Cluster";

    /// <summary>How often the certificate is looked at (a rotation or the window's start is seen within this).</summary>
    public static readonly TimeSpan CheckInterval = TimeSpan.FromHours(1);

    /// <summary>How often a warning is repeated for one certificate.</summary>
    public static readonly TimeSpan WarningInterval = TimeSpan.FromDays(1);

    // Every running member of this process (tests run several): the gauge reports each with its identity.
    private static readonly ConcurrentDictionary<ClusterCertificateExpiry, byte> Running = new();

    /// <summary>The process's meter of cluster instruments.</summary>
    internal static Meter ClusterMeter { get; } = new(MeterName);

    /// <summary>Seconds until each running member's certificate expires.</summary>
    internal static ObservableGauge<double> ExpiryGauge { get; } = ClusterMeter.CreateObservableGauge(
        "sovereign.cluster.certificate.expiry", Observe, "s", "Seconds until this member's cluster certificate expires (negative once expired).");

    private readonly Lock _gate = new();
    private CertificateExpiryView? _current;
    private (string Serial, DateTimeOffset At)? _warned;

    private DateTimeOffset Now => time.GetUtcNow();

    /// <summary>This member's certificate as last read (null before the first look, or with cluster TLS off).</summary>
    public CertificateExpiryView? Current => Volatile.Read(ref _current);

    /// <summary>Reads the certificate now; warns (event 3021) when it expires within the window and was not warned of in the last day.</summary>
    public CertificateExpiryView? Check()
    {
        if (!tls.Enabled || tls.AwaitsJoin)
        {
            return null;
        }

        CertificateExpiryView view;
        try
        {
            var local = tls.Local;
            view = new CertificateExpiryView(tls.ExpectedIdentity.ToString(), local.SerialNumber, new DateTimeOffset(local.NotAfter.ToUniversalTime(), TimeSpan.Zero));
        }
        catch (Exception ex) when (ex is CryptographicException or IOException)
        {
            // Being rewritten (a rotation): read at the next look; the one in use stays what it was.
            return Current;
        }

        Volatile.Write(ref _current, view);
        var now = time.GetUtcNow();
        var left = view.NotAfter - now;
        var window = TimeSpan.FromDays(tls.Options.CertificateExpiryWarningDays);
        if (left > window)
        {
            return view;
        }

        // The timer and cluster status both look: one warning a day between them.
        lock (_gate)
        {
            if (_warned is { } warned && warned.Serial == view.Serial && now - warned.At < WarningInterval)
            {
                return view;
            }

            _warned = (view.Serial, now);
        }

        LogExpiring(logger, tls.CertificatePath, view.Member, view.Serial, view.NotAfter, Math.Round(left.TotalDays, 1), tls.Options.CertificateExpiryWarningDays);

        return view;
    }

    /// <inheritdoc/>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Here, not in ExecuteAsync, which runs on its own task: the first look and the gauge are there once the host has started.
        if (tls.Enabled)
        {
            Check();
            Running[this] = 0;
        }

        return base.StartAsync(cancellationToken);
    }

    /// <inheritdoc/>
    public override Task StopAsync(CancellationToken cancellationToken)
    {
        Running.TryRemove(this, out _);
        return base.StopAsync(cancellationToken);
    }

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!tls.Enabled)
        {
            return;
        }

        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(CheckInterval, time, stoppingToken);
                Check();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private static IEnumerable<Measurement<double>> Observe()
    {
        foreach (var member in Running.Keys)
        {
            if (member.Current is { } view)
            {
                yield return new Measurement<double>((view.NotAfter - member.Now).TotalSeconds, [new KeyValuePair<string, object?>("member", view.Member)]);
            }
        }
    }

    [LoggerMessage(EventId = 3021, Level = LogLevel.Warning,
        Message = "This member's cluster certificate {Path} ({Member}, serial {Serial}) expires at {NotAfter:O}, in {Days} days (warning from {WindowDays} days, Sovereign:Cluster:CertificateExpiryWarningDays): "
            + "peers refuse it from then on and this member drops out of the cluster. Issue a new one with 'sovereign cluster cert issue' into the same files; it is used from the next connection on, without a restart")]
    private static partial void LogExpiring(ILogger logger, string path, string member, string serial, DateTimeOffset notAfter, double days, double windowDays);
}

/// <summary>A member's cluster certificate: whose it is (<c>gateway/gw-th</c>), its serial and when it expires.</summary>
public sealed record CertificateExpiryView(string Member, string Serial, DateTimeOffset NotAfter);
