using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// Usage is read in pages (<c>limit</c>, <c>after</c>, <c>has_more</c>, <c>last_id</c>): the default grouping (tenant,
/// model, day) over a year of 100,000 tenants is a row per tenant and day, and it was answered in one body.
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class UsagePagingTests(MeteringFixture fixture)
{
    private const string Body = """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":2,"temperature":0}""";

    [Theory]
    [InlineData("group_by=tenant,model,day")]
    [InlineData("group_by=day,key")]
    [InlineData("group_by=tenant")]
    public async Task Pages_AreBoundedByLimit_AndWalkEveryRowOnceInOrder(string grouping)
    {
        for (var i = 0; i < 2; i++)
        {
            var (_, key) = await fixture.NewTenantAsync();
            using var client = fixture.TenantClient(key);
            using var response = await client.PostAsync("/v1/chat/completions", new StringContent(Body, Encoding.UTF8, "application/json"));
            Assert.Equal(200, (int)response.StatusCode);
        }

        var whole = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/usage?" + grouping, null, 200);
        Assert.False(whole.GetProperty("has_more").GetBoolean());
        var all = Rows(whole);
        Assert.True(all.Count >= 2, $"{all.Count} rows");

        var walked = new List<string>();
        var page = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?{grouping}&limit=1", null, 200);
        while (true)
        {
            var rows = Rows(page);
            Assert.Single(rows);
            walked.AddRange(rows);
            if (!page.GetProperty("has_more").GetBoolean())
            {
                break;
            }

            page = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?{grouping}&limit=1&after={Uri.EscapeDataString(page.GetProperty("last_id").GetString()!)}", null, 200);
        }

        Assert.Equal(all, walked);
    }

    [Theory]
    [InlineData("limit=0", "limit")]
    [InlineData("limit=10001", "limit")]
    [InlineData("after=nonsense", "after")]
    public async Task BadPaging_Is400NamingTheField(string query, string param)
    {
        var error = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/usage?" + query, null, 400);
        Assert.Equal(param, error.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task ACursorOfAnotherGrouping_Is400_NotAWrongPage()
    {
        var (_, key) = await fixture.NewTenantAsync();
        using (var client = fixture.TenantClient(key))
        using (var response = await client.PostAsync("/v1/chat/completions", new StringContent(Body, Encoding.UTF8, "application/json")))
        {
            Assert.Equal(200, (int)response.StatusCode);
        }

        var cursor = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/usage?group_by=tenant&limit=1", null, 200)).GetProperty("last_id").GetString()!;
        var error = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?group_by=day,tenant&after={Uri.EscapeDataString(cursor)}", null, 400);
        Assert.Equal("after", error.GetProperty("error").GetProperty("param").GetString());
    }

    /// <summary>Each row whole, as text: equal rows are the same grouped values and the same sums.</summary>
    private static List<string> Rows(JsonElement page) =>
        page.GetProperty("data").EnumerateArray().Select(r => r.GetRawText()).ToList();
}
