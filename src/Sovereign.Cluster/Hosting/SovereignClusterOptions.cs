namespace Sovereign.Cluster.Hosting;

/// <summary>What a <c>sovereign serve</c> process does in the cluster.</summary>
public enum ServerRole
{
    /// <summary>Gateway and node in one process: today's single machine (the default).</summary>
    All,

    /// <summary>Authenticates, routes, meters and audits; serves no model itself, relays to nodes.</summary>
    Gateway,

    /// <summary>Serves its models only to the cluster's gateways and reports its load to the registry.</summary>
    Node,
}

/// <summary>
/// Settings of the <c>Sovereign:Cluster</c> section. Without <see cref="Redis"/> the process is a one-silo cluster
/// with localhost clustering (one machine); with it, every process that names the same Redis and
/// <see cref="ClusterId"/> joins one Orleans cluster, so a tenant's grain (its money) and the node registry have one
/// activation across all gateways and nodes.
/// </summary>
public sealed class SovereignClusterOptions
{
    /// <summary>The configuration section name.</summary>
    public const string SectionName = "Sovereign:Cluster";

    /// <summary>This process's role (flag <c>--role</c>).</summary>
    public ServerRole Role { get; set; } = ServerRole.All;

    /// <summary>A StackExchange.Redis connection string for membership (e.g. <c>redis.internal:6379</c>); unset: one machine.</summary>
    public string? Redis { get; set; }

    /// <summary>The cluster's name; processes join only the cluster of the same id.</summary>
    public string ClusterId { get; set; } = "sovereign";

    /// <summary>Silo-to-silo port (0: a free one).</summary>
    public int SiloPort { get; set; }

    /// <summary>Orleans client gateway port (0: a free one).</summary>
    public int GatewayPort { get; set; }

    /// <summary>The address other silos reach this one at (default: loopback, i.e. one machine).</summary>
    public string AdvertisedAddress { get; set; } = "127.0.0.1";

    /// <summary>
    /// The base URL gateways relay to this node at (e.g. <c>http://10.0.0.7:8080</c>); bound into the node's
    /// operator-signed credential. Required for a node in a Redis cluster.
    /// </summary>
    public string? NodeUrl { get; set; }

    /// <summary>
    /// The secret gateways present to nodes (bearer token on relayed requests). A node answers /v1 only with it, so
    /// a node never serves a request that did not come through a gateway of the cluster. Required with <see cref="Redis"/>.
    /// </summary>
    public string? Secret { get; set; }

    /// <summary>
    /// Further secrets a node accepts from gateways besides <see cref="Secret"/>, while the secret is rotated: nodes
    /// accept the new one here first, gateways then move to it (as their <see cref="Secret"/>) one at a time, and the
    /// old one goes last (operator guide, "Rotating secrets"). Gateways present <see cref="Secret"/> only.
    /// </summary>
    public List<string> AcceptedSecrets { get; set; } = [];

    /// <summary>Seconds after which a node that stopped reporting its load is taken as down (default 5).</summary>
    public double NodeStaleSeconds { get; set; } = 5;

    /// <summary>Seconds a silo may miss probes before membership declares it dead (default 10).</summary>
    public double DeathSeconds { get; set; } = 10;

    /// <summary>
    /// Seconds a cluster process must have been dead in the membership table (or missing from it), its heartbeat count
    /// standing still, before a gateway closes the requests it left without an outcome (default 60): longer than the
    /// host's shutdown timeout (30 s), in which a
    /// gracefully stopping gateway, already dead in membership, still finishes its streams, and than the few seconds a
    /// silo takes to read that it was declared dead and stop itself.
    /// </summary>
    public double InterruptedGraceSeconds { get; set; } = 60;

    /// <summary>
    /// Seconds a member goes on after it finds the cluster's membership table gone from a Redis that answers (Redis
    /// restarted empty) before it stops so that its supervisor starts it again (<c>serve</c> exits 75), default 30:
    /// Orleans creates the table only when a member starts, and until then every request is answered 503. 0: never
    /// stop (it is reported on <c>/ready</c> and in <c>cluster status</c>; restart the members by hand).
    /// </summary>
    public double MembershipLostExitSeconds { get; set; } = 30;

    /// <summary>
    /// Days before this member's cluster certificate expires from which it warns (event 3021, at start and daily):
    /// an expired certificate is refused by every peer, and the member drops out of the cluster (default 14; 0: only once expired).
    /// </summary>
    public double CertificateExpiryWarningDays { get; set; } = 14;

    /// <summary>
    /// Days before the cluster CA that issued this member's certificate expires from which the member warns (event
    /// 3022, at start and daily): every certificate it signed ends with it (default 90, the time a CA replacement across
    /// the cluster takes; 0: only once expired).
    /// </summary>
    public double CaExpiryWarningDays { get; set; } = 90;

    /// <summary>
    /// Seconds a starting member keeps trying to reach the cluster's members (default 300) before it gives up and stops:
    /// a member whose certificate the cluster does not accept never becomes active and exits after this.
    /// </summary>
    public double JoinTimeoutSeconds { get; set; } = 300;

    /// <summary>
    /// A one-time join token (<c>sovereign nodes join-token</c>) a node presents to <see cref="JoinUrl"/> at its first
    /// start to receive its operator-signed credential, its certificate, its jurisdiction and the cluster's settings
    /// (<see cref="Redis"/>, <see cref="ClusterId"/>, <see cref="Secret"/>, the shared database); they are then kept in
    /// the data directory, and used wherever this process's own settings leave them unset.
    /// </summary>
    public string? JoinToken { get; set; }

    /// <summary>A gateway's base URL that a node with a <see cref="JoinToken"/> joins through.</summary>
    public string? JoinUrl { get; set; }

    /// <summary>
    /// This member's certificate (PEM), signed by the cluster CA and binding its role and node id; relative paths are
    /// inside the data directory. Gateways get theirs from <c>sovereign cluster cert issue</c>, nodes when they join.
    /// </summary>
    public string TlsCertificate { get; set; } = "cluster-cert.pem";

    /// <summary>The private key (PKCS#8 PEM) of <see cref="TlsCertificate"/>; it never leaves this machine.</summary>
    public string TlsKey { get; set; } = "cluster-key.pem";

    /// <summary>The cluster CA certificate (PEM): the only root this member trusts for cluster connections.</summary>
    public string TlsCa { get; set; } = "cluster-ca.pem";

    /// <summary>
    /// The cluster CA's private key (PEM); only where certificates are issued (the operator's machine, and gateways
    /// that sign a joining node's certificate). Without it a gateway refuses joins that ask for a certificate.
    /// </summary>
    public string CaKey { get; set; } = "cluster-ca-key.pem";

    /// <summary>
    /// Runs a Redis cluster over plain TCP with no member authentication: any process that reaches Redis and the
    /// silo ports can join. For throw-away development only; the default is false (TLS required).
    /// </summary>
    public bool InsecureTransport { get; set; }

    /// <summary>
    /// The pool this process's node is in when it issues its own credential (one machine, or a member holding the
    /// operator key); default <c>&lt;jurisdiction&gt;-local</c>, e.g. <c>th-local</c>. A node that joined with a token is
    /// in the pool its token names.
    /// </summary>
    public string? Pool { get; set; }

    /// <summary>This node's device class for prices (<c>h100</c>, <c>cpu</c>); default: derived from its accelerators.</summary>
    public string? DeviceClass { get; set; }

    /// <summary>
    /// The PostgreSQL connection string a gateway hands to the nodes it admits (they append to the cluster's audit
    /// chain there). Set it to a role that may write the audit tables only; unset, nodes receive the gateway's own.
    /// </summary>
    public string? NodeDatabaseConnectionString { get; set; }

    /// <summary>
    /// The Redis address (StackExchange.Redis configuration) a gateway hands to the nodes it admits, for a gateway that
    /// reaches Redis by an address nodes cannot (<c>localhost</c>, a private name or port); unset, nodes receive
    /// <see cref="Redis"/> as this gateway has it.
    /// </summary>
    public string? NodeRedis { get; set; }

    /// <summary>Whether this process is part of a multi-process cluster.</summary>
    public bool IsDistributed => !string.IsNullOrWhiteSpace(Redis);

    /// <summary>Whether this process serves models.</summary>
    public bool ServesModels => Role != ServerRole.Gateway;

    /// <summary>The start-up problems of these settings, if any (each names its setting).</summary>
    public IEnumerable<string> Problems()
    {
        if (!Enum.IsDefined(Role))
        {
            yield return "Sovereign:Cluster:Role must be all, gateway or node.";
        }

        if (IsDistributed && string.IsNullOrWhiteSpace(Secret))
        {
            yield return "Sovereign:Cluster:Secret is required with Sovereign:Cluster:Redis: gateways present it to nodes.";
        }

        for (var i = 0; i < AcceptedSecrets.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(AcceptedSecrets[i]))
            {
                yield return $"Sovereign:Cluster:AcceptedSecrets:{i} is empty: list only the secrets nodes accept besides Sovereign:Cluster:Secret while it is rotated.";
            }
        }

        if (IsDistributed && Role != ServerRole.Gateway && !Uri.TryCreate(NodeUrl, UriKind.Absolute, out _))
        {
            yield return "Sovereign:Cluster:NodeUrl (an absolute http(s) URL) is required for a node in a Redis cluster: gateways relay to it.";
        }
        else if (IsDistributed && Role != ServerRole.Gateway && new Uri(NodeUrl!).Port == 0)
        {
            // Port 0 binds whatever port is free: gateways cannot reach it at ':0' (the default NodeUrl is --urls).
            yield return $"Sovereign:Cluster:NodeUrl names port 0 ({NodeUrl}): gateways relay to it; a node serving on port 0 names the port it is reached at with --node-url.";
        }

        var joining = !string.IsNullOrWhiteSpace(JoinToken);
        if (!IsDistributed && Role == ServerRole.Gateway)
        {
            yield return "--role gateway needs Sovereign:Cluster:Redis: a gateway alone on one machine has nothing to route to.";
        }

        // A node with a token receives Redis when it joins: what it lacks then is where to join.
        if (!IsDistributed && Role == ServerRole.Node && !joining)
        {
            yield return "--role node needs Sovereign:Cluster:Redis (and the cluster's settings), or a one-time token to receive them from a gateway: " +
                "--join-token (Sovereign:Cluster:JoinToken) with --join-url (Sovereign:Cluster:JoinUrl).";
        }

        if (joining && Role != ServerRole.Node)
        {
            yield return "Sovereign:Cluster:JoinToken (--join-token) is for --role node only.";
        }
        else if (joining && !Uri.TryCreate(JoinUrl, UriKind.Absolute, out _))
        {
            yield return "Sovereign:Cluster:JoinToken (--join-token) needs --join-url (Sovereign:Cluster:JoinUrl): the absolute URL of a gateway to join through, e.g. https://gateway-th:8080.";
        }

        // It names the cluster in Redis keys (its membership table, grain directory and database mark) and in the CA
        // ('cluster ca init --cluster-id' takes only these): a start with "prod east" or "prod/x" used to go ahead.
        if (!IsClusterId(ClusterId))
        {
            yield return $"Sovereign:Cluster:ClusterId must be 1 to 64 letters, digits, '.', '_' or '-' (as 'sovereign cluster ca init --cluster-id' takes it); got '{ClusterId}'.";
        }

        if (Pool is not null && !IsScopeName(Pool))
        {
            yield return "Sovereign:Cluster:Pool must be 1 to 64 letters, digits, '.', '_' or '-'.";
        }

        if (DeviceClass is not null && !IsScopeName(DeviceClass))
        {
            yield return "Sovereign:Cluster:DeviceClass must be 1 to 64 letters, digits, '.', '_' or '-'.";
        }

        if (!(MembershipLostExitSeconds >= 0))
        {
            yield return "Sovereign:Cluster:MembershipLostExitSeconds must be 0 (never stop) or more.";
        }

        if (!(CertificateExpiryWarningDays >= 0) || CertificateExpiryWarningDays > 3650)
        {
            yield return "Sovereign:Cluster:CertificateExpiryWarningDays must be a number of days from 0 to 3650.";
        }

        if (!(CaExpiryWarningDays >= 0) || CaExpiryWarningDays > 3650)
        {
            yield return "Sovereign:Cluster:CaExpiryWarningDays must be a number of days from 0 to 3650.";
        }

        if (!(InterruptedGraceSeconds >= 0))
        {
            yield return "Sovereign:Cluster:InterruptedGraceSeconds must be 0 or more.";
        }

        if (!System.Net.IPAddress.TryParse(AdvertisedAddress, out _))
        {
            yield return "Sovereign:Cluster:AdvertisedAddress must be an IP address.";
        }
    }

    /// <summary>
    /// Whether <paramref name="value"/> can name a cluster (<c>cluster ca init --cluster-id</c>, written into the CA's
    /// subject): 1 to 64 letters, digits, '.', '_' or '-', as pool and device class names.
    /// </summary>
    public static bool IsClusterId(string? value) => value is not null && IsScopeName(value);

    private static bool IsScopeName(string name) =>
        name.Length is > 0 and <= 64 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');
}
