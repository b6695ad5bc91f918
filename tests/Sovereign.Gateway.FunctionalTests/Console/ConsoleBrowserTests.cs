using System.Text.Json;
using Microsoft.Playwright;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>The console in a real browser, one test per user: the operator, a tenant and an auditor.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConsoleBrowserTests(ConsoleFixture fixture, BrowserFixture browser) : IClassFixture<BrowserFixture>
{
    [Fact]
    public async Task Operator_EditsAPolicy_ValidationNamesTheField_AndTheChangeTakesEffect()
    {
        var (tenant, key) = await fixture.NewTenantAsync(jurisdiction: "SG");
        Assert.Equal(403, await fixture.ChatAsync(key));
        await using var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = fixture.Url });
        var page = await context.NewPageAsync();
        await SignInAsync(page, ConsoleFixture.AdminToken);
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Pool" })).ToBeVisibleAsync();

        await page.GetByRole(AriaRole.Link, new() { Name = "Tenants", Exact = true }).ClickAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = tenant, Exact = true }).ClickAsync();
        var jurisdictions = page.GetByLabel("Allowed jurisdictions");
        await Assertions.Expect(jurisdictions).ToHaveValueAsync("SG");

        await jurisdictions.FillAsync("Atlantis");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save policy" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("Not saved");
        Assert.Equal(403, await fixture.ChatAsync(key));

        await page.GetByLabel("Allowed jurisdictions").FillAsync("TH");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save policy" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Saved");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.ScreenshotDirectory, "operator-policy-saved.png"), FullPage = true });

        Assert.Equal(200, await fixture.ChatAsync(key));
        var audit = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={tenant}", null);
        Assert.Contains(audit.GetProperty("data").EnumerateArray(), e => e.GetProperty("action").GetString() == "policy.update");

        await page.GotoAsync("/console/usage?by=tenant");
        await Assertions.Expect(page.Locator("svg[role=img]").First).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#usage")).ToContainTextAsync(tenant);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.ScreenshotDirectory, "operator-usage.png"), FullPage = true });
    }

    [Fact]
    public async Task Tenant_SeesOnlyItsOwnData_AndCannotReachOperatorPages()
    {
        Assert.Equal(200, await fixture.ChatAsync(fixture.HospitalKey));
        await using var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = fixture.Url,
            ViewportSize = new ViewportSize { Width = 390, Height = 844 },
            IsMobile = true,
        });
        var page = await context.NewPageAsync();
        await SignInAsync(page, fixture.HospitalKey);

        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Tenant th-hospital" })).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#audit")).ToContainTextAsync("bkk-1");

        // Each key with what it spent: the request just made counts on the key that made it.
        await Assertions.Expect(page.Locator("#keys")).ToContainTextAsync("requests (30 days)");
        var keyRequests = await page.Locator("#keys tbody tr td:nth-child(7)").AllInnerTextsAsync();
        Assert.Contains(keyRequests, cell => int.TryParse(cell, out var n) && n >= 1);
        var html = await page.ContentAsync();
        Assert.DoesNotContain("sg-bank", html, StringComparison.Ordinal);
        Assert.DoesNotContain(fixture.BankKey[..12], html, StringComparison.Ordinal);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.ScreenshotDirectory, "tenant-phone.png"), FullPage = true });

        foreach (var operatorPage in new[] { "/console/tenants", "/console/tenants/sg-bank", "/console/usage", "/console/audit" })
        {
            var response = await page.GotoAsync(operatorPage);
            Assert.Equal(403, response!.Status);
            await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("for the operator");
            Assert.DoesNotContain("sg-bank", await page.ContentAsync(), StringComparison.Ordinal);
        }

        // Keyboard only: the skip link is the first stop and moves focus to the content.
        await page.GotoAsync("/console");
        await page.Keyboard.PressAsync("Tab");
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "Skip to content" })).ToBeFocusedAsync();
    }

    [Fact]
    public async Task Auditor_VerifiesAnExportOffline_AndCatchesATamperedLine()
    {
        Assert.Equal(200, await fixture.ChatAsync(fixture.HospitalKey));
        var directory = Directory.CreateTempSubdirectory("sovereign-auditor-").FullName;
        try
        {
            var export = Path.Combine(directory, "th.jsonl");
            var (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--tenant", "th-hospital", "--data-dir", fixture.DataDirectory, "-o", export);
            Assert.True(exit == 0, stderr);
            (exit, var pem, stderr) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", fixture.DataDirectory);
            Assert.True(exit == 0, stderr);

            // Change one entry's recorded token count and leave its hash: the tampering an auditor must catch.
            var lines = await File.ReadAllLinesAsync(export);
            var target = Array.FindIndex(lines, l => l.Contains("\"type\":\"entry\"", StringComparison.Ordinal) && l.Contains("\"promptTokens\":", StringComparison.Ordinal)
                && !l.Contains("\"promptTokens\":null", StringComparison.Ordinal));
            Assert.True(target > 0, "the export has an inference entry with token counts");
            var entry = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(lines[target])!;
            entry["promptTokens"] = JsonSerializer.SerializeToElement(entry["promptTokens"].GetInt64() + 1000);
            var tampered = Path.Combine(directory, "th-tampered.jsonl");
            await File.WriteAllLinesAsync(tampered, lines.Select((l, i) => i == target ? JsonSerializer.Serialize(entry) : l));

            await using var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = fixture.Url });
            var page = await context.NewPageAsync();
            await page.GotoAsync("/console/verify");
            await context.SetOfflineAsync(true);

            await page.GetByLabel("Export file (JSON Lines)").SetInputFilesAsync(export);
            await page.GetByLabel("Operator public key (PEM)").FillAsync(pem);
            await page.GetByRole(AriaRole.Button, new() { Name = "Verify" }).ClickAsync();
            await Assertions.Expect(page.Locator("#verdict")).ToContainTextAsync("Verified");

            await page.GetByLabel("Export file (JSON Lines)").SetInputFilesAsync(tampered);
            await page.GetByRole(AriaRole.Button, new() { Name = "Verify" }).ClickAsync();
            await Assertions.Expect(page.Locator("#verdict")).ToContainTextAsync("Does not verify");
            await Assertions.Expect(page.Locator("#verify-problems")).ToContainTextAsync($"line {target + 1}");
            await Assertions.Expect(page.Locator("#verify-problems")).ToContainTextAsync("modified");
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.ScreenshotDirectory, "auditor-tampered.png"), FullPage = true });

            // The same entry shown as another tenant's (hash and links kept): only the header's signed entriesDigest says so.
            var hidden = Path.Combine(directory, "th-hidden.jsonl");
            var shown = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(lines[target])!;
            var redacted = JsonSerializer.Serialize(new { type = "redacted", sequence = shown["sequence"].GetInt64(), previousHash = shown["previousHash"].GetString(), hash = shown["hash"].GetString() });
            await File.WriteAllLinesAsync(hidden, lines.Select((l, i) => i == target ? redacted : l));
            await page.GetByLabel("Export file (JSON Lines)").SetInputFilesAsync(hidden);
            await page.GetByRole(AriaRole.Button, new() { Name = "Verify" }).ClickAsync();
            await Assertions.Expect(page.Locator("#verdict")).ToContainTextAsync("Does not verify");
            await Assertions.Expect(page.Locator("#verify-problems")).ToContainTextAsync("redacted");

            // A line whose type holds a bidirectional override (the alterer's text, quoted by the problem): shown as its
            // escape, as the CLI and the script show it, not reordering the rest of the line (session 48).
            var overridden = Path.Combine(directory, "th-override.jsonl");
            await File.WriteAllLinesAsync(overridden, lines.Take(2).Append(JsonSerializer.Serialize(new { type = "x\u202Edeifirev" })).Concat(lines.Skip(2)));
            await page.GetByLabel("Export file (JSON Lines)").SetInputFilesAsync(overridden);
            await page.GetByRole(AriaRole.Button, new() { Name = "Verify" }).ClickAsync();
            await Assertions.Expect(page.Locator("#verdict")).ToContainTextAsync("Does not verify");
            await Assertions.Expect(page.Locator("#verify-problems")).ToContainTextAsync("Unknown line type 'x\\u202Edeifirev'");
            Assert.DoesNotContain('\u202E', await page.Locator("#verify-problems").InnerTextAsync());

            // The CLI's verifier, the code of record, agrees with the browser on both files.
            var keyFile = Path.Combine(directory, "operator.pem");
            await File.WriteAllTextAsync(keyFile, pem);
            Assert.Equal(0, (await CliProcess.RunAsync("audit", "verify-export", export, "--public-key", keyFile)).ExitCode);
            Assert.Equal(3, (await CliProcess.RunAsync("audit", "verify-export", tampered, "--public-key", keyFile)).ExitCode);
            Assert.Equal(3, (await CliProcess.RunAsync("audit", "verify-export", hidden, "--public-key", keyFile)).ExitCode);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task SignInAsync(IPage page, string credential)
    {
        await page.GotoAsync("/console");
        await page.GetByLabel("Operator token or tenant API key").FillAsync(credential);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
    }
}
