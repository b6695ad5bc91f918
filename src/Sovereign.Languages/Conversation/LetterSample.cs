using System.Text;

namespace Sovereign.Languages;

/// <summary>
/// The letters of a text that arrives in pieces (a completion as it is delivered, a prompt turn by turn), for
/// <see cref="LanguageDetector.ShareOf(LetterSample, string)"/>, in one pass and bounded memory however long the text:
/// every letter is counted by script as it comes (exact), and the text is cut into passages (a passage never spans two
/// parts: turns, or a completion's choices) of which a bounded sample is kept for the detector: the newest
/// <c>newestPassages</c>, always, and <c>sampledPassages</c> drawn from all the earlier ones, each as likely as any other
/// (reservoir sampling). A text of no more passages than both together is kept whole. Thread-safe.
/// </summary>
public sealed class LetterSample
{
    private static readonly int ScriptCount = Enum.GetValues<WritingScript>().Length;

    private readonly int _passageCharacters;
    private readonly int _newestPassages;
    private readonly int _sampledPassages;
    private readonly Random _random;
    private readonly long[] _letters = new long[ScriptCount];
    private readonly Dictionary<int, StringBuilder> _open = [];
    private readonly Dictionary<int, char> _pendingHigh = []; // a part's last piece ended inside a surrogate pair
    private readonly Queue<string> _newest = new();
    private readonly List<string> _sampled = [];
    private readonly Lock _gate = new();
    private long _totalLetters;
    private long _earlier;

    /// <summary>A sample cutting passages of <paramref name="passageCharacters"/>, keeping the newest
    /// <paramref name="newestPassages"/> and <paramref name="sampledPassages"/> of the rest (drawn with <paramref name="seed"/>).</summary>
    public LetterSample(int passageCharacters, int newestPassages, int sampledPassages, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(passageCharacters, 2);
        ArgumentOutOfRangeException.ThrowIfNegative(newestPassages);
        ArgumentOutOfRangeException.ThrowIfNegative(sampledPassages);
        _passageCharacters = passageCharacters;
        _newestPassages = newestPassages;
        _sampledPassages = sampledPassages;
        _random = new Random(seed);
    }

    /// <summary>Letters of every script appended so far.</summary>
    public long Letters
    {
        get
        {
            lock (_gate)
            {
                return _totalLetters;
            }
        }
    }

    /// <summary>Appends text to a part (a turn, a choice): letters are counted, passages cut.</summary>
    public void Append(int part, ReadOnlySpan<char> text)
    {
        lock (_gate)
        {
            // Pieces may split a surrogate pair (a letter outside the BMP): its halves are counted together, as one letter.
            var counted = text;
            if (_pendingHigh.Remove(part, out var high) && !counted.IsEmpty && char.IsLowSurrogate(counted[0]))
            {
                Count(new Rune(high, counted[0]));
                counted = counted[1..];
            }

            if (!counted.IsEmpty && char.IsHighSurrogate(counted[^1]))
            {
                _pendingHigh[part] = counted[^1];
                counted = counted[..^1];
            }

            foreach (var rune in counted.EnumerateRunes())
            {
                Count(rune);
            }

            if (!_open.TryGetValue(part, out var open))
            {
                _open[part] = open = new StringBuilder(_passageCharacters + 1);
            }

            while (!text.IsEmpty)
            {
                var take = Math.Min(text.Length, _passageCharacters - open.Length);

                // A passage ends between characters, never inside a surrogate pair.
                if (take < text.Length && take > 0 && char.IsHighSurrogate(text[take - 1]))
                {
                    take++;
                }

                open.Append(text[..take]);
                text = text[take..];
                if (open.Length >= _passageCharacters && !char.IsHighSurrogate(open[^1]))
                {
                    Close(open);
                }
            }
        }
    }

    /// <summary>Ends a part: its last passage is cut, however short.</summary>
    public void EndPart(int part)
    {
        lock (_gate)
        {
            _pendingHigh.Remove(part); // a lone half of a pair is no letter
            if (_open.Remove(part, out var open))
            {
                Close(open);
            }
        }
    }

    /// <summary>Letters of <paramref name="script"/> appended so far.</summary>
    internal long LettersOf(WritingScript script)
    {
        lock (_gate)
        {
            return _letters[(int)script];
        }
    }

    /// <summary>
    /// The passages kept, every part ended first: the newest ones (<c>Newest</c>, read whole) and those drawn from
    /// the earlier ones (<c>Sampled</c>), with how many earlier passages there were (<c>Earlier</c>).
    /// </summary>
    internal (IReadOnlyList<string> Newest, IReadOnlyList<string> Sampled, long Earlier) Passages()
    {
        lock (_gate)
        {
            foreach (var part in _open.Keys.Order().ToList())
            {
                Close(_open[part]);
                _open.Remove(part);
            }

            return ([.. _newest], [.. _sampled], _earlier);
        }
    }

    private void Count(Rune rune)
    {
        if (Rune.IsLetter(rune) && ScriptProfile.Classify(rune.Value) is var script && script != WritingScript.Other)
        {
            _letters[(int)script]++;
            _totalLetters++;
        }
    }

    private void Close(StringBuilder open)
    {
        if (open.Length == 0)
        {
            return;
        }

        var passage = open.ToString();
        open.Clear();
        _newest.Enqueue(passage);
        if (_newest.Count <= _newestPassages)
        {
            return;
        }

        // The oldest of the newest becomes an earlier passage: kept with probability sampled/earlier (Algorithm R).
        var earlier = _newest.Dequeue();
        _earlier++;
        if (_sampled.Count < _sampledPassages)
        {
            _sampled.Add(earlier);
        }
        else if (_sampledPassages > 0 && _random.NextInt64(_earlier) is var slot && slot < _sampledPassages)
        {
            _sampled[(int)slot] = earlier;
        }
    }
}
