namespace Sovereign.Inference.Engine;

/// <summary>
/// The KV cells of finished sequences, kept so that a later request sharing a prompt prefix (a system prompt, an
/// earlier turn) forks them instead of prefilling again, as llama-server's slots do with <c>cache_prompt</c>.
/// A finished sequence stays in the batcher's KV cache (resident) until new work is admitted; then it is parked:
/// its cells are copied into host memory and removed from the KV cache, as llama-server does with idle slots
/// (<c>--cache-idle-slots</c>): with one unified KV cache every decode step scans every cell up to the highest one in
/// use, so cells kept for reuse would slow every running request down. A request that matches a parked entry well
/// enough gets its cells copied back (a memcpy, far cheaper than prefilling them). Bounded by a number of entries;
/// the least recently used goes first. Owned by the batcher's loop (not thread-safe).
/// Entries are partitioned (by tenant): a request reuses only its own partition's prefixes, because a reused prefix
/// shows in <c>cached_tokens</c> and in the time to the first token, which would tell a tenant, token by token, what
/// another tenant sent. OpenAI does not share prompt caches between organizations either.
/// </summary>
internal sealed class PrefixCache(int capacity, long maxParkedBytes = long.MaxValue) : IDisposable
{
    /// <summary>
    /// A parked entry is restored only when the reused prefix is at least this fraction (1/N) of its tokens: copying
    /// back a cell costs microseconds, prefilling a token milliseconds, but a prompt that shares only its first token
    /// (BOS) with a long entry is not worth copying the whole entry for.
    /// </summary>
    private const int RestoreFraction = 16;

    private readonly List<Entry> _entries = [];
    private long _clock;
    private int _cells;
    private long _parkedBytes;

    /// <summary>Host memory parked entries may hold; beyond it the least recently used entries are dropped.</summary>
    public long MaxParkedBytes { get; } = Math.Max(0, maxParkedBytes);

    /// <summary>Most entries kept (each resident one holds one sequence id of the executor).</summary>
    public int Capacity { get; } = Math.Max(0, capacity);

    /// <summary>KV cells the resident entries hold, counted per entry (cells shared between entries are counted twice, so never under).</summary>
    public int Cells => Volatile.Read(ref _cells);

    /// <summary>Host memory holding parked entries' cells, in bytes.</summary>
    public long ParkedBytes => Volatile.Read(ref _parkedBytes);

    /// <summary>Entries held, resident or parked.</summary>
    public int Count => _entries.Count;

    /// <summary>
    /// The cached sequence of <paramref name="partition"/> sharing the longest prefix with <paramref name="prompt"/>, and how many tokens of it can be
    /// reused: at most the prompt's length minus one, because the last prompt token must be decoded to get its
    /// logits. A parked entry is copied back into <paramref name="decoder"/>'s KV cache first (and stays resident until
    /// <see cref="Park"/>). Marks the entry used. (null, 0) when nothing matches.
    /// </summary>
    public (KvSequence? Source, int Tokens) Match(string partition, IReadOnlyList<int> prompt, BatchDecoder decoder)
    {
        ArgumentNullException.ThrowIfNull(decoder);
        Entry? best = null;
        var bestLength = 0;
        var limit = prompt.Count - 1;
        foreach (var entry in _entries)
        {
            if (!string.Equals(entry.Partition, partition, StringComparison.Ordinal))
            {
                continue;
            }

            var length = CommonPrefix(entry.Tokens, prompt, limit);
            var usable = entry.Resident is not null || (long)length * RestoreFraction >= entry.Tokens.Count;
            if (usable && (length > bestLength || (length == bestLength && length > 0 && best!.Resident is null && entry.Resident is not null)))
            {
                (best, bestLength) = (entry, length);
            }
        }

        if (best is null)
        {
            return (null, 0);
        }

        if (best.Resident is null)
        {
            // Parked: copy its cells back. No room (running requests' reservations come first): prefill instead.
            if (decoder.Restore(best.Parked!) is not { } restored)
            {
                return (null, 0);
            }

            best.Resident = restored;
            Interlocked.Add(ref _cells, best.Tokens.Count);
        }

        best.LastUsed = ++_clock;
        return (best.Resident, bestLength);
    }

    /// <summary>
    /// Keeps a finished sequence's cells for its <paramref name="partition"/>: takes ownership of <paramref name="conversation"/>,
    /// whose KV holds exactly <paramref name="tokens"/> at positions 0.., and disposes what it makes redundant (an entry
    /// of the partition that is a prefix of it), or the conversation itself when an entry of the partition already
    /// covers it. Evicts the least recently used beyond capacity.
    /// </summary>
    public void Add(string partition, KvSequence conversation, List<int> tokens)
    {
        if (Capacity == 0 || tokens.Count == 0)
        {
            conversation.Dispose();
            return;
        }

        for (var i = _entries.Count - 1; i >= 0; i--)
        {
            var entry = _entries[i];
            if (!string.Equals(entry.Partition, partition, StringComparison.Ordinal))
            {
                continue;
            }

            var common = CommonPrefix(entry.Tokens, tokens, int.MaxValue);
            if (common == tokens.Count)
            {
                // An entry already holds these tokens (and maybe more): this one adds nothing, except that it is in the
                // KV cache where the entry, holding exactly these tokens, may be parked.
                entry.LastUsed = ++_clock;
                if (entry.Resident is null && entry.Tokens.Count == tokens.Count)
                {
                    entry.Resident = conversation;
                    Interlocked.Add(ref _cells, tokens.Count);
                }
                else
                {
                    conversation.Dispose();
                }

                return;
            }

            if (common == entry.Tokens.Count)
            {
                Remove(i);
            }
        }

        _entries.Add(new Entry(partition, tokens) { Resident = conversation, LastUsed = ++_clock });
        Interlocked.Add(ref _cells, tokens.Count);
        while (_entries.Count > Capacity)
        {
            EvictLeastRecentlyUsed();
        }
    }

    /// <summary>
    /// Moves every resident entry's cells out of the KV cache into host memory (once per entry: a copy is kept when
    /// it is restored). An entry whose cells cannot be copied is dropped.
    /// </summary>
    public void Park()
    {
        for (var i = _entries.Count - 1; i >= 0; i--)
        {
            var entry = _entries[i];
            if (entry.Resident is not { } resident)
            {
                continue;
            }

            if (entry.Parked is null)
            {
                if (resident.Save() is not { } snapshot)
                {
                    Remove(i);
                    continue;
                }

                entry.Parked = snapshot;
                Interlocked.Add(ref _parkedBytes, (long)snapshot.Size);
            }

            entry.Resident = null;
            Interlocked.Add(ref _cells, -entry.Tokens.Count);
            resident.Dispose();
        }

        // Every entry is parked now: the least recently used go until the rest fit in host memory's bound.
        while (ParkedBytes > MaxParkedBytes)
        {
            if (!EvictLeastRecentlyUsed())
            {
                break;
            }
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

    /// <summary>Drops every entry (resident ones' sequences are removed from the KV cache).</summary>
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
        if (entry.Resident is { } resident)
        {
            Interlocked.Add(ref _cells, -entry.Tokens.Count);
            resident.Dispose();
        }

        if (entry.Parked is { } parked)
        {
            Interlocked.Add(ref _parkedBytes, -(long)parked.Size);
            parked.Dispose();
        }
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

    /// <summary>A cached token sequence: in the KV cache (<see cref="Resident"/>), in host memory (<see cref="Parked"/>), or both.</summary>
    private sealed class Entry(string partition, List<int> tokens)
    {
        public string Partition { get; } = partition;
        public KvSequence? Resident { get; set; }
        public KvSnapshot? Parked { get; set; }
        public List<int> Tokens { get; } = tokens;
        public long LastUsed { get; set; }
    }
}
