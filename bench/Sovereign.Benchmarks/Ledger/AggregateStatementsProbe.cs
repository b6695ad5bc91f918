using System.Diagnostics;
using System.Globalization;
using Sovereign.Metering.Ledger;
using Sovereign.Storage;

namespace Sovereign.Benchmarks.Ledger;

/// <summary>
/// The usage ledger's commit of one record (its insert and six aggregate rows), with the period rows written by the
/// two one-day statements (session 54) against row by row (before), alternated in blocks in one process on one file:
/// the same machine load on both sides, so the difference is the statements'.
/// </summary>
internal static class AggregateStatementsProbe
{
    public static async Task RunAsync(SqlDatabase database, int blocks, int perBlock)
    {
        await using (await UsageLedger.OpenAsync(database))
        {
            // Migrations only: the writer below writes into the ledger's tables.
        }

        await using var writer = await LedgerWriter.OpenAsync(database, new UsageLedgerOptions(), CancellationToken.None);
        var times = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
        var statements = new Dictionary<bool, int>();
        var n = 0;
        for (var block = -2; block < blocks; block++)
        {
            var oneDay = (block & 1) == 0;
            writer.OneDayStatements = oneDay;
            for (var i = 0; i < perBlock; i++)
            {
                var record = new UsageRecord
                {
                    RequestId = Sovereign.Gateway.Hosting.RequestIds.New(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()),
                    Timestamp = DateTimeOffset.UtcNow,
                    Tenant = "bench-tenant",
                    KeyId = "key_0123456789abcdef",
                    Model = "mock-model",
                    Node = "mock-engine",
                    Jurisdiction = "TH",
                    PromptTokens = 9,
                    CompletionTokens = 1,
                    Cost = 0.000012m,
                    Currency = "USD",
                    Outcome = UsageOutcome.Completed,
                };
                var pending = new PendingAppend(record, record.Timestamp.ToUnixTimeMilliseconds(), 0, 12);
                var started = Stopwatch.GetTimestamp();
                await writer.CommitAsync([pending]);
                var elapsed = Stopwatch.GetElapsedTime(started).TotalMicroseconds;
                if (block >= 0)
                {
                    times[oneDay].Add(elapsed);
                    statements[oneDay] = writer.AggregateStatements;
                }

                n++;
            }
        }

        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"### One record's ledger commit: period rows in one-day statements against row by row ({blocks} alternated blocks of {perBlock}, after 2 warm-up blocks)"));
        Console.WriteLine();
        Console.WriteLine("| period rows written | aggregate statements per commit | commits | p50 us | p25 us | mean us | p90 us |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var oneDay in new[] { false, true })
        {
            var t = times[oneDay].Order().ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {(oneDay ? "one-day statements (session 54)" : "row by row (before)")} | {statements[oneDay]} | {t.Length:N0} | {t[t.Length / 2]:F1} | {t[t.Length / 4]:F1} | {t.Average():F1} | {t[t.Length * 9 / 10]:F1} |"));
        }

        var ratio = times[true].Order().ElementAt(times[true].Count / 2) / times[false].Order().ElementAt(times[false].Count / 2);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"\none-day / row by row, p50: {ratio:F3}x"));
    }
}
