// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Globalization;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Gguf;

namespace Sovereign.Inference.Registry;

/// <summary>Memory a loaded model needs: weights, KV cache, and compute/overhead buffers.</summary>
public sealed record ModelMemoryEstimate(long WeightsBytes, long KvCacheBytes, long OverheadBytes)
{
    /// <summary>All of it.</summary>
    public long TotalBytes => WeightsBytes + KvCacheBytes + OverheadBytes;
}

/// <summary>
/// Estimates, before loading, whether a model fits in memory: weights (the file's size; llama.cpp maps it in full)
/// + KV cache (2 × layers × tokens × kv_heads × head_dim × 2 bytes for f16 K and V) + overhead (64 MiB plus 10 %
/// for compute buffers, logits and the runtime, and 64 MiB for scored prompt positions). An estimate for a CPU host: GPU offload and quantized KV caches
/// are not modelled, and recurrent architectures (Mamba, RWKV) are over-counted.
/// </summary>
public static class ModelMemoryEstimator
{
    /// <summary>Fixed part of the overhead.</summary>
    public const long BaseOverheadBytes = 64L << 20;

    /// <summary>
    /// The most the logits of scored prompt positions (completions' <c>echo</c> with <c>logprobs</c>) add to a loaded
    /// model: the engine asks one decode step for no more rows than fit here, and llama.cpp's output buffer keeps the
    /// largest size it grew to. Part of the overhead, since any request may ask for it.
    /// </summary>
    public const long PromptScoringBytes = 64L << 20;

    private const int KvBytesPerElement = 2; // f16, llama.cpp's default cache type

    /// <summary>
    /// Estimate for <paramref name="parallel"/> sequences of <paramref name="contextLength"/> tokens each (0: the model's
    /// context, capped at <see cref="ModelOptions.DefaultMaxContextLength"/>, as the engine does).
    /// </summary>
    public static ModelMemoryEstimate Estimate(ModelEntry entry, int contextLength = 0, int parallel = 1)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return Estimate(entry.SizeBytes, entry.Shape, KvTokens(entry.ContextLength, contextLength, parallel));
    }

    /// <summary>Estimate for the model as <paramref name="options"/> would load it (context, parallel, KV cache size).</summary>
    public static ModelMemoryEstimate Estimate(ModelEntry entry, ModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentNullException.ThrowIfNull(options);
        var resolved = options.Resolve(entry.ContextLength is { } c ? (int)Math.Min(c, int.MaxValue) : 0);
        return Estimate(entry.SizeBytes, entry.Shape, resolved.KvCacheTokens);
    }

    /// <summary>Estimate from a GGUF header and the file's size.</summary>
    public static ModelMemoryEstimate Estimate(GgufReader reader, long fileSizeBytes, int contextLength = 0, int parallel = 1)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var facts = GgufModelFacts.From(reader);
        return Estimate(fileSizeBytes, facts.Shape, KvTokens(facts.ContextLength, contextLength, parallel));
    }

    /// <summary>KV-cache bytes one token costs across all layers.</summary>
    public static long KvBytesPerToken(ModelShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long layers = shape.Layers ?? 0;
        long width = shape.EmbeddingLength ?? 0;
        if (shape.HeadCount is not { } heads || heads <= 0)
        {
            // No head counts: assume no grouped-query attention, K and V each as wide as the model.
            return layers * 2 * width * KvBytesPerElement;
        }

        long kvHeads = shape.KvHeadCount is > 0 ? shape.KvHeadCount.Value : heads;
        long headDim = width / heads;
        long key = shape.KeyLength ?? headDim;
        long value = shape.ValueLength ?? headDim;
        return layers * kvHeads * (key + value) * KvBytesPerElement;
    }

    /// <summary>True when the estimate fits in <paramref name="availableBytes"/>.</summary>
    public static bool Fits(ModelMemoryEstimate estimate, long availableBytes)
    {
        ArgumentNullException.ThrowIfNull(estimate);
        return estimate.TotalBytes <= availableBytes;
    }

    /// <summary>True when the estimate fits in <see cref="AvailableMemoryBytes"/>.</summary>
    public static bool Fits(ModelMemoryEstimate estimate) => Fits(estimate, AvailableMemoryBytes());

    /// <summary>
    /// Memory a new model can use now: the least of /proc/meminfo's MemAvailable, the cgroup's remaining allowance
    /// (memory.max − memory.current, v2) and what the GC sees as available (it honours container limits).
    /// </summary>
    public static long AvailableMemoryBytes()
    {
        var available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (OperatingSystem.IsLinux())
        {
            if (ReadMeminfoKb("MemAvailable") is { } memAvailableKb)
            {
                available = Math.Min(available, memAvailableKb * 1024);
            }

            if (ReadNumber("/sys/fs/cgroup/memory.max") is { } max && ReadNumber("/sys/fs/cgroup/memory.current") is { } current)
            {
                available = Math.Min(available, Math.Max(0, max - current));
            }
        }

        return available;
    }

    internal static ModelMemoryEstimate Estimate(long weightsBytes, ModelShape shape, long kvTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(weightsBytes);
        var kv = checked(kvTokens * KvBytesPerToken(shape));
        var overhead = BaseOverheadBytes + PromptScoringBytes + ((weightsBytes + kv) / 10);
        return new ModelMemoryEstimate(weightsBytes, kv, overhead);
    }

    private static long KvTokens(long? modelContext, int contextLength, int parallel)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(contextLength);
        ArgumentOutOfRangeException.ThrowIfLessThan(parallel, 1);
        var context = contextLength > 0
            ? contextLength
            : Math.Min(modelContext is > 0 ? modelContext.Value : ModelOptions.DefaultMaxContextLength, ModelOptions.DefaultMaxContextLength);
        return context * parallel;
    }

    private static long? ReadMeminfoKb(string field)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
                {
                    var number = line[(field.Length + 1)..].Trim().Split(' ')[0];
                    return long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var kb) ? kb : null;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }

    private static long? ReadNumber(string path)
    {
        try
        {
            // memory.max holds "max" when unlimited: not a number, so no limit.
            return File.Exists(path) && long.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
