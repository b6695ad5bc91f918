using Sovereign.Metering.Ledger;
using Sovereign.Storage;

namespace Sovereign.Metering.Tests.Ledger;

/// <summary>A fresh SQLite file in its own temporary folder, deleted afterwards.</summary>
internal sealed class TempDatabase : IDisposable
{
    public TempDatabase()
    {
        Folder = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sovereign-ledger-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Folder);
        Path = System.IO.Path.Combine(Folder, "ledger.db");
        Database = SqlDatabase.Sqlite(Path);
    }

    public string Folder { get; }

    public string Path { get; }

    public SqlDatabase Database { get; }

    public Task<UsageLedger> OpenLedgerAsync(UsageLedgerOptions? options = null) => UsageLedger.OpenAsync(Database, options);

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a pooled handle elsewhere may still hold the file.
        }
    }
}

internal static class LedgerTestData
{
    /// <summary>2025-03-10T00:00:00Z.</summary>
    public static readonly DateTimeOffset Day0 = new(2025, 3, 10, 0, 0, 0, TimeSpan.Zero);

    public static UsageRecord Record(string requestId, DateTimeOffset? at = null, string tenant = "acme", string model = "llama-3-8b",
        string jurisdiction = "EU", decimal cost = 0.0125m, int prompt = 100, int completion = 50, decimal compute = 0.25m,
        UsageOutcome outcome = UsageOutcome.Completed, string currency = "EUR") => new()
        {
            RequestId = requestId,
            Timestamp = at ?? Day0.AddHours(10),
            Tenant = tenant,
            KeyId = "key-1",
            Model = model,
            Node = "node-a",
            Jurisdiction = jurisdiction,
            Language = "de",
            PromptTokens = prompt,
            CompletionTokens = completion,
            CachedTokens = prompt / 4,
            QueueTimeMs = 3,
            TimeToFirstTokenMs = 40,
            DurationMs = 900,
            ComputeSeconds = compute,
            Outcome = outcome,
            RefusalCode = outcome == UsageOutcome.Refused ? "budget_exceeded" : null,
            Cost = cost,
            Currency = currency,
            PriceVersion = cost == 0 ? null : "standard:llama-3-8b@2025-01-01T00:00:00.000Z",
        };

    /// <summary>Deterministic varied records: several tenants, models, jurisdictions, days and outcomes.</summary>
    public static List<UsageRecord> Many(int count, int seed = 7, string prefix = "req")
    {
        var random = new Random(seed);
        string[] tenants = ["acme", "globex", "initech"];
        string[] models = ["llama-3-8b", "mistral-7b", "qwen-2.5-7b"];
        string[] jurisdictions = ["EU", "DE", "FR"];
        var records = new List<UsageRecord>(count);
        for (var i = 0; i < count; i++)
        {
            var outcome = (UsageOutcome)random.Next(0, 4);
            var refused = outcome == UsageOutcome.Refused;
            records.Add(Record(
                $"{prefix}-{i:D6}",
                at: Day0.AddMinutes(random.Next(0, 3 * 24 * 60)),
                tenant: tenants[random.Next(tenants.Length)],
                model: models[random.Next(models.Length)],
                jurisdiction: jurisdictions[random.Next(jurisdictions.Length)],
                cost: refused ? 0m : random.Next(0, 5_000_000) / 1_000_000m,
                prompt: random.Next(0, 4000),
                completion: refused ? 0 : random.Next(0, 1000),
                compute: refused ? 0m : random.Next(0, 2_000_000) / 1_000_000m,
                outcome: outcome));
        }

        return records;
    }

    public static async Task<List<UsageRecord>> ReadAllAsync(UsageLedger ledger, string tenant, DateTimeOffset from, DateTimeOffset to)
    {
        var list = new List<UsageRecord>();
        await foreach (var record in ledger.ReadRecordsAsync(tenant, from, to))
        {
            list.Add(record);
        }

        return list;
    }
}
