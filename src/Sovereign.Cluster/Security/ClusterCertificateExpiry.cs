using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
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
/// The CA that issued it is watched the same way (event 3022 within
/// <see cref="Hosting.SovereignClusterOptions.CaExpiryWarningDays"/>, gauge <c>sovereign.cluster.ca.expiry</c>): a
/// member certificate never outlives its CA, so near the CA's end a new one would not help; the CA must be replaced.
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

    /// <summary>Seconds until the CA that issued each running member's certificate expires.</summary>
    internal static ObservableGauge<double> AuthorityExpiryGauge { get; } = ClusterMeter.CreateObservableGauge(
        "sovereign.cluster.ca.expiry", ObserveAuthorities, "s", "Seconds until the cluster CA that issued this member's certificate expires (negative once expired).");

    private readonly Lock _gate = new();
    private CertificateExpiryView? _current;
    private (string Serial, DateTimeOffset At)? _warned;
    private (string Serial, DateTimeOffset At)? _warnedAuthority;

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
        X509Certificate2? authority;
        try
        {
            var local = tls.Local;
            authority = IssuerOf(local, tls.Authorities);
            view = new CertificateExpiryView(tls.ExpectedIdentity.ToString(), local.SerialNumber, new DateTimeOffset(local.NotAfter.ToUniversalTime(), TimeSpan.Zero))
            {
                AuthoritySerial = authority?.SerialNumber,
                AuthorityNotAfter = authority is null ? null : new DateTimeOffset(authority.NotAfter.ToUniversalTime(), TimeSpan.Zero),
            };
        }
        catch (Exception ex) when (ex is CryptographicException or IOException)
        {
            // Being rewritten (a rotation): read at the next look; the one in use stays what it was.
            return Current;
        }

        Volatile.Write(ref _current, view);
        var now = time.GetUtcNow();

        // The timer and cluster status both look: one warning a day between them, per certificate.
        var left = view.NotAfter - now;
        if (left <= TimeSpan.FromDays(tls.Options.CertificateExpiryWarningDays) && Due(ref _warned, view.Serial, now))
        {
            LogExpiring(logger, tls.CertificatePath, view.Member, view.Serial, view.NotAfter, Math.Round(left.TotalDays, 1), tls.Options.CertificateExpiryWarningDays);
        }

        if (view.AuthorityNotAfter is { } authorityEnd && authorityEnd - now is var authorityLeft
            && authorityLeft <= TimeSpan.FromDays(tls.Options.CaExpiryWarningDays) && Due(ref _warnedAuthority, view.AuthoritySerial!, now))
        {
            LogAuthorityExpiring(logger, tls.AuthorityPath, authority!.Subject, view.AuthoritySerial!, authorityEnd, Math.Round(authorityLeft.TotalDays, 1), view.Member, tls.Options.CaExpiryWarningDays);
        }

        return view;
    }

    // Whether a warning about this certificate is due: none yet, or the last one a day ago (or about another certificate).
    private bool Due(ref (string Serial, DateTimeOffset At)? warned, string serial, DateTimeOffset now)
    {
        lock (_gate)
        {
            // A clock that stepped back since the last warning warns again now: it kept quiet for the length of the step.
            if (warned is { } last && last.Serial == serial && !Sovereign.Cluster.Hosting.WallClock.HasPassed(now, last.At, WarningInterval))
            {
                return false;
            }

            warned = (serial, now);
            return true;
        }
    }

    /// <summary>
    /// The CA certificate of <paramref name="authorities"/> whose key signed <paramref name="certificate"/>, found by
    /// key identifier (member certificates name their CA's; the file holds two CAs during a replacement).
    /// </summary>
    private static X509Certificate2? IssuerOf(X509Certificate2 certificate, X509Certificate2Collection authorities)
    {
        var issuerKey = certificate.Extensions.OfType<X509AuthorityKeyIdentifierExtension>().FirstOrDefault()?.KeyIdentifier;
        return authorities.Cast<X509Certificate2>()
            .Where(a => a.SubjectName.RawData.AsSpan().SequenceEqual(certificate.IssuerName.RawData))
            .Where(a => issuerKey is not { } key || a.Extensions.OfType<X509SubjectKeyIdentifierExtension>().FirstOrDefault()?.SubjectKeyIdentifierBytes.Span.SequenceEqual(key.Span) == true)
            .MaxBy(a => a.NotAfter);
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

    private static IEnumerable<Measurement<double>> ObserveAuthorities()
    {
        foreach (var member in Running.Keys)
        {
            if (member.Current is { AuthorityNotAfter: { } end } view)
            {
                yield return new Measurement<double>((end - member.Now).TotalSeconds, [new KeyValuePair<string, object?>("member", view.Member)]);
            }
        }
    }

    [LoggerMessage(EventId = 3021, Level = LogLevel.Warning,
        Message = "This member's cluster certificate {Path} ({Member}, serial {Serial}) expires at {NotAfter:O}, in {Days} days (warning from {WindowDays} days, Sovereign:Cluster:CertificateExpiryWarningDays): "
            + "peers refuse it from then on and this member drops out of the cluster. Issue a new one with 'sovereign cluster cert issue' into the same files; it is used from the next connection on, without a restart")]
    private static partial void LogExpiring(ILogger logger, string path, string member, string serial, DateTimeOffset notAfter, double days, double windowDays);

    [LoggerMessage(EventId = 3022, Level = LogLevel.Warning,
        Message = "The cluster CA {Subject} (serial {Serial}, in {Path}) that issued this member's certificate ({Member}) expires at {NotAfter:O}, in {Days} days (warning from {WindowDays} days, Sovereign:Cluster:CaExpiryWarningDays): "
            + "every certificate it signed ends then, and no certificate it issues lasts longer, so a new member certificate will not help. Replace the CA: 'sovereign cluster ca init' into a new folder, "
            + "both CA certificates in every member's CA file, new member certificates from the new CA, then the old CA out (operator guide, 'Replace the CA')")]
    private static partial void LogAuthorityExpiring(ILogger logger, string path, string subject, string serial, DateTimeOffset notAfter, double days, string member, double windowDays);
}

/// <summary>
/// A member's cluster certificate: whose it is (<c>gateway/gw-th</c>), its serial and when it expires; for this
/// member's own, also the CA that issued it and its end (null for a peer's, or a CA not in the CA file).
/// </summary>
public sealed record CertificateExpiryView(string Member, string Serial, DateTimeOffset NotAfter)
{
    /// <summary>The serial of the CA certificate that issued this one.</summary>
    public string? AuthoritySerial { get; init; }

    /// <summary>When the CA certificate that issued this one expires.</summary>
    public DateTimeOffset? AuthorityNotAfter { get; init; }
}
