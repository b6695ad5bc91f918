// Copyright (c) Sovereign contributors. Licensed under the MIT License.

namespace Sovereign.Inference.Gguf;

/// <summary>
/// Shape and content of a synthetic llama-architecture model (random weights, generated vocabulary). Used to test
/// and benchmark the server at any size without downloading real models. Call <see cref="Validate"/> (the builder
/// does) to get an <see cref="ArgumentException"/> naming the first bad option.
/// </summary>
public sealed record SyntheticModelOptions
{
    /// <summary>
    /// A ChatML template. llama.cpp's built-in detection recognises it as "chatml" because it contains
    /// <c>&lt;|im_start|&gt;</c>, so the model works with chat completions without a Jinja engine.
    /// </summary>
    public const string DefaultChatTemplate =
        "{% for message in messages %}"
        + "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
        + "{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>llama.cpp's LLAMA_MAX_LAYERS.</summary>
    public const int MaxLayers = 512;

    private readonly int? _feedForwardLength;
    private readonly int? _kvHeadCount;

    /// <summary>Number of transformer blocks.</summary>
    public int Layers { get; init; } = 2;

    /// <summary>Model width (n_embd); must divide evenly into <see cref="HeadCount"/> heads of even size.</summary>
    public int EmbeddingLength { get; init; } = 64;

    /// <summary>FFN hidden size; defaults to 8/3 of the width rounded up to a multiple of 32 (the SwiGLU convention).</summary>
    public int FeedForwardLength
    {
        get => _feedForwardLength ?? DefaultFeedForwardLength(EmbeddingLength);
        init => _feedForwardLength = value;
    }

    /// <summary>Attention heads.</summary>
    public int HeadCount { get; init; } = 4;

    /// <summary>Key/value heads (grouped-query attention); defaults to <see cref="HeadCount"/>. Must divide it.</summary>
    public int KvHeadCount
    {
        get => _kvHeadCount ?? HeadCount;
        init => _kvHeadCount = value;
    }

    /// <summary>Tokens in the vocabulary; at least 261 (special tokens plus the 256 byte tokens).</summary>
    public int VocabularySize { get; init; } = 512;

    /// <summary>Trained context length written to the metadata.</summary>
    public int ContextLength { get; init; } = 2048;

    /// <summary>Type of the weight matrices: F32, F16 or Q8_0. Norm weights are always F32.</summary>
    public GgmlType TensorType { get; init; } = GgmlType.F16;

    /// <summary>Seed of the weights. Same options and seed give a byte-identical file.</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>Written as <c>general.name</c>.</summary>
    public string Name { get; init; } = "sovereign-synthetic";

    /// <summary>Written as <c>tokenizer.chat_template</c>; null writes no template.</summary>
    public string? ChatTemplate { get; init; } = DefaultChatTemplate;

    /// <summary>Width of one attention head.</summary>
    internal int HeadDimension => EmbeddingLength / HeadCount;

    /// <summary>Width of the key and value projections.</summary>
    internal int KvEmbeddingLength => HeadDimension * KvHeadCount;

    /// <summary>8/3 of the width, rounded up to a multiple of 32.</summary>
    public static int DefaultFeedForwardLength(int embeddingLength) =>
        embeddingLength <= 0 ? 32 : (int)Math.Min(int.MaxValue / 2, ((8L * embeddingLength / 3) + 31) / 32 * 32);

    /// <summary>Throws an <see cref="ArgumentException"/> whose ParamName is the first invalid option.</summary>
    public void Validate()
    {
        Require(Layers is >= 1 and <= MaxLayers, nameof(Layers), $"must be between 1 and {MaxLayers}, got {Layers}");
        Require(EmbeddingLength is >= 2 and <= 1 << 16, nameof(EmbeddingLength), $"must be between 2 and 65536, got {EmbeddingLength}");
        Require(HeadCount >= 1 && HeadCount <= EmbeddingLength, nameof(HeadCount), $"must be between 1 and EmbeddingLength ({EmbeddingLength}), got {HeadCount}");
        Require(EmbeddingLength % HeadCount == 0, nameof(HeadCount), $"must divide EmbeddingLength ({EmbeddingLength}), got {HeadCount}");

        // RoPE rotates pairs of values, so each head needs an even width.
        Require(HeadDimension % 2 == 0, nameof(HeadCount), $"must leave an even head width (EmbeddingLength / HeadCount = {HeadDimension})");
        Require(KvHeadCount >= 1 && KvHeadCount <= HeadCount && HeadCount % KvHeadCount == 0, nameof(KvHeadCount), $"must be at least 1 and divide HeadCount ({HeadCount}), got {KvHeadCount}");
        Require(FeedForwardLength is >= 1 and <= 1 << 20, nameof(FeedForwardLength), $"must be between 1 and 1048576, got {FeedForwardLength}");
        Require(
            VocabularySize is >= SyntheticVocabulary.FixedTokenCount and <= SyntheticVocabulary.MaxSize,
            nameof(VocabularySize),
            $"must be between {SyntheticVocabulary.FixedTokenCount} (special and byte tokens) and {SyntheticVocabulary.MaxSize}, got {VocabularySize}");
        Require(ContextLength >= 1, nameof(ContextLength), $"must be at least 1, got {ContextLength}");
        Require(TensorType is GgmlType.F32 or GgmlType.F16 or GgmlType.Q8_0, nameof(TensorType), $"must be F32, F16 or Q8_0, got {TensorType}");
        if (TensorType == GgmlType.Q8_0)
        {
            // Q8_0 packs rows in blocks of 32: every matrix row (ne[0]) must be a whole number of blocks.
            Require(EmbeddingLength % 32 == 0, nameof(EmbeddingLength), $"must be a multiple of 32 for Q8_0, got {EmbeddingLength}");
            Require(FeedForwardLength % 32 == 0, nameof(FeedForwardLength), $"must be a multiple of 32 for Q8_0, got {FeedForwardLength}");
        }

        Require(!string.IsNullOrWhiteSpace(Name), nameof(Name), "must not be empty");
        Require(ChatTemplate is null || ChatTemplate.Length > 0, nameof(ChatTemplate), "must be null (no template) or non-empty");
    }

    private static void Require(bool condition, string option, string problem)
    {
        if (!condition)
        {
            throw new ArgumentException($"Invalid synthetic model option {option}: {problem}.", option);
        }
    }
}
