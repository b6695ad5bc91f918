using System.Text.RegularExpressions;

namespace Sovereign.Cli.Output;

/// <summary>
/// The command-line parser's messages as a user reads them. It names the .NET type a value failed to convert to
/// ("Cannot parse argument 'abc' for option '--weight' as expected type 'System.Nullable`1[System.Int32]'"): the line
/// says which flag and what it takes instead.
/// </summary>
internal static partial class ParseErrors
{
    /// <param name="message">The parser's message.</param>
    /// <param name="name">The flag or argument it is about, when known.</param>
    /// <param name="arguments">The command's arguments as its usage line shows them (<c>&lt;tenant&gt; &lt;key-id&gt;</c>).</param>
    public static string Describe(string message, string? name = null, string? arguments = null)
    {
        // "Required argument 'key-id' missing for command: 'revoke'." did not say what comes first: 'keys revoke key_1'
        // had taken the key id for the tenant.
        if (MissingArgument().Match(message) is { Success: true } missing)
        {
            return $"missing <{missing.Groups["argument"].Value}>{(string.IsNullOrEmpty(arguments) ? "" : $"; it takes {arguments}")}.";
        }

        // "Argument 'xml' not recognized. Must be one of:\n\t'csv'\n\t'json'" spread over lines and named no flag.
        if (NotAmong().Match(message) is { Success: true } among)
        {
            var choices = among.Groups["choices"].Value.Split(['\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(c => c.Trim('\''));
            return $"{(name is null ? "" : name + ": ")}'{among.Groups["value"].Value}' is not one of {string.Join(", ", choices)}.";
        }

        var match = CannotParse().Match(message);
        if (!match.Success)
        {
            return message;
        }

        var type = match.Groups["type"].Value;
        var value = match.Groups["value"].Value;

        // A whole number too large for the flag's type was "not a whole number", which it is. (A negative one for a
        // flag that takes 0 or more keeps the line below, which says so.)
        var negativeForUnsigned = value.StartsWith('-') && type.Contains("UInt", StringComparison.Ordinal);
        if (!negativeForUnsigned && WholeNumber().IsMatch(value) && RangeOf(type) is { } range)
        {
            return $"{match.Groups["name"].Value}: '{value}' is out of range: a whole number from {range.Min} to {range.Max}.";
        }

        var takes = type switch
        {
            _ when type.Contains("UInt", StringComparison.Ordinal) => "a whole number, 0 or more",
            _ when type.Contains("Int", StringComparison.Ordinal) => "a whole number",
            _ when type.Contains("Decimal", StringComparison.Ordinal) || type.Contains("Double", StringComparison.Ordinal) || type.Contains("Single", StringComparison.Ordinal) => "a decimal number (e.g. 0.25)",
            _ when type.Contains("Boolean", StringComparison.Ordinal) => "true or false",
            _ when type.Contains("DateTimeOffset", StringComparison.Ordinal) => "an ISO 8601 time (e.g. 2026-12-31T00:00:00Z)",
            _ when type.Contains("TimeSpan", StringComparison.Ordinal) => "a duration (e.g. 01:00:00)",
            _ => "a valid value",
        };
        return $"{match.Groups["name"].Value}: '{value}' is not {takes}.";
    }

    /// <summary>
    /// An option's value in a validator, or null when it did not convert: asking for it then threw
    /// <see cref="InvalidOperationException"/> out of the parser ('audit verify --max-uncovered-age abc' aborted with an
    /// unhandled exception, exit 134). The parser reports the conversion itself.
    /// </summary>
    public static T? ValueOrNull<T>(System.CommandLine.Parsing.OptionResult result)
        where T : struct
    {
        try
        {
            return result.GetValueOrDefault<T?>();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>The flag (--format) or argument (&lt;state&gt;) a parse error is about, when the parser says.</summary>
    public static string? NameOf(System.CommandLine.Parsing.SymbolResult? result) => result switch
    {
        System.CommandLine.Parsing.OptionResult option => option.Option.Name,
        System.CommandLine.Parsing.ArgumentResult { Parent: System.CommandLine.Parsing.OptionResult option } => option.Option.Name,
        System.CommandLine.Parsing.ArgumentResult argument => $"<{argument.Argument.Name}>",
        _ => null,
    };

    /// <summary>A command's arguments as its usage line shows them: <c>&lt;tenant&gt; &lt;key-id&gt;</c>.</summary>
    public static string Arguments(System.CommandLine.Command command) =>
        string.Join(' ', command.Arguments.Where(a => !a.Hidden).Select(a => $"<{a.Name}>"));

    private static (string Min, string Max)? RangeOf(string type)
    {
        static (string, string) Of<T>(T min, T max)
            where T : System.Numerics.IMinMaxValue<T>, IFormattable =>
            (min.ToString(null, System.Globalization.CultureInfo.InvariantCulture), max.ToString(null, System.Globalization.CultureInfo.InvariantCulture));

        return type switch
        {
            _ when type.Contains("UInt64", StringComparison.Ordinal) => Of(ulong.MinValue, ulong.MaxValue),
            _ when type.Contains("UInt32", StringComparison.Ordinal) => Of(uint.MinValue, uint.MaxValue),
            _ when type.Contains("Int64", StringComparison.Ordinal) => Of(long.MinValue, long.MaxValue),
            _ when type.Contains("Int32", StringComparison.Ordinal) => Of(int.MinValue, int.MaxValue),
            _ => null,
        };
    }

    [GeneratedRegex(@"^[+-]?[0-9]+$")]
    private static partial Regex WholeNumber();

    [GeneratedRegex(@"^Required argument '(?<argument>[^']*)' missing for command: '[^']*'\.?$", RegexOptions.Singleline)]
    private static partial Regex MissingArgument();

    [GeneratedRegex(@"^Argument '(?<value>.*)' not recognized\. Must be one of:(?<choices>.*)$", RegexOptions.Singleline)]
    private static partial Regex NotAmong();

    [GeneratedRegex(@"^Cannot parse argument '(?<value>.*)' for (?:option|command|argument) '(?<name>[^']*)' as expected type '(?<type>[^']*)'\.?$", RegexOptions.Singleline)]
    private static partial Regex CannotParse();
}
