using System.Net;
using System.Net.Sockets;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// A member started while its PostgreSQL is down says so in one line naming the setting, and exits 2 (a start
/// failure, which systemd's Restart= retries). Before, it printed the driver's stack trace and then "cannot reach the
/// server (connection refused). Is `sovereign serve` running?" with exit 4: the operator was sent to look for the
/// wrong server.
/// </summary>
public sealed class DatabaseUnavailableAtStartTests : IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-no-database-").FullName;

    public void Dispose() => Directory.Delete(_data, recursive: true);

    [Fact]
    public async Task Serve_WithPostgreSqlDown_StopsTheStartNamingTheDatabaseAndTheSetting_WithoutItsPassword()
    {
        var port = Sovereign.Tests.LoopbackPorts.Unused();
        var (exitCode, _, stderr) = await CliProcess.RunAsync(
            new Dictionary<string, string?>
            {
                ["Sovereign__Database__Provider"] = "PostgreSql",
                ["Sovereign__Database__ConnectionString"] = $"Host=127.0.0.1;Port={port};Username=sovereign;Password=do-not-print-me;Database=sovereign",
                ["Sovereign__Jurisdiction"] = "TH",
                ["Sovereign__BuiltInEmbeddings"] = "false",
            },
            "serve", "--urls", "http://127.0.0.1:0", "--data-dir", _data);

        Assert.Equal(2, exitCode);
        Assert.Contains($"sovereign serve: cannot start: The database could not be opened (PostgreSQL at 127.0.0.1:{port}, database sovereign)", stderr, StringComparison.Ordinal);
        Assert.Contains("Sovereign:Database:ConnectionString", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Is `sovereign serve` running?", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("do-not-print-me", stderr, StringComparison.Ordinal);
    }
}
