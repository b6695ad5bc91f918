using System.Text;
using System.Text.Json.Nodes;
using Sovereign.Residency.Audit;

namespace Sovereign.Residency.Tests.Audit;

/// <summary>
/// The export of a log with member chains (version 3, <see cref="AuditClusterExport"/>): every chain in one file that
/// an auditor verifies offline with the public key alone, each chain's coverage by the log's own checkpoints included,
/// and each way of cutting, rewriting or dropping a member's part named with its chain.
/// </summary>
public sealed class AuditClusterExportTests
{
    private const string Gateway = "gw-th";
    private const string Node = "node-th-1";

    [Fact]
    public async Task WriteAsync_MemberChains_EveryChainInOneFile_VerifiesAsTheDatabaseDoes()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, signNodeTail: true);

        var (text, summary) = await ExportAsync(context, null);
        var result = await VerifyAsync(text, context.Key);
        var database = await context.VerifyAsync();

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(3, JsonNode.Parse(text.Split('\n')[0])!["version"]!.GetValue<int>());
        Assert.Equal([null, Gateway, Node], summary.Chains.Select(c => c.Chain));
        Assert.Equal(database.EntriesChecked, result.EntriesChecked);
        Assert.Equal((database.LastSequence, database.CoveredThrough), (result.LastSequence, result.CoveredThrough));
        Assert.Equal(database.Chains.Select(c => (c.Chain, c.LastSequence, c.LastHash, c.CoveredThrough, c.Uncovered)),
            result.Chains.Select(c => (c.Chain, c.LastSequence, c.LastHash, c.CoveredThrough, c.Uncovered)));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.True(result.CheckpointsVerified >= 3, result.CheckpointsVerified.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task WriteAsync_AMembersUnsignedTail_IsReportedUncovered_AsTheDatabaseVerifierReportsIt()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, signNodeTail: false);

        var (text, summary) = await ExportAsync(context, null);
        var result = await VerifyAsync(text, context.Key);

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        var node = result.Chains.Single(c => c.Chain == Node);
        Assert.Equal((8L, 5L, 3L), (node.LastSequence, node.CoveredThrough, node.Uncovered));
        Assert.Equal(AuditVerdict.Uncovered, node.Verdict);
        Assert.Equal(AuditVerdict.Uncovered, result.Verdict); // the entries are from 2025: older than the bound when exported
        Assert.Equal(summary.Chains.Single(c => c.Chain == Node).UncoveredSince, node.UncoveredSince);
        var database = (await context.VerifyAsync()).Chains.Single(c => c.Chain == Node);
        Assert.Equal((database.CoveredThrough, database.Uncovered, database.UncoveredSince), (node.CoveredThrough, node.Uncovered, node.UncoveredSince));
    }

    [Fact]
    public async Task WriteAsync_OneTenant_RedactsOtherTenantsInEveryChain()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, signNodeTail: true);

        var (text, summary) = await ExportAsync(context, "acme");
        var result = await VerifyAsync(text, context.Key);

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.DoesNotContain("cluster-relay", text, StringComparison.Ordinal);
        Assert.DoesNotContain("globex", text, StringComparison.Ordinal);
        Assert.True(summary.Entries > 0 && summary.Redacted > 0);
    }

    [Fact]
    public async Task HasMemberChainsAsync_ASingleChainLog_KeepsTheVersion2Export()
    {
        await using var context = AuditTestContext.Create();
        await using (var log = await context.OpenLogAsync())
        {
            await context.AppendManyAsync(log, 3);
        }

        Assert.False(await AuditClusterExport.HasMemberChainsAsync(context.Database));
        await SeedAsync(context, signNodeTail: true, shared: false);
        Assert.True(await AuditClusterExport.HasMemberChainsAsync(context.Database));
    }

    // The file of a log whose node chain has entries 1..8, a gateway checkpoint at 5 (so 6..8 are uncovered).
    [Theory]
    [InlineData("node-section-removed", AuditProblemKind.Truncated)]
    [InlineData("node-entry-rewritten", AuditProblemKind.HashMismatch)]
    [InlineData("node-entry-removed", AuditProblemKind.SequenceGap)]
    [InlineData("node-tail-cut", AuditProblemKind.Truncated)]
    [InlineData("node-tail-cut-and-rehashed", AuditProblemKind.CheckpointMismatch)]
    [InlineData("node-checkpoint-removed", AuditProblemKind.MissingCheckpoint)]
    [InlineData("node-checkpoint-forged", AuditProblemKind.InvalidSignature)]
    [InlineData("node-checkpoint-moved", AuditProblemKind.CheckpointMismatch)]
    [InlineData("node-covered-claim-raised", AuditProblemKind.InvalidSignature)]
    [InlineData("node-dropped-from-header", AuditProblemKind.InvalidSignature)]
    [InlineData("sections-swapped", AuditProblemKind.ChainBreak)]
    [InlineData("node-entry-redacted", AuditProblemKind.OutOfScope)]
    public async Task VerifyExportAsync_AMembersPartTampered_IsNamedWithItsChain(string tamper, AuditProblemKind kind)
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, signNodeTail: false);
        var (text, _) = await ExportAsync(context, null);
        var lines = text.TrimEnd('\n').Split('\n').ToList();
        var nodeStart = lines.FindIndex(l => Type(l) == "chain" && JsonNode.Parse(l)!["chain"]?.GetValue<string>() == Node);
        var gatewayStart = lines.FindIndex(l => Type(l) == "chain" && JsonNode.Parse(l)!["chain"]?.GetValue<string>() == Gateway);
        int NodeLine(string type, long sequence) => lines.FindIndex(nodeStart, l => Type(l) == type && JsonNode.Parse(l)!["sequence"]!.GetValue<long>() == sequence);
        string? expectedChain = Node;

        switch (tamper)
        {
            case "node-section-removed": lines.RemoveRange(nodeStart, lines.Count - nodeStart); break;
            case "node-entry-rewritten": lines[NodeLine("entry", 2)] = Edit(lines[NodeLine("entry", 2)], o => o["model"] = "other"); break;
            case "node-entry-removed": lines.RemoveAt(NodeLine("entry", 3)); break;
            case "node-tail-cut": lines.RemoveAt(NodeLine("entry", 8)); break;
            case "node-tail-cut-and-rehashed":
                // The last line replaced by a re-hashed other entry: links, but is not what the header signed.
                var seven = JsonNode.Parse(lines[NodeLine("entry", 7)])!["hash"]!.GetValue<string>();
                var replaced = Edit(lines[NodeLine("entry", 8)], o => { o["model"] = "other"; o["previousHash"] = seven; });
                lines[NodeLine("entry", 8)] = Rehash(replaced);
                break;
            case "node-checkpoint-removed": lines.RemoveAt(NodeLine("checkpoint", 5)); break;
            case "node-checkpoint-forged":
                lines[NodeLine("checkpoint", 5)] = Edit(lines[NodeLine("checkpoint", 5)], o => o["signature"] = Flip(o["signature"]!.GetValue<string>()));
                break;
            case "node-checkpoint-moved":
                // A genuine checkpoint of the gateway's chain filed under the node's: it signs another chain's hash.
                var gatewayCheckpoint = lines[lines.FindIndex(gatewayStart, l => Type(l) == "checkpoint")];
                lines.Insert(NodeLine("entry", 8) + 1, gatewayCheckpoint);
                break;
            case "node-covered-claim-raised":
                expectedChain = null;
                lines[0] = Edit(lines[0], o => o["chains"]!.AsArray().Single(c => c!["chain"]?.GetValue<string>() == Node)!["coveredThrough"] = 8);
                break;
            case "node-dropped-from-header":
                expectedChain = null;
                lines[0] = Edit(lines[0], o => o["chains"]!.AsArray().Remove(o["chains"]!.AsArray().Single(c => c!["chain"]?.GetValue<string>() == Node)));
                break;
            case "sections-swapped":
                // The node's lines filed under the gateway's name and the other way round: entry 1 links to the
                // other chain's genesis.
                lines[gatewayStart] = lines[gatewayStart].Replace(Gateway, "SWAP", StringComparison.Ordinal);
                lines[nodeStart] = lines[nodeStart].Replace(Node, Gateway, StringComparison.Ordinal);
                lines[gatewayStart] = lines[gatewayStart].Replace("SWAP", Node, StringComparison.Ordinal);
                break;
            case "node-entry-redacted": lines[NodeLine("entry", 2)] = Redact(lines[NodeLine("entry", 2)]); expectedChain = Node; break;
            default: throw new ArgumentOutOfRangeException(nameof(tamper));
        }

        var result = await VerifyAsync(string.Join('\n', lines) + "\n", context.Key);

        Assert.False(result.Valid);
        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        Assert.Contains(result.Problems, p => p.Kind == kind && p.Chain == expectedChain);
    }

    [Fact]
    public async Task WriteAsync_AMemberChainRemovedWholeFromTheDatabase_RefusesToSign()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, signNodeTail: true);
        foreach (var table in new[] { "audit_chain_entries", "audit_chains", "audit_chain_checkpoints" })
        {
            await context.ExecuteAsync($"DELETE FROM {table} WHERE chain = @chain", ("@chain", Node));
        }

        var refused = await Assert.ThrowsAsync<AuditIntegrityException>(() => ExportAsync(context, null));

        Assert.Contains(refused.Problems, p => p is { Kind: AuditProblemKind.ChainMissing, Chain: Gateway });
    }

    [Fact]
    public async Task WriteAsync_AMemberEntryRewrittenInTheDatabase_RefusesToSign()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, signNodeTail: true);
        await context.ExecuteAsync("UPDATE audit_chain_entries SET model = 'other' WHERE chain = @chain AND seq = 3", ("@chain", Node));

        var refused = await Assert.ThrowsAsync<AuditIntegrityException>(() => ExportAsync(context, null));

        Assert.Contains(refused.Problems, p => p is { Kind: AuditProblemKind.HashMismatch, Chain: Node, Sequence: 3 });
    }

    [Fact]
    public async Task VerifyExportAsync_AChainAnnouncedButLeftOutOfTheList_IsMissing()
    {
        // The export's writer refuses such a log; an older or forged writer's file is still judged.
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, signNodeTail: true);
        var (text, _) = await ExportAsync(context, null);
        var lines = text.TrimEnd('\n').Split('\n').ToList();
        var nodeStart = lines.FindIndex(l => Type(l) == "chain" && JsonNode.Parse(l)!["chain"]?.GetValue<string>() == Node);
        lines.RemoveRange(nodeStart, lines.Count - nodeStart);
        lines[0] = Edit(lines[0], o => o["chains"]!.AsArray().Remove(o["chains"]!.AsArray().Single(c => c!["chain"]?.GetValue<string>() == Node)));

        var result = await VerifyAsync(string.Join('\n', lines) + "\n", context.Key);

        Assert.Contains(result.Problems, p => p is { Kind: AuditProblemKind.ChainMissing, Chain: Gateway });
    }

    /// <summary>
    /// The shared chain (3 entries, single machine before the switch), a gateway's chain (5) and a node's (8): the
    /// gateway signs the node's at 5, and at 8 too when <paramref name="signNodeTail"/>.
    /// </summary>
    [Fact]
    public async Task CompareWithEarlier_MemberChains_AgreeChainByChain_AndAChangedNodeEntryIsNamedWithItsChain()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context, signNodeTail: true);
        var (earlier, _) = await ExportAsync(context, null);
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { Chain = Node, SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(node, 2, "cluster-relay");
        }

        var (later, _) = await ExportAsync(context, null);
        var lines = later.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var nodeSection = Array.FindIndex(lines, l => l.Contains($"\"chain\":\"{Node}\"", StringComparison.Ordinal) && Type(l) == "chain");
        var at = Array.FindIndex(lines, nodeSection, l => Type(l) == "entry" && JsonNode.Parse(l)!["sequence"]!.GetValue<long>() == 3);
        lines[at] = Edit(lines[at], o => o["hash"] = new string('b', 64));

        var agrees = await AuditExportComparison.CompareAsync(Stream(later), Stream(earlier));
        var changed = await AuditExportComparison.CompareAsync(Stream(string.Join('\n', lines)), Stream(earlier));

        Assert.Empty(agrees);
        var problem = Assert.Single(changed);
        Assert.Equal((AuditProblemKind.WitnessMismatch, Node, 3L), (problem.Kind, problem.Chain, problem.Sequence));
    }

    private static MemoryStream Stream(string text) => new(Encoding.UTF8.GetBytes(text));

    private static async Task SeedAsync(AuditTestContext context, bool signNodeTail, bool shared = true)
    {
        if (shared)
        {
            await using var single = await context.OpenLogAsync();
            await context.AppendManyAsync(single, 3, "acme");
        }

        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { Chain = Node, SignsCheckpoints = false }))
        {
            for (var i = 0; i < 5; i++)
            {
                await gateway.AppendAsync(AuditTestContext.Inference(i % 2 == 0 ? "acme" : "globex", i));
                await node.AppendAsync(AuditTestContext.Inference("cluster-relay", i));
                context.Time.Advance(TimeSpan.FromMilliseconds(1));
            }

            Assert.Equal(1, await gateway.SignMemberChainsAsync());
            await context.AppendManyAsync(node, 3, "cluster-relay");
            if (signNodeTail)
            {
                Assert.Equal(1, await gateway.SignMemberChainsAsync());
            }
        }
    }

    private static async Task<(string Text, AuditClusterExportSummary Summary)> ExportAsync(AuditTestContext context, string? tenant)
    {
        using var stream = new MemoryStream();
        var summary = await AuditClusterExport.WriteAsync(context.Database, context.Key, tenant, DateTimeOffset.UnixEpoch, context.Time.GetUtcNow().AddHours(1), stream, null);
        return (Encoding.UTF8.GetString(stream.ToArray()), summary);
    }

    private static Task<AuditVerificationResult> VerifyAsync(string text, OperatorSigningKey key) =>
        AuditExport.VerifyExportAsync(new MemoryStream(Encoding.UTF8.GetBytes(text)), key.PublicKeyPem);

    private static string? Type(string line) => JsonNode.Parse(line)!["type"]?.GetValue<string>();

    private static string Edit(string line, Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(line)!.AsObject();
        edit(node);
        return node.ToJsonString();
    }

    private static string Redact(string line)
    {
        var entry = JsonNode.Parse(line)!.AsObject();
        return new JsonObject
        {
            ["type"] = "redacted",
            ["sequence"] = entry["sequence"]!.GetValue<long>(),
            ["previousHash"] = entry["previousHash"]!.GetValue<string>(),
            ["hash"] = entry["hash"]!.GetValue<string>(),
        }.ToJsonString();
    }

    /// <summary>Re-hashes an entry line (what an attacker without the key can do).</summary>
    private static string Rehash(string line)
    {
        var o = JsonNode.Parse(line)!.AsObject();
        var entry = new AuditEntry
        {
            Sequence = o["sequence"]!.GetValue<long>(),
            Timestamp = o["timestamp"]!.GetValue<long>(),
            Kind = o["kind"]!.GetValue<string>() == "admin" ? AuditKind.Admin : AuditKind.Inference,
            Tenant = o["tenant"]?.GetValue<string>(),
            KeyId = o["keyId"]?.GetValue<string>(),
            Actor = o["actor"]!.GetValue<string>(),
            Action = o["action"]!.GetValue<string>(),
            Model = o["model"]?.GetValue<string>(),
            Gateway = o["gateway"]?.GetValue<string>(),
            Node = o["node"]?.GetValue<string>(),
            Jurisdiction = o["jurisdiction"]?.GetValue<string>(),
            Decision = o["decision"]?.GetValue<string>() switch { "allowed" => AuditDecision.Allowed, "refused" => AuditDecision.Refused, _ => null },
            DecisionCode = o["decisionCode"]?.GetValue<string>(),
            Reasons = o["reasons"]!.AsArray().Select(r => r!.GetValue<string>()).ToList(),
            PromptTokens = o["promptTokens"]?.GetValue<long>(),
            CompletionTokens = o["completionTokens"]?.GetValue<long>(),
            Details = o["details"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>()),
            PreviousHash = o["previousHash"]!.GetValue<string>(),
            Hash = string.Empty,
        };
        o["hash"] = AuditCanonical.EntryHash(entry);
        return o.ToJsonString();
    }

    private static string Flip(string hex) => (hex[0] == '0' ? "1" : "0") + hex[1..];
}
