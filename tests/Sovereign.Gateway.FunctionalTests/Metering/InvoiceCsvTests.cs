using System.Text;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>The invoice CSV opened in a spreadsheet: no cell of it is a formula.</summary>
public sealed class InvoiceCsvTests(LedgerTamperFixture fixture) : IClassFixture<LedgerTamperFixture>
{
    [Fact]
    public async Task ModelIdsThatReadAsFormulas_AreTextInTheInvoiceCsv()
    {
        // Model ids are any visible text: whoever declares a node's models chose '-2+3' (a spreadsheet shows 1) or
        // '=HYPERLINK(...)' (a link that sends a cell away), and the CSV wrote them bare (found by explorer13).
        string[] formulas = ["-2+3", "=HYPERLINK(\"http://evil.example/\",\"x\")", "@SUM(1)", "+1"];
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes", new
        {
            id = "sg-formulas",
            jurisdiction = "SG",
            base_url = "http://127.0.0.1:9",
            models = formulas.Select((id, i) => new { id, upstream = $"m{i}", capacity = 1, kind = "chat" }).ToArray(),
        }, 201);
        const string tenant = "csv-formulas";
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = tenant, plan = "standard", policy = new { allowed_jurisdictions = new[] { "EU" } } }, 201);
        var key = (await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{tenant}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        using var client = fixture.TenantClient(key);
        foreach (var model in formulas)
        {
            // Refused (the node is in SG, the tenant's policy EU), and recorded in its usage at no cost under the model's id.
            using var refused = await client.PostAsync("/v1/chat/completions", new StringContent(
                System.Text.Json.JsonSerializer.Serialize(new { model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 2 }), Encoding.UTF8, "application/json"));
            Assert.Equal(403, (int)refused.StatusCode);
        }

        var csv = await fixture.Admin.GetStringAsync($"/admin/v1/tenants/{tenant}/invoice?format=csv");
        Assert.Contains(",'-2+3,", csv, StringComparison.Ordinal);
        Assert.Contains(",\"'=HYPERLINK(\"\"http://evil.example/\"\",\"\"x\"\")\",", csv, StringComparison.Ordinal);
        Assert.Contains(",'@SUM(1),", csv, StringComparison.Ordinal);
        Assert.Contains(",'+1,", csv, StringComparison.Ordinal);
        Assert.DoesNotContain(",-2+3,", csv, StringComparison.Ordinal);
    }
}
