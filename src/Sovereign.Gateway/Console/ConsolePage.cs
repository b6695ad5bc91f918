using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Sovereign.Gateway.Console;

/// <summary>
/// Builds one server-rendered console page: a semantic layout (skip link, landmarks, labelled controls) that works
/// without JavaScript, with every dynamic value HTML-encoded on the way in.
/// </summary>
internal sealed class ConsolePage(string title, ConsoleSession? session)
{
    private readonly StringBuilder _body = new();

    public static string E(string? text) => HtmlEncoder.Default.Encode(text ?? "");

    public static string Text(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v.ToString() : "";

    public static string List(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array
            ? string.Join(", ", v.EnumerateArray().Select(x => x.ToString()))
            : "";

    public static string Time(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number
            ? DateTimeOffset.FromUnixTimeMilliseconds(v.GetInt64()).ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture)
            : "";

    public static string Number(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number
            ? v.GetDecimal().ToString("#,0.######", CultureInfo.InvariantCulture)
            : "";

    /// <summary>
    /// A row's <c>cost</c> with its <c>currency</c>; unpriced usage (XXX, ISO 4217's "no currency") shows the amount
    /// alone, not "0 XXX".
    /// </summary>
    public static string Cost(JsonElement e) =>
        Text(e, "currency") is { Length: > 0 } currency and not Sovereign.Metering.Ledger.InvoiceBuilder.NoCurrency ? $"{Number(e, "cost")} {currency}" : Number(e, "cost");

    /// <summary>Appends trusted markup (callers encode every value with <see cref="E"/>).</summary>
    public ConsolePage Raw(string html)
    {
        _body.Append(html);
        return this;
    }

    public ConsolePage Heading(string text, int level = 2) => Raw($"<h{level}>{E(text)}</h{level}>");

    public ConsolePage Paragraph(string text, string? cssClass = null) => Raw(cssClass is null ? $"<p>{E(text)}</p>" : $"<p class=\"{cssClass}\">{E(text)}</p>");

    public ConsolePage Notice(string text, bool error = false) =>
        Raw(error ? $"<p class=\"notice error\" role=\"alert\">{E(text)}</p>" : $"<p class=\"notice\" role=\"status\">{E(text)}</p>");

    /// <summary>A table in a horizontally scrollable, focusable region, so it stays readable on a phone.</summary>
    public ConsolePage Table(string caption, IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows, string? id = null, bool rawCells = false)
    {
        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture, $"<div class=\"scroll\" role=\"region\" tabindex=\"0\" aria-label=\"{E(caption)}\"><table{(id is null ? "" : $" id=\"{E(id)}\"")}><caption>{E(caption)}</caption><thead><tr>");
        foreach (var header in headers)
        {
            html.Append(CultureInfo.InvariantCulture, $"<th scope=\"col\">{E(header)}</th>");
        }

        html.Append("</tr></thead><tbody>");
        var count = 0;
        foreach (var row in rows)
        {
            count++;
            html.Append("<tr>");
            foreach (var cell in row)
            {
                html.Append("<td>").Append(rawCells ? cell : E(cell)).Append("</td>");
            }

            html.Append("</tr>");
        }

        if (count == 0)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td colspan=\"{headers.Count}\">None.</td></tr>");
        }

        html.Append("</tbody></table></div>");
        return Raw(html.ToString());
    }

    public string Render()
    {
        var nav = session?.Role switch
        {
            ConsoleRole.Operator => """
                <a href="/console">Pool</a><a href="/console/tenants">Tenants</a><a href="/console/usage">Usage</a><a href="/console/plans">Plans</a><a href="/console/models">Models</a><a href="/console/audit">Audit</a><a href="/console/verify">Verify an export</a>
                """,
            ConsoleRole.Tenant => """<a href="/console">My usage</a><a href="/console/verify">Verify an export</a>""",
            _ => """<a href="/console">Sign in</a><a href="/console/verify">Verify an export</a>""",
        };
        var who = session is null ? ""
            : $"""<form method="post" action="/console/logout" class="who"><span>{E(session.Role == ConsoleRole.Operator ? "Operator" : "Tenant " + session.Tenant)}</span><button type="submit">Sign out</button></form>""";
        return $"""
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{E(title)} · Sovereign console</title>
            <link rel="stylesheet" href="/console/assets/console.css">
            </head>
            <body>
            <a class="skip" href="#main">Skip to content</a>
            <header><p class="brand">Sovereign</p><nav aria-label="Console">{nav}</nav>{who}</header>
            <main id="main" tabindex="-1">
            <h1>{E(title)}</h1>
            {_body}
            </main>
            </body>
            </html>
            """;
    }
}
