// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Buffers;
using System.Collections.Frozen;

namespace Sovereign.Inference.Registry;

/// <summary>
/// The registry's built-in licence check, used when <see cref="ModelRegistryOptions.IsKnownLicense"/> is not set:
/// the SPDX ids open-weight models are published under, the model-licence ids model cards use (llama3.1, gemma,
/// qwen, ...), and any <c>LicenseRef-</c> id. Hosts with a residency policy pass their own list instead.
/// </summary>
public static class ModelLicenses
{
    /// <summary>Built-in ids in their canonical spelling.</summary>
    public static IReadOnlyList<string> BuiltIn { get; } =
    [
        // SPDX ids.
        "Apache-2.0", "MIT", "MIT-0", "BSD-2-Clause", "BSD-3-Clause", "BSL-1.0", "ISC", "Zlib", "Unlicense", "0BSD",
        "CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC-BY-NC-SA-4.0", "CC-BY-NC-ND-4.0", "CC-BY-ND-4.0",
        "GPL-2.0-only", "GPL-3.0-only", "GPL-3.0-or-later", "LGPL-2.1-only", "LGPL-3.0-only", "AGPL-3.0-only",
        "MPL-2.0", "EPL-2.0", "EUPL-1.2", "etalab-2.0", "CDLA-Permissive-2.0", "ODC-By-1.0",
        // Model licences without an SPDX id, as Hugging Face model cards spell them.
        "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "gemma", "qwen", "qwen-research",
        "tongyi-qianwen", "mrl", "mnpl", "openrail", "openrail++", "bigscience-openrail-m",
        "bigscience-bloom-rail-1.0", "creativeml-openrail-m", "bigcode-openrail-m",
    ];

    private static readonly FrozenDictionary<string, string> Canonical =
        BuiltIn.ToFrozenDictionary(id => id, id => id, StringComparer.OrdinalIgnoreCase);

    private static readonly SearchValues<char> IdStringChars =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");

    /// <summary>True for a built-in id (any case) or <c>LicenseRef-</c> followed by SPDX idstring characters.</summary>
    public static bool IsKnown(string id) =>
        !string.IsNullOrWhiteSpace(id) && (Canonical.ContainsKey(id) || IsLicenseRef(id));

    /// <summary><c>LicenseRef-</c> followed by letters, digits, '.' and '-' (SPDX's idstring).</summary>
    public static bool IsLicenseRef(string id) =>
        id.Length > "LicenseRef-".Length
        && id.StartsWith("LicenseRef-", StringComparison.OrdinalIgnoreCase)
        && !id.AsSpan("LicenseRef-".Length).ContainsAnyExcept(IdStringChars);

    /// <summary>The canonical spelling of a built-in id ("apache-2.0" becomes "Apache-2.0"); anything else unchanged.</summary>
    public static string Canonicalize(string id) => Canonical.TryGetValue(id, out var canonical) ? canonical : id;
}
