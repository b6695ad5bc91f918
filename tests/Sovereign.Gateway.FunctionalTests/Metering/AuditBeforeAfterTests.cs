using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// An admin change that moves money states in its audit entry what it changed from, not only what it changed to.
/// Found by an explorer reading <c>/admin/v1/audit</c>: <c>tenant.update</c> said which plan a tenant was moved to
/// but not off, <c>limits.update</c> gave the new budget but not the one it replaced, and <c>plan.update</c> gave
/// the new currency alone.
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class AuditBeforeAfterTests(MeteringFixture fixture)
{
    [Fact]
    public async Task TenantUpdate_StatesThePlanDisabledAndNameBefore_OnlyForWhatChanged()
    {
        var (tenant, _) = await fixture.NewTenantAsync();

        await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { plan = "fair", disabled = true, name = "Renamed" }, 200);
        var moved = await LastEntryAsync(tenant, "tenant.update");
        Assert.Equal("fair", moved.GetProperty("plan").GetString());
        Assert.Equal("standard", moved.GetProperty("old_plan").GetString());
        Assert.Equal("true", moved.GetProperty("disabled").GetString());
        Assert.Equal("false", moved.GetProperty("old_disabled").GetString());
        Assert.Equal("Renamed", moved.GetProperty("name").GetString());
        Assert.Equal(tenant, moved.GetProperty("old_name").GetString());

        // Only the plan changes now: the entry states no before for what stayed.
        await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { plan = "standard" }, 200);
        var back = await LastEntryAsync(tenant, "tenant.update");
        Assert.Equal("fair", back.GetProperty("old_plan").GetString());
        Assert.False(back.TryGetProperty("old_disabled", out _), back.ToString());
        Assert.False(back.TryGetProperty("old_name", out _), back.ToString());
    }

    [Fact]
    public async Task LimitsUpdate_StatesTheWholeLimitsItReplaced()
    {
        var (tenant, _) = await fixture.NewTenantAsync(new { budgets = new[] { new { period = "day", amount = 10 } }, rate_limits = new[] { new { requests_per_minute = 7 } } });

        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "day", amount = 25 } } }, 200);

        var entry = await LastEntryAsync(tenant, "limits.update");
        var limits = JsonDocument.Parse(entry.GetProperty("limits").GetString()!).RootElement;
        var old = JsonDocument.Parse(entry.GetProperty("old_limits").GetString()!).RootElement;
        Assert.Equal(25m, Assert.Single(limits.GetProperty("budgets").EnumerateArray()).GetProperty("amount").GetDecimal());
        Assert.Empty(limits.GetProperty("rate_limits").EnumerateArray());
        Assert.Equal(10m, Assert.Single(old.GetProperty("budgets").EnumerateArray()).GetProperty("amount").GetDecimal());
        Assert.Equal(7, Assert.Single(old.GetProperty("rate_limits").EnumerateArray()).GetProperty("requests_per_minute").GetInt32());
        Assert.Equal("EUR", old.GetProperty("currency").GetString());
    }

    /// <summary>
    /// A PUT of the limits a tenant already has changes nothing and writes nothing, as a tenant PATCH that changes
    /// nothing: each such PUT wrote a <c>limits.update</c> entry (found by an explorer re-saving unchanged limits).
    /// </summary>
    [Fact]
    public async Task LimitsUpdate_ThatChangesNothing_IsNotAudited()
    {
        var limits = new { budgets = new[] { new { period = "day", amount = 10.5m } }, rate_limits = new[] { new { requests_per_minute = 7 } } };
        var (tenant, _) = await fixture.NewTenantAsync(limits);
        var before = (await EntriesAsync($"tenant={tenant}")).Count(e => e.GetProperty("action").GetString() == "limits.update");

        var again = await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits",
            new { budgets = new[] { new { period = "DAY", amount = 10.50m } }, rate_limits = new[] { new { requests_per_minute = 7 } } }, 200);
        Assert.Equal(10.5m, again.GetProperty("limits").GetProperty("budgets")[0].GetProperty("amount").GetDecimal());
        Assert.Equal(before, (await EntriesAsync($"tenant={tenant}")).Count(e => e.GetProperty("action").GetString() == "limits.update"));

        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "day", amount = 11m } } }, 200);
        Assert.Equal(before + 1, (await EntriesAsync($"tenant={tenant}")).Count(e => e.GetProperty("action").GetString() == "limits.update"));
    }

    /// <summary>
    /// The "same limits again" test lived twice: the grain compared budgets, rate limits and its stored currency, the
    /// admin API budgets and rate limits only. Budgets stored in USD (limits a tenant kept from before its plan's
    /// currency was EUR) set again with the same amounts were re-pinned to EUR by the grain, and the API wrote no
    /// <c>limits.update</c>: 500 USD became 500 EUR unaudited.
    /// </summary>
    [Fact]
    public async Task LimitsUpdate_ThatOnlyMovesTheBudgetsCurrency_IsAudited()
    {
        var (tenant, _) = await fixture.NewTenantAsync(new { budgets = new[] { new { period = "day", amount = 10 } } });
        var store = fixture.App.Services.GetRequiredService<Residency.ControlPlane.ControlPlaneStore>();
        var stored = (await store.GetTenantAsync(tenant, CancellationToken.None))!;
        Assert.Contains("\"EUR\"", stored.LimitsJson, StringComparison.Ordinal);
        await store.UpsertTenantAsync(stored with { LimitsJson = stored.LimitsJson!.Replace("\"EUR\"", "\"USD\"", StringComparison.Ordinal) });
        // The grain reads the stored limits when it is activated again.
        await fixture.App.Services.GetRequiredService<IGrainFactory>().GetGrain<Orleans.Runtime.IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);
        var held = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200);
        Assert.Equal("USD", held.GetProperty("limits").GetProperty("currency").GetString());
        var before = (await EntriesAsync($"tenant={tenant}")).Count(e => e.GetProperty("action").GetString() == "limits.update");

        var moved = await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "day", amount = 10 } } }, 200);

        Assert.Equal("EUR", moved.GetProperty("limits").GetProperty("currency").GetString());
        Assert.Equal(before + 1, (await EntriesAsync($"tenant={tenant}")).Count(e => e.GetProperty("action").GetString() == "limits.update"));
        var entry = await LastEntryAsync(tenant, "limits.update");
        Assert.Equal("EUR", JsonDocument.Parse(entry.GetProperty("limits").GetString()!).RootElement.GetProperty("currency").GetString());
        Assert.Equal("USD", JsonDocument.Parse(entry.GetProperty("old_limits").GetString()!).RootElement.GetProperty("currency").GetString());
    }

    /// <summary>
    /// Every operator action was audited under one actor, "operator": with several operators an auditor could not tell
    /// who acted. A named operator token (<c>Sovereign:OperatorTokens:NAME</c>) is audited as <c>operator:NAME</c>, the
    /// default token as <c>operator</c> as before; the secret is never in the entry.
    /// </summary>
    [Fact]
    public async Task AdminActions_NameTheOperatorTokenThatActed_NeverItsSecret()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        using var alice = new HttpClient { BaseAddress = fixture.Address };
        alice.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", MeteringFixture.AliceToken);

        using (var limits = await alice.PutAsync($"/admin/v1/tenants/{tenant}/limits", new StringContent("""{"budgets":[{"period":"day","amount":3}]}""", System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.Equal(200, (int)limits.StatusCode);
        }

        using (var key = await alice.PostAsync($"/admin/v1/tenants/{tenant}/keys", new StringContent("""{"name":"by-alice"}""", System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.Equal(201, (int)key.StatusCode);
        }

        var entries = await EntriesAsync($"tenant={tenant}");
        string ActorOf(string action) => entries.First(e => e.GetProperty("action").GetString() == action).GetProperty("actor").GetString()!;
        Assert.Equal("operator:alice", ActorOf("limits.update"));
        Assert.Equal("operator:alice", ActorOf("key.create"));
        Assert.Equal("operator", ActorOf("tenant.create"));
        Assert.DoesNotContain(MeteringFixture.AliceToken, string.Join('\n', entries.Select(e => e.ToString())), StringComparison.Ordinal);

        // A token that is no operator's is still refused.
        alice.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", MeteringFixture.AliceToken + "x");
        using var refused = await alice.GetAsync("/admin/v1/tenants");
        Assert.Equal(401, (int)refused.StatusCode);
    }

    [Fact]
    public async Task PlanUpdate_StatesTheSettingsItReplaced_AndANewPlanHasNone()
    {
        var plan = "audit-before-" + Guid.NewGuid().ToString("N")[..8];
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}", new { currency = "EUR", weight = 2 }, 200);
        var created = await LastPlanEntryAsync(plan);
        Assert.False(created.TryGetProperty("old_currency", out _), created.ToString());

        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}", new { currency = "CHF", weight = 5 }, 200);

        var changed = await LastPlanEntryAsync(plan);
        Assert.Equal("CHF", changed.GetProperty("currency").GetString());
        Assert.Equal("EUR", changed.GetProperty("old_currency").GetString());
        Assert.Equal("5", changed.GetProperty("weight").GetString());
        Assert.Equal("2", changed.GetProperty("old_weight").GetString());
    }

    /// <summary>A withdrawn price is named by its model and start, and now also by the rates it would have billed.</summary>
    [Fact]
    public async Task PriceWithdraw_StatesTheRatesWithdrawn()
    {
        var plan = "audit-withdraw-" + Guid.NewGuid().ToString("N")[..8];
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}", new { currency = "EUR" }, 200);
        var from = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.AddDays(30).ToUnixTimeMilliseconds()).ToString("O", System.Globalization.CultureInfo.InvariantCulture);
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{plan}/prices", new { model = "m", effective_from = from, input_per_million = 3.5m, output_per_million = 7m }, 201);

        await fixture.SendAsync(HttpMethod.Delete, $"/admin/v1/plans/{plan}/prices?model=m&effective_from={Uri.EscapeDataString(from)}", null, 200);

        var entry = (await EntriesAsync("")).First(e => e.GetProperty("action").GetString() == "price.withdraw"
            && e.GetProperty("details").GetProperty("plan").GetString() == plan).GetProperty("details");
        Assert.Equal("3.5", entry.GetProperty("old_input_per_million").GetString());
        Assert.Equal("7", entry.GetProperty("old_output_per_million").GetString());
        Assert.Equal("", entry.GetProperty("old_cached_input_per_million").GetString());
    }

    private async Task<JsonElement> LastEntryAsync(string tenant, string action) =>
        (await EntriesAsync($"tenant={tenant}")).First(e => e.GetProperty("action").GetString() == action).GetProperty("details");

    private async Task<JsonElement> LastPlanEntryAsync(string plan) =>
        (await EntriesAsync("")).First(e => e.GetProperty("action").GetString() == "plan.update"
            && e.GetProperty("details").GetProperty("plan").GetString() == plan).GetProperty("details");

    private async Task<List<JsonElement>> EntriesAsync(string filter) =>
        (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?order=desc&limit=200&{filter}", null, 200))
            .GetProperty("data").EnumerateArray().ToList();
}
