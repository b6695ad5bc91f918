using Sovereign.Residency.Audit;

namespace Sovereign.Residency.Tests.Audit;

/// <summary>Each test plays an attacker with write access to the database (but not the operator's key).</summary>
public sealed class AuditVerifierTests
{
    private const int Count = 50;

    [Fact]
    public async Task VerifyAsync_EmptyLog_IsValid()
    {
        await using var context = AuditTestContext.Create();
        await (await context.OpenLogAsync()).DisposeAsync();

        var result = await context.VerifyAsync();

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(0, result.EntriesChecked);
    }

    [Fact]
    public async Task VerifyAsync_UntouchedLog_IsValidWithEveryCheckpoint()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);

        var result = await context.VerifyAsync();

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(Count, result.EntriesChecked);
        Assert.Equal(3, result.CheckpointsVerified);
        Assert.Equal(Count, result.LastSequence);
    }

    [Fact]
    public async Task VerifyAsync_OneByteOfModelChanged_ReportsHashMismatchAtThatSequence()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await context.ExecuteAsync("UPDATE audit_entries SET model = 'llama-3.1-8c' WHERE seq = 17");

        var result = await context.VerifyAsync();

        var problem = Assert.Single(result.Problems);
        Assert.Equal((17L, AuditProblemKind.HashMismatch), (problem.Sequence!.Value, problem.Kind));
        Assert.False(result.Valid);
    }

    [Theory]
    [InlineData("UPDATE audit_entries SET prompt_tokens = prompt_tokens + 1 WHERE seq = 33")]
    [InlineData("UPDATE audit_entries SET reasons = '[\"policy eu-only\",\"added\"]' WHERE seq = 33")]
    [InlineData("UPDATE audit_entries SET details = '{\"x\":\"y\"}' WHERE seq = 33")]
    [InlineData("UPDATE audit_entries SET tenant = NULL WHERE seq = 33")]
    [InlineData("UPDATE audit_entries SET at_ms = at_ms - 1 WHERE seq = 33")]
    [InlineData("UPDATE audit_entries SET decision = 'allowed', decision_code = 'ok' WHERE seq = 36")]
    public async Task VerifyAsync_AnyStoredFieldChanged_ReportsHashMismatchAtThatSequence(string tamper)
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await context.ExecuteAsync(tamper);

        var result = await context.VerifyAsync();

        var problem = Assert.Single(result.Problems);
        Assert.Equal(AuditProblemKind.HashMismatch, problem.Kind);
        Assert.InRange(problem.Sequence!.Value, 33, 36);
    }

    [Theory]
    [InlineData("tenant")]
    [InlineData("action")]
    [InlineData("key_id")]
    public async Task VerifyAsync_TextStoredAsBlob_ReportsItThoughTheBytesHashTheSame(string column)
    {
        // SQLite stores a BLOB in a TEXT column as given. Its bytes read back as the same text, so the hash matched and
        // the log verified, yet "tenant = 'acme'" never matches a BLOB: the tenant's own audit reads lost the entry.
        await using var context = AuditTestContext.Create();
        var entries = await SeedAsync(context);
        var tenant = entries[32].Tenant!;
        await context.ExecuteAsync($"UPDATE audit_entries SET {column} = CAST({column} AS BLOB) WHERE seq = 33");
        await using (var log = await context.OpenLogAsync())
        {
            var read = await log.ReadAsync(tenant, DateTimeOffset.UnixEpoch, DateTimeOffset.MaxValue);
            Assert.Equal(column == "tenant", read.All(e => e.Sequence != 33));
        }

        var result = await context.VerifyAsync();

        var problem = Assert.Single(result.Problems);
        Assert.Equal((33L, AuditProblemKind.Malformed), (problem.Sequence!.Value, problem.Kind));
        Assert.Contains(column, problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task VerifyAsync_EntryRewrittenWithRecomputedHash_ReportsChainBreakAtTheNextEntry()
    {
        await using var context = AuditTestContext.Create();
        var entries = await SeedAsync(context);
        var forged = entries[16] with { Model = "gpt-unapproved" };
        await context.ExecuteAsync("UPDATE audit_entries SET model = @model, hash = @hash WHERE seq = 17",
            ("@model", forged.Model), ("@hash", forged.ComputeHash()));

        var result = await context.VerifyAsync();

        var problem = Assert.Single(result.Problems);
        Assert.Equal((18L, AuditProblemKind.ChainBreak), (problem.Sequence!.Value, problem.Kind));
    }

    [Fact]
    public async Task VerifyAsync_EntryDeleted_ReportsGapAtThatSequence()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await context.ExecuteAsync("DELETE FROM audit_entries WHERE seq = 23");

        var result = await context.VerifyAsync();

        Assert.Equal((23L, AuditProblemKind.SequenceGap), (result.Problems[0].Sequence!.Value, result.Problems[0].Kind));
        Assert.Contains(result.Problems, p => p is { Sequence: 24, Kind: AuditProblemKind.ChainBreak });
        Assert.All(result.Problems, p => Assert.InRange(p.Sequence!.Value, 23, 24));
    }

    [Fact]
    public async Task VerifyAsync_TwoEntriesSwapped_ReportsChainBreakAtTheFirstSwappedPosition()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await context.ExecuteAsync("UPDATE audit_entries SET seq = -1 WHERE seq = 12");
        await context.ExecuteAsync("UPDATE audit_entries SET seq = 12 WHERE seq = 31");
        await context.ExecuteAsync("UPDATE audit_entries SET seq = 31 WHERE seq = -1");

        var result = await context.VerifyAsync();

        Assert.Equal(12, result.Problems[0].Sequence);
        Assert.Contains(result.Problems, p => p is { Sequence: 12, Kind: AuditProblemKind.ChainBreak });
        Assert.Contains(result.Problems, p => p is { Sequence: 31, Kind: AuditProblemKind.ChainBreak });
        Assert.DoesNotContain(result.Problems, p => p.Sequence < 12);
    }

    [Fact]
    public async Task VerifyAsync_ForgedEntryInsertedInTheMiddle_ReportsChainBreakAfterIt()
    {
        await using var context = AuditTestContext.Create();
        var entries = await SeedAsync(context);

        // A careful forger: renumber the rest, give the forgery a correct previous hash and hash of its own.
        await context.ExecuteAsync("UPDATE audit_entries SET seq = -(seq + 1) WHERE seq > 25");
        await context.ExecuteAsync("UPDATE audit_entries SET seq = -seq WHERE seq < 0");
        var forged = entries[24] with { Sequence = 26, PreviousHash = entries[24].Hash, Tenant = "acme", Jurisdiction = "US" };
        forged = forged with { Hash = forged.ComputeHash() };
        await InsertRawAsync(context, forged);

        var result = await context.VerifyAsync();

        Assert.Equal(27, result.Problems[0].Sequence);
        Assert.Contains(result.Problems, p => p is { Sequence: 27, Kind: AuditProblemKind.ChainBreak });
        Assert.DoesNotContain(result.Problems, p => p.Sequence < 27);
        Assert.Contains(result.Problems, p => p.Kind == AuditProblemKind.HeadMismatch);
    }

    [Fact]
    public async Task VerifyAsync_ForgedEntryAppendedAfterTheHead_ReportsIt()
    {
        await using var context = AuditTestContext.Create();
        var entries = await SeedAsync(context);
        var forged = entries[^1] with { Sequence = Count + 1, PreviousHash = entries[^1].Hash };
        await InsertRawAsync(context, forged with { Hash = forged.ComputeHash() });

        var result = await context.VerifyAsync();

        var problem = Assert.Single(result.Problems);
        Assert.Equal((Count + 1L, AuditProblemKind.HeadMismatch), (problem.Sequence!.Value, problem.Kind));
    }

    [Fact]
    public async Task VerifyAsync_TailTruncatedAndCheckpointsDeleted_HeadRowReportsTruncation()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await context.ExecuteAsync("DELETE FROM audit_entries WHERE seq > 45");
        await context.ExecuteAsync("DELETE FROM audit_checkpoints WHERE seq > 45");

        var result = await context.VerifyAsync();

        // The remaining 45 entries chain perfectly; only the head row knows more existed.
        var problem = Assert.Single(result.Problems);
        Assert.Equal((46L, AuditProblemKind.Truncated), (problem.Sequence!.Value, problem.Kind));
        Assert.Equal(45, result.EntriesChecked);
    }

    [Fact]
    public async Task VerifyAsync_TailTruncatedAndHeadRewritten_SignedCheckpointReportsTruncation()
    {
        await using var context = AuditTestContext.Create();
        var entries = await SeedAsync(context);
        await context.ExecuteAsync("DELETE FROM audit_entries WHERE seq > 45");
        await context.ExecuteAsync("UPDATE audit_head SET seq = 45, hash = @hash", ("@hash", entries[44].Hash));

        var result = await context.VerifyAsync();

        var problem = Assert.Single(result.Problems);
        Assert.Equal((46L, AuditProblemKind.Truncated), (problem.Sequence!.Value, problem.Kind));
    }

    [Fact]
    public async Task VerifyAsync_CheckpointSignatureForged_ReportsInvalidSignatureAtThatSequence()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        var signature = (string)(await context.ScalarAsync("SELECT signature FROM audit_checkpoints WHERE seq = 20"))!;
        var flipped = (signature[10] == '0' ? "1" : "0") is var c ? signature[..10] + c + signature[11..] : signature;
        await context.ExecuteAsync("UPDATE audit_checkpoints SET signature = @sig WHERE seq = 20", ("@sig", flipped));

        var result = await context.VerifyAsync();

        var problem = Assert.Single(result.Problems);
        Assert.Equal((20L, AuditProblemKind.InvalidSignature), (problem.Sequence!.Value, problem.Kind));
    }

    [Fact]
    public async Task VerifyAsync_CheckpointForgedWithAnotherKeyAfterTruncation_ReportsInvalidSignatureAndTruncation()
    {
        await using var context = AuditTestContext.Create();
        var entries = await SeedAsync(context);
        using var attacker = OperatorSigningKey.CreateEphemeral();
        var forged = AuditCheckpoint.Sign(attacker, 45, entries[44].Hash, 0);
        await context.ExecuteAsync("DELETE FROM audit_entries WHERE seq > 45");
        await context.ExecuteAsync("DELETE FROM audit_checkpoints WHERE seq > 45");
        await context.ExecuteAsync("UPDATE audit_head SET seq = 45, hash = @hash", ("@hash", entries[44].Hash));
        await context.ExecuteAsync("INSERT INTO audit_checkpoints (seq, key_id, hash, at_ms, signature) VALUES (45, @key, @hash, 0, @sig)",
            ("@key", context.Key.KeyId), ("@hash", forged.Hash), ("@sig", forged.Signature));

        var result = await context.VerifyAsync();

        var problem = Assert.Single(result.Problems);
        Assert.Equal((45L, AuditProblemKind.InvalidSignature), (problem.Sequence!.Value, problem.Kind));
    }

    [Fact]
    public async Task VerifyAsync_CheckpointHashAltered_ReportsInvalidSignature()
    {
        await using var context = AuditTestContext.Create();
        var entries = await SeedAsync(context);
        await context.ExecuteAsync("UPDATE audit_checkpoints SET hash = @hash WHERE seq = 40", ("@hash", entries[38].Hash));

        var result = await context.VerifyAsync();

        var problem = Assert.Single(result.Problems);
        Assert.Equal((40L, AuditProblemKind.InvalidSignature), (problem.Sequence!.Value, problem.Kind));
    }

    [Fact]
    public async Task VerifyAsync_WithAnotherOperatorsPublicKey_ReportsKeyMismatchForEveryCheckpoint()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        using var other = OperatorSigningKey.CreateEphemeral();

        var result = await AuditVerifier.VerifyAsync(context.Database, other.PublicKeyPem);

        Assert.Equal(3, result.Problems.Count);
        Assert.All(result.Problems, p => Assert.Equal(AuditProblemKind.KeyMismatch, p.Kind));
    }

    [Fact]
    public async Task VerifyAsync_HeadRowDeleted_ReportsHeadMismatch()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await context.ExecuteAsync("DELETE FROM audit_head");

        var result = await context.VerifyAsync();

        Assert.Equal(AuditProblemKind.HeadMismatch, Assert.Single(result.Problems).Kind);
    }

    [Fact]
    public async Task VerifyAsync_MalformedRow_ReportsItAndKeepsWalking()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await context.ExecuteAsync("UPDATE audit_entries SET kind = 'root' WHERE seq = 5");
        await context.ExecuteAsync("UPDATE audit_entries SET model = 'x' WHERE seq = 44");

        var result = await context.VerifyAsync();

        Assert.Equal([(5L, AuditProblemKind.Malformed), (44L, AuditProblemKind.HashMismatch)], result.Problems.Select(p => (p.Sequence!.Value, p.Kind)));
        Assert.Equal(Count, result.EntriesChecked);
    }

    /// <summary>50 entries over three tenants, checkpoints at 20 and 40 and (on dispose) 50.</summary>
    internal static async Task<List<AuditEntry>> SeedAsync(AuditTestContext context)
    {
        await using var log = await context.OpenLogAsync(new AuditLogOptions { CheckpointInterval = 20 });
        return await context.AppendManyAsync(log, Count, "acme", "globex", "initech");
    }

    internal static Task<int> InsertRawAsync(AuditTestContext context, AuditEntry entry) => context.ExecuteAsync(
        "INSERT INTO audit_entries (seq, at_ms, kind, tenant, key_id, actor, action, model, gateway, node, jurisdiction, decision, decision_code, " +
        "reasons, prompt_tokens, completion_tokens, details, format, previous_hash, hash) VALUES (@seq, @at, @kind, @tenant, @keyId, @actor, @action, " +
        "@model, @gateway, @node, @jurisdiction, @decision, @code, @reasons, @pt, @ct, @details, 1, @prev, @hash)",
        ("@seq", entry.Sequence), ("@at", entry.Timestamp), ("@kind", entry.Kind == AuditKind.Admin ? "admin" : "inference"), ("@tenant", entry.Tenant),
        ("@keyId", entry.KeyId), ("@actor", entry.Actor), ("@action", entry.Action), ("@model", entry.Model), ("@gateway", entry.Gateway), ("@node", entry.Node),
        ("@jurisdiction", entry.Jurisdiction), ("@decision", entry.Decision switch { AuditDecision.Allowed => "allowed", AuditDecision.Refused => "refused", _ => null }),
        ("@code", entry.DecisionCode), ("@reasons", System.Text.Json.JsonSerializer.Serialize(entry.Reasons)), ("@pt", entry.PromptTokens), ("@ct", entry.CompletionTokens),
        ("@details", System.Text.Json.JsonSerializer.Serialize(entry.Details)), ("@prev", entry.PreviousHash), ("@hash", entry.Hash));
}
