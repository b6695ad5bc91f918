using System.Runtime.CompilerServices;
using LLama.Native;

namespace Sovereign.Inference.Grammar;

/// <summary>
/// A model's vocabulary as a trie of the bytes each token prints, built once per model, so that a grammar state that
/// rejects a byte rejects every token under it at once. Tokens that print nothing (control tokens) or a NUL byte are
/// left out: they are never allowed under a grammar; end-of-generation tokens are listed apart.
/// </summary>
internal sealed class VocabularyTrie
{
    private static readonly ConditionalWeakTable<SafeLlamaModelHandle, VocabularyTrie> ByModel = [];

    // Children of node n are entries _childStart[n] .. _childStart[n] + _childCount[n] of _childByte/_childNode.
    private readonly int[] _childStart;
    private readonly int[] _childCount;
    private readonly byte[] _childByte;
    private readonly int[] _childNode;
    private readonly int[] _tokenStart;
    private readonly int[] _tokenCount;
    private readonly int[] _tokens;
    private readonly bool[] _eligible;

    private VocabularyTrie(byte[][] pieces, int[] endOfGeneration)
    {
        Pieces = pieces;
        EndOfGeneration = endOfGeneration;
        VocabularySize = pieces.Length;
        var eog = new HashSet<int>(endOfGeneration);
        var order = Enumerable.Range(0, pieces.Length)
            .Where(t => !eog.Contains(t) && pieces[t].Length > 0 && Array.IndexOf(pieces[t], (byte)0) < 0)
            .ToArray();
        _eligible = new bool[pieces.Length];
        foreach (var token in order)
        {
            _eligible[token] = true;
        }

        foreach (var token in endOfGeneration)
        {
            _eligible[token] = true;
        }

        Array.Sort(order, (a, b) => pieces[a].AsSpan().SequenceCompareTo(pieces[b]));

        // Build from the sorted pieces: a node per distinct prefix, children in byte order.
        var children = new List<List<(byte Byte, int Node)>> { new() };
        var tokensAt = new List<List<int>> { new() };
        var path = new List<int> { 0 };
        byte[] previous = [];
        foreach (var token in order)
        {
            var piece = pieces[token];
            var common = piece.AsSpan().CommonPrefixLength(previous);
            path.RemoveRange(common + 1, path.Count - common - 1);
            for (var depth = common; depth < piece.Length; depth++)
            {
                var node = children.Count;
                children.Add([]);
                tokensAt.Add([]);
                children[path[depth]].Add((piece[depth], node));
                path.Add(node);
            }

            tokensAt[path[piece.Length]].Add(token);
            previous = piece;
        }

        var nodes = children.Count;
        _childStart = new int[nodes];
        _childCount = new int[nodes];
        _tokenStart = new int[nodes];
        _tokenCount = new int[nodes];
        _childByte = new byte[nodes - 1];
        _childNode = new int[nodes - 1];
        _tokens = new int[order.Length];
        int edge = 0, slot = 0;
        for (var n = 0; n < nodes; n++)
        {
            _childStart[n] = edge;
            _childCount[n] = children[n].Count;
            foreach (var (b, child) in children[n])
            {
                _childByte[edge] = b;
                _childNode[edge++] = child;
            }

            _tokenStart[n] = slot;
            _tokenCount[n] = tokensAt[n].Count;
            foreach (var token in tokensAt[n])
            {
                _tokens[slot++] = token;
            }
        }
    }

    /// <summary>The trie's root (the empty prefix).</summary>
    public int Root => 0;

    /// <summary>Number of token ids.</summary>
    public int VocabularySize { get; }

    /// <summary>Every token's bytes as the output text gets them (special tokens print nothing).</summary>
    public byte[][] Pieces { get; }

    /// <summary>Tokens that end generation.</summary>
    public int[] EndOfGeneration { get; }

    /// <summary>The trie of <paramref name="model"/>'s vocabulary, built on first use.</summary>
    public static VocabularyTrie For(SafeLlamaModelHandle model)
    {
        ArgumentNullException.ThrowIfNull(model);
        lock (ByModel)
        {
            if (!ByModel.TryGetValue(model, out var trie))
            {
                trie = Build(model);
                ByModel.AddOrUpdate(model, trie);
            }

            return trie;
        }
    }

    /// <summary>Builds a trie from explicit pieces (tests).</summary>
    public static VocabularyTrie FromPieces(byte[][] pieces, int[] endOfGeneration) => new(pieces, endOfGeneration);

    /// <summary>Whether <paramref name="token"/> may ever be sampled under a grammar: it ends generation, or it prints text without a NUL byte.</summary>
    public bool IsEligible(int token) => _eligible[token];

    public (int First, int Count) Children(int node) => (_childStart[node], _childCount[node]);

    public byte ChildByte(int edge) => _childByte[edge];

    public int ChildNode(int edge) => _childNode[edge];

    public ReadOnlySpan<int> TokensAt(int node) => _tokens.AsSpan(_tokenStart[node], _tokenCount[node]);

    private static VocabularyTrie Build(SafeLlamaModelHandle model)
    {
        var count = model.Vocab.Count;
        var pieces = new byte[count][];
        var endOfGeneration = new List<int>();
        Span<byte> buffer = stackalloc byte[256];
        for (var i = 0; i < count; i++)
        {
            var length = (int)model.TokenToSpan((LLamaToken)i, buffer);
            pieces[i] = length <= buffer.Length ? buffer[..length].ToArray() : [];
            if (((LLamaToken)i).IsEndOfGeneration(model.Vocab))
            {
                endOfGeneration.Add(i);
            }
        }

        return new VocabularyTrie(pieces, [.. endOfGeneration]);
    }
}
