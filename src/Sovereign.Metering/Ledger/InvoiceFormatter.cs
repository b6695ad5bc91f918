using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Sovereign.Metering.Ledger;

/// <summary>
/// Invoice exports with a fixed layout and the invariant culture. Money is written with exactly 6 decimals (the ledger's
/// exact unit), as a JSON string so no client parses it into a binary float.
/// </summary>
public static class InvoiceFormatter
{
    /// <summary>The CSV columns, in order.</summary>
    public const string CsvHeader = "tenant,currency,period_from,period_to,model,requests,input_tokens,output_tokens,compute_seconds,amount,pool,device_class," +
        "waived_input_tokens,waived_output_tokens,amount_due,row,carried_in,carried_out";

    /// <summary>
    /// RFC 4180 CSV: the header, one row per line, then a row with model <c>TOTAL</c> whose counts and amount are the
    /// sums. Line ends are CRLF. Pool and device class come after the older layout's columns, then the tokens the
    /// language tax's waiver did not bill (billed = input or output less these), then <c>amount_due</c>, filled in the
    /// <c>TOTAL</c> row only (the total rounded once to the currency's minor unit; a line has none of its own), then
    /// <c>row</c>: <c>line</c> or <c>total</c>, which tells the total apart from the line of a model named <c>TOTAL</c>
    /// (a node declares whatever ids it serves), then <c>carried_in</c> and <c>carried_out</c> (the total row only: what
    /// earlier invoices left below the minor unit, and what this one leaves for the next; <c>amount_due</c> = total +
    /// carried_in - carried_out, exactly). Readers of an older layout still find their columns; usage without a
    /// pool (recorded before pools) has them empty.
    /// </summary>
    public static string ToCsv(Invoice invoice)
    {
        ArgumentNullException.ThrowIfNull(invoice);
        var csv = new StringBuilder().Append(CsvHeader).Append("\r\n");
        foreach (var line in invoice.Lines)
        {
            AppendRow(csv, invoice, line.Model, line.Pool, line.DeviceClass, line.Requests, line.InputTokens, line.OutputTokens, line.ComputeSeconds, line.Amount,
                line.WaivedInputTokens, line.WaivedOutputTokens);
        }

        AppendRow(csv, invoice, "TOTAL", null, null, invoice.Lines.Sum(l => l.Requests), invoice.Lines.Sum(l => l.InputTokens),
            invoice.Lines.Sum(l => l.OutputTokens), invoice.Lines.Sum(l => l.ComputeSeconds), invoice.Total,
            invoice.Lines.Sum(l => l.WaivedInputTokens), invoice.Lines.Sum(l => l.WaivedOutputTokens), Due(invoice), "total", Fixed(invoice.CarriedIn), Fixed(invoice.CarriedOut));
        return csv.ToString();
    }

    /// <summary>
    /// JSON: <c>{tenant, currency, period_from, period_to, lines: [{model, pool, device_class, requests, input_tokens,
    /// output_tokens, waived_input_tokens, waived_output_tokens, billed_input_tokens, billed_output_tokens,
    /// compute_seconds, amount}], total, amount_due, carried_in, carried_out}</c>: <c>amount_due</c> with the currency's
    /// minor unit's decimals, exactly <c>total + carried_in - carried_out</c>.
    /// </summary>
    public static string ToJson(Invoice invoice)
    {
        ArgumentNullException.ThrowIfNull(invoice);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("tenant", invoice.Tenant);
            json.WriteString("currency", invoice.Currency);
            json.WriteString("period_from", Time(invoice.PeriodFrom));
            json.WriteString("period_to", Time(invoice.PeriodTo));
            json.WriteStartArray("lines");
            foreach (var line in invoice.Lines)
            {
                json.WriteStartObject();
                json.WriteString("model", line.Model);
                json.WriteString("pool", line.Pool);
                json.WriteString("device_class", line.DeviceClass);
                json.WriteNumber("requests", line.Requests);
                json.WriteNumber("input_tokens", line.InputTokens);
                json.WriteNumber("output_tokens", line.OutputTokens);
                json.WriteNumber("waived_input_tokens", line.WaivedInputTokens);
                json.WriteNumber("waived_output_tokens", line.WaivedOutputTokens);
                json.WriteNumber("billed_input_tokens", line.BilledInputTokens);
                json.WriteNumber("billed_output_tokens", line.BilledOutputTokens);
                json.WriteString("compute_seconds", Fixed(line.ComputeSeconds));
                json.WriteString("amount", Fixed(line.Amount));
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteString("total", Fixed(invoice.Total));
            json.WriteString("amount_due", Due(invoice));
            json.WriteString("carried_in", Fixed(invoice.CarriedIn));
            json.WriteString("carried_out", Fixed(invoice.CarriedOut));
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void AppendRow(StringBuilder csv, Invoice invoice, string model, string? pool, string? deviceClass, long requests, long input, long output, decimal compute, decimal amount,
        long waivedInput, long waivedOutput, string due = "", string row = "line", string carriedIn = "", string carriedOut = "")
    {
        csv.Append(Field(invoice.Tenant)).Append(',')
            .Append(Field(invoice.Currency)).Append(',')
            .Append(Time(invoice.PeriodFrom)).Append(',')
            .Append(Time(invoice.PeriodTo)).Append(',')
            .Append(Field(model)).Append(',')
            .Append(requests.ToString(CultureInfo.InvariantCulture)).Append(',')
            .Append(input.ToString(CultureInfo.InvariantCulture)).Append(',')
            .Append(output.ToString(CultureInfo.InvariantCulture)).Append(',')
            .Append(Fixed(compute)).Append(',')
            .Append(Fixed(amount)).Append(',')
            .Append(Field(pool ?? string.Empty)).Append(',')
            .Append(Field(deviceClass ?? string.Empty)).Append(',')
            .Append(waivedInput.ToString(CultureInfo.InvariantCulture)).Append(',')
            .Append(waivedOutput.ToString(CultureInfo.InvariantCulture)).Append(',')
            .Append(due).Append(',')
            .Append(row).Append(',')
            .Append(carriedIn).Append(',')
            .Append(carriedOut).Append("\r\n");
    }

    private static string Fixed(decimal value) => value.ToString("0.000000", CultureInfo.InvariantCulture);

    /// <summary>The amount due with exactly the decimals of the currency's minor unit (6 where it has none).</summary>
    private static string Due(Invoice invoice) =>
        invoice.MinorUnits is { } units ? invoice.AmountDue.ToString("F" + units.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture) : Fixed(invoice.AmountDue);

    private static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>
    /// One text cell. A cell that starts as a formula does in a spreadsheet (<c>=</c>, <c>+</c>, <c>-</c>, <c>@</c>, a
    /// tab or CR) is kept as text with a leading <c>'</c>, as OWASP advises: a model id registered as <c>-2+3</c>, or
    /// <c>=HYPERLINK(...)</c> by whoever declares a node's models, was evaluated when finance opened the invoice. So is
    /// what follows a <c>;</c>: a spreadsheet whose locale separates lists with <c>;</c> (Excel in German, French,
    /// Spanish) splits the line there, quoted or not, and <c>x;=1+2</c> became the formula <c>=1+2</c>.
    /// </summary>
    private static string Field(string value)
    {
        if (value.Length > 0 && StartsFormula(value[0]))
        {
            value = "'" + value;
        }

        for (var at = value.IndexOf(';', StringComparison.Ordinal); at >= 0 && at + 1 < value.Length; at = value.IndexOf(';', at + 1))
        {
            if (StartsFormula(value[at + 1]))
            {
                value = value.Insert(at + 1, "'");
            }
        }

        return value.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
    }

    private static bool StartsFormula(char c) => c is '=' or '+' or '-' or '@' or '\t' or '\r';
}
