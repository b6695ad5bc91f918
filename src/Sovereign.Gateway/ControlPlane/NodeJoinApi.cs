using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Builder;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.OpenAI;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;
using Sovereign.Residency.Jurisdictions;
using Sovereign.Residency.Policies;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Adding a GPU server with one command: the operator issues a one-time join token bound to a jurisdiction and pool
/// (<c>POST /admin/v1/nodes/join-tokens</c>); a node started with it presents it once to a gateway
/// (<c>POST /cluster/v1/join</c>) and receives its operator-signed credential, binding its id, jurisdiction, pool and
/// URL together, and, in a TLS cluster, its certificate signed by the cluster CA for the key it generated (it sends a
/// signing request). The node never holds the operator's or the CA's private key, and the token cannot be used twice.
/// </summary>
internal static class NodeJoinApi
{
    /// <summary>Default and longest life of a join token.</summary>
    public static readonly TimeSpan DefaultLifetime = TimeSpan.FromHours(1);

    public static readonly TimeSpan MaxLifetime = TimeSpan.FromDays(7);

    private const string TokenPrefix = "sjt_";

    public static void MapNodeJoin(this IEndpointRouteBuilder app, RouteGroupBuilder admin)
    {
        admin.MapPost("/nodes/join-tokens", IssueAsync);
        admin.MapDelete("/nodes/join-tokens/{id}", WithdrawAsync);
        app.MapPost("/cluster/v1/join", JoinAsync);
    }

    private static async Task<IResult> IssueAsync(
        HttpContext context, ControlPlaneStore store, JurisdictionCatalog catalog, AuditLog audit, TimeProvider time, IOptions<SovereignClusterOptions> cluster)
    {
        var request = await RequestReader.ReadAsync<JoinTokenRequest>(context);
        var jurisdiction = request.Jurisdiction?.Trim().ToUpperInvariant();
        if (!catalog.IsCountry(jurisdiction))
        {
            throw OpenAIException.BadRequest($"jurisdiction must be an ISO 3166-1 alpha-2 country code; got '{RequestReader.Shorten(request.Jurisdiction ?? "")}'.", "jurisdiction", "invalid_value");
        }

        // Signed into the node's credential, so prices by pool and device class hold whatever the node reports (as
        // `nodes add`). The pool's rule is the price book's, as everywhere a pool is named: the plan-name rule refused
        // a pool such as th.h100 here that prices, reservations and Sovereign:Cluster:Pool accept.
        var pool = request.Pool;
        foreach (var (field, value) in new[] { ("pool", pool), ("device_class", request.DeviceClass) })
        {
            if (value is not null && !Sovereign.Metering.Pricing.PriceValidator.IsValidScopeName(value))
            {
                throw OpenAIException.BadRequest($"{field} '{RequestReader.Shorten(value)}' must be 1 to 64 letters, digits, '.', '_' or '-'.", field, "invalid_value");
            }
        }

        var deviceClass = DeviceClasses.Canonical(request.DeviceClass);

        // Checked as a number first: TimeSpan.FromSeconds throws on 1e14 seconds (a 500).
        if (request.TtlSeconds is < 1 || request.TtlSeconds > (long)MaxLifetime.TotalSeconds)
        {
            throw OpenAIException.BadRequest($"ttl_seconds must be between 1 and {(long)MaxLifetime.TotalSeconds}.", "ttl_seconds", "invalid_value");
        }

        var lifetime = request.TtlSeconds is { } ttl ? TimeSpan.FromSeconds(ttl) : DefaultLifetime;
        if (lifetime <= TimeSpan.Zero || lifetime > MaxLifetime)
        {
            throw OpenAIException.BadRequest($"ttl_seconds must be between 1 and {(long)MaxLifetime.TotalSeconds}.", "ttl_seconds", "invalid_value");
        }

        // Only a cluster's gateway admits joining nodes (JoinAsync answers anything else 404): a token issued by a single
        // machine was printed as if usable, and the node started with it retried until its join timeout.
        if (!cluster.Value.IsDistributed || cluster.Value.Role == ServerRole.Node)
        {
            throw new OpenAIException(StatusCodes.Status409Conflict,
                "This server is not a gateway of a cluster (Sovereign:Cluster:Redis is not set), so no node can join through it: issue join tokens on a cluster's gateway.",
                "invalid_request_error", null, "not_a_cluster_gateway");
        }

        var secret = TokenPrefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var now = time.GetUtcNow();
        var record = new JoinTokenRecord("jt_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)), Hash(secret), jurisdiction!, pool,
            now.ToUnixTimeMilliseconds(), (now + lifetime).ToUnixTimeMilliseconds(), deviceClass);
        await store.InsertJoinTokenAsync(record, context.RequestAborted);
        await audit.AppendAsync(new AuditRecord
        {
            Kind = AuditKind.Admin, Actor = AdminToken.ActorOf(context), Action = "node.join_token",
            Details = new Dictionary<string, string> { ["request_id"] = RequestIds.Of(context), ["token_id"] = record.Id, ["jurisdiction"] = record.Jurisdiction, ["pool"] = pool ?? "-", ["device_class"] = deviceClass ?? "-" },
        });
        return Results.Json(new { id = record.Id, token = secret, jurisdiction = record.Jurisdiction, pool, device_class = deviceClass, expires_at = record.ExpiresAt }, OpenAIJson.Options, statusCode: StatusCodes.Status201Created);
    }

    /// <summary>
    /// <c>DELETE /admin/v1/nodes/join-tokens/{id}</c>: withdraws a token not used yet (issued by mistake, or shown where it
    /// should not have been). Every gateway reads the token at each join, so from the answer on no gateway admits a node
    /// with it. Audited (<c>node.join_token_withdrawn</c>); again for the same token, the first withdrawal is answered.
    /// A used token is a 409 naming the node that joined with it: nothing is left to withdraw, the node itself is
    /// removed (<c>nodes rm</c>) or its certificate revoked.
    /// </summary>
    private static async Task<IResult> WithdrawAsync(string id, HttpContext context, ControlPlaneStore store, AuditLog audit, TimeProvider time)
    {
        var (outcome, withdrawnAt, usedBy) = await store.WithdrawJoinTokenAsync(id, time.GetUtcNow().ToUnixTimeMilliseconds(), context.RequestAborted);
        switch (outcome)
        {
            case JoinTokenWithdrawal.NotFound:
                throw new OpenAIException(StatusCodes.Status404NotFound,
                    $"No join token has the id '{RequestReader.Shorten(id)}' (the id 'sovereign nodes join-token' printed, jt_...; the token's secret is not its id).",
                    "invalid_request_error", "id", "join_token_not_found");
            case JoinTokenWithdrawal.Used:
                throw new OpenAIException(StatusCodes.Status409Conflict,
                    $"Join token '{id}' was used: node '{usedBy}' joined with it, so there is nothing left to withdraw. To take that node out, drain and remove it (sovereign nodes rm {usedBy}) and revoke its cluster certificate.",
                    "invalid_request_error", "id", "join_token_used");
            case JoinTokenWithdrawal.Withdrawn:
                await audit.AppendAsync(new AuditRecord
                {
                    Kind = AuditKind.Admin, Actor = AdminToken.ActorOf(context), Action = "node.join_token_withdrawn",
                    Details = new Dictionary<string, string> { ["request_id"] = RequestIds.Of(context), ["token_id"] = id },
                });
                break;
        }

        return Results.Json(new { id, withdrawn = true, withdrawn_at = withdrawnAt }, OpenAIJson.Options);
    }

    private static async Task<IResult> JoinAsync(
        HttpContext context, ControlPlaneStore store, OperatorSigningKey operatorKey, AuditLog audit, TimeProvider time, IOptions<SovereignClusterOptions> cluster,
        ClusterTlsCredentials tls, IOptions<Hosting.SovereignOptions> options, Routing.NodeDirectory nodes, IGrainFactory grains)
    {
        if (!cluster.Value.IsDistributed || cluster.Value.Role == ServerRole.Node)
        {
            throw new OpenAIException(StatusCodes.Status404NotFound, "Nodes join through a gateway of a cluster.", "invalid_request_error", null, "unknown_url");
        }

        var request = await RequestReader.ReadAsync<JoinRequest>(context);
        var nodeId = ResourceIds.Require(request.NodeId, ResourceKind.Node, "node_id");
        if (!Uri.TryCreate(request.Url, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            throw OpenAIException.BadRequest("url must be the node's absolute http(s) URL, as gateways reach it.", "url", "invalid_value");
        }

        // The URL is signed into the credential and shown in node lists and the node.joined entry: the same rule as a
        // registered engine's (no credentials, query or fragment; no /v1, which the relay adds).
        if (EngineBaseUrl.Problem(request.Url) is { } urlProblem)
        {
            throw OpenAIException.BadRequest("url " + urlProblem, "url", "invalid_value");
        }

        // Gateways relay tenants' work there with the cluster's credentials: not to a cloud's metadata service.
        if (await EngineAddressRule.ProblemAsync(url, options.Value.AllowLinkLocalEngineUrls, System.Net.Dns.GetHostAddressesAsync, context.RequestAborted) is { } addressProblem)
        {
            throw OpenAIException.BadRequest("url " + addressProblem, "url", "invalid_value");
        }

        // The token is looked up first, by a read: a join with a guessed, used or expired token is refused before any
        // expensive work (reading the CA key, verifying the request's signature) and before any write. Anyone can
        // reach this endpoint; it used to verify the signature and then attempt the token's UPDATE (the database's
        // write lock) for every such request. The consume below still decides, atomically.
        var tokenHash = string.IsNullOrEmpty(request.Token) ? null : Hash(request.Token);
        var usable = tokenHash is null ? null : await store.FindUsableJoinTokenAsync(tokenHash, time.GetUtcNow().ToUnixTimeMilliseconds(), context.RequestAborted);
        if (tokenHash is null || usable is null)
        {
            throw InvalidToken();
        }

        // A node configured for another jurisdiction than its token's is refused before the token is spent: it used to
        // join, keep the token's credential, then refuse to start, and the token was gone.
        if (!string.IsNullOrWhiteSpace(request.Jurisdiction) && !string.Equals(request.Jurisdiction.Trim().ToUpperInvariant(), usable.Jurisdiction, StringComparison.Ordinal))
        {
            throw OpenAIException.BadRequest(
                $"This join token is for a node in {usable.Jurisdiction}, but the node is configured for {RequestReader.Shorten(request.Jurisdiction)} (Sovereign:Jurisdiction). " +
                $"Start it without Sovereign:Jurisdiction (the token sets it), or with a token for its jurisdiction (sovereign nodes join-token --jurisdiction ...). The token was not used.",
                "jurisdiction", "jurisdiction_mismatch");
        }

        // A token names no node id: a second machine started with a running node's --node-id joined, and its registration
        // replaced the running node's (its URL, pool and credential), so the gateways relayed that node's work to the
        // newcomer. A node restarted with a new token has stopped first (its silo left the membership).
        if (await AdminApi.RunningClusterNodeAsync(nodes, grains, distributed: true, nodeId) is { } running)
        {
            throw new OpenAIException(StatusCodes.Status409Conflict,
                $"Node '{nodeId}' is running at {running.Node.BaseUrl} (its last load report is {running.ReportAgeMs / 1000} s old): a node joining under its id "
                + "would take over its registration. Give this node its own id (--node-id, Sovereign:NodeId); to replace that node, stop it first (a node just killed "
                + "counts as running until the cluster declares it dead). The token was not used.",
                "invalid_request_error", "node_id", "node_in_use");
        }

        // The node's certificate request is checked before the token is spent, so a malformed one costs no token.
        var certificateRequest = request.CertificateRequest;
        if (tls.Enabled && string.IsNullOrWhiteSpace(certificateRequest))
        {
            throw OpenAIException.BadRequest("csr is required: this cluster authenticates its members with TLS, so a joining node sends a PEM certificate signing request for its own key.", "csr", "missing_required_parameter");
        }

        X509Certificate2? authority = null;
        if (tls.Enabled)
        {
            try
            {
                authority = tls.LoadIssuer();
            }
            catch (Exception ex) when (ex is IOException or CryptographicException or UnauthorizedAccessException)
            {
                throw new OpenAIException(StatusCodes.Status503ServiceUnavailable,
                    "This gateway cannot issue cluster certificates: the cluster CA key (Sovereign:Cluster:CaKey) could not be read, or is not the key of its CA (Sovereign:Cluster:TlsCa). Join through a gateway that holds it.",
                    "server_error", null, "cluster_ca_unavailable");
            }

            try
            {
                CertificateRequest.LoadSigningRequestPem(certificateRequest!, HashAlgorithmName.SHA256);
            }
            catch (CryptographicException)
            {
                authority.Dispose();
                throw OpenAIException.BadRequest("csr must be a PEM PKCS#10 certificate signing request whose signature verifies.", "csr", "invalid_value");
            }
        }

        using var issuer = authority;
        var used = await store.ConsumeJoinTokenAsync(tokenHash, nodeId, time.GetUtcNow().ToUnixTimeMilliseconds(), context.RequestAborted)
            ?? throw InvalidToken(); // used or expired since the lookup

        string? certificate = null;
        if (issuer is not null)
        {
            using var issued = ClusterCertificates.Issue(issuer, certificateRequest!, new ClusterIdentity(ServerRole.Node, nodeId), time.GetUtcNow());
            certificate = issued.ExportCertificatePem();
        }

        var credential = NodeCredentials.Issue(
            new NodeClaims(nodeId, used.Jurisdiction, nameof(NodeKind.Local), url.ToString().TrimEnd('/'), time.GetUtcNow().ToUnixTimeMilliseconds(), used.Pool, DeviceClasses.Canonical(used.DeviceClass)), operatorKey);
        await audit.AppendAsync(new AuditRecord
        {
            Kind = AuditKind.Admin, Actor = nodeId, Action = "node.joined", Node = nodeId, Jurisdiction = used.Jurisdiction,
            Details = new Dictionary<string, string> { ["request_id"] = RequestIds.Of(context), ["token_id"] = used.Id, ["pool"] = used.Pool ?? "-", ["device_class"] = used.DeviceClass ?? "-", ["url"] = url.ToString() },
        });
        return Results.Json(
            new JoinResponse(nodeId, used.Jurisdiction, used.Pool, credential, operatorKey.PublicKeyPem)
            {
                OperatorKeyHistory = operatorKey.History.IsPlain ? null : operatorKey.History.ToText(),
                Certificate = certificate,
                CaCertificate = issuer is null ? null : await File.ReadAllTextAsync(tls.AuthorityPath, context.RequestAborted),
                Cluster = JoinedCluster.Of(cluster.Value, options.Value.Database),
            },
            OpenAIJson.Options);
    }

    // One answer for unknown, used and expired tokens: nothing to learn by guessing.
    private static OpenAIException InvalidToken() =>
        new(StatusCodes.Status401Unauthorized, "The join token is not valid (unknown, already used or expired). Ask the operator for a new one.",
            "authentication_error", "token", "invalid_join_token");

    private static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    private sealed record JoinTokenRequest(
        [property: JsonPropertyName("jurisdiction")] string? Jurisdiction,
        [property: JsonPropertyName("pool")] string? Pool,
        [property: JsonPropertyName("ttl_seconds")] long? TtlSeconds,
        [property: JsonPropertyName("device_class")] string? DeviceClass = null);

    private sealed record JoinRequest(
        [property: JsonPropertyName("token")] string? Token,
        [property: JsonPropertyName("node_id")] string? NodeId,
        [property: JsonPropertyName("url")] string? Url,
        [property: JsonPropertyName("csr")] string? CertificateRequest,
        [property: JsonPropertyName("jurisdiction")] string? Jurisdiction = null);
}

/// <summary>What a node receives when it joins, and keeps in its data directory (<see cref="FileName"/>).</summary>
public sealed record JoinResponse(
    [property: JsonPropertyName("node_id")] string NodeId,
    [property: JsonPropertyName("jurisdiction")] string Jurisdiction,
    [property: JsonPropertyName("pool")] string? Pool,
    [property: JsonPropertyName("credential")] string Credential,
    [property: JsonPropertyName("operator_public_key")] string OperatorPublicKey)
{
    /// <summary>The file in the data directory that keeps a joined node's credential across restarts.</summary>
    public const string FileName = "node-credential.json";

    /// <summary>The node's cluster TLS certificate (PEM), signed by the cluster CA for the node's own key; null without TLS.</summary>
    [JsonPropertyName("certificate")]
    public string? Certificate { get; init; }

    /// <summary>The cluster CA certificate(s) (PEM; old and new during a CA rollover) the node trusts from now on; null without TLS.</summary>
    [JsonPropertyName("ca_certificate")]
    public string? CaCertificate { get; init; }

    /// <summary>
    /// The operator's key history (<see cref="OperatorKeyHistory"/>'s text: every key that signed checkpoints and
    /// credentials, with their marks) when the gateway knew more than one key; null otherwise and from older gateways.
    /// </summary>
    [JsonPropertyName("operator_key_history")]
    public string? OperatorKeyHistory { get; init; }

    /// <summary>The operator keys this answer names: its key history, else its one public key.</summary>
    [JsonIgnore]
    public Residency.Audit.OperatorKeyHistory OperatorKeys =>
        Residency.Audit.OperatorKeyHistory.Parse(OperatorKeyHistory is { Length: > 0 } history ? history : OperatorPublicKey);

    /// <summary>What the node needs to take part in the cluster, as the gateway that admitted it is configured; null from older gateways.</summary>
    [JsonPropertyName("cluster")]
    public JoinedCluster? Cluster { get; init; }
}

/// <summary>
/// The cluster's connection settings a joining node receives with its credential (secrets included: the answer goes
/// only to the holder of an unused token, and the node keeps it readable by its own user only). The node uses them
/// wherever its own configuration leaves the setting unset.
/// </summary>
public sealed record JoinedCluster(
    [property: JsonPropertyName("redis")] string Redis,
    [property: JsonPropertyName("cluster_id")] string ClusterId,
    [property: JsonPropertyName("secret")] string? Secret,
    [property: JsonPropertyName("insecure_transport")] bool InsecureTransport,
    [property: JsonPropertyName("database_provider")] string? DatabaseProvider,
    [property: JsonPropertyName("database_connection_string")] string? DatabaseConnectionString)
{
    /// <summary>
    /// The gateway's own membership and, when it is the shared PostgreSQL, database settings (nodes append to the
    /// cluster's audit chain there; a gateway on SQLite has no database to share). The database credentials are the
    /// operator's node role (<see cref="SovereignClusterOptions.NodeDatabaseConnectionString"/>) where one is set, and
    /// the Redis address the one nodes reach it at (<see cref="SovereignClusterOptions.NodeRedis"/>) where one is set.
    /// </summary>
    public static JoinedCluster Of(SovereignClusterOptions cluster, Hosting.DatabaseOptions database)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(database);
        var shared = string.Equals(database.Provider, "PostgreSql", StringComparison.OrdinalIgnoreCase);
        var forNodes = string.IsNullOrWhiteSpace(cluster.NodeDatabaseConnectionString) ? database.ConnectionString : cluster.NodeDatabaseConnectionString;
        var redisForNodes = string.IsNullOrWhiteSpace(cluster.NodeRedis) ? cluster.Redis! : cluster.NodeRedis;
        return new JoinedCluster(redisForNodes, cluster.ClusterId, cluster.Secret, cluster.InsecureTransport,
            shared ? "PostgreSql" : null, shared ? forNodes : null);
    }
}
