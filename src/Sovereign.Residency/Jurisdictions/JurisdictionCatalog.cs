using System.Collections.Frozen;
using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace Sovereign.Residency.Jurisdictions;

/// <summary>
/// Every ISO 3166-1 alpha-2 country, the built-in groups (<c>EU</c>, <c>EEA</c>, <c>ASEAN</c>) and the operator's own
/// groups. Immutable once built: a catalog that exists has valid, acyclic, non-empty groups. Input is case-insensitive;
/// output is always upper case, and resolved sets enumerate in ordinal order so messages are deterministic.
/// </summary>
public sealed class JurisdictionCatalog
{
    /// <summary>The European Union.</summary>
    public const string EuGroup = "EU";

    /// <summary>The European Economic Area: the EU plus Iceland, Liechtenstein and Norway.</summary>
    public const string EeaGroup = "EEA";

    /// <summary>The Association of Southeast Asian Nations.</summary>
    public const string AseanGroup = "ASEAN";

    private const int MaxGroupNameLength = 64;

    // The 27 member states as of 2025. Outermost regions with their own ISO codes (GF, GP, MQ, RE, YT, MF) and the
    // Åland Islands (AX) are EU territory but are not listed: an operator who hosts there adds them in a custom group.
    private static readonly string[] EuMembers =
    [
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    ];

    private static readonly string[] EeaMembers = [EuGroup, "IS", "LI", "NO"];

    // The ten long-standing members. Timor-Leste (TL) was admitted in October 2025; it is left out so that the built-in
    // group never widens an existing policy silently. Operators who want it define their own group.
    private static readonly string[] AseanMembers = ["BN", "ID", "KH", "LA", "MM", "MY", "PH", "SG", "TH", "VN"];

    // Codes people write that ISO 3166-1 does not assign to the country they mean.
    private static readonly FrozenDictionary<string, string> Hints = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["UK"] = "the United Kingdom is GB",
        ["EL"] = "Greece is GR",
        ["EZ"] = "the Czech Republic is CZ",
        ["KS"] = "South Korea is KR",
        ["XK"] = "Kosovo has no ISO 3166-1 code",
    }.ToFrozenDictionary(StringComparer.Ordinal);

    private static readonly FrozenDictionary<string, string> CountryNames =
        IsoCountries.All.ToFrozenDictionary(c => c.Code, c => c.Name, StringComparer.Ordinal);

    private static readonly ImmutableArray<string> SortedCountryCodes =
        [.. IsoCountries.All.Select(c => c.Code).Order(StringComparer.Ordinal)];

    private static readonly (string Name, string[] Members)[] BuiltInGroups =
    [
        (AseanGroup, AseanMembers),
        (EeaGroup, EeaMembers),
        (EuGroup, EuMembers),
    ];

    private readonly FrozenDictionary<string, ImmutableSortedSet<string>> _resolved;
    private readonly FrozenDictionary<string, ImmutableArray<string>> _groupMembers;

    private JurisdictionCatalog(IReadOnlyList<(string Name, string[] Members)> customGroups)
    {
        var definitions = new Dictionary<string, ImmutableArray<string>>(StringComparer.Ordinal);
        foreach (var (name, members) in BuiltInGroups.Concat(customGroups))
        {
            definitions[name] = [.. members];
        }

        var resolved = new Dictionary<string, ImmutableSortedSet<string>>(StringComparer.Ordinal);
        foreach (var code in SortedCountryCodes)
        {
            resolved[code] = ImmutableSortedSet.Create<string>(StringComparer.Ordinal, code);
        }

        foreach (var name in definitions.Keys)
        {
            ResolveGroup(name, definitions, resolved);
        }

        _resolved = resolved.ToFrozenDictionary(StringComparer.Ordinal);
        _groupMembers = definitions.ToFrozenDictionary(StringComparer.Ordinal);
        GroupNames = [.. definitions.Keys.Order(StringComparer.Ordinal)];
    }

    /// <summary>The catalog with the built-in groups only.</summary>
    public static JurisdictionCatalog Default { get; } = new([]);

    /// <summary>The names of the built-in groups.</summary>
    public static IReadOnlyList<string> BuiltInGroupNames { get; } = [AseanGroup, EeaGroup, EuGroup];

    /// <summary>All 249 assigned codes, upper case, in ordinal order.</summary>
    public IReadOnlyList<string> CountryCodes => SortedCountryCodes;

    /// <summary>Built-in and operator-defined group names, upper case, in ordinal order.</summary>
    public IReadOnlyList<string> GroupNames { get; }

    /// <summary>Builds a catalog with the operator's groups, or throws <see cref="JurisdictionCatalogException"/> listing every error.</summary>
    public static JurisdictionCatalog Create(IEnumerable<JurisdictionGroup> customGroups) =>
        TryCreate(customGroups, out var catalog, out var errors) ? catalog : throw new JurisdictionCatalogException(errors);

    /// <summary>Builds a catalog with the operator's groups; on failure <paramref name="errors"/> names each bad group.</summary>
    public static bool TryCreate(
        IEnumerable<JurisdictionGroup> customGroups,
        [NotNullWhen(true)] out JurisdictionCatalog? catalog,
        out IReadOnlyList<JurisdictionGroupError> errors)
    {
        ArgumentNullException.ThrowIfNull(customGroups);
        var groups = customGroups.ToList();
        errors = ValidateGroups(groups);
        if (errors.Count > 0)
        {
            catalog = null;
            return false;
        }

        catalog = new JurisdictionCatalog(
            [.. groups.Select(g => (Normalize(g.Name)!, g.Members.Select(m => Normalize(m)!).Distinct(StringComparer.Ordinal).ToArray()))]);
        return true;
    }

    /// <summary>
    /// Checks operator-defined groups: a usable, unique name that is not a country code or built-in group, at least one
    /// member, only known members, and no cycles. Every error names the group.
    /// </summary>
    public static IReadOnlyList<JurisdictionGroupError> ValidateGroups(IEnumerable<JurisdictionGroup> customGroups)
    {
        ArgumentNullException.ThrowIfNull(customGroups);
        var groups = customGroups.Where(g => g is not null).ToList();
        var errors = new List<JurisdictionGroupError>();

        // Names first, so members may refer to groups defined later in the list.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var usable = new Dictionary<string, JurisdictionGroup>(StringComparer.Ordinal);
        foreach (var group in groups)
        {
            var label = group.Name ?? string.Empty;
            var name = Normalize(group.Name);
            var nameError = name is null ? "a group needs a name" : CheckGroupName(name);
            if (nameError is not null)
            {
                errors.Add(new JurisdictionGroupError(label, nameError));
            }
            else if (!seen.Add(name!))
            {
                errors.Add(new JurisdictionGroupError(label, "the group is defined more than once (names are case-insensitive)"));
            }
            else
            {
                usable[name!] = group;
            }
        }

        foreach (var group in groups)
        {
            var label = group.Name ?? string.Empty;
            if (group.Members is null || group.Members.Count == 0)
            {
                errors.Add(new JurisdictionGroupError(label, "the group has no members"));
                continue;
            }

            foreach (var member in group.Members)
            {
                var key = Normalize(member);
                if (key is null)
                {
                    errors.Add(new JurisdictionGroupError(label, "a member is empty"));
                }
                else if (!CountryNames.ContainsKey(key) && !IsBuiltInGroup(key) && !seen.Contains(key))
                {
                    errors.Add(new JurisdictionGroupError(label, "member " + DescribeUnknown(member)));
                }
            }
        }

        errors.AddRange(FindCycles(usable));
        return errors;
    }

    /// <summary>True for an assigned ISO 3166-1 alpha-2 code, in any case.</summary>
    public bool IsCountry([NotNullWhen(true)] string? code) => Normalize(code) is { } key && CountryNames.ContainsKey(key);

    /// <summary>True for a built-in or operator-defined group name, in any case.</summary>
    public bool IsGroup([NotNullWhen(true)] string? name) => Normalize(name) is { } key && _groupMembers.ContainsKey(key);

    /// <summary>True for a country code or a group name.</summary>
    public bool IsKnown([NotNullWhen(true)] string? codeOrGroup) => Normalize(codeOrGroup) is { } key && _resolved.ContainsKey(key);

    /// <summary>The English short name of a country code.</summary>
    public bool TryGetCountryName([NotNullWhen(true)] string? code, [NotNullWhen(true)] out string? name)
    {
        name = null;
        return Normalize(code) is { } key && CountryNames.TryGetValue(key, out name);
    }

    /// <summary>A group's declared members (codes or group names, upper case); empty for a country or unknown name.</summary>
    public IReadOnlyList<string> GetGroupMembers(string? name) =>
        Normalize(name) is { } key && _groupMembers.TryGetValue(key, out var members) ? members : [];

    /// <summary>The countries a code or group stands for, or throws <see cref="ArgumentException"/> naming the value.</summary>
    public IReadOnlySet<string> Resolve(string codeOrGroup) =>
        TryResolve(codeOrGroup, out var countries)
            ? countries
            : throw new ArgumentException(DescribeUnknown(codeOrGroup), nameof(codeOrGroup));

    /// <summary>The countries a code or group stands for (upper case, ordinal order).</summary>
    public bool TryResolve([NotNullWhen(true)] string? codeOrGroup, [NotNullWhen(true)] out IReadOnlySet<string>? countries)
    {
        countries = null;
        if (Normalize(codeOrGroup) is { } key && _resolved.TryGetValue(key, out var set))
        {
            countries = set;
            return true;
        }

        return false;
    }

    /// <summary>
    /// The union of what the known entries stand for; unknown or blank entries are returned in
    /// <paramref name="unknown"/> as written and contribute nothing, so an unknown entry can only narrow.
    /// </summary>
    public IReadOnlySet<string> ResolveMany(IEnumerable<string?>? codesOrGroups, out IReadOnlyList<string> unknown)
    {
        // The usual policy names one code or group, resolved twice per routed request: its own set (immutable, ordinal
        // order, as the union would be), without a builder, a list and a new set each time.
        if (codesOrGroups is IReadOnlyList<string?> { Count: 1 } single && TryResolve(single[0], out var only))
        {
            unknown = [];
            return only;
        }

        var builder = ImmutableSortedSet.CreateBuilder<string>(StringComparer.Ordinal);
        var missing = new List<string>();
        foreach (var entry in codesOrGroups ?? [])
        {
            if (TryResolve(entry, out var set))
            {
                builder.UnionWith(set);
            }
            else
            {
                missing.Add(entry ?? string.Empty);
            }
        }

        unknown = missing;
        return builder.ToImmutable();
    }

    /// <summary>Trimmed upper-case form, or null when blank.</summary>
    internal static string? Normalize(string? value)
    {
        // Most values are codes already in form ("TH", "EU"): the routing decision normalizes every replica's.
        if (value is { Length: > 0 and <= 8 } && IsUpperAsciiLetters(value))
        {
            return value;
        }

        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        return value.Trim().ToUpperInvariant();
    }

    private static bool IsUpperAsciiLetters(string value)
    {
        foreach (var c in value)
        {
            if (c is < 'A' or > 'Z')
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>"'X' is not ..." with a hint for the usual mistakes (UK for GB, EL for GR).</summary>
    internal static string DescribeUnknown(string? entry)
    {
        var key = Normalize(entry);
        if (key is null)
        {
            return "'' is empty; expected an ISO 3166-1 alpha-2 code or a group name";
        }

        var text = $"'{entry}' is not an ISO 3166-1 alpha-2 code or a known group";
        return Hints.TryGetValue(key, out var hint) ? $"{text} ({hint})" : text;
    }

    private static bool IsBuiltInGroup(string key) => key is EuGroup or EeaGroup or AseanGroup;

    private static string? CheckGroupName(string name)
    {
        if (CountryNames.TryGetValue(name, out var country))
        {
            return $"the name clashes with the country code {name} ({country})";
        }

        if (IsBuiltInGroup(name))
        {
            return $"the name clashes with the built-in group {name}";
        }

        if (name.Length == 2 && char.IsAsciiLetter(name[0]) && char.IsAsciiLetter(name[1]))
        {
            // Unassigned and reserved pairs (UK, EL, XK...) may be assigned later: keep them unambiguous.
            return "two-letter names are reserved for ISO 3166-1 codes";
        }

        var wellFormed = name.Length <= MaxGroupNameLength
            && char.IsAsciiLetter(name[0])
            && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');
        return wellFormed ? null : $"a group name is a letter followed by up to {MaxGroupNameLength - 1} letters, digits, '-' or '_'";
    }

    private static IEnumerable<JurisdictionGroupError> FindCycles(Dictionary<string, JurisdictionGroup> groups)
    {
        var errors = new List<JurisdictionGroupError>();
        var reported = new HashSet<string>(StringComparer.Ordinal);
        var done = new HashSet<string>(StringComparer.Ordinal);
        var path = new List<string>();

        void Visit(string name)
        {
            if (done.Contains(name))
            {
                return;
            }

            var index = path.IndexOf(name);
            if (index >= 0)
            {
                var cycle = path.Skip(index).Append(name).ToList();
                var key = string.Join(",", cycle.Skip(1).Order(StringComparer.Ordinal));
                if (reported.Add(key))
                {
                    errors.Add(new JurisdictionGroupError(groups[name].Name, "the group is part of a cycle: " + string.Join(" -> ", cycle)));
                }

                return;
            }

            path.Add(name);
            foreach (var member in groups[name].Members ?? [])
            {
                if (Normalize(member) is { } key && groups.ContainsKey(key))
                {
                    Visit(key);
                }
            }

            path.RemoveAt(path.Count - 1);
            done.Add(name);
        }

        foreach (var name in groups.Keys.Order(StringComparer.Ordinal))
        {
            Visit(name);
        }

        return errors;
    }

    private static ImmutableSortedSet<string> ResolveGroup(
        string name,
        Dictionary<string, ImmutableArray<string>> definitions,
        Dictionary<string, ImmutableSortedSet<string>> resolved)
    {
        if (resolved.TryGetValue(name, out var done))
        {
            return done;
        }

        // Definitions are validated acyclic before we get here, so plain recursion terminates.
        var builder = ImmutableSortedSet.CreateBuilder<string>(StringComparer.Ordinal);
        foreach (var member in definitions[name])
        {
            builder.UnionWith(ResolveGroup(member, definitions, resolved));
        }

        var set = builder.ToImmutable();
        resolved[name] = set;
        return set;
    }
}
