using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// The auditor's commands on a log with member chains (<c>Sovereign:Audit:MemberChains</c>): <c>audit export</c>
/// writes every chain into one file and <c>audit verify-export</c> checks each chain offline with the public key
/// alone, naming the chain a tampering touched. Before, <c>audit export</c> refused such a log (exit 1).
/// </summary>
public sealed class AuditMemberChainCliTests : IAsyncLifetime
{
    private const string Gateway = "gw-th";
    private const string Node = "node-th-1";
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-chains-cli-").FullName;

    private string DatabasePath => Path.Combine(_directory, "sovereign.db");

    public async Task InitializeAsync()
    {
        // What a gateway and a node of a cluster on member chains leave: the node's chain signed by the gateway.
        var database = SqlDatabase.Sqlite(DatabasePath);
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_directory, "operator-key.pem"));
        await using var gateway = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = Gateway });
        await using var node = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = Node, SignsCheckpoints = false });
        for (var i = 0; i < 4; i++)
        {
            await gateway.AppendAsync(Record("acme", Gateway));
            await node.AppendAsync(Record("cluster-relay", Node));
        }

        Assert.Equal(1, await gateway.SignMemberChainsAsync());
    }

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task AuditExport_OfMemberChains_HoldsEveryChain_AndVerifyExportNamesTheChainCut()
    {
        var publicKey = Path.Combine(_directory, "operator.pub.pem");
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", _directory);
        Assert.True(exit == 0, stderr);
        await File.WriteAllTextAsync(publicKey, stdout);

        var export = Path.Combine(_directory, "export.jsonl");
        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", _directory, "--database", DatabasePath, "-o", export);
        Assert.True(exit == 0, stdout + stderr);
        Assert.Contains($"chain {Node}: entries 1..4", stdout, StringComparison.Ordinal);

        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", export, "--public-key", publicKey);
        Assert.True(exit == 0, stdout + stderr);
        Assert.Contains($"chain {Node}: 4 entries checked, last 4, covered through 4, uncovered 0; trusted.", stdout, StringComparison.Ordinal);
        Assert.Contains("The export is intact and signed by the operator.", stdout, StringComparison.Ordinal);

        // The node's last line cut from the file: the header still says its chain runs to 4.
        var lines = (await File.ReadAllLinesAsync(export)).ToList();
        lines.RemoveAt(lines.FindLastIndex(l => JsonNode.Parse(l)!["type"]!.GetValue<string>() == "entry"));
        var cut = Path.Combine(_directory, "cut.jsonl");
        await File.WriteAllLinesAsync(cut, lines);

        (exit, stdout, _) = await CliProcess.RunAsync("audit", "verify-export", cut, "--public-key", publicKey);
        Assert.Equal(3, exit);
        Assert.Contains($"chain {Node}, line", stdout, StringComparison.Ordinal);
        Assert.Contains(": Truncated: The header covers sequences 1..4 but the lines end at 3.", stdout, StringComparison.Ordinal);
        Assert.Contains("The export does not verify.", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuditVerify_AnOpenDecision_IsInterruptedWhileNoServerHoldsTheDatabase_AndRunningWhileOneDoes()
    {
        // A decision with no outcome: its process was killed before it, or it is still running.
        var database = SqlDatabase.Sqlite(DatabasePath);
        using (var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_directory, "operator-key.pem")))
        await using (var gateway = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = Gateway }))
        {
            await gateway.AppendAsync(Record("acme", Gateway) with
            {
                Action = AuditActions.InferenceAllowed,
                Decision = AuditDecision.Allowed,
                DecisionCode = "ok",
                Details = new Dictionary<string, string> { ["request_id"] = "req-open" },
            });
        }

        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory, "--database", DatabasePath, "--no-witness");
        Assert.True(exit == 0, stdout + stderr);
        Assert.Contains("open, interrupted and not closed yet (no server holds this database", stdout, StringComparison.Ordinal);
        Assert.Contains(": 1, decision entries ", stdout, StringComparison.Ordinal);

        // A server holds the database (its server lock, as serve takes it): the same decision is a running request's.
        await using (var held = await database.TryLockAsync("server"))
        {
            Assert.NotNull(held);
            (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory, "--database", DatabasePath, "--no-witness", "--json");
            Assert.True(exit == 0, stdout + stderr);
            var decisions = JsonNode.Parse(stdout)!["decisions"]!;
            Assert.Equal((1L, true), (decisions["open"]!.GetValue<long>(), decisions["server_running"]!.GetValue<bool>()));

            (_, stdout, _) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory, "--database", DatabasePath, "--no-witness");
            Assert.Contains("open, running (no outcome yet; a server holds this database now", stdout, StringComparison.Ordinal);
        }
    }

    private static AuditRecord Record(string tenant, string gateway) => new()
    {
        Kind = AuditKind.Inference,
        Tenant = tenant,
        Actor = $"key-{tenant}",
        Action = AuditActions.InferenceRefused,
        Gateway = gateway,
        Jurisdiction = "TH",
        Decision = AuditDecision.Refused,
        DecisionCode = "jurisdiction_not_allowed",
    };
}
