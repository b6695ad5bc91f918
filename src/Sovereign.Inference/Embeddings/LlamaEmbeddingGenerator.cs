using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;
using Microsoft.Extensions.AI;

namespace Sovereign.Inference.Embeddings;

/// <summary>How a GGUF model is run in embedding mode.</summary>
public sealed class LlamaEmbeddingOptions
{
    /// <summary>Default most tokens per input.</summary>
    public const int DefaultContextSize = 512;

    /// <summary>
    /// Most tokens (BOS included) one input may have; longer inputs throw <see cref="InputTooLongException"/>.
    /// Capped at the model's training context. Batch and micro-batch sizes follow it, so an input is one decode.
    /// </summary>
    public int ContextSize { get; init; } = DefaultContextSize;

    /// <summary>CPU threads for llama.cpp. Small machines are often steadier with fewer: measure.</summary>
    public int Threads { get; init; } = Math.Max(1, Environment.ProcessorCount / 2);
}

/// <summary>
/// Mean-pooled, L2-normalized embeddings from a GGUF model through LLamaSharp's <see cref="LLamaEmbedder"/>.
/// </summary>
/// <remarks>
/// LLamaSharp 0.30.0's own <see cref="IEmbeddingGenerator{TInput,TEmbedding}"/> implementation on
/// <see cref="LLamaEmbedder"/> always throws <see cref="ObjectDisposedException"/>, so this class calls
/// <see cref="LLamaEmbedder.GetEmbeddings"/> instead and adds usage and metadata. One embedder is kept and calls
/// are serialized: <c>GetEmbeddings</c> swaps the embedder's native context, which is not thread-safe.
/// (It still creates and frees a llama.cpp context on every call; that cost is LLamaSharp's.)
/// </remarks>
public sealed class LlamaEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>, ITokenEmbeddingGenerator
{
    private readonly LLamaWeights _weights;
    private readonly bool _ownsWeights;
    private readonly LLamaEmbedder _embedder;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly EmbeddingGeneratorMetadata _metadata;
    private readonly ModelParams _contextParams;
    private volatile bool _disposed;

    /// <summary>Embeds with already-loaded weights, which may be shared; they stay the caller's to dispose.</summary>
    /// <param name="weights">Weights loaded with <c>GpuLayerCount</c> chosen by the caller.</param>
    /// <param name="modelId">The id clients send and the metadata reports.</param>
    /// <param name="options">Context size and threads; null for defaults.</param>
    public LlamaEmbeddingGenerator(LLamaWeights weights, string modelId, LlamaEmbeddingOptions? options = null)
        : this(weights, modelId, options ?? new LlamaEmbeddingOptions(), ownsWeights: false)
    {
    }

    private LlamaEmbeddingGenerator(LLamaWeights weights, string modelId, LlamaEmbeddingOptions options, bool ownsWeights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentException.ThrowIfNullOrWhiteSpace(modelId);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ContextSize, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Threads, 1, nameof(options));

        // Positions past the training context give meaningless vectors; never configure more.
        var contextSize = weights.ContextSize > 0 ? Math.Min(options.ContextSize, weights.ContextSize) : options.ContextSize;

        // Only the context half of ModelParams is read here: the weights are already loaded, so no path is needed.
        var contextParams = new ModelParams(string.Empty)
        {
            Embeddings = true,
            PoolingType = LLamaPoolingType.Mean,
            GpuLayerCount = 0,
            ContextSize = (uint)contextSize,

            // LLamaEmbedder requires BatchSize == UBatchSize; both at the context size keep an input in one decode.
            BatchSize = (uint)contextSize,
            UBatchSize = (uint)contextSize,
            Threads = options.Threads,
            BatchThreads = options.Threads,
        };

        _embedder = new LLamaEmbedder(weights, contextParams);
        _contextParams = contextParams;
        VocabularySize = weights.Vocab.Count;
        _weights = weights;
        _ownsWeights = ownsWeights;
        ModelId = modelId;
        MaxInputTokens = contextSize;
        Dimensions = _embedder.EmbeddingSize;
        _metadata = new EmbeddingGeneratorMetadata(
            EmbeddingInputs.ProviderName, providerUri: null, defaultModelId: modelId, defaultModelDimensions: Dimensions);
    }

    /// <summary>The id clients send.</summary>
    public string ModelId { get; }

    /// <summary>Length of every vector (the model's <c>n_embd</c>).</summary>
    public int Dimensions { get; }

    /// <summary>Most tokens, BOS included, one input may have.</summary>
    public int MaxInputTokens { get; }

    /// <inheritdoc />
    public int VocabularySize { get; }

    /// <summary>Loads <paramref name="modelPath"/> on the CPU for this generator alone; disposing it frees the weights.</summary>
    public static LlamaEmbeddingGenerator Load(string modelPath, string modelId, LlamaEmbeddingOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelPath);
        var weights = LLamaWeights.LoadFromFile(new ModelParams(modelPath) { GpuLayerCount = 0 });
        try
        {
            return new LlamaEmbeddingGenerator(weights, modelId, options ?? new LlamaEmbeddingOptions(), ownsWeights: true);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Tokens <paramref name="text"/> costs, counted exactly as <see cref="LLamaEmbedder"/> tokenizes it
    /// (BOS added, special-token text parsed as special tokens).
    /// </summary>
    public int CountTokens(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        ObjectDisposedException.ThrowIf(_disposed, this);

        // Tokenizing reads only the model's vocabulary, so it needs no context and no lock.
        return _weights.Tokenize(text, add_bos: true, special: true, Encoding.UTF8).Length;
    }

    /// <inheritdoc />
    /// <exception cref="InputTooLongException">An input has more than <see cref="MaxInputTokens"/> tokens.</exception>
    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(
        IEnumerable<string> values,
        EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var inputs = EmbeddingInputs.ToCheckedArray(values);
        EmbeddingInputs.CheckOptions(options, ModelId, Dimensions);
        ObjectDisposedException.ThrowIf(_disposed, this);

        // Check every input before computing any, so a bad request costs no decode time.
        long totalTokens = 0;
        for (var i = 0; i < inputs.Length; i++)
        {
            var tokens = CountTokens(inputs[i]);
            if (tokens > MaxInputTokens)
            {
                throw new InputTooLongException(ModelId, i, tokens, MaxInputTokens);
            }

            totalTokens += tokens;
        }

        var vectors = new float[inputs.Length][];
        for (var i = 0; i < inputs.Length; i++)
        {
            // One input per turn of the gate lets concurrent requests interleave instead of queueing whole batches.
            await _gate.WaitAsync(cancellationToken);
            try
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                var pooled = await _embedder.GetEmbeddings(inputs[i], cancellationToken);
                if (pooled.Count != 1)
                {
                    throw new InvalidOperationException($"Expected one pooled vector, got {pooled.Count}.");
                }

                vectors[i] = EmbeddingInputs.NormalizeInPlace(pooled[0]);
            }
            finally
            {
                _gate.Release();
            }
        }

        return EmbeddingInputs.ToResult(vectors, ModelId, totalTokens);
    }

    /// <inheritdoc />
    /// <remarks>
    /// The ids go to llama.cpp as given, at positions 0.., in a context of its own made per input as
    /// <see cref="LLamaEmbedder"/> makes one per text, so an input's ids and its text give the same vector.
    /// </remarks>
    /// <exception cref="InputTooLongException">An input has more than <see cref="MaxInputTokens"/> ids.</exception>
    async Task<GeneratedEmbeddings<Embedding<float>>> ITokenEmbeddingGenerator.GenerateAsync(IReadOnlyList<int[]> tokenInputs, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var totalTokens = EmbeddingInputs.CheckTokenInputs(tokenInputs, ModelId, VocabularySize, MaxInputTokens);
        var vectors = new float[tokenInputs.Count][];
        for (var i = 0; i < tokenInputs.Count; i++)
        {
            await _gate.WaitAsync(cancellationToken);
            try
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                vectors[i] = EmbeddingInputs.NormalizeInPlace(await EmbedTokensAsync(tokenInputs[i], cancellationToken));
            }
            finally
            {
                _gate.Release();
            }
        }

        return EmbeddingInputs.ToResult(vectors, ModelId, totalTokens);
    }

    private async Task<float[]> EmbedTokensAsync(int[] tokens, CancellationToken cancellationToken)
    {
        using var context = _weights.CreateContext(_contextParams);
        context.NativeHandle.SetEmbeddings(true);
        var batch = new LLamaBatch();
        for (var p = 0; p < tokens.Length; p++)
        {
            batch.Add((LLamaToken)tokens[p], p, LLamaSeqId.Zero, true);
        }

        cancellationToken.ThrowIfCancellationRequested();
        var model = context.NativeHandle.ModelHandle;
        if (model.HasEncoder && !model.HasDecoder)
        {
            var encoded = await context.EncodeAsync(batch, cancellationToken);
            if (encoded != EncodeResult.Ok)
            {
                throw new InvalidOperationException($"llama.cpp could not encode the input: {encoded}.");
            }
        }
        else
        {
            var decoded = await context.DecodeAsync(batch, cancellationToken);
            if (decoded != DecodeResult.Ok)
            {
                throw new InvalidOperationException($"llama.cpp could not decode the input: {decoded}.");
            }
        }

        return context.NativeHandle.GetEmbeddingsSeq(LLamaSeqId.Zero).ToArray();
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null)
        {
            return null;
        }

        return serviceType == typeof(EmbeddingGeneratorMetadata) ? _metadata
            : serviceType.IsInstanceOfType(this) ? this
            : null;
    }

    /// <summary>Waits for the call in progress, then frees the embedder (and the weights when <see cref="Load"/> made them).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _gate.Wait();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _embedder.Dispose();
            if (_ownsWeights)
            {
                _weights.Dispose();
            }
        }
        finally
        {
            // Left undisposed on purpose: waiters wake, see _disposed and throw ObjectDisposedException.
            _gate.Release();
        }
    }
}
