using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;

namespace Sovereign.Residency.Policies;

/// <summary>
/// Licence ids a policy may name. SPDX ids are matched case-insensitively, as the SPDX specification asks, and reported
/// in their canonical spelling. Most open-weight model licences (Llama, Gemma, OpenRAIL, Qwen, Mistral's research
/// licence) are NOT on the SPDX list (SPDX declined the RAIL licences); for those the table holds the ids the Hugging Face
/// Hub uses in model cards, which is what GGUF <c>general.license</c> usually carries. Anything else is written
/// <c>LicenseRef-&lt;name&gt;</c>, which SPDX reserves for licences outside its list.
/// </summary>
public static class KnownLicenses
{
    /// <summary>Ids from the SPDX License List (3.x) that open-weight models and their data actually use.</summary>
    public static IReadOnlyList<string> Spdx { get; } =
    [
        "0BSD", "AFL-3.0", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-2.0", "Artistic-2.0", "BSD-2-Clause",
        "BSD-3-Clause", "BSD-3-Clause-Clear", "BSL-1.0", "C-UDA-1.0", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-NC-3.0",
        "CC-BY-NC-4.0", "CC-BY-NC-ND-3.0", "CC-BY-NC-ND-4.0", "CC-BY-NC-SA-3.0", "CC-BY-NC-SA-4.0", "CC-BY-ND-4.0",
        "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC0-1.0", "CDLA-Permissive-1.0", "CDLA-Permissive-2.0", "CDLA-Sharing-1.0",
        "ECL-2.0", "EPL-1.0", "EPL-2.0", "etalab-2.0", "EUPL-1.1", "EUPL-1.2", "GPL-2.0-only", "GPL-2.0-or-later",
        "GPL-3.0-only", "GPL-3.0-or-later", "ISC", "LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only",
        "LGPL-3.0-or-later", "LGPLLR", "LPPL-1.3c", "MIT", "MIT-0", "MPL-2.0", "MS-PL", "NCSA", "ODbL-1.0",
        "ODC-By-1.0", "OFL-1.1", "OSL-3.0", "PDDL-1.0", "PostgreSQL", "Unlicense", "UPL-1.0", "WTFPL", "Zlib",
    ];

    /// <summary>Model licences that have no SPDX id, by the id model cards use.</summary>
    public static IReadOnlyList<string> ModelLicenses { get; } =
    [
        "bigcode-openrail-m", "bigscience-bloom-rail-1.0", "bigscience-openrail-m", "creativeml-openrail-m",
        "deepfloyd-if-license", "gemma", "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4",
        "mnpl", "mrl", "openrail", "openrail++", "qwen", "qwen-research", "tongyi-qianwen",
    ];

    /// <summary>Both lists, case-insensitive.</summary>
    public static IReadOnlySet<string> Default { get; } = Spdx.Concat(ModelLicenses).ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    private static readonly FrozenDictionary<string, string> Canonical =
        Spdx.Concat(ModelLicenses).ToFrozenDictionary(id => id, id => id, StringComparer.OrdinalIgnoreCase);

    /// <summary>True for <c>LicenseRef-</c> followed by SPDX idstring characters (letters, digits, '.', '-').</summary>
    public static bool IsLicenseRef([NotNullWhen(true)] string? id) =>
        id is not null
        && id.Length > "LicenseRef-".Length
        && id.StartsWith("LicenseRef-", StringComparison.OrdinalIgnoreCase)
        && id.AsSpan("LicenseRef-".Length).IndexOfAnyExcept(IdStringChars) < 0;

    /// <summary>
    /// True when <paramref name="id"/> is acceptable: a <c>LicenseRef-</c> id, or in <paramref name="known"/>
    /// (case-insensitive; <see cref="Default"/> when null).
    /// </summary>
    public static bool IsKnown([NotNullWhen(true)] string? id, IEnumerable<string>? known = null)
    {
        if (string.IsNullOrWhiteSpace(id))
        {
            return false;
        }

        if (IsLicenseRef(id))
        {
            return true;
        }

        return known is null ? Default.Contains(id) : known.Contains(id, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>The canonical spelling of a built-in id ("apache-2.0" -> "Apache-2.0"), or the input unchanged.</summary>
    public static string Canonicalize(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        return Canonical.TryGetValue(id, out var canonical) ? canonical : id;
    }

    private static readonly System.Buffers.SearchValues<char> IdStringChars =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-");
}
