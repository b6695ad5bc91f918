using CsCheck;
using Sovereign.Metering.Ledger;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

public sealed class LedgerPropertyTests
{
    /// <summary>Any mix of records and retries: aggregates equal the sums over distinct request ids, to the micro-unit.</summary>
    [Fact]
    public async Task AppendAsync_RandomRecordsWithRetries_AggregatesEqualDistinctRecordSums()
    {
        var genRecord =
            from id in Gen.Int[0, 40]
            from tenant in Gen.OneOf("acme", "globex")
            from model in Gen.OneOf("m1", "m2")
            from minute in Gen.Int[0, 4 * 24 * 60]
            from micros in Gen.Long[0, 50_000_000]
            from prompt in Gen.Int[0, 100_000]
            from completion in Gen.Int[0, 10_000]
            from computeMicros in Gen.Long[0, 100_000_000]
            select Record($"r{id}", at: Day0.AddMinutes(minute), tenant: tenant, model: model, cost: micros / 1_000_000m,
                prompt: prompt, completion: completion, compute: computeMicros / 1_000_000m);

        await genRecord.Array[1, 80].SampleAsync(async records =>
        {
            using var db = new TempDatabase();
            await using var ledger = await db.OpenLedgerAsync(new UsageLedgerOptions { MaxBatchSize = 7 });
            await Task.WhenAll(records.Select(r => ledger.AppendAsync(r)));

            // Which duplicate wins a race is not defined, so compare with the records actually stored.
            var stored = new List<UsageRecord>();
            foreach (var tenant in new[] { "acme", "globex" })
            {
                stored.AddRange(await ReadAllAsync(ledger, tenant, Day0, Day0.AddDays(5)));
            }

            Assert.Equal(records.Select(r => r.RequestId).Distinct().Count(), stored.Count);
            var rows = await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(5), GroupBy = UsageGroupBy.Tenant | UsageGroupBy.Model });
            foreach (var row in rows)
            {
                var group = stored.Where(r => r.Tenant == row.Tenant && r.Model == row.Model).ToList();
                Assert.Equal(group.Count, row.Requests);
                Assert.Equal(group.Sum(r => r.Cost), row.Cost);
                Assert.Equal(group.Sum(r => r.ComputeSeconds), row.ComputeSeconds);
                Assert.Equal(group.Sum(r => (long)r.PromptTokens), row.PromptTokens);
            }

            Assert.Equal(stored.Count, rows.Sum(r => r.Requests));
        }, iter: 25, threads: 1);
    }
}
