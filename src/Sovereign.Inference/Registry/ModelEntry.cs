// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Text.Json.Serialization;
using Sovereign.Inference.Engine;

namespace Sovereign.Inference.Registry;

/// <summary>
/// One model in the registry: what it is (read from its GGUF header), where it came from, under which licence, and
/// the SHA-256 digest its file must still have when it is loaded. Entries are immutable; the registry replaces them.
/// </summary>
public sealed record ModelEntry
{
    /// <summary>The id clients use in the <c>model</c> field, e.g. <c>llama-3.1-8b-instruct</c>.</summary>
    public required string Id { get; init; }

    /// <summary>The file's digest, <c>sha256:</c> followed by 64 lower-case hexadecimal digits.</summary>
    public required string Digest { get; init; }

    /// <summary>Size of the GGUF file in bytes.</summary>
    public required long SizeBytes { get; init; }

    /// <summary><c>general.architecture</c>, e.g. <c>llama</c>, <c>qwen2</c>, <c>gemma3</c>.</summary>
    public required string Architecture { get; init; }

    /// <summary><c>general.name</c>, when the file has one.</summary>
    public string? Name { get; init; }

    /// <summary>Parameter count: the sum of all tensors' element counts.</summary>
    public required long Parameters { get; init; }

    /// <summary>Weight format as llama.cpp names it (F32, F16, BF16, Q8_0, Q4_K_M, IQ4_XS, ...).</summary>
    public required string Quantization { get; init; }

    /// <summary>The context the model was trained for (<c>{arch}.context_length</c>), when declared.</summary>
    public long? ContextLength { get; init; }

    /// <summary>Layer and attention shape, for memory estimates.</summary>
    public ModelShape Shape { get; init; } = new();

    /// <summary>Licence as an SPDX id (<c>Apache-2.0</c>, <c>MIT</c>), a model-licence id (<c>llama3.1</c>, <c>gemma</c>), or <c>LicenseRef-*</c>.</summary>
    public required string License { get; init; }

    /// <summary>Who published the weights, and from which country.</summary>
    public required ModelOrigin Origin { get; init; }

    /// <summary>Languages the model serves well (ISO 639 codes, lower case); empty when not declared.</summary>
    public IReadOnlyList<string> Languages { get; init; } = [];

    /// <summary>Chat (generation) or embedding.</summary>
    public ModelKind Modality { get; init; } = ModelKind.Chat;

    /// <summary>Where the file came from: the URL, <c>hf:ORG/REPO/FILE</c>, or <c>import:</c> and the local path.</summary>
    public required string Source { get; init; }

    /// <summary>Who vouched for <see cref="Digest"/>.</summary>
    public DigestProvenance DigestSource { get; init; }

    /// <summary>When the model was installed.</summary>
    public DateTimeOffset AddedAt { get; init; }

    /// <summary>The 64 hexadecimal digits of <see cref="Digest"/>.</summary>
    [JsonIgnore]
    public string DigestHex => ModelDigest.Hex(Digest);

    /// <summary>
    /// Serving options for this entry: id, kind, licence, origin country and languages copied over, the verified
    /// <paramref name="path"/> from <see cref="ModelRegistry.OpenForLoadAsync"/>. Sizes and threads stay at their defaults.
    /// </summary>
    public ModelOptions ToModelOptions(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new ModelOptions
        {
            Id = Id,
            Path = path,
            Kind = Modality,
            License = License,
            Origin = Origin.Country,
            Languages = [.. Languages],
        };
    }
}

/// <summary>The publisher of a model's weights and its country (ISO 3166-1 alpha-2, upper case).</summary>
public sealed record ModelOrigin(string Publisher, string Country);

/// <summary>
/// The attention shape read from the GGUF header: what the KV cache costs per token. Null where the file does not say.
/// </summary>
public sealed record ModelShape
{
    /// <summary><c>{arch}.block_count</c>.</summary>
    public int? Layers { get; init; }

    /// <summary><c>{arch}.embedding_length</c>.</summary>
    public int? EmbeddingLength { get; init; }

    /// <summary><c>{arch}.attention.head_count</c> (the largest, when it varies by layer).</summary>
    public int? HeadCount { get; init; }

    /// <summary><c>{arch}.attention.head_count_kv</c> (the largest, when it varies by layer); equals the head count without GQA.</summary>
    public int? KvHeadCount { get; init; }

    /// <summary><c>{arch}.attention.key_length</c>: per-head key size, when it is not embedding / heads.</summary>
    public int? KeyLength { get; init; }

    /// <summary><c>{arch}.attention.value_length</c>: per-head value size, when it is not embedding / heads.</summary>
    public int? ValueLength { get; init; }

    /// <summary>Entries in <c>tokenizer.ggml.tokens</c>.</summary>
    public int? VocabularySize { get; init; }
}

/// <summary>Who vouched for a registry entry's digest.</summary>
public enum DigestProvenance
{
    /// <summary>The operator gave it (<c>--sha256</c>) and the file matched.</summary>
    Given,

    /// <summary>The publisher published it (Hugging Face's LFS ETag, or a <c>.sha256</c> file beside the URL) and the file matched.</summary>
    Published,

    /// <summary>Nobody: it was computed from the file as it arrived (a local import, or a pull with <c>AllowUnverified</c>).</summary>
    Computed,
}
