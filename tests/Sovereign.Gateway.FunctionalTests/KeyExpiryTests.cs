using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>Keys issued with an expiry: validated when issued, listed, and refused once past it.</summary>
[Collection(ResidencyCollection.Name)]
public sealed class KeyExpiryTests(ResidencyFixture fixture)
{
    private static StringContent Chat() =>
        new("""{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":2}""", Encoding.UTF8, "application/json");

    [Fact]
    public async Task AKeyWithExpiresIn_Works_AndIsListedWithItsExpiry()
    {
        var before = DateTimeOffset.UtcNow;
        var created = await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants/th-hospital/keys", new { name = "a-day", expires_in = 86_400 }, 201);
        var keyId = created.GetProperty("key").GetProperty("id").GetString()!;
        using var client = fixture.TenantClient(created.GetProperty("secret").GetString()!);

        using var response = await client.PostAsync("/v1/chat/completions", Chat());
        var own = JsonDocument.Parse(await client.GetStringAsync("/v1/keys")).RootElement.GetProperty("data").EnumerateArray().Single(k => k.GetProperty("id").GetString() == keyId);

        Assert.Equal(200, (int)response.StatusCode);
        var expires = DateTimeOffset.FromUnixTimeMilliseconds(own.GetProperty("expires_at").GetInt64());
        Assert.InRange(expires, before.AddDays(1).AddSeconds(-1), DateTimeOffset.UtcNow.AddDays(1).AddSeconds(1));
        var audit = await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/audit?tenant=th-hospital&order=desc&limit=50", null, 200);
        var entry = audit.GetProperty("data").EnumerateArray().First(e => e.GetProperty("action").GetString() == "key.create"
            && e.GetProperty("details").GetProperty("key_id").GetString() == keyId);
        Assert.Equal(expires, DateTimeOffset.Parse(entry.GetProperty("details").GetProperty("expires_at").GetString()!, System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task AKeyPastItsExpiry_Is401KeyExpired_NamingTheKeyAndTime()
    {
        // Issued directly in the store with an expiry already past (the API refuses one); first use loads it from there.
        var (id, secret, prefix, hash) = ApiKeySecrets.Create();
        var expired = DateTimeOffset.UtcNow.AddMinutes(-5);
        await fixture.Th.Services.GetRequiredService<ControlPlaneStore>().InsertKeyAsync(
            new ApiKeyRecord(id, "th-hospital", prefix, hash, "expired", null, expired.AddDays(-1).ToUnixTimeMilliseconds(), null, expired.ToUnixTimeMilliseconds()));
        using var client = fixture.TenantClient(secret);

        using var response = await client.PostAsync("/v1/chat/completions", Chat());

        Assert.Equal(401, (int)response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("key_expired", error.GetProperty("code").GetString());
        Assert.Contains(id, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains(expired.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture), error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExpiresAtAsUnixSeconds_AsANumberOrDigits_IssuesAKeyExpiringThen()
    {
        // OpenAI-style APIs state times as unix seconds; expires_at took only ISO 8601 text (a number was a 400).
        var at = DateTimeOffset.UtcNow.AddDays(30).ToUnixTimeSeconds();
        foreach (var body in new object[] { new { expires_at = at }, new { expires_at = at.ToString(System.Globalization.CultureInfo.InvariantCulture) } })
        {
            var created = await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants/th-hospital/keys", body, 201);
            Assert.Equal(at * 1000, created.GetProperty("key").GetProperty("expires_at").GetInt64());
        }
    }

    [Fact]
    public async Task ExpiresAtInMilliseconds_Is400SayingSecondsAndToDivide()
    {
        var milliseconds = DateTimeOffset.UtcNow.AddDays(30).ToUnixTimeMilliseconds();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/admin/v1/tenants/th-hospital/keys")
        {
            Content = new StringContent($$"""{"expires_at":{{milliseconds}}}""", Encoding.UTF8, "application/json"),
        };

        using var response = await fixture.Admin.SendAsync(request);

        Assert.Equal(400, (int)response.StatusCode);
        var message = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("unix seconds, from 0 to 253402300799", message, StringComparison.Ordinal);
        Assert.Contains(milliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture), message, StringComparison.Ordinal);
        Assert.Contains("divide by 1000", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"expires_in":0}""", "expires_in")]
    [InlineData("""{"expires_in":-60}""", "expires_in")]
    [InlineData("""{"expires_in":999999999999}""", "expires_in")]
    [InlineData("""{"expires_at":"2001-01-01T00:00:00Z"}""", "expires_at")]
    [InlineData("""{"expires_at":"9999-01-01T00:00:00Z"}""", "expires_at")]
    [InlineData("""{"expires_at":"next tuesday"}""", "expires_at")]
    [InlineData("""{"expires_at":"2099-01-01T00:00:00Z","expires_in":60}""", "expires_in")]
    [InlineData("""{"expires_at":-1}""", "expires_at")]
    [InlineData("""{"expires_at":1000}""", "expires_at")]
    [InlineData("""{"expires_at":1.5e9}""", "expires_at")]
    [InlineData("""{"expires_at":1e30}""", "expires_at")]
    [InlineData("""{"expires_at":true}""", "expires_at")]
    [InlineData("""{"expires_at":4102444800000}""", "expires_at")]
    public async Task ABadExpiry_Is400NamingTheField_AndIssuesNoKey(string body, string field)
    {
        var keysBefore = (await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/tenants/th-hospital/keys", null, 200)).GetProperty("data").GetArrayLength();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/admin/v1/tenants/th-hospital/keys") { Content = new StringContent(body, Encoding.UTF8, "application/json") };

        using var response = await fixture.Admin.SendAsync(request);

        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal(field, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal(keysBefore, (await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/tenants/th-hospital/keys", null, 200)).GetProperty("data").GetArrayLength());
    }

    /// <summary>
    /// "At most 10 years" means the same on both flags: ten calendar years from now (3,652 or 3,653 days). --expires-in
    /// took up to 3,660 days (10 × 366), a week past the time --expires-at refused as beyond 10 years.
    /// </summary>
    [Fact]
    public async Task ExpiresInAndExpiresAt_AllowTheSameTenYears()
    {
        string[] Create(string flag, string value) => ["keys", "create", "asean-corp", "--name", "decade", flag, value, "--url", fixture.ThAddress.ToString(), "--admin-token", ResidencyFixture.AdminToken];

        // 3,654 days is past ten years from any day; 3,652 is within them from any day.
        foreach (var (days, allowed) in new[] { (3654, false), (3652, true) })
        {
            var (exit, _, stderr) = await CliProcess.RunAsync(Create("--expires-in", $"{days}d"));
            Assert.True(exit == (allowed ? 0 : 1), $"--expires-in {days}d: exit {exit}: {stderr}");
            var at = DateTimeOffset.UtcNow.AddDays(days).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
            (exit, _, stderr) = await CliProcess.RunAsync(Create("--expires-at", at));
            Assert.True(exit == (allowed ? 0 : 1), $"--expires-at {at}: exit {exit}: {stderr}");
            if (!allowed)
            {
                Assert.Contains("within 10 years", stderr, StringComparison.Ordinal);
            }
        }
    }
}
