using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Sovereign.Cluster.Security;

/// <summary>
/// This member's open connections that a peer's cluster certificate authenticated (silo to silo, Orleans gateway,
/// gateway to node, and a node's https listener), each with what that certificate proved. A revocation then cuts the
/// connections already open to the revoked peer, not only refuses its next handshake: a stolen certificate stops
/// working at once, not when its connections happen to close.
/// </summary>
public sealed partial class ClusterConnections
{
    private readonly Lock _lock = new();
    private readonly Dictionary<long, Connection> _open = [];
    private long _next;

    /// <summary>Where cut connections are logged (set when the host starts).</summary>
    public ILogger Logger { get; set; } = NullLogger.Instance;

    /// <summary>Connections tracked now (those whose owner is gone are not counted).</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                Prune();
                return _open.Count;
            }
        }
    }

    /// <summary>
    /// Tracks a connection that <paramref name="peer"/> (proving <paramref name="identity"/>) authenticated, until the
    /// returned handle is disposed. <paramref name="cut"/> closes it (it may run on any thread, once).
    /// </summary>
    public IDisposable Track(X509Certificate2 peer, ClusterIdentity identity, string channel, Action cut) =>
        Add(peer, identity, channel, cut, owner: null);

    /// <summary>
    /// Tracks a connection whose end this member is not told of, for as long as <paramref name="owner"/> (the object
    /// that holds it open, e.g. its <c>SslStream</c>) is alive; <paramref name="cut"/> receives the owner.
    /// </summary>
    public void TrackWhileAlive<TOwner>(X509Certificate2 peer, ClusterIdentity identity, string channel, TOwner owner, Action<TOwner> cut)
        where TOwner : class
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(cut);
        var weak = new WeakReference(owner);
        Add(peer, identity, channel, () =>
        {
            if (weak.Target is TOwner alive)
            {
                cut(alive);
            }
        }, weak);
    }

    /// <summary>
    /// The certificates the peers of the open connections presented, one per peer and serial: what this member knows
    /// of the other members' certificates (<c>cluster status</c> shows when each expires).
    /// </summary>
    public IReadOnlyList<CertificateExpiryView> PeerCertificates()
    {
        lock (_lock)
        {
            Prune();
            return [.. _open.Values.Select(c => new CertificateExpiryView(c.Identity.ToString(), c.Serial, c.NotAfter)).Distinct()];
        }
    }

    /// <summary>Cuts every tracked connection whose peer certificate <paramref name="revocations"/> revokes; returns how many.</summary>
    public int CutRevoked(CertificateRevocations revocations)
    {
        ArgumentNullException.ThrowIfNull(revocations);
        if (revocations.Count == 0)
        {
            return 0;
        }

        List<(Connection Connection, string Why)> revoked = [];
        lock (_lock)
        {
            Prune();
            foreach (var (id, connection) in _open)
            {
                if (revocations.Revokes(connection.Serial, connection.NotBefore, connection.Identity) is { } why)
                {
                    revoked.Add((connection, why));
                    _open.Remove(id);
                }
            }
        }

        // Outside the lock: a cut may complete the connection's own handle, which removes it.
        foreach (var (connection, why) in revoked)
        {
            LogCut(Logger, connection.Channel, connection.Identity.ToString(), why);
            try
            {
                connection.Cut();
            }
            catch (Exception ex) when (ex is ObjectDisposedException or InvalidOperationException or IOException)
            {
                // Already closing.
            }
        }

        return revoked.Count;
    }

    private IDisposable Add(X509Certificate2 peer, ClusterIdentity identity, string channel, Action cut, WeakReference? owner)
    {
        ArgumentNullException.ThrowIfNull(peer);
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(cut);

        // What a revocation compares, copied: the certificate object may be disposed with its connection.
        var connection = new Connection(peer.SerialNumber, new DateTimeOffset(peer.NotBefore.ToUniversalTime(), TimeSpan.Zero),
            new DateTimeOffset(peer.NotAfter.ToUniversalTime(), TimeSpan.Zero), identity, channel, cut, owner);
        long id;
        lock (_lock)
        {
            id = ++_next;
            if (owner is not null && id % 64 == 0)
            {
                Prune();
            }

            _open[id] = connection;
        }

        return new Handle(this, id);
    }

    /// <summary>Forgets connections whose owner was collected (their connection closed long ago).</summary>
    private void Prune()
    {
        foreach (var (id, connection) in _open)
        {
            if (connection.Owner is { IsAlive: false })
            {
                _open.Remove(id);
            }
        }
    }

    private void Remove(long id)
    {
        lock (_lock)
        {
            _open.Remove(id);
        }
    }

    [LoggerMessage(EventId = 3013, Level = LogLevel.Warning, Message = "Cut an open {Channel} connection of {Peer}: {Why}")]
    private static partial void LogCut(ILogger logger, string channel, string peer, string why);

    private sealed record Connection(string Serial, DateTimeOffset NotBefore, DateTimeOffset NotAfter, ClusterIdentity Identity, string Channel, Action Cut, WeakReference? Owner);

    private sealed class Handle(ClusterConnections owner, long id) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Remove(id);
            }
        }
    }
}
