using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Recognises requests that a gateway of this cluster relays to this node: they carry the cluster secret (or, while it
/// is rotated, one of <see cref="SovereignClusterOptions.AcceptedSecrets"/>) as their bearer token. The gateway already authenticated the tenant, decided residency and reserved the money, so the
/// node serves them as the cluster's (no tenant, no policy: this node only). A <c>--role node</c> process answers
/// nothing else on /v1, so it never serves a request that did not come through a gateway.
/// </summary>
public sealed class ClusterRelay(IOptions<SovereignClusterOptions> options, ClusterTlsCredentials tls)
{
    /// <summary>The tenant (and plan) a node records relayed work under; the gateway bills the real tenant.</summary>
    public const string RelayTenant = "cluster-relay";

    /// <summary>
    /// The relaying gateway's request id, sent to the node with the relay: the node's decision entry records it
    /// (<c>details.relay_of</c>), so an auditor finds the node's own evidence of a tenant's request in the chain. Before,
    /// the node decided under its own request id and nothing tied its entries to the tenant's.
    /// </summary>
    public const string RelayOfHeader = "x-sovereign-relay-of";

    /// <summary>The audit detail of a node's decision that names the relaying gateway's request id.</summary>
    public const string RelayOfDetail = "relay_of";

    // The secret, then those a node also accepts while it is rotated (Sovereign:Cluster:AcceptedSecrets).
    private readonly byte[][] _secretHashes = options.Value is { IsDistributed: true, Secret: { Length: > 0 } secret }
        ? [.. options.Value.AcceptedSecrets.Where(accepted => accepted.Length > 0).Prepend(secret).Select(value => SHA256.HashData(Encoding.UTF8.GetBytes(value)))]
        : [];

    /// <summary>The secret gateways present to nodes, if this process is in a multi-process cluster.</summary>
    public string? Secret => options.Value.IsDistributed ? options.Value.Secret : null;

    /// <summary>
    /// The relay caller when the token is the cluster secret (and, over https to a node of a TLS cluster, the client
    /// presented a gateway's cluster certificate); null to authenticate as usual; 401 on a node.
    /// </summary>
    public Caller? Authenticate(string? presented, HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (_secretHashes.Length > 0 && presented is not null && Accepts(SHA256.HashData(Encoding.UTF8.GetBytes(presented))))
        {
            if (context.Request.IsHttps && tls.Enabled && options.Value.Role == ServerRole.Node && !ClusterNodeHttp.FromClusterGateway(context, tls))
            {
                throw OpenAIException.Unauthorized("This node accepts relays over https only from a gateway presenting its cluster certificate.");
            }

            return new Caller(RelayTenant, null, null, RelayTenant);
        }

        if (options.Value.Role == ServerRole.Node)
        {
            throw OpenAIException.Unauthorized("This is a node of a Sovereign cluster: it serves only requests relayed by the cluster's gateways.");
        }

        return null;
    }

    /// <summary>Whether a presented secret's hash is one this process accepts: compared with every one, in constant time.</summary>
    private bool Accepts(byte[] presented)
    {
        var accepted = false;
        foreach (var hash in _secretHashes)
        {
            accepted |= CryptographicOperations.FixedTimeEquals(hash, presented);
        }

        return accepted;
    }
}
