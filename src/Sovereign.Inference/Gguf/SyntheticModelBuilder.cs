// Copyright (c) Sovereign contributors. Licensed under the MIT License.

namespace Sovereign.Inference.Gguf;

/// <summary>Size of a synthetic model, computed without writing it.</summary>
/// <param name="ParameterCount">Sum of all tensors' element counts.</param>
/// <param name="FileSizeBytes">Exact size of the GGUF file.</param>
/// <param name="TensorCount">Number of tensors.</param>
public sealed record SyntheticModelEstimate(long ParameterCount, long FileSizeBytes, int TensorCount);

/// <summary>
/// Writes llama-architecture GGUF models with deterministic random weights and a generated SentencePiece vocabulary,
/// loadable by llama.cpp. Data is generated per row while writing, so size is limited by disk, not memory.
/// </summary>
public static class SyntheticModelBuilder
{
    private const float RmsNormEpsilon = 1e-5f;
    private const float RopeFrequencyBase = 10000f;

    /// <summary>
    /// Validates <paramref name="options"/> and writes the model to <paramref name="path"/>: over an existing file
    /// only with <paramref name="overwrite"/> (else the move's <see cref="IOException"/>, the file kept).
    /// </summary>
    public static void Write(SyntheticModelOptions options, string path, IProgress<long>? progress = null, CancellationToken cancellationToken = default, bool overwrite = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        CreateWriter(options).WriteFile(path, progress, cancellationToken, overwrite);
    }

    /// <summary>Parameter count and exact file size of the model <paramref name="options"/> describe.</summary>
    public static SyntheticModelEstimate Estimate(SyntheticModelOptions options)
    {
        var writer = CreateWriter(options);
        var tensors = writer.GetTensorInfos();
        var parameters = tensors.Sum(t => checked((long)t.ElementCount));
        return new SyntheticModelEstimate(parameters, writer.ComputeLength(), tensors.Count);
    }

    internal static GgufWriter CreateWriter(SyntheticModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();

        var writer = new GgufWriter();
        AddMetadata(writer, options);
        AddTensors(writer, options);
        return writer;
    }

    private static void AddMetadata(GgufWriter writer, SyntheticModelOptions o)
    {
        // llama.cpp checks metadata types strictly: hyperparameters and token ids are uint32, epsilon float32.
        writer.SetMetadata("general.architecture", GgufValue.Of("llama"));
        writer.SetMetadata("general.name", GgufValue.Of(o.Name));
        writer.SetMetadata(
            "general.description",
            GgufValue.Of($"Synthetic test model with random weights (seed {o.Seed}), written by Sovereign. Its output is meaningless."));
        writer.SetMetadata("general.file_type", GgufValue.Of(FileType(o.TensorType)));
        writer.SetMetadata(GgufWriter.AlignmentKey, GgufValue.Of(GgufWriter.DefaultAlignment));

        writer.SetMetadata("llama.context_length", GgufValue.Of((uint)o.ContextLength));
        writer.SetMetadata("llama.embedding_length", GgufValue.Of((uint)o.EmbeddingLength));
        writer.SetMetadata("llama.block_count", GgufValue.Of((uint)o.Layers));
        writer.SetMetadata("llama.feed_forward_length", GgufValue.Of((uint)o.FeedForwardLength));
        writer.SetMetadata("llama.attention.head_count", GgufValue.Of((uint)o.HeadCount));
        writer.SetMetadata("llama.attention.head_count_kv", GgufValue.Of((uint)o.KvHeadCount));
        writer.SetMetadata("llama.rope.dimension_count", GgufValue.Of((uint)o.HeadDimension));
        writer.SetMetadata("llama.rope.freq_base", GgufValue.Of(RopeFrequencyBase));
        writer.SetMetadata("llama.attention.layer_norm_rms_epsilon", GgufValue.Of(RmsNormEpsilon));
        writer.SetMetadata("llama.vocab_size", GgufValue.Of((uint)o.VocabularySize));

        var vocabulary = SyntheticVocabulary.Build(o.VocabularySize);
        writer.SetMetadata("tokenizer.ggml.model", GgufValue.Of("llama"));
        writer.SetMetadata("tokenizer.ggml.tokens", GgufValue.OfArray(vocabulary.Tokens));
        writer.SetMetadata("tokenizer.ggml.scores", GgufValue.OfArray(vocabulary.Scores));
        writer.SetMetadata("tokenizer.ggml.token_type", GgufValue.OfArray(vocabulary.Types));
        writer.SetMetadata("tokenizer.ggml.bos_token_id", GgufValue.Of((uint)SyntheticVocabulary.BosId));
        writer.SetMetadata("tokenizer.ggml.eos_token_id", GgufValue.Of((uint)SyntheticVocabulary.EosId));
        writer.SetMetadata("tokenizer.ggml.unknown_token_id", GgufValue.Of((uint)SyntheticVocabulary.UnknownId));
        writer.SetMetadata("tokenizer.ggml.eot_token_id", GgufValue.Of((uint)SyntheticVocabulary.ImEndId));
        writer.SetMetadata("tokenizer.ggml.add_bos_token", GgufValue.Of(true));
        writer.SetMetadata("tokenizer.ggml.add_eos_token", GgufValue.Of(false));
        if (o.ChatTemplate is { } template)
        {
            writer.SetMetadata("tokenizer.chat_template", GgufValue.Of(template));
        }
    }

    private static void AddTensors(GgufWriter writer, SyntheticModelOptions o)
    {
        // Shapes follow ggml/llama.cpp: ne[0] is each matrix's input dimension, ne[1] its output dimension.
        ulong embd = (ulong)o.EmbeddingLength, kv = (ulong)o.KvEmbeddingLength, ff = (ulong)o.FeedForwardLength, vocab = (ulong)o.VocabularySize;
        var type = o.TensorType;

        AddMatrix(writer, o, "token_embd.weight", embd, vocab, type);
        for (var layer = 0; layer < o.Layers; layer++)
        {
            var prefix = $"blk.{layer}.";
            AddNorm(writer, prefix + "attn_norm.weight", embd);
            AddMatrix(writer, o, prefix + "attn_q.weight", embd, embd, type);
            AddMatrix(writer, o, prefix + "attn_k.weight", embd, kv, type);
            AddMatrix(writer, o, prefix + "attn_v.weight", embd, kv, type);
            AddMatrix(writer, o, prefix + "attn_output.weight", embd, embd, type);
            AddNorm(writer, prefix + "ffn_norm.weight", embd);
            AddMatrix(writer, o, prefix + "ffn_gate.weight", embd, ff, type);
            AddMatrix(writer, o, prefix + "ffn_down.weight", ff, embd, type);
            AddMatrix(writer, o, prefix + "ffn_up.weight", embd, ff, type);
        }

        AddNorm(writer, "output_norm.weight", embd);
        AddMatrix(writer, o, "output.weight", embd, vocab, type);
    }

    private static void AddNorm(GgufWriter writer, string name, ulong width) =>
        writer.AddTensor(name, [width], GgmlType.F32, static (_, values) => values.Fill(1f));

    private static void AddMatrix(GgufWriter writer, SyntheticModelOptions o, string name, ulong inputs, ulong outputs, GgmlType type)
    {
        // Standard deviation 1/sqrt(fan_in) keeps each projection's output at about unit scale, so activations stay
        // finite through any number of layers (and RMS norms renormalise between them anyway).
        var scale = 1.0 / Math.Sqrt(inputs);
        var seed = o.Seed;
        DeterministicRandom? random = null;
        writer.AddTensor(name, [inputs, outputs], type, (row, values) =>
        {
            // Restart the stream at row 0 so the same writer can be written twice with identical bytes.
            if (row == 0 || random is null)
            {
                random = DeterministicRandom.ForStream(seed, name);
            }

            for (var i = 0; i < values.Length; i++)
            {
                values[i] = (float)(random.NextNormal() * scale);
            }
        });
    }

    /// <summary>llama.cpp's llama_ftype for a model whose matrices are all of <paramref name="type"/>.</summary>
    private static uint FileType(GgmlType type) => type switch
    {
        GgmlType.F32 => 0,
        GgmlType.F16 => 1,
        GgmlType.Q8_0 => 7,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unsupported tensor type."),
    };
}
