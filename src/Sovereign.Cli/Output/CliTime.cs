using System.Globalization;
using System.Text.Json;

namespace Sovereign.Cli.Output;

/// <summary>
/// The one time format of the CLI's tables and messages: UTC ISO 8601, with milliseconds where there are any
/// (<c>2030-01-01T00:00:00Z</c>, <c>2026-12-05T06:40:12.345Z</c>). Exact, so a time a table shows can be passed back
/// (<c>plans withdraw --effective-from</c>): tables mixed "2026-12-05 06:40:12Z" with the server's
/// "2030-01-01T00:00:00.0000000+00:00".
/// </summary>
internal static class CliTime
{
    public static string Format(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFF'Z'", CultureInfo.InvariantCulture);

    public static string FromUnixMilliseconds(long milliseconds) => Format(DateTimeOffset.FromUnixTimeMilliseconds(milliseconds));

    /// <summary>A field holding unix milliseconds or an ISO 8601 string, formatted; empty when absent or null.</summary>
    public static string Of(JsonElement e, string name) =>
        !e.TryGetProperty(name, out var v) ? ""
        : v.ValueKind == JsonValueKind.Number ? FromUnixMilliseconds(v.GetInt64())
        : v.ValueKind == JsonValueKind.String && DateTimeOffset.TryParse(v.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time) ? Format(time)
        : v.ValueKind == JsonValueKind.String ? v.GetString()!
        : "";
}
