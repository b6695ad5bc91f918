using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// <c>sovereign cluster status</c> listed every silo of Orleans' membership table among the members, those declared
/// dead included (Orleans keeps them for a while): a gateway restarted under its name appeared twice, once "dead", and
/// a member that stopped for good looked like a member still. The table lists the members that run; the dead are
/// counted apart, those of members that run again and, by name, those of members that do not. The status here is a
/// gateway's answer as served (a cluster's takes minutes to start), read by the real command.
/// </summary>
public sealed class ClusterStatusDeadSilosCliTests
{
    private const string Token = "dead-silos-token";

    [Fact]
    public async Task ClusterStatus_ListsTheMembersThatRun_AndCountsTheDeadSilosApart()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var app = builder.Build();
        app.MapGet("/admin/v1/cluster", () => Results.Text(Status, "application/json"));
        await app.StartAsync();

        var (exit, stdout, stderr) = await CliProcess.RunAsync(
            new Dictionary<string, string?> { ["COLUMNS"] = "240" }, "cluster", "status", "--url", app.Urls.First(), "--admin-token", Token);

        Assert.True(exit == 0, stderr);
        var rows = stdout.Split('\n').Where(l => l.Contains("10.0.0.", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, rows.Count);
        Assert.Contains(rows, r => r.Contains("gateway/gateway-th", StringComparison.Ordinal) && r.Contains("10.0.0.1:11111@3", StringComparison.Ordinal));
        Assert.Contains(rows, r => r.Contains("node/node-th", StringComparison.Ordinal) && r.Contains("active", StringComparison.Ordinal));
        Assert.DoesNotContain("dead", string.Join('\n', rows), StringComparison.Ordinal);
        Assert.Contains("Stopped processes declared dead in the last 10 minutes, not members: 2 of members that run again; 1 of members not running: node/node-sg", stdout, StringComparison.Ordinal);
    }

    private static string Member(string name, string address, string status) =>
        $$"""{"name":"{{name}}","address":"{{address}}","status":"{{status}}","host":"h","started_at":1,"alive_at":2,"certificate_expires_at":null,"certificate_expiring":null}""";

    private static readonly string Status = $$"""
        {"cluster_id":"c1","distributed":true,"gateway":"gateway-th","role":"gateway","membership_error":null,"certificate":null,
         "members":[{{Member("gateway/gateway-th", "10.0.0.1:11111@1", "dead")}},{{Member("gateway/gateway-th", "10.0.0.1:11111@2", "dead")}},
                    {{Member("gateway/gateway-th", "10.0.0.1:11111@3", "active")}},{{Member("node/node-th", "10.0.0.2:11111@1", "active")}},
                    {{Member("node/node-sg", "10.0.0.3:11111@1", "dead")}}],
         "jurisdictions":[],"pools":[],"nodes":[]}
        """;
}
