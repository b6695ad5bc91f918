using System.Globalization;
using System.Text;

namespace Sovereign.Gateway.Console;

/// <summary>
/// Charts drawn on the server as SVG: no script, no external library, readable by screen readers (role="img",
/// a title and a description listing every value) and scaled to any width.
/// </summary>
internal static class SvgChart
{
    private const int BarHeight = 22;
    private const int Gap = 6;
    private const int LabelWidth = 180;
    private const int Width = 640;

    /// <summary>Horizontal bars, one per label, longest first.</summary>
    public static string Bars(string title, IReadOnlyList<(string Label, decimal Value)> data, string unit)
    {
        var rows = data.OrderByDescending(d => d.Value).Take(20).ToList();
        var max = rows.Count == 0 ? 1m : Math.Max(rows.Max(r => r.Value), 0.000001m);
        var height = Math.Max(1, rows.Count) * (BarHeight + Gap) + Gap;
        var description = rows.Count == 0 ? "No data." : string.Join("; ", rows.Select(r => $"{r.Label}: {Format(r.Value)} {unit}"));
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture,
            $"""<figure class="chart"><svg role="img" aria-labelledby="{Id(title)}-t {Id(title)}-d" viewBox="0 0 {Width} {height}" preserveAspectRatio="xMinYMin meet"><title id="{Id(title)}-t">{ConsolePage.E(title)}</title><desc id="{Id(title)}-d">{ConsolePage.E(description)}</desc>""");
        var y = Gap;
        foreach (var (label, value) in rows)
        {
            var length = (double)(value / max) * (Width - LabelWidth - 110);
            svg.Append(CultureInfo.InvariantCulture,
                $"""<text x="{LabelWidth - 8}" y="{y + 15}" text-anchor="end" class="label">{ConsolePage.E(Shorten(label))}</text><rect x="{LabelWidth}" y="{y}" width="{Math.Max(1, length):F1}" height="{BarHeight}" class="bar"/><text x="{LabelWidth + Math.Max(1, length) + 6:F1}" y="{y + 15}" class="value">{ConsolePage.E(Format(value))} {ConsolePage.E(unit)}</text>""");
            y += BarHeight + Gap;
        }

        if (rows.Count == 0)
        {
            svg.Append(CultureInfo.InvariantCulture, $"""<text x="8" y="{Gap + 15}" class="label">No data yet.</text>""");
        }

        svg.Append(CultureInfo.InvariantCulture, $"</svg><figcaption>{ConsolePage.E(title)}</figcaption></figure>");
        return svg.ToString();
    }

    private static string Format(decimal value) => value.ToString("#,0.####", CultureInfo.InvariantCulture);

    private static string Shorten(string label) => label.Length <= 20 ? label : label[..19] + "…";

    private static string Id(string title) => "c" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(title)))[..8];
}
