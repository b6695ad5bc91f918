using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;
using Sovereign.Storage;
using Sovereign.Tests;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// An auditor handed a cluster's export (version 3, every member chain) checks it with <c>tools/audit-verify.mjs</c>,
/// written from FORMAT.md alone, and must reach what <c>sovereign audit verify-export</c> reaches: the same problem
/// kinds, on the same chains, and the same verdict, for the file as written and for each way it can be tampered with.
/// The log is what a gateway and a node of a cluster on member chains leave (the node's chain signed and witnessed by
/// the gateway, two node entries after that signature); the file is written by <c>sovereign audit export</c>.
/// </summary>
public sealed class IndependentMemberChainVerifierTests : IAsyncLifetime
{
    internal const string Gateway = "gw-th";
    internal const string Node = "node-th-1";
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-chains-auditor-").FullName;

    private string DatabasePath => Path.Combine(_directory, "sovereign.db");

    private string PublicKey => Path.Combine(_directory, "operator.pub.pem");

    public async Task InitializeAsync()
    {
        await MemberChainLog.WriteAsync(_directory);
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", _directory);
        Assert.True(exit == 0, stderr);
        await File.WriteAllTextAsync(PublicKey, stdout);
    }

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task AuditVerifyMjs_ClusterExport_AsWrittenAndForATenant_Verifies_AsVerifyExportDoes()
    {
        var export = await ExportAsync("all.jsonl");
        Assert.Contains("\"version\":3", File.ReadLines(export).First(), StringComparison.Ordinal);
        var (exit, report) = await AgreeAsync(export);
        Assert.Equal(0, exit);
        Assert.Equal("trusted", report["verdict"]!.GetValue<string>());
        var chains = report["chains"]!.AsArray();
        Assert.Equal([null, Gateway, Node], chains.Select(c => c!["chain"]?.GetValue<string>()));
        var node = chains[2]!;
        Assert.Equal((6L, 4L, 2L), (node["lastSequence"]!.GetValue<long>(), node["coveredThrough"]!.GetValue<long>(), node["uncovered"]!.GetValue<long>()));

        // A tenant's export: the other tenants' entries are hash-only lines, in both chains.
        var tenant = await ExportAsync("acme.jsonl", "--tenant", "acme");
        Assert.Contains(File.ReadLines(tenant), l => l.Contains("\"type\":\"redacted\"", StringComparison.Ordinal));
        (exit, _) = await AgreeAsync(tenant);
        Assert.Equal(0, exit);
    }

    [Fact]
    public async Task AuditVerifyMjs_ClusterExportsBeforeAndAfterARotation_VerifyWithTheKeyHistory_AndACompromisedKeyIsRefused_AsVerifyExportDoes()
    {
        var before = await ExportAsync("before.jsonl");
        var (exit, stdout, stderr) = await CliProcess.RunAsync("operator-key", "rotate", "--data-dir", _directory);
        Assert.True(exit == 0, stdout + stderr);
        var after = await ExportAsync("after.jsonl");
        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", _directory);
        Assert.True(exit == 0, stderr);
        await File.WriteAllTextAsync(PublicKey, stdout);
        var history = OperatorKeyHistory.Parse(stdout);
        Assert.Equal(2, history.Keys.Count);

        // Signed by the retired key: it verifies, and the report says that key signed its checkpoint lines.
        var (verified, report) = await AgreeAsync(before);
        Assert.Equal(0, verified);
        Assert.Equal([(history.Keys[0].KeyId, "retired")], report["signedBy"]!.AsArray().Select(u => (u!["keyId"]!.GetValue<string>(), u["status"]!.GetValue<string>())));
        // Signed by the new key, which has signed no checkpoint of the log yet: intact and signed, its coverage the log's.
        (verified, _) = await AgreeAsync(after);
        Assert.NotEqual(3, verified);

        (exit, stdout, stderr) = await CliProcess.RunAsync("operator-key", "compromised", history.Keys[0].KeyId, "--from", "2020-01-01T00:00:00Z", "--data-dir", _directory);
        Assert.True(exit == 0, stdout + stderr);
        (_, stdout, _) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", _directory);
        await File.WriteAllTextAsync(PublicKey, stdout);
        (verified, report) = await AgreeAsync(before);
        Assert.Equal(3, verified);
        Assert.Contains(report["problems"]!.AsArray(), p => p!["kind"]!.GetValue<string>() == "CompromisedKey");
        (verified, _) = await AgreeAsync(after);
        Assert.NotEqual(3, verified);
    }

    [Fact]
    public async Task AuditVerifyMjs_TamperedClusterExports_AreRejectedWithVerifyExportsProblemKinds()
    {
        var export = await ExportAsync("all.jsonl");
        var lines = (await File.ReadAllLinesAsync(export)).ToList();
        var variants = ClusterExportTampering.Variants(lines, Path.Combine(_directory, "operator-key.pem"));
        Assert.Equal(ClusterExportTampering.Expected.Keys.Order(), variants.Keys.Order());
        foreach (var (name, tampered) in variants)
        {
            var path = Path.Combine(_directory, name + ".jsonl");
            await File.WriteAllLinesAsync(path, tampered);
            var (exit, report) = await AgreeAsync(path);
            Assert.True(exit == 3, $"{name}: {report}");
            var kinds = report["problems"]!.AsArray().Select(p => p!["kind"]!.GetValue<string>()).ToList();
            Assert.True(kinds.Contains(ClusterExportTampering.Expected[name]), $"{name}: {string.Join(", ", kinds)}");
        }
    }

    [Fact]
    public async Task AuditVerifyMjs_ArchiveFilesOfSeveralChains_ContinueEachOther_AndABrokenPreviousFileIsCaught()
    {
        // Everything written so far goes to the archive file (each chain keeps its newest entry); the log then grows and
        // the next export continues each chain from it.
        var archive = Path.Combine(_directory, "archive.jsonl");
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "archive", "--data-dir", _directory, "--database", DatabasePath,
            "--before", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture), "-o", archive);
        Assert.True(exit == 0, stdout + stderr);
        await MemberChainLog.AppendAsync(_directory, 2);
        var next = await ExportAsync("next.jsonl");

        (exit, var report) = await AgreeAsync(next, archive);
        Assert.True(exit == 0, report.ToJsonString());

        // The earlier file altered: it does not verify on its own, so neither does the pair.
        var lines = await File.ReadAllLinesAsync(archive);
        var edited = Path.Combine(_directory, "archive-edited.jsonl");
        await File.WriteAllLinesAsync(edited, lines.Select(l => l.Contains("\"type\":\"entry\"", StringComparison.Ordinal) ? l.Replace("\"jurisdiction\":\"TH\"", "\"jurisdiction\":\"SG\"", StringComparison.Ordinal) : l));
        (exit, report) = await AgreeAsync(next, edited);
        Assert.Equal(3, exit);
        Assert.Contains(report["problems"]!.AsArray(), p => p!["kind"]!.GetValue<string>() == "Malformed" && p["what"]!.GetValue<string>().StartsWith("The previous file does not verify", StringComparison.Ordinal));

        // A file that does not follow the one given (the export follows itself): each chain restarts where it stood.
        (exit, report) = await AgreeAsync(next, next);
        Assert.Equal(3, exit);
    }

    [Fact]
    public async Task AuditVerifyMjs_AMemberChainNoSignerSignedYet_IsJudgedByTheAgeOfItsEntries_AsVerifyExportDoes()
    {
        // A node's first entries on its own chain, exported before any gateway signed it: a tail waiting for its first
        // signature, trusted while young, as entries after a checkpoint are.
        await MemberChainLog.AppendUnsignedAsync(_directory, "node-th-2", DateTimeOffset.UtcNow);
        var (exit, report) = await AgreeAsync(await ExportAsync("young.jsonl"));
        Assert.True(exit == 0, report.ToJsonString());
        var young = report["chains"]!.AsArray().Single(c => c!["chain"]?.GetValue<string>() == "node-th-2")!;
        Assert.Equal((2L, 0L, 2L, "trusted"), (young["lastSequence"]!.GetValue<long>(), young["coveredThrough"]!.GetValue<long>(), young["uncovered"]!.GetValue<long>(), young["verdict"]!.GetValue<string>()));

        // One whose entries are older than the bound (10 minutes at the export's createdAt): uncovered, exit 5.
        await MemberChainLog.AppendUnsignedAsync(_directory, "node-th-3", DateTimeOffset.UtcNow.AddMinutes(-20));
        (exit, report) = await AgreeAsync(await ExportAsync("old.jsonl"));
        Assert.True(exit == 5, report.ToJsonString());
        Assert.Equal("uncovered", report["chains"]!.AsArray().Single(c => c!["chain"]?.GetValue<string>() == "node-th-3")!["verdict"]!.GetValue<string>());
        Assert.Equal("trusted", report["chains"]!.AsArray().Single(c => c!["chain"]?.GetValue<string>() == "node-th-2")!["verdict"]!.GetValue<string>());
    }

    [Fact]
    public async Task AuditVerify_TheSharedTailRewrittenAfterItsWitnessedHead_Exits3NamingIt_AndAuditExportRefusesToSignIt()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory, "--database", DatabasePath, "--no-witness");
        Assert.True(exit == 0, stdout + stderr);

        await MemberChainLog.RewriteSharedTailAsync(_directory);

        // The shared chain links and its own walk finds nothing (covered through 2, 3..4 young): the gateway's `shared`
        // witness makes it tampered, exit 3, as verify-export, the script and the console say of such a file.
        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory, "--database", DatabasePath, "--no-witness", "--json");
        Assert.True(exit == 3, stdout + stderr);
        var report = JsonNode.Parse(stdout)!.AsObject();
        var problem = Assert.Single(report["problems"]!.AsArray());
        Assert.Equal(("WitnessMismatch", null, 4L), (problem!["kind"]!.GetValue<string>(), problem["chain"]?.GetValue<string>(), problem["sequence"]!.GetValue<long>()));

        var path = Path.Combine(_directory, "refused.jsonl");
        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", _directory, "--database", DatabasePath, "-o", path);
        Assert.True(exit == 3, stdout + stderr);
        Assert.Contains("WitnessMismatch", stdout + stderr, StringComparison.Ordinal);
        // Nothing under the name an auditor was to be given (an empty file was left there), nor beside it.
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.EnumerateFiles(_directory, "*refused.jsonl*"));
    }

    [Fact]
    public async Task Earlier_TwoExportsOfTheClustersLog_Agree_AndANodeEntryStatedOtherwiseIsNamedWithItsChain_ByBothVerifiers()
    {
        var earlier = await ExportAsync("earlier.jsonl");
        var later = await ExportAsync("later.jsonl");
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", later, "--public-key", PublicKey, "--earlier", earlier);
        Assert.True(exit == 0, stdout + stderr);
        Assert.Contains("It agrees with the earlier export earlier.jsonl", stdout, StringComparison.Ordinal);
        Assert.Contains("The file holds every tenant's entries since the log's start up to (not including) ", stdout, StringComparison.Ordinal);
        var (mjsExit, mjsOut, mjsErr) = await AuditVerifyScript.RunSplitAsync(later, PublicKey, "--earlier", earlier);
        Assert.True(mjsExit == 0, mjsOut + mjsErr);

        // The node's entry 2 stated with another hash in the later file (its own walk breaks too).
        var lines = (await File.ReadAllLinesAsync(later)).ToList();
        var section = lines.FindIndex(l => l.StartsWith("{\"type\":\"chain\"", StringComparison.Ordinal) && l.Contains(Node, StringComparison.Ordinal));
        var at = lines.FindIndex(section, l => l.StartsWith("{\"type\":\"entry\",\"sequence\":2,", StringComparison.Ordinal));
        var entry = JsonNode.Parse(lines[at])!.AsObject();
        entry["hash"] = new string('c', 64);
        lines[at] = entry.ToJsonString(new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        var changed = Path.Combine(_directory, "changed.jsonl");
        await File.WriteAllLinesAsync(changed, lines);

        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", changed, "--public-key", PublicKey, "--earlier", earlier);
        Assert.True(exit == 3, stdout + stderr);
        Assert.Contains($"chain {Node}, seq 2: WitnessMismatch: The earlier export", stdout, StringComparison.Ordinal);
        (mjsExit, mjsOut, mjsErr) = await AuditVerifyScript.RunSplitAsync(changed, PublicKey, "--earlier", earlier);
        Assert.True(mjsExit == 3, mjsOut + mjsErr);
        Assert.Contains($"PROBLEM chain {Node}, sequence 2: WitnessMismatch: the earlier export", mjsOut, StringComparison.Ordinal);
    }

    /// <summary>Runs both verifiers on one file; they must agree on the exit code, the verdicts and every problem's kind and chain.</summary>
    private async Task<(int Exit, JsonObject Report)> AgreeAsync(string export, string? previous = null)
    {
        var pem = await File.ReadAllTextAsync(PublicKey);
        AuditVerificationResult expected;
        await using (var input = File.OpenRead(export))
        {
            if (previous is null)
            {
                expected = await AuditExport.VerifyExportAsync(input, pem);
            }
            else
            {
                await using var before = File.OpenRead(previous);
                expected = await AuditExport.VerifyExportAsync(input, pem, before);
            }
        }

        var (exit, stdout, stderr) = await AuditVerifyScript.RunSplitAsync(export, PublicKey, ["--json", .. previous is null ? Array.Empty<string>() : ["--previous", previous]]);
        Assert.True(stdout.Length > 0, stderr);
        var report = JsonNode.Parse(stdout)!.AsObject();
        var because = $"verify-export: {string.Join(" | ", expected.Problems)}\naudit-verify.mjs: {stdout}";
        Assert.True(ExitOf(expected) == exit, because);
        Assert.True(string.Equals(expected.Verdict.ToString(), report["verdict"]?.GetValue<string>(), StringComparison.OrdinalIgnoreCase), because);
        Assert.True(ClusterExportTampering.KindsOf(expected).SequenceEqual(
            report["problems"]!.AsArray().Select(p => $"{p!["chain"]?.GetValue<string>() ?? "(shared)"}:{p["kind"]?.GetValue<string>()}").Order(StringComparer.Ordinal)), because);
        var chains = report["chains"]?.AsArray() ?? [];
        Assert.True(expected.Chains.Select(c => $"{c.Chain}:{c.Verdict}:{c.LastSequence}:{c.CoveredThrough}:{c.Uncovered}".ToLowerInvariant())
            .SequenceEqual(chains.Skip(1).Select(c => $"{c!["chain"]}:{c["verdict"]}:{c["lastSequence"]}:{c["coveredThrough"]}:{c["uncovered"]}".ToLowerInvariant())), because);
        return (exit, report);
    }

    private static int ExitOf(AuditVerificationResult result) => !result.Valid ? 3 : result.Verdict == AuditVerdict.Uncovered ? 5 : 0;

    private async Task<string> ExportAsync(string name, params string[] more)
    {
        var path = Path.Combine(_directory, name);
        var (exit, stdout, stderr) = await CliProcess.RunAsync(["audit", "export", "--data-dir", _directory, "--database", DatabasePath, "-o", path, .. more]);
        Assert.True(exit == 0, stdout + stderr);
        return path;
    }
}

/// <summary>What a gateway and a node of a cluster on member chains leave in the log (one SQLite file, to look at it).</summary>
internal static class MemberChainLog
{
    public static async Task WriteAsync(string directory)
    {
        var database = SqlDatabase.Sqlite(Path.Combine(directory, "sovereign.db"));
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(directory, "operator-key.pem"));
        await using var gateway = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = IndependentMemberChainVerifierTests.Gateway });
        await using var node = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = IndependentMemberChainVerifierTests.Node, SignsCheckpoints = false });
        await using var earlier = await AuditLog.OpenAsync(database, key, new AuditLogOptions { SignsCheckpoints = false });
        for (var i = 0; i < 4; i++)
        {
            await gateway.AppendAsync(Record(i % 2 == 0 ? "acme" : "globex", IndependentMemberChainVerifierTests.Gateway));
            await node.AppendAsync(Record("cluster-relay", IndependentMemberChainVerifierTests.Node));

            // A node of the earlier release (mid-upgrade) still appends to the shared chain, which the gateway signs
            // too, recording the head it signed as `shared` in its audit.chains_signed entries: 2, then 4.
            await earlier.AppendAsync(Record("cluster-relay", "node-th-old"));
            if (i == 1)
            {
                Assert.Equal(2, await gateway.SignMemberChainsAsync());
            }
        }

        // The gateway signs the node's chain through entry 4 (announced in audit.chain_opened at the first signing) and
        // the shared chain through entry 4 (audit.chains_signed); the node's entries 5 and 6 come after that signature.
        Assert.Equal(2, await gateway.SignMemberChainsAsync());
        await node.AppendAsync(Record("cluster-relay", IndependentMemberChainVerifierTests.Node));
        await node.AppendAsync(Record("cluster-relay", IndependentMemberChainVerifierTests.Node));

        // The tenant the auditor asks for exists (audit export --tenant refuses one the database does not hold).
        await database.MigrateAsync(ControlPlaneStore.Migrations);
        await new ControlPlaneStore(database).UpsertTenantAsync(new TenantRecord("acme", "Acme", "{}", "default", false, 0, 0));
    }

    /// <summary>More entries in both chains, signed again.</summary>
    public static async Task AppendAsync(string directory, int count)
    {
        var database = SqlDatabase.Sqlite(Path.Combine(directory, "sovereign.db"));
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(directory, "operator-key.pem"));
        await using var gateway = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = IndependentMemberChainVerifierTests.Gateway });
        await using var node = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = IndependentMemberChainVerifierTests.Node, SignsCheckpoints = false });
        for (var i = 0; i < count; i++)
        {
            await gateway.AppendAsync(Record("acme", IndependentMemberChainVerifierTests.Gateway));
            await node.AppendAsync(Record("cluster-relay", IndependentMemberChainVerifierTests.Node));
        }

        await gateway.SignMemberChainsAsync();
    }

    /// <summary>
    /// A database writer's attack on the log <see cref="WriteAsync"/> left: the checkpoint at the shared chain's head 4
    /// deleted, entries 3..4 rewritten and re-hashed from the checkpoint at 2, the head moved. No key needed; only the
    /// gateway's `shared` witness (entry 4's old hash) shows it.
    /// </summary>
    public static async Task RewriteSharedTailAsync(string directory)
    {
        var path = Path.Combine(directory, "sovereign.db");
        var entries = await AuditStore.ReadEntriesAsync(SqlDatabase.Sqlite(path), "WHERE seq >= 2 ORDER BY seq", _ => { }, CancellationToken.None);
        await using (var connection = new SqliteConnection($"Data Source={path}"))
        {
            await connection.OpenAsync();
            var previous = entries[0].Hash;
            foreach (var entry in entries.Skip(1))
            {
                var hash = AuditCanonical.EntryHash(entry with { DecisionCode = "model_not_allowed", PreviousHash = previous });
                using var command = connection.CreateCommand();
                command.CommandText = "UPDATE audit_entries SET decision_code = 'model_not_allowed', previous_hash = $previous, hash = $hash WHERE seq = $seq";
                command.Parameters.AddWithValue("$previous", previous);
                command.Parameters.AddWithValue("$hash", hash);
                command.Parameters.AddWithValue("$seq", entry.Sequence);
                await command.ExecuteNonQueryAsync();
                previous = hash;
            }

            using var head = connection.CreateCommand();
            head.CommandText = "DELETE FROM audit_checkpoints WHERE seq > 2; UPDATE audit_head SET hash = $hash WHERE id = 1";
            head.Parameters.AddWithValue("$hash", previous);
            await head.ExecuteNonQueryAsync();
        }

        SqliteConnection.ClearAllPools();
    }

    /// <summary>Two entries of another node's chain, dated from <paramref name="at"/>, that no gateway has signed yet.</summary>
    public static async Task AppendUnsignedAsync(string directory, string chain, DateTimeOffset at)
    {
        var database = SqlDatabase.Sqlite(Path.Combine(directory, "sovereign.db"));
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(directory, "operator-key.pem"));
        await using var node = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = chain, SignsCheckpoints = false }, new ManualClock(at));
        await node.AppendAsync(Record("cluster-relay", chain));
        await node.AppendAsync(Record("cluster-relay", chain));
    }

    private static AuditRecord Record(string tenant, string gateway) => new()
    {
        Kind = AuditKind.Inference,
        Tenant = tenant,
        Actor = $"key-{tenant}",
        Action = AuditActions.InferenceRefused,
        Gateway = gateway,
        Jurisdiction = "TH",
        Decision = AuditDecision.Refused,
        DecisionCode = "jurisdiction_not_allowed",
    };
}

/// <summary>
/// The ways a version 3 file can be tampered with, each with the problem kind <c>sovereign audit verify-export</c>
/// reports for it; shared by the Node verifier's tests and the console's.
/// </summary>
internal static class ClusterExportTampering
{
    public static readonly IReadOnlyDictionary<string, string> Expected = new Dictionary<string, string>
    {
        ["edited-entry"] = "HashMismatch",               // a node entry's jurisdiction changed, its hash kept
        ["dropped-section"] = "Truncated",               // the node's whole section removed
        ["truncated-chain"] = "Truncated",               // the node's last entry removed
        ["forged-header"] = "InvalidSignature",          // the header says the node's chain was covered to its end
        ["chain-left-out"] = "ChainMissing",             // the node's chain removed from the header and the file
        ["section-renamed"] = "ChainBreak",              // the gateway's section filed under another name
        ["rewritten-after-witness"] = "WitnessMismatch", // the node's tail rewritten from its witnessed head, re-signed with the key
        ["shared-rewritten-after-witness"] = "WitnessMismatch", // the shared chain's tail rewritten past its last checkpoint but one, that checkpoint deleted
    };

    private static readonly JsonSerializerOptions Relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Each problem as <c>chain:Kind</c>, sorted (the shared chain's and the file's own as <c>(shared)</c>).</summary>
    public static IEnumerable<string> KindsOf(AuditVerificationResult result) =>
        result.Problems.Select(p => $"{p.Chain ?? "(shared)"}:{p.Kind}").Order(StringComparer.Ordinal);

    public static Dictionary<string, List<string>> Variants(List<string> lines, string operatorKey)
    {
        var header = JsonNode.Parse(lines[0])!.AsObject();
        var nodeStart = lines.FindIndex(l => l == $$"""{"type":"chain","chain":"{{IndependentMemberChainVerifierTests.Node}}"}""");
        Assert.True(nodeStart > 0, string.Join('\n', lines));
        var nodeEntries = Enumerable.Range(nodeStart + 1, lines.Count - nodeStart - 1).Where(i => Type(lines[i]) == "entry").ToList();
        var variants = new Dictionary<string, List<string>>();

        var edited = lines.ToList();
        edited[nodeEntries[1]] = edited[nodeEntries[1]].Replace("\"jurisdiction\":\"TH\"", "\"jurisdiction\":\"SG\"", StringComparison.Ordinal);
        variants["edited-entry"] = edited;

        variants["dropped-section"] = lines.Take(nodeStart).ToList();

        var truncated = lines.ToList();
        truncated.RemoveAt(nodeEntries[^1]);
        variants["truncated-chain"] = truncated;

        var forged = JsonNode.Parse(lines[0])!.AsObject();
        var nodeItem = forged["chains"]!.AsArray().Single(c => c!["chain"]?.GetValue<string>() == IndependentMemberChainVerifierTests.Node)!;
        nodeItem["coveredThrough"] = nodeItem["lastSequence"]!.GetValue<long>();
        nodeItem["uncoveredSince"] = null;
        variants["forged-header"] = [forged.ToJsonString(Relaxed), .. lines.Skip(1)];

        var leftOut = JsonNode.Parse(lines[0])!.AsObject();
        var list = leftOut["chains"]!.AsArray();
        list.Remove(list.Single(c => c!["chain"]?.GetValue<string>() == IndependentMemberChainVerifierTests.Node));
        variants["chain-left-out"] = [leftOut.ToJsonString(Relaxed), .. lines.Skip(1).Take(nodeStart - 1)];

        // The gateway's section under the name of another chain, listed in its place (the header re-signed, as only
        // the key's holder could): its entry 1 no longer links to that name's genesis.
        using (var key = OperatorSigningKey.LoadOrCreate(operatorKey))
        {
            var renamed = JsonNode.Parse(lines[0])!.AsObject();
            var gatewayItem = renamed["chains"]!.AsArray().Single(c => c!["chain"]?.GetValue<string>() == IndependentMemberChainVerifierTests.Gateway)!;
            gatewayItem["chain"] = "gw-tg";
            var renamedLines = lines.Select(l => l == $$"""{"type":"chain","chain":"{{IndependentMemberChainVerifierTests.Gateway}}"}""" ? """{"type":"chain","chain":"gw-tg"}""" : l).ToList();
            renamedLines[0] = Resign(renamed, key);
            variants["section-renamed"] = renamedLines;

            // The node's tail rewritten from the head the gateway's chain recorded as signed (entry 4), re-hashed and
            // re-linked, its checkpoint lines and the header re-signed: every chain links, every signature verifies,
            // and only the gateway's audit.chains_signed entry still names entry 4's old hash.
            var rewritten = lines.ToList();
            var previousHash = (string?)null;
            var hashes = new Dictionary<long, string>();
            foreach (var index in nodeEntries)
            {
                var entry = ReadEntry(rewritten[index]);
                if (entry.Sequence < 4)
                {
                    continue;
                }

                entry = entry with { PreviousHash = previousHash ?? entry.PreviousHash, DecisionCode = entry.Sequence == 4 ? "model_not_allowed" : entry.DecisionCode };
                entry = entry with { Hash = AuditVerifier.Recompute(entry)! };
                previousHash = entry.Hash;
                hashes[entry.Sequence] = entry.Hash;
                rewritten[index] = WriteEntry(entry);
            }

            for (var i = nodeStart + 1; i < rewritten.Count; i++)
            {
                if (Type(rewritten[i]) == "checkpoint" && JsonNode.Parse(rewritten[i])!.AsObject() is var checkpoint && hashes.TryGetValue(checkpoint["sequence"]!.GetValue<long>(), out var hash))
                {
                    checkpoint["hash"] = hash;
                    checkpoint["signature"] = Convert.ToHexStringLower(key.Sign(AuditCanonical.CheckpointPayload(checkpoint["sequence"]!.GetValue<long>(), hash,
                        checkpoint["timestamp"]!.GetValue<long>(), checkpoint["keyId"]!.GetValue<string>())));
                    rewritten[i] = checkpoint.ToJsonString(Relaxed);
                }
            }

            var rewrittenHeader = JsonNode.Parse(lines[0])!.AsObject();
            rewrittenHeader["chains"]!.AsArray().Single(c => c!["chain"]?.GetValue<string>() == IndependentMemberChainVerifierTests.Node)!["lastHash"] = previousHash;
            rewritten[0] = Resign(rewrittenHeader, key);
            variants["rewritten-after-witness"] = rewritten;

            // What an export written by an earlier release (whose writer did not check the `shared` witness) shows of a
            // database writer's attack: the checkpoint at the shared chain's head 4 deleted, entries 3..4 rewritten and
            // re-hashed from the checkpoint at 2, which still holds. The header is the writer's honest account of that log
            // (covered through 2, 3..4 uncovered since entry 3); only the gateway's `shared` witness names entry 4's old hash.
            variants["shared-rewritten-after-witness"] = RewriteSharedTail(lines, key, from: 3);
        }

        return variants;
    }

    private static List<string> RewriteSharedTail(List<string> lines, OperatorSigningKey key, long from)
    {
        var start = lines.FindIndex(l => l == """{"type":"chain","chain":null}""");
        var end = lines.FindIndex(start + 1, l => Type(l) == "chain");
        Assert.True(start > 0 && end > start, string.Join('\n', lines));
        var rewritten = new List<string>(lines);
        string? previousHash = null;
        long? since = null;
        for (var i = end - 1; i > start; i--)
        {
            if (Type(rewritten[i]) == "checkpoint" && JsonNode.Parse(rewritten[i])!["sequence"]!.GetValue<long>() >= from)
            {
                rewritten.RemoveAt(i);
                end--;
            }
        }

        for (var i = start + 1; i < end; i++)
        {
            if (Type(rewritten[i]) != "entry")
            {
                continue;
            }

            var entry = ReadEntry(rewritten[i]);
            if (entry.Sequence < from - 1)
            {
                continue;
            }

            if (entry.Sequence == from - 1)
            {
                previousHash = entry.Hash;
                continue;
            }

            entry = entry with { PreviousHash = previousHash!, DecisionCode = "model_not_allowed" };
            entry = entry with { Hash = AuditVerifier.Recompute(entry)! };
            previousHash = entry.Hash;
            since ??= entry.Timestamp;
            rewritten[i] = WriteEntry(entry);
        }

        var header = JsonNode.Parse(lines[0])!.AsObject();
        var shared = header["chains"]!.AsArray()[0]!;
        Assert.Null(shared["chain"]);
        Assert.True(shared["lastSequence"]!.GetValue<long>() >= from, lines[0]);
        shared["lastHash"] = previousHash;
        shared["coveredThrough"] = from - 1;
        shared["uncoveredSince"] = since;
        rewritten[0] = Resign(header, key);
        return rewritten;
    }

    private static string Resign(JsonObject header, OperatorSigningKey key)
    {
        var chains = header["chains"]!.AsArray().Select(c => new AuditExportChain(c!["chain"]?.GetValue<string>(), c["firstSequence"]?.GetValue<long>(), c["lastSequence"]?.GetValue<long>(),
            c["lastHash"]?.GetValue<string>(), c["entriesDigest"]!.GetValue<string>(), c["coveredThrough"]!.GetValue<long>(), c["uncoveredSince"]?.GetValue<long>())).ToList();
        var payload = AuditCanonical.ClusterExportHeaderPayload(header["keyId"]!.GetValue<string>(), header["tenant"]?.GetValue<string>(), header["from"]!.GetValue<long>(),
            header["to"]!.GetValue<long>(), header["createdAt"]!.GetValue<long>(), chains);
        header["signature"] = Convert.ToHexStringLower(key.Sign(payload));
        return header.ToJsonString(Relaxed);
    }

    private static string? Type(string line) => JsonNode.Parse(line)!["type"]?.GetValue<string>();

    private static AuditEntry ReadEntry(string line)
    {
        using var document = JsonDocument.Parse(line);
        var problems = new ProblemSink();
        return AuditExport.VerifyEntryLine(document.RootElement, null, long.MinValue, long.MaxValue, new ChainWalker(problems, null, null), new AuditDecisionTally(), problems, 0)!;
    }

    private static string WriteEntry(AuditEntry entry)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            AuditExport.WriteEntry(writer, entry);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
