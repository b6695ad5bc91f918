using Microsoft.Data.Sqlite;
using Sovereign.Residency.Audit;
using Sovereign.Storage;
using Sovereign.Tests;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// The dishonest operator of session 52's auditor walk: it holds the signing key, deletes a served request's entries,
/// re-hashes the chain and exports again. The new file verifies on its own (exit 0), since the same key signed it. The
/// auditor kept the export it received before; <c>sovereign audit verify-export NEW --earlier OLD</c> and
/// <c>tools/audit-verify.mjs NEW --earlier OLD</c> find the two histories (neither had an option to compare files), and
/// an honest later export agrees. verify-export also says what the file holds (tenant, time range, sequences, when it was
/// made): it printed only a count, so a file made before the period audited read as plainly intact.
/// </summary>
public sealed class AuditVerifyExportEarlierTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-01-05T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-earlier-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task ALogRebuiltWithoutARequest_VerifiesAlone_ButNotAgainstTheExportTheAuditorKept()
    {
        var honest = Path.Combine(_directory, "honest");
        var rebuilt = Path.Combine(_directory, "rebuilt");
        Directory.CreateDirectory(honest);
        Directory.CreateDirectory(rebuilt);
        await AppendAsync(honest, ["r1", "r2", "r3"]);
        var old = await ExportAsync(honest, "old.jsonl");
        await AppendAsync(honest, ["r4"]);
        var later = await ExportAsync(honest, "later.jsonl");

        // The operator's rebuild: the same key, the same requests but r2.
        File.Copy(Path.Combine(honest, "operator-key.pem"), Path.Combine(rebuilt, "operator-key.pem"));
        await AppendAsync(rebuilt, ["r1", "r3", "r4"]);
        var forged = await ExportAsync(rebuilt, "forged.jsonl");
        var publicKey = Path.Combine(_directory, "operator.pem");
        var (pemExit, pem, pemError) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", honest);
        Assert.True(pemExit == 0, pemError);
        await File.WriteAllTextAsync(publicKey, pem);

        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", forged, "--public-key", publicKey);
        Assert.True(exit == 0, stdout + stderr); // alone, the rebuilt history verifies: the operator signed it
        Assert.Contains("The file holds tenant acme's entries in full (other tenants' as hashes only) since the log's start up to (not including)", stdout, StringComparison.Ordinal);
        Assert.Contains(", sequences 1..6; made ", stdout, StringComparison.Ordinal);

        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", forged, "--public-key", publicKey, "--earlier", old);
        Assert.True(exit == 3, stdout + stderr);
        Assert.Contains("seq 3: WitnessMismatch: The earlier export (made ", stdout, StringComparison.Ordinal);
        Assert.Contains("the operator signed two different histories", stdout, StringComparison.Ordinal);

        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", later, "--public-key", publicKey, "--earlier", old);
        Assert.True(exit == 0, stdout + stderr);
        Assert.Contains("It agrees with the earlier export old.jsonl wherever both state a hash", stdout, StringComparison.Ordinal);

        var (mjsExit, mjsOut) = await AuditVerifyScript.RunAsync(forged, publicKey, "--earlier", old);
        Assert.True(mjsExit == 3, mjsOut);
        Assert.Contains("PROBLEM sequence 3: WitnessMismatch: the earlier export", mjsOut, StringComparison.Ordinal);
        (mjsExit, mjsOut) = await AuditVerifyScript.RunAsync(later, publicKey, "--earlier", old);
        Assert.True(mjsExit == 0, mjsOut);

        // The old export handed over again as the new one: the same history, but nothing newer.
        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", old, "--public-key", publicKey, "--earlier", later);
        Assert.True(exit == 3, stdout + stderr);
        Assert.Contains("it is older, not newer", stdout, StringComparison.Ordinal);
        (mjsExit, mjsOut) = await AuditVerifyScript.RunAsync(old, publicKey, "--earlier", later);
        Assert.True(mjsExit == 3, mjsOut);
        Assert.Contains("it is older, not newer", mjsOut, StringComparison.Ordinal);
    }

    /// <summary>Each request a decision and an outcome (acme's), and an admin entry of another tenant between requests.</summary>
    private static async Task AppendAsync(string dataDirectory, string[] requests)
    {
        var database = SqlDatabase.Sqlite(Path.Combine(dataDirectory, "sovereign.db"));
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(dataDirectory, "operator-key.pem"));
        var clock = new ManualClock(Start);
        await using var log = await AuditLog.OpenAsync(database, key, new AuditLogOptions(), clock);
        foreach (var id in requests)
        {
            // Times follow the request, not the order of appending, so both logs give r3 the same entries.
            clock.Set(Start.AddSeconds(int.Parse(id[1..], System.Globalization.CultureInfo.InvariantCulture)));
            await log.AppendAsync(Entry(id, AuditActions.InferenceAllowed));
            await log.AppendAsync(Entry(id, AuditActions.InferenceCompleted));
        }
    }

    private async Task<string> ExportAsync(string dataDirectory, string name)
    {
        var path = Path.Combine(_directory, name);
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", dataDirectory, "--tenant", "acme", "-o", path);
        Assert.True(exit == 0, stdout + stderr);
        return path;
    }

    private static AuditRecord Entry(string requestId, string action) => new()
    {
        Kind = AuditKind.Inference,
        Tenant = "acme",
        Actor = "key-acme",
        Action = action,
        Model = "m",
        Gateway = "th-1",
        Node = "th-1",
        Jurisdiction = "TH",
        Decision = AuditDecision.Allowed,
        PromptTokens = action == AuditActions.InferenceCompleted ? 3 : null,
        CompletionTokens = action == AuditActions.InferenceCompleted ? 2 : null,
        Details = action == AuditActions.InferenceCompleted
            ? new Dictionary<string, string> { ["request_id"] = requestId, ["outcome"] = "completed" }
            : new Dictionary<string, string> { ["request_id"] = requestId },
    };
}
