using System.Text;
using Sovereign.Residency.Audit;

namespace Sovereign.Residency.Tests.Audit;

/// <summary>
/// Retention for the audit log: old entries go to a verified archive file and out of the database under a signed
/// archive record. The log must then still verify, keep growing and export; and an attacker who removes entries
/// without such a record, or with a forged one, must still be caught.
/// </summary>
public sealed class AuditArchiveTests
{
    // Entry i (0-based) is at Start + i ms; its sequence is i + 1. Checkpoints every 20 entries.
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2025-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task Archive_OldEntries_FileVerifiesAndTheRestOfTheLogIsTrusted()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 60);

        var (text, summary) = await WriteArchiveAsync(context, beforeMs: 30);
        var file = await AuditExport.VerifyExportAsync(Stream(text), context.Key.PublicKeyPem);
        var removal = await AuditArchive.RemoveAsync(context.Database, context.Key, summary.LastSequence!.Value, summary.Checkpoint!.Hash, summary.Entries);
        var result = await context.VerifyAsync();

        Assert.True(file.Valid, string.Join("\n", file.Problems));
        Assert.Equal((1L, 30L, 30L), (summary.FirstSequence!.Value, summary.LastSequence!.Value, summary.Entries));
        Assert.Equal((1L, 30L), (removal.FirstRemoved!.Value, removal.Removed));
        Assert.Equal(30L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_entries"));
        Assert.Equal(31L, await context.ScalarAsync("SELECT MIN(seq) FROM audit_entries"));
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal((30L, 60L, 60L, 0L), (result.EntriesChecked, result.LastSequence, result.CoveredThrough, result.Uncovered));
        Assert.Equal(30, result.Archive!.Sequence);
        Assert.Equal(summary.Checkpoint.Hash, result.Archive.Hash);
        Assert.StartsWith("Entries 1..30 were archived under a signed archive record", result.VerdictReason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Archive_ThenTheLogReopensAndKeepsGrowing_AndExportsStillVerify()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 60);
        await ArchiveAsync(context, beforeMs: 25);

        // The writer reloads its head from the tail, which the archive never touches.
        await using (var log = await context.OpenLogAsync(new AuditLogOptions { CheckpointInterval = 20 }))
        {
            await context.AppendManyAsync(log, 15, "acme", "globex", "initech");
        }

        var result = await context.VerifyAsync();
        using var output = new MemoryStream();
        var export = await AuditExport.WriteAsync(context.Database, context.Key, "acme", Start, Start.AddMilliseconds(75), output);
        var exported = await AuditExport.VerifyExportAsync(new MemoryStream(output.ToArray()), context.Key.PublicKeyPem);

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal((50L, 75L), (result.EntriesChecked, result.LastSequence));
        Assert.Equal(26L, export.FirstSequence);
        Assert.True(exported.Valid, string.Join("\n", exported.Problems));
    }

    [Fact]
    public async Task Archive_TwiceInARow_TheNewerRecordVouchesForEverythingBeforeIt()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 60);
        await ArchiveAsync(context, beforeMs: 20);

        var (text, summary) = await WriteArchiveAsync(context, beforeMs: 45);
        await AuditArchive.RemoveAsync(context.Database, context.Key, summary.LastSequence!.Value, summary.Checkpoint!.Hash, summary.Entries);
        var result = await context.VerifyAsync();

        // The second file continues where the first ended: its first entry links to the first file's last hash.
        Assert.Equal((21L, 45L), (summary.FirstSequence!.Value, summary.LastSequence!.Value));
        Assert.True((await AuditExport.VerifyExportAsync(Stream(text), context.Key.PublicKeyPem)).Valid);
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal((45L, 15L), (result.Archive!.Sequence, result.EntriesChecked));
        Assert.Equal(1L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_archives"));
    }

    [Fact]
    public async Task Archive_EverythingBeforeNow_KeepsTheNewestEntrySoTheHeadStillMeetsTheChain()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 10);

        var (_, summary) = await WriteArchiveAsync(context, beforeMs: 1_000);
        var removal = await AuditArchive.RemoveAsync(context.Database, context.Key, summary.LastSequence!.Value, summary.Checkpoint!.Hash, summary.Entries);
        await using (var log = await context.OpenLogAsync())
        {
            await context.AppendManyAsync(log, 1);
        }

        var result = await context.VerifyAsync();

        Assert.Equal((9L, 9L), (removal.Removed, removal.Record!.Sequence));
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal((2L, 11L), (result.EntriesChecked, result.LastSequence));
    }

    [Fact]
    public async Task Remove_WithAHashThatIsNotTheLogs_RefusesAndRemovesNothing()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 30);
        var (_, summary) = await WriteArchiveAsync(context, beforeMs: 20);

        var error = await Assert.ThrowsAsync<AuditIntegrityException>(() =>
            AuditArchive.RemoveAsync(context.Database, context.Key, summary.LastSequence!.Value, new string('a', 64), summary.Entries));

        Assert.Contains("not " + new string('a', 64), error.Message, StringComparison.Ordinal);
        Assert.Equal(30L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_entries"));
        Assert.Equal(0L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_archives"));
    }

    [Fact]
    public async Task Remove_OverAChainThatDoesNotVerify_RefusesAndRemovesNothing()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 30);
        var (_, summary) = await WriteArchiveAsync(context, beforeMs: 20);
        await context.ExecuteAsync("UPDATE audit_entries SET model = 'x' WHERE seq = 7");

        await Assert.ThrowsAsync<AuditIntegrityException>(() =>
            AuditArchive.RemoveAsync(context.Database, context.Key, summary.LastSequence!.Value, summary.Checkpoint!.Hash, summary.Entries));

        Assert.Equal(30L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_entries"));
    }

    [Fact]
    public async Task Verify_RemovalInterruptedHalfway_StillVerifies()
    {
        await using var context = AuditTestContext.Create();
        var entries = await SeedAsync(context, 60);

        // What a removal cut short leaves: the record through 40 committed, only entries 1..15 gone.
        var record = AuditArchiveRecord.Sign(context.Key, 40, entries[39].Hash, 40, Start.ToUnixTimeMilliseconds());
        await InsertRecordAsync(context, record);
        await context.ExecuteAsync("DELETE FROM audit_entries WHERE seq <= 15");

        var result = await context.VerifyAsync();

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal(45L, result.EntriesChecked);
    }

    [Fact]
    public async Task Verify_EntriesDeletedWithoutAnArchiveRecord_IsTampered()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 60);
        await context.ExecuteAsync("DELETE FROM audit_entries WHERE seq <= 20");
        await context.ExecuteAsync("DELETE FROM audit_checkpoints WHERE seq <= 20");

        var result = await context.VerifyAsync();

        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        var gap = Assert.Single(result.Problems, p => p.Kind == AuditProblemKind.SequenceGap);
        Assert.Equal(1, gap.Sequence);
        Assert.Null(result.Archive);
    }

    [Fact]
    public async Task Verify_ArchiveRecordSignedWithAnotherKey_IsTampered()
    {
        await using var context = AuditTestContext.Create();
        var entries = await SeedAsync(context, 60);
        using var attacker = OperatorSigningKey.LoadOrCreate(Path.Combine(context.Directory, "attacker.pem"));
        await InsertRecordAsync(context, AuditArchiveRecord.Sign(attacker, 20, entries[19].Hash, 20, Start.ToUnixTimeMilliseconds()));
        await context.ExecuteAsync("DELETE FROM audit_entries WHERE seq <= 20");

        var result = await context.VerifyAsync();

        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        Assert.Contains(result.Problems, p => p.Kind == AuditProblemKind.KeyMismatch);
        Assert.Contains(result.Problems, p => p.Kind == AuditProblemKind.SequenceGap && p.Sequence == 1);
    }

    [Fact]
    public async Task Verify_ArchiveRecordMovedFurtherThanItWasSigned_IsTampered()
    {
        await using var context = AuditTestContext.Create();
        var entries = await SeedAsync(context, 60);
        await ArchiveAsync(context, beforeMs: 20);

        // The attacker stretches the record over 20 more entries and deletes them too.
        await context.ExecuteAsync("UPDATE audit_archives SET seq = 40, hash = @hash", ("@hash", entries[39].Hash));
        await context.ExecuteAsync("DELETE FROM audit_entries WHERE seq <= 40");

        var result = await context.VerifyAsync();

        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        Assert.Contains(result.Problems, p => p.Kind == AuditProblemKind.InvalidSignature);
        Assert.Contains(result.Problems, p => p.Kind == AuditProblemKind.SequenceGap);
    }

    [Fact]
    public async Task Verify_FirstKeptEntryRewrittenAfterAnArchive_IsAChainBreakAtTheArchive()
    {
        await using var context = AuditTestContext.Create();
        var entries = await SeedAsync(context, 60);
        await ArchiveAsync(context, beforeMs: 20);
        await context.ExecuteAsync("UPDATE audit_entries SET previous_hash = @hash WHERE seq = 21", ("@hash", entries[5].Hash));

        var result = await context.VerifyAsync();

        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        Assert.Contains(result.Problems, p => p.Kind == AuditProblemKind.ChainBreak && p.Sequence == 21 && p.Message.Contains("archive record", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ArchiveToFile_WritesAVerifiedOwnerOnlyFileThenRemovesTheEntries()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 60);
        var path = Path.Combine(context.Directory, "archive.jsonl");

        var outcome = await AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddMilliseconds(30), path);
        AuditVerificationResult file;
        await using (var read = File.OpenRead(path))
        {
            file = await AuditExport.VerifyExportAsync(read, context.Key.PublicKeyPem);
        }

        var result = await context.VerifyAsync();

        Assert.Equal(AuditArchiveFileStatus.Archived, outcome.Status);
        Assert.Equal((1L, 30L, 30L), (outcome.Summary!.FirstSequence!.Value, outcome.Summary.LastSequence!.Value, outcome.Removal!.Removed));
        Assert.True(file.Valid, string.Join("\n", file.Problems));
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(await File.ReadAllBytesAsync(path))), outcome.Sha256);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal(30, result.Archive!.Sequence);
    }

    [Fact]
    public async Task ArchiveToFile_WhileAnotherProcessHoldsTheArchiveLock_IsBusyAndTouchesNothing()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 60);
        var path = Path.Combine(context.Directory, "archive.jsonl");

        // Another SqlDatabase on the same file stands for another process: the lock is the kernel's, on a file beside it.
        var other = Storage.SqlDatabase.Sqlite(context.DatabasePath);
        AuditArchiveFileOutcome outcome;
        await using (var held = await other.TryLockAsync(AuditArchive.LockName))
        {
            Assert.NotNull(held);
            Assert.Null(await context.Database.TryLockAsync(AuditArchive.LockName));
            outcome = await AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddMilliseconds(30), path);
        }

        Assert.Equal(AuditArchiveFileStatus.Busy, outcome.Status);
        Assert.False(File.Exists(path));
        Assert.Equal(60L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_entries"));

        // Released, the next run archives.
        Assert.Equal(AuditArchiveFileStatus.Archived, (await AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddMilliseconds(30), path)).Status);
    }

    /// <summary>
    /// The lock file beside the database, and the database's own files, are the owner's only. Before, SQLite and the
    /// lock took the default modes (644 under the usual umask): every user of the host could read the audit log.
    /// </summary>
    [Fact]
    public async Task TheArchiveLockAndTheDatabaseFiles_AreOwnerOnly()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 3);

        // SQLite deletes the WAL when the file's last connection closes: one stays open while the files are looked at
        // (the seeding log's connections closing in between made the -wal vanish after it was listed).
        await using var open = await context.Database.OpenAsync();
        using (var read = open.CreateCommand())
        {
            read.CommandText = "SELECT COUNT(*) FROM audit_entries";
            await read.ExecuteScalarAsync();
        }

        await using (var held = await context.Database.TryLockAsync(AuditArchive.LockName))
        {
            Assert.NotNull(held);
        }

        var files = System.IO.Directory.GetFiles(context.Directory, "sovereign.db*");
        Assert.Contains(context.DatabasePath + "." + AuditArchive.LockName + ".lock", files);
        Assert.Contains(context.DatabasePath + "-wal", files);
        foreach (var file in files)
        {
            Assert.Equal((file, UnixFileMode.UserRead | UnixFileMode.UserWrite), (file, File.GetUnixFileMode(file)));
        }
    }

    [Fact]
    public async Task ArchiveToFile_WhenTheFileCannotBeCreated_RemovesNothing()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 60);

        // A regular file where the directory should be: not writable whoever runs the test (root ignores modes).
        var blocker = Path.Combine(context.Directory, "not-a-directory");
        await File.WriteAllTextAsync(blocker, "x");

        await Assert.ThrowsAnyAsync<IOException>(() =>
            AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddMilliseconds(30), Path.Combine(blocker, "archive.jsonl")));
        var existing = Path.Combine(context.Directory, "existing.jsonl");
        await File.WriteAllTextAsync(existing, "an earlier archive");
        await Assert.ThrowsAnyAsync<IOException>(() => AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddMilliseconds(30), existing));

        Assert.Equal(60L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_entries"));
        Assert.Equal(0L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_archives"));
        Assert.Equal("an earlier archive", await File.ReadAllTextAsync(existing));
    }

    [Fact]
    public async Task ArchiveToFile_OverATamperedChain_DeletesItsPartFileAndRemovesNothing()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 60);
        await context.ExecuteAsync("UPDATE audit_entries SET model = 'other' WHERE seq = 5");
        var path = Path.Combine(context.Directory, "archive.jsonl");

        await Assert.ThrowsAsync<AuditIntegrityException>(() => AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddMilliseconds(30), path));

        // The export refused the chain after the file was created: the incomplete file went, the entries stayed.
        Assert.False(File.Exists(path));
        Assert.Equal(60L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_entries"));
        Assert.Equal(0L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_archives"));
    }

    [Fact]
    public async Task ArchiveToFile_WhenOnlyTheNewestEntryIsDue_WritesNoFile()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 10);
        var first = Path.Combine(context.Directory, "first.jsonl");
        var second = Path.Combine(context.Directory, "second.jsonl");

        var archived = await AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddDays(1), first);
        var again = await AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddDays(1), second);

        // Before, a second run wrote a file of the one entry that always stays, and removed nothing.
        Assert.Equal((AuditArchiveFileStatus.Archived, 9L), (archived.Status, archived.Removal!.Removed));
        Assert.Equal(AuditArchiveFileStatus.NothingToArchive, again.Status);
        Assert.False(File.Exists(second));
        Assert.Equal(1L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_entries"));
    }

    [Fact]
    public async Task VerifyWithPrevious_TheNextArchiveContinues_AFileThatDoesNotIsRefused()
    {
        // verify-export --previous read the previous file only for version 3 (several chains): a version 2 archive
        // that did not continue its predecessor, the predecessor itself, or an earlier file given as the later one,
        // all verified as intact.
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 60);
        var (first, firstSummary) = await WriteArchiveAsync(context, beforeMs: 20);
        await AuditArchive.RemoveAsync(context.Database, context.Key, firstSummary.LastSequence!.Value, firstSummary.Checkpoint!.Hash, firstSummary.Entries);
        var (second, _) = await WriteArchiveAsync(context, beforeMs: 45);

        var continues = await AuditExport.VerifyExportAsync(Stream(second), context.Key.PublicKeyPem, Stream(first));
        var backwards = await AuditExport.VerifyExportAsync(Stream(first), context.Key.PublicKeyPem, Stream(second));
        var itself = await AuditExport.VerifyExportAsync(Stream(second), context.Key.PublicKeyPem, Stream(second));

        // Another log signed by the same key, whose entry 20 differs: its entry 21 does not link to the first file.
        await using var other = AuditTestContext.Create(context.KeyPath);
        other.Time.Set(Start);
        await using (var log = await other.OpenLogAsync(new AuditLogOptions { CheckpointInterval = 20 }))
        {
            await other.AppendManyAsync(log, 60, "umbrella");
        }

        using var forkOutput = new MemoryStream();
        await AuditExport.WriteAsync(other.Database, other.Key, null, Start.AddMilliseconds(20), Start.AddMilliseconds(45), forkOutput);
        var fork = await AuditExport.VerifyExportAsync(new MemoryStream(forkOutput.ToArray()), context.Key.PublicKeyPem, Stream(first));

        Assert.True(continues.Valid, string.Join("\n", continues.Problems));
        Assert.False(backwards.Valid);
        Assert.Contains(backwards.Problems, p => p.Kind == AuditProblemKind.SequenceGap && p.Message.Contains("The previous file ends at 45; this one starts at 1", StringComparison.Ordinal));
        Assert.False(itself.Valid);
        Assert.Contains(itself.Problems, p => p.Kind == AuditProblemKind.SequenceGap && p.Message.Contains("ends at 45; this one starts at 21", StringComparison.Ordinal));
        Assert.False(fork.Valid);
        Assert.Contains(fork.Problems, p => p.Kind == AuditProblemKind.ChainBreak && p.Sequence == 21 && p.Message.Contains("the previous file's last hash", StringComparison.Ordinal));
    }

    [Fact]
    public async Task VerifyWithPrevious_AFileStartingWithThePreviousFilesLastEntry_ContinuesItOnlyWithTheSameHash()
    {
        // An archive of everything keeps the newest entry in the log, so the next archive starts with it again.
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, 30);
        var (first, firstSummary) = await WriteArchiveAsync(context, beforeMs: 1000);
        await AuditArchive.RemoveAsync(context.Database, context.Key, firstSummary.LastSequence!.Value, firstSummary.Checkpoint!.Hash, firstSummary.Entries);
        await using (var log = await context.OpenLogAsync(new AuditLogOptions { CheckpointInterval = 20 }))
        {
            await context.AppendManyAsync(log, 10, "acme");
        }

        var (second, secondSummary) = await WriteArchiveAsync(context, beforeMs: 2000);
        var rewritten = first.Replace(firstSummary.Checkpoint.Hash, new string('a', 64), StringComparison.Ordinal);

        var continues = await AuditExport.VerifyExportAsync(Stream(second), context.Key.PublicKeyPem, Stream(first));
        var otherEnd = await AuditExport.VerifyExportAsync(Stream(second), context.Key.PublicKeyPem, Stream(rewritten));

        Assert.Equal((30L, 30L), (firstSummary.LastSequence.Value, secondSummary.FirstSequence!.Value));
        Assert.True(continues.Valid, string.Join("\n", continues.Problems));
        Assert.False(otherEnd.Valid);
        Assert.Contains(otherEnd.Problems, p => p.Kind == AuditProblemKind.ChainBreak && p.Message.Contains("but the previous file ends with it as aaaa", StringComparison.Ordinal));
    }

    private static async Task<List<AuditEntry>> SeedAsync(AuditTestContext context, int count)
    {
        context.Time.Set(Start);
        await using var log = await context.OpenLogAsync(new AuditLogOptions { CheckpointInterval = 20 });
        return await context.AppendManyAsync(log, count, "acme", "globex", "initech");
    }

    private static async Task<(string Text, AuditExportSummary Summary)> WriteArchiveAsync(AuditTestContext context, int beforeMs)
    {
        using var output = new MemoryStream();
        var summary = await AuditArchive.WriteAsync(context.Database, context.Key, Start.AddMilliseconds(beforeMs), output);
        return (Encoding.UTF8.GetString(output.ToArray()), summary);
    }

    private static async Task ArchiveAsync(AuditTestContext context, int beforeMs)
    {
        var (_, summary) = await WriteArchiveAsync(context, beforeMs);
        await AuditArchive.RemoveAsync(context.Database, context.Key, summary.LastSequence!.Value, summary.Checkpoint!.Hash, summary.Entries);
    }

    private static async Task InsertRecordAsync(AuditTestContext context, AuditArchiveRecord record)
    {
        await using var connection = await context.Database.OpenAsync();
        await AuditStore.InsertArchiveAsync(connection, null, record, CancellationToken.None);
    }

    private static MemoryStream Stream(string text) => new(Encoding.UTF8.GetBytes(text));
}
