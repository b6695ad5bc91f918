namespace Sovereign.Inference.Engine;

/// <summary>What a served model is used for.</summary>
public enum ModelKind
{
    /// <summary>Text generation: /v1/chat/completions and /v1/completions.</summary>
    Chat,

    /// <summary>Vectors: /v1/embeddings.</summary>
    Embedding,
}

/// <summary>How one GGUF model is loaded and served.</summary>
public sealed class ModelOptions
{
    /// <summary>Sequences decoded together in one batch.</summary>
    public const int DefaultParallel = 8;

    /// <summary>Tokens decoded per batched step (prompt chunks plus one token per running sequence).</summary>
    public const int DefaultBatchSize = 512;

    /// <summary>Requests that may wait for a free sequence before new ones are refused.</summary>
    public const int DefaultMaxQueue = 256;

    /// <summary>Per-sequence context when the model declares a larger one; keeps the default KV cache modest.</summary>
    public const int DefaultMaxContextLength = 4096;

    /// <summary>The id clients use in the <c>model</c> field.</summary>
    public string Id { get; set; } = "";

    /// <summary>Path of the GGUF file.</summary>
    public string Path { get; set; } = "";

    /// <summary>Chat (generation) or embedding.</summary>
    public ModelKind Kind { get; set; } = ModelKind.Chat;

    /// <summary>Most sequences in one batch (llama.cpp's <c>n_seq_max</c>).</summary>
    public int Parallel { get; set; } = DefaultParallel;

    /// <summary>Most tokens (prompt + output) in one sequence; 0 means the model's own, capped at 4096.</summary>
    public int ContextLength { get; set; }

    /// <summary>KV-cache cells shared by all sequences; 0 means <see cref="Parallel"/> × <see cref="ContextLength"/>.</summary>
    public int KvCacheTokens { get; set; }

    /// <summary>Tokens per decode step; long prompts are prefilled in chunks of this size.</summary>
    public int BatchSize { get; set; } = DefaultBatchSize;

    /// <summary>CPU threads for decoding; 0 means half the cores (at least one).</summary>
    public int Threads { get; set; }

    /// <summary>Layers offloaded to a GPU; 0 on CPU-only back-ends.</summary>
    public int GpuLayers { get; set; }

    /// <summary>Chat template used when the GGUF has none: a llama.cpp template name (chatml, llama3, mistral-v7, gemma, ...).</summary>
    public string? ChatTemplate { get; set; }

    /// <summary>The model's licence as an SPDX id (e.g. Apache-2.0, llama3.1); residency policies can allow or deny by it.</summary>
    public string? License { get; set; }

    /// <summary>The publisher's country (ISO 3166-1 alpha-2); residency policies can allow or deny by it.</summary>
    public string? Origin { get; set; }

    /// <summary>Languages (ISO 639-1 codes) the model serves well; <c>model: "auto"</c> routes by them.</summary>
    public List<string> Languages { get; set; } = [];

    /// <summary>Requests allowed to wait for capacity; beyond this the server answers 503 with Retry-After.</summary>
    public int MaxQueue { get; set; } = DefaultMaxQueue;

    /// <summary>
    /// Finished sequences whose KV cells are kept for prompt-prefix reuse (the prefix cache); null means as many as
    /// <see cref="Parallel"/>, 0 turns the cache off. Kept cells never take KV space a running request needs: while
    /// requests run they are parked in host memory and copied back on a match.
    /// </summary>
    public int? PrefixCacheSequences { get; set; }

    /// <summary>Default <see cref="PrefixCacheHostMiB"/>: llama-server's <c>--cache-ram</c> default.</summary>
    public const int DefaultPrefixCacheHostMiB = 8192;

    /// <summary>
    /// Host memory the prefix cache's parked entries may hold, in MiB (as llama-server's <c>--cache-ram</c>): a large
    /// model's cells take megabytes a token, so entries beyond it are dropped, least recently used first. 0 keeps no
    /// parked entry (a cached prefix then only helps the next request while nothing else runs).
    /// </summary>
    public int PrefixCacheHostMiB { get; set; } = DefaultPrefixCacheHostMiB;

    /// <summary>Resolves defaults against what the GGUF declares.</summary>
    internal ResolvedModelOptions Resolve(int modelContextLength)
    {
        var contextLength = ContextLength > 0
            ? ContextLength
            : Math.Min(modelContextLength > 0 ? modelContextLength : DefaultMaxContextLength, DefaultMaxContextLength);
        var kv = KvCacheTokens > 0 ? KvCacheTokens : checked(Parallel * contextLength);
        var threads = Threads > 0 ? Threads : Math.Max(1, Environment.ProcessorCount / 2);

        // llama.cpp allows at most 256 sequence ids per context (LLAMA_MAX_SEQ); running requests come first.
        var prefixCache = Math.Clamp(PrefixCacheSequences ?? Parallel, 0, Math.Max(0, MaxSequences - Math.Max(1, Parallel)));
        return new ResolvedModelOptions(contextLength, kv, Math.Min(BatchSize, kv), threads, prefixCache, Math.Max(0L, PrefixCacheHostMiB) * 1024 * 1024);
    }

    /// <summary>llama.cpp's limit on sequence ids in one context.</summary>
    internal const int MaxSequences = 256;
}

internal readonly record struct ResolvedModelOptions(int ContextLength, int KvCacheTokens, int BatchSize, int Threads, int PrefixCacheSequences, long PrefixCacheHostBytes);
