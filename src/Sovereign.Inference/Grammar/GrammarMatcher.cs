using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Sovereign.Inference.Grammar;

/// <summary>
/// A GBNF grammar as a recogniser of prefixes, with llama.cpp's semantics (a set of parse stacks whose tops are
/// characters; a character advances every stack whose top accepts it), built to answer "which tokens of the vocabulary
/// may come next" fast: stacks and stack sets are interned, so a state's transitions and its allowed-token mask are
/// computed once per grammar and reused by every request with the same grammar; the mask is found by walking a trie
/// of the vocabulary's bytes, where a byte no stack accepts prunes every token under it.
/// </summary>
/// <remarks>Thread-safe: one lock per grammar; sampling holds it only while it advances or masks.</remarks>
internal sealed class GrammarMatcher
{
    private const int MaxCachedGrammars = 16;
    private const long MaxMaskBytes = 8L << 20;
    private const int MaxStates = 50_000;
    private const int MaxExpansionDepth = 1000;

    private static readonly ConcurrentDictionary<(string Text, string Root), GrammarMatcher?> Cache = new();

    private readonly GbnfRules _rules;
    private readonly Lock _gate = new();
    private Dictionary<(int Position, Frame? Next), Frame> _frames = [];
    private Dictionary<StateKey, GrammarState> _states = [];
    private long _maskBytes;

    private GrammarMatcher(GbnfRules rules)
    {
        _rules = rules;
        var stacks = new List<Frame?>();
        ExpandAlternatives(rules.RuleStarts[rules.Root], null, stacks, 0);
        Start = Intern(stacks);
    }

    /// <summary>Before any character.</summary>
    public GrammarState Start { get; }

    /// <summary>The matcher for <paramref name="grammar"/> (shared per grammar text), or null when its GBNF uses syntax this parser does not know.</summary>
    public static GrammarMatcher? For(GbnfGrammar grammar)
    {
        ArgumentNullException.ThrowIfNull(grammar);
        if (Cache.TryGetValue((grammar.Text, grammar.Root), out var known))
        {
            return known;
        }

        GrammarMatcher? matcher;
        try
        {
            matcher = new GrammarMatcher(GbnfRules.Parse(grammar.Text, grammar.Root));
        }
        catch (Exception ex) when (ex is FormatException or OverflowException)
        {
            matcher = null;
        }

        if (Cache.Count >= MaxCachedGrammars)
        {
            Cache.Clear();
        }

        return Cache.GetOrAdd((grammar.Text, grammar.Root), matcher);
    }

    /// <summary>
    /// The state after <paramref name="bytes"/> from <paramref name="from"/>, or null when the grammar or strict UTF-8
    /// rejects them. Mirrors llama.cpp's accept: whole code points advance the stacks; an unfinished one is carried.
    /// </summary>
    public (GrammarState State, Utf8Partial Partial)? Advance(GrammarState from, Utf8Partial partial, ReadOnlySpan<byte> bytes)
    {
        lock (_gate)
        {
            var state = from;
            foreach (var b in bytes)
            {
                if (!partial.TryStep(b, out var codePoint))
                {
                    return null;
                }

                if (codePoint >= 0)
                {
                    state = Transition(state, codePoint);
                    if (state.IsDead)
                    {
                        return null;
                    }
                }
            }

            return (state, partial);
        }
    }

    /// <summary>
    /// Sets in <paramref name="allowed"/> (one bit per token id) every token that may come next: its bytes keep the
    /// output strictly valid UTF-8 and llama.cpp's grammar would accept them (an unfinished code point at the end
    /// accepted as llama.cpp's partial match does); end-of-generation tokens when a parse is complete. Tokens whose
    /// text is empty or holds a NUL byte are never allowed.
    /// </summary>
    public void AllowedTokens(GrammarState state, Utf8Partial partial, VocabularyTrie vocabulary, ulong[] allowed)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        ArgumentNullException.ThrowIfNull(allowed);
        lock (_gate)
        {
            var cacheable = partial.IsEmpty;
            if (cacheable && state.Mask is { } cached && ReferenceEquals(state.MaskVocabulary, vocabulary))
            {
                cached.CopyTo(allowed, 0);
                return;
            }

            Array.Clear(allowed);
            Walk(vocabulary, vocabulary.Root, state, partial, allowed);
            if (state.CanEnd)
            {
                foreach (var token in vocabulary.EndOfGeneration)
                {
                    allowed[token >> 6] |= 1UL << (token & 63);
                }
            }

            if (cacheable && (state.Mask is not null || _maskBytes < MaxMaskBytes))
            {
                _maskBytes += state.Mask is null ? allowed.Length * sizeof(ulong) : 0;
                state.Mask = (ulong[])allowed.Clone();
                state.MaskVocabulary = vocabulary;
            }
        }
    }

    private void Walk(VocabularyTrie vocabulary, int node, GrammarState state, Utf8Partial partial, ulong[] allowed)
    {
        var (first, count) = vocabulary.Children(node);
        for (var i = first; i < first + count; i++)
        {
            var child = vocabulary.ChildNode(i);
            var next = partial;
            if (!next.TryStep(vocabulary.ChildByte(i), out var codePoint))
            {
                continue;
            }

            var nextState = state;
            if (codePoint >= 0)
            {
                nextState = Transition(state, codePoint);
                if (nextState.IsDead)
                {
                    continue;
                }
            }
            else if (!MayContinue(state, next))
            {
                continue;
            }

            var tokens = vocabulary.TokensAt(child);
            if (!tokens.IsEmpty && (next.IsEmpty || MatchesPartial(nextState, next)))
            {
                foreach (var token in tokens)
                {
                    allowed[token >> 6] |= 1UL << (token & 63);
                }
            }

            Walk(vocabulary, child, nextState, next, allowed);
        }
    }

    private bool MatchesPartial(GrammarState state, Utf8Partial partial)
    {
        var (low, high) = partial.Span;
        foreach (var stack in state.Stacks)
        {
            if (stack is not null && _rules.Classes[_rules.Values[stack.Position]].MatchesPartial(low, high))
            {
                return true;
            }
        }

        return false;
    }

    private bool MayContinue(GrammarState state, Utf8Partial partial)
    {
        var (low, high) = partial.Span;
        foreach (var stack in state.Stacks)
        {
            if (stack is not null && _rules.Classes[_rules.Values[stack.Position]].MayMatchSome(low, high))
            {
                return true;
            }
        }

        return false;
    }

    private GrammarState Transition(GrammarState state, int codePoint)
    {
        if (state.Transitions.TryGetValue(codePoint, out var known))
        {
            return known;
        }

        var next = new List<Frame?>();
        foreach (var stack in state.Stacks)
        {
            if (stack is null || !_rules.Classes[_rules.Values[stack.Position]].Matches(codePoint))
            {
                continue;
            }

            var rest = stack.Next;
            if (!_rules.IsEndOfSequence(stack.Position + 1))
            {
                rest = Frame.Get(this, stack.Position + 1, rest);
            }

            ExpandInto(rest, next);
        }

        var result = Intern(next);
        state.Transitions[codePoint] = result;
        return result;
    }

    /// <summary>llama.cpp's <c>llama_grammar_advance_stack</c>: expands rule references until every top is a character.</summary>
    private void ExpandInto(Frame? stack, List<Frame?> output, int depth = 0)
    {
        // Left recursion would never reach a character; llama.cpp's parser refuses it, and so does this (a bound, not a crash).
        if (depth > MaxExpansionDepth)
        {
            throw new FormatException("GBNF: the grammar expands without consuming a character (left recursion).");
        }

        if (stack is null || _rules.Kinds[stack.Position] == ElementKind.Char)
        {
            if (!output.Contains(stack))
            {
                output.Add(stack);
            }

            return;
        }

        var position = stack.Position;
        var rest = stack.Next;
        if (!_rules.IsEndOfSequence(position + 1))
        {
            rest = Frame.Get(this, position + 1, rest);
        }

        ExpandAlternatives(_rules.RuleStarts[_rules.Values[position]], rest, output, depth);
    }

    /// <summary>Each alternative of the rule starting at <paramref name="sub"/>, on top of <paramref name="rest"/>.</summary>
    private void ExpandAlternatives(int sub, Frame? rest, List<Frame?> output, int depth)
    {
        while (true)
        {
            ExpandInto(_rules.IsEndOfSequence(sub) ? rest : Frame.Get(this, sub, rest), output, depth + 1);
            while (!_rules.IsEndOfSequence(sub))
            {
                sub++;
            }

            if (_rules.Kinds[sub] != ElementKind.Alt)
            {
                break;
            }

            sub++;
        }
    }

    private GrammarState Intern(List<Frame?> stacks)
    {
        stacks.Sort(static (a, b) => (a?.Id ?? -1).CompareTo(b?.Id ?? -1));
        var key = new StateKey([.. stacks]);
        if (_states.TryGetValue(key, out var known))
        {
            return known;
        }

        if (_states.Count >= MaxStates)
        {
            // A pathological grammar: stop sharing rather than grow without bound (states already handed out stay valid).
            _states = [];
            _frames = [];
        }

        var state = new GrammarState(key.Stacks);
        _states[key] = state;
        return state;
    }

    /// <summary>One element of a parse stack; interned, so equal stacks are the same object.</summary>
    internal sealed class Frame
    {
        private static int _nextId;

        private Frame(int position, Frame? next)
        {
            Position = position;
            Next = next;
            Id = Interlocked.Increment(ref _nextId);
        }

        public int Position { get; }

        public Frame? Next { get; }

        public int Id { get; }

        public static Frame Get(GrammarMatcher matcher, int position, Frame? next)
        {
            if (!matcher._frames.TryGetValue((position, next), out var frame))
            {
                frame = new Frame(position, next);
                matcher._frames[(position, next)] = frame;
            }

            return frame;
        }
    }

    private readonly struct StateKey(Frame?[] stacks) : IEquatable<StateKey>
    {
        public Frame?[] Stacks { get; } = stacks;

        public bool Equals(StateKey other) => Stacks.AsSpan().SequenceEqual(other.Stacks);

        public override bool Equals(object? obj) => obj is StateKey other && Equals(other);

        public override int GetHashCode()
        {
            var hash = new HashCode();
            foreach (var stack in Stacks)
            {
                hash.Add(RuntimeHelpers.GetHashCode(stack));
            }

            return hash.ToHashCode();
        }
    }
}

/// <summary>A set of parse stacks (a null stack is a finished parse), with its outgoing transitions and cached mask.</summary>
internal sealed class GrammarState(GrammarMatcher.Frame?[] stacks)
{
    public GrammarMatcher.Frame?[] Stacks { get; } = stacks;

    /// <summary>No stack is left: the text so far is not a prefix of the language.</summary>
    public bool IsDead => Stacks.Length == 0;

    /// <summary>A parse is complete, so end-of-generation is allowed.</summary>
    public bool CanEnd => Array.IndexOf(Stacks, null) >= 0;

    public Dictionary<int, GrammarState> Transitions { get; } = [];

    public ulong[]? Mask { get; set; }

    public VocabularyTrie? MaskVocabulary { get; set; }
}
