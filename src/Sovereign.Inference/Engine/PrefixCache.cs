namespace Sovereign.Inference.Engine;

/// <summary>
/// The KV cells of finished sequences, kept so that a later request sharing a prompt prefix (a system prompt, an
/// earlier turn) forks them instead of prefilling again, as llama-server's slots do with <c>cache_prompt</c>.
/// Each entry is an idle sequence of the batcher's executor with the tokens its cells hold, in position order.
/// Bounded by a number of sequences and, through the batcher, by the KV cells the running requests have not
/// reserved; the least recently used entry goes first. Owned by the batcher's loop (not thread-safe).
/// </summary>
internal sealed class PrefixCache(int capacity) : IDisposable
{
    private readonly List<Entry> _entries = [];
    private long _clock;
    private int _cells;

    /// <summary>Most entries kept (each holds one sequence id of the executor).</summary>
    public int Capacity { get; } = Math.Max(0, capacity);

    /// <summary>KV cells the entries hold, counted per entry (cells shared between entries are counted twice, so never under).</summary>
    public int Cells => Volatile.Read(ref _cells);

    /// <summary>Entries held.</summary>
    public int Count => _entries.Count;

    /// <summary>
    /// The entry sharing the longest prefix with <paramref name="prompt"/>, and how many tokens of it can be reused:
    /// at most the prompt's length minus one, because the last prompt token must be decoded to get its logits.
    /// Marks the entry used. (null, 0) when nothing matches.
    /// </summary>
    public (KvSequence? Source, int Tokens) Match(IReadOnlyList<int> prompt)
    {
        Entry? best = null;
        var bestLength = 0;
        var limit = prompt.Count - 1;
        foreach (var entry in _entries)
        {
            var length = CommonPrefix(entry.Tokens, prompt, limit);
            if (length > bestLength)
            {
                (best, bestLength) = (entry, length);
            }
        }

        if (best is null)
        {
            return (null, 0);
        }

        best.LastUsed = ++_clock;
        return (best.Conversation, bestLength);
    }

    /// <summary>
    /// Keeps a finished sequence's cells: takes ownership of <paramref name="conversation"/>, whose KV holds exactly
    /// <paramref name="tokens"/> at positions 0.., and disposes what it makes redundant (an entry that is a prefix of it),
    /// or the conversation itself when an entry already covers it. Evicts the least recently used beyond capacity.
    /// </summary>
    public void Add(KvSequence conversation, List<int> tokens)
    {
        if (Capacity == 0 || tokens.Count == 0)
        {
            conversation.Dispose();
            return;
        }

        for (var i = _entries.Count - 1; i >= 0; i--)
        {
            var entry = _entries[i];
            var common = CommonPrefix(entry.Tokens, tokens, int.MaxValue);
            if (common == tokens.Count)
            {
                // An entry already holds these tokens (and maybe more): this one adds nothing.
                entry.LastUsed = ++_clock;
                conversation.Dispose();
                return;
            }

            if (common == entry.Tokens.Count)
            {
                Remove(i);
            }
        }

        _entries.Add(new Entry(conversation, tokens) { LastUsed = ++_clock });
        Interlocked.Add(ref _cells, tokens.Count);
        while (_entries.Count > Capacity)
        {
            EvictLeastRecentlyUsed();
        }
    }

    /// <summary>Frees the least recently used entry's cells; false when the cache is empty.</summary>
    public bool EvictLeastRecentlyUsed()
    {
        if (_entries.Count == 0)
        {
            return false;
        }

        var oldest = 0;
        for (var i = 1; i < _entries.Count; i++)
        {
            if (_entries[i].LastUsed < _entries[oldest].LastUsed)
            {
                oldest = i;
            }
        }

        Remove(oldest);
        return true;
    }

    /// <summary>Drops every entry (their sequences are removed from the KV cache).</summary>
    public void Clear()
    {
        for (var i = _entries.Count - 1; i >= 0; i--)
        {
            Remove(i);
        }
    }

    /// <inheritdoc />
    public void Dispose() => Clear();

    private void Remove(int index)
    {
        var entry = _entries[index];
        _entries.RemoveAt(index);
        Interlocked.Add(ref _cells, -entry.Tokens.Count);
        entry.Conversation.Dispose();
    }

    private static int CommonPrefix(IReadOnlyList<int> a, IReadOnlyList<int> b, int limit)
    {
        var n = Math.Min(Math.Min(a.Count, b.Count), limit);
        var i = 0;
        while (i < n && a[i] == b[i])
        {
            i++;
        }

        return i;
    }

    private sealed class Entry(KvSequence conversation, List<int> tokens)
    {
        public KvSequence Conversation { get; } = conversation;
        public List<int> Tokens { get; } = tokens;
        public long LastUsed { get; set; }
    }
}
