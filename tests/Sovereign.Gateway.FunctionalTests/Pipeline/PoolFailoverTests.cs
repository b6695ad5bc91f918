using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.Pipeline;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A request whose node cannot be reached fails over to a node of another pool: it gives back the first pool's slot
/// and takes one in the new pool, and it is priced for where it runs from the book it was admitted with.
/// </summary>
public sealed class PoolFailoverTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    private static StringContent Chat(string model) =>
        new($$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}""", Encoding.UTF8, "application/json");

    /// <summary>
    /// A plan with token prices for <paramref name="model"/>, a compute rate in each pool, and one reserved slot in
    /// each pool (so both pools have gates); engine "a" refuses connections and sorts first, engine "b" answers.
    /// </summary>
    private async Task SetUpAsync(string prefix, string model, decimal rateA, decimal rateB, string liveUrl)
    {
        await fixture.RegisterEngineAsync(prefix + "-a", FakeUpstreamEngine.RefusingUrl(), model, prefix + "-pa");
        await fixture.RegisterEngineAsync(prefix + "-b", liveUrl, model, prefix + "-pb");
        var plan = prefix + "-plan";
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}", new { currency = "THB" }, 200);
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{plan}/prices", new { model, input_per_million = 1000m, output_per_million = 2000m }, 201);
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{plan}/compute-prices", new { pool = prefix + "-pa", per_compute_second = rateA }, 201);
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{plan}/compute-prices", new { pool = prefix + "-pb", per_compute_second = rateB }, 201);
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}",
            new { reservations = new[] { new { pool = prefix + "-pa", slots = 1 }, new { pool = prefix + "-pb", slots = 1 } } }, 200);
    }

    [Fact]
    public async Task AFailoverToAnotherPool_GivesBackTheFirstPoolsSlot_TakesTheNewPoolsSlot_AndIsPricedThere()
    {
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var live = await FakeUpstreamEngine.StartAsync(async context =>
        {
            received.TrySetResult();
            await answer.Task;
            await FakeUpstreamEngine.AnswerAsync(context, """{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}""");
        });
        const string Model = "fa-model";
        await SetUpAsync("fa", Model, rateA: 1m, rateB: 0.5m, live.Url);
        var (_, client) = await fixture.NewTenantAsync("fa-plan");
        using var _ = client;
        var pools = fixture.App.Services.GetRequiredService<PoolAdmission>();

        var sent = System.Diagnostics.Stopwatch.GetTimestamp();
        var pending = client.PostAsync("/v1/chat/completions", Chat(Model));
        await Task.WhenAny(received.Task, pending).WaitAsync(TimeSpan.FromMinutes(2)); // engine b has it (the bound only turns a hang into a failure)
        Assert.False(pending.IsCompleted, pending.IsCompleted ? await (await pending).Content.ReadAsStringAsync() : "");

        // While it runs on b, only b's pool counts it: a's slot was given back when a could not be reached.
        Assert.Equal(new PoolSlotCounts(0, 0, 0), await pools.CountsAsync("fa-pa", Model, "fa-plan"));
        Assert.Equal(new PoolSlotCounts(1, 0, 0), await pools.CountsAsync("fa-pb", Model, "fa-plan"));

        answer.SetResult();
        using var response = await pending;
        var elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(sent);
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("fa-b", response.Headers.GetValues("x-sovereign-node").Single());
        Assert.Equal(new PoolSlotCounts(0, 0, 0), await pools.CountsAsync("fa-pb", Model, "fa-plan"));
        Assert.Equal(new PoolSlotCounts(0, 0, 0), await pools.CountsAsync("fa-pa", Model, "fa-plan"));

        var ledger = fixture.App.Services.GetRequiredService<UsageLedger>();
        var record = await ledger.GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single())
            ?? throw new Xunit.Sdk.XunitException("no usage record");
        Assert.Equal(("fa-b", "fa-pb", UsageOutcome.Completed), (record.Node, record.Pool, record.Outcome));
        Assert.Contains(";fa-plan:pool=fa-pb@", record.PriceVersion ?? "", StringComparison.Ordinal);
        // The engine held the request while the test looked: it ran compute seconds there (its share of the engine's
        // busy time, all of it, alone in it), billed at b's rate. Relayed work used to be billed none.
        Assert.InRange(record.ComputeSeconds, 0.000001m, (decimal)elapsed.TotalSeconds);
        // Half a millionth per compute-microsecond at b's rate: billed in whole millionths, what lies below kept in the
        // tenant's carry (CostCarry), so billed + carry is the exact cost, whichever way this request's figure rounded.
        var exact = (5 * 1000m + 3 * 2000m) / 1_000_000m + record.ComputeSeconds * 0.5m;
        Assert.Equal(record.Cost, Math.Round(record.Cost, 6));
        Assert.InRange(record.Cost, Math.Round(exact, 6, MidpointRounding.ToZero), Math.Round(exact, 6, MidpointRounding.ToPositiveInfinity));
        Assert.Equal(exact, record.Cost + ledger.CostCarry.RemainderOf(record.Tenant, record.Currency));
    }

    [Fact]
    public async Task AFailoverToAPoolTheReservationDoesNotCover_Is503_HoldsNoSlot_AndCostsNothing()
    {
        await using var live = await FakeUpstreamEngine.StartAsync(context =>
            FakeUpstreamEngine.AnswerAsync(context, """{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}"""));
        const string Model = "fb-model";

        // b's compute rate is dearer than a's: the money reserved for a cannot pay for b's worst case.
        await SetUpAsync("fb", Model, rateA: 1m, rateB: 3m, live.Url);
        var (_, client) = await fixture.NewTenantAsync("fb-plan");
        using var _ = client;
        var pools = fixture.App.Services.GetRequiredService<PoolAdmission>();

        using var response = await client.PostAsync("/v1/chat/completions", Chat(Model));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(503, (int)response.StatusCode);
        Assert.Equal("no_compliant_capacity", error.GetProperty("code").GetString());
        Assert.Equal(0, live.Requests);
        Assert.Equal(new PoolSlotCounts(0, 0, 0), await pools.CountsAsync("fb-pa", Model, "fb-plan"));
        Assert.Equal(new PoolSlotCounts(0, 0, 0), await pools.CountsAsync("fb-pb", Model, "fb-plan"));
        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((UsageOutcome.Refused, 0m, "no_compliant_capacity"), (record?.Outcome, record?.Cost, record?.RefusalCode));
    }
}
