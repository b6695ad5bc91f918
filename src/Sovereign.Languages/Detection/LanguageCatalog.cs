using Lingua;

namespace Sovereign.Languages;

/// <summary>A language the detector can be configured for.</summary>
/// <param name="Code">ISO 639-1 where one exists, else ISO 639-3 (e.g. <c>fil</c>).</param>
/// <param name="Name">English name.</param>
/// <param name="Script">The script it is written in, as the detector sees it.</param>
/// <param name="IsCovered">Whether it is in the default (covered) set.</param>
public sealed record LanguageDescriptor(string Code, string Name, WritingScript Script, bool IsCovered)
{
    /// <summary>The Lingua model behind it; null where Lingua has none (Maltese, Khmer, Lao, Burmese, Kannada,
    /// Malayalam, Odia) and the script or a heuristic decides instead.</summary>
    internal Language? Lingua { get; init; }
}

/// <summary>The languages the detector knows: the covered set (the default) and a few more an operator may add.</summary>
public static class LanguageCatalog
{
    private static readonly LanguageDescriptor[] Entries =
    [
        // The 24 official languages of the EU.
        Core("bg", "Bulgarian", WritingScript.Cyrillic, Language.Bulgarian),
        Core("hr", "Croatian", WritingScript.Latin, Language.Croatian),
        Core("cs", "Czech", WritingScript.Latin, Language.Czech),
        Core("da", "Danish", WritingScript.Latin, Language.Danish),
        Core("nl", "Dutch", WritingScript.Latin, Language.Dutch),
        Core("en", "English", WritingScript.Latin, Language.English),
        Core("et", "Estonian", WritingScript.Latin, Language.Estonian),
        Core("fi", "Finnish", WritingScript.Latin, Language.Finnish),
        Core("fr", "French", WritingScript.Latin, Language.French),
        Core("de", "German", WritingScript.Latin, Language.German),
        Core("el", "Greek", WritingScript.Greek, Language.Greek),
        Core("hu", "Hungarian", WritingScript.Latin, Language.Hungarian),
        Core("ga", "Irish", WritingScript.Latin, Language.Irish),
        Core("it", "Italian", WritingScript.Latin, Language.Italian),
        Core("lv", "Latvian", WritingScript.Latin, Language.Latvian),
        Core("lt", "Lithuanian", WritingScript.Latin, Language.Lithuanian),
        Core("mt", "Maltese", WritingScript.Latin, null),
        Core("pl", "Polish", WritingScript.Latin, Language.Polish),
        Core("pt", "Portuguese", WritingScript.Latin, Language.Portuguese),
        Core("ro", "Romanian", WritingScript.Latin, Language.Romanian),
        Core("sk", "Slovak", WritingScript.Latin, Language.Slovak),
        Core("sl", "Slovenian", WritingScript.Latin, Language.Slovene),
        Core("es", "Spanish", WritingScript.Latin, Language.Spanish),
        Core("sv", "Swedish", WritingScript.Latin, Language.Swedish),

        // South-East Asia.
        Core("th", "Thai", WritingScript.Thai, Language.Thai),
        Core("vi", "Vietnamese", WritingScript.Latin, Language.Vietnamese),
        Core("id", "Indonesian", WritingScript.Latin, Language.Indonesian),
        Core("ms", "Malay", WritingScript.Latin, Language.Malay),
        Core("fil", "Filipino", WritingScript.Latin, Language.Tagalog),
        Core("km", "Khmer", WritingScript.Khmer, null),
        Core("lo", "Lao", WritingScript.Lao, null),
        Core("my", "Burmese", WritingScript.Myanmar, null),

        // India.
        Core("hi", "Hindi", WritingScript.Devanagari, Language.Hindi),
        Core("bn", "Bengali", WritingScript.Bengali, Language.Bengali),
        Core("ta", "Tamil", WritingScript.Tamil, Language.Tamil),
        Core("te", "Telugu", WritingScript.Telugu, Language.Telugu),
        Core("mr", "Marathi", WritingScript.Devanagari, Language.Marathi),
        Core("gu", "Gujarati", WritingScript.Gujarati, Language.Gujarati),
        Core("kn", "Kannada", WritingScript.Kannada, null),
        Core("ml", "Malayalam", WritingScript.Malayalam, null),
        Core("pa", "Punjabi", WritingScript.Gurmukhi, Language.Punjabi),
        Core("or", "Odia", WritingScript.Oriya, null),

        // East Asia and Arabic.
        Core("ja", "Japanese", WritingScript.Kana, Language.Japanese),
        Core("ko", "Korean", WritingScript.Hangul, Language.Korean),
        Core("zh", "Chinese", WritingScript.Han, Language.Chinese),
        Core("ar", "Arabic", WritingScript.Arabic, Language.Arabic),

        // Not covered by default. Their Lingua models also serve as decoys: when only one language of a shared script
        // is configured (Bulgarian among the Cyrillic ones), Russian text must come out undetermined, not Bulgarian.
        Extra("ru", "Russian", WritingScript.Cyrillic, Language.Russian),
        Extra("uk", "Ukrainian", WritingScript.Cyrillic, Language.Ukrainian),
        Extra("be", "Belarusian", WritingScript.Cyrillic, Language.Belarusian),
        Extra("mk", "Macedonian", WritingScript.Cyrillic, Language.Macedonian),
        Extra("sr", "Serbian", WritingScript.Cyrillic, Language.Serbian),
        Extra("kk", "Kazakh", WritingScript.Cyrillic, Language.Kazakh),
        Extra("mn", "Mongolian", WritingScript.Cyrillic, Language.Mongolian),
        Extra("fa", "Persian", WritingScript.Arabic, Language.Persian),
        Extra("ur", "Urdu", WritingScript.Arabic, Language.Urdu),
        Extra("he", "Hebrew", WritingScript.Hebrew, Language.Hebrew),
        Extra("ka", "Georgian", WritingScript.Georgian, Language.Georgian),
        Extra("hy", "Armenian", WritingScript.Armenian, Language.Armenian),
        Extra("si", "Sinhala", WritingScript.Sinhala, Language.Sinhala),
        Extra("am", "Amharic", WritingScript.Ethiopic, Language.Amharic),
        Extra("ti", "Tigrinya", WritingScript.Ethiopic, Language.Tigrinya),
        Extra("tr", "Turkish", WritingScript.Latin, Language.Turkish),
        Extra("ca", "Catalan", WritingScript.Latin, Language.Catalan),
        Extra("eu", "Basque", WritingScript.Latin, Language.Basque),
        Extra("nb", "Norwegian Bokmål", WritingScript.Latin, Language.Bokmal),
        Extra("nn", "Norwegian Nynorsk", WritingScript.Latin, Language.Nynorsk),
        Extra("is", "Icelandic", WritingScript.Latin, Language.Icelandic),
        Extra("sq", "Albanian", WritingScript.Latin, Language.Albanian),
        Extra("bs", "Bosnian", WritingScript.Latin, Language.Bosnian),
        Extra("af", "Afrikaans", WritingScript.Latin, Language.Afrikaans),
        Extra("sw", "Swahili", WritingScript.Latin, Language.Swahili),
        Extra("cy", "Welsh", WritingScript.Latin, Language.Welsh),
        Extra("az", "Azerbaijani", WritingScript.Latin, Language.Azerbaijani),
    ];

    private static readonly Dictionary<string, LanguageDescriptor> ByCode =
        Entries.ToDictionary(e => e.Code, StringComparer.OrdinalIgnoreCase);

    /// <summary>Every language the detector can be configured for.</summary>
    public static IReadOnlyList<LanguageDescriptor> All => Entries;

    /// <summary>The covered set: the 24 EU languages, 8 of South-East Asia, 10 of India, Japanese, Korean, Chinese
    /// and Arabic. The default of <see cref="LanguageDetectorOptions.Languages"/>.</summary>
    public static IReadOnlyList<string> Covered { get; } = [.. Entries.Where(e => e.IsCovered).Select(e => e.Code)];

    /// <summary>Looks a language up by its code (case-insensitive); <c>tl</c> is taken as Filipino.</summary>
    public static bool TryGet(string code, out LanguageDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(code);
        return ByCode.TryGetValue(code.Equals("tl", StringComparison.OrdinalIgnoreCase) ? "fil" : code, out descriptor!);
    }

    private static LanguageDescriptor Core(string code, string name, WritingScript script, Language? lingua) =>
        new(code, name, script, IsCovered: true) { Lingua = lingua };

    private static LanguageDescriptor Extra(string code, string name, WritingScript script, Language lingua) =>
        new(code, name, script, IsCovered: false) { Lingua = lingua };
}
