using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// An auditor holds the documents, an export and the responses they were given, not our code:
/// <c>tools/audit-verify.mjs</c> is a verifier written from <c>src/Sovereign.Residency/Audit/FORMAT.md</c> alone (Node,
/// as <see cref="OpenAI.OfficialNodeSdkTests"/> needs). Run against a live gateway's export, it must accept it, tie each
/// response's <c>x-sovereign-audit-id</c> and <c>x-sovereign-jurisdiction</c> and the tenant's usage to the entries, and
/// agree with <c>sovereign audit verify-export</c> on what is tampering.
/// </summary>
[Collection(ResidencyCollection.Name)]
public sealed class IndependentAuditVerifierTests(ResidencyFixture fixture) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-auditor-").FullName;

    internal static string Repository
    {
        get
        {
            var directory = new DirectoryInfo(AppContext.BaseDirectory);
            while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Sovereign.slnx")))
            {
                directory = directory.Parent;
            }

            return directory?.FullName ?? throw new DirectoryNotFoundException("The repository root (Sovereign.slnx) was not found.");
        }
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task AuditVerifyMjs_LiveExportResponsesAndUsage_VerifyAndAHiddenEntryOrForgedHeaderIsCaught()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var thTenant = "audited-th-" + suffix;
        var sgTenant = "audited-sg-" + suffix;
        var thKey = await fixture.CreateTenantWithKeyAsync(thTenant, new { allowed_jurisdictions = new[] { "TH" } });
        var sgKey = await fixture.CreateTenantWithKeyAsync(sgTenant, new { allowed_jurisdictions = new[] { "SG" } });

        var th = new List<string> { await SendAsync(thKey, false, 200), await SendAsync(thKey, true, 200) };
        var sg = new List<string> { await SendAsync(sgKey, false, 403) };
        using (var tenantClient = fixture.TenantClient(thKey))
        {
            await File.WriteAllTextAsync(Path.Combine(_directory, "usage.json"), await tenantClient.GetStringAsync("/v1/usage?group_by=model,day"));
            await File.WriteAllTextAsync(Path.Combine(_directory, "page.json"), await tenantClient.GetStringAsync("/v1/audit?limit=100"));
        }

        var publicKey = Path.Combine(_directory, "operator.pem");
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", fixture.ThDataDirectory);
        Assert.True(exit == 0, stderr);
        await File.WriteAllTextAsync(publicKey, stdout);
        var thExport = await ExportAsync(thTenant);
        var sgExport = await ExportAsync(sgTenant);
        var thResponses = await WriteResponsesAsync("th-responses.jsonl", th);
        var sgResponses = await WriteResponsesAsync("sg-responses.jsonl", sg);

        var page = Path.Combine(_directory, "page.json");
        (exit, var output) = await AuditVerifyScript.RunAsync(thExport, publicKey, "--responses", thResponses, "--usage", Path.Combine(_directory, "usage.json"), "--audit-page", page);
        Assert.True(exit == 0, output);
        // tenant.create, key.create, and a decision and an outcome per request: the tenant API's entries re-hash (with
        // their previous_hash) and are the signed export's.
        Assert.Contains("2 responses, 1 usage rows and 6 API entries checked: VERIFIED", output, StringComparison.Ordinal);

        // The tenant API's view changed (a jurisdiction) no longer hashes to what the export signs.
        var pageText = await File.ReadAllTextAsync(page);
        await File.WriteAllTextAsync(page, pageText.Replace("\"jurisdiction\":\"TH\"", "\"jurisdiction\":\"SG\"", StringComparison.Ordinal));
        (exit, output) = await AuditVerifyScript.RunAsync(thExport, publicKey, "--audit-page", page);
        Assert.True(exit == 3, output);
        Assert.Contains("re-hashes to", output, StringComparison.Ordinal);
        (exit, output) = await AuditVerifyScript.RunAsync(sgExport, publicKey, "--responses", sgResponses);
        Assert.True(exit == 0, output);

        // A response header forged after the fact (the TH answer shown as having run in SG) matches no entry.
        var forged = await WriteResponsesAsync("forged.jsonl", [th[0].Replace("\"jurisdiction\":\"TH\"", "\"jurisdiction\":\"SG\"", StringComparison.Ordinal)]);
        (exit, output) = await AuditVerifyScript.RunAsync(thExport, publicKey, "--responses", forged);
        Assert.True(exit == 3, output);
        Assert.Contains("the response said SG", output, StringComparison.Ordinal);

        // The tenant's own outcome entry shown as another tenant's: the chain and checkpoint still hold, the signed
        // entriesDigest does not. Both verifiers say so.
        var lines = await File.ReadAllLinesAsync(thExport);
        var target = Array.FindIndex(lines, l => l.Contains("\"inference.completed\"", StringComparison.Ordinal));
        Assert.True(target > 0, string.Join('\n', lines));
        var entry = JsonNode.Parse(lines[target])!.AsObject();
        lines[target] = new JsonObject { ["type"] = "redacted", ["sequence"] = entry["sequence"]!.GetValue<long>(), ["previousHash"] = entry["previousHash"]!.GetValue<string>(), ["hash"] = entry["hash"]!.GetValue<string>() }.ToJsonString();
        var hidden = Path.Combine(_directory, "hidden.jsonl");
        await File.WriteAllLinesAsync(hidden, lines);
        (exit, output) = await AuditVerifyScript.RunAsync(hidden, publicKey);
        Assert.True(exit == 3, output);
        Assert.Contains("entriesDigest", output, StringComparison.Ordinal);
        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", hidden, "--public-key", publicKey);
        Assert.True(exit == 3, stdout + stderr);
        Assert.Contains("OutOfScope", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RateLimited_AllowedThenRefused_TheOutcomeEntryNamesTheRule()
    {
        var tenant = "audited-rpm-" + Guid.NewGuid().ToString("N")[..8];
        var key = await fixture.CreateTenantWithKeyAsync(tenant, new { allowed_jurisdictions = new[] { "TH" } });
        await fixture.AdminAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { rate_limits = new[] { new { requests_per_minute = 1 } } }, 200);

        await SendAsync(key, false, 200);
        var refused = JsonNode.Parse(await SendAsync(key, false, 429))!["audit_id"]!.GetValue<string>();

        using var client = fixture.TenantClient(key);
        var page = JsonNode.Parse(await client.GetStringAsync("/v1/audit?limit=100"))!["data"]!.AsArray();
        var outcome = page.Single(e => e!["action"]!.GetValue<string>() == "inference.completed" && e["details"]!["request_id"]!.GetValue<string>() == refused)!;
        Assert.Equal("rejected", outcome["details"]!["outcome"]!.GetValue<string>());
        // Before, the chain said only "rejected": why was in the usage ledger alone, which is not hash-chained.
        Assert.Equal("rate_limit_exceeded", outcome["details"]!["refusal_code"]?.GetValue<string>());
    }

    /// <summary>One chat request as the tenant; the response's evidence as the auditor records it.</summary>
    private async Task<string> SendAsync(string key, bool stream, int expectedStatus)
    {
        using var client = fixture.TenantClient(key);
        var body = $$"""{"model":"{{ResidencyFixture.Model}}","messages":[{"role":"user","content":"hello"}],"max_tokens":3,"stream":{{(stream ? "true" : "false")}}}""";
        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expectedStatus, text);
        string Header(string name) => response.Headers.TryGetValues(name, out var values) ? values.Single() : "";
        return JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["status"] = (int)response.StatusCode,
            ["request_id"] = Header("x-request-id"),
            ["audit_id"] = Header("x-sovereign-audit-id"),
            ["jurisdiction"] = Header("x-sovereign-jurisdiction"),
        });
    }

    private async Task<string> WriteResponsesAsync(string name, IEnumerable<string> responses)
    {
        var path = Path.Combine(_directory, name);
        await File.WriteAllLinesAsync(path, responses);
        return path;
    }

    private async Task<string> ExportAsync(string tenant)
    {
        var path = Path.Combine(_directory, tenant + ".jsonl");
        var (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", fixture.ThDataDirectory, "--tenant", tenant, "-o", path);
        Assert.True(exit == 0, stderr);
        return path;
    }
}
