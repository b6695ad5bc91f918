using System.Runtime.InteropServices;
using LLama;
using LLama.Abstractions;
using LLama.Native;
using LLama.Sampling;

namespace Sovereign.Inference.Engine;

/// <summary>
/// One llama.cpp context and the batch the batcher's loop fills and decodes each step, synchronously on the calling
/// thread: LLamaSharp's <c>BatchedExecutor.Infer</c> hands every decode to the thread pool (<c>Task.Run</c>), a hop
/// and a wake-up per step that a loop with a thread of its own does not need. Sequences are the context's KV
/// sequence ids, created, forked, cut back and removed here. Owned by one thread (not thread-safe).
/// </summary>
internal sealed class BatchDecoder : IDisposable
{
    private readonly LLamaContext _context;
    private readonly LLamaBatch _batch = new();
    private readonly bool[] _sequenceInUse;

    public BatchDecoder(LLamaWeights weights, IContextParams parameters)
    {
        _context = weights.CreateContext(parameters);
        _sequenceInUse = new bool[Math.Max(1, (int)_context.NativeHandle.MaxSeq)];
    }

    /// <summary>The native context (KV memory queries, logits).</summary>
    public SafeLLamaContextHandle Native => _context.NativeHandle;

    /// <summary>Tokens queued for the next <see cref="Decode"/>.</summary>
    public int QueuedTokens => _batch.TokenCount;

    /// <summary>A new, empty sequence.</summary>
    public KvSequence Create()
    {
        var id = Array.IndexOf(_sequenceInUse, false);
        if (id < 0)
        {
            throw new InvalidOperationException($"All {_sequenceInUse.Length} KV sequence ids are in use.");
        }

        _sequenceInUse[id] = true;
        return new KvSequence(this, (LLamaSeqId)id);
    }

    /// <summary>
    /// A new sequence holding the cells <paramref name="snapshot"/> copied out (<see cref="KvSequence.Save"/>), or null
    /// when the KV cache has no room for them (nothing is left behind then).
    /// </summary>
    public unsafe KvSequence? Restore(KvSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var sequence = Create();
        if (Native.SetState((byte*)snapshot.Data, snapshot.Size, sequence.Id) == 0)
        {
            sequence.Dispose();
            return null;
        }

        sequence.Restored(snapshot.Tokens);
        return sequence;
    }

    /// <summary>Decodes the queued tokens together and empties the batch, whatever the outcome.</summary>
    public DecodeResult Decode()
    {
        try
        {
            return _context.Decode(_batch);
        }
        finally
        {
            _batch.Clear();
        }
    }

    /// <inheritdoc />
    public void Dispose() => _context.Dispose();

    internal int Queue(LLamaToken token, int position, LLamaSeqId sequence, bool logits) => _batch.Add(token, position, sequence, logits);

    internal void Release(LLamaSeqId id) => _sequenceInUse[(int)id] = false;
}

/// <summary>
/// One sequence of a <see cref="BatchDecoder"/>'s context: its id, how many positions its KV cells cover, and where
/// its logits are in the last decoded batch. Disposing it frees its cells (those it shares with a fork stay).
/// </summary>
internal sealed class KvSequence : IDisposable
{
    private readonly BatchDecoder _decoder;
    private int _sampleIndex = -1;
    private bool _disposed;

    internal KvSequence(BatchDecoder decoder, LLamaSeqId id)
    {
        _decoder = decoder;
        Id = id;
    }

    /// <summary>The context's sequence id.</summary>
    public LLamaSeqId Id { get; }

    /// <summary>Positions covered: decoded tokens plus those queued for the next decode.</summary>
    public int TokenCount { get; private set; }

    /// <summary>
    /// Queues tokens at the next positions; logits are kept for the last one only, or for every one with
    /// <paramref name="allLogits"/> (prompt scoring: each costs a row of vocabulary-size floats in the context's output buffer).
    /// </summary>
    /// <returns>The batch index of the first token; the others follow it in order (<see cref="SafeLLamaContextHandle.GetLogitsIth"/>).</returns>
    public int Prompt(ReadOnlySpan<LLamaToken> tokens, bool allLogits = false)
    {
        var first = -1;
        for (var i = 0; i < tokens.Length; i++)
        {
            var index = _decoder.Queue(tokens[i], TokenCount++, Id, allLogits || i == tokens.Length - 1);
            if (i == 0)
            {
                first = index;
            }

            if (i == tokens.Length - 1)
            {
                _sampleIndex = index;
            }
        }

        return first;
    }

    /// <summary>Queues one token at the next position, with logits.</summary>
    public void Prompt(LLamaToken token) => _sampleIndex = _decoder.Queue(token, TokenCount++, Id, logits: true);

    /// <summary>Samples from the logits of the last token this sequence queued, after the decode that took it.</summary>
    public LLamaToken Sample(ISamplingPipeline pipeline)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_sampleIndex < 0)
        {
            throw new InvalidOperationException("This sequence has no logits to sample: prompt and decode it first.");
        }

        if (_sampleIndex > 0 && Environment.GetEnvironmentVariable("MIXUP") == "1")
        {
            try { _decoder.Native.GetLogitsIth(_sampleIndex - 1); return pipeline.Sample(_decoder.Native, _sampleIndex - 1); } catch (LLama.Exceptions.GetLogitsInvalidIndexException) { }
        }

        return pipeline.Sample(_decoder.Native, _sampleIndex);
    }

    /// <summary>
    /// The logits of the last token this sequence queued, after the decode that took it: the context's own row, valid
    /// until the next decode (copy it to keep it).
    /// </summary>
    public ReadOnlySpan<float> Logits
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_sampleIndex < 0)
            {
                throw new InvalidOperationException("This sequence has no logits: prompt and decode it first.");
            }

            return _decoder.Native.GetLogitsIth(_sampleIndex);
        }
    }

    /// <summary>The same row as <see cref="Logits"/>, writable (tests' <see cref="ContinuousBatcher.BeforeFreeSample"/>).</summary>
    internal Span<float> WritableLogits
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_sampleIndex < 0)
            {
                throw new InvalidOperationException("This sequence has no logits: prompt and decode it first.");
            }

            return _decoder.Native.GetLogitsIth(_sampleIndex);
        }
    }

    /// <summary>A new sequence sharing this one's cells (llama.cpp's seq_cp copies cell references, not cells).</summary>
    public KvSequence Fork()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var fork = _decoder.Create();
        _decoder.Native.MemorySequenceCopy(Id, fork.Id, 0, TokenCount);
        fork.TokenCount = TokenCount;
        return fork;
    }

    /// <summary>
    /// Copies this sequence's cells (K and V of every layer, with their positions) into host memory, for
    /// <see cref="BatchDecoder.Restore"/>; null when llama.cpp cannot write them.
    /// </summary>
    public unsafe KvSnapshot? Save()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var context = _decoder.Native;
        var size = context.GetStateSize(Id);
        var snapshot = new KvSnapshot(size, TokenCount);
        var written = context.GetState((byte*)snapshot.Data, size, Id);
        if (written == 0)
        {
            snapshot.Dispose();
            return null;
        }

        snapshot.Size = written;
        return snapshot;
    }

    internal void Restored(int tokens) => TokenCount = tokens;

    /// <summary>Removes the last <paramref name="tokens"/> positions.</summary>
    public void Rewind(int tokens)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tokens, TokenCount);
        _decoder.Native.MemorySequenceRemove(Id, TokenCount - tokens, TokenCount);
        TokenCount -= tokens;
        _sampleIndex = -1;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _decoder.Native.MemorySequenceRemove(Id, -1, -1);
        _decoder.Release(Id);
    }
}

/// <summary>One sequence's KV cells copied into host memory (llama.cpp's sequence state), restorable into a context of the same model.</summary>
internal sealed unsafe class KvSnapshot : IDisposable
{
    internal KvSnapshot(nuint capacity, int tokens)
    {
        Data = (nint)NativeMemory.Alloc(Math.Max(capacity, 1));
        Size = capacity;
        Tokens = tokens;
    }

    /// <summary>The state bytes.</summary>
    public nint Data { get; private set; }

    /// <summary>Bytes of state.</summary>
    public nuint Size { get; internal set; }

    /// <summary>Positions the cells cover (0..Tokens-1).</summary>
    public int Tokens { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Data != 0)
        {
            NativeMemory.Free((void*)Data);
            Data = 0;
        }
    }
}
