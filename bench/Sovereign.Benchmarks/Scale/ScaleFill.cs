using System.Diagnostics;
using System.Globalization;
using Sovereign.Metering.Ledger;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;
using Sovereign.Storage;

namespace Sovereign.Benchmarks.Scale;

/// <summary>
/// Fills a stopped server's data directory with a year of history, written through the product's own stores so the
/// chain, its signed checkpoints, the witness and the ledger's daily and period aggregates are what a server would have
/// written: tenants and keys (<see cref="ControlPlaneStore"/>, as the tenant grain writes them), and per request an
/// <c>inference.allowed</c> decision and an <c>inference.completed</c> outcome (<see cref="AuditLog"/>) carrying the
/// request's usage record (<see cref="UsageLedger.Carry"/>) in the outcome's transaction, as the gateway commits them.
/// Time runs from <c>--days</c> ago to now on a clock of its own, so entry times never decrease and the records spread
/// over the year. Run it on a data directory a server created and then stopped (it holds the operator key, the witness
/// and the price book's plan); afterwards start the server on it and measure.
/// </summary>
public static class ScaleFill
{
    /// <summary>Command-line help.</summary>
    public const string Usage =
        "scale-fill --data-dir DIR [--tenants N (10000)] [--keys-per-tenant K (1)] [--requests R (100000)] [--days D (365)] " +
        "[--plan NAME (standard)] [--currency EUR] [--model ID (sovereign-test-tiny)] [--gateway NODE-ID (local)] [--jurisdiction TH] " +
        "[--tenant-prefix P (t)] [--in-flight F (512)] [--skip-tenants]";

    /// <summary>Runs the fill; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        string? dataDir = null;
        int tenants = 10_000, keysPerTenant = 1, days = 365, inFlight = 512;
        long requests = 100_000;
        string plan = "standard", currency = "EUR", model = "sovereign-test-tiny", gateway = "local", jurisdiction = "TH", prefix = "t";
        var skipTenants = false;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--data-dir": dataDir = args[++i]; break;
                case "--tenants": tenants = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--keys-per-tenant": keysPerTenant = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--requests": requests = long.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--days": days = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--plan": plan = args[++i]; break;
                case "--currency": currency = args[++i]; break;
                case "--model": model = args[++i]; break;
                case "--gateway": gateway = args[++i]; break;
                case "--jurisdiction": jurisdiction = args[++i]; break;
                case "--tenant-prefix": prefix = args[++i]; break;
                case "--in-flight": inFlight = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--skip-tenants": skipTenants = true; break;
                default:
                    Console.Error.WriteLine($"scale-fill: unknown option '{args[i]}'\nusage: {Usage}");
                    return 2;
            }
        }

        if (dataDir is null || tenants < 1 || keysPerTenant < 1 || requests < 0 || days < 1 || inFlight < 1)
        {
            Console.Error.WriteLine("usage: " + Usage);
            return 2;
        }

        var database = SqlDatabase.Sqlite(Path.Combine(dataDir, "sovereign.db"));
        await database.MigrateAsync([.. ControlPlaneStore.Migrations, .. AuditLog.Migrations, .. UsageLedger.Migrations]);
        var store = new ControlPlaneStore(database);
        var clock = new SteppedClock(DateTimeOffset.UtcNow.AddDays(-days));
        var keys = new List<(string Tenant, string Key)>(tenants * keysPerTenant);
        var watch = Stopwatch.StartNew();
        for (var t = 0; t < tenants; t++)
        {
            var tenant = string.Create(CultureInfo.InvariantCulture, $"{prefix}{t:D6}");
            var created = clock.GetUtcNow().ToUnixTimeMilliseconds();
            if (!skipTenants)
            {
                await store.UpsertTenantAsync(new TenantRecord(tenant, tenant, $$"""{"allowed_jurisdictions":["{{jurisdiction}}"],"allowed_models":null,"allowed_licenses":null,"allowed_origins":null,"allow_external_providers":null,"retention":null}""", plan, false, created, created));
            }

            for (var k = 0; k < keysPerTenant; k++)
            {
                var (id, _, visible, hash) = ApiKeySecrets.Create();
                if (!skipTenants)
                {
                    await store.InsertKeyAsync(new ApiKeyRecord(id, tenant, visible, hash, "app-" + k.ToString(CultureInfo.InvariantCulture), null, created, null));
                }

                keys.Add((tenant, id));
            }

            if ((t + 1) % 10_000 == 0)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  tenants: {t + 1:N0} in {watch.Elapsed.TotalSeconds:F1} s"));
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"tenants: {tenants:N0} with {keys.Count:N0} keys in {watch.Elapsed.TotalSeconds:F1} s"));
        if (requests == 0)
        {
            return 0;
        }

        var key = OperatorSigningKey.LoadOrCreate(Path.Combine(dataDir, "operator-key.pem"));
        await using var audit = await AuditLog.OpenAsync(database, key, new AuditLogOptions { WitnessPath = Path.Combine(dataDir, AuditWitness.FileName) }, clock);
        await using var ledger = await UsageLedger.OpenAsync(database, new UsageLedgerOptions { RetentionDays = 36_500, Writer = gateway });
        var step = TimeSpan.FromDays(days).Ticks / requests;
        var random = new Random(42);
        var pending = new Queue<Task>(inFlight);
        watch.Restart();
        for (long r = 0; r < requests; r++)
        {
            clock.Advance(step);
            var (tenant, keyId) = keys[random.Next(keys.Count)];
            var requestId = "req_" + Guid.NewGuid().ToString("N");
            var prompt = random.Next(10, 2000);
            var completion = random.Next(1, 500);
            var cost = decimal.Round(((prompt * 0.20m) + (completion * 0.60m)) / 1_000_000m, 6);
            if (pending.Count >= inFlight)
            {
                await pending.Dequeue();
            }

            pending.Enqueue(WriteRequestAsync(audit, ledger, clock.GetUtcNow(), requestId, tenant, keyId, model, gateway, jurisdiction, prompt, completion, cost, currency));
            if ((r + 1) % 100_000 == 0)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  requests: {r + 1:N0} in {watch.Elapsed.TotalSeconds:F1} s"));
            }
        }

        await Task.WhenAll(pending);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"requests: {requests:N0} ({requests * 2:N0} audit entries, {requests:N0} usage records) in {watch.Elapsed.TotalSeconds:F1} s"));
        return 0;
    }

    private static async Task WriteRequestAsync(AuditLog audit, UsageLedger ledger, DateTimeOffset at, string requestId, string tenant, string keyId, string model, string gateway,
        string jurisdiction, int prompt, int completion, decimal cost, string currency)
    {
        await audit.AppendAsync(new AuditRecord
        {
            Kind = AuditKind.Inference, Actor = keyId, Action = AuditActions.InferenceAllowed, Tenant = tenant, KeyId = keyId, Model = model,
            Gateway = gateway, Node = gateway, Jurisdiction = jurisdiction, Decision = AuditDecision.Allowed, Reasons = ["jurisdiction allowed"],
            Details = new Dictionary<string, string> { ["request_id"] = requestId, ["language"] = "en" },
        });
        var record = new UsageRecord
        {
            RequestId = requestId, Timestamp = at, Tenant = tenant, KeyId = keyId, Model = model, Node = gateway, Jurisdiction = jurisdiction,
            Language = "en", PromptTokens = prompt, CompletionTokens = completion, DurationMs = 100, ComputeSeconds = 0.1m,
            Outcome = UsageOutcome.Completed, Cost = cost, Currency = currency, PriceVersion = cost == 0 ? null : "v1",
        };
        var carried = ledger.Carry(record) ?? throw new InvalidOperationException("the ledger does not carry");
        await audit.AppendAsync(new AuditRecord
        {
            Kind = AuditKind.Inference, Actor = keyId, Action = AuditActions.InferenceCompleted, Tenant = tenant, KeyId = keyId, Model = model,
            Gateway = gateway, Node = gateway, Jurisdiction = jurisdiction, Decision = AuditDecision.Allowed, PromptTokens = prompt, CompletionTokens = completion,
            Details = new Dictionary<string, string>
            {
                ["request_id"] = requestId, ["outcome"] = "stop", ["language"] = "en",
                [LedgerAuditDetails.Cost] = cost.ToString("0.000000", CultureInfo.InvariantCulture), [LedgerAuditDetails.Currency] = currency,
            },
        }, carried);
        await carried.Stored;
    }

    /// <summary>A clock the fill moves forward itself, so a year's entries carry a year's times.</summary>
    private sealed class SteppedClock(DateTimeOffset start) : TimeProvider
    {
        private long _ticks = start.UtcTicks;

        public void Advance(long ticks) => Interlocked.Add(ref _ticks, ticks);

        public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);
    }
}
