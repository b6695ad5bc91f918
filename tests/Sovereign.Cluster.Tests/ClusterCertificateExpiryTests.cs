using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// A running member's own cluster certificate ran out with nothing said before: every peer then refused it and the
/// member dropped out of the cluster. It now warns (event 3021) within the configured window and exports the seconds left.
/// </summary>
public sealed class ClusterCertificateExpiryTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-expiry-").FullName;

    [Fact]
    public void Check_WithinTheWindow_WarnsWithEvent3021_OnceADay()
    {
        var clock = new Clock(Now);
        var logger = new CapturingLogger();
        var expiry = new ClusterCertificateExpiry(Credentials("node-soon", TimeSpan.FromDays(10), warningDays: 14), clock, logger);

        var view = expiry.Check();
        expiry.Check();

        var warning = Assert.Single(logger.Entries);
        Assert.Equal((3021, LogLevel.Warning), (warning.Id, warning.Level));
        Assert.Contains("node/node-soon", warning.Message, StringComparison.Ordinal);
        Assert.Contains("in 10 days", warning.Message, StringComparison.Ordinal);
        Assert.Contains("sovereign cluster cert issue", warning.Message, StringComparison.Ordinal);
        Assert.Equal(Now.AddDays(10), view!.NotAfter);

        clock.Now = Now.AddDays(1);
        expiry.Check();
        Assert.Equal(2, logger.Entries.Count);
        Assert.Contains("in 9 days", logger.Entries[1].Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A member whose clock steps back still warns daily: the last warning's time stayed in the future, so it kept
    /// quiet for a day and the length of the step (two days back: three days without a word, with ten days left).
    /// </summary>
    [Fact]
    public void Check_AfterTheClockStepsBackTwoDays_StillWarnsWithinADay()
    {
        var clock = new Clock(Now);
        var logger = new CapturingLogger();
        var expiry = new ClusterCertificateExpiry(Credentials("node-step", TimeSpan.FromDays(10), warningDays: 14), clock, logger);
        expiry.Check();

        clock.Now = Now.AddDays(-2);
        expiry.Check();
        clock.Now = Now.AddDays(-1);
        expiry.Check();

        Assert.Equal(3, logger.Entries.Count);
        Assert.All(logger.Entries, e => Assert.Equal(3021, e.Id));
    }

    [Fact]
    public void Check_OutsideTheWindow_SaysNothing_UntilTheWindowStarts()
    {
        var clock = new Clock(Now);
        var logger = new CapturingLogger();
        var expiry = new ClusterCertificateExpiry(Credentials("node-later", TimeSpan.FromDays(30), warningDays: 7), clock, logger);

        expiry.Check();
        clock.Now = Now.AddDays(22).AddSeconds(-1);
        expiry.Check();
        Assert.Empty(logger.Entries);

        clock.Now = Now.AddDays(23);
        expiry.Check();
        Assert.Equal(3021, Assert.Single(logger.Entries).Id);
    }

    [Fact]
    public async Task Gauge_IsTheSecondsUntilExpiry_PerRunningMember()
    {
        var clock = new Clock(Now);
        var expiry = new ClusterCertificateExpiry(Credentials("node-gauge", TimeSpan.FromDays(30), warningDays: 14), clock, new CapturingLogger());
        await expiry.StartAsync(CancellationToken.None);
        try
        {
            Assert.Equal(30 * 86400d, Measure("node/node-gauge"));
            clock.Now = Now.AddDays(31);
            Assert.Equal(-86400d, Measure("node/node-gauge"));
        }
        finally
        {
            await expiry.StopAsync(CancellationToken.None);
        }

        Assert.Null(Measure("node/node-gauge"));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static double? Measure(string member, string instrumentName = "sovereign.cluster.certificate.expiry")
    {
        double? value = null;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == ClusterCertificateExpiry.MeterName && instrument.Name == instrumentName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, measurement, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "member" && (string?)tag.Value == member)
                {
                    value = measurement;
                }
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return value;
    }

    [Fact]
    public void Check_CaWithinItsWindow_WarnsWithEvent3022_ToReplaceTheCa_OnceADay()
    {
        var clock = new Clock(Now);
        var logger = new CapturingLogger();
        // A member certificate asked for a year is cut to its CA's 60 days: only a new CA helps.
        var expiry = new ClusterCertificateExpiry(Credentials("node-old-ca", TimeSpan.FromDays(365), warningDays: 14, caLifetime: TimeSpan.FromDays(60)), clock, logger);

        var view = expiry.Check();
        expiry.Check();

        var warning = Assert.Single(logger.Entries);
        Assert.Equal((3022, LogLevel.Warning), (warning.Id, warning.Level));
        Assert.Contains("Sovereign cluster CA prod", warning.Message, StringComparison.Ordinal);
        Assert.Contains("in 60 days", warning.Message, StringComparison.Ordinal);
        Assert.Contains("node/node-old-ca", warning.Message, StringComparison.Ordinal);
        Assert.Contains("Replace the CA", warning.Message, StringComparison.Ordinal);
        Assert.Equal(Now.AddDays(60), view!.AuthorityNotAfter);

        clock.Now = Now.AddDays(1);
        expiry.Check();
        Assert.Equal(2, logger.Entries.Count);
        Assert.Contains("in 59 days", logger.Entries[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_DuringACaReplacement_WatchesTheCaThatIssuedThisCertificate()
    {
        var logger = new CapturingLogger();
        using var replaced = ClusterCertificates.CreateAuthority("prod", Now.AddDays(-3600));

        // The CA file holds the old CA (ending in 50 days) before the new one that issued this member's certificate.
        var expiry = new ClusterCertificateExpiry(Credentials("node-new-ca", TimeSpan.FromDays(365), warningDays: 14, otherAuthority: replaced), new Clock(Now), logger);

        var view = expiry.Check();

        Assert.Empty(logger.Entries);
        Assert.Equal(Now.AddDays(3650), view!.AuthorityNotAfter);
        Assert.NotEqual(replaced.SerialNumber, view.AuthoritySerial);
    }

    [Fact]
    public async Task CaGauge_IsTheSecondsUntilTheIssuingCaExpires()
    {
        var clock = new Clock(Now);
        var expiry = new ClusterCertificateExpiry(Credentials("node-ca-gauge", TimeSpan.FromDays(30), warningDays: 14, caLifetime: TimeSpan.FromDays(400)), clock, new CapturingLogger());
        await expiry.StartAsync(CancellationToken.None);
        try
        {
            Assert.Equal(400 * 86400d, Measure("node/node-ca-gauge", "sovereign.cluster.ca.expiry"));
            Assert.Equal(30 * 86400d, Measure("node/node-ca-gauge"));
        }
        finally
        {
            await expiry.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>
    /// A node's TLS material in its own directory: the cluster CA (valid for <paramref name="caLifetime"/>, default ten
    /// years; after <paramref name="otherAuthority"/> in the CA file if given) and a certificate it issued for <paramref name="lifetime"/>.
    /// </summary>
    private ClusterTlsCredentials Credentials(string nodeId, TimeSpan lifetime, double warningDays, TimeSpan? caLifetime = null, X509Certificate2? otherAuthority = null)
    {
        var directory = Directory.CreateDirectory(Path.Combine(_directory, nodeId)).FullName;
        var options = new SovereignClusterOptions { Redis = "127.0.0.1:1", Secret = "s", Role = ServerRole.Node, CertificateExpiryWarningDays = warningDays };
        var tls = new ClusterTlsCredentials(options, directory, nodeId, TimeProvider.System);
        using var ca = ClusterCertificates.CreateAuthority("prod", Now, caLifetime);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var identity = new ClusterIdentity(ServerRole.Node, nodeId);
        using var issued = ClusterCertificates.Issue(ca, ClusterCertificates.CreateSigningRequest(identity, key), identity, Now, lifetime);
        ClusterTlsCredentials.WritePem(tls.KeyPath, key.ExportPkcs8PrivateKeyPem(), secret: true);
        ClusterTlsCredentials.WritePem(tls.CertificatePath, issued.ExportCertificatePem(), secret: false);
        ClusterTlsCredentials.WritePem(tls.AuthorityPath, (otherAuthority is null ? "" : otherAuthority.ExportCertificatePem() + "\n") + ca.ExportCertificatePem(), secret: false);
        return tls;
    }

    private sealed class Clock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private sealed class CapturingLogger : ILogger<ClusterCertificateExpiry>
    {
        public List<(int Id, LogLevel Level, string Message)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Add((eventId.Id, logLevel, formatter(state, exception)));
    }
}
