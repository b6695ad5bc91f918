using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Playwright;
using Sovereign.Cli.Commands;
using Sovereign.Residency.Audit;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// The operator's audit page on a log with member chains: after "Verify the whole audit log", each chain's head,
/// coverage and verdict side by side, and a member chain cut below a signature named as the tampered one.
/// </summary>
public sealed class ConsoleMemberChainTests(BrowserFixture browser) : IClassFixture<BrowserFixture>, IAsyncLifetime
{
    private const string AdminToken = "chains-admin-token";
    private const string Gateway = "gw-th";
    private const string Node = "node-th-1";
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-console-chains-").FullName;
    private WebApplication? _app;

    private string DatabasePath => Path.Combine(_directory, "sovereign.db");

    public async Task InitializeAsync()
    {
        // What a cluster on member chains left in the log (the database copied to a single machine to look at it):
        // a gateway's chain and a node's, the node's signed by the gateway through entry 4, entries 5..6 not yet; and
        // the shared chain an earlier-release node still appended to, signed by the gateway through its entry 4.
        await MemberChainLog.WriteAsync(_directory);

        SqliteConnection.ClearAllPools();
        _app = ServeCommand.Build(new ServeSettings
        {
            Models = [],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Jurisdiction"] = "TH",
                ["Sovereign:NodeId"] = "bkk-1",
                ["Sovereign:AdminToken"] = AdminToken,
                ["Sovereign:BuiltInEmbeddings"] = "false",
            },
        }, []);
        await _app.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Operator_VerifiesTheLog_SeesEachChainsHeadCoverageAndVerdict_AndTheCutChainNamed()
    {
        await using var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = _app!.Urls.First() });
        var page = await context.NewPageAsync();
        await page.GotoAsync("/console");
        await page.GetByLabel("Operator token or tenant API key").FillAsync(AdminToken);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await page.GotoAsync("/console/audit");

        // Entries of member chains are named CHAIN:SEQUENCE.
        await Assertions.Expect(page.Locator("#audit")).ToContainTextAsync($"{Node}:6");
        await page.GetByRole(AriaRole.Button, new() { Name = "Verify the whole audit log" }).ClickAsync();

        var chains = page.Locator("#chains");
        await Assertions.Expect(chains).ToBeVisibleAsync();
        var node = chains.Locator("tbody tr", new() { HasText = Node });
        var cells = await node.Locator("td").AllInnerTextsAsync();
        Assert.Equal([Node, "6", "6"], cells.Take(3));
        Assert.Equal(["4", "2"], cells.Skip(4).Take(2)); // signed through 4; 5 and 6 not yet (young: within the bound)
        Assert.Equal("trusted", cells[^1]);
        await Assertions.Expect(chains.Locator("tbody tr", new() { HasText = Gateway })).ToContainTextAsync("trusted");
        await Assertions.Expect(chains.Locator("tbody tr", new() { HasText = "(shared chain)" })).ToBeVisibleAsync();
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.ScreenshotDirectory, "operator-audit-chains.png"), FullPage = true });

        // A database writer cuts the node's chain below the gateway's signature and moves its head back.
        await using (var connection = new SqliteConnection($"Data Source={DatabasePath}"))
        {
            await connection.OpenAsync();
            using var command = connection.CreateCommand();
            command.CommandText =
                $"DELETE FROM audit_chain_entries WHERE chain = '{Node}' AND seq > 2; " +
                $"UPDATE audit_chains SET seq = 2, hash = (SELECT hash FROM audit_chain_entries WHERE chain = '{Node}' AND seq = 2) WHERE chain = '{Node}'";
            await command.ExecuteNonQueryAsync();
        }

        await page.GetByRole(AriaRole.Button, new() { Name = "Verify the whole audit log" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert).First).ToContainTextAsync("tampered");
        var cut = await chains.Locator("tbody tr", new() { HasText = Node }).Locator("td").AllInnerTextsAsync();
        Assert.Equal((Node, "2", "tampered"), (cut[0], cut[2], cut[^1]));
        await Assertions.Expect(chains.Locator("tbody tr", new() { HasText = Gateway })).ToContainTextAsync("trusted");
        var problem = page.Locator("#problems tbody tr").First;
        await Assertions.Expect(problem).ToContainTextAsync(Node);
        await Assertions.Expect(problem).ToContainTextAsync("entries 3..4 were removed");
        var kind = await problem.Locator("td").Nth(2).InnerTextAsync();
        Assert.True(Enum.TryParse<AuditProblemKind>(kind, out _) && !kind.All(char.IsAsciiDigit), $"the problem's kind reads '{kind}', not its name");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.ScreenshotDirectory, "operator-audit-chain-cut.png"), FullPage = true });

        // The shared chain's tail rewritten and re-hashed from its checkpoint at 2, the checkpoint at its head 4 deleted:
        // it links and its own walk finds nothing, but the gateway's chain recorded entry 4's hash as signed.
        await MemberChainLog.RewriteSharedTailAsync(_directory);
        SqliteConnection.ClearAllPools();
        await page.GetByRole(AriaRole.Button, new() { Name = "Verify the whole audit log" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert).First).ToContainTextAsync("tampered");
        var rewritten = page.Locator("#problems tbody tr", new() { HasText = "entry 4 of the shared chain" });
        await Assertions.Expect(rewritten).ToContainTextAsync(nameof(AuditProblemKind.WitnessMismatch));
        await Assertions.Expect(rewritten).ToContainTextAsync($"chain {Gateway} entry");
    }

    [Fact]
    public async Task Auditor_VerifiesAClusterExportInTheBrowser_AsVerifyExportDoes_AndEachTamperingIsNamedByItsKind()
    {
        // The cluster's export (version 3: the shared chain, the gateway's and the node's) and the operator's key.
        var export = Path.Combine(_directory, "cluster.jsonl");
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", _directory, "--database", DatabasePath, "-o", export);
        Assert.True(exit == 0, stdout + stderr);
        (exit, var pem, stderr) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", _directory);
        Assert.True(exit == 0, stderr);
        var lines = (await File.ReadAllLinesAsync(export)).ToList();
        Assert.Contains("\"version\":3", lines[0], StringComparison.Ordinal);

        await using var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = _app!.Urls.First() });
        var page = await context.NewPageAsync();
        await page.GotoAsync("/console/verify");
        await context.SetOfflineAsync(true);
        await page.GetByLabel("Operator public key (PEM)").FillAsync(pem);

        var expected = await VerifyExportAsync(export, pem);
        Assert.True(expected.Valid, string.Join(" | ", expected.Problems));
        Assert.Equal(expected.Verdict.ToString().ToLowerInvariant(), await VerifyInBrowserAsync(page, export));
        await Assertions.Expect(page.Locator("#verdict")).ToContainTextAsync("Verified");
        var node = await page.Locator($"#verify-chains tbody tr[data-chain='{Node}'] td").AllInnerTextsAsync();
        var report = expected.Chains.Single(c => c.Chain == Node);
        Assert.Equal([Node, report.LastSequence.ToString(CultureInfo.InvariantCulture), report.CoveredThrough.ToString(CultureInfo.InvariantCulture), report.Uncovered.ToString(CultureInfo.InvariantCulture), "trusted"],
            node.Where((_, i) => i != 1));
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.ScreenshotDirectory, "auditor-cluster-export.png"), FullPage = true });

        foreach (var (name, tampered) in ClusterExportTampering.Variants(lines, Path.Combine(_directory, "operator-key.pem")))
        {
            var path = Path.Combine(_directory, name + ".jsonl");
            await File.WriteAllLinesAsync(path, tampered);
            var cli = await VerifyExportAsync(path, pem);
            Assert.Equal("tampered", await VerifyInBrowserAsync(page, path));
            await Assertions.Expect(page.Locator("#verdict")).ToContainTextAsync("Does not verify");
            var kinds = await page.Locator("#verify-problems li").EvaluateAllAsync<string[]>("items => items.map(i => (i.dataset.chain ?? '(shared)') + ':' + i.dataset.kind)");
            Assert.True(ClusterExportTampering.KindsOf(cli).SequenceEqual(kinds.Order(StringComparer.Ordinal)),
                $"{name}: verify-export {string.Join(" | ", cli.Problems)}; the browser {string.Join(", ", kinds)}");
            Assert.Contains(kinds, k => k.EndsWith(":" + ClusterExportTampering.Expected[name], StringComparison.Ordinal));
        }

        // Two nodes' chains no gateway has signed yet, judged by the age of their entries at the export's createdAt as
        // verify-export judges them: one young (a tail waiting for its first signature, trusted), one older than the
        // bound (uncovered, and so the file).
        await MemberChainLog.AppendUnsignedAsync(_directory, "node-th-2", DateTimeOffset.UtcNow);
        await MemberChainLog.AppendUnsignedAsync(_directory, "node-th-3", DateTimeOffset.UtcNow.AddMinutes(-20));
        var unsigned = Path.Combine(_directory, "unsigned.jsonl");
        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", _directory, "--database", DatabasePath, "-o", unsigned);
        Assert.True(exit == 0, stdout + stderr);
        var judged = await VerifyExportAsync(unsigned, pem);
        Assert.Equal((AuditVerdict.Trusted, AuditVerdict.Uncovered), (judged.Chains.Single(c => c.Chain == "node-th-2").Verdict, judged.Chains.Single(c => c.Chain == "node-th-3").Verdict));
        Assert.Equal("uncovered", await VerifyInBrowserAsync(page, unsigned));
        foreach (var chain in judged.Chains)
        {
            var row = await page.Locator($"#verify-chains tbody tr[data-chain='{chain.Chain}'] td").AllInnerTextsAsync();
            Assert.Equal(chain.Verdict.ToString().ToLowerInvariant(), row[^1]);
        }
    }

    private static async Task<AuditVerificationResult> VerifyExportAsync(string path, string pem)
    {
        await using var input = File.OpenRead(path);
        return await AuditExport.VerifyExportAsync(input, pem);
    }

    /// <summary>Verifies a file on the auditor's page; its verdict (trusted, uncovered or tampered).</summary>
    private static async Task<string> VerifyInBrowserAsync(IPage page, string path)
    {
        await page.Locator("#verify-result").EvaluateAsync("result => result.textContent = ''");
        await page.GetByLabel("Export file (JSON Lines)").SetInputFilesAsync(path);
        await page.GetByRole(AriaRole.Button, new() { Name = "Verify" }).ClickAsync();
        var verdict = page.Locator("#verdict[data-verdict]");
        await Assertions.Expect(verdict).ToBeVisibleAsync();
        return (await verdict.GetAttributeAsync("data-verdict"))!;
    }
}
