using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using System.Security.Cryptography;
using Microsoft.Extensions.Hosting;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;
using Sovereign.Gateway.Hosting;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// A node's first start with a join token: before anything is configured from its settings, it presents the token to
/// a gateway (<c>POST /cluster/v1/join</c>) with a signing request for a key it generates here, and keeps what it
/// receives in the data directory (mode 600): its operator-signed credential, the cluster's connection settings
/// (membership Redis, cluster id, relay secret, shared database) and, in a TLS cluster, its certificate and the
/// cluster CA. Its private key never leaves this machine. Every later start reads the kept settings, so
/// <c>sovereign serve --role node --join-token T --join-url GATEWAY --urls URL</c> is all a node needs; a setting
/// given explicitly wins over the kept one. The hosted service then checks the certificate before the silo starts.
/// A token other than the one the kept join was made with (its SHA-256 is kept beside it) joins again and replaces what
/// was kept: a node whose certificate was revoked, or that moves pool or jurisdiction, is given a new token, and that
/// token used to be ignored in favour of the kept join (the node then stopped at start on its revoked certificate, the
/// new token unspent). The same token again, as a restart with the same command gives, uses the kept join.
/// </summary>
internal sealed partial class ClusterJoiner(
    ClusterTlsCredentials tls,
    ILogger<ClusterJoiner> logger,
    JoinResponse? joinedNow) : IHostedService
{

    /// <summary>As <see cref="KeptAsync"/>, read synchronously (once, where a service is built).</summary>
    public static JoinResponse? Kept(SovereignOptions settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var file = Path.Combine(settings.ResolvedDataDirectory, JoinResponse.FileName);
        var kept = File.Exists(file) ? JsonSerializer.Deserialize<JoinResponse>(File.ReadAllText(file)) : null;
        return kept is not null && kept.NodeId == settings.NodeId ? kept : null;
    }

    /// <summary>The join this node kept in its data directory, if it joined as <c>Sovereign:NodeId</c>.</summary>
    public static async Task<JoinResponse?> KeptAsync(SovereignOptions settings, CancellationToken cancellationToken)
    {
        var file = Path.Combine(settings.ResolvedDataDirectory, JoinResponse.FileName);
        if (!File.Exists(file))
        {
            return null;
        }

        var kept = JsonSerializer.Deserialize<JoinResponse>(await File.ReadAllTextAsync(file, cancellationToken));
        return kept is not null && kept.NodeId == settings.NodeId ? kept : null;
    }

    /// <summary>
    /// For a <c>--role node</c> process: joins with its token if it has not yet, then adds what the join gave (and
    /// what its own URL implies) to the configuration under every setting left unset. Runs before the cluster is
    /// configured; throws <see cref="InvalidOperationException"/> naming the problem when the join fails. Returns the
    /// answer when this start is the one that joined (logged once the host starts), else null.
    /// </summary>
    public static JoinResponse? Prepare(IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);

        // The host's loggers do not exist yet: the join's retries are logged through the same configuration and console.
        using var loggers = LoggerFactory.Create(logging => logging.AddConfiguration(builder.Configuration.GetSection("Logging")).AddConsole());
        return Prepare(builder, loggers);
    }

    /// <summary>As <see cref="Prepare(IHostApplicationBuilder)"/>, logging the join's attempts to <paramref name="loggers"/>.</summary>
    internal static JoinResponse? Prepare(IHostApplicationBuilder builder, ILoggerFactory loggers)
    {
        var configuration = builder.Configuration;
        var options = configuration.GetSection(SovereignClusterOptions.SectionName).Get<SovereignClusterOptions>() ?? new SovereignClusterOptions();
        if (options.Role != ServerRole.Node)
        {
            return null;
        }

        var settings = configuration.GetSection(SovereignOptions.SectionName).Get<SovereignOptions>() ?? new SovereignOptions();
        var unset = new Dictionary<string, string?>();
        void Fill(string key, string? value)
        {
            if (!string.IsNullOrEmpty(value) && string.IsNullOrEmpty(configuration[key]))
            {
                unset[key] = value;
            }
        }

        // The URL gateways reach the node at: its one listening address, when that names a host.
        var nodeUrl = options.NodeUrl ?? OwnUrl(configuration["urls"]);
        Fill("Sovereign:Cluster:NodeUrl", nodeUrl);
        if (Uri.TryCreate(nodeUrl, UriKind.Absolute, out var url) && System.Net.IPAddress.TryParse(url.Host.Trim('[', ']'), out var address))
        {
            Fill("Sovereign:Cluster:AdvertisedAddress", address.ToString());
        }

        JoinResponse? joinedNow = null;
        var joined = KeptAsync(settings, CancellationToken.None).GetAwaiter().GetResult();
        if ((joined is null || !KeptFromToken(settings, options.JoinToken))
            && !string.IsNullOrWhiteSpace(options.JoinToken) && Uri.TryCreate(options.JoinUrl, UriKind.Absolute, out var joinUrl))
        {
            joined = joinedNow = JoinAsync(options, settings, joinUrl, nodeUrl, loggers.CreateLogger<ClusterJoiner>()).GetAwaiter().GetResult();
        }

        if (joined is not null)
        {
            Fill("Sovereign:Jurisdiction", joined.Jurisdiction);
            if (joined.Cluster is { } given)
            {
                Fill("Sovereign:Cluster:Redis", given.Redis);
                Fill("Sovereign:Cluster:ClusterId", given.ClusterId);
                Fill("Sovereign:Cluster:Secret", given.Secret);
                Fill("Sovereign:Cluster:InsecureTransport", given.InsecureTransport ? "true" : null);
                if (string.IsNullOrEmpty(configuration["Sovereign:Database:Provider"]) && string.IsNullOrEmpty(configuration["Sovereign:Database:ConnectionString"]))
                {
                    Fill("Sovereign:Database:Provider", given.DatabaseProvider);
                    Fill("Sovereign:Database:ConnectionString", given.DatabaseConnectionString);
                }
            }
        }

        if (unset.Count > 0)
        {
            configuration.AddInMemoryCollection(unset);
        }

        return joinedNow;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (joinedNow is { } joined)
        {
            LogJoined(joined.NodeId, joined.Jurisdiction, joined.Pool ?? "-");
        }

        RequireCertificate();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static async Task<JoinResponse> JoinAsync(SovereignClusterOptions options, SovereignOptions settings, Uri joinUrl, string? nodeUrl, ILogger logger)
    {
        // The paths of this node's TLS files, as the cluster will read them.
        var tls = new ClusterTlsCredentials(options, settings.ResolvedDataDirectory, settings.NodeId, TimeProvider.System);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = options.InsecureTransport ? null : ClusterCertificates.CreateSigningRequest(tls.ExpectedIdentity, key);
        var joinUri = new Uri(new Uri(joinUrl.ToString().TrimEnd('/') + "/"), "cluster/v1/join");

        // The whole join, every attempt and the answer's body, is bounded by the one setting: a gateway URL that refuses
        // connections or never answers (black-holed) stops the start after JoinTimeoutSeconds, not after many retries.
        var limit = TimeSpan.FromSeconds(Math.Clamp(options.JoinTimeoutSeconds, 1, 24 * 3600));
        using var deadline = new CancellationTokenSource(limit);
        // The join token and the node's signing request go to the gateway directly, or through the proxy the operator
        // names, never one the environment names (RelayProxy).
        using var client = new HttpClient(RelayProxy.Apply(new SocketsHttpHandler(), settings.RelayProxy)) { Timeout = Timeout.InfiniteTimeSpan };
        string body;
        HttpStatusCode status;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var response = await client.PostAsJsonAsync(joinUri, new { token = options.JoinToken, node_id = settings.NodeId, url = nodeUrl?.TrimEnd('/'), csr = request, jurisdiction = string.IsNullOrWhiteSpace(settings.Jurisdiction) ? null : settings.Jurisdiction }, deadline.Token);
                body = await response.Content.ReadAsStringAsync(deadline.Token);
                status = response.StatusCode;
                break;
            }
            catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
            {
                // The gateway may be starting too: retried each second until the deadline.
                var problem = deadline.IsCancellationRequested ? $"no answer before the join timeout ({limit.TotalSeconds:0.#} s)" : ex.Message;
                LogJoinAttemptFailed(logger, joinUri.GetLeftPart(UriPartial.Authority), attempt, problem);
                if (deadline.IsCancellationRequested || !await DelayAsync(TimeSpan.FromSeconds(1), deadline.Token))
                {
                    throw new InvalidOperationException(
                        $"This node could not join the cluster through {joinUri.GetLeftPart(UriPartial.Authority)}: no gateway answered within {limit.TotalSeconds:0.#} s " +
                        $"(Sovereign:Cluster:JoinTimeoutSeconds), {attempt} attempt(s); the last: {problem}. Check that --join-url (Sovereign:Cluster:JoinUrl) " +
                        "names a running gateway this machine can reach, or raise Sovereign:Cluster:JoinTimeoutSeconds.", ex);
                }
            }
        }

        if ((int)status is < 200 or > 299)
        {
            // An error answer carries no secret: only the token's refusal or the request's fault.
            throw new InvalidOperationException($"Joining the cluster through {joinUrl} failed with {(int)status}: {body}");
        }

        var joined = JsonSerializer.Deserialize<JoinResponse>(body)
            ?? throw new InvalidOperationException("The gateway's join answer was empty.");
        var secured = joined.Cluster is not { InsecureTransport: true } && !options.InsecureTransport;
        if (secured)
        {
            if (request is null || joined is not { Certificate: { Length: > 0 } certificate, CaCertificate: { Length: > 0 } authority })
            {
                throw new InvalidOperationException($"The gateway at {joinUrl} issued no cluster certificate; this node cannot take part in a TLS cluster without one.");
            }

            // A CA the operator placed here beforehand pins the cluster: a join answer signed by another CA is refused.
            if (File.Exists(tls.AuthorityPath) && !Trusted(tls, authority))
            {
                throw new InvalidOperationException($"The gateway at {joinUrl} answered with a cluster CA other than {tls.AuthorityPath} (Sovereign:Cluster:TlsCa).");
            }

            ClusterTlsCredentials.WritePem(tls.KeyPath, key.ExportPkcs8PrivateKeyPem(), secret: true);
            ClusterTlsCredentials.WritePem(tls.CertificatePath, certificate, secret: false);
            if (!File.Exists(tls.AuthorityPath))
            {
                ClusterTlsCredentials.WritePem(tls.AuthorityPath, authority, secret: false);
            }
        }

        // The answer holds the cluster's secrets: readable by this service's user only.
        ClusterTlsCredentials.WritePem(Path.Combine(settings.ResolvedDataDirectory, JoinResponse.FileName), body, secret: true);
        ClusterTlsCredentials.WritePem(Path.Combine(settings.ResolvedDataDirectory, TokenDigestFileName), TokenDigest(options.JoinToken!), secret: true);
        return joined;
    }

    /// <summary>The SHA-256 of the token the kept join was made with, beside it (never the token: it is spent anyway).</summary>
    internal const string TokenDigestFileName = "node-join-token.sha256";

    /// <summary>
    /// Whether the kept join was made with <paramref name="token"/>. A join kept by an older version has no digest:
    /// taken as made with it, since joining again with a spent token would stop every restart (move the kept file aside
    /// to join such a node again).
    /// </summary>
    private static bool KeptFromToken(SovereignOptions settings, string? token)
    {
        if (string.IsNullOrWhiteSpace(token))
        {
            return true;
        }

        var file = Path.Combine(settings.ResolvedDataDirectory, TokenDigestFileName);
        return !File.Exists(file) || string.Equals(File.ReadAllText(file).Trim(), TokenDigest(token), StringComparison.Ordinal);
    }

    private static string TokenDigest(string token) => Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(token.Trim())));

    /// <summary>The URL of the one address the server listens on, unless it listens on every interface (or several).</summary>
    private static string? OwnUrl(string? urls)
    {
        var listed = (urls ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return listed.Length == 1 && Uri.TryCreate(listed[0], UriKind.Absolute, out var url)
            && url.Host is not ("0.0.0.0" or "[::]" or "*" or "+" or "localhost") && url.Scheme is "http" or "https"
            ? url.GetLeftPart(UriPartial.Authority)
            : null;
    }

    /// <summary>A node that had to join for its certificate starts only with a usable one.</summary>
    private void RequireCertificate()
    {
        if (!tls.Enabled)
        {
            return;
        }

        if (tls.AwaitsJoin)
        {
            throw new InvalidOperationException(
                $"Sovereign:Cluster:TlsCertificate ({tls.CertificatePath}) is missing, and this node has joined already: issue it one with `sovereign cluster cert issue`.");
        }

        if (tls.Problems().FirstOrDefault() is { } problem)
        {
            throw new InvalidOperationException(problem);
        }
    }

    /// <summary>Whether the CA the gateway named (PEM, possibly a bundle) is one this node already trusts.</summary>
    private static bool Trusted(ClusterTlsCredentials tls, string authorityPem)
    {
        var named = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
        named.ImportFromPem(authorityPem);
        return named.Count > 0 && named.All(n => tls.Authorities.Any(t => t.RawDataMemory.Span.SequenceEqual(n.RawDataMemory.Span)));
    }

    /// <summary>Waits, or returns false when the deadline comes first.</summary>
    private static async Task<bool> DelayAsync(TimeSpan delay, CancellationToken deadline)
    {
        try
        {
            await Task.Delay(delay, deadline);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "Join attempt {Attempt} through {Gateway} failed ({Problem}); a node retries each second until Sovereign:Cluster:JoinTimeoutSeconds has passed")]
    private static partial void LogJoinAttemptFailed(ILogger logger, string gateway, int attempt, string problem);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Information, Message = "Node {NodeId} joined the cluster in {Jurisdiction} (pool {Pool}) with its join token; its cluster settings are kept in its data directory")]
    private partial void LogJoined(string nodeId, string jurisdiction, string pool);
}
