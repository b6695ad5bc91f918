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
    public const string Usage = "admission [--quick] [--tenants N (10000)] [--requests R (50000)] [--rate R/s (1000)] [--seconds S (5)] [--callers C (32)] [--rounds N (3)] [--data-root DIR]";

    private const long Tokens = 40;
    private const decimal MaxCost = 0.0001m;
    private const decimal ActualCost = 0.00004m;

    public static async Task<int> RunAsync(string[] argv)
    {
        Args args;
        try
        {
            args = Args.Parse(argv, "--tenants", "--requests", "--rate", "--seconds", "--callers", "--rounds", "--data-root");
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
        var rounds = args.Int("--rounds", 3, 1);
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
        var total = (Math.Max(requests, (int)(rate * seconds)) * 2) + 10;
        var pick = Enumerable.Range(0, total).Select(_ => world.Tenants[random.Next(world.Tenants.Count)]).ToArray();
        var sequence = 0;
        string NextId() => "req_" + Interlocked.Increment(ref sequence).ToString("x8", CultureInfo.InvariantCulture);

        async Task Grain(int i, double[] admit, double[] settle)
        {
            var tenant = pick[i];
            var id = NextId();
            var grain = grains.GetGrain<ITenantGrain>(tenant.Id);
            var t0 = Stopwatch.GetTimestamp();
            var result = await grain.AdmitAsync(new AdmissionRequest(id, tenant.KeyId, Tokens, MaxCost, "USD"));
            var t1 = Stopwatch.GetTimestamp();
            if (!result.Allowed)
            {
                throw new InvalidOperationException($"refused: {result.Outcome}");
            }

            _ = await grain.SettleAsync(new SettlementRequest(id, tenant.KeyId, ActualCost, Tokens, Tokens - 10));

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
                var settledAt = time.GetUtcNow();
                budget.Settle(id, ActualCost, settledAt, tenant.KeyId);
                _ = budget.Remaining(settledAt).Where(b => b.Limit.KeyId is null).Select(b => (decimal?)b.Remaining).Min();
            }

            return Task.CompletedTask;
        }

        // Warm-up, not reported.
        var scratch = new double[total];
        await Driver.BackToBackAsync(Math.Min(5_000, requests), i => Grain(i, scratch, scratch));
        await Driver.BackToBackAsync(Math.Min(5_000, requests), Pure);

        foreach (var mode in new[] { "back-to-back", "paced" })
        {
            var n = mode == "paced" ? (int)(rate * seconds) : requests;
            var each = Math.Max(1, n / rounds);
            Task<RunStats> Run(Func<int, Task> op) => mode == "paced" ? Driver.PacedAsync(each, rate, op) : Driver.BackToBackAsync(each, op);
            var (admitA, settleA) = (new double[total], new double[total]);
            var rows = new Func<int, Task>[] { Pure, i => Grain(i, admitA, settleA) };
            var runs = rows.Select(_ => new List<RunStats>()).ToArray();

            // Rounds, each starting with a different row; every request of the mode draws its own tenant.
            for (var round = 0; round < rounds; round++)
            {
                for (var k = 0; k < rows.Length; k++)
                {
                    var r = (k + round) % rows.Length;
                    var offset = ((round * rows.Length) + r) * each;
                    var op = rows[r];
                    runs[r].Add(await Run(i => op(i + offset)));
                }
            }

            var merged = runs.Select(list => Dist.Merge(list.Select(x => x.Latency))).ToArray();
            RunStats Sum(List<RunStats> list) => new(Dist.Merge(list.Select(x => x.Latency)), list.Sum(x => x.Errors), TimeSpan.FromTicks(list.Sum(x => x.Elapsed.Ticks)), TimeSpan.FromTicks(list.Sum(x => x.Cpu.Ticks)), null, list.Select(x => x.FirstError).FirstOrDefault(e => e is not null));
            var b = merged[0];
            if (mode == "paced")
            {
                var lag = Dist.Merge(runs.SelectMany(list => list.Select(x => x.StartLag!)));
                Console.WriteLine(FormattableString.Invariant($"### Paced: {rate:N0} requests/s, {rounds} rounds of {each:N0} requests per row (start lag behind schedule p50 {Report.Ms(lag.P50)} ms, p99 {Report.Ms(lag.P99)} ms)"));
            }
            else
            {
                Console.WriteLine(FormattableString.Invariant($"### Back to back: one caller, {rounds} rounds of {each:N0} requests per row"));
            }

            Console.WriteLine();
            Report.Table(
                ["per request", "p50 us", "p99 us", "max us", "p50 vs baseline", "p99 vs baseline", "CPU us/req", "errors"],
                [
                    Row("baseline: TenantRateLimiter + BudgetAccount in process (admit + settle)", b, b, Sum(runs[0])),
                    Row("grain: AdmitAsync", new Dist(admitA.Where(v => v > 0)), b, null),
                    Row("grain: SettleAsync", new Dist(settleA.Where(v => v > 0)), b, null),
                    Row("grain: AdmitAsync + SettleAsync", merged[1], b, Sum(runs[1])),
                ]);
            if (runs.SelectMany(list => list).Select(x => x.FirstError).FirstOrDefault(e => e is not null) is { } firstError)
            {
                Console.WriteLine("First error: " + firstError);
                Console.WriteLine();
            }
        }

        // Many callers at once: admissions per second, grain against pure.
        var duration = TimeSpan.FromSeconds(seconds);
        var counter = 0;
        var pureConc = await Driver.ConcurrentAsync(callers, duration, async (_, _) => { await Pure(Interlocked.Increment(ref counter) % total); return 1; });
        var grainConc = await Driver.ConcurrentAsync(callers, duration, async (_, _) => { await Grain(Interlocked.Increment(ref counter) % total, scratch, scratch); return 1; });
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
