using Microsoft.Data.Sqlite;
using Microsoft.Playwright;
using Sovereign.Residency.Audit;
using Sovereign.Storage;
using Sovereign.Tests;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// The console's "Verify an export" page offers what <c>sovereign audit verify-export</c> offers: <c>--earlier</c> (an
/// export the auditor kept: the operator holds the key, so only comparing catches a history rebuilt and signed again)
/// and <c>--previous</c> (the archive file before this one: this one must continue its chain). The page verified one
/// file alone, so an auditor in a browser accepted a rebuilt log the CLI refused. Each case is checked in chromium,
/// offline, and against the CLI's exit code.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConsoleVerifyParityTests(ConsoleFixture fixture, BrowserFixture browser) : IClassFixture<BrowserFixture>, IAsyncLifetime
{
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-01-05T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-verify-parity-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task VerifyPage_TakesAnEarlierExportAndAPreviousFile_AndAgreesWithVerifyExport()
    {
        // The dishonest operator of AuditVerifyExportEarlierTests: the same key, the log rebuilt without r2.
        var honest = Path.Combine(_directory, "honest");
        var rebuilt = Path.Combine(_directory, "rebuilt");
        Directory.CreateDirectory(honest);
        Directory.CreateDirectory(rebuilt);
        await AppendAsync(honest, ["r1", "r2", "r3"]);
        var old = await ExportAsync(honest, "old.jsonl");
        await AppendAsync(honest, ["r4"]);
        var later = await ExportAsync(honest, "later.jsonl");
        File.Copy(Path.Combine(honest, "operator-key.pem"), Path.Combine(rebuilt, "operator-key.pem"));
        await AppendAsync(rebuilt, ["r1", "r3", "r4"]);
        var forged = await ExportAsync(rebuilt, "forged.jsonl");
        var (pemExit, pem, pemError) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", honest);
        Assert.True(pemExit == 0, pemError);
        var publicKey = Path.Combine(_directory, "operator.pem");
        await File.WriteAllTextAsync(publicKey, pem);

        // Archive files of a log: the second continues the first (it starts with the first's kept last entry).
        var archived = Path.Combine(_directory, "archived");
        Directory.CreateDirectory(archived);
        var database = SqlDatabase.Sqlite(Path.Combine(archived, "sovereign.db"));
        var first = Path.Combine(_directory, "audit-1.jsonl");
        var second = Path.Combine(_directory, "audit-2.jsonl");
        string archivePem;
        using (var key = OperatorSigningKey.LoadOrCreate(Path.Combine(archived, "operator-key.pem")))
        {
            archivePem = key.PublicKeyPem;
            await AppendPlainAsync(database, key, 0, 5);
            Assert.Equal(AuditArchiveFileStatus.Archived, (await AuditArchive.ArchiveToFileAsync(database, key, DateTimeOffset.UtcNow.AddMinutes(1), first)).Status);
            await AppendPlainAsync(database, key, 5, 8);
            Assert.Equal(AuditArchiveFileStatus.Archived, (await AuditArchive.ArchiveToFileAsync(database, key, DateTimeOffset.UtcNow.AddMinutes(1), second)).Status);
        }

        var archiveKey = Path.Combine(_directory, "archive.pem");
        await File.WriteAllTextAsync(archiveKey, archivePem);

        await using var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = fixture.Url });
        var page = await context.NewPageAsync();
        await page.GotoAsync("/console/verify");
        await context.SetOfflineAsync(true);

        async Task VerifyAsync(string file, string key, string? earlier = null, string? previous = null)
        {
            await page.GetByLabel("Export file (JSON Lines)").SetInputFilesAsync(file);
            await page.GetByLabel("Operator public key (PEM)").FillAsync(key);
            await page.Locator("#earlier-file").SetInputFilesAsync(earlier is null ? Array.Empty<string>() : [earlier]);
            await page.Locator("#previous-file").SetInputFilesAsync(previous is null ? Array.Empty<string>() : [previous]);
            await page.GetByRole(AriaRole.Button, new() { Name = "Verify" }).ClickAsync();
            await Assertions.Expect(page.Locator("#verdict")).Not.ToHaveTextAsync("Verifying…");
        }

        async Task CliAgreesAsync(int expected, params string[] args)
        {
            var (exit, stdout, stderr) = await CliProcess.RunAsync(["audit", "verify-export", .. args]);
            Assert.True(exit == expected, $"verify-export {string.Join(' ', args)}: exit {exit}\n{stdout}{stderr}");
        }

        // Alone, the rebuilt history verifies: the operator signed it.
        await VerifyAsync(forged, pem);
        await Assertions.Expect(page.Locator("#verdict")).ToContainTextAsync("Verified");
        await CliAgreesAsync(0, forged, "--public-key", publicKey);

        // With the export the auditor kept: two histories signed.
        await VerifyAsync(forged, pem, earlier: old);
        await Assertions.Expect(page.Locator("#verdict")).ToContainTextAsync("Does not verify");
        await Assertions.Expect(page.Locator("#verify-problems li[data-kind=WitnessMismatch][data-role=earlier]").First).ToContainTextAsync("the operator signed two different histories");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.ScreenshotDirectory, "auditor-verify-earlier.png"), FullPage = true });
        await CliAgreesAsync(3, forged, "--public-key", publicKey, "--earlier", old);

        // An honest later export agrees with it.
        await VerifyAsync(later, pem, earlier: old);
        await Assertions.Expect(page.Locator("#verdict")).ToContainTextAsync("It agrees with the earlier export");
        await CliAgreesAsync(0, later, "--public-key", publicKey, "--earlier", old);

        // The old export handed over again as the new one.
        await VerifyAsync(old, pem, earlier: later);
        await Assertions.Expect(page.Locator("#verify-problems li[data-kind=OutOfScope]")).ToContainTextAsync("it is older, not newer");
        await CliAgreesAsync(3, old, "--public-key", publicKey, "--earlier", later);

        // Archive files: the second continues the first; given the wrong way round, it does not.
        await VerifyAsync(second, archivePem, previous: first);
        await Assertions.Expect(page.Locator("#verdict")).ToContainTextAsync("It continues the previous file");
        await CliAgreesAsync(0, second, "--public-key", archiveKey, "--previous", first);
        await VerifyAsync(first, archivePem, previous: second);
        await Assertions.Expect(page.Locator("#verdict")).ToContainTextAsync("Does not verify");
        await Assertions.Expect(page.Locator("#verify-problems li[data-role=previous]").First).ToBeVisibleAsync();
        await CliAgreesAsync(3, first, "--public-key", archiveKey, "--previous", second);
    }

    /// <summary>
    /// The operator's "Verify the whole audit log" takes the CLI's <c>--max-uncovered-age</c> (the API's
    /// <c>max_uncovered_seconds</c>): the form had no field for it, so the console always judged by the default.
    /// A value the API refuses comes back as its message naming the field.
    /// </summary>
    [Fact]
    public async Task OperatorsVerifyForm_PassesTheUncoveredBound_AsAuditVerifyDoes()
    {
        await using var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = fixture.Url });
        var page = await context.NewPageAsync();
        await page.GotoAsync("/console");
        await page.GetByLabel("Operator token or tenant API key").FillAsync(ConsoleFixture.AdminToken);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await page.GotoAsync("/console/audit");

        var bound = page.GetByLabel("Uncovered entries may be this old (seconds)");
        await bound.FillAsync("31536000");
        await page.GetByRole(AriaRole.Button, new() { Name = "Verify the whole audit log" }).ClickAsync();
        await Assertions.Expect(page.GetByText("Checked ", new() { Exact = false }).First).ToBeVisibleAsync();

        // The browser's own check stops a negative number; one sent anyway is the API's 400, shown with its field.
        await bound.EvaluateAsync("input => input.removeAttribute('min')");
        await bound.FillAsync("-1");
        await page.GetByRole(AriaRole.Button, new() { Name = "Verify the whole audit log" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("max_uncovered_seconds must be a whole number of seconds");
    }

    /// <summary>Each request a decision and an outcome (acme's), at the request's own time, as in AuditVerifyExportEarlierTests.</summary>
    private static async Task AppendAsync(string dataDirectory, string[] requests)
    {
        var database = SqlDatabase.Sqlite(Path.Combine(dataDirectory, "sovereign.db"));
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(dataDirectory, "operator-key.pem"));
        var clock = new ManualClock(Start);
        await using var log = await AuditLog.OpenAsync(database, key, new AuditLogOptions(), clock);
        foreach (var id in requests)
        {
            clock.Set(Start.AddSeconds(int.Parse(id[1..], System.Globalization.CultureInfo.InvariantCulture)));
            await log.AppendAsync(Entry(id, AuditActions.InferenceAllowed));
            await log.AppendAsync(Entry(id, AuditActions.InferenceCompleted));
        }
    }

    private static async Task AppendPlainAsync(SqlDatabase database, OperatorSigningKey key, int from, int to)
    {
        await using var log = await AuditLog.OpenAsync(database, key, new AuditLogOptions());
        for (var i = from; i < to; i++)
        {
            await log.AppendAsync(Entry("a" + i, AuditActions.InferenceAllowed));
        }
    }

    private async Task<string> ExportAsync(string dataDirectory, string name)
    {
        var path = Path.Combine(_directory, name);
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", dataDirectory, "--tenant", "acme", "-o", path);
        Assert.True(exit == 0, stdout + stderr);
        return path;
    }

    private static AuditRecord Entry(string requestId, string action) => new()
    {
        Kind = AuditKind.Inference,
        Tenant = "acme",
        Actor = "key-acme",
        Action = action,
        Model = "m",
        Gateway = "th-1",
        Node = "th-1",
        Jurisdiction = "TH",
        Decision = AuditDecision.Allowed,
        PromptTokens = action == AuditActions.InferenceCompleted ? 3 : null,
        CompletionTokens = action == AuditActions.InferenceCompleted ? 2 : null,
        Details = action == AuditActions.InferenceCompleted
            ? new Dictionary<string, string> { ["request_id"] = requestId, ["outcome"] = "completed" }
            : new Dictionary<string, string> { ["request_id"] = requestId },
    };
}
