using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// Compute seconds are billed at most up to the bound the reservation was made for
/// (<see cref="RequestMetering.MaxComputeSecondsPerRequest"/>), as tokens are billed at most up to the request's
/// demand: a generation that ran longer (a slow device, a long answer) was charged in full, past a budget that had
/// reserved its maximum cost and was meant to hold.
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class ComputeBoundTests(MeteringFixture fixture)
{
    private const decimal PerComputeSecond = 0.01m;

    [Fact]
    public async Task ComputeBeyondTheReservedBound_IsBilledAtTheBound_AndTheBudgetHolds()
    {
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/by-the-second", new { currency = "EUR" }, 200);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/by-the-second/prices",
            new { model = MeteringFixture.Model, input_per_million = MeteringFixture.InputPerMillion, output_per_million = MeteringFixture.OutputPerMillion, per_compute_second = PerComputeSecond }, 201);
        var (tenant, _) = await fixture.NewTenantAsync(plan: "by-the-second");
        const int Prompt = 10, MaxTokens = 10;
        var maxCost = (Prompt * MeteringFixture.InputPerMillion + MaxTokens * MeteringFixture.OutputPerMillion) / 1_000_000m
            + RequestMetering.MaxComputeSecondsPerRequest * PerComputeSecond;
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "total", amount = maxCost } } }, 200);

        var metering = fixture.App.Services.GetRequiredService<RequestMetering>();
        var routed = new RoutedRequest("req_compute_bound_" + tenant, new Caller(tenant, "key-x", null, "by-the-second"), MeteringFixture.Model, "local", "DE", null, null, null);
        var ticket = await metering.AdmitAsync(new DefaultHttpContext(), routed, Prompt, MaxTokens);
        var ranLong = new GenerationResult { FinishReason = FinishReason.Length, PromptTokens = Prompt, CompletionTokens = MaxTokens, ComputeSeconds = 900 };

        await metering.FinishAsync(routed, ticket, Prompt, MaxTokens, ranLong, UsageOutcome.Completed);

        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(routed.RequestId) ?? throw new Xunit.Sdk.XunitException("no usage record");
        Assert.Equal(RequestMetering.MaxComputeSecondsPerRequest, record.ComputeSeconds);
        Assert.Equal(maxCost, record.Cost);
        var budget = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200)).GetProperty("budgets")[0];
        Assert.Equal(maxCost, budget.GetProperty("settled").GetDecimal());
        Assert.Equal(0m, budget.GetProperty("remaining").GetDecimal());
    }
}
