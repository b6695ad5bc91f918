namespace Sovereign.Languages;

/// <summary>
/// Written Cantonese in Han characters (round 31, out of set 18: all eight of its Cantonese sentences came back
/// Chinese, since the Han script alone decides for Chinese). Cantonese writes its own grammatical words with
/// characters Standard Written Chinese does not use: the possessive and nominaliser <c>嘅</c>, the perfective <c>咗</c>,
/// the locative copula <c>喺</c>, the demonstrative <c>嗰</c>, the pronoun <c>佢</c> and plural <c>哋</c>, the negative
/// existential <c>冇</c>, <c>啲</c> (some), <c>嚟</c> (come), <c>睇</c> (look), <c>乜</c> and <c>嘢</c> (what, thing),
/// <c>啱</c> (right), <c>噉</c> (so), <c>嘥</c> (waste), <c>攞</c> (take), <c>搵</c>/<c>揾</c> (look for), <c>瞓</c>
/// (sleep), <c>嬲</c> (angry), <c>嘞</c> (a final particle), <c>畀</c> (give) and <c>靚</c> (pretty). Characters that
/// Mandarin text writes too are left out (<c>係</c> in <c>關係</c>, <c>晒</c>, <c>唔</c>, <c>咩</c>, <c>咪</c>,
/// <c>喇</c>, <c>俾</c>, <c>嘈</c>, <c>啖</c>). From general knowledge of Cantonese writing, not from an evaluation
/// sentence; no Chinese line of the tuning corpus, the held-out sets or the UDHR writes any of them. Two distinct ones
/// make a Chinese answer <c>und</c>, with Cantonese (<c>yue</c>, outside the catalog) as the runner-up.
/// </summary>
internal static class CantoneseCharacters
{
    /// <summary>Distinct characters that make text Cantonese rather than Chinese.</summary>
    internal const int Needed = 2;

    private const string Characters = "嘅咗喺嗰佢哋冇啲嚟睇乜嘢啱噉嘥攞搵揾瞓嬲嘞畀靚";

    /// <summary>How many distinct Cantonese-only characters the text writes.</summary>
    public static int Count(string text)
    {
        var seen = 0;
        var count = 0;
        foreach (var c in text)
        {
            var index = Characters.IndexOf(c, StringComparison.Ordinal);
            if (index >= 0 && (seen & (1 << index)) == 0)
            {
                seen |= 1 << index;
                count++;
            }
        }

        return count;
    }
}
