using System.Text;
using System.Text.Json.Nodes;
using Sovereign.Residency.Audit;

namespace Sovereign.Residency.Tests.Audit;

public sealed class AuditExportTests
{
    // Entry i (0-based) is at start + i ms with tenant [acme, globex, initech][i % 3]; its sequence is i + 1.
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2025-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task WriteAsync_OneTenant_VerifiesOfflineWithOnlyThePublicKeyAndRedactsOthers()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);

        var (text, summary) = await ExportTenantAsync(context, "acme", 10, 40);
        var lines = text.TrimEnd('\n').Split('\n');
        var result = await VerifyAsync(text, context.Key.PublicKeyPem);

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal((11L, 40L, 10L, 20L), (summary.FirstSequence!.Value, summary.LastSequence!.Value, summary.Entries, summary.Redacted));
        // Header, acme's 10 entries, one gap line per run of the others' (11-12, 14-15, ..., 38-39), the checkpoint.
        Assert.Equal(22, lines.Length);
        Assert.Equal(30, result.EntriesChecked);
        Assert.Equal(1, result.CheckpointsVerified);
        Assert.Equal(AuditExport.TenantVersion, JsonNode.Parse(lines[0])!["version"]!.GetValue<int>());
        Assert.Equal("checkpoint", JsonNode.Parse(lines[^1])!["type"]!.GetValue<string>());
        Assert.DoesNotContain("globex", text, StringComparison.Ordinal);
        Assert.DoesNotContain("initech", text, StringComparison.Ordinal);
        var gap = JsonNode.Parse(lines[1])!.AsObject();
        Assert.Equal(["type", "fromSequence", "toSequence", "previousHash", "hash"], gap.Select(p => p.Key));
        Assert.Equal((11L, 12L), (gap["fromSequence"]!.GetValue<long>(), gap["toSequence"]!.GetValue<long>()));
        Assert.Equal(gap["hash"]!.GetValue<string>(), JsonNode.Parse(lines[2])!["previousHash"]!.GetValue<string>());
    }

    /// <summary>
    /// A tenant's export held a line for every entry of the log in its range (other tenants' as redacted lines): 389 MB
    /// for one tenant's 22 entries among 2,000,000. A redacted line states its hashes, so a run of them binds nothing
    /// its ends do not; each run is one gap line now, and the file follows the tenant's entries, not the log.
    /// </summary>
    [Fact]
    public async Task WriteAsync_OneTenantAmongMany_IsAsLongAsItsEntries_NotTheLog_AndStillVerifies()
    {
        await using var context = AuditTestContext.Create();
        context.Time.Set(Start);
        await using (var log = await context.OpenLogAsync(new AuditLogOptions { CheckpointInterval = 1000 }))
        {
            for (var i = 0; i < 300; i++)
            {
                await context.AppendManyAsync(log, 1, i % 100 == 50 ? "acme" : "other-" + (i % 7));
            }
        }

        var (text, summary) = await ExportTenantAsync(context, "acme", 0, 300);
        var lines = text.TrimEnd('\n').Split('\n');

        Assert.Equal((3L, 297L), (summary.Entries, summary.Redacted));
        Assert.Equal(1 + 3 + 4 + 1, lines.Length); // header, 3 entries, runs 1-50, 52-150, 152-250, 252-300, checkpoint
        var result = await VerifyAsync(text, context.Key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(300, result.EntriesChecked);

        // A gap that no longer links to the tenant's entry before it, or runs past where the next one starts, is refused.
        var unlinked = lines.ToArray();
        unlinked[3] = Edit(unlinked[3], gap => gap["previousHash"] = Flip(gap["previousHash"]!.GetValue<string>()));
        Assert.Contains((await VerifyAsync(string.Join('\n', unlinked) + "\n", context.Key.PublicKeyPem)).Problems, p => p.Kind == AuditProblemKind.ChainBreak);
        var overlong = lines.ToArray();
        overlong[3] = Edit(overlong[3], gap => gap["toSequence"] = 151);
        Assert.False((await VerifyAsync(string.Join('\n', overlong) + "\n", context.Key.PublicKeyPem)).Valid);
    }

    /// <summary>An export of every tenant shows every entry: a gap line in one hides entries and is refused.</summary>
    [Fact]
    public async Task VerifyExportAsync_GapLineWithoutATenantFilter_IsOutOfScope()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        var (text, _) = await ExportAsync(context, null, 0, 60);
        var lines = text.TrimEnd('\n').Split('\n').ToList();
        var first = JsonNode.Parse(lines[1])!;
        var second = JsonNode.Parse(lines[2])!;
        lines[1] = new JsonObject
        {
            ["type"] = "gap", ["fromSequence"] = 1, ["toSequence"] = 2, ["previousHash"] = first["previousHash"]!.GetValue<string>(), ["hash"] = second["hash"]!.GetValue<string>(),
        }.ToJsonString();
        lines.RemoveAt(2);

        var result = await VerifyAsync(string.Join('\n', lines) + "\n", context.Key.PublicKeyPem);

        Assert.Contains(result.Problems, p => p.Kind == AuditProblemKind.OutOfScope && p.Message.Contains("gap line", StringComparison.Ordinal));
    }

    [Fact]
    public async Task WriteAsync_NoTenantFilter_WritesEveryEntryInFull()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);

        var (text, summary) = await ExportAsync(context, null, 0, 60);
        var result = await VerifyAsync(text, context.Key.PublicKeyPem);

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal((60L, 0L), (summary.Entries, summary.Redacted));
    }

    [Fact]
    public async Task WriteAsync_RangeEndsBetweenCheckpoints_SignsAndStoresAFreshCheckpointThere()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);

        var (text, summary) = await ExportAsync(context, "globex", 5, 35);

        Assert.Equal(35, summary.Checkpoint!.Sequence);
        Assert.Equal(summary.Checkpoint.Hash, await context.ScalarAsync("SELECT hash FROM audit_checkpoints WHERE seq = 35"));
        Assert.True((await VerifyAsync(text, context.Key.PublicKeyPem)).Valid);
        var database = await context.VerifyAsync();
        Assert.True(database.Valid, string.Join("\n", database.Problems));
        Assert.Equal(4, database.CheckpointsVerified);
    }

    [Fact]
    public async Task WriteAsync_EmptyRange_WritesOnlyASignedHeaderThatVerifies()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);

        var (text, summary) = await ExportAsync(context, "acme", 1000, 2000);
        var result = await VerifyAsync(text, context.Key.PublicKeyPem);

        Assert.Null(summary.FirstSequence);
        Assert.Single(text.TrimEnd('\n').Split('\n'));
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(0, result.EntriesChecked);
    }

    [Fact]
    public async Task VerifyExportByKeyIdAsync_HeaderKeyMatchesExpectedId_IsValid()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        var (text, _) = await ExportAsync(context, "acme", 10, 40);

        var byId = await AuditExport.VerifyExportByKeyIdAsync(Stream(text), context.Key.KeyId);
        var byFingerprint = await AuditExport.VerifyExportByKeyIdAsync(Stream(text), OperatorSigningKey.ComputeFingerprint(context.Key.PublicKeyPem));

        Assert.True(byId.Valid, string.Join("\n", byId.Problems));
        Assert.True(byFingerprint.Valid, string.Join("\n", byFingerprint.Problems));
        Assert.Equal(context.Key.KeyId, OperatorSigningKey.ComputeFingerprint(context.Key.PublicKeyPem)[..16]);
    }

    [Fact]
    public async Task VerifyExportByKeyIdAsync_HeaderKeyReplacedByAttacker_ReportsKeyMismatch()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        using var attacker = OperatorSigningKey.CreateEphemeral();
        var (text, _) = await ExportAsync(context, "acme", 10, 40);
        var forged = await ExportWithKeyAsync(context, attacker, "acme", 10, 40);

        var result = await AuditExport.VerifyExportByKeyIdAsync(Stream(forged), context.Key.KeyId);
        var other = await AuditExport.VerifyExportByKeyIdAsync(Stream(text), attacker.KeyId);

        Assert.Contains(result.Problems, p => p is { Kind: AuditProblemKind.KeyMismatch, Line: 1 });
        Assert.Contains(other.Problems, p => p is { Kind: AuditProblemKind.KeyMismatch, Line: 1 });
    }

    [Fact]
    public async Task VerifyExportAsync_AnotherOperatorsPublicKey_IsInvalid()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        using var other = OperatorSigningKey.CreateEphemeral();
        var (text, _) = await ExportAsync(context, "acme", 10, 40);

        var result = await VerifyAsync(text, other.PublicKeyPem);

        Assert.False(result.Valid);
        Assert.Contains(result.Problems, p => p is { Kind: AuditProblemKind.KeyMismatch, Line: 1 });
        Assert.Contains(result.Problems, p => p is { Kind: AuditProblemKind.KeyMismatch, Line: 32 });
    }

    // Lines: 1 header; line n (2..31) holds sequence n + 9; 32 the checkpoint at 40. Sequence 12 (line 3) is
    // redacted (initech), 13 (line 4) and 16 (line 7) are acme's.
    [Theory]
    [InlineData("entry-field", AuditProblemKind.HashMismatch, 4)]
    [InlineData("entry-hash", AuditProblemKind.ChainBreak, 5)]
    [InlineData("entry-removed", AuditProblemKind.SequenceGap, 4)]
    [InlineData("entry-extra-property", AuditProblemKind.Malformed, 4)]
    [InlineData("redacted-hash", AuditProblemKind.ChainBreak, 4)]
    [InlineData("redacted-previous", AuditProblemKind.ChainBreak, 3)]
    [InlineData("redacted-removed", AuditProblemKind.SequenceGap, 3)]
    [InlineData("redacted-unredacted", AuditProblemKind.HashMismatch, 3)]
    [InlineData("entry-redacted", AuditProblemKind.OutOfScope, 1)]
    [InlineData("header-downgraded", AuditProblemKind.InvalidSignature, 1)]
    [InlineData("lines-swapped", AuditProblemKind.ChainBreak, 4)]
    [InlineData("checkpoint-signature", AuditProblemKind.InvalidSignature, 32)]
    [InlineData("checkpoint-sequence", AuditProblemKind.CheckpointMismatch, 32)]
    [InlineData("checkpoint-removed", AuditProblemKind.MissingCheckpoint, 31)]
    [InlineData("tail-removed", AuditProblemKind.Truncated, 30)]
    [InlineData("header-tenant", AuditProblemKind.InvalidSignature, 1)]
    [InlineData("header-range", AuditProblemKind.InvalidSignature, 1)]
    [InlineData("line-after-checkpoint", AuditProblemKind.Malformed, 33)]
    [InlineData("not-json", AuditProblemKind.Malformed, 10)]
    public async Task VerifyExportAsync_TamperedLine_IsDetectedAndLocated(string tamper, AuditProblemKind kind, long line)
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        var (text, _) = await ExportAsync(context, "acme", 10, 40);
        var lines = text.TrimEnd('\n').Split('\n').ToList();
        var otherHash = JsonNode.Parse(lines[20])!["hash"]!.GetValue<string>();

        switch (tamper)
        {
            case "entry-field": lines[3] = Edit(lines[3], o => o["model"] = "llama-3.1-8c"); break;
            case "entry-hash": lines[3] = Edit(lines[3], o => o["hash"] = otherHash); break;
            case "entry-removed": lines.RemoveAt(3); break;
            case "entry-extra-property": lines[3] = Edit(lines[3], o => o["prompt"] = "hello"); break;
            case "redacted-hash": lines[2] = Edit(lines[2], o => o["hash"] = otherHash); break;
            case "redacted-previous": lines[2] = Edit(lines[2], o => o["previousHash"] = otherHash); break;
            case "redacted-removed": lines.RemoveAt(2); break;
            case "redacted-unredacted": lines[2] = Edit(lines[6], o => o["sequence"] = 12); break;
            // acme's own entry hidden as another tenant's: the chain, the checkpoint and a v1 header all still held.
            case "entry-redacted": lines[3] = Redact(lines[3]); break;
            case "header-downgraded": lines[0] = Edit(lines[0], o => { o["version"] = 1; o.Remove("entriesDigest"); }); break;
            case "lines-swapped": (lines[3], lines[6]) = (lines[6], lines[3]); break;
            case "checkpoint-signature": lines[31] = Edit(lines[31], o => o["signature"] = Flip(o["signature"]!.GetValue<string>())); break;
            case "checkpoint-sequence": lines[31] = Edit(lines[31], o => o["sequence"] = 39); break;
            case "checkpoint-removed": lines.RemoveAt(31); break;
            case "tail-removed": lines.RemoveRange(30, 2); break;
            case "header-tenant": lines[0] = Edit(lines[0], o => o["tenant"] = "globex"); break;
            case "header-range": lines[0] = Edit(lines[0], o => o["firstSequence"] = 13); break;
            case "line-after-checkpoint": lines.Add(lines[2]); break;
            case "not-json": lines[9] = lines[9][..20]; break;
            default: throw new ArgumentOutOfRangeException(nameof(tamper));
        }

        var result = await VerifyAsync(string.Join('\n', lines) + "\n", context.Key.PublicKeyPem);

        Assert.False(result.Valid);
        Assert.Contains(result.Problems, p => p.Kind == kind && p.Line == line);
    }

    [Fact]
    public async Task VerifyExportAsync_OwnEntryRedacted_IsReportedByTheSignedEntriesDigest()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        var (text, _) = await ExportAsync(context, "acme", 10, 40);
        var lines = text.TrimEnd('\n').Split('\n').ToList();
        Assert.Equal(2, JsonNode.Parse(lines[0])!["version"]!.GetValue<int>());
        Assert.Equal("acme", JsonNode.Parse(lines[6])!["tenant"]!.GetValue<string>());
        lines[6] = Redact(lines[6]);

        var result = await VerifyAsync(string.Join('\n', lines) + "\n", context.Key.PublicKeyPem);

        Assert.False(result.Valid);
        Assert.Equal([AuditProblemKind.OutOfScope], result.Problems.Select(p => p.Kind));
    }

    [Fact]
    public async Task VerifyExportAsync_Version1ExportWrittenBeforeTheDigest_StillVerifies()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        var (text, _) = await ExportAsync(context, "acme", 10, 40);
        var lines = text.TrimEnd('\n').Split('\n').ToList();
        lines[0] = Edit(lines[0], o =>
        {
            // As a release before version 2 wrote it: no entriesDigest, the v1 domain.
            o["version"] = 1;
            o.Remove("entriesDigest");
            var payload = AuditCanonical.ExportHeaderPayload(o["keyId"]!.GetValue<string>(), o["tenant"]!.GetValue<string>(), o["from"]!.GetValue<long>(),
                o["to"]!.GetValue<long>(), o["firstSequence"]!.GetValue<long>(), o["lastSequence"]!.GetValue<long>(), o["createdAt"]!.GetValue<long>());
            o["signature"] = Convert.ToHexStringLower(context.Key.Sign(payload));
        });

        var result = await VerifyAsync(string.Join('\n', lines) + "\n", context.Key.PublicKeyPem);

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(30, result.EntriesChecked);
    }

    [Fact]
    public async Task WriteAsync_DatabaseTampered_RefusesToSignAnExport()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await context.ExecuteAsync("UPDATE audit_entries SET jurisdiction = 'US' WHERE seq = 30");

        var error = await Assert.ThrowsAsync<AuditIntegrityException>(() => ExportAsync(context, "acme", 10, 35));

        Assert.Contains(error.Problems, p => p is { Sequence: 30, Kind: AuditProblemKind.HashMismatch });
        Assert.Equal(0L, Convert.ToInt64(await context.ScalarAsync("SELECT COUNT(*) FROM audit_checkpoints WHERE seq = 35"), System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Whoever alters an export writes the values its problems quote. Printed raw, <c>ESC[8m</c> hid every line after
    /// it on the auditor's terminal (the "does not verify" verdict included) and a line break forged a line of the
    /// report; every character that acts is now shown as its escape, and a huge value is cut.
    /// </summary>
    [Fact]
    public async Task VerifyExportAsync_ValuesTheFileQuotes_AreShownEscapedNeverSentToTheTerminal()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        var (text, _) = await ExportAsync(context, "acme", 10, 40);
        var lines = text.TrimEnd('\n').Split('\n').ToList();
        const string Hide = "\u001b[2J\u001b[HThe export is intact and signed by the operator.\n\u001b[8m";
        var entry = lines.FindIndex(1, l => l.Contains("\"acme\"", StringComparison.Ordinal));
        lines[entry] = Edit(lines[entry], e => e["tenant"] = "globex" + Hide);
        lines.Insert(entry + 1, new JsonObject { ["type"] = Hide + "\u202e" + new string('x', 100_000) }.ToJsonString());
        lines[0] = Edit(lines[0], h => h["keyId"] = "\u009b2J\r" + Hide);

        var result = await VerifyAsync(string.Join('\n', lines) + "\n", context.Key.PublicKeyPem);

        Assert.False(result.Valid);
        Assert.Contains(result.Problems, p => p.Kind == AuditProblemKind.OutOfScope && p.Message.Contains("globex\\u001B[2J\\u001B[H", StringComparison.Ordinal));
        Assert.Contains(result.Problems, p => p.Message.StartsWith("Unknown line type '\\u001B[2J", StringComparison.Ordinal) && p.Message.Contains("\\u202E", StringComparison.Ordinal));
        Assert.Contains(result.Problems, p => p.Kind == AuditProblemKind.KeyMismatch && p.Message.Contains("\\u009B2J\\u000D", StringComparison.Ordinal));
        foreach (var problem in result.Problems)
        {
            Assert.True(problem.Message.Length <= AuditProblem.MaxMessageLength + 1, $"{problem.Kind}: {problem.Message.Length} characters");
            Assert.DoesNotContain(problem.ToString(), DisplayText.Acts);
        }
    }

    [Fact]
    public void AProblemsMessage_KeepsEveryScript_AndEscapesOnlyWhatActs()
    {
        var problem = new AuditProblem(1, AuditProblemKind.Malformed, "tenant 'โรงพยาบาล' 'مستشفى' '🏥' a\u0000b\u2028c\ud800") { Chain = "gw\u001b]8;;https://evil\u0007" };

        Assert.Equal("tenant 'โรงพยาบาล' 'مستشفى' '🏥' a\\u0000b\\u2028c\\uD800", problem.Message);
        Assert.Equal("chain gw\\u001B]8;;https://evil\\u0007, seq 1: Malformed: " + problem.Message, problem.ToString());
        // Read back from a JSON report, the message is shown the same (escaping it again changes nothing).
        Assert.Equal(problem.Message, new AuditProblem(1, AuditProblemKind.Malformed, problem.Message).Message);
    }

    private static async Task SeedAsync(AuditTestContext context)
    {
        context.Time.Set(Start);
        await using var log = await context.OpenLogAsync(new AuditLogOptions { CheckpointInterval = 20 });
        await context.AppendManyAsync(log, 60, "acme", "globex", "initech");
    }

    private static Task<(string Text, AuditExportSummary Summary)> ExportAsync(AuditTestContext context, string? tenant, int fromMs, int toMs) =>
        ExportCoreAsync(context, context.Key, tenant, fromMs, toMs);

    private static async Task<string> ExportWithKeyAsync(AuditTestContext context, OperatorSigningKey key, string? tenant, int fromMs, int toMs) =>
        (await ExportCoreAsync(context, key, tenant, fromMs, toMs)).Text;

    // A version 2 file (a tenant's with a redacted line per other entry, as releases before session 49 wrote it): the
    // tests of what verifiers check line by line read those, which auditors still hold.
    private static async Task<(string Text, AuditExportSummary Summary)> ExportCoreAsync(AuditTestContext context, OperatorSigningKey key, string? tenant, int fromMs, int toMs)
    {
        using var output = new MemoryStream();
        var summary = await AuditExport.WriteAsync(context.Database, key, tenant, Start.AddMilliseconds(fromMs), Start.AddMilliseconds(toMs), output, null, AuditExport.Version, CancellationToken.None);
        return (Encoding.UTF8.GetString(output.ToArray()), summary);
    }

    // What 'audit export --tenant' writes now: version 4, other tenants' runs as gap lines.
    private static async Task<(string Text, AuditExportSummary Summary)> ExportTenantAsync(AuditTestContext context, string tenant, int fromMs, int toMs)
    {
        using var output = new MemoryStream();
        var summary = await AuditExport.WriteAsync(context.Database, context.Key, tenant, Start.AddMilliseconds(fromMs), Start.AddMilliseconds(toMs), output);
        return (Encoding.UTF8.GetString(output.ToArray()), summary);
    }

    private static Task<AuditVerificationResult> VerifyAsync(string text, string publicKeyPem) => AuditExport.VerifyExportAsync(Stream(text), publicKeyPem);

    private static MemoryStream Stream(string text) => new(Encoding.UTF8.GetBytes(text));

    private static string Edit(string line, Action<JsonObject> change)
    {
        var node = JsonNode.Parse(line)!.AsObject();
        change(node);
        return node.ToJsonString();
    }

    private static string Redact(string line)
    {
        var entry = JsonNode.Parse(line)!.AsObject();
        return new JsonObject { ["type"] = "redacted", ["sequence"] = entry["sequence"]!.GetValue<long>(), ["previousHash"] = entry["previousHash"]!.GetValue<string>(), ["hash"] = entry["hash"]!.GetValue<string>() }.ToJsonString();
    }

    private static string Flip(string hex) => (hex[0] == '0' ? "1" : "0") + hex[1..];
}
