using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// A tenant's reads of its own records are counted per key (<c>Sovereign:Limits:TenantReadsPerMinute</c>, 3 here):
/// found by an explorer (session 38), any valid key could repeat <c>/v1/usage</c>, <c>/v1/audit</c>, <c>/v1/keys</c>
/// and <c>/v1/limits</c> without bound, each a database or grain read.
/// </summary>
public sealed class TenantReadLimitTests(RateLimitAuditTests.Server fixture) : IClassFixture<RateLimitAuditTests.Server>
{
    [Fact]
    public async Task TenantReads_AreCountedPerKey_AndAnswer429LikeOpenAI()
    {
        var (tenant, key) = await fixture.NewTenantAsync(new { rate_limits = new[] { new { requests_per_minute = 1000 } } });
        var other = (await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{tenant}/keys", new { name = "other" }, 201)).GetProperty("secret").GetString()!;
        using var client = fixture.TenantClient(key);

        // Held: the count refills one read every 20 s, and a loaded machine can pause that long between two reads.
        using var held = fixture.Clock.Hold();

        string[] reads = ["/v1/usage", "/v1/audit", "/v1/keys"];
        for (var i = 0; i < reads.Length; i++)
        {
            using var read = await client.GetAsync(reads[i]);
            Assert.Equal(200, (int)read.StatusCode);
            Assert.Equal("3", read.Headers.GetValues("x-ratelimit-limit-requests").Single());
            Assert.Equal((2 - i).ToString(CultureInfo.InvariantCulture), read.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }

        foreach (var path in (string[])["/v1/limits", "/v1/usage", "/v1/audit", "/v1/keys", "/v1/usage/req_missing"])
        {
            using var limited = await client.GetAsync(path);
            Assert.Equal(429, (int)limited.StatusCode);
            var error = JsonDocument.Parse(await limited.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal("requests", error.GetProperty("type").GetString());
            Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());
            Assert.True(int.Parse(limited.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture) >= 1, path);
            Assert.Equal("0", limited.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }

        // Another key of the tenant reads on its own count.
        using var otherClient = fixture.TenantClient(other);
        using var otherRead = await otherClient.GetAsync("/v1/limits");
        Assert.Equal(200, (int)otherRead.StatusCode);
    }

    /// <summary>
    /// <c>GET /v1/models</c> (and <c>/v1/models/{id}</c>) is a tenant read like the others: it computes the models the
    /// tenant's policy sees, and was not counted, so a key could repeat it without bound.
    /// </summary>
    [Fact]
    public async Task ModelReads_AreCountedLikeTheOtherTenantReads()
    {
        var (_, key) = await fixture.NewTenantAsync(new { rate_limits = new[] { new { requests_per_minute = 1000 } } });
        using var client = fixture.TenantClient(key);
        using var held = fixture.Clock.Hold(); // the count refills one read every 20 s

        string[] reads = ["/v1/models", "/v1/models/" + MeteringFixture.Model, "/v1/usage"];
        for (var i = 0; i < reads.Length; i++)
        {
            using var read = await client.GetAsync(reads[i]);
            Assert.Equal(200, (int)read.StatusCode);
            Assert.Equal((2 - i).ToString(CultureInfo.InvariantCulture), read.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }

        foreach (var path in (string[])["/v1/models", "/v1/models/" + MeteringFixture.Model])
        {
            using var limited = await client.GetAsync(path);
            Assert.Equal(429, (int)limited.StatusCode);
            Assert.Equal("rate_limit_exceeded", JsonDocument.Parse(await limited.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        }
    }

    /// <summary>
    /// Each refused read wrote a 4001 line at Information, so a tenant chose the log's volume. As for inference 429s
    /// (<c>RateLimitRefusals</c>): the key's first refusal at Information, the rest at Debug, one summary line (4150).
    /// </summary>
    [Fact]
    public async Task RefusedReadFlood_LogsTheFirstAtInformation_TheRestAtDebug_AndOneSummaryLine()
    {
        var (tenant, key) = await fixture.NewTenantAsync(new { rate_limits = new[] { new { requests_per_minute = 1000 } } });
        var captured = new System.Collections.Concurrent.ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        fixture.App.Services.GetRequiredService<ILoggerFactory>().AddProvider(capture);
        using var client = fixture.TenantClient(key);
        using var held = fixture.Clock.Hold(); // the count refills one read every 20 s
        for (var i = 0; i < 3; i++)
        {
            using var read = await client.GetAsync("/v1/limits");
            Assert.Equal(200, (int)read.StatusCode);
        }

        const int refusals = 12;
        for (var i = 0; i < refusals; i++)
        {
            using var limited = await client.GetAsync(i % 2 == 0 ? "/v1/usage" : "/v1/models");
            Assert.Equal(429, (int)limited.StatusCode);
        }

        fixture.App.Services.GetRequiredService<ControlPlane.TenantReadLimits>().Flush();
        capture.Stop();

        // The first refusal at Information; the counted ones only at Debug (below the server's level).
        Assert.Single(captured, l => l.Event.Id == 4001 && l.Level >= LogLevel.Information && l.Message.Contains("429", StringComparison.Ordinal));
        var summary = Assert.Single(captured, l => l.Event.Id == 4150 && l.Message.Contains(tenant, StringComparison.Ordinal));
        Assert.Equal(LogLevel.Information, summary.Level);
        Assert.Contains($"refused {refusals - 1} more reads", summary.Message, StringComparison.Ordinal);
    }
}
