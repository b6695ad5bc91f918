using System.Diagnostics;
using System.Globalization;
using Sovereign.Cluster.Grains;
using Sovereign.Metering.Budgets;
using Sovereign.Metering.RateLimiting;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// Admission per request across many tenants: the tenant grain's <see cref="ITenantGrain.AdmitAsync"/> (rate limits
/// for tenant and key, budget reservation) and <see cref="ITenantGrain.SettleAsync"/>, as RequestMetering calls them,
/// against the same arithmetic on the pure <see cref="TenantRateLimiter"/> and <see cref="BudgetAccount"/> held in a
/// dictionary in process: the ratio is what the grain (Orleans call, activation lookup, turn scheduling, message
/// copy) costs on top of the logic.
/// </summary>
internal static class AdmissionBenchmark
{
    public const string Usage = "admission [--quick] [--tenants N (10000)] [--requests R (50000)] [--rate R/s (1000)] [--seconds S (5)] [--callers C (32)] [--data-root DIR]";

    private const long Tokens = 40;
    private const decimal MaxCost = 0.0001m;
    private const decimal ActualCost = 0.00004m;

    public static async Task<int> RunAsync(string[] argv)
    {
        Args args;
        try
        {
            args = Args.Parse(argv, "--tenants", "--requests", "--rate", "--seconds", "--callers", "--data-root");
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message + "\nusage: " + Usage);
            return 2;
        }

        var tenantCount = args.Int("--tenants", 10_000, 1_000);
        var requests = args.Int("--requests", 50_000, 5_000);
        var rate = args.Double("--rate", 1_000);
        var seconds = args.Int("--seconds", 5, 2);
        var callers = args.Int("--callers", 32, 32);
        Report.Machine("admission", argv);

        await using var server = await BenchServer.StartAsync(new ServerConfig { DataRoot = args.String("--data-root") });
        var world = await BenchWorld.CreateAsync(server, new WorldSpec { Tenants = tenantCount, Nodes = 0 });
        var warm = Stopwatch.StartNew();
        await world.WarmGrainsAsync(server);
        Console.WriteLine(FormattableString.Invariant(
            $"State: {tenantCount:N0} tenants, each with a key, a daily budget of 1,000 USD and rate limits (1M requests/min, 1G tokens/min), set through the admin API in {world.SetupTime.TotalSeconds:F1} s; grains activated in {warm.Elapsed.TotalSeconds:F1} s."));
        Console.WriteLine(FormattableString.Invariant($"Each request: {Tokens} tokens, reserves up to {MaxCost} USD, settles at {ActualCost} USD; tenants drawn at random."));
        Console.WriteLine();

        var grains = server.Get<IGrainFactory>();
        var time = TimeProvider.System;
        var pure = world.Tenants.ToDictionary(t => t.Id, t =>
        {
            var now = time.GetUtcNow();
            var account = new BudgetAccount(t.Id, "USD");
            account.SetLimit(BudgetLimit.ForTenant(BudgetPeriod.Day, 1_000m), now);
            return (Budget: account, Rates: new TenantRateLimiter(new RateLimitPolicy(1_000_000, 1_000_000_000), time));
        }, StringComparer.Ordinal);

        var random = new Random(5);
        var total = Math.Max(requests, (int)(rate * seconds)) * 4;
        var pick = Enumerable.Range(0, total).Select(_ => world.Tenants[random.Next(world.Tenants.Count)]).ToArray();
        var sequence = 0;
        string NextId() => "req_" + Interlocked.Increment(ref sequence).ToString("x8", CultureInfo.InvariantCulture);

        double[] admit = [], settle = [];
        async Task Grain(int i, bool withBudgetRead)
        {
            var tenant = pick[i];
            var id = NextId();
            var grain = grains.GetGrain<ITenantGrain>(tenant.Id);
            var t0 = Stopwatch.GetTimestamp();
            var result = await grain.AdmitAsync(new AdmissionRequest(id, tenant.KeyId, Tokens, MaxCost, "USD"));
            var t1 = Stopwatch.GetTimestamp();
            if (!result.Allowed)
            {
                throw new InvalidOperationException($"refused: {result.Code} {result.Message}");
            }

            await grain.SettleAsync(new SettlementRequest(id, tenant.KeyId, ActualCost, Tokens, Tokens - 10));
            if (withBudgetRead)
            {
                // RequestMetering.FinishAsync reads the budgets back after every settlement (for a gauge).
                _ = await grain.GetBudgetsAsync();
            }

            var t2 = Stopwatch.GetTimestamp();
            admit[i] = Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds;
            settle[i] = Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds;
        }

        // The grain's AdmitAsync/SettleAsync bodies, on the same pure types, without the grain.
        Task Pure(int i)
        {
            var tenant = pick[i];
            var id = NextId();
            var (budget, rates) = pure[tenant.Id];
            var now = time.GetUtcNow();
            lock (budget)
            {
                var rate = rates.TryAcquire(tenant.KeyId, 1, Tokens, now);
                _ = OpenAIRateLimitHeaders.For(rate).ToList();
                if (!rate.Allowed || !budget.TryReserve(id, tenant.KeyId, MaxCost, now).Succeeded)
                {
                    throw new InvalidOperationException("refused");
                }

                rates.Settle(tenant.KeyId, Tokens, Tokens - 10);
                budget.Settle(id, ActualCost, time.GetUtcNow(), tenant.KeyId);
            }

            return Task.CompletedTask;
        }

        // Warm-up, not reported.
        (admit, settle) = (new double[total], new double[total]);
        await Driver.BackToBackAsync(Math.Min(5_000, requests), i => Grain(i, false));
        await Driver.BackToBackAsync(Math.Min(5_000, requests), Pure);

        foreach (var mode in new[] { "back-to-back", "paced" })
        {
            var n = mode == "paced" ? (int)(rate * seconds) : requests;
            Task<RunStats> Run(Func<int, Task> op) => mode == "paced" ? Driver.PacedAsync(n, rate, op) : Driver.BackToBackAsync(n, op);
            var offset = 0;
            Func<int, Task> Shifted(Func<int, Task> op)
            {
                var o = offset;
                offset += n;
                return i => op(i + o);
            }

            var pureRun = await Run(Shifted(Pure));
            (admit, settle) = (new double[total], new double[total]);
            var grainRun = await Run(Shifted(i => Grain(i, false)));
            var admitDist = new Dist(admit.Where(v => v > 0));
            var settleDist = new Dist(settle.Where(v => v > 0));
            (admit, settle) = (new double[total], new double[total]);
            var readRun = await Run(Shifted(i => Grain(i, true)));
            var settleReadDist = new Dist(settle.Where(v => v > 0));
            var b = pureRun.Latency;
            Console.WriteLine(mode == "paced"
                ? FormattableString.Invariant($"### Paced: {rate:N0} requests/s for {seconds} s ({n:N0} requests per row; start lag p99 {Report.Ms(grainRun.StartLag!.P99)} ms)")
                : FormattableString.Invariant($"### Back to back: one caller, {n:N0} requests per row"));
            Console.WriteLine();
            Report.Table(
                ["per request", "p50 us", "p99 us", "max us", "p50 vs baseline", "p99 vs baseline", "CPU us/req", "errors"],
                [
                    Row("baseline: TenantRateLimiter + BudgetAccount in process (admit + settle)", b, b, pureRun),
                    Row("grain: AdmitAsync", admitDist, b, null),
                    Row("grain: SettleAsync", settleDist, b, null),
                    Row("grain: AdmitAsync + SettleAsync", grainRun.Latency, b, grainRun),
                    Row("grain: SettleAsync + GetBudgetsAsync (as RequestMetering.FinishAsync)", settleReadDist, b, null),
                    Row("grain: AdmitAsync + SettleAsync + GetBudgetsAsync", readRun.Latency, b, readRun),
                ]);
        }

        // Many callers at once: admissions per second, grain against pure.
        var duration = TimeSpan.FromSeconds(seconds);
        var counter = 0;
        var pureConc = await Driver.ConcurrentAsync(callers, duration, async (_, _) => { await Pure(Interlocked.Increment(ref counter) % total); return 1; });
        (admit, settle) = (new double[total], new double[total]);
        var grainConc = await Driver.ConcurrentAsync(callers, duration, async (_, _) => { await Grain(Interlocked.Increment(ref counter) % total, false); return 1; });
        Console.WriteLine(FormattableString.Invariant($"### {callers} concurrent callers for {seconds} s (saturation)"));
        Console.WriteLine();
        Report.Table(
            ["", "admissions/s", "vs baseline", "CPU us/admission", "errors"],
            [
                ["baseline: pure, in process", Report.N(pureConc.Results.Count / pureConc.Elapsed.TotalSeconds), "1.00x", Report.N(pureConc.Cpu.TotalMicroseconds / Math.Max(1, pureConc.Results.Count), "0.0"), pureConc.Errors.ToString(CultureInfo.InvariantCulture)],
                ["grain: AdmitAsync + SettleAsync", Report.N(grainConc.Results.Count / grainConc.Elapsed.TotalSeconds), Report.Ratio(grainConc.Results.Count / grainConc.Elapsed.TotalSeconds, pureConc.Results.Count / pureConc.Elapsed.TotalSeconds), Report.N(grainConc.Cpu.TotalMicroseconds / Math.Max(1, grainConc.Results.Count), "0.0"), grainConc.Errors.ToString(CultureInfo.InvariantCulture)],
            ]);
        if (grainConc.FirstError is { } error)
        {
            Console.WriteLine("First error: " + error);
        }

        Console.WriteLine($"Load average at end: {Report.LoadAverage()}");
        return 0;
    }

    private static string[] Row(string name, Dist d, Dist baseline, RunStats? run) =>
    [
        name, Report.Us(d.P50), Report.Us(d.P99), Report.Us(d.Max), Report.Ratio(d.P50, baseline.P50), Report.Ratio(d.P99, baseline.P99),
        run is null ? "-" : Report.N(run.Cpu.TotalMicroseconds / Math.Max(1, run.Latency.Count + run.Errors), "0.0"),
        run?.Errors.ToString(CultureInfo.InvariantCulture) ?? "-",
    ];
}
