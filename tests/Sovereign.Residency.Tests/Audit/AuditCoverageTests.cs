using Sovereign.Residency.Audit;
using Sovereign.Tests;

namespace Sovereign.Residency.Tests.Audit;

/// <summary>
/// What no signed checkpoint covers. Every test plays an attacker who can write the database but lacks the operator's
/// key: a chain that re-hashes perfectly must still not be called trusted when nothing signed vouches for it.
/// </summary>
public sealed class AuditCoverageTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(10);

    [Fact]
    public async Task Verify_UntouchedLog_IsTrustedAndCoveredThroughTheLastEntry()
    {
        await using var context = AuditTestContext.Create();
        var entries = await AuditVerifierTests.SeedAsync(context);

        var result = await VerifyAtAsync(context, context.Time.GetUtcNow() + TimeSpan.FromDays(30));

        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal((50L, 0L, (long?)null), (result.CoveredThrough, result.Uncovered, result.UncoveredSince));
        Assert.Equal(50, result.LastCheckpoint!.Sequence);
        Assert.Equal(entries[^1].Hash, result.LastCheckpoint.Hash);
    }

    [Fact]
    public async Task Verify_EntryRewrittenChainRehashedAndEveryCheckpointDeleted_IsValidButNotTrusted()
    {
        await using var context = AuditTestContext.Create();
        var entries = await AuditVerifierTests.SeedAsync(context);
        await RewriteFromAsync(context, entries, 17, entry => entry with { Model = "a-model-the-attacker-prefers" });
        await context.ExecuteAsync("DELETE FROM audit_checkpoints");

        // Even verified a second after the last entry, nothing signed vouches for any entry.
        var result = await VerifyAtAsync(context, context.Time.GetUtcNow() + TimeSpan.FromSeconds(1));

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(AuditVerdict.Uncovered, result.Verdict);
        Assert.Equal((0L, 50L, entries[0].Timestamp), (result.CoveredThrough, result.Uncovered, result.UncoveredSince));
        Assert.Null(result.LastCheckpoint);
        Assert.Contains("No signed checkpoint covers any of the 50 entries", result.VerdictReason, StringComparison.Ordinal);
    }

    /// <summary>
    /// Times never decrease along the chain (the writer takes the later of its clock and the previous entry's), and
    /// readers by time binary-search on it. An entry moved back in time with the chain re-hashed and the checkpoints
    /// after it deleted linked perfectly and verified as merely uncovered; it is tampered, naming the entry.
    /// </summary>
    [Fact]
    public async Task Verify_EntryTimeMovedBackAndChainRehashed_IsTamperedNamingTheEntry()
    {
        await using var context = AuditTestContext.Create();
        var entries = await AuditVerifierTests.SeedAsync(context);
        var before = entries[28].Timestamp; // entry 29
        await RewriteFromAsync(context, entries, 30, entry => entry.Sequence == 30 ? entry with { Timestamp = before - 5 } : entry);
        await context.ExecuteAsync("DELETE FROM audit_checkpoints WHERE seq >= 30");

        var result = await VerifyAtAsync(context, context.Time.GetUtcNow());

        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        var problem = Assert.Single(result.Problems);
        Assert.Equal((30L, AuditProblemKind.TimeReversed), (problem.Sequence, problem.Kind));
        Assert.Contains("before entry 29's", problem.Message, StringComparison.Ordinal);

        // Nor is it exported: an export's from/to is a sequence range only while times never decrease.
        using var output = new MemoryStream();
        var refused = await Assert.ThrowsAsync<AuditIntegrityException>(() => AuditExport.WriteAsync(context.Database, context.Key, null,
            DateTimeOffset.FromUnixTimeMilliseconds(entries[0].Timestamp), DateTimeOffset.FromUnixTimeMilliseconds(entries[^1].Timestamp + 1), output));
        Assert.Contains(refused.Problems, p => p.Kind == AuditProblemKind.TimeReversed && p.Sequence == 30);
    }

    [Fact]
    public async Task Verify_RewrittenWithoutDeletingCheckpoints_IsTampered()
    {
        await using var context = AuditTestContext.Create();
        var entries = await AuditVerifierTests.SeedAsync(context);
        await RewriteFromAsync(context, entries, 17, entry => entry with { Model = "a-model-the-attacker-prefers" });

        var result = await VerifyAtAsync(context, context.Time.GetUtcNow());

        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        Assert.Equal([20L, 40L, 50L], result.Problems.Where(p => p.Kind == AuditProblemKind.CheckpointMismatch).Select(p => p.Sequence!.Value));
        Assert.Equal(0, result.CoveredThrough);
    }

    [Fact]
    public async Task Verify_NewestCheckpointDeletedAndTailRehashed_ReportsTheUncoveredTailAndRefusesTrustOnceItIsOld()
    {
        await using var context = AuditTestContext.Create();
        var entries = await AuditVerifierTests.SeedAsync(context);
        await RewriteFromAsync(context, entries, 45, entry => entry with { PromptTokens = 1 });
        await context.ExecuteAsync("DELETE FROM audit_checkpoints WHERE seq = 50");

        var fresh = await VerifyAtAsync(context, DateTimeOffset.FromUnixTimeMilliseconds(entries[40].Timestamp) + Bound);
        var old = await VerifyAtAsync(context, DateTimeOffset.FromUnixTimeMilliseconds(entries[40].Timestamp) + Bound + TimeSpan.FromMilliseconds(1));

        // Within the bound an unsigned tail is what a live log looks like; past it, someone deleted checkpoints (or the signer stopped).
        Assert.True(fresh.Valid && old.Valid);
        Assert.Equal((40L, 10L, entries[40].Timestamp), (fresh.CoveredThrough, fresh.Uncovered, fresh.UncoveredSince));
        Assert.Equal(40, fresh.LastCheckpoint!.Sequence);
        Assert.Equal(AuditVerdict.Trusted, fresh.Verdict);
        Assert.Equal(AuditVerdict.Uncovered, old.Verdict);
        Assert.Contains("10 entries after it (41..50)", old.VerdictReason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_CheckpointForgedWithAnotherKeyOverARehashedChain_IsTamperedAndCoversNothing()
    {
        await using var context = AuditTestContext.Create();
        var entries = await AuditVerifierTests.SeedAsync(context);
        var rewritten = await RewriteFromAsync(context, entries, 1, entry => entry with { Tenant = "someone-else" });
        await context.ExecuteAsync("DELETE FROM audit_checkpoints");
        using var attacker = OperatorSigningKey.CreateEphemeral();
        var forged = AuditCheckpoint.Sign(attacker, 50, rewritten[^1].Hash, rewritten[^1].Timestamp);
        await context.ExecuteAsync("INSERT INTO audit_checkpoints (seq, key_id, hash, at_ms, signature) VALUES (50, @key, @hash, @at, @sig)",
            ("@key", attacker.KeyId), ("@hash", forged.Hash), ("@at", forged.Timestamp), ("@sig", forged.Signature));

        var result = await VerifyAtAsync(context, context.Time.GetUtcNow());

        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        Assert.Equal(AuditProblemKind.KeyMismatch, Assert.Single(result.Problems).Kind);
        Assert.Equal((0L, 50L), (result.CoveredThrough, result.Uncovered));
    }

    [Fact]
    public async Task Verify_EmptyLog_IsTrusted()
    {
        await using var context = AuditTestContext.Create();
        await (await context.OpenLogAsync()).DisposeAsync();

        var result = await VerifyAtAsync(context, context.Time.GetUtcNow() + TimeSpan.FromDays(1));

        Assert.Equal((AuditVerdict.Trusted, 0L, 0L), (result.Verdict, result.CoveredThrough, result.Uncovered));
    }

    [Fact]
    public async Task AuditLog_WithCheckpointMaxAge_SignsItsFirstCommitAndThenWhenItsNewestCheckpointIsTooOld()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync(new AuditLogOptions { CheckpointMaxAge = TimeSpan.FromMinutes(1) });

        await log.AppendAsync(AuditTestContext.Inference("acme", 0));
        context.Time.Advance(TimeSpan.FromSeconds(30));
        await log.AppendAsync(AuditTestContext.Inference("acme", 1));
        var afterHalfAMinute = await VerifyAtAsync(context, context.Time.GetUtcNow());
        context.Time.Set(context.Time.GetUtcNow() + TimeSpan.FromSeconds(31)); // Set fires no timer: this is the append's own rule
        await log.AppendAsync(AuditTestContext.Inference("acme", 2));
        var afterAMinute = await VerifyAtAsync(context, context.Time.GetUtcNow());

        Assert.Equal((1L, 1L), (afterHalfAMinute.CoveredThrough, afterHalfAMinute.Uncovered));
        Assert.Equal((3L, 0L), (afterAMinute.CoveredThrough, afterAMinute.Uncovered));
        Assert.Equal(AuditVerdict.Trusted, afterAMinute.Verdict);
    }

    [Fact]
    public async Task AuditLog_WithCheckpointMaxAge_TimerSignsAnIdleUnsignedTail()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync(new AuditLogOptions { CheckpointMaxAge = TimeSpan.FromMinutes(1) });
        await log.AppendAsync(AuditTestContext.Inference("acme", 0));
        context.Time.Advance(TimeSpan.FromSeconds(10));
        await log.AppendAsync(AuditTestContext.Inference("acme", 1));

        // The tick queues a checkpoint of the head (entry 2) ahead of entry 3; an append alone would have signed 3 instead.
        context.Time.Advance(TimeSpan.FromSeconds(70));
        await log.AppendAsync(AuditTestContext.Inference("acme", 2));
        var result = await VerifyAtAsync(context, context.Time.GetUtcNow());

        Assert.Equal((2L, 1L), (result.CoveredThrough, result.Uncovered));
    }

    [Fact]
    public async Task AuditLog_WithoutCheckpointMaxAge_LeavesAFreshLogUncoveredUntilItsInterval()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        await log.AppendAsync(AuditTestContext.Inference("acme", 0));

        var result = await VerifyAtAsync(context, context.Time.GetUtcNow());

        // The library default signs every 1000 entries only: a verifier rightly calls this unsigned entry uncovered.
        Assert.Equal((AuditVerdict.Uncovered, 0L, 1L), (result.Verdict, result.CoveredThrough, result.Uncovered));
    }

    private static Task<AuditVerificationResult> VerifyAtAsync(AuditTestContext context, DateTimeOffset now) =>
        AuditVerifier.VerifyAsync(context.Database, [context.Key.PublicKeyPem], new AuditVerificationOptions { MaxUncoveredAge = Bound, Time = new ManualClock(now) }, null);

    /// <summary>Rewrites entries from <paramref name="from"/> on and re-hashes the chain and the head, as an attacker with the database but not the key can.</summary>
    internal static async Task<List<AuditEntry>> RewriteFromAsync(AuditTestContext context, List<AuditEntry> entries, int from, Func<AuditEntry, AuditEntry> change)
    {
        await context.ExecuteAsync("DELETE FROM audit_entries WHERE seq >= @from", ("@from", (long)from));
        var previous = from == 1 ? AuditCanonical.GenesisHash : entries[from - 2].Hash;
        var rewritten = new List<AuditEntry>(entries.Take(from - 1));
        foreach (var original in entries.Skip(from - 1))
        {
            var entry = change(original) with { PreviousHash = previous };
            entry = entry with { Hash = entry.ComputeHash() };
            await AuditVerifierTests.InsertRawAsync(context, entry);
            rewritten.Add(entry);
            previous = entry.Hash;
        }

        await context.ExecuteAsync("UPDATE audit_head SET seq = @seq, hash = @hash", ("@seq", rewritten[^1].Sequence), ("@hash", previous));
        return rewritten;
    }
}
