using Microsoft.Data.Sqlite;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>tools/audit-verify.mjs --previous</c> on a single machine's archive files (version 2). An archive of everything
/// keeps the log's newest entry, so the next archive starts with that entry again; the script demanded the entry after
/// it and called the honest pair "NOT VERIFIED", while <c>sovereign audit verify-export --previous</c> ignored the
/// previous file of a version 2 archive altogether (both found in session 52 by an auditor's walk). Both now accept
/// that one-entry overlap with the same hash, and refuse a file that starts anywhere else.
/// </summary>
public sealed class AuditVerifyMjsPreviousTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-mjs-previous-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task ArchivesOfEverything_TheNextStartsWithTheKeptEntry_BothVerifiersSayItContinues_AndNotTheOtherWayRound()
    {
        var database = SqlDatabase.Sqlite(Path.Combine(_directory, "sovereign.db"));
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_directory, "operator-key.pem"));
        var first = Path.Combine(_directory, "audit-1.jsonl");
        var second = Path.Combine(_directory, "audit-2.jsonl");
        await using (var log = await AuditLog.OpenAsync(database, key, new AuditLogOptions()))
        {
            for (var i = 0; i < 5; i++)
            {
                await log.AppendAsync(Entry(i));
            }
        }

        var one = await AuditArchive.ArchiveToFileAsync(database, key, DateTimeOffset.UtcNow.AddMinutes(1), first);
        await using (var log = await AuditLog.OpenAsync(database, key, new AuditLogOptions()))
        {
            for (var i = 5; i < 8; i++)
            {
                await log.AppendAsync(Entry(i));
            }
        }

        var two = await AuditArchive.ArchiveToFileAsync(database, key, DateTimeOffset.UtcNow.AddMinutes(1), second);
        Assert.Equal(AuditArchiveFileStatus.Archived, one.Status);
        Assert.Equal(AuditArchiveFileStatus.Archived, two.Status);
        Assert.Equal(one.Summary!.LastSequence, two.Summary!.FirstSequence); // the kept entry, in both files

        var publicKey = Path.Combine(_directory, "operator.pub.pem");
        await File.WriteAllTextAsync(publicKey, key.PublicKeyPem);

        var (exit, output) = await AuditVerifyScript.RunAsync(second, publicKey, "--previous", first);
        Assert.True(exit == 0, output);
        var (cliExit, cliOut, cliErr) = await CliProcess.RunAsync("audit", "verify-export", second, "--public-key", publicKey, "--previous", first);
        Assert.True(cliExit == 0, cliOut + cliErr);

        (exit, output) = await AuditVerifyScript.RunAsync(first, publicKey, "--previous", second);
        Assert.True(exit == 3, output);
        Assert.Contains("PROBLEM previous: this file starts at 1", output, StringComparison.Ordinal);
        (cliExit, cliOut, cliErr) = await CliProcess.RunAsync("audit", "verify-export", first, "--public-key", publicKey, "--previous", second);
        Assert.True(cliExit == 3, cliOut + cliErr);
        Assert.Contains("the files do not continue each other", cliOut, StringComparison.Ordinal);
    }

    private static AuditRecord Entry(int i) => new()
    {
        Kind = AuditKind.Inference,
        Tenant = "acme",
        Actor = "key-acme",
        Action = AuditActions.InferenceAllowed,
        Model = "m",
        Gateway = "th-1",
        Node = "th-1",
        Jurisdiction = "TH",
        Decision = AuditDecision.Allowed,
        Details = new Dictionary<string, string> { ["request_id"] = $"req-{i}" },
    };
}
