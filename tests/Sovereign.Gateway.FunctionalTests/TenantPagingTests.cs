using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// The tenant list is read in pages (<c>limit</c>, <c>after</c>, <c>has_more</c>, <c>total</c>), so an operator with
/// 100,000 tenants reads them in bounded answers: it answered every tenant in one body, built whole in memory.
/// </summary>
[Collection(ResidencyCollection.Name)]
public sealed class TenantPagingTests(ResidencyFixture fixture)
{
    [Fact]
    public async Task Pages_AreBoundedByLimit_AndWalkEveryTenantOnceInIdOrder()
    {
        var created = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            var id = $"pager-{i}";
            created.Add(id);
            await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, policy = new { allowed_jurisdictions = new[] { "TH" } } }, 201);
        }

        var seen = new List<string>();
        var page = await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/tenants?limit=2", null, 200);
        var total = page.GetProperty("total").GetInt64();
        while (true)
        {
            var ids = Ids(page);
            Assert.InRange(ids.Count, 1, 2);
            Assert.Equal("list", page.GetProperty("object").GetString());
            Assert.Equal(ids[0], page.GetProperty("first_id").GetString());
            Assert.Equal(ids[^1], page.GetProperty("last_id").GetString());
            seen.AddRange(ids);
            if (!page.GetProperty("has_more").GetBoolean())
            {
                break;
            }

            page = await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/tenants?limit=2&after={ids[^1]}", null, 200);
        }

        // Every tenant exactly once, in id order (ordinal: ids are lower-case slugs), and as many as the count says.
        Assert.Equal(seen.Distinct().Count(), seen.Count);
        Assert.Equal(seen.Order(StringComparer.Ordinal), seen);
        Assert.Equal(total, seen.Count);
        Assert.All(created, id => Assert.Contains(id, seen));

        // Without a limit: one page of at most 1,000, all of these few.
        var whole = await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/tenants", null, 200);
        Assert.Equal(seen, Ids(whole));
        Assert.False(whole.GetProperty("has_more").GetBoolean());

        // After the last id: an empty page, no more.
        var beyond = await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/tenants?after={seen[^1]}", null, 200);
        Assert.Empty(Ids(beyond));
        Assert.False(beyond.GetProperty("has_more").GetBoolean());
    }

    [Theory]
    [InlineData("limit=0", "limit")]
    [InlineData("limit=1001", "limit")]
    [InlineData("limit=ten", "limit")]
    [InlineData("after=Not%20An%20Id", "after")]
    public async Task BadPaging_Is400NamingTheField(string query, string param)
    {
        var error = await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/tenants?" + query, null, 400);
        Assert.Equal(param, error.GetProperty("error").GetProperty("param").GetString());
    }

    private static List<string> Ids(JsonElement page) =>
        page.GetProperty("data").EnumerateArray().Select(t => t.GetProperty("id").GetString()!).ToList();
}
