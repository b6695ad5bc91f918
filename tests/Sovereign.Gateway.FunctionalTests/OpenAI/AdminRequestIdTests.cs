using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.OpenAI;

/// <summary>
/// The operator's changes carry the <c>x-request-id</c> their answer stated into the audit log. On the console's
/// server, which has tenants already: a tenant created on the shared server would end its anonymous access.
/// </summary>
[Collection(Console.ConsoleCollection.Name)]
public sealed class AdminRequestIdTests(Console.ConsoleFixture fixture)
{
    /// <summary>
    /// An operator's change is audited with the id its answer stated (<c>details.request_id</c>, as inference entries
    /// carry theirs), so "what did request req_... change" has an answer in the log. Admin entries carried none.
    /// </summary>
    [Fact]
    public async Task AdminActions_AreAuditedWithTheRequestIdTheirAnswerStated()
    {
        var admin = fixture.Admin;
        var tenant = "rid-" + Guid.NewGuid().ToString("N")[..8];
        var plan = tenant + "-plan";

        async Task<string> SendAsync(HttpMethod method, string path, string json, int status)
        {
            using var response = await admin.SendAsync(new HttpRequestMessage(method, path) { Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json") });
            Assert.True((int)response.StatusCode == status, $"{method} {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            return Assert.Single(response.Headers.GetValues("x-request-id"));
        }

        var stated = new Dictionary<string, string>
        {
            ["plan.update"] = await SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}", """{"currency":"THB"}""", 200),
            ["tenant.create"] = await SendAsync(HttpMethod.Post, "/admin/v1/tenants", $$$"""{"id":"{{{tenant}}}","plan":"{{{plan}}}","policy":{"allowed_jurisdictions":["TH"]}}""", 201),
            ["key.create"] = await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{tenant}/keys", """{"name":"k"}""", 201),
            ["limits.update"] = await SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", """{"budgets":[{"period":"day","amount":10}]}""", 200),
        };

        var entries = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/audit?order=desc&limit=200")).RootElement.GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("kind").GetString() == "admin").ToList();
        foreach (var (action, id) in stated)
        {
            var entry = entries.First(e => e.GetProperty("action").GetString() == action
                && (action == "plan.update" ? e.GetProperty("details").GetProperty("plan").GetString() == plan : e.GetProperty("tenant").GetString() == tenant));
            Assert.True(entry.GetProperty("details").TryGetProperty("request_id", out var recorded), $"{action}: no request_id in {entry}");
            Assert.Equal(id, recorded.GetString());
        }

        Assert.Equal(stated.Count, stated.Values.Distinct().Count());
    }
}
