using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Hosting;
using Sovereign.Gateway.Hosting;
using Sovereign.Storage;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// This process of a cluster member, gateway or node: the id its allowed decisions carry (the <c>instance</c> detail),
/// so that once Orleans' membership declares it dead a gateway can tell its open decisions from a live twin's and close
/// them (<see cref="InterruptedRequests"/>). It is the silo's address, <c>ip:port@generation</c>, new at every start and
/// the key the membership table lists the process under. Null where the process holds its database alone (one
/// machine: it closes its own gateway id's decisions at start). A node's process has one too: a node killed mid-request
/// left its own decisions for the relayed work open, and no gateway restarts it, so the gateways close them.
/// </summary>
public sealed class GatewayInstance
{
    private readonly Lazy<string?> _id;

    /// <summary>Reads the silo's address when first asked (the silo's details are ready once the host is built).</summary>
    public GatewayInstance(IServiceProvider services, IOptions<SovereignOptions> options, IOptions<SovereignClusterOptions> cluster)
    {
        ArgumentNullException.ThrowIfNull(services);
        var shared = string.Equals(options.Value.Database.Provider, nameof(SqlProvider.PostgreSql), StringComparison.OrdinalIgnoreCase)
            && cluster.Value.IsDistributed;
        _id = new(() => shared ? services.GetRequiredService<ILocalSiloDetails>().SiloAddress.ToParsableString() : null);
    }

    /// <summary>A process with a known id (tests).</summary>
    internal GatewayInstance(string? id) => _id = new(id);

    /// <summary>This process's id in a cluster on a shared database (gateways and nodes); null otherwise.</summary>
    public string? Id => _id.Value;
}
