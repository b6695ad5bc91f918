using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// Query strings follow one rule (<c>QueryParameters</c>): a GET or DELETE under /v1 and every admin endpoint takes
/// the parameters it declares; any other is 400 <c>unknown_parameter</c> naming it, and a repeated one 400
/// <c>invalid_value</c>. A misspelt filter used to be ignored: <c>/admin/v1/usage?tenat=x</c> answered every tenant's
/// usage, <c>/v1/usage?form=...</c> all time, and <c>?model=a&amp;model=b</c> searched for the model "a,b".
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class QueryParameterTests(ConsoleFixture fixture)
{
    public static TheoryData<string, string, string, string> Refused => new()
    {
        // path, who (admin | tenant), param, code
        { "/admin/v1/usage?tenat=th-hospital", "admin", "tenat", "unknown_parameter" },
        { "/admin/v1/usage?model=a&model=b", "admin", "model", "invalid_value" },
        { "/admin/v1/tenants/th-hospital/invoice?format=csv&form=2026-01-01", "admin", "form", "unknown_parameter" },
        { "/admin/v1/tenants?order=desc", "admin", "order", "unknown_parameter" },
        { "/admin/v1/tenants?limit=5&limit=6", "admin", "limit", "invalid_value" },
        { "/admin/v1/audit?tennant=th-hospital", "admin", "tennant", "unknown_parameter" },
        { "/admin/v1/audit?limit=1&limit=2", "admin", "limit", "invalid_value" },
        // .NET's number parsing skips trailing NULs (these were read as 1 and 5) and enum parsing trims a newline: all were 200.
        { "/admin/v1/audit?limit=1%00", "admin", "limit", "invalid_value" },
        { "/v1/audit?after=5%00%00", "tenant", "after", "invalid_value" },
        { "/v1/usage?group_by=model%0A", "tenant", "group_by", "invalid_value" },
        { "/v1/usage?form=2026-01-01", "tenant", "form", "unknown_parameter" },
        { "/v1/usage?tenant=sg-bank", "tenant", "tenant", "unknown_parameter" },
        { "/v1/models?page=2", "tenant", "page", "unknown_parameter" },
        { "/v1/audit?before=3", "tenant", "before", "unknown_parameter" },
        { "/v1/limits?key=x", "tenant", "key", "unknown_parameter" },
        { "/v1/responses/resp_missing?stream=true", "tenant", "stream", "unsupported_parameter" },
        { "/v1/responses/resp_missing?include_obfuscation=maybe", "tenant", "include_obfuscation", "invalid_value" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public async Task UnknownOrRepeatedParameter_Is400NamingIt(string path, string who, string param, string code)
    {
        using var response = await ClientFor(who).GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, $"{path}: {(int)response.StatusCode} {text}");
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
    }

    /// <summary>
    /// A period that ends before it starts names both times in UTC as ISO 8601 is usually written (unix seconds too):
    /// it said "from (2026-12-06T00:00:00.0000000+00:00) is after to (...)", seven decimals of nothing and an offset.
    /// </summary>
    [Theory]
    [InlineData("/admin/v1/usage?from=2026-12-06&to=2026-12-05", "admin")]
    [InlineData("/admin/v1/audit?from=2026-12-06&to=2026-12-05", "admin")]
    [InlineData("/v1/usage?from=2026-12-06&to=1796428800", "tenant")]
    public async Task APeriodThatEndsBeforeItStarts_NamesBothTimesReadably(string path, string who)
    {
        using var response = await ClientFor(who).GetAsync(path);

        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, $"{path}: {(int)response.StatusCode} {text}");
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("from", error.GetProperty("param").GetString());
        Assert.Equal("from (2026-12-06T00:00:00Z) is after to (2026-12-05T00:00:00Z).", error.GetProperty("message").GetString());
    }

    /// <summary>
    /// A to before 1970 without a from was refused as "from (1970-01-01T00:00:00Z) is after to (...)", param from: a
    /// time the client never sent, and the field it did send not named.
    /// </summary>
    [Theory]
    [InlineData("/admin/v1/usage?to=1969-12-31", "admin")]
    [InlineData("/admin/v1/audit?to=0001-01-01", "admin")]
    [InlineData("/v1/usage?to=1960-01-01", "tenant")]
    public async Task AToBeforeTheEpochWithoutFrom_NamesTo(string path, string who)
    {
        using var response = await ClientFor(who).GetAsync(path);

        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, $"{path}: {(int)response.StatusCode} {text}");
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("to", error.GetProperty("param").GetString());
        Assert.StartsWith("to (", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("before 1970-01-01T00:00:00Z", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    /// <summary>A misspelt or blank tenant answered 200 with an empty list, which reads as "no usage" or "no entries".</summary>
    [Theory]
    [InlineData("/admin/v1/usage?tenant=th-hospitl", 404, "tenant_not_found")]
    [InlineData("/admin/v1/usage?tenant=%20", 400, "invalid_value")]
    [InlineData("/admin/v1/audit?tenant=th-hospitl", 404, "tenant_not_found")]
    [InlineData("/admin/v1/audit?tenant=TH-Hospital", 400, "invalid_value")]
    public async Task ATenantFilterThatIsNoTenant_IsRefusedNamingIt_NotAnEmptyList(string path, int status, string code)
    {
        using var response = await ClientFor("admin").GetAsync(path);

        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"{path}: {(int)response.StatusCode} {text}");
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("tenant", error.GetProperty("param").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("/admin/v1/usage?tenant=anonymous&group_by=day", "admin")] // the gateway's own records stay readable
    [InlineData("/admin/v1/usage?tenant=th-hospital&group_by=day&from=2026-01-01T00:00:00Z", "admin")]
    [InlineData("/admin/v1/tenants/th-hospital/invoice?format=json&from=2026-01-01", "admin")]
    [InlineData("/admin/v1/audit?tenant=th-hospital&order=desc&limit=1", "admin")]
    [InlineData("/v1/usage?group_by=model&from=2026-01-01T00:00:00Z", "tenant")]
    [InlineData("/v1/audit?LIMIT=2&Order=desc", "tenant")]
    [InlineData("/v1/models", "tenant")]
    [InlineData("/v1/models?api-version=2024-10-21", "tenant")] // Azure OpenAI clients add it to every request
    [InlineData("/v1/usage?api-version=2024-10-21&group_by=model", "tenant")]
    public async Task DeclaredParameters_AreServed(string path, string who)
    {
        using var response = await ClientFor(who).GetAsync(path);
        Assert.True((int)response.StatusCode == 200, $"{path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    [Fact]
    public async Task PostBodiesIgnoreTheQueryString_UnknownUrlsStay404_AndTheTokenComesFirst()
    {
        // OpenAI-compatible clients add their own query parameters (api-version); inference takes its parameters in the body.
        using var chat = await ClientFor("tenant").PostAsJsonAsync("/v1/chat/completions?api-version=2024-10-21",
            new { model = ConsoleFixture.Model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 2 });
        Assert.Equal(200, (int)chat.StatusCode);

        using var unknownUrl = await ClientFor("tenant").GetAsync("/v1/nowhere?x=1");
        Assert.Equal(404, (int)unknownUrl.StatusCode);

        using var anonymous = new HttpClient { BaseAddress = fixture.Address };
        using var noToken = await anonymous.GetAsync("/admin/v1/usage?tenat=x");
        Assert.Equal(401, (int)noToken.StatusCode);
    }

    private HttpClient ClientFor(string who)
    {
        if (who == "admin")
        {
            return fixture.Admin;
        }

        var client = new HttpClient { BaseAddress = fixture.Address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", fixture.HospitalKey);
        return client;
    }
}
