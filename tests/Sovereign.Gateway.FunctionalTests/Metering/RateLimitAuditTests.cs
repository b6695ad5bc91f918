using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.Metering;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// A tenant over its rate limit decides how much evidence its refusals leave. Found by explorer12 (session 38): each
/// 429 wrote two audit entries (the decision before admission, then its rejection), 16,150 entries in 10 s of
/// refusals. Now the first refusal of a key keeps its own entries and the ones after it, while the key stays limited,
/// are counted into one entry per interval; budget refusals keep their own entries; the ledger still reconciles.
/// </summary>
public sealed class RateLimitAuditTests(RateLimitAuditTests.Server fixture) : IClassFixture<RateLimitAuditTests.Server>
{
    private const string Small = """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"temperature":0}""";
    private const string Large = """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":200,"temperature":0}""";

    [Fact]
    public async Task RateLimitedFlood_LeavesTheFirstRefusalsEntries_AndOneCountedEntry()
    {
        var (tenant, key) = await fixture.NewTenantAsync(new { rate_limits = new[] { new { requests_per_minute = 2 } } });
        using var client = fixture.TenantClient(key);
        using var held = fixture.Clock.Hold(); // the bucket refills one request every 30 s: no pause of the machine refills it
        for (var i = 0; i < 2; i++)
        {
            using var ok = await client.PostAsync("/v1/chat/completions", Json(Small));
            Assert.Equal(200, (int)ok.StatusCode);
        }

        const int refusals = 30;
        for (var i = 0; i < refusals; i++)
        {
            using var limited = await client.PostAsync("/v1/chat/completions", Json(Small));
            Assert.Equal(429, (int)limited.StatusCode);
            Assert.Equal("rate_limit_exceeded", ErrorCode(await limited.Content.ReadAsStringAsync()));
            Assert.True(limited.Headers.Contains("Retry-After"));
        }

        // Two served requests (decision, outcome) and the first refusal (decision, rejection): nothing per refusal after it.
        Assert.Equal(6, (await InferenceEntriesAsync(tenant)).Count);

        await fixture.App.Services.GetRequiredService<RateLimitRefusals>().FlushAsync(CancellationToken.None);

        var entries = await InferenceEntriesAsync(tenant);
        Assert.Equal(7, entries.Count);
        var summary = Assert.Single(entries, e => e.GetProperty("action").GetString() == "inference.rate_limited");
        Assert.Equal("refused", summary.GetProperty("decision").GetString());
        var details = summary.GetProperty("details");
        Assert.Equal((refusals - 1).ToString(CultureInfo.InvariantCulture), details.GetProperty("count").GetString());
        Assert.Equal((refusals - 1).ToString(CultureInfo.InvariantCulture), details.GetProperty("requests_per_minute").GetString());
        Assert.True(DateTimeOffset.Parse(details.GetProperty("first_at").GetString()!, CultureInfo.InvariantCulture)
            <= DateTimeOffset.Parse(details.GetProperty("last_at").GetString()!, CultureInfo.InvariantCulture));
        Assert.Single(entries, e => e.GetProperty("action").GetString() == "inference.completed"
            && e.GetProperty("details").GetProperty("outcome").GetString() == "rejected");

        // Nothing more to count: a second flush writes nothing.
        await fixture.App.Services.GetRequiredService<RateLimitRefusals>().FlushAsync(CancellationToken.None);
        Assert.Equal(7, (await InferenceEntriesAsync(tenant)).Count);

        // The ledger holds a record for each request with entries of its own, and agrees with the chain.
        var usage = Assert.Single((await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?tenant={tenant}&group_by=tenant", null, 200)).GetProperty("data").EnumerateArray());
        Assert.Equal(3, usage.GetProperty("requests").GetInt64());
        Assert.Equal(1, usage.GetProperty("refused").GetInt64());
        var report = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/audit/verify", null, 200);
        Assert.NotEqual("tampered", report.GetProperty("verdict").GetString());
        Assert.Empty(report.GetProperty("problems").EnumerateArray());
    }

    [Fact]
    public async Task RateLimitedFlood_LogsTheFirstRefusalAtInformation_TheCountedOnesAtDebug_AndOneSummaryLine()
    {
        // The audit log no longer grew with a flood, but the log did: each counted 429 was a 4001 line at Information.
        var (tenant, key) = await fixture.NewTenantAsync(new { rate_limits = new[] { new { requests_per_minute = 1 } } });
        var captured = new System.Collections.Concurrent.ConcurrentQueue<(string Category, Microsoft.Extensions.Logging.LogLevel Level, Microsoft.Extensions.Logging.EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        fixture.App.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().AddProvider(capture);
        using var client = fixture.TenantClient(key);
        using var held = fixture.Clock.Hold(); // the bucket refills one request a minute: no pause of the machine refills it
        using (var ok = await client.PostAsync("/v1/chat/completions", Json(Small)))
        {
            Assert.Equal(200, (int)ok.StatusCode);
        }

        const int refusals = 12;
        for (var i = 0; i < refusals; i++)
        {
            using var limited = await client.PostAsync("/v1/chat/completions", Json(Small));
            Assert.Equal(429, (int)limited.StatusCode);
        }

        await fixture.App.Services.GetRequiredService<RateLimitRefusals>().FlushAsync(CancellationToken.None);
        capture.Stop();

        // The first refusal, with its own entries, at Information; the counted ones only at Debug (below the server's level).
        Assert.Single(captured, l => l.Event.Id == 4001 && l.Level >= Microsoft.Extensions.Logging.LogLevel.Information
            && l.Message.Contains("429", StringComparison.Ordinal));
        var summary = Assert.Single(captured, l => l.Event.Id == 4118 && l.Message.Contains(tenant, StringComparison.Ordinal));
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Information, summary.Level);
        Assert.Contains($"refused {refusals - 1} more times", summary.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BudgetRefusal_WhileTheKeyIsRateLimited_KeepsItsOwnEntries()
    {
        // 50 tokens a minute: the large request can never fit (429 too large); the small one fits, but the budget
        // (a millionth of a euro) refuses it.
        var (tenant, key) = await fixture.NewTenantAsync(new
        {
            rate_limits = new[] { new { tokens_per_minute = 50 } },
            budgets = new[] { new { period = "day", amount = 0.000001m } },
        });
        using var client = fixture.TenantClient(key);
        for (var i = 0; i < 2; i++)
        {
            using var tooLarge = await client.PostAsync("/v1/chat/completions", Json(Large));
            Assert.Equal(429, (int)tooLarge.StatusCode);
            Assert.Equal("rate_limit_request_too_large", ErrorCode(await tooLarge.Content.ReadAsStringAsync()));
        }

        using var overBudget = await client.PostAsync("/v1/chat/completions", Json(Small));
        Assert.Equal(429, (int)overBudget.StatusCode);
        Assert.Equal("budget_exceeded", ErrorCode(await overBudget.Content.ReadAsStringAsync()));
        var requestId = overBudget.Headers.GetValues("x-request-id").Single();
        Assert.Equal(requestId, overBudget.Headers.GetValues("x-sovereign-audit-id").Single());

        var ofBudgetRefusal = (await InferenceEntriesAsync(tenant)).Where(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == requestId).ToList();
        Assert.Equal(["inference.allowed", "inference.completed"], ofBudgetRefusal.Select(e => e.GetProperty("action").GetString()).Order());

        await fixture.App.Services.GetRequiredService<RateLimitRefusals>().FlushAsync(CancellationToken.None);
        var summary = Assert.Single(await InferenceEntriesAsync(tenant), e => e.GetProperty("action").GetString() == "inference.rate_limited").GetProperty("details");
        Assert.Equal("1", summary.GetProperty("count").GetString());
        Assert.Equal("1", summary.GetProperty("request_too_large").GetString());
        Assert.Equal("1", summary.GetProperty("tokens_per_minute").GetString());

        var report = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/audit/verify", null, 200);
        Assert.Empty(report.GetProperty("problems").EnumerateArray());
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static string? ErrorCode(string body) => JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString();

    private async Task<List<JsonElement>> InferenceEntriesAsync(string tenant) =>
        (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?order=asc&limit=1000&tenant={tenant}", null, 200))
            .GetProperty("data").EnumerateArray().Where(e => e.GetProperty("kind").GetString() == "inference").ToList();

    /// <summary>
    /// The metering server's plans, with a summary interval no test outlasts (only the test's flush writes one) and
    /// three tenant reads a minute per key.
    /// </summary>
    public sealed class Server() : AdminServerFixture(MeteringFixture.AdminToken, "sovereign-ratelimit-audit-")
    {
        private int _tenants;

        protected override IReadOnlyList<Inference.Engine.ModelOptions> Models =>
            [new Inference.Engine.ModelOptions { Id = MeteringFixture.Model, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 4, MaxQueue = 64, Threads = 1 }];

        protected override IDictionary<string, string?> Overrides => new Dictionary<string, string?>
        {
            ["Sovereign:Jurisdiction"] = "DE",
            ["Sovereign:BuiltInEmbeddings"] = "false",
            ["Sovereign:Audit:RateLimitSummaryInterval"] = "01:00:00",
            ["Sovereign:Limits:TenantReadsPerMinute"] = "3",
        };

        protected override async Task SetUpAsync()
        {
            await SendAsync(HttpMethod.Put, "/admin/v1/plans/standard", new { currency = "EUR", weight = 1 }, 200);
            await SendAsync(HttpMethod.Post, "/admin/v1/plans/standard/prices",
                new { model = MeteringFixture.Model, input_per_million = MeteringFixture.InputPerMillion, output_per_million = MeteringFixture.OutputPerMillion }, 201);
        }

        public async Task<(string Tenant, string Key)> NewTenantAsync(object limits)
        {
            var id = "rl" + Interlocked.Increment(ref _tenants);
            await SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan = "standard", policy = new { allowed_jurisdictions = new[] { "EU" } } }, 201);
            var key = await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201);
            await SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{id}/limits", limits, 200);
            return (id, key.GetProperty("secret").GetString()!);
        }
    }
}
