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
internal sealed class RequestSamplingPipeline : BaseSamplingPipeline
{
    private readonly SamplingOptions _options;
    private readonly int _penaltyWindow;
    private readonly GbnfGrammar? _grammar;
    private readonly int? _topLogprobs;
    private readonly uint _seed;
    private SafeLLamaSamplerChainHandle? _grammarChain;
    private Utf8Continuation _utf8;
    private byte[][]? _pieces;

    /// <param name="options">The request's sampling settings.</param>
    /// <param name="penaltyWindow">Tokens the presence/frequency penalties look back over.</param>
    /// <param name="grammar">Constrains every token to keep the output a prefix of the grammar's language; null for none.</param>
    /// <param name="topLogprobs">Null: no log-probabilities; otherwise how many alternatives to report per token.</param>
    public RequestSamplingPipeline(SamplingOptions options, int penaltyWindow, GbnfGrammar? grammar = null, int? topLogprobs = null)
    {
        _options = options;
        _penaltyWindow = penaltyWindow;
        _grammar = grammar;
        _topLogprobs = topLogprobs;
        _seed = options.Seed is { } seed ? unchecked((uint)seed ^ (uint)(seed >> 32)) : (uint)Random.Shared.Next();
    }

    /// <summary>The log-probabilities of the token the last <see cref="Sample"/> returned (when asked for).</summary>
    public (int Token, float Logprob, (int Token, float Logprob)[] Top)? Last { get; private set; }

    /// <inheritdoc />
    public override LLamaToken Sample(SafeLLamaContextHandle ctx, int index)
    {
        var token = _grammar is null ? base.Sample(ctx, index) : SampleConstrained(ctx, index);
        if (_topLogprobs is { } top)
        {
            var (logprob, alternatives) = Logprobs.Compute(ctx.GetLogitsIth(index), (int)token, top);
            Last = ((int)token, logprob, alternatives);
        }

        return token;
    }

    /// <inheritdoc />
    public override void Accept(LLamaToken token)
    {
        base.Accept(token);
        if (_grammarChain is not null)
        {
            _grammarChain.Accept(token);
            _utf8.TryAppend(_pieces![(int)token]);
        }
    }

    /// <summary>Every token's bytes, as the output text gets them (special tokens print nothing).</summary>
    private static byte[][] Pieces(SafeLlamaModelHandle model)
    {
        lock (PiecesByModel)
        {
            if (PiecesByModel.TryGetValue(model, out var known))
            {
                return known;
            }

            var count = model.Vocab.Count;
            var pieces = new byte[count][];
            Span<byte> buffer = stackalloc byte[256];
            for (var i = 0; i < count; i++)
            {
                var length = (int)model.TokenToSpan((LLamaToken)i, buffer);
                pieces[i] = length <= buffer.Length ? buffer[..length].ToArray() : [];
            }

            PiecesByModel.AddOrUpdate(model, pieces);
            return pieces;
        }
    }

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<SafeLlamaModelHandle, byte[][]> PiecesByModel = [];

    /// <inheritdoc />
    public override void Reset()
    {
        base.Reset();
        _grammarChain?.Reset();
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        _grammarChain?.Dispose();
        _grammarChain = null;
        base.Dispose();
    }

    /// <summary>
    /// Samples as if unconstrained and keeps the token when the grammar allows it (the common case, and cheap: the
    /// grammar checks one candidate); otherwise masks the whole vocabulary with the grammar first and samples again.
    /// </summary>
    private LLamaToken SampleConstrained(SafeLLamaContextHandle ctx, int index)
    {
        _grammarChain ??= CreateGrammarChain(ctx);
        var logits = ctx.GetLogitsIth(index);
        var buffer = ArrayPool<LLamaTokenData>.Shared.Rent(logits.Length);
        try
        {
            var memory = buffer.AsMemory(0, logits.Length);
            LLamaToken candidate;
            using (LLamaTokenDataArrayNative.Create(LLamaTokenDataArray.Create(logits, memory), out var all))
            {
                Apply(ctx, ref all);
                candidate = all.Data[checked((int)all.Selected)].ID;
            }

            var pieces = _pieces ??= Pieces(ctx.ModelHandle);
            var single = new LLamaTokenData[] { new(candidate, 1, 0) };
            using (LLamaTokenDataArrayNative.Create(new LLamaTokenDataArray(single, true), out var one))
            {
                _grammarChain.Apply(ref one);
                if (!float.IsNegativeInfinity(one.Data[0].Logit) && _utf8.Allows(pieces[(int)candidate]))
                {
                    Accept(candidate);
                    return candidate;
                }
            }

            using (LLamaTokenDataArrayNative.Create(LLamaTokenDataArray.Create(logits, memory), out var masked))
            {
                _grammarChain.Apply(ref masked);
                var data = masked.Data;
                for (var i = 0; i < data.Length; i++)
                {
                    if (!float.IsNegativeInfinity(data[i].Logit) && !_utf8.Allows(pieces[(int)data[i].ID]))
                    {
                        data[i].Logit = float.NegativeInfinity;
                    }
                }

                Apply(ctx, ref masked);
                var token = masked.Data[checked((int)masked.Selected)].ID;
                Accept(token);
                return token;
            }
        }
        finally
        {
            ArrayPool<LLamaTokenData>.Shared.Return(buffer);
        }
    }

    private SafeLLamaSamplerChainHandle CreateGrammarChain(SafeLLamaContextHandle context)
    {
        var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        chain.AddGrammar(context.ModelHandle.Vocab, _grammar!.Text, _grammar.Root);
        return chain;
    }

    protected override SafeLLamaSamplerChainHandle CreateChain(SafeLLamaContextHandle context)
    {
        var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());

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
