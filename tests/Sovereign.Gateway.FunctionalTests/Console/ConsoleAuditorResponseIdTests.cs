using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// The auditor handed a client's response: its body's <c>id</c> is what the client kept (the <c>x-sovereign-audit-id</c>
/// header is often dropped). The outcome entry states it (<c>response_id</c>, hashed with the entry), and the request's
/// entries are found from it by the admin API (<c>?id=</c>), the tenant's own API, <c>sovereign audit find</c> and the
/// console's audit page. Before, no entry named a body id: the auditor could not tell which entry a response was.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConsoleAuditorResponseIdTests(ConsoleFixture fixture, BrowserFixture browser) : IClassFixture<BrowserFixture>
{
    [Fact]
    public async Task ResponseBodyIds_AreInTheOutcomeEntries_AndFindTheRequestEverywhere()
    {
        var (tenant, key) = await fixture.NewTenantAsync();
        using var client = new HttpClient { BaseAddress = fixture.Address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);

        // One response of each kind, as the client received it: (body id, audit id header).
        var responses = new List<(string Id, string AuditId)>();
        async Task<JsonElement> PostAsync(string path, object body)
        {
            using var response = await client.PostAsJsonAsync(path, body);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode} {text}");
            var auditId = response.Headers.GetValues("x-sovereign-audit-id").Single();
            if (text.StartsWith("data:", StringComparison.Ordinal))
            {
                // A stream: every chunk carries the same id.
                var first = text.Split('\n').First(l => l.StartsWith("data: {", StringComparison.Ordinal));
                var chunk = JsonDocument.Parse(first["data: ".Length..]).RootElement.Clone();
                responses.Add((chunk.GetProperty("id").GetString()!, auditId));
                return chunk;
            }

            var json = JsonDocument.Parse(text).RootElement.Clone();
            responses.Add((json.GetProperty("id").GetString()!, auditId));
            return json;
        }

        var messages = new[] { new { role = "user", content = "Once upon a time" } };
        await PostAsync("/v1/chat/completions", new { model = ConsoleFixture.Model, messages, max_tokens = 3, temperature = 0 });
        await PostAsync("/v1/chat/completions", new { model = ConsoleFixture.Model, messages, max_tokens = 3, temperature = 0, stream = true });
        await PostAsync("/v1/completions", new { model = ConsoleFixture.Model, prompt = "Once upon a time", max_tokens = 3, temperature = 0 });
        await PostAsync("/v1/responses", new { model = ConsoleFixture.Model, input = "Once upon a time", max_output_tokens = 16, temperature = 0 });
        Assert.StartsWith("chatcmpl-", responses[0].Id, StringComparison.Ordinal);
        Assert.StartsWith("chatcmpl-", responses[1].Id, StringComparison.Ordinal);
        Assert.StartsWith("cmpl-", responses[2].Id, StringComparison.Ordinal);
        Assert.StartsWith("resp_", responses[3].Id, StringComparison.Ordinal);

        foreach (var (id, auditId) in responses)
        {
            // The admin API: the request's decision and its outcome, which names the body's id.
            var found = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?id={id}", null)).GetProperty("data").EnumerateArray().ToList();
            var decision = Assert.Single(found, e => e.GetProperty("action").GetString() == "inference.allowed");
            var outcome = Assert.Single(found, e => e.GetProperty("action").GetString() == "inference.completed");
            Assert.Equal(auditId, decision.GetProperty("details").GetProperty("request_id").GetString());
            Assert.Equal(id, outcome.GetProperty("details").GetProperty("response_id").GetString());
            Assert.Equal(auditId, outcome.GetProperty("details").GetProperty("request_id").GetString());
            Assert.All(found, e => Assert.Equal(tenant, e.GetProperty("tenant").GetString()));
            Assert.Equal("TH", decision.GetProperty("jurisdiction").GetString());
            Assert.Equal("bkk-1", outcome.GetProperty("node").GetString());

            // The audit id finds the same entries.
            var byAuditId = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?id={auditId}", null)).GetProperty("data").EnumerateArray()
                .Select(e => e.GetProperty("hash").GetString()).ToList();
            Assert.Equal(found.Select(e => e.GetProperty("hash").GetString()), byAuditId);

            // The tenant finds its own; another tenant nothing.
            var own = await client.GetFromJsonAsync<JsonElement>($"/v1/audit?id={id}");
            Assert.Equal(found.Count, own.GetProperty("data").GetArrayLength());
            using var other = new HttpClient { BaseAddress = fixture.Address };
            other.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", fixture.BankKey);
            Assert.Equal(0, (await other.GetFromJsonAsync<JsonElement>($"/v1/audit?id={id}")).GetProperty("data").GetArrayLength());
        }

        // A malformed id is the API's 400 naming id, never a search.
        using (var bad = await fixture.Admin.GetAsync("/admin/v1/audit?id=" + Uri.EscapeDataString("chatcmpl-%' OR 1=1")))
        {
            Assert.Equal(400, (int)bad.StatusCode);
            Assert.Contains("\"param\":\"id\"", await bad.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // The CLI, on the server's data directory.
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "find", responses[1].Id, "--data-dir", fixture.DataDirectory);
        Assert.True(exit == 0, stdout + stderr);
        Assert.Contains("inference.allowed", stdout, StringComparison.Ordinal);
        Assert.Contains($"response_id {responses[1].Id}", stdout, StringComparison.Ordinal);
        Assert.Contains($"request_id {responses[1].AuditId}", stdout, StringComparison.Ordinal);
        Assert.Contains("jurisdiction TH", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("DOES NOT RE-HASH", stdout, StringComparison.Ordinal);
        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "find", "chatcmpl-nothing", "--data-dir", fixture.DataDirectory);
        Assert.True(exit == 1, stdout + stderr);

        // The tenant's export still verifies with the independent verifier (the new detail hashes as any other).
        var directory = Directory.CreateTempSubdirectory("sovereign-response-id-").FullName;
        try
        {
            var export = Path.Combine(directory, "tenant.jsonl");
            (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--tenant", tenant, "--data-dir", fixture.DataDirectory, "-o", export);
            Assert.True(exit == 0, stderr);
            Assert.Contains($"\"response_id\":\"{responses[3].Id}\"", await File.ReadAllTextAsync(export), StringComparison.Ordinal);
            var publicKey = await AuditVerifyScript.PublicKeyAsync(fixture.DataDirectory, Path.Combine(directory, "operator.pem"));
            var (mjsExit, mjsOut) = await AuditVerifyScript.RunAsync(export, publicKey);
            Assert.True(mjsExit == 0, mjsOut);
            (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", export, "--public-key", publicKey);
            Assert.True(exit == 0, stdout + stderr);

            // The auditor's verifier ties each kept body to its entries by its id alone (the headers dropped), and a
            // body whose id and audit id name different requests, or an id no entry names, is a problem.
            var kept = Path.Combine(directory, "responses.jsonl");
            await File.WriteAllLinesAsync(kept, responses.Select(r => JsonSerializer.Serialize(new { status = 200, id = r.Id })));
            (mjsExit, mjsOut) = await AuditVerifyScript.RunAsync(export, publicKey, "--responses", kept);
            Assert.True(mjsExit == 0, mjsOut);
            Assert.Contains("4 responses", mjsOut, StringComparison.Ordinal);
            await File.WriteAllLinesAsync(kept, [
                JsonSerializer.Serialize(new { status = 200, id = "chatcmpl-forged" }),
                JsonSerializer.Serialize(new { status = 200, audit_id = responses[0].AuditId, jurisdiction = "TH", id = responses[2].Id }),
            ]);
            (mjsExit, mjsOut) = await AuditVerifyScript.RunAsync(export, publicKey, "--responses", kept);
            Assert.True(mjsExit == 3, mjsOut);
            Assert.Contains("no outcome entry names this response id", mjsOut, StringComparison.Ordinal);
            Assert.Contains($"names response {responses[0].Id}, the body said {responses[2].Id}", mjsOut, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }

        // The console's audit page: the operator pastes the id the client kept.
        await using var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = fixture.Url });
        var page = await context.NewPageAsync();
        await page.GotoAsync("/console");
        await page.GetByLabel("Operator token or tenant API key").FillAsync(ConsoleFixture.AdminToken);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await page.GotoAsync("/console/audit");
        await page.GetByLabel("Response or request id").FillAsync(responses[3].Id);
        await page.GetByRole(AriaRole.Button, new() { Name = "Find its entries" }).ClickAsync();
        await Assertions.Expect(page.Locator("#found")).ToContainTextAsync("inference.completed");
        await Assertions.Expect(page.Locator("#found")).ToContainTextAsync(responses[3].Id);
        await Assertions.Expect(page.Locator("#found")).ToContainTextAsync(responses[3].AuditId);
        await Assertions.Expect(page.Locator("#found")).ToContainTextAsync("TH");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserFixture.ScreenshotDirectory, "auditor-find-response.png"), FullPage = true });

        await page.GetByLabel("Response or request id").FillAsync("resp_unknown");
        await page.GetByRole(AriaRole.Button, new() { Name = "Find its entries" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("No audit entry names 'resp_unknown'");
    }

    /// <summary>
    /// <c>x-sovereign-audit-entry</c> names the entry that states how the request ended (the outcome of an answer whose
    /// headers leave after its books close; the refused decision of a 403): its sequence and hash, which commit to the
    /// entry and the chain before it. A stream's headers leave first, so it has none. The auditor's verifier checks a
    /// kept header against the export: the same hash, and the request's own outcome; a hash the log no longer holds is a
    /// WitnessMismatch. Before, no response named its entry's hash: the headers it carried were bound to nothing.
    /// </summary>
    [Fact]
    public async Task AuditEntryHeader_NamesTheOutcomeEntry_AndTheAuditorsVerifierChecksIt()
    {
        var (tenant, key) = await fixture.NewTenantAsync();
        using var client = new HttpClient { BaseAddress = fixture.Address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var messages = new[] { new { role = "user", content = "Once upon a time" } };
        using var answer = await client.PostAsJsonAsync("/v1/chat/completions", new { model = ConsoleFixture.Model, messages, max_tokens = 3, temperature = 0 });
        Assert.True(answer.IsSuccessStatusCode, await answer.Content.ReadAsStringAsync());
        var auditId = answer.Headers.GetValues("x-sovereign-audit-id").Single();
        var named = answer.Headers.GetValues("x-sovereign-audit-entry").Single();
        var outcome = Assert.Single((await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?id={auditId}", null)).GetProperty("data").EnumerateArray(),
            e => e.GetProperty("action").GetString() == "inference.completed");
        var chain = outcome.TryGetProperty("chain", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() + ":" : "";
        Assert.Equal($"{chain}{outcome.GetProperty("sequence").GetInt64()}:{outcome.GetProperty("hash").GetString()}", named);

        // A stream's headers leave before its end: no entry to name yet.
        using (var stream = await client.PostAsJsonAsync("/v1/chat/completions", new { model = ConsoleFixture.Model, messages, max_tokens = 3, temperature = 0, stream = true }))
        {
            Assert.True(stream.IsSuccessStatusCode);
            await stream.Content.ReadAsStringAsync();
            Assert.False(stream.Headers.Contains("x-sovereign-audit-entry"));
        }

        // A refusal names its refused decision.
        var (_, sgKey) = await fixture.NewTenantAsync(jurisdiction: "SG");
        using var sgClient = new HttpClient { BaseAddress = fixture.Address };
        sgClient.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", sgKey);
        using var refusal = await sgClient.PostAsJsonAsync("/v1/chat/completions", new { model = ConsoleFixture.Model, messages, max_tokens = 3 });
        Assert.Equal(403, (int)refusal.StatusCode);
        var refusedId = refusal.Headers.GetValues("x-sovereign-audit-id").Single();
        var decision = Assert.Single((await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?id={refusedId}", null)).GetProperty("data").EnumerateArray());
        Assert.Equal("inference.refused", decision.GetProperty("action").GetString());
        Assert.EndsWith($"{decision.GetProperty("sequence").GetInt64()}:{decision.GetProperty("hash").GetString()}", refusal.Headers.GetValues("x-sovereign-audit-entry").Single(), StringComparison.Ordinal);

        // The auditor's verifier: the kept header against the tenant's export.
        var directory = Directory.CreateTempSubdirectory("sovereign-audit-entry-").FullName;
        try
        {
            var export = Path.Combine(directory, "tenant.jsonl");
            var (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--tenant", tenant, "--data-dir", fixture.DataDirectory, "-o", export);
            Assert.True(exit == 0, stderr);
            var publicKey = await AuditVerifyScript.PublicKeyAsync(fixture.DataDirectory, Path.Combine(directory, "operator.pem"));
            var kept = Path.Combine(directory, "responses.jsonl");
            await File.WriteAllTextAsync(kept, JsonSerializer.Serialize(new { status = 200, audit_id = auditId, jurisdiction = "TH", audit_entry = named }) + "\n");
            var (mjsExit, mjsOut) = await AuditVerifyScript.RunAsync(export, publicKey, "--responses", kept);
            Assert.True(mjsExit == 0, mjsOut);

            // A header whose hash the export does not hold at that sequence: the log and the response disagree.
            var forged = named[..^64] + new string('0', 64);
            await File.WriteAllTextAsync(kept, JsonSerializer.Serialize(new { status = 200, audit_id = auditId, jurisdiction = "TH", audit_entry = forged }) + "\n");
            (mjsExit, mjsOut) = await AuditVerifyScript.RunAsync(export, publicKey, "--responses", kept);
            Assert.True(mjsExit == 3, mjsOut);
            Assert.Contains("WitnessMismatch: x-sovereign-audit-entry states hash", mjsOut, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
