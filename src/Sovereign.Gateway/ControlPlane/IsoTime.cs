using System.Globalization;
using System.Text.RegularExpressions;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The one reading of a time an operator or a tenant writes (an API query's <c>from</c>, <c>to</c>,
/// <c>effective_from</c>, a key's <c>expires_at</c>; the CLI's <c>--from</c>, <c>--to</c>, <c>--before</c>,
/// <c>--effective-from</c>, <c>--compromised-from</c>): ISO 8601 (RFC 3339), a date <c>YYYY-MM-DD</c> or a date and a
/// time, UTC unless it states an offset, whatever the machine's time zone.
/// </summary>
/// <remarks>
/// The parser these took (<see cref="DateTimeOffset.TryParse(string?, IFormatProvider?, DateTimeStyles, out DateTimeOffset)"/>
/// with the invariant culture) also read the US order: <c>07/12/2026</c>, the 7th of December to an operator in Berlin
/// or Bangkok, was the 12th of July (a usage period, an archive cutoff, a price's start that can never be changed once
/// in force, the time from which a signing key is compromised), and <c>12:00</c> alone was noon on the machine's local
/// date. Those are refused now, with the format to give.
/// </remarks>
internal static partial class IsoTime
{
    /// <summary>What to write, for messages: <c>YYYY-MM-DD</c> or <c>YYYY-MM-DDTHH:MM:SSZ</c> (an offset instead of Z).</summary>
    public const string Expected = "ISO 8601: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS with Z or an offset such as +07:00 (UTC when it names none)";

    /// <summary>Reads <paramref name="text"/> as ISO 8601, UTC unless it states an offset; false for anything else.</summary>
    public static bool TryParse(string? text, out DateTimeOffset time)
    {
        time = default;
        return text is not null
            && Shape().IsMatch(text)
            && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out time);
    }

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:[Zz]|[+-]\d{2}:\d{2})?)?$", RegexOptions.CultureInvariant)]
    private static partial Regex Shape();
}
