using System.Diagnostics;
using System.Globalization;
using Sovereign.Cluster.Grains;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>One tenant created for the benchmark: its id, key id and secret.</summary>
internal sealed record BenchTenant(string Id, string KeyId, string Secret);

/// <summary>What to create through the admin API before measuring.</summary>
internal sealed record WorldSpec
{
    public int Tenants { get; init; } = 10_000;

    public int Nodes { get; init; } = 1_000;

    /// <summary>The model id the registered (external) nodes serve, by node index.</summary>
    public Func<int, string> NodeModel { get; init; } = i => "external-model-" + (i % 10).ToString(CultureInfo.InvariantCulture);

    /// <summary>How many of the tenants (the last ones) refuse external providers, so every external replica is excluded for them.</summary>
    public int StrictTenants { get; init; }

    /// <summary>Whether to set a daily budget and rate limits on every tenant.</summary>
    public bool Limits { get; init; } = true;

    public int Concurrency { get; init; } = 16;
}

/// <summary>
/// The state the measured requests run against: a plan with a price for the model (admin API), tenants with one key
/// each, a daily budget and rate limits each (the first through the admin API, the rest through the same grains with
/// the same policy JSON), and external nodes registered through the admin API with operator-signed credentials.
/// </summary>
internal sealed class BenchWorld
{
    public const string Plan = "standard";

    private BenchWorld(IReadOnlyList<BenchTenant> tenants, TimeSpan setup)
    {
        Tenants = tenants;
        SetupTime = setup;
    }

    public IReadOnlyList<BenchTenant> Tenants { get; }

    public TimeSpan SetupTime { get; }

    public static async Task<BenchWorld> CreateAsync(BenchServer server, WorldSpec spec)
    {
        var clock = Stopwatch.StartNew();
        await server.AdminAsync(HttpMethod.Put, "admin/v1/plans/" + Plan, new { currency = "USD" });
        await server.AdminAsync(HttpMethod.Post, $"admin/v1/plans/{Plan}/prices", new { model = BenchServer.ModelId, input_per_million = 0.5m, output_per_million = 1.5m });

        // The first tenant of each kind goes through the admin API (validation, policy document, audit); the rest
        // are written with the same policy JSON and limits through the grains the admin API calls, which is what
        // makes creating 10,000 of them take seconds rather than minutes on 2 cores.
        var tenants = new BenchTenant[spec.Tenants];
        var templates = new Dictionary<bool, string>();
        var grains = server.Get<IGrainFactory>();
        var limits = new TenantLimits([new BudgetSetting(null, "Day", 1_000m)], [new RateLimitSetting(null, 1_000_000, 1_000_000_000)]);
        foreach (var strict in new[] { false, true })
        {
            var i = strict ? spec.Tenants - 1 : 0;
            if (i < 0 || (strict && spec.StrictTenants == 0))
            {
                continue;
            }

            var id = TenantId(i);
            await server.AdminAsync(HttpMethod.Post, "admin/v1/tenants", new
            {
                id,
                plan = Plan,
                policy = new { allowed_jurisdictions = new[] { BenchServer.Jurisdiction }, allow_external_providers = !strict },
            });
            var key = await server.AdminAsync(HttpMethod.Post, $"admin/v1/tenants/{id}/keys", new { name = "bench" });
            if (spec.Limits)
            {
                await server.AdminAsync(HttpMethod.Put, $"admin/v1/tenants/{id}/limits", new
                {
                    budgets = new[] { new { period = "day", amount = 1_000m } },
                    rate_limits = new[] { new { requests_per_minute = 1_000_000L, tokens_per_minute = 1_000_000_000L } },
                });
                var set = await grains.GetGrain<ITenantGrain>(id).GetLimitsAsync();
                if (set.Budgets.Single() != limits.Budgets[0] || set.RateLimits.Single() != limits.RateLimits[0])
                {
                    throw new InvalidOperationException("The admin API stored other limits than the benchmark writes for the other tenants.");
                }
            }

            templates[strict] = (await grains.GetGrain<ITenantGrain>(id).GetAsync())!.PolicyJson;
            tenants[i] = new BenchTenant(id, key.GetProperty("key").GetProperty("id").GetString()!, key.GetProperty("secret").GetString()!);
        }

        await Parallel.ForEachAsync(Enumerable.Range(0, spec.Tenants).Where(i => tenants[i] is null), new ParallelOptions { MaxDegreeOfParallelism = spec.Concurrency }, async (i, cancellationToken) =>
        {
            var id = TenantId(i);
            var grain = grains.GetGrain<ITenantGrain>(id);
            await grain.UpsertAsync(id, templates[i >= spec.Tenants - spec.StrictTenants], Plan, false);
            var key = await grain.CreateKeyAsync("bench", null);
            if (spec.Limits)
            {
                await grain.SetLimitsAsync(limits);
            }

            tenants[i] = new BenchTenant(id, key.Key.Id, key.Secret);
        });

        await Parallel.ForEachAsync(Enumerable.Range(0, spec.Nodes), new ParallelOptions { MaxDegreeOfParallelism = spec.Concurrency }, async (i, _) =>
        {
            await server.AdminAsync(HttpMethod.Post, "admin/v1/nodes", new
            {
                id = "node-" + i.ToString("D4", CultureInfo.InvariantCulture),
                jurisdiction = BenchServer.Jurisdiction,

                // A TEST-NET address: never contacted (the benchmarks route to the local engine).
                base_url = "http://192.0.2.1:8000",
                models = new[] { new { id = spec.NodeModel(i), capacity = 16 } },
            });
        });

        return new BenchWorld(tenants, clock.Elapsed);
    }

    private static string TenantId(int i) => "t" + i.ToString("D5", CultureInfo.InvariantCulture);

    /// <summary>
    /// Activates every tenant's grains as a running server would have them: the key grain (resolve), the tenant
    /// grain with its rate limiter and budget account (rebuilt from the ledger on first use).
    /// </summary>
    public async Task WarmGrainsAsync(BenchServer server, int concurrency = 16)
    {
        var grains = server.Get<IGrainFactory>();
        await Parallel.ForEachAsync(Tenants, new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (tenant, cancellationToken) =>
        {
            _ = await grains.GetGrain<IApiKeyGrain>(ApiKeySecrets.Hash(tenant.Secret)).ResolveAsync();
            var grain = grains.GetGrain<ITenantGrain>(tenant.Id);
            _ = await grain.GetAsync();
            _ = await grain.GetBudgetsAsync();
        });
    }
}
