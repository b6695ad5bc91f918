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

    /// <summary>
    /// A tenant that used an unpriced model (recorded at no cost in XXX, or in USD before XXX existed) and then a
    /// model its EUR plan prices got a 400 "usage in several currencies" for an invoice of one currency's money: the
    /// free lines counted as a second currency. They are now lines of the one invoice, at no cost.
    /// </summary>
    [Fact]
    public async Task BuildAsync_UnpricedUsageInXxxOrOldUsd_IsFreeLinesOfThePricedCurrencysInvoice()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(Record("free-old", model: "local-a", cost: 0m, currency: "USD"));
        await ledger.AppendAsync(Record("free-new", model: "local-a", cost: 0m, currency: InvoiceBuilder.NoCurrency));
        await ledger.AppendAsync(Record("free-b", model: "local-b", cost: 0m, currency: InvoiceBuilder.NoCurrency));
        await ledger.AppendAsync(Record("priced", model: "llama-3-8b", cost: 2.5m, currency: "EUR"));

        var invoice = await new InvoiceBuilder(ledger).BuildAsync("acme", Day0, Day0.AddDays(1));

        Assert.Equal(("EUR", 2.5m), (invoice.Currency, invoice.Total));
        Assert.Equal(["llama-3-8b:1:2.5", "local-a:2:0", "local-b:1:0"], invoice.Lines.Select(l => $"{l.Model}:{l.Requests}:{l.Amount}"));
        Assert.Equal(4 * 100, invoice.Lines.Sum(l => l.InputTokens));
    }

    /// <summary>With nothing priced, the invoice is in the plan's currency and holds the free usage, whatever currency it was stored in.</summary>
    [Fact]
    public async Task BuildAsync_OnlyUnpricedUsage_IsInThePlansCurrency_WithItsLines()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(Record("free-old", model: "local-a", cost: 0m, currency: "USD"));
        await ledger.AppendAsync(Record("free-new", model: "local-a", cost: 0m, currency: InvoiceBuilder.NoCurrency));
        var builder = new InvoiceBuilder(ledger);

        var invoice = await builder.BuildAsync("acme", Day0, Day0.AddDays(1), currency: null, planCurrency: "THB");
        var unplanned = await builder.BuildAsync("acme", Day0, Day0.AddDays(1));

        Assert.Equal(("THB", 0m), (invoice.Currency, invoice.Total));
        var line = Assert.Single(invoice.Lines);
        Assert.Equal(("local-a", 2L, 0m), (line.Model, line.Requests, line.Amount));
        Assert.Equal((InvoiceBuilder.NoCurrency, 0m, 2L), (unplanned.Currency, unplanned.Total, unplanned.Lines.Sum(l => l.Requests)));
    }

    /// <summary>
    /// Money in two currencies is still never summed: the default invoice is refused, and each currency's invoice
    /// holds only its own lines; the free lines go on the one in the plan's currency.
    /// </summary>
    [Fact]
    public async Task BuildAsync_TwoPricedCurrencies_StillRefused_FreeLinesOnlyOnThePlansCurrency()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(Record("e", cost: 1m, currency: "EUR"));
        await ledger.AppendAsync(Record("c", cost: 2m, currency: "CHF"));
        await ledger.AppendAsync(Record("free", model: "local-a", cost: 0m, currency: InvoiceBuilder.NoCurrency));
        var builder = new InvoiceBuilder(ledger);

        await Assert.ThrowsAsync<InvalidOperationException>(() => builder.BuildAsync("acme", Day0, Day0.AddDays(1), currency: null, planCurrency: "CHF"));
        var chf = await builder.BuildAsync("acme", Day0, Day0.AddDays(1), "CHF", planCurrency: "CHF");
        var eur = await builder.BuildAsync("acme", Day0, Day0.AddDays(1), "EUR", planCurrency: "CHF");

        Assert.Equal(("CHF", 2m, 2L), (chf.Currency, chf.Total, chf.Lines.Sum(l => l.Requests)));
        Assert.Equal(("EUR", 1m, 1L), (eur.Currency, eur.Total, eur.Lines.Sum(l => l.Requests)));
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
                "tenant,currency,period_from,period_to,model,requests,input_tokens,output_tokens,compute_seconds,amount,pool,device_class,waived_input_tokens,waived_output_tokens,amount_due,row,carried_in,carried_out\r\n" +
                "acme,EUR,2025-03-01T00:00:00Z,2025-04-01T00:00:00Z,llama-3-8b,1200,3400000,560000,1234.500000,12.345678,,,0,0,,line,,\r\n" +
                "acme,EUR,2025-03-01T00:00:00Z,2025-04-01T00:00:00Z,\"org/model, \"\"v2\"\"\",3,30,3,0.000001,0.000002,,,0,0,,line,,\r\n" +
                "acme,EUR,2025-03-01T00:00:00Z,2025-04-01T00:00:00Z,TOTAL,1203,3400030,560003,1234.500001,12.345680,,,0,0,12.35,total,0.000000,-0.004320\r\n",
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
        Assert.Equal(["tenant", "currency", "period_from", "period_to", "lines", "total", "amount_due", "carried_in", "carried_out"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal("12.345680", root.GetProperty("total").GetString());
        var line = root.GetProperty("lines")[1];
        Assert.Equal("org/model, \"v2\"", line.GetProperty("model").GetString());
        Assert.Equal(3, line.GetProperty("requests").GetInt64());
        Assert.Equal("0.000002", line.GetProperty("amount").GetString());
        Assert.Equal(
            invoice.Total,
            root.GetProperty("lines").EnumerateArray().Sum(l => decimal.Parse(l.GetProperty("amount").GetString()!, CultureInfo.InvariantCulture)));
    }

    /// <summary>
    /// Found closing a month as the operator's accountant: an invoice stated only its exact total in millionths
    /// (0.009062 THB), which no one can pay, so each reader rounded it in its own way, and lines rounded one by one
    /// add up to another amount than the total rounded (three lines of 0.004 EUR: 0.00 each, 0.01 together). The
    /// amount due is the exact total rounded once, half to even as every cost is, to the currency's minor unit.
    /// </summary>
    [Theory]
    [InlineData("THB", "0.009062", "0.01")]
    [InlineData("EUR", "0.012000", "0.01")]
    [InlineData("EUR", "12.345680", "12.35")]
    [InlineData("EUR", "0.125000", "0.12")]
    [InlineData("EUR", "0.135000", "0.14")]
    [InlineData("JPY", "12.500000", "12")]
    [InlineData("KWD", "1.234567", "1.235")]
    [InlineData("XXX", "0", "0.000000")]
    public void AmountDue_IsTheTotalRoundedOnceToTheCurrencysMinorUnit_InBothFormats(string currency, string total, string due)
    {
        var invoice = SampleInvoice() with { Currency = currency, Total = decimal.Parse(total, CultureInfo.InvariantCulture) };

        using var json = JsonDocument.Parse(InvoiceFormatter.ToJson(invoice));
        Assert.Equal(due, json.RootElement.GetProperty("amount_due").GetString());
        var csv = InvoiceFormatter.ToCsv(invoice).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.EndsWith(",amount_due,row,carried_in,carried_out", csv[0], StringComparison.Ordinal);
        Assert.Contains(",TOTAL,", csv[^1], StringComparison.Ordinal);
        Assert.Contains("," + due + ",total,", csv[^1], StringComparison.Ordinal);
        Assert.All(csv[1..^1], line => Assert.EndsWith(",,line,,", line, StringComparison.Ordinal)); // a line has no amount due of its own
    }

    /// <summary>
    /// A spreadsheet in a locale whose list separator is <c>;</c> (Excel in German, French, Spanish...) splits a CSV line
    /// at each <c>;</c>, quoted or not (a quote counts only at the start of a cell): a model id <c>x;=1+2</c> became a
    /// cell <c>=1+2</c>, a formula, past the leading <c>'</c> that guards a cell starting with one. A <c>;</c> followed
    /// by a formula's first character is now followed by <c>'</c> too (session 48, found by reading
    /// <c>InvoiceFormatter.Field</c>).
    /// </summary>
    [Fact]
    public void Csv_ASemicolonBeforeAFormula_IsGuardedToo_SoNoSpreadsheetSplitsAFormulaOutOfACell()
    {
        var invoice = SampleInvoice() with { Lines = [new InvoiceLine("x;=1+2", 1, 1, 1, 0m, 0m), new InvoiceLine("=a;@SUM(1);-3;b", 1, 1, 1, 0m, 0m)], Total = 0m };

        var lines = InvoiceFormatter.ToCsv(invoice).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);

        Assert.Contains(",x;'=1+2,", lines[1], StringComparison.Ordinal);
        Assert.Contains(",'=a;'@SUM(1);'-3;b,", lines[2], StringComparison.Ordinal);
        // Split as such a spreadsheet splits a line (at every ';'), no cell starts as a formula.
        Assert.All(lines.SelectMany(line => line.Split(';')), cell => Assert.False(cell.Length > 0 && cell[0] is '=' or '+' or '-' or '@', cell));
    }

    /// <summary>
    /// The total row was told apart only by its model cell, <c>TOTAL</c>: a model registered as <c>TOTAL</c> (a node
    /// declares whatever ids it serves) made a line that read as the total (explorer23). A last column <c>row</c> says
    /// <c>line</c> or <c>total</c>; the model cell keeps <c>TOTAL</c> for readers of the older layout.
    /// </summary>
    [Fact]
    public void Csv_ALineOfAModelNamedTotal_IsALine_AndTheRowColumnNamesTheOneTotal()
    {
        var invoice = SampleInvoice() with
        {
            Lines = [new InvoiceLine("TOTAL", 7, 70, 7, 0m, 0.5m), new InvoiceLine("llama-3-8b", 1200, 3_400_000, 560_000, 1234.5m, 12.345678m)],
            Total = 12.845678m,
        };

        var rows = InvoiceFormatter.ToCsv(invoice).Split("\r\n", StringSplitOptions.RemoveEmptyEntries).Select(r => r.Split(',')).ToList();

        var header = rows[0];
        var rowColumn = Array.IndexOf(header, "row");
        Assert.Equal(["amount_due", "row", "carried_in", "carried_out"], header[^4..]);
        Assert.All(rows, r => Assert.Equal(header.Length, r.Length));
        Assert.Equal(["line", "line", "total"], rows[1..].Select(r => r[rowColumn]));
        var total = rows[^1];
        Assert.Equal("TOTAL", total[Array.IndexOf(header, "model")]);
        Assert.Equal("12.845678", total[Array.IndexOf(header, "amount")]);
        Assert.Equal("12.85", total[Array.IndexOf(header, "amount_due")]);
        var line = rows.Single(r => r[rowColumn] == "line" && r[Array.IndexOf(header, "model")] == "TOTAL");
        Assert.Equal("0.500000", line[Array.IndexOf(header, "amount")]);
        Assert.Equal("", line[Array.IndexOf(header, "amount_due")]);
    }

    /// <summary>
    /// Pay-per-use below a cent: 0.003 USD a month was due 0.00 every month (each invoice rounded its own total), so
    /// the tenant's usage was never billed, and lines summing to 0.003 stood over an amount due of 0.00 with nothing
    /// said. Now each invoice carries in what earlier ones left below the minor unit and carries out what it leaves:
    /// 0.00, 0.01, 0.00 over three months (0.009 in all, rounded once: 0.01), each exactly total + carried_in -
    /// carried_out, and the next invoice carries in what the previous carried out.
    /// </summary>
    [Fact]
    public async Task BuildAsync_ConsecutiveMonthsBelowACent_CarryTheRemainder_SoNoMoneyIsWrittenOff()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        var months = new[] { new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2025, 2, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2025, 3, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2025, 4, 1, 0, 0, 0, TimeSpan.Zero) };
        for (var m = 0; m < 3; m++)
        {
            // Three requests of 0.001 USD each month.
            for (var r = 0; r < 3; r++)
            {
                Assert.True(await ledger.AppendAsync(Record($"m{m}-r{r}", months[m].AddDays(3).AddHours(r), cost: 0.001m, currency: "USD")));
            }
        }

        var builder = new InvoiceBuilder(ledger);
        var invoices = new List<Invoice>();
        for (var m = 0; m < 3; m++)
        {
            invoices.Add(await builder.BuildAsync("acme", months[m], months[m + 1]));
        }

        Assert.Equal([0.003m, 0.003m, 0.003m], invoices.Select(i => i.Total));
        Assert.Equal([0.00m, 0.01m, 0.00m], invoices.Select(i => i.AmountDue));
        Assert.Equal([0m, 0.003m, -0.004m], invoices.Select(i => i.CarriedIn));
        Assert.Equal([0.003m, -0.004m, -0.001m], invoices.Select(i => i.CarriedOut));
        Assert.All(invoices, i => Assert.Equal(i.AmountDue, i.Total + i.CarriedIn - i.CarriedOut));
        Assert.All(invoices.Zip(invoices.Skip(1)), pair => Assert.Equal(pair.First.CarriedOut, pair.Second.CarriedIn));
        // Over the three invoices: the exact total, rounded once.
        Assert.Equal(0.01m, invoices.Sum(i => i.AmountDue));

        // The quarter as one invoice says the same.
        var quarter = await builder.BuildAsync("acme", months[0], months[3]);
        Assert.Equal((0.009m, 0.01m, 0m, -0.001m), (quarter.Total, quarter.AmountDue, quarter.CarriedIn, quarter.CarriedOut));

        using var json = JsonDocument.Parse(InvoiceFormatter.ToJson(invoices[1]));
        Assert.Equal(("0.003000", "0.01", "0.003000", "-0.004000"),
            (json.RootElement.GetProperty("total").GetString(), json.RootElement.GetProperty("amount_due").GetString(),
             json.RootElement.GetProperty("carried_in").GetString(), json.RootElement.GetProperty("carried_out").GetString()));
        var csv = InvoiceFormatter.ToCsv(invoices[1]).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.EndsWith(",0.003000,,,0,0,0.01,total,0.003000,-0.004000", csv[^1], StringComparison.Ordinal);
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
