using Microsoft.Data.Sqlite;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>sovereign audit export --tenant X</c> on a database that holds the audit log only (its tables and nothing of the
/// control plane: a member's own database, or the log's tables copied out for an auditor) looked the tenant up in the
/// <c>tenants</c> table, which is not there, and exited 70 ("a defect", <c>no such table: tenants</c>). The tenant is
/// known there by its entries: one that has some is exported, one that has none is refused (exit 1), naming why.
/// </summary>
public sealed class AuditExportAuditOnlyTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-audit-only-").FullName;

    public async Task InitializeAsync()
    {
        var database = SqlDatabase.Sqlite(Path.Combine(_directory, "sovereign.db"));
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_directory, "operator-key.pem"));
        await using var log = await AuditLog.OpenAsync(database, key, new AuditLogOptions());
        foreach (var tenant in new[] { "acme", "globex", "acme" })
        {
            await log.AppendAsync(new AuditRecord
            {
                Kind = AuditKind.Inference,
                Tenant = tenant,
                Actor = "key-" + tenant,
                Action = AuditActions.InferenceRefused,
                Gateway = "gw-th",
                Jurisdiction = "TH",
                Decision = AuditDecision.Refused,
                DecisionCode = "jurisdiction_not_allowed",
            });
        }

        await log.CheckpointAsync();
    }

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task AuditExport_ForATenantOfAnAuditOnlyDatabase_WritesItsEntries_AndAnUnknownTenantIsRefusedNotADefect()
    {
        var export = Path.Combine(_directory, "acme.jsonl");
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", _directory, "--tenant", "acme", "-o", export);
        Assert.True(exit == 0, $"exit {exit}: {stderr}");
        // The count is every entry the file holds, as verify-export counts them: "Wrote 6 entries (6 of other tenants as
        // hashes only)" read as six entries, all of others, for a file of twelve (six in full).
        var wrote = Assert.Single(System.Text.RegularExpressions.Regex.Matches(stdout, @"Wrote (\d+) entries \((\d+) in full, 1 of other tenants as hashes only\)"));
        Assert.Equal(int.Parse(wrote.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) + 1, int.Parse(wrote.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        var (pemExit, pem, pemError) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", _directory);
        Assert.True(pemExit == 0, pemError);
        var publicKey = Path.Combine(_directory, "operator.pub.pem");
        await File.WriteAllTextAsync(publicKey, pem);
        string checkedOut;
        (exit, checkedOut, stderr) = await CliProcess.RunAsync("audit", "verify-export", export, "--public-key", publicKey);
        Assert.True(exit == 0, $"exit {exit}: {stderr}");
        Assert.Contains($"Checked {wrote.Groups[1].Value} entries", checkedOut, StringComparison.Ordinal);

        var ghost = Path.Combine(_directory, "ghost.jsonl");
        (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", _directory, "--tenant", "ghost", "-o", ghost);
        Assert.True(exit == 1, $"exit {exit}: {stderr}");
        Assert.Contains("no entry of tenant 'ghost' in this database's audit log", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(ghost));
    }
}
