using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>One model of money end to end: the plan's currency everywhere, and OpenAI's error type for each limit.</summary>
[Collection(MeteringCollection.Name)]
public sealed class MoneyModelTests(MeteringFixture fixture)
{
    private const string Body = """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"temperature":0}""";

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task<JsonElement> ErrorOf(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

    [Fact]
    public async Task AModelThePlanDoesNotPrice_IsRefusedWhereABudgetApplies_AndServedWhereNone()
    {
        // A plan without a price for the model: a tenant with a budget was served at no cost, past any budget (a budget of
        // 0.000001 EUR let every request through). Fail closed: 403 naming the model, recorded as refused at no cost.
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/unpriced", new { currency = "EUR", weight = 1 }, 200);
        var (budgeted, key) = await fixture.NewTenantAsync(new { budgets = new[] { new { period = "total", amount = 0.000001m } } }, plan: "unpriced");
        using var client = fixture.TenantClient(key);
        using var refused = await client.PostAsync("/v1/chat/completions", Json(Body));
        var error = await ErrorOf(refused);
        Assert.Equal(403, (int)refused.StatusCode);
        Assert.Equal("model_not_priced", error.GetProperty("code").GetString());
        Assert.Equal("model", error.GetProperty("param").GetString());
        Assert.Contains("'stories'", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        var ledger = fixture.App.Services.GetRequiredService<UsageLedger>();
        var record = await ledger.GetAsync(refused.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.NotNull(record);
        Assert.Equal(budgeted, record.Tenant);
        Assert.Equal(UsageOutcome.Refused, record.Outcome);
        Assert.Equal("model_not_priced", record.RefusalCode);
        Assert.Equal(0m, record.Cost);

        // Without a budget the model is served as before, at no cost.
        var (_, free) = await fixture.NewTenantAsync(plan: "unpriced");
        using var freeClient = fixture.TenantClient(free);
        Assert.Equal(200, (int)(await freeClient.PostAsync("/v1/chat/completions", Json(Body))).StatusCode);

        // Once priced, the budgeted tenant's request is counted against its budget (and refused by it: 429).
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/unpriced/prices",
            new { model = MeteringFixture.Model, input_per_million = MeteringFixture.InputPerMillion, output_per_million = MeteringFixture.OutputPerMillion }, 201);
        using var counted = await client.PostAsync("/v1/chat/completions", Json(Body));
        Assert.Equal(429, (int)counted.StatusCode);
        Assert.Equal("insufficient_quota", (await ErrorOf(counted)).GetProperty("type").GetString());
    }

    [Fact]
    public async Task EurBudget_StaysEur_InLimitsRefusalsAndMetrics()
    {
        // The operator's PUT reads the budgets back first: the account must not be created in a fallback currency.
        var (tenant, key) = await fixture.NewTenantAsync();
        var set = await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "day", amount = 1m }, new { period = "total", amount = 0.5m } } }, 200);
        Assert.Equal("EUR", set.GetProperty("limits").GetProperty("currency").GetString());
        Assert.All(set.GetProperty("budgets").EnumerateArray(), b => Assert.Equal("EUR", b.GetProperty("currency").GetString()));

        using var client = fixture.TenantClient(key);
        Assert.Equal(200, (int)(await client.PostAsync("/v1/chat/completions", Json(Body))).StatusCode);
        var limits = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200);
        Assert.All(limits.GetProperty("budgets").EnumerateArray(), b => Assert.Equal("EUR", b.GetProperty("currency").GetString()));
        var metrics = await fixture.Admin.GetStringAsync("/metrics");
        Assert.Contains(metrics.Split('\n'), line => line.StartsWith("sovereign_budget_remaining", StringComparison.Ordinal)
            && line.Contains($"tenant=\"{tenant}\"", StringComparison.Ordinal) && line.Contains("currency=\"EUR\"", StringComparison.Ordinal));

        // A request that could cost more than is left: refused in EUR, as OpenAI refuses a quota.
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "total", amount = 0.000001m } } }, 200);
        using var refused = await client.PostAsync("/v1/chat/completions", Json(Body));
        var error = await ErrorOf(refused);
        Assert.Equal(429, (int)refused.StatusCode);
        Assert.Equal("insufficient_quota", error.GetProperty("type").GetString());
        Assert.Equal("budget_exceeded", error.GetProperty("code").GetString());
        Assert.Contains("EUR", error.GetProperty("message").GetString()!, StringComparison.Ordinal);
        Assert.DoesNotContain("USD", error.GetProperty("message").GetString()!, StringComparison.Ordinal);
        // Spent, not merely held by requests in flight: OpenAI's SDKs are told not to retry it (they retry every 429).
        Assert.Equal("false", refused.Headers.GetValues("x-should-retry").Single());
    }

    [Fact]
    public async Task TooLargeForTheMinute_NamesTheOutputLimitAsTheRequestSpelledIt()
    {
        // The message said "max_tokens" on every endpoint; Responses bound output with max_output_tokens, and chat may
        // use max_completion_tokens (found by explorer6).
        var (_, key) = await fixture.NewTenantAsync(new { rate_limits = new[] { new { requests_per_minute = 10_000, tokens_per_minute = 100 } } });
        using var client = fixture.TenantClient(key);
        (string Path, string Body, string Field)[] cases =
        [
            ("/v1/responses", """{"model":"stories","input":"Hi","max_output_tokens":150}""", "max_output_tokens"),
            ("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":150}""", "max_completion_tokens"),
            ("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":150}""", "max_tokens"),
        ];
        foreach (var (path, body, field) in cases)
        {
            using var tooLarge = await client.PostAsync(path, Json(body));
            var message = (await ErrorOf(tooLarge)).GetProperty("message").GetString()!;
            Assert.Equal(429, (int)tooLarge.StatusCode);
            Assert.EndsWith($"reduce the prompt or {field}.", message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task TokensPerMinute_429_HasTypeTokens_RequestsPerMinute_HasTypeRequests()
    {
        var (_, key) = await fixture.NewTenantAsync(new { rate_limits = new[] { new { requests_per_minute = 10_000, tokens_per_minute = 200 } } });
        using var client = fixture.TenantClient(key);

        // One request alone larger than the whole minute: it can never fit.
        using (var tooLarge = await client.PostAsync("/v1/chat/completions", Json("""{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":201}""")))
        {
            var error = await ErrorOf(tooLarge);
            Assert.Equal(429, (int)tooLarge.StatusCode);
            Assert.Equal("tokens", error.GetProperty("type").GetString());
            Assert.Equal("rate_limit_request_too_large", error.GetProperty("code").GetString());
            Assert.False(tooLarge.Headers.Contains("Retry-After"));
            Assert.Equal("false", tooLarge.Headers.GetValues("x-should-retry").Single());
        }

        // Requests that fit one by one until the minute's tokens run out.
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 50 && limited is null; i++)
        {
            var response = await client.PostAsync("/v1/chat/completions", Json("""{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":60,"temperature":0}"""));
            if ((int)response.StatusCode == 429)
            {
                limited = response;
            }
            else
            {
                Assert.Equal(200, (int)response.StatusCode);
            }
        }

        Assert.NotNull(limited);
        var limitedError = await ErrorOf(limited);
        Assert.Equal("tokens", limitedError.GetProperty("type").GetString());
        Assert.Equal("rate_limit_exceeded", limitedError.GetProperty("code").GetString());
        Assert.Equal("200", limited.Headers.GetValues("x-ratelimit-limit-tokens").Single());
        Assert.True(int.Parse(limited.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture) >= 1);
        Assert.False(limited.Headers.Contains("x-should-retry")); // waiting cures it: the SDK retries after Retry-After

        var (_, rpmKey) = await fixture.NewTenantAsync(new { rate_limits = new[] { new { requests_per_minute = 1 } } });
        using var rpmClient = fixture.TenantClient(rpmKey);
        Assert.Equal(200, (int)(await rpmClient.PostAsync("/v1/chat/completions", Json(Body))).StatusCode);
        using var rpm = await rpmClient.PostAsync("/v1/chat/completions", Json(Body));
        Assert.Equal(429, (int)rpm.StatusCode);
        Assert.Equal("requests", (await ErrorOf(rpm)).GetProperty("type").GetString());
    }

    [Fact]
    public async Task CurrencyChanges_UnderBudgets_AreRefused_BudgetsWithoutAPlanAre400()
    {
        // A price-less plan may change currency, but not while a tenant on it has budgets.
        var plan = "fx-" + Guid.NewGuid().ToString("N")[..8];
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}", new { currency = "EUR" }, 200);
        var (tenant, _) = await fixture.NewTenantAsync(new { budgets = new[] { new { period = "month", amount = 10m } } }, plan);
        var conflict = await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}", new { currency = "USD" }, 409);
        Assert.Equal("budget_currency_conflict", conflict.GetProperty("error").GetProperty("code").GetString());

        // Nor may the tenant move to a plan in another currency.
        var dollars = "usd-" + Guid.NewGuid().ToString("N")[..8];
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/plans/{dollars}", new { currency = "USD" }, 200);
        var move = await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { plan = dollars }, 409);
        Assert.Equal("plan", move.GetProperty("error").GetProperty("param").GetString());

        // Once the budgets are cleared, both are allowed, and new budgets are in the new currency.
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = Array.Empty<object>() }, 200);
        await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { plan = dollars }, 200);
        var set = await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "month", amount = 10m } } }, 200);
        Assert.Equal("USD", set.GetProperty("budgets")[0].GetProperty("currency").GetString());

        // A tenant on a plan the price book does not have ('default' here) cannot have budgets: there is no currency to
        // count them in. (Any other plan must exist before a tenant is put on it.)
        var (unpriced, _) = await fixture.NewTenantAsync(plan: "default");
        var bad = await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{unpriced}/limits", new { budgets = new[] { new { period = "day", amount = 1m } } }, 400);
        Assert.Equal("plan_without_currency", bad.GetProperty("error").GetProperty("code").GetString());
    }
}
