namespace Sovereign.Languages;

/// <summary>
/// The letters one of Czech and Slovak writes and the other's alphabet lacks: Czech <c>ř, ě, ů</c> (<c>řeka, oběd,
/// dům</c>), Slovak <c>ä, ľ, ĺ, ŕ, ô</c> (<c>päť, veľmi, stĺp, vŕba, môj</c>). Lingua's alphabet rule gives no share to a
/// language whose alphabet lacks a letter of the text, but inside the close group every member gets the best member's
/// share, so that rule was lost there: a Czech sentence with <c>oběda</c> and nothing else Czech enough was read as
/// Slovak. Taken from the two alphabets, not from any sentence.
/// </summary>
internal static class CzechSlovakLetters
{
    private const string Czech = "řěů";
    private const string Slovak = "äľĺŕô";

    /// <summary>In a normalised text: whether it writes a letter only Czech has, and one only Slovak has (0 or 1 each).</summary>
    public static (int Czech, int Slovak) Count(string normalized) =>
        (normalized.AsSpan().IndexOfAny(Czech) >= 0 ? 1 : 0, normalized.AsSpan().IndexOfAny(Slovak) >= 0 ? 1 : 0);
}
