using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// Every JSON answer says <c>application/json; charset=utf-8</c>, as ASP.NET Core's JSON results and OpenAI do: the
/// errors (authentication, validation, an unknown model or URL, a wrong method, a rate limit, the operator's API)
/// said <c>application/json</c> alone while the successes said the charset, so a client comparing the header whole,
/// or decoding by the declared charset, read the two otherwise.
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class JsonContentTypeTests(MeteringFixture fixture)
{
    private const string Utf8Json = "application/json; charset=utf-8";
    private const string Chat = """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":2,"temperature":0}""";

    public static TheoryData<string, string, string?, bool, int> Errors => new()
    {
        // method, path, body, with the tenant's key, status
        { "GET", "/v1/models", null, false, 401 },
        { "POST", "/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}""", true, 400 },
        { "POST", "/v1/chat/completions", """{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}""", true, 404 },
        { "POST", "/v1/chat/completions", "{not json", true, 400 },
        { "DELETE", "/v1/models/stories", null, true, 405 },
        { "GET", "/v1/no-such-endpoint", null, true, 404 },
        { "GET", "/admin/v1/tenants", null, false, 401 },
    };

    [Theory]
    [MemberData(nameof(Errors))]
    public async Task ErrorAnswers_SayJsonInUtf8_AsSuccessesDo(string method, string path, string? body, bool withKey, int status)
    {
        var (_, key) = await fixture.NewTenantAsync();
        using var client = withKey ? fixture.TenantClient(key) : new HttpClient { BaseAddress = fixture.Address };
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json") };

        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        Assert.True((int)response.StatusCode == status, text);
        Assert.Equal(Utf8Json, response.Content.Headers.ContentType?.ToString());
        Assert.False(string.IsNullOrEmpty(JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("message").GetString()));
    }

    [Fact]
    public async Task TheOperatorsApi_ErrorsAndSuccesses_SayJsonInUtf8()
    {
        using var missing = await fixture.Admin.GetAsync("/admin/v1/tenants/no-such-tenant");
        Assert.Equal(404, (int)missing.StatusCode);
        Assert.Equal(Utf8Json, missing.Content.Headers.ContentType?.ToString());

        using var unknownField = await fixture.Admin.PutAsync("/admin/v1/plans/standard", new StringContent("""{"currency":"EUR","weight":1,"colour":"red"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(400, (int)unknownField.StatusCode);
        Assert.Equal(Utf8Json, unknownField.Content.Headers.ContentType?.ToString());

        using var list = await fixture.Admin.GetAsync("/admin/v1/tenants");
        Assert.Equal(200, (int)list.StatusCode);
        Assert.Equal(Utf8Json, list.Content.Headers.ContentType?.ToString());
    }

    [Fact]
    public async Task ARateLimitsRefusal_AndTheAnswerBeforeIt_SayJsonInUtf8()
    {
        var (_, key) = await fixture.NewTenantAsync(new { rate_limits = new[] { new { requests_per_minute = 1 } } });
        using var client = fixture.TenantClient(key);

        // Held: the bucket refills one request a minute, and a paused machine could refill it between the two calls.
        using var held = fixture.Clock.Hold();
        using var served = await client.PostAsync("/v1/chat/completions", new StringContent(Chat, Encoding.UTF8, "application/json"));
        using var limited = await client.PostAsync("/v1/chat/completions", new StringContent(Chat, Encoding.UTF8, "application/json"));

        Assert.Equal(200, (int)served.StatusCode);
        Assert.Equal(Utf8Json, served.Content.Headers.ContentType?.ToString());
        Assert.Equal(429, (int)limited.StatusCode);
        Assert.Equal(Utf8Json, limited.Content.Headers.ContentType?.ToString());
        Assert.Equal("rate_limit_exceeded", JsonDocument.Parse(await limited.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
    }
}
