// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Globalization;

namespace Sovereign.Inference.Gguf;

/// <summary>
/// A SentencePiece-style ("llama") vocabulary for synthetic models: special tokens, all 256 byte tokens so any
/// UTF-8 text tokenizes through byte fallback, then plain pieces generated deterministically up to the size asked.
/// </summary>
internal static class SyntheticVocabulary
{
    // SentencePiece token types, as llama.cpp reads tokenizer.ggml.token_type.
    public const int TypeNormal = 1;
    public const int TypeUnknown = 2;
    public const int TypeControl = 3;
    public const int TypeByte = 6;

    public const int UnknownId = 0;
    public const int BosId = 1;
    public const int EosId = 2;
    public const int ImStartId = 3;
    public const int ImEndId = 4;

    /// <summary>Special tokens plus the 256 byte tokens: the smallest vocabulary possible.</summary>
    public const int FixedTokenCount = 5 + 256;

    /// <summary>Largest vocabulary offered; the generated pieces could go further but no real model needs it.</summary>
    public const int MaxSize = 1 << 20;

    /// <summary>SentencePiece's word-boundary marker (U+2581), which stands for a space.</summary>
    public const string WordBoundary = "\u2581";

    // Frequent English words, so ordinary prose does not tokenize letter by letter.
    private static readonly string[] CommonWords =
    [
        "the", "and", "to", "of", "a", "in", "is", "it", "you", "that", "he", "was", "for", "on", "are", "with",
        "as", "I", "his", "they", "be", "at", "one", "have", "this", "from", "or", "had", "by", "not", "word",
        "but", "what", "some", "we", "can", "out", "other", "were", "all", "there", "when", "up", "use", "your",
        "how", "said", "an", "each", "she", "which", "do", "their", "time", "if", "will", "way", "about", "many",
        "then", "them", "would", "write", "like", "so", "these", "her", "long", "make", "thing", "see", "him",
        "two", "has", "look", "more", "day", "could", "go", "come", "did", "my", "sound", "no", "most", "people",
        "over", "know", "water", "than", "call", "first", "who", "may", "down", "side", "been", "now", "find",
        "Hello", "hello", "world", "The", "It", "Once", "upon", "little", "girl", "boy", "play", "happy",
    ];

    // Frequent English letter pairs, ahead of the exhaustive list of pairs.
    private static readonly string[] CommonBigrams =
    [
        "th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of", "ed", "is",
        "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou", "io", "le", "ve", "co", "me", "de",
        "hi", "ri", "ro", "ic", "ne", "ea", "ra", "ce", "li", "ch", "ll", "be", "ma", "si", "om", "ur",
    ];

    public static SyntheticVocabularyData Build(int size)
    {
        if (size is < FixedTokenCount or > MaxSize)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"Vocabulary size must be between {FixedTokenCount} and {MaxSize}.");
        }

        var tokens = new List<string>(size) { "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>" };
        var types = new List<int>(size) { TypeUnknown, TypeControl, TypeControl, TypeControl, TypeControl };
        for (var b = 0; b < 256; b++)
        {
            tokens.Add(string.Create(CultureInfo.InvariantCulture, $"<0x{b:X2}>"));
            types.Add(TypeByte);
        }

        var scores = new List<float>(size);
        scores.AddRange(Enumerable.Repeat(0f, tokens.Count));

        var seen = new HashSet<string>(tokens, StringComparer.Ordinal);
        using var pieces = NormalPieces().GetEnumerator();
        while (tokens.Count < size && pieces.MoveNext())
        {
            if (seen.Add(pieces.Current))
            {
                // Descending scores: SentencePiece prefers earlier (more frequent) pieces when merging.
                scores.Add(-(tokens.Count - FixedTokenCount));
                tokens.Add(pieces.Current);
                types.Add(TypeNormal);
            }
        }

        return new SyntheticVocabularyData([.. tokens], [.. scores], [.. types]);
    }

    /// <summary>Plain pieces, most useful first. The sequence is endless (ever longer letter strings).</summary>
    private static IEnumerable<string> NormalPieces()
    {
        yield return WordBoundary;
        for (var c = '!'; c <= '~'; c++)
        {
            yield return c.ToString();
        }

        foreach (var c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        {
            yield return WordBoundary + c;
        }

        // SentencePiece builds a word by merging adjacent pieces, so a whole-word piece is only reachable when the
        // pieces in between exist too: each word comes with its prefixes ("▁H", "▁He", ..., "▁Hello").
        foreach (var word in CommonWords)
        {
            for (var length = 2; length <= word.Length; length++)
            {
                yield return WordBoundary + word[..length];
            }
        }

        for (var c = '!'; c <= '~'; c++)
        {
            yield return WordBoundary + c;
        }

        foreach (var bigram in CommonBigrams)
        {
            yield return bigram;
        }

        foreach (var word in CommonWords)
        {
            for (var length = 2; length <= word.Length; length++)
            {
                yield return word[..length];
            }
        }

        for (var length = 2; ; length++)
        {
            foreach (var letters in LowercaseStrings(length))
            {
                yield return letters;
                yield return WordBoundary + letters;
            }
        }
    }

    private static IEnumerable<string> LowercaseStrings(int length)
    {
        var chars = new char[length];
        Array.Fill(chars, 'a');
        while (true)
        {
            yield return new string(chars);
            var i = length - 1;
            while (i >= 0 && chars[i] == 'z')
            {
                chars[i] = 'a';
                i--;
            }

            if (i < 0)
            {
                yield break;
            }

            chars[i]++;
        }
    }
}

/// <summary>Parallel arrays, one entry per token id.</summary>
internal sealed record SyntheticVocabularyData(string[] Tokens, float[] Scores, int[] Types);
