using Sovereign.Cluster.Grains;
using Sovereign.Cluster.Hosting;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>This machine as a node: its accelerators (detected once per process), its pool and its device class.</summary>
internal static class LocalDevice
{
    private static readonly Lazy<Task<IReadOnlyList<Accelerator>>> Detected =
        new(() => NodeLoadReporter.DetectAcceleratorsAsync(CancellationToken.None), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The machine's GPUs (nvidia-smi), else its CPU; the hardware does not change while the process runs.</summary>
    public static Task<IReadOnlyList<Accelerator>> AcceleratorsAsync(CancellationToken cancellationToken) => Detected.Value.WaitAsync(cancellationToken);

    /// <summary>The pool of this process's node when it issues its own credential: configured, else <c>&lt;jurisdiction&gt;-local</c>.</summary>
    public static string PoolOf(SovereignClusterOptions cluster, string jurisdiction) =>
        cluster.Pool ?? jurisdiction.ToLowerInvariant() + "-local";

    /// <summary>This node's device class: configured, else derived from its accelerators.</summary>
    public static async ValueTask<string> DeviceClassAsync(SovereignClusterOptions cluster, CancellationToken cancellationToken) =>
        DeviceClasses.Canonical(cluster.DeviceClass) ?? DeviceClasses.Of(await AcceleratorsAsync(cancellationToken)) ?? DeviceClasses.Unknown;
}
