namespace Sovereign.Cluster.Hosting;

/// <summary>
/// The grain classes that only gateways host: money, keys, the node registry, the price book's version, reserved pool
/// slots. A node's silo leaves them out (Orleans places a grain only on silos hosting its class), so a GPU node that
/// dies or is drained never takes a tenant's budget or a key's revocation with it, and <see cref="Security.SiloRoleGuard"/>
/// expels a node-named silo that offers to host one.
/// </summary>
public sealed class GatewayOnlyGrains
{
    /// <summary>The classes; other components add theirs with <c>Configure&lt;GatewayOnlyGrains&gt;</c>.</summary>
    public HashSet<Type> Classes { get; } = [];
}
