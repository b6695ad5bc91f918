using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Playwright;
using Sovereign.Cli.Commands;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

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
        // a gateway's chain and a node's, the node's signed by the gateway through entry 4, entries 5..6 not yet.
        var database = SqlDatabase.Sqlite(DatabasePath);
        using (var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_directory, "operator-key.pem")))
        await using (var gateway = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = Gateway }))
        await using (var node = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = Node, SignsCheckpoints = false }))
        {
            for (var i = 0; i < 4; i++)
            {
                await gateway.AppendAsync(Record(Gateway));
                await node.AppendAsync(Record(Node));
            }

            Assert.Equal(1, await gateway.SignMemberChainsAsync());
            await node.AppendAsync(Record(Node));
            await node.AppendAsync(Record(Node));
        }

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
    }

    private static AuditRecord Record(string gateway) => new()
    {
        Kind = AuditKind.Inference,
        Tenant = "acme",
        Actor = "key-acme",
        Action = AuditActions.InferenceRefused,
        Gateway = gateway,
        Jurisdiction = "TH",
        Decision = AuditDecision.Refused,
        DecisionCode = "jurisdiction_not_allowed",
    };
}
