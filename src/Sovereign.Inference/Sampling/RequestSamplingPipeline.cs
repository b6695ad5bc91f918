using LLama.Native;
using LLama.Sampling;
using Sovereign.Inference.Engine;

namespace Sovereign.Inference.Sampling;

/// <summary>
/// A llama.cpp sampler chain built from one request's <see cref="SamplingOptions"/>, so each sequence in a batch
/// samples with its own settings and its own random state.
/// </summary>
internal sealed class RequestSamplingPipeline(SamplingOptions options, int penaltyWindow) : BaseSamplingPipeline
{
    private readonly uint _seed = options.Seed is { } seed ? unchecked((uint)seed ^ (uint)(seed >> 32)) : (uint)Random.Shared.Next();

    protected override SafeLLamaSamplerChainHandle CreateChain(SafeLLamaContextHandle context)
    {
        var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());

        if (options.PresencePenalty != 0f || options.FrequencyPenalty != 0f)
        {
            chain.AddPenalties(penaltyWindow, 1f, options.FrequencyPenalty, options.PresencePenalty);
        }

        if (options.IsGreedy)
        {
            chain.AddGreedySampler();
            return chain;
        }

        if (options.TopK > 0)
        {
            chain.AddTopK(options.TopK);
        }

        if (options.TopP < 1f)
        {
            chain.AddTopP(options.TopP, 1);
        }

        if (options.MinP > 0f)
        {
            chain.AddMinP(options.MinP, 1);
        }

        chain.AddTemperature(options.Temperature);
        chain.AddDistributionSampler(_seed);
        return chain;
    }
}
