using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// The runtime settings <c>sovereign</c> ships with (its runtimeconfig, built from Sovereign.Cli.csproj), which decide
/// what a request costs once the server has warmed up.
/// </summary>
public sealed class RuntimeConfigTests
{
    private static JsonElement ConfigProperties()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "sovereign.runtimeconfig.json")));
        return document.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties").Clone();
    }

    /// <summary>
    /// Dynamic PGO is on: a tiered-up governed request then costs about 0.88x the CPU and adds about 0.08 ms less
    /// at p50 (pipeline benchmark, session 50, docs/benchmarks.md). It was off (System.Runtime.TieredPGO false).
    /// </summary>
    [Fact]
    public void SovereignRunsWithDynamicPgo()
    {
        var properties = ConfigProperties();

        Assert.True(!properties.TryGetProperty("System.Runtime.TieredPGO", out var pgo) || pgo.GetBoolean(),
            "sovereign's runtimeconfig turns dynamic PGO off");
    }

    /// <summary>Idle thread-pool workers still block at once (see architecture.md, "Threads beside the engine").</summary>
    [Fact]
    public void SovereignKeepsTheThreadPoolFromSpinning()
    {
        var properties = ConfigProperties();

        Assert.Equal(0, properties.GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").GetInt32());
    }
}
