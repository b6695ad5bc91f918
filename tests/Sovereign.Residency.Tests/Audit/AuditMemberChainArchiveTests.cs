using Sovereign.Residency.Audit;

namespace Sovereign.Residency.Tests.Audit;

/// <summary>
/// Retention of a log with member chains: <see cref="AuditArchive.ArchiveToFileAsync"/> (what <c>audit archive</c> and
/// the scheduled retention run) writes one file holding every chain's old entries, verifies it, and removes each
/// chain's part under a signed record of that chain; whatever is removed without one, or under one moved or stretched,
/// is still named with its chain.
/// </summary>
public sealed class AuditMemberChainArchiveTests
{
    private const string Gateway = "gw-th";
    private const string Node = "node-th-1";
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2025-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task ArchiveToFile_MemberChains_EachChainLeavesUnderItsOwnRecord_TheFileAndTheLogVerify_AndSigningGoesOn()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        var path = Path.Combine(context.Directory, "archive.jsonl");

        var outcome = await AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddDays(1), path);

        Assert.Equal(AuditArchiveFileStatus.Archived, outcome.Status);
        Assert.Equal(
            [(null, 1L, 2L), (Gateway, 1L, 5L), (Node, 1L, 5L)],
            outcome.Chains.Select(c => (c.Chain.Chain, c.Removal.FirstRemoved!.Value, c.Removal.Record!.Sequence)));
        Assert.Equal(2 + 5 + 5, outcome.Removal!.Removed);
        Assert.Equal(6L, await context.ScalarAsync($"SELECT MIN(seq) FROM audit_chain_entries WHERE chain = '{Gateway}'"));
        Assert.Equal(6L, await context.ScalarAsync($"SELECT MIN(seq) FROM audit_chain_entries WHERE chain = '{Node}'"));

        await using (var file = File.OpenRead(path))
        {
            var check = await AuditExport.VerifyExportAsync(file, context.Key.PublicKeyPem);
            Assert.True(check.Valid, string.Join("\n", check.Problems));
        }

        // The gateway's announcement of the node's chain stays, its first entry archived: accepted under the record.
        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal(Node, result.Chains[1].Chain);
        Assert.Equal((8L, 8L), (result.Chains[1].LastSequence, result.Chains[1].CoveredThrough));

        // The cluster goes on: the node appends, the gateway signs on from its checkpoint, and a second archive follows.
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { Chain = Node, SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(node, 2, "cluster-relay");
            Assert.Equal(1, await gateway.SignMemberChainsAsync());
        }

        var path2 = Path.Combine(context.Directory, "archive-2.jsonl");
        var again = await AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddDays(3), path2);
        Assert.Equal(AuditArchiveFileStatus.Archived, again.Status);

        // The second file continues the first, chain by chain; read the other way round, it does not.
        await using (var second = File.OpenRead(path2))
        await using (var first = File.OpenRead(path))
        {
            var chained = await AuditExport.VerifyExportAsync(second, context.Key.PublicKeyPem, first);
            Assert.True(chained.Valid, string.Join("\n", chained.Problems));
        }

        await using (var second = File.OpenRead(path2))
        await using (var first = File.OpenRead(path))
        {
            var reversed = await AuditExport.VerifyExportAsync(first, context.Key.PublicKeyPem, second);
            Assert.Contains(reversed.Problems, p => p is { Kind: AuditProblemKind.SequenceGap, Chain: Node });
        }

        var after = await context.VerifyAsync();
        Assert.True(after.Valid, string.Join("\n", after.Problems));
        Assert.Equal(10L, after.Chains.Single(c => c.Chain == Node).LastSequence);
    }

    [Theory]
    [InlineData("record-deleted", AuditProblemKind.SequenceGap)]
    [InlineData("record-stretched", AuditProblemKind.InvalidSignature)]
    [InlineData("record-moved-to-another-chain", AuditProblemKind.SequenceGap)]
    [InlineData("first-kept-entry-deleted", AuditProblemKind.SequenceGap)]
    [InlineData("first-kept-entry-rewritten", AuditProblemKind.HashMismatch)]
    public async Task Verify_AMemberChainsArchiveTamperedWith_IsNamedWithItsChain(string tamper, AuditProblemKind kind)
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        Assert.Equal(AuditArchiveFileStatus.Archived, (await AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddDays(1), Path.Combine(context.Directory, "a.jsonl"))).Status);

        switch (tamper)
        {
            case "record-deleted": await context.ExecuteAsync("DELETE FROM audit_chain_archives WHERE chain = @chain", ("@chain", Node)); break;
            case "record-stretched": await context.ExecuteAsync("UPDATE audit_chain_archives SET seq = 6 WHERE chain = @chain", ("@chain", Node)); break;
            case "record-moved-to-another-chain": await context.ExecuteAsync("UPDATE audit_chain_archives SET chain = 'other' WHERE chain = @chain", ("@chain", Node)); break;
            case "first-kept-entry-deleted": await context.ExecuteAsync("DELETE FROM audit_chain_entries WHERE chain = @chain AND seq = 6", ("@chain", Node)); break;
            case "first-kept-entry-rewritten": await context.ExecuteAsync("UPDATE audit_chain_entries SET model = 'other' WHERE chain = @chain AND seq = 6", ("@chain", Node)); break;
            default: throw new ArgumentOutOfRangeException(nameof(tamper));
        }

        var result = await context.VerifyAsync();

        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        Assert.Contains(result.Problems, p => p.Kind == kind && p.Chain == Node);
    }

    [Fact]
    public async Task ArchiveToFile_AMemberChainRewritten_RefusesAndRemovesNothing()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await context.ExecuteAsync("UPDATE audit_chain_entries SET model = 'other' WHERE chain = @chain AND seq = 2", ("@chain", Node));
        var path = Path.Combine(context.Directory, "archive.jsonl");

        var refused = await Assert.ThrowsAsync<AuditIntegrityException>(() => AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddDays(1), path));

        Assert.Contains(refused.Problems, p => p is { Kind: AuditProblemKind.HashMismatch, Chain: Node, Sequence: 2 });
        Assert.False(File.Exists(path));
        Assert.Equal(18L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_chain_entries")); // 8 each, the announcement and the signed heads
        Assert.Equal(0L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_chain_archives"));
    }

    [Fact]
    public async Task ArchiveToFile_AWitnessTheLogNoLongerHolds_RefusesBeforeWritingAnything()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        var witness = new AuditWitnessHead(9, new string('a', 64), Start.ToUnixTimeMilliseconds(), context.Key.KeyId) { Chain = Gateway };
        var path = Path.Combine(context.Directory, "archive.jsonl");

        var refused = await Assert.ThrowsAsync<AuditIntegrityException>(() => AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddDays(1), path, witness));

        Assert.Contains(refused.Problems, p => p is { Kind: AuditProblemKind.WitnessMismatch, Chain: Gateway });
        Assert.False(File.Exists(path));
        Assert.Equal(0L, await context.ScalarAsync("SELECT COUNT(*) FROM audit_chain_archives"));
    }

    /// <summary>
    /// Day 0: the shared chain 3 entries, the gateway's 5, the node's 5 (unsigned). Day 2: 3 more each, then the
    /// gateway signs the node's chain (announcing it at its entry 9) at 8. Both logs closed: the gateway's own chain signed.
    /// </summary>
    [Fact]
    public async Task ArchiveToFile_TheSharedChainArchivedPastItsLastSignature_ItsRecordGetsACheckpoint_AndTheMemberSignerSignsOnFromIt()
    {
        // A rolling upgrade's state: the gateway on its member chain, a node of the earlier release on the shared chain;
        // the gateway signed the shared chain at 3, the node appended 4..6 since.
        await using var context = AuditTestContext.Create();
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(node, 3, "cluster-relay");
            await context.AppendManyAsync(gateway, 2);
            Assert.Equal(1, await gateway.SignMemberChainsAsync());
            await context.AppendManyAsync(node, 3, "cluster-relay");
        }

        // Everything is archived (entry 6 stays): the record at 5 is past the key's checkpoint at 3, which goes with it.
        var outcome = await AuditArchive.ArchiveToFileAsync(context.Database, context.Key, Start.AddDays(1), Path.Combine(context.Directory, "a.jsonl"));
        Assert.Equal(AuditArchiveFileStatus.Archived, outcome.Status);
        Assert.Equal(5L, outcome.Chains.Single(c => c.Chain.Chain is null).Removal.Record!.Sequence);
        Assert.Equal(5L, await context.ScalarAsync($"SELECT MAX(seq) FROM audit_checkpoints WHERE key_id = '{context.Key.KeyId}'"));

        // The node appends again; the gateway walks on from the record's checkpoint (entry 5 is gone, 6 links to it).
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(node, 1, "cluster-relay");
            Assert.Equal(1, await gateway.SignMemberChainsAsync());
        }

        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal((7L, 7L), (result.LastSequence, result.CoveredThrough));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
    }

    private static async Task SeedAsync(AuditTestContext context)
    {
        await using (var single = await context.OpenLogAsync())
        {
            await context.AppendManyAsync(single, 3, "acme");
        }

        await using var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway });
        await using var node = await context.OpenLogAsync(new AuditLogOptions { Chain = Node, SignsCheckpoints = false });
        for (var day = 0; day < 3; day += 2)
        {
            context.Time.Advance(TimeSpan.FromDays(day));
            for (var i = 0; i < (day == 0 ? 5 : 3); i++)
            {
                await gateway.AppendAsync(AuditTestContext.Inference("acme", i));
                await node.AppendAsync(AuditTestContext.Inference("cluster-relay", i));
                context.Time.Advance(TimeSpan.FromMilliseconds(1));
            }
        }

        Assert.Equal(1, await gateway.SignMemberChainsAsync());
    }
}
