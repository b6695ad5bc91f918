using Sovereign.Metering.Ledger;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

/// <summary>Every usage record names its node's pool and device class; usage and invoices group by them.</summary>
public sealed class PoolUsageTests
{
    private static UsageRecord InPool(string id, string? pool, string? deviceClass, decimal cost) =>
        Record(id, cost: cost) with { Pool = pool, DeviceClass = deviceClass };

    [Fact]
    public async Task AppendAsync_PoolAndDeviceClass_AreStoredAndReadBack()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(InPool("a", "th-h100", "h100", 1m));

        var stored = await ledger.GetAsync("a");

        Assert.Equal(("th-h100", "h100"), (stored!.Pool, stored.DeviceClass));
    }

    [Fact]
    public async Task QueryUsageAsync_GroupedByPoolAndDeviceClass_SplitsTheSameModelsUsage()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(InPool("a", "th-h100", "h100", 1m));
        await ledger.AppendAsync(InPool("b", "th-h100", "h100", 2m));
        await ledger.AppendAsync(InPool("c", "sg-cpu", "cpu", 0.5m));
        await ledger.AppendAsync(InPool("d", null, null, 0.25m));

        var rows = await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1), GroupBy = UsageGroupBy.Pool | UsageGroupBy.DeviceClass });
        var onlyTh = await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1), Pool = "th-h100" });

        Assert.Equal(
            [(null, null, 1L, 0.25m), ("sg-cpu", "cpu", 1L, 0.5m), ("th-h100", "h100", 2L, 3m)],
            rows.Select(r => (r.Pool, r.DeviceClass, r.Requests, r.Cost)).OrderBy(r => r.Pool ?? "", StringComparer.Ordinal));
        Assert.Equal(3m, Assert.Single(onlyTh).Cost);
    }

    /// <summary>
    /// A join token's <c>H100</c> and the class derived from an H100's name, <c>h100</c>, were two classes in usage and
    /// invoices, though prices took them for one. Classes are stored in lower case now; rows stored before, as the
    /// operator spelt them, add up with the rest.
    /// </summary>
    [Fact]
    public async Task QueryUsageAsync_ADeviceClassSpeltInAnotherCase_AddsUpAsOneClass_OnTheInvoiceToo()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(InPool("a", "th-h100", "H100", 1m));
        await ledger.AppendAsync(InPool("b", "th-h100", "h100", 2m));

        var rows = await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1), GroupBy = UsageGroupBy.DeviceClass });
        var invoice = await new InvoiceBuilder(ledger).BuildAsync("acme", Day0, Day0.AddDays(1));

        Assert.Equal(("h100", 2L, 3m), rows.Select(r => (r.DeviceClass, r.Requests, r.Cost)).Single());
        Assert.Equal(("h100", 3m), invoice.Lines.Select(l => (l.DeviceClass, l.Amount)).Single());
    }

    [Fact]
    public async Task Invoice_HasOneLinePerModelPoolAndDeviceClass_InBothFormats()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(InPool("a", "th-h100", "h100", 1m));
        await ledger.AppendAsync(InPool("b", "sg-cpu", "cpu", 0.5m));

        var invoice = await new InvoiceBuilder(ledger).BuildAsync("acme", Day0, Day0.AddDays(1));

        Assert.Equal([("sg-cpu", "cpu", 0.5m), ("th-h100", "h100", 1m)], invoice.Lines.Select(l => (l.Pool, l.DeviceClass, l.Amount)));
        Assert.Equal(1.5m, invoice.Total);
        var csv = InvoiceFormatter.ToCsv(invoice).Split("\r\n");
        Assert.Equal("tenant,currency,period_from,period_to,model,requests,input_tokens,output_tokens,compute_seconds,amount,pool,device_class,waived_input_tokens,waived_output_tokens,amount_due,row,carried_in,carried_out", csv[0]);
        Assert.EndsWith(",llama-3-8b,1,100,50,0.250000,1.000000,th-h100,h100,0,0,,line,,", csv[2], StringComparison.Ordinal);
        Assert.EndsWith(",TOTAL,2,200,100,0.500000,1.500000,,,0,0,1.50,total,0.000000,0.000000", csv[3], StringComparison.Ordinal);
        Assert.Contains("\"pool\": \"th-h100\"", InvoiceFormatter.ToJson(invoice), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migration_LedgerWrittenBeforePools_StaysReadable_AndNewUsageAddsPools()
    {
        using var db = new TempDatabase();
        await db.Database.MigrateAsync([.. UsageLedger.Migrations.Take(2)]);
        await using (var connection = await db.Database.OpenAsync())
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                INSERT INTO metering_usage_daily (tenant, day_start, model, jurisdiction, currency, requests, completed, refused, cancelled, failed,
                    prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros) VALUES
                ('acme', 1749340800000, 'llama-3-8b', 'EU', 'EUR', 2, 2, 0, 0, 0, 20, 10, 0, 0, 3000000);
                INSERT INTO metering_usage (request_id, ts, tenant, key_id, model, node, jurisdiction, language, prompt_tokens, completion_tokens,
                    cached_tokens, queue_ms, ttft_ms, duration_ms, compute_us, outcome, refusal_code, cost_micros, currency, price_version) VALUES
                ('old', 1749340800000 + 3600000, 'acme', 'key-1', 'llama-3-8b', 'n', 'EU', NULL, 10, 5, 0, 0, NULL, 0, 0, 0, NULL, 1500000, 'EUR', 'v');
                """;
            await command.ExecuteNonQueryAsync();
        }

        await using var ledger = await db.OpenLedgerAsync();
        var day = DateTimeOffset.FromUnixTimeMilliseconds(1749340800000);
        await ledger.AppendAsync(Record("new", at: day.AddHours(2), cost: 1m) with { Pool = "eu-h100", DeviceClass = "h100" });

        var old = await ledger.GetAsync("old");
        Assert.Equal((null, null, 1.5m), (old!.Pool, old.DeviceClass, old.Cost));
        var invoice = await new InvoiceBuilder(ledger).BuildAsync("acme", day, day.AddDays(1));
        Assert.Equal([(null, null, 2L, 3m), ("eu-h100", "h100", 1L, 1m)], invoice.Lines.Select(l => (l.Pool, l.DeviceClass, l.Requests, l.Amount)));
    }
}
