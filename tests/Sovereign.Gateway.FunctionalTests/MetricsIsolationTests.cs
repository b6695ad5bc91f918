using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// Two servers in one process (as in these tests, or an embedding host) keep their own metrics: stopping one must not
/// take the other's engine gauges off its /metrics.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class MetricsIsolationTests(ServerFixture server)
{
    [Fact]
    public async Task AnotherServerStopping_LeavesThisServersEngineGauges()
    {
        var dataDirectory = Directory.CreateTempSubdirectory("sovereign-test-").FullName;
        try
        {
            var other = ServeCommand.Build(new ServeSettings
            {
                Models = [new ModelOptions { Id = ServerFixture.Stories, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 1, Threads = 1 }],
                Urls = "http://127.0.0.1:0",
                DataDirectory = dataDirectory,
            }, []);
            await other.StartAsync();
            await other.StopAsync();
            await other.DisposeAsync();
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }

        using var admin = server.AdminClient();
        var text = await admin.GetStringAsync("/metrics");
        Assert.Contains("sovereign_num_requests_running{", text, StringComparison.Ordinal);
        Assert.Contains("sovereign_kv_cache_usage{", text, StringComparison.Ordinal);
    }
}
