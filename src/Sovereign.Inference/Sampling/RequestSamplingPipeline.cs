using System.Buffers;
using LLama.Native;
using LLama.Sampling;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Grammar;

namespace Sovereign.Inference.Sampling;

/// <summary>
/// A llama.cpp sampler chain built from one request's <see cref="SamplingOptions"/>, so each sequence in a batch
/// samples with its own settings and its own random state; optionally constrained by a GBNF grammar, and optionally
/// reporting each sampled token's log-probability.
/// </summary>
/// <remarks>
/// Not thread-safe: one thread at a time (the batcher's decode loop, or for a grammar its <see cref="ConstrainedSampler"/>).
/// A grammar-constrained pipeline samples from a copy of the logits (<see cref="SampleLogits"/>) and never touches the
/// context, so it can run while the next decode overwrites the context's logits.
/// </remarks>
internal sealed class RequestSamplingPipeline : BaseSamplingPipeline
{
    private readonly SamplingOptions _options;
    private readonly int _penaltyWindow;
    private readonly GbnfGrammar? _grammar;
    private readonly LazyGrammar? _lazy;
    private readonly TriggerWatch? _watch;
    private readonly int? _topLogprobs;
    private readonly uint _seed;

    // Greedy with nothing that changes or remembers the logits: the argmax is read from the context's logits directly
    // (the chain would be a greedy sampler alone, whose accept does nothing).
    private readonly bool _plainGreedy;
    // The chain is built here, from the model alone, rather than by the base class from a context: a constrained
    // pipeline is used off the decode thread and must not need the context.
    private SafeLLamaSamplerChainHandle? _chain;
    private SafeLLamaSamplerChainHandle? _grammarChain;
    private readonly LLamaTokenData[] _single = new LLamaTokenData[1];
    private Utf8Continuation _utf8;
    private VocabularyTrie? _vocabulary;
    private GrammarMatcher? _matcher;
    private GrammarState? _matcherState;
    private Utf8Partial _matcherPartial;
    private ulong[]? _allowed;

    // A lazy grammar: whether its trigger has shown (the grammar then holds every token until its sentence is complete),
    // the output from the trigger on that the grammar must take in before its first token, and whether the grammar's
    // state must start over before that (a Hermes call closed and another opens).
    private bool _triggered;
    private byte[]? _opened;
    private bool _restartGrammar;

    /// <param name="options">The request's sampling settings.</param>
    /// <param name="penaltyWindow">Tokens the presence/frequency penalties look back over.</param>
    /// <param name="grammar">Constrains every token to keep the output a prefix of the grammar's language; null for none.</param>
    /// <param name="topLogprobs">Null: no log-probabilities; otherwise how many alternatives to report per token.</param>
    /// <param name="lazy">
    /// A grammar that holds the output only from one of its triggers on (ignored when <paramref name="grammar"/> is
    /// given): until then tokens are sampled exactly as without a grammar, on the caller's thread.
    /// </param>
    public RequestSamplingPipeline(SamplingOptions options, int penaltyWindow, GbnfGrammar? grammar = null, int? topLogprobs = null, LazyGrammar? lazy = null)
    {
        _options = options;
        _penaltyWindow = penaltyWindow;
        _lazy = grammar is null ? lazy : null;
        _grammar = grammar ?? _lazy?.Grammar;
        _watch = _lazy is null ? null : new TriggerWatch(_lazy.Triggers, _lazy.AtStartOnly);
        _topLogprobs = topLogprobs;
        _seed = options.Seed is { } seed ? unchecked((uint)seed ^ (uint)(seed >> 32)) : (uint)Random.Shared.Next();

        // A lazy grammar's free stretches sample as a request without a grammar does (the same token for the same seed).
        _plainGreedy = (grammar is null) && IsGreedyAlone(options);
    }

    /// <summary>The log-probabilities of the token the last <see cref="Sample"/> returned (when asked for).</summary>
    public (int Token, float Logprob, (int Token, float Logprob)[] Top)? Last { get; private set; }

    /// <summary>
    /// Whether a grammar constrains this request's next token (its sampling may then be slow: see
    /// <see cref="ConstrainedSampler"/>). A lazy grammar constrains only from its trigger on, so this changes as the
    /// output goes; it changes only in <see cref="Sample"/>/<see cref="SampleLogits"/>, by the thread that owns the pipeline.
    /// </summary>
    public bool IsConstrained => _grammar is not null && (_lazy is null || _triggered);

    /// <inheritdoc />
    public override LLamaToken Sample(SafeLLamaContextHandle ctx, int index)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        if (IsConstrained)
        {
            return SampleLogits(ctx.GetLogitsIth(index), ctx.ModelHandle);
        }

        var token = _plainGreedy ? (LLamaToken)GreedyArgMax.Select(ctx.GetLogitsIth(index)) : Chain(ctx.ModelHandle).Sample(ctx, index);
        RecordLogprobs(ctx.GetLogitsIth(index), token);
        Watch(token, ctx.ModelHandle);
        return token;
    }

    /// <summary>
    /// Samples (and accepts) the next token from <paramref name="logits"/>, a copy of one position's logits, without the
    /// context: what <see cref="Sample"/> does from the context's own row.
    /// </summary>
    public LLamaToken SampleLogits(ReadOnlySpan<float> logits, SafeLlamaModelHandle model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var constrained = IsConstrained;
        var token = constrained ? SampleConstrained(logits, model)
            : _plainGreedy ? (LLamaToken)GreedyArgMax.Select(logits)
            : SampleUnmasked(logits, model);
        RecordLogprobs(logits, token);
        if (!constrained)
        {
            Watch(token, model);
        }

        return token;
    }

    /// <summary>
    /// A free token of a lazy grammar: its bytes (as the output prints them) go to the trigger watch; a trigger that
    /// shows makes the next token constrained. String matching only: the grammar itself is not touched here, so the
    /// decode loop, which samples free tokens, does no grammar work.
    /// </summary>
    private void Watch(LLamaToken token, SafeLlamaModelHandle model)
    {
        if (_watch is null || token.IsEndOfGeneration(model.Vocab))
        {
            return;
        }

        Span<byte> buffer = stackalloc byte[256];
        var length = (int)model.TokenToSpan(token, buffer);
        if (length > buffer.Length)
        {
            var large = new byte[length];
            model.TokenToSpan(token, large);
            Opened(_watch.Add(large));
        }
        else
        {
            Opened(_watch.Add(buffer[..length]));
        }
    }

    private void Opened(byte[]? opened)
    {
        if (opened is not null)
        {
            _triggered = true;
            _opened = opened;
        }
    }

    private void RecordLogprobs(ReadOnlySpan<float> logits, LLamaToken token)
    {
        if (_topLogprobs is { } top)
        {
            var (logprob, alternatives) = _options.LogitBias.Count == 0
                ? Logprobs.Compute(logits, (int)token, top)
                : ComputeBiasedLogprobs(logits, (int)token, top);
            Last = ((int)token, logprob, alternatives);
        }
    }

    /// <summary>llama.cpp's <c>llama_sampler_sample</c> on a copy of the logits: the chain over every token, then accept.</summary>
    private LLamaToken SampleUnmasked(ReadOnlySpan<float> logits, SafeLlamaModelHandle model)
    {
        var buffer = ArrayPool<LLamaTokenData>.Shared.Rent(logits.Length);
        try
        {
            LLamaToken token;
            using (LLamaTokenDataArrayNative.Create(LLamaTokenDataArray.Create(logits, buffer.AsMemory(0, logits.Length)), out var all))
            {
                Chain(model).Apply(ref all);
                token = all.Data[checked((int)all.Selected)].ID;
            }

            _chain!.Accept(token);
            return token;
        }
        finally
        {
            ArrayPool<LLamaTokenData>.Shared.Return(buffer);
        }
    }

    private SafeLLamaSamplerChainHandle Chain(SafeLlamaModelHandle model) => _chain ??= BuildChain(model);

    /// <summary>Log-probabilities of the distribution the token was drawn from: the logits with the request's bias added.</summary>
    private (float Logprob, (int Token, float Logprob)[] Top) ComputeBiasedLogprobs(ReadOnlySpan<float> logits, int token, int top)
    {
        var biased = ArrayPool<float>.Shared.Rent(logits.Length);
        try
        {
            logits.CopyTo(biased);
            foreach (var (id, bias) in _options.LogitBias)
            {
                if ((uint)id < (uint)logits.Length)
                {
                    biased[id] += bias;
                }
            }

            return Logprobs.Compute(biased.AsSpan(0, logits.Length), token, top);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(biased);
        }
    }

    /// <inheritdoc />
    public override void Accept(LLamaToken token)
    {
        _chain?.Accept(token);
        AcceptGrammar(token);
    }

    /// <inheritdoc />
    public override void Apply(SafeLLamaContextHandle ctx, ref LLamaTokenDataArrayNative data)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        Chain(ctx.ModelHandle).Apply(ref data);
    }

    /// <summary>Advances the grammar (llama.cpp's and the matcher) and the UTF-8 state past <paramref name="token"/>.</summary>
    private void AcceptGrammar(LLamaToken token)
    {
        if (_grammarChain is not null)
        {
            _grammarChain.Accept(token);
            var piece = _vocabulary!.Pieces[(int)token];
            _utf8.TryAppend(piece);
            if (_matcher is not null && _matcherState is not null)
            {
                try
                {
                    if (_matcher.Advance(_matcherState, _matcherPartial, piece) is { } next)
                    {
                        (_matcherState, _matcherPartial) = next;
                    }
                    else
                    {
                        Disagreed();
                    }
                }
                catch (FormatException)
                {
                    // Left recursion met only now; llama.cpp's grammar carries on alone.
                    Disagreed();
                }
            }
        }
    }

    /// <summary>
    /// Times the managed grammar matcher disagreed with llama.cpp's grammar and sampling fell back to llama.cpp's full
    /// pass (process-wide; tests assert it stays 0).
    /// </summary>
    internal static long MatcherFallbacks => Interlocked.Read(ref _matcherFallbacks);

    private static long _matcherFallbacks;

    /// <inheritdoc />
    public override void Reset()
    {
        _chain?.Reset();
        _grammarChain?.Reset();
        _utf8 = default;
        _matcherState = _matcher?.Start;
        _matcherPartial = default;
        _triggered = false;
        _opened = null;
        _restartGrammar = false;
        _watch?.Restart();
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        _grammarChain?.Dispose();
        _grammarChain = null;
        _chain?.Dispose();
        _chain = null;
        base.Dispose();
    }

    /// <summary>
    /// Samples as if unconstrained (the same native call as unconstrained decoding, unless penalties need the draw kept
    /// apart from their history) and keeps the token when the grammar allows it (the common case, and cheap: the
    /// grammar checks one candidate); otherwise samples again from the allowed tokens only.
    /// </summary>
    /// <remarks>
    /// Why this is sampling from the constrained distribution: with plain temperature sampling the first draw is x
    /// with probability p(x); it is kept when x is allowed (set A), and otherwise a second draw comes from p restricted
    /// to A and renormalised. So P(x) = p(x) + (1 - p(A)) p(x) / p(A) = p(x) / p(A) for x in A: exactly the masked
    /// distribution. The second draw is from the masked distribution, not a retry from p (also exact, but it could
    /// take ~|V|/|A| tries). With top-k/top-p/min-p the first draw truncates the unmasked distribution: that is
    /// llama.cpp's own rule (common_sampler: try the chosen token, then filter fully), kept as it was. Greedy is exact
    /// either way: the argmax, if allowed, is the allowed argmax. Sampling from the allowed tokens alone equals
    /// sampling the full array with the others at -inf (they have zero probability and every stage keeps them last).
    /// The allowed set comes from <see cref="GrammarMatcher"/> (a token trie walked against interned grammar states,
    /// masks cached per state); llama.cpp's grammar still checks every chosen token, and if the two ever disagree
    /// this request falls back to llama.cpp's full-vocabulary pass.
    /// </remarks>
    private LLamaToken SampleConstrained(ReadOnlySpan<float> logits, SafeLlamaModelHandle model)
    {
        if (_grammarChain is null)
        {
            _grammarChain = CreateGrammarChain(model);
            _vocabulary = VocabularyTrie.For(model);
            _matcher = GrammarMatcher.For(_grammar!);
            _matcherState = _matcher?.Start;
        }

        if (_opened is { } opened)
        {
            _opened = null;
            if (!TakeOpening(opened))
            {
                // The text around the trigger is not how this grammar's sentences begin (a model that writes its own
                // spacing after the marker within the marker's token): this part stays free, as before lazy grammars.
                _triggered = false;
                _restartGrammar = true;
                _watch!.Restart();
                var free = _plainGreedy ? (LLamaToken)GreedyArgMax.Select(logits) : SampleUnmasked(logits, model);
                Watch(free, model);
                return free;
            }
        }

        var token = SampleAllowed(logits, model);
        if (_lazy is { Rearm: true } && _matcherState is { } state && IsComplete(state))
        {
            // The sentence (a Hermes call) is closed: free again, watching for the next opening.
            _triggered = false;
            _restartGrammar = true;
            _watch!.Restart();
        }

        return token;
    }

    /// <summary>Whether the grammar's sentence is complete and nothing may follow it but the end.</summary>
    private static bool IsComplete(GrammarState state) => state.Stacks.Length > 0 && Array.TrueForAll(state.Stacks, s => s is null);

    /// <summary>
    /// Advances a lazy grammar past the output its trigger opened (from the trigger's first byte), as tokens of the
    /// vocabulary whose bytes spell it (longest first), so that llama.cpp's grammar and the matcher take it exactly as
    /// they take sampled tokens. False when the grammar does not accept it.
    /// </summary>
    private bool TakeOpening(byte[] opened)
    {
        RestartGrammarIfDue();

        var vocabulary = _vocabulary!;
        var at = 0;
        while (at < opened.Length)
        {
            var (token, length) = LongestToken(vocabulary, opened.AsSpan(at));
            if (length == 0 || !GrammarAllows(token))
            {
                // The grammar is left part-way: start it over before it is used again.
                _restartGrammar = true;
                return false;
            }

            AcceptGrammar(token);
            at += length;
        }

        return true;
    }

    /// <summary>The eligible token whose bytes are the longest prefix of <paramref name="text"/> (length 0: none).</summary>
    private static (LLamaToken Token, int Length) LongestToken(VocabularyTrie vocabulary, ReadOnlySpan<byte> text)
    {
        var node = vocabulary.Root;
        (LLamaToken Token, int Length) best = (default, 0);
        for (var i = 0; i < text.Length; i++)
        {
            var (first, count) = vocabulary.Children(node);
            var next = -1;
            for (var edge = first; edge < first + count; edge++)
            {
                if (vocabulary.ChildByte(edge) == text[i])
                {
                    next = vocabulary.ChildNode(edge);
                    break;
                }
            }

            if (next < 0)
            {
                break;
            }

            node = next;
            var tokens = vocabulary.TokensAt(node);
            if (!tokens.IsEmpty)
            {
                best = ((LLamaToken)tokens[0], i + 1);
            }
        }

        return best;
    }

    /// <summary>A grammar left closed or part-way (a Hermes call done, an opening it refused) starts over before its next use.</summary>
    private void RestartGrammarIfDue()
    {
        if (!_restartGrammar)
        {
            return;
        }

        _restartGrammar = false;
        _grammarChain!.Reset();
        _utf8 = default;
        _matcherState = _matcher?.Start;
        _matcherPartial = default;
    }

    /// <summary>The constrained draw: as if unconstrained first, then from the allowed tokens alone (see <see cref="SampleConstrained"/>).</summary>
    private LLamaToken SampleAllowed(ReadOnlySpan<float> logits, SafeLlamaModelHandle model)
    {
        RestartGrammarIfDue();

        var vocabulary = _vocabulary!;
        var penalised = _options.PresencePenalty != 0f || _options.FrequencyPenalty != 0f;
        LLamaToken candidate;
        if (!penalised)
        {
            // llama.cpp's own sample (as unconstrained decoding does); it accepts the token into the chain, which is
            // a no-op for every stage but the penalties.
            candidate = SampleUnmasked(logits, model);
            if (GrammarAllows(candidate))
            {
                AcceptGrammar(candidate);
                return candidate;
            }
        }

        var buffer = ArrayPool<LLamaTokenData>.Shared.Rent(logits.Length);
        try
        {
            var memory = buffer.AsMemory(0, logits.Length);
            if (penalised)
            {
                // The penalties remember accepted tokens, so the draw must not accept one the grammar then rejects.
                using (LLamaTokenDataArrayNative.Create(LLamaTokenDataArray.Create(logits, memory), out var all))
                {
                    Chain(model).Apply(ref all);
                    candidate = all.Data[checked((int)all.Selected)].ID;
                }

                if (GrammarAllows(candidate))
                {
                    Accept(candidate);
                    return candidate;
                }
            }

            if (_matcher is not null && _matcherState is not null && SampleMasked(model, logits, buffer) is { } masked)
            {
                Accept(masked);
                return masked;
            }

            using (LLamaTokenDataArrayNative.Create(LLamaTokenDataArray.Create(logits, memory), out var full))
            {
                _grammarChain!.Apply(ref full);
                var data = full.Data;
                for (var i = 0; i < data.Length; i++)
                {
                    var id = (int)data[i].ID;
                    if (!float.IsNegativeInfinity(data[i].Logit) && !(vocabulary.IsEligible(id) && _utf8.Allows(vocabulary.Pieces[id])))
                    {
                        data[i].Logit = float.NegativeInfinity;
                    }
                }

                Chain(model).Apply(ref full);
                var token = full.Data[checked((int)full.Selected)].ID;
                Accept(token);
                return token;
            }
        }
        finally
        {
            ArrayPool<LLamaTokenData>.Shared.Return(buffer);
        }
    }

    /// <summary>Samples from the allowed tokens alone; null when the matcher and llama.cpp's grammar disagree.</summary>
    private LLamaToken? SampleMasked(SafeLlamaModelHandle model, ReadOnlySpan<float> logits, LLamaTokenData[] buffer)
    {
        var allowed = _allowed ??= new ulong[(logits.Length + 63) / 64];
        try
        {
            _matcher!.AllowedTokens(_matcherState!, _matcherPartial, _vocabulary!, allowed);
        }
        catch (FormatException)
        {
            Disagreed();
            return null;
        }

        var count = 0;
        for (var word = 0; word < allowed.Length; word++)
        {
            for (var bits = allowed[word]; bits != 0; bits &= bits - 1)
            {
                var token = (word << 6) + System.Numerics.BitOperations.TrailingZeroCount(bits);
                if (token < logits.Length)
                {
                    buffer[count++] = new LLamaTokenData((LLamaToken)token, logits[token], 0);
                }
            }
        }

        if (count == 0)
        {
            Disagreed();
            return null;
        }

        LLamaToken chosen;
        using (LLamaTokenDataArrayNative.Create(new LLamaTokenDataArray(buffer.AsMemory(0, count), false), out var subset))
        {
            Chain(model).Apply(ref subset);
            chosen = subset.Data[checked((int)subset.Selected)].ID;
        }

        if (GrammarAllows(chosen))
        {
            return chosen;
        }

        Disagreed();
        return null;
    }

    /// <summary>llama.cpp's grammar accepts <paramref name="token"/> here, it prints something, and its bytes keep the output valid UTF-8.</summary>
    private bool GrammarAllows(LLamaToken token)
    {
        if (!_vocabulary!.IsEligible((int)token) || !_utf8.Allows(_vocabulary.Pieces[(int)token]))
        {
            return false;
        }

        _single[0] = new LLamaTokenData(token, 1, 0);
        using (LLamaTokenDataArrayNative.Create(new LLamaTokenDataArray(_single, true), out var one))
        {
            _grammarChain!.Apply(ref one);
            return !float.IsNegativeInfinity(one.Data[0].Logit);
        }
    }

    private void Disagreed()
    {
        Interlocked.Increment(ref _matcherFallbacks);
        _matcher = null;
        _matcherState = null;
    }

    private SafeLLamaSamplerChainHandle CreateGrammarChain(SafeLlamaModelHandle model)
    {
        var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        chain.AddGrammar(model.Vocab, _grammar!.Text, _grammar.Root);
        return chain;
    }

    /// <summary>
    /// Whether <see cref="CreateChain"/> builds a greedy sampler and nothing before it (no bias, no penalties): then
    /// the argmax of the raw logits is the chain's pick. A stage added to the chain must be named here too.
    /// </summary>
    private static bool IsGreedyAlone(SamplingOptions options) =>
        options.IsGreedy && options.LogitBias.Count == 0 && options.PresencePenalty == 0f && options.FrequencyPenalty == 0f;

    /// <inheritdoc />
    protected override SafeLLamaSamplerChainHandle CreateChain(SafeLLamaContextHandle context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return BuildChain(context.ModelHandle);
    }

    private SafeLLamaSamplerChainHandle BuildChain(SafeLlamaModelHandle model)
    {
        var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());

        // First, as llama.cpp's own samplers order it: the bias shapes what every later stage sees, greedy included.
        if (_options.LogitBias.Count > 0)
        {
            var biases = new LLamaLogitBias[_options.LogitBias.Count];
            var i = 0;
            foreach (var (token, bias) in _options.LogitBias)
            {
                biases[i++] = new LLamaLogitBias { Token = (LLamaToken)token, Bias = bias };
            }

            chain.AddLogitBias(model.Vocab.Count, biases);
        }

        if (_options.PresencePenalty != 0f || _options.FrequencyPenalty != 0f)
        {
            chain.AddPenalties(_penaltyWindow, 1f, _options.FrequencyPenalty, _options.PresencePenalty);
        }

        if (_options.IsGreedy)
        {
            chain.AddGreedySampler();
            return chain;
        }

        if (_options.TopK > 0)
        {
            chain.AddTopK(_options.TopK);
        }

        if (_options.TopP < 1f)
        {
            chain.AddTopP(_options.TopP, 1);
        }

        if (_options.MinP > 0f)
        {
            chain.AddMinP(_options.MinP, 1);
        }

        chain.AddTemperature(_options.Temperature);
        chain.AddDistributionSampler(_seed);
        return chain;
    }
}
