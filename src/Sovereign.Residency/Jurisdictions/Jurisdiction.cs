using System.Diagnostics.CodeAnalysis;

namespace Sovereign.Residency.Jurisdictions;

/// <summary>
/// A two-letter country code in canonical upper case. Parsing checks the shape only; whether the code is assigned is the
/// catalog's question (<see cref="JurisdictionCatalog.IsCountry"/>).
/// </summary>
public readonly record struct Jurisdiction
{
    private readonly string? _code;

    private Jurisdiction(string code) => _code = code;

    /// <summary>The upper-case code; empty for <c>default</c>.</summary>
    public string Code => _code ?? string.Empty;

    /// <summary>Parses two ASCII letters in any case, ignoring surrounding white space.</summary>
    public static bool TryParse([NotNullWhen(true)] string? value, out Jurisdiction jurisdiction)
    {
        jurisdiction = default;
        if (value is null)
        {
            return false;
        }

        var span = value.AsSpan().Trim();
        if (span.Length != 2 || !char.IsAsciiLetter(span[0]) || !char.IsAsciiLetter(span[1]))
        {
            return false;
        }

        jurisdiction = new Jurisdiction(string.Create(2, (span[0], span[1]), static (dest, pair) =>
        {
            dest[0] = char.ToUpperInvariant(pair.Item1);
            dest[1] = char.ToUpperInvariant(pair.Item2);
        }));
        return true;
    }

    /// <summary>Parses or throws <see cref="FormatException"/> naming the value.</summary>
    public static Jurisdiction Parse(string value) =>
        TryParse(value, out var jurisdiction)
            ? jurisdiction
            : throw new FormatException($"'{value}' is not a two-letter country code.");

    /// <inheritdoc />
    public override string ToString() => Code;
}
