using System.Net.Http.Json;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// The audit log is read in pages, as OpenAI pages its lists (<c>limit</c>, <c>order</c>, <c>after</c>,
/// <c>has_more</c>), so a tenant or an operator can read every entry of a log of any size, newest first included.
/// </summary>
[Collection(ResidencyCollection.Name)]
public sealed class AuditPagingTests(ResidencyFixture fixture)
{
    [Fact]
    public async Task PagesInEitherOrder_CoverEveryEntryOnce_AndBadPagingIs400NamingTheField()
    {
        var key = await fixture.CreateTenantWithKeyAsync("audit-pager", new { allowed_jurisdictions = new[] { "TH" } });
        using var tenant = fixture.TenantClient(key);
        for (var i = 0; i < 3; i++)
        {
            using var response = await tenant.PostAsJsonAsync("/v1/chat/completions",
                new { model = ResidencyFixture.Model, messages = new[] { new { role = "user", content = "Once upon a time" } }, max_tokens = 1 });
            Assert.Equal(200, (int)response.StatusCode);
        }

        var all = Sequences(await GetAsync(tenant, "/v1/audit", 200));
        Assert.True(all.Count >= 8, $"{all.Count} entries");
        Assert.Equal(all.Order(), all);

        Assert.Equal(all, await ReadAllPagesAsync(tenant, "/v1/audit?limit=3"));
        Assert.Equal(all.AsEnumerable().Reverse(), await ReadAllPagesAsync(tenant, "/v1/audit?order=desc&limit=3"));

        var newest = await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/audit?tenant=audit-pager&order=desc&limit=1", null, 200);
        Assert.Equal([all[^1]], Sequences(newest));
        Assert.True(newest.GetProperty("has_more").GetBoolean());

        foreach (var (query, param) in new[]
        {
            ("limit=0", "limit"), ("limit=10001", "limit"), ("limit=ten", "limit"), ("after=-1", "after"), ("after=1.5", "after"),
            ("order=sideways", "order"), ("from=2026-12-02&to=2026-12-01", "from"),
        })
        {
            var error = await GetAsync(tenant, "/v1/audit?" + query, 400);
            Assert.Equal(param, error.GetProperty("error").GetProperty("param").GetString());
        }
    }

    [Fact]
    public async Task TimeInMilliseconds_Is400NamingTheField_NotAnEmptyPage()
    {
        // Entries carry unix milliseconds; from/to take seconds. A millisecond value (an entry's own timestamp pasted
        // back) was read as seconds past year 9999 and answered an empty list: "nothing happened since then".
        var key = await fixture.CreateTenantWithKeyAsync("audit-clock", new { allowed_jurisdictions = new[] { "TH" } });
        using var tenant = fixture.TenantClient(key);
        using (var response = await tenant.PostAsJsonAsync("/v1/chat/completions",
            new { model = ResidencyFixture.Model, messages = new[] { new { role = "user", content = "Once upon a time" } }, max_tokens = 1 }))
        {
            Assert.Equal(200, (int)response.StatusCode);
        }

        var first = (await GetAsync(tenant, "/v1/audit?limit=1", 200)).GetProperty("data")[0];
        var milliseconds = first.GetProperty("timestamp").GetInt64();
        foreach (var path in new[] { $"/v1/audit?from={milliseconds}", $"/v1/audit?to={milliseconds}", $"/v1/usage?from={milliseconds}", "/v1/audit?to=253402300800" })
        {
            var error = (await GetAsync(tenant, path, 400)).GetProperty("error");
            Assert.Equal(path.Contains("to=", StringComparison.Ordinal) ? "to" : "from", error.GetProperty("param").GetString());
            Assert.Contains("milliseconds", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        Assert.Contains(first.GetProperty("sequence").GetInt64(), Sequences(await GetAsync(tenant, $"/v1/audit?from={milliseconds / 1000}", 200)));
        Assert.Contains(first.GetProperty("sequence").GetInt64(), Sequences(await GetAsync(tenant, "/v1/audit?to=253402300799", 200)));
    }

    private static async Task<List<long>> ReadAllPagesAsync(HttpClient client, string first)
    {
        var sequences = new List<long>();
        var page = await GetAsync(client, first, 200);
        while (true)
        {
            var data = Sequences(page);
            Assert.InRange(data.Count, 1, 3);
            Assert.Equal(data[^1], page.GetProperty("last_id").GetInt64());
            sequences.AddRange(data);
            if (!page.GetProperty("has_more").GetBoolean())
            {
                return sequences;
            }

            page = await GetAsync(client, $"{first}&after={data[^1]}", 200);
        }
    }

    private static List<long> Sequences(JsonElement page) =>
        page.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("sequence").GetInt64()).ToList();

    private static async Task<JsonElement> GetAsync(HttpClient client, string path, int expectedStatus)
    {
        using var response = await client.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expectedStatus, $"GET {path}: expected {expectedStatus}, got {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
