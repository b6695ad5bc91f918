using System.Globalization;
using System.Text.Json;
using Sovereign.Metering.Ledger;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

public sealed class InvoiceTests
{
    [Fact]
    public async Task BuildAsync_Period_TotalReconcilesExactlyWithRawRecordsAndLines()
    {
        using var db = new TempDatabase();
        var records = Many(2000);
        await using var ledger = await db.OpenLedgerAsync();
        await Task.WhenAll(records.Select(r => ledger.AppendAsync(r)));
        var from = Day0.AddDays(1);
        var to = Day0.AddDays(3);

        var invoice = await new InvoiceBuilder(ledger).BuildAsync("acme", from, to);

        var raw = await ReadAllAsync(ledger, "acme", from, to);
        Assert.NotEmpty(raw);
        Assert.Equal(raw.Sum(r => r.Cost), invoice.Total);
        Assert.Equal(invoice.Lines.Sum(l => l.Amount), invoice.Total);
        Assert.Equal(raw.Count, invoice.Lines.Sum(l => l.Requests));
        Assert.Equal(raw.Sum(r => (long)r.PromptTokens), invoice.Lines.Sum(l => l.InputTokens));
        Assert.Equal(raw.Sum(r => (long)r.CompletionTokens), invoice.Lines.Sum(l => l.OutputTokens));
        Assert.Equal(raw.Sum(r => r.ComputeSeconds), invoice.Lines.Sum(l => l.ComputeSeconds));
        foreach (var line in invoice.Lines)
        {
            Assert.Equal(raw.Where(r => r.Model == line.Model).Sum(r => r.Cost), line.Amount);
        }

        Assert.Equal(("acme", "EUR"), (invoice.Tenant, invoice.Currency));
        Assert.Equal(invoice.Lines.Select(l => l.Model).Order(StringComparer.Ordinal), invoice.Lines.Select(l => l.Model));
    }

    [Fact]
    public async Task BuildAsync_AfterPurge_TotalUnchanged()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await Task.WhenAll(Many(500).Select(r => ledger.AppendAsync(r)));
        var builder = new InvoiceBuilder(ledger);
        var before = await builder.BuildAsync("acme", Day0, Day0.AddDays(3));

        await ledger.PurgeAsync(Day0.AddDays(3));

        var after = await builder.BuildAsync("acme", Day0, Day0.AddDays(3));
        Assert.Equal(before.Total, after.Total);
        Assert.Equal(before.Lines, after.Lines);
    }

    [Fact]
    public async Task BuildAsync_NotMidnight_ThrowsArgumentException()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();

        await Assert.ThrowsAsync<ArgumentException>(() => new InvoiceBuilder(ledger).BuildAsync("acme", Day0.AddHours(1), Day0.AddDays(1)));
        await Assert.ThrowsAsync<ArgumentException>(() => new InvoiceBuilder(ledger).BuildAsync("acme", Day0, Day0));
    }

    [Fact]
    public async Task BuildAsync_SeveralCurrencies_ThrowsUnlessOneIsChosen()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(Record("e", cost: 1m, currency: "EUR"));
        await ledger.AppendAsync(Record("c", cost: 2m, currency: "CHF"));
        var builder = new InvoiceBuilder(ledger);

        await Assert.ThrowsAsync<InvalidOperationException>(() => builder.BuildAsync("acme", Day0, Day0.AddDays(1)));
        var chf = await builder.BuildAsync("acme", Day0, Day0.AddDays(1), "CHF");

        Assert.Equal(("CHF", 2m), (chf.Currency, chf.Total));
    }

    [Fact]
    public async Task BuildAsync_NoUsage_EmptyInvoiceInNoCurrency()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();

        var invoice = await new InvoiceBuilder(ledger).BuildAsync("acme", Day0, Day0.AddDays(1));

        Assert.Empty(invoice.Lines);
        Assert.Equal((InvoiceBuilder.NoCurrency, 0m), (invoice.Currency, invoice.Total));
    }

    [Fact]
    public void ToCsv_UnderAGermanCulture_UsesInvariantFormatAndStableColumns()
    {
        var previous = CultureInfo.CurrentCulture;
        CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("de-DE");
        try
        {
            var csv = InvoiceFormatter.ToCsv(SampleInvoice());

            Assert.Equal(
                "tenant,currency,period_from,period_to,model,requests,input_tokens,output_tokens,compute_seconds,amount,pool,device_class,waived_input_tokens,waived_output_tokens\r\n" +
                "acme,EUR,2025-03-01T00:00:00Z,2025-04-01T00:00:00Z,llama-3-8b,1200,3400000,560000,1234.500000,12.345678,,,0,0\r\n" +
                "acme,EUR,2025-03-01T00:00:00Z,2025-04-01T00:00:00Z,\"org/model, \"\"v2\"\"\",3,30,3,0.000001,0.000002,,,0,0\r\n" +
                "acme,EUR,2025-03-01T00:00:00Z,2025-04-01T00:00:00Z,TOTAL,1203,3400030,560003,1234.500001,12.345680,,,0,0\r\n",
                csv);
        }
        finally
        {
            CultureInfo.CurrentCulture = previous;
        }
    }

    [Fact]
    public void ToJson_Invoice_HasStableFieldsAndExactAmounts()
    {
        var invoice = SampleInvoice();

        using var json = JsonDocument.Parse(InvoiceFormatter.ToJson(invoice));

        var root = json.RootElement;
        Assert.Equal(["tenant", "currency", "period_from", "period_to", "lines", "total"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal("12.345680", root.GetProperty("total").GetString());
        var line = root.GetProperty("lines")[1];
        Assert.Equal("org/model, \"v2\"", line.GetProperty("model").GetString());
        Assert.Equal(3, line.GetProperty("requests").GetInt64());
        Assert.Equal("0.000002", line.GetProperty("amount").GetString());
        Assert.Equal(
            invoice.Total,
            root.GetProperty("lines").EnumerateArray().Sum(l => decimal.Parse(l.GetProperty("amount").GetString()!, CultureInfo.InvariantCulture)));
    }

    private static Invoice SampleInvoice() => new()
    {
        Tenant = "acme",
        Currency = "EUR",
        PeriodFrom = new DateTimeOffset(2025, 3, 1, 0, 0, 0, TimeSpan.Zero),
        PeriodTo = new DateTimeOffset(2025, 4, 1, 0, 0, 0, TimeSpan.Zero),
        Lines =
        [
            new InvoiceLine("llama-3-8b", 1200, 3_400_000, 560_000, 1234.5m, 12.345678m),
            new InvoiceLine("org/model, \"v2\"", 3, 30, 3, 0.000001m, 0.000002m),
        ],
        Total = 12.34568m,
    };
}
