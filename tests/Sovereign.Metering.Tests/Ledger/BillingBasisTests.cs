using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

/// <summary>
/// The basis a request was billed on (the language tax waived, or not) is on its durable usage record, and the tokens
/// the waiver did not bill are summed in the aggregates that usage and invoices read. Before, only the audit entry
/// held it: an invoice showed counted tokens and an amount they did not explain.
/// </summary>
public sealed class BillingBasisTests
{
    private static readonly CharacterEquivalentBasis Thai = new("th", 6.308123456789, 150, 200, "script")
    {
        CompletionLanguageLetters = 3,
        CompletionLetters = 40,
    };

    private static UsageRecord Waived(string id, int waivedPrompt, int waivedCompletion, decimal cost = 0.01m) =>
        Record(id, cost: cost) with { Language = "th", CharacterEquivalent = Thai, WaivedPromptTokens = waivedPrompt, WaivedCompletionTokens = waivedCompletion };

    [Fact]
    public async Task AppendAsync_WaivedRecord_StoresItsBasisAndWaivedTokens_EveryDigit()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(Waived("w", 60, 7));
        await ledger.AppendAsync(Record("plain"));

        var stored = await ledger.GetAsync("w");
        var plain = await ledger.GetAsync("plain");

        Assert.Equal(Thai, stored!.CharacterEquivalent);
        Assert.Equal((60, 7), (stored.WaivedPromptTokens, stored.WaivedCompletionTokens));
        Assert.Null(plain!.CharacterEquivalent);
        Assert.Equal((0, 0), (plain.WaivedPromptTokens, plain.WaivedCompletionTokens));
    }

    [Fact]
    public async Task UsageAndInvoice_SumTheWaivedTokensExactly_BilledIsCountedLessWaived()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(Waived("a", 60, 7, 0.25m));
        await ledger.AppendAsync(Waived("b", 30, 4, 0.5m));
        await ledger.AppendAsync(Record("c", cost: 1m));

        // A replay counts nothing twice, waived tokens included.
        Assert.False(await ledger.AppendAsync(Waived("a", 60, 7, 0.25m)));
        var row = Assert.Single(await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1) }));
        var invoice = await new InvoiceBuilder(ledger).BuildAsync("acme", Day0, Day0.AddDays(1));

        Assert.Equal((3L, 2L, 300L, 90L, 150L, 11L), (row.Requests, row.WaivedRequests, row.PromptTokens, row.WaivedPromptTokens, row.CompletionTokens, row.WaivedCompletionTokens));
        var line = Assert.Single(invoice.Lines);
        Assert.Equal((300L, 90L, 210L, 150L, 11L, 139L), (line.InputTokens, line.WaivedInputTokens, line.BilledInputTokens, line.OutputTokens, line.WaivedOutputTokens, line.BilledOutputTokens));
        Assert.Equal(1.75m, invoice.Total);
        var csv = InvoiceFormatter.ToCsv(invoice).Split("\r\n");
        Assert.EndsWith(",waived_input_tokens,waived_output_tokens,amount_due,row,carried_in,carried_out", csv[0], StringComparison.Ordinal);
        Assert.EndsWith(",llama-3-8b,3,300,150,0.750000,1.750000,,,90,11,,line,,", csv[1], StringComparison.Ordinal);
        Assert.EndsWith(",TOTAL,3,300,150,0.750000,1.750000,,,90,11,1.75,total,0.000000,0.000000", csv[2], StringComparison.Ordinal);
        var json = InvoiceFormatter.ToJson(invoice);
        Assert.Contains("\"waived_input_tokens\": 90", json, StringComparison.Ordinal);
        Assert.Contains("\"billed_output_tokens\": 139", json, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AppendAsync_WaivedTokensWithoutABasis_OrAboveTheCount_AreRefused()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();

        var unexplained = Assert.Throws<ArgumentException>(() => { _ = ledger.AppendAsync(Record("x") with { WaivedPromptTokens = 1 }); });
        Assert.Contains("basis", unexplained.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => { _ = ledger.AppendAsync(Waived("y", 101, 0)); });
        Assert.Throws<ArgumentException>(() => { _ = ledger.AppendAsync(Waived("z", 0, -1)); });
    }

    [Fact]
    public async Task Migration_LedgerWrittenBeforeTheBasis_ReadsAsBilledPerToken_AndNewUsageAddsUp()
    {
        using var db = new TempDatabase();
        await db.Database.MigrateAsync([.. UsageLedger.Migrations.Take(3)]);
        await using (var connection = await db.Database.OpenAsync())
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                INSERT INTO metering_usage_daily (tenant, day_start, model, jurisdiction, pool, device_class, currency, requests, completed, refused, cancelled,
                    failed, prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros) VALUES
                ('acme', 1741564800000, 'llama-3-8b', 'EU', '', '', 'EUR', 1, 1, 0, 0, 0, 10, 5, 0, 0, 1500000);
                INSERT INTO metering_usage (request_id, ts, tenant, key_id, model, node, jurisdiction, language, prompt_tokens, completion_tokens,
                    cached_tokens, queue_ms, ttft_ms, duration_ms, compute_us, outcome, refusal_code, cost_micros, currency, price_version) VALUES
                ('old', 1741564800000 + 3600000, 'acme', 'key-1', 'llama-3-8b', 'n', 'EU', 'th', 10, 5, 0, 0, NULL, 0, 0, 0, NULL, 1500000, 'EUR', 'v');
                """;
            await command.ExecuteNonQueryAsync();
        }

        // Every start migrates; two at once leave one applied migration and a ledger that works.
        await Task.WhenAll(db.Database.MigrateAsync(UsageLedger.Migrations), Storage.SqlDatabase.Sqlite(db.Path).MigrateAsync(UsageLedger.Migrations));
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(Waived("new", 60, 7, 0.25m));

        var old = await ledger.GetAsync("old");
        Assert.Null(old!.CharacterEquivalent);
        Assert.Equal((0, 0), (old.WaivedPromptTokens, old.WaivedCompletionTokens));
        var line = Assert.Single((await new InvoiceBuilder(ledger).BuildAsync("acme", Day0, Day0.AddDays(1))).Lines);
        Assert.Equal((2L, 110L, 60L, 55L, 7L, 1.75m), (line.Requests, line.InputTokens, line.WaivedInputTokens, line.OutputTokens, line.WaivedOutputTokens, line.Amount));
    }
}
