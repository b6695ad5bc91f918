using Microsoft.Extensions.DependencyInjection;
using Sovereign.Cli.Commands;
using Sovereign.Residency.Audit;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>Sovereign:Audit:CommitTimeout</c>: how long the audit log tries to commit a batch of entries, whatever the
/// driver's timeouts. It was fixed at 10 s in code, so an operator could not shorten the wait of requests caught by a
/// stalled database, nor lengthen it for a slow one.
/// </summary>
public sealed class AuditCommitTimeoutSettingTests
{
    [Theory]
    [InlineData("00:00:00", "00:00:00")]
    [InlineData("-00:00:05", "-00:00:05")]
    [InlineData("00:00:00.5000000", "00:00:00.5000000")]
    [InlineData("00:10:01", "00:10:01")]
    public async Task Serve_CommitTimeoutOutOfRange_StopsTheStartNamingIt(string value, string shown)
    {
        var message = await StartFailure.WithSovereignSectionAsync("""{"Audit":{"CommitTimeout":""" + "\"" + value + "\"}}");

        Assert.Contains($"Sovereign:Audit:CommitTimeout must be between 00:00:01 and 00:10:00 (hh:mm:ss); got {shown}.", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_CommitTimeoutSet_TheAuditLogCommitsWithinIt()
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-commit-timeout-").FullName;
        try
        {
            var config = Path.Combine(directory, "sovereign.json");
            await File.WriteAllTextAsync(config, """{"Sovereign":{"Audit":{"CommitTimeout":"00:00:04"}}}""");
            await using var app = ServeCommand.Build(new ServeSettings { Urls = "http://127.0.0.1:0", DataDirectory = directory, ConfigFile = config }, []);
            await app.StartAsync();
            try
            {
                Assert.Equal(TimeSpan.FromSeconds(4), app.Services.GetRequiredService<AuditLog>().CommitTimeout);
            }
            finally
            {
                await app.StopAsync();
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Serve_CommitTimeoutUnset_IsTenSeconds()
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-commit-timeout-").FullName;
        try
        {
            await using var app = ServeCommand.Build(new ServeSettings { Urls = "http://127.0.0.1:0", DataDirectory = directory }, []);
            await app.StartAsync();
            try
            {
                Assert.Equal(AuditLogOptions.DefaultCommitTimeout, app.Services.GetRequiredService<AuditLog>().CommitTimeout);
                Assert.Equal(TimeSpan.FromSeconds(10), AuditLogOptions.DefaultCommitTimeout);
            }
            finally
            {
                await app.StopAsync();
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Serve_CommitTimeoutNotATimeSpan_StopsTheStartNamingIt()
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-commit-timeout-").FullName;
        try
        {
            var config = Path.Combine(directory, "sovereign.json");
            await File.WriteAllTextAsync(config, """{"Sovereign":{"Audit":{"CommitTimeout":"ten seconds"}}}""");
            await using var app = ServeCommand.Build(new ServeSettings { Urls = "http://127.0.0.1:0", DataDirectory = directory, ConfigFile = config }, []);

            // The configuration binder's refusal, as for every time span setting: it names the setting and the value.
            var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => app.StartAsync());
            Assert.Contains("'ten seconds' at 'Sovereign:Audit:CommitTimeout'", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
