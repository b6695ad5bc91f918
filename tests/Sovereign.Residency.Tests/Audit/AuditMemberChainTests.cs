using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Residency.Tests.Audit;

/// <summary>
/// Member chains (<see cref="AuditLogOptions.Chain"/>): each cluster member appends to its own hash chain, and the
/// verifier checks them together. The attacks are a database writer's (not the operator key's holder): a member's
/// chain renamed, cut at its tail, or removed whole.
/// </summary>
public sealed class AuditMemberChainTests
{
    private const string Gateway = "gw-th";
    private const string Node = "node-th-1";

    [Fact]
    public async Task MembersAppendToTheirOwnChains_AndTheGatewaySignsTheNodes_EverythingVerifiesTogether()
    {
        await using var context = AuditTestContext.Create();
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { Chain = Node, SignsCheckpoints = false }))
        {
            for (var i = 0; i < 5; i++)
            {
                var atGateway = await gateway.AppendAsync(AuditTestContext.Inference("acme", i));
                var atNode = await node.AppendAsync(AuditTestContext.Inference("cluster-relay", i));

                // Each chain counts its own sequences: the two members never wait for one lock.
                Assert.Equal((i + 1L, Gateway), (atGateway.Sequence, atGateway.Chain));
                Assert.Equal((i + 1L, Node), (atNode.Sequence, atNode.Chain));
            }

            Assert.Equal(1, await gateway.SignMemberChainsAsync());
            Assert.Equal(0, await gateway.SignMemberChainsAsync()); // the node's head is signed already
        }

        var result = await context.VerifyAsync();

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal(0, result.LastSequence); // the shared chain: nobody wrote to it
        Assert.Equal([Gateway, Node], result.Chains.Select(c => c.Chain));
        var node1 = result.Chains.Single(c => c.Chain == Node);
        Assert.Equal((5L, 5L, AuditVerdict.Trusted), (node1.LastSequence, node1.CoveredThrough, node1.Verdict));

        // The gateway's chain announces the node's, with its first entry, so that chain cannot vanish unseen.
        await using var log = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway });
        var announced = (await log.ReadAsync(1, 100)).Single(e => e.Action == AuditActions.ChainOpened);
        var first = Assert.Single(await log.ReadAsync(AuditChainScope.Member(Node), 1, 1));
        Assert.Equal(Node, announced.Details["chain"]);
        Assert.Equal(first.Hash, announced.Details["first_hash"]);
        Assert.Equal(AuditCanonical.GenesisOf(Node), first.PreviousHash);
        Assert.NotEqual(AuditCanonical.GenesisHash, first.PreviousHash);
    }

    [Fact]
    public async Task TheSharedChainCarriesOn_BesideMemberChains_AndStillVerifies()
    {
        await using var context = AuditTestContext.Create();
        await using (var single = await context.OpenLogAsync(new AuditLogOptions { CheckpointInterval = 10 }))
        {
            await context.AppendManyAsync(single, 25);
        }

        // The cluster turns member chains on: the old chain stays where it was, whole.
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        {
            await context.AppendManyAsync(gateway, 3);
        }

        var result = await context.VerifyAsync();

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal((25L, 25L), (result.LastSequence, result.CoveredThrough));
        Assert.Equal(3, Assert.Single(result.Chains).LastSequence);
        Assert.Equal(28, result.EntriesChecked);
    }

    [Fact]
    public async Task TwoProcessesOfOneMember_ExtendOneChain()
    {
        await using var context = AuditTestContext.Create();
        await using (var first = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var second = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        {
            for (var i = 0; i < 4; i++)
            {
                await first.AppendAsync(AuditTestContext.Inference("acme", i));
                await second.AppendAsync(AuditTestContext.Inference("acme", i));
            }
        }

        var result = await context.VerifyAsync();

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(8, Assert.Single(result.Chains).LastSequence);
    }

    [Fact]
    public async Task AMemberChainRemovedWhole_IsReportedMissing()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);

        foreach (var table in new[] { "audit_chain_entries", "audit_chains", "audit_chain_checkpoints" })
        {
            await context.ExecuteAsync($"DELETE FROM {table} WHERE chain = @chain", ("@chain", Node));
        }

        var result = await context.VerifyAsync();

        // Both the announcement and the gateway's record of the head it signed name the chain gone.
        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        Assert.Equal(2, result.Problems.Count);
        Assert.All(result.Problems, problem =>
        {
            Assert.Equal((AuditProblemKind.ChainMissing, Gateway), (problem.Kind, problem.Chain));
            Assert.Contains($"Chain {Node}", problem.Message, StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task AMemberChainRenamed_NoLongerLinks_AndTheAnnouncedOneIsMissing()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);

        foreach (var table in new[] { "audit_chain_entries", "audit_chains", "audit_chain_checkpoints" })
        {
            await context.ExecuteAsync($"UPDATE {table} SET chain = 'node-th-2' WHERE chain = @chain", ("@chain", Node));
        }

        var result = await context.VerifyAsync();

        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        Assert.Contains(result.Problems, p => p is { Kind: AuditProblemKind.ChainBreak, Chain: "node-th-2", Sequence: 1 });
        Assert.Contains(result.Problems, p => p is { Kind: AuditProblemKind.ChainMissing, Chain: Gateway });
    }

    [Fact]
    public async Task AMemberChainsTailCut_WithItsHeadMovedBack_IsTruncatedBelowTheGatewaysSignature()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        var head = await context.ScalarAsync($"SELECT hash FROM audit_chain_entries WHERE chain = '{Node}' AND seq = 3");

        await context.ExecuteAsync("DELETE FROM audit_chain_entries WHERE chain = @chain AND seq > 3", ("@chain", Node));
        await context.ExecuteAsync("UPDATE audit_chains SET seq = 3, hash = @hash WHERE chain = @chain", ("@chain", Node), ("@hash", head));

        var result = await context.VerifyAsync();

        // The gateway's checkpoint at 5 and its chain's record of the head it signed (5) both reach past the cut.
        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        Assert.Equal([(AuditProblemKind.Truncated, Node, 4L), (AuditProblemKind.Truncated, Node, 5L)], result.Problems.Select(p => (p.Kind, p.Chain, p.Sequence)));
    }

    [Fact]
    public async Task AMemberChainRewrittenBeforeASignature_IsNotSigned()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { Chain = Node, SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(node, 3);
        }

        // Entry 6, after the gateway's signature of entry 5 and before its next one: the head still matches.
        await context.ExecuteAsync("UPDATE audit_chain_entries SET model = 'other' WHERE chain = @chain AND seq = 6", ("@chain", Node));
        await using var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway });

        Assert.Equal(0, await gateway.SignMemberChainsAsync());
        var result = await context.VerifyAsync();
        Assert.Contains(result.Problems, p => p is { Kind: AuditProblemKind.HashMismatch, Chain: Node, Sequence: 6 });
    }

    [Fact]
    public async Task AnInterruptedProcessOnAMemberChain_HasItsOpenDecisionsFound_InItsChain()
    {
        await using var context = AuditTestContext.Create();
        await using var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway });
        await context.AppendManyAsync(gateway, 3);
        await gateway.RegisterInstanceAsync("10.0.0.1:11111@1", Gateway);
        var decision = await gateway.AppendAsync(AuditTestContext.Inference("acme", 1) with
        {
            Gateway = Gateway,
            Details = new Dictionary<string, string> { ["request_id"] = "req-1", [AuditLog.InstanceDetail] = "10.0.0.1:11111@1" },
        });

        var instance = Assert.Single(await gateway.ListUnclosedInstancesAsync());
        var open = await gateway.FindOpenDecisionsAsync(instance);

        Assert.Equal((3L, Gateway), (instance.FromSequence, instance.Chain));
        Assert.Equal(decision.Hash, Assert.Single(open.Decisions).Hash);
        Assert.Equal(4, open.CheckedThrough);
    }

    [Fact]
    public async Task AMemberSignersWitness_NamesItsChain_AndARewriteOfThatChainStopsItsNextOpen()
    {
        await using var context = AuditTestContext.Create();
        var witness = Path.Combine(context.Directory, AuditWitness.FileName);
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway, WitnessPath = witness }))
        {
            await context.AppendManyAsync(gateway, 4);
        }

        var held = AuditWitness.Read(witness);
        Assert.Equal((Gateway, 4L), (held!.Chain, held.Sequence));

        // The attacker rewrites the tail, re-hashes it, moves the head and deletes the newer checkpoints.
        await context.ExecuteAsync("DELETE FROM audit_chain_entries WHERE chain = @chain AND seq > 2", ("@chain", Gateway));
        await context.ExecuteAsync("DELETE FROM audit_chain_checkpoints WHERE chain = @chain AND seq > 2", ("@chain", Gateway));
        var hash = await context.ScalarAsync($"SELECT hash FROM audit_chain_entries WHERE chain = '{Gateway}' AND seq = 2");
        await context.ExecuteAsync("UPDATE audit_chains SET seq = 2, hash = @hash WHERE chain = @chain", ("@chain", Gateway), ("@hash", hash));

        await Assert.ThrowsAsync<AuditIntegrityException>(() => context.OpenLogAsync(new AuditLogOptions { Chain = Gateway, WitnessPath = witness }));
        var result = await AuditVerifier.VerifyAsync(context.Database, [context.Key.PublicKeyPem], new AuditVerificationOptions { Witness = held, Time = context.Time }, null);
        Assert.Contains(result.Problems, p => p is { Kind: AuditProblemKind.WitnessMismatch, Chain: Gateway });
    }

    [Fact]
    public async Task AReader_PagesEveryChainInTimeOrder_FromTheCursorOfTheLastPage()
    {
        await using var context = AuditTestContext.Create();
        await using (var single = await context.OpenLogAsync())
        {
            await context.AppendManyAsync(single, 2, "acme");
        }

        await SeedAsync(context); // five entries each on the gateway's and the node's chains, a millisecond apart
        await using var log = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway });
        var all = await log.ReadAsync(new AuditQuery());

        // The shared chain's two first, then the members' by time, the gateway's before the node's at one time.
        Assert.Equal(
            [(null, 1L), (null, 2L), (Gateway, 1L), (Node, 1L), (Gateway, 2L), (Node, 2L)],
            all.Take(6).Select(e => (e.Chain, e.Sequence)));
        Assert.Equal(14, all.Count); // and the gateway's announcement of the node's chain, and its record of the head it signed
        Assert.Equal(all.Select(e => e.Timestamp).Order(), all.Select(e => e.Timestamp));

        foreach (var newestFirst in new[] { false, true })
        {
            var paged = new List<AuditEntry>();
            AuditEntry? last = null;
            do
            {
                var page = await log.ReadAsync(new AuditQuery
                {
                    Limit = 3,
                    NewestFirst = newestFirst,
                    After = newestFirst ? null : last?.Sequence,
                    Before = newestFirst ? last?.Sequence : null,
                    CursorChain = last?.Chain,
                });
                paged.AddRange(page);
                last = page.Count == 3 ? page[^1] : null;
            }
            while (last is not null);

            Assert.Equal(newestFirst ? all.Reverse().Select(e => e.Hash) : all.Select(e => e.Hash), paged.Select(e => e.Hash));
        }

        var acme = await log.ReadAsync(new AuditQuery { Tenant = "cluster-relay" });
        Assert.Equal(5, acme.Count);
        Assert.All(acme, e => Assert.Equal(Node, e.Chain));
    }

    [Fact]
    public async Task AMemberChainsTailRewritten_AfterTheCheckpointThereWasDeleted_IsCaughtByTheHeadTheSignersChainRecorded()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { Chain = Node, SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(node, 3, "cluster-relay");
            Assert.Equal(1, await gateway.SignMemberChainsAsync()); // the node's head 8, recorded in the gateway's chain
        }

        // The attacker deletes the gateway's checkpoint at 8, rewrites 6..8 and re-hashes them from the checkpoint at 5,
        // which still holds: the node's chain links and verifies on its own.
        await context.ExecuteAsync("DELETE FROM audit_chain_checkpoints WHERE chain = @chain AND seq > 5", ("@chain", Node));
        await RewriteFromAsync(context, Node, 6);

        var result = await context.VerifyAsync();
        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        var problem = Assert.Single(result.Problems);
        Assert.Equal((AuditProblemKind.WitnessMismatch, Node, 8L), (problem.Kind, problem.Chain, problem.Sequence));
        Assert.Contains($"chain {Gateway} entry", problem.Message, StringComparison.Ordinal);

        // The gateway signs nothing over the rewrite, and an export refuses it.
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        {
            Assert.Equal(0, await gateway.SignMemberChainsAsync());
        }

        var refused = await Assert.ThrowsAsync<AuditIntegrityException>(() =>
            AuditClusterExport.WriteAsync(context.Database, context.Key, null, DateTimeOffset.UnixEpoch, context.Time.GetUtcNow().AddHours(1), Stream.Null, null));
        Assert.Contains(refused.Problems, p => p is { Kind: AuditProblemKind.WitnessMismatch, Chain: Node });
    }

    [Fact]
    public async Task AMemberChainsTailCut_WithTheCheckpointThereDeleted_IsTruncatedAtTheHeadTheSignersChainRecorded()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { Chain = Node, SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(node, 3, "cluster-relay");
            Assert.Equal(1, await gateway.SignMemberChainsAsync());
        }

        var hash = await context.ScalarAsync($"SELECT hash FROM audit_chain_entries WHERE chain = '{Node}' AND seq = 6");
        await context.ExecuteAsync("DELETE FROM audit_chain_checkpoints WHERE chain = @chain AND seq > 5", ("@chain", Node));
        await context.ExecuteAsync("DELETE FROM audit_chain_entries WHERE chain = @chain AND seq > 6", ("@chain", Node));
        await context.ExecuteAsync("UPDATE audit_chains SET seq = 6, hash = @hash WHERE chain = @chain", ("@chain", Node), ("@hash", hash));

        var result = await context.VerifyAsync();

        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        var problem = Assert.Single(result.Problems);
        Assert.Equal((AuditProblemKind.Truncated, Node, 8L), (problem.Kind, problem.Chain, problem.Sequence));
    }

    [Fact]
    public async Task TheSignersRecordOfTheHeadsItSigned_ListsEveryChainItSigned_AndVerifies()
    {
        await using var context = AuditTestContext.Create();
        await SeedAsync(context);
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var other = await context.OpenLogAsync(new AuditLogOptions { Chain = "node-th-2", SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(other, 2, "cluster-relay");
            Assert.Equal(1, await gateway.SignMemberChainsAsync());
            var newest = (await gateway.ReadAsync(1, 100)).Last(e => e.Action == AuditActions.ChainsSigned);
            var node5 = await context.ScalarAsync($"SELECT hash FROM audit_chain_entries WHERE chain = '{Node}' AND seq = 5");
            var other2 = await context.ScalarAsync("SELECT hash FROM audit_chain_entries WHERE chain = 'node-th-2' AND seq = 2");

            // The node's head from the earlier signing, and the new chain's.
            Assert.Equal([("chain:" + Node, $"5:{node5}"), ("chain:node-th-2", $"2:{other2}")], newest.Details.OrderBy(d => d.Key, StringComparer.Ordinal).Select(d => (d.Key, d.Value)));
        }

        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
    }

    [Fact]
    public async Task AGatewaysFirstUpgradeWalk_TheSharedChainsTailFromEarlierReleaseNodes_IsSignedByTheGatewayOnItsMemberChain_AndTheLogEndsTrusted()
    {
        await using var context = AuditTestContext.Create();

        // Before the walk: the gateway and the node both on the shared chain, the gateway signing it.
        await using (var gateway = await context.OpenLogAsync())
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(gateway, 3);
            await context.AppendManyAsync(node, 3, "cluster-relay");
            Assert.NotNull(await gateway.CheckpointAsync());
        }

        // The gateway moves to its member chain first; the node, still of the earlier release (the shared-chain mode),
        // keeps appending to the shared chain, which no shared-chain signer covers any more.
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(node, 4, "cluster-relay");
            await context.AppendManyAsync(gateway, 2);
            Assert.Equal(1, await gateway.SignMemberChainsAsync()); // the shared chain's head, 10
            await context.AppendManyAsync(node, 1, "cluster-relay");
            Assert.Equal(1, await gateway.SignMemberChainsAsync()); // moved again: 11
            Assert.Equal(0, await gateway.SignMemberChainsAsync());
        }

        // Then the node moves too: the shared chain grows no more, its tail signed before.
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { Chain = Node, SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(node, 2, "cluster-relay");
            Assert.Equal(1, await gateway.SignMemberChainsAsync()); // the node's chain; the shared one is signed already
            var recorded = (await gateway.ReadAsync(1, 100)).Last(e => e.Action == AuditActions.ChainsSigned);
            var shared11 = await context.ScalarAsync("SELECT hash FROM audit_entries WHERE seq = 11");
            Assert.Equal($"11:{shared11}", recorded.Details[AuditActions.ChainsSignedShared]);
        }

        // Verified long after (the entries are dated 2025): nothing is left to age.
        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal((11L, 11L, 0L), (result.LastSequence, result.CoveredThrough, result.Uncovered));
        Assert.Equal(AuditVerdict.Trusted, result.SharedVerdict);
        Assert.All(result.Chains, c => Assert.Equal(AuditVerdict.Trusted, c.Verdict));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
    }

    [Fact]
    public async Task TheSharedChainsTailRewritten_AfterTheMemberSignersCheckpointThereWasDeleted_IsNotSigned_AndIsTamperedAtTheHeadItsChainRecorded()
    {
        await using var context = AuditTestContext.Create();
        await SignSharedTailTwiceAsync(context); // the shared chain's head 6, recorded in the gateway's chain

        // The attacker deletes the checkpoint at 6 and rewrites 4..6 from the one at 3, which still holds: the shared
        // chain links and verifies on its own.
        await context.ExecuteAsync("DELETE FROM audit_checkpoints WHERE seq > 3");
        await RewriteSharedFromAsync(context, 4);

        // The gateway walks on from the head its chain recorded, not from the checkpoint at 3: the rewrite stays unsigned.
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        {
            Assert.Equal(0, await gateway.SignMemberChainsAsync());
        }

        // And every verifier reads the same record: the rewrite is tampering, not a tail waiting to be signed.
        var result = await context.VerifyAsync();
        Assert.Equal((3L, 3L), (result.CoveredThrough, result.Uncovered));
        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        var problem = Assert.Single(result.Problems);
        Assert.Equal((AuditProblemKind.WitnessMismatch, (string?)null, 6L), (problem.Kind, problem.Chain, problem.Sequence));
        Assert.Contains($"chain {Gateway} entry", problem.Message, StringComparison.Ordinal);
        Assert.Contains("entry 6 of the shared chain", problem.Message, StringComparison.Ordinal);

        var refused = await Assert.ThrowsAsync<AuditIntegrityException>(() =>
            AuditClusterExport.WriteAsync(context.Database, context.Key, null, DateTimeOffset.UnixEpoch, context.Time.GetUtcNow().AddHours(1), Stream.Null, null));
        Assert.Contains(refused.Problems, p => p is { Kind: AuditProblemKind.WitnessMismatch, Chain: null, Sequence: 6 });
    }

    [Fact]
    public async Task TheSharedChainsTailCut_WithTheCheckpointThereDeleted_IsTruncatedAtTheHeadTheSignersChainRecorded()
    {
        await using var context = AuditTestContext.Create();
        await SignSharedTailTwiceAsync(context);

        // Entries 5 and 6 removed, the checkpoint at 6 with them, the head moved back to 4: what is left links.
        await context.ExecuteAsync("DELETE FROM audit_checkpoints WHERE seq > 3");
        await context.ExecuteAsync("DELETE FROM audit_entries WHERE seq > 4");
        await context.ExecuteAsync("UPDATE audit_head SET seq = 4, hash = (SELECT hash FROM audit_entries WHERE seq = 4) WHERE id = 1");

        var result = await context.VerifyAsync();
        Assert.Equal(AuditVerdict.Tampered, result.Verdict);
        var problem = Assert.Single(result.Problems);
        Assert.Equal((AuditProblemKind.Truncated, (string?)null, 6L), (problem.Kind, problem.Chain, problem.Sequence));
        Assert.Contains("no longer holds it", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AClusterOfTwoMemberSigners_AnEarlierReleaseNodeOnTheSharedChain_AndAMemberNode_EveryWitnessHolds_AndTheLogIsTrusted()
    {
        await using var context = AuditTestContext.Create();
        var witnesses = 0;
        await using (var first = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var second = await context.OpenLogAsync(new AuditLogOptions { Chain = "gw-th-2" }))
        await using (var earlier = await context.OpenLogAsync(new AuditLogOptions { SignsCheckpoints = false }))
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { Chain = Node, SignsCheckpoints = false }))
        {
            // Six signing rounds, the two taking turns to sign first (one operator key: the first to sign a head signs
            // it for both), each recording every head it signed, the shared chain's included.
            for (var round = 0; round < 6; round++)
            {
                await context.AppendManyAsync(earlier, 2, "cluster-relay");
                await context.AppendManyAsync(node, 1, "cluster-relay");
                await context.AppendManyAsync(round % 2 == 0 ? first : second, 1);
                foreach (var signer in round % 2 == 0 ? new[] { first, second } : [second, first])
                {
                    Assert.True(await signer.SignMemberChainsAsync() > 0);
                }

                context.Time.Advance(TimeSpan.FromSeconds(1));
            }

            var shared = new List<string>();
            foreach (var signer in new[] { first, second })
            {
                var recorded = (await signer.ReadAsync(1, 1000)).Where(e => e.Action == AuditActions.ChainsSigned).ToList();
                shared.AddRange(recorded.Where(e => e.Details.ContainsKey(AuditActions.ChainsSignedShared)).Select(e => e.Details[AuditActions.ChainsSignedShared]));
                witnesses += recorded.Count;
            }

            // The last round's first signer signed the shared head 12; the other recorded 10, signed the round before.
            Assert.Equal($"12:{await context.ScalarAsync("SELECT hash FROM audit_entries WHERE seq = 12")}", shared[^1]);
            Assert.Contains($"10:{await context.ScalarAsync("SELECT hash FROM audit_entries WHERE seq = 10")}", shared);
            Assert.Equal(11, shared.Count);
        }

        Assert.Equal(12, witnesses);
        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal((12L, 12L), (result.LastSequence, result.CoveredThrough));

        // The export of the whole log, read back offline, finds every witness as the log does.
        using var file = new MemoryStream();
        await AuditClusterExport.WriteAsync(context.Database, context.Key, null, DateTimeOffset.UnixEpoch, context.Time.GetUtcNow().AddHours(1), file, null);
        file.Position = 0;
        var exported = await AuditExport.VerifyExportAsync(file, context.Key.PublicKeyPem);
        Assert.True(exported.Valid, string.Join("\n", exported.Problems));
    }

    [Fact]
    public async Task AMemberChainNoSignerSignedYet_IsJudgedByTheAgeOfItsEntries_AsAnUncoveredTailIs()
    {
        await using var context = AuditTestContext.Create();
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway }))
        await using (var node = await context.OpenLogAsync(new AuditLogOptions { Chain = Node, SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(gateway, 2);
            Assert.NotNull(await gateway.CheckpointAsync());
            await context.AppendManyAsync(node, 3, "cluster-relay"); // before any gateway's signing of the node's chain
        }

        // A minute after: the node's chain waits for its first signature, as any tail waits for the next checkpoint.
        context.Time.Advance(TimeSpan.FromMinutes(1));
        var young = await AuditVerifier.VerifyAsync(context.Database, [context.Key.PublicKeyPem], new AuditVerificationOptions { Time = context.Time }, null);
        var chain = young.Chains.Single(c => c.Chain == Node);
        Assert.Equal((3L, 0L, 3L, AuditVerdict.Trusted), (chain.LastSequence, chain.CoveredThrough, chain.Uncovered, chain.Verdict));
        Assert.Equal(AuditVerdict.Trusted, young.Verdict);

        // Past the bound: uncovered, as a tail would be.
        context.Time.Advance(AuditVerificationOptions.DefaultMaxUncoveredAge);
        var old = await AuditVerifier.VerifyAsync(context.Database, [context.Key.PublicKeyPem], new AuditVerificationOptions { Time = context.Time }, null);
        Assert.Equal(AuditVerdict.Uncovered, old.Chains.Single(c => c.Chain == Node).Verdict);
        Assert.Equal(AuditVerdict.Uncovered, old.Verdict);

        // The shared chain with no checkpoint at all stays uncovered at once: its writers sign it themselves.
        await using (var single = await context.OpenLogAsync(new AuditLogOptions { SignsCheckpoints = false }))
        {
            await context.AppendManyAsync(single, 1);
        }

        var shared = await AuditVerifier.VerifyAsync(context.Database, [context.Key.PublicKeyPem], new AuditVerificationOptions { Time = context.Time }, null);
        Assert.Equal(AuditVerdict.Uncovered, shared.SharedVerdict);
    }

    /// <summary>
    /// A gateway on its member chain signs the shared chain (an earlier-release node's entries) twice: its checkpoints
    /// at 3 and 6, and the head 6 recorded as <c>shared</c> in its newest <see cref="AuditActions.ChainsSigned"/> entry.
    /// </summary>
    private static async Task SignSharedTailTwiceAsync(AuditTestContext context)
    {
        await using var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway });
        await using var node = await context.OpenLogAsync(new AuditLogOptions { SignsCheckpoints = false });
        await context.AppendManyAsync(node, 3, "cluster-relay");
        Assert.Equal(1, await gateway.SignMemberChainsAsync());
        await context.AppendManyAsync(node, 3, "cluster-relay");
        Assert.Equal(1, await gateway.SignMemberChainsAsync());
    }

    /// <summary>The shared chain's entries from <paramref name="from"/> on rewritten and re-hashed, its head moved: no key needed.</summary>
    private static async Task RewriteSharedFromAsync(AuditTestContext context, long from)
    {
        var entries = await AuditStore.ReadEntriesAsync(context.Database, "WHERE seq >= @from ORDER BY seq", c => SqlDatabase.AddParameter(c, "@from", from - 1), CancellationToken.None);
        var previous = entries[0].Hash;
        foreach (var entry in entries.Skip(1))
        {
            var hash = AuditCanonical.EntryHash(entry with { Model = "other", PreviousHash = previous });
            await context.ExecuteAsync("UPDATE audit_entries SET model = 'other', previous_hash = @previous, hash = @hash WHERE seq = @seq",
                ("@previous", previous), ("@hash", hash), ("@seq", entry.Sequence));
            previous = hash;
        }

        await context.ExecuteAsync("UPDATE audit_head SET hash = @hash WHERE id = 1", ("@hash", previous));
    }

    /// <summary>What a database writer without the key can do: rewrite a chain's entries from one on, re-hash them, move the head.</summary>
    private static async Task RewriteFromAsync(AuditTestContext context, string chain, long from)
    {
        await using var log = await context.OpenLogAsync(new AuditLogOptions { Chain = chain, SignsCheckpoints = false });
        var entries = await log.ReadAsync(AuditChainScope.Member(chain), 1, long.MaxValue);
        var previous = entries.Single(e => e.Sequence == from - 1).Hash;
        foreach (var entry in entries.Where(e => e.Sequence >= from))
        {
            var rewritten = entry with { Model = "other", PreviousHash = previous };
            var hash = AuditCanonical.EntryHash(rewritten);
            await context.ExecuteAsync("UPDATE audit_chain_entries SET model = 'other', previous_hash = @previous, hash = @hash WHERE chain = @chain AND seq = @seq",
                ("@previous", previous), ("@hash", hash), ("@chain", chain), ("@seq", entry.Sequence));
            previous = hash;
        }

        await context.ExecuteAsync("UPDATE audit_chains SET hash = @hash WHERE chain = @chain", ("@hash", previous), ("@chain", chain));
    }

    /// <summary>A gateway and a node, five entries each, the node's chain signed by the gateway, both closed.</summary>
    private static async Task SeedAsync(AuditTestContext context)
    {
        await using var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = Gateway });
        await using var node = await context.OpenLogAsync(new AuditLogOptions { Chain = Node, SignsCheckpoints = false });
        for (var i = 0; i < 5; i++)
        {
            await gateway.AppendAsync(AuditTestContext.Inference("acme", i));
            await node.AppendAsync(AuditTestContext.Inference("cluster-relay", i));
            context.Time.Advance(TimeSpan.FromMilliseconds(1));
        }

        Assert.Equal(1, await gateway.SignMemberChainsAsync());
    }
}
