using Microsoft.Extensions.AI;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.Models;

/// <summary>A model the gateway serves under one id: a chat model with its batcher, or an embedding generator.</summary>
public sealed class ServedModel
{
    internal ServedModel(string id, ModelKind kind, long created, string ownedBy, ContinuousBatcher? batcher, IEmbeddingGenerator<string, Embedding<float>>? embeddings, Func<string, int>? countTokens, int maxInputTokens)
    {
        Id = id;
        Kind = kind;
        Created = created;
        OwnedBy = ownedBy;
        Batcher = batcher;
        Embeddings = embeddings;
        CountTokens = countTokens;
        MaxInputTokens = maxInputTokens;
    }

    /// <summary>The id clients send as <c>model</c>.</summary>
    public string Id { get; }

    /// <summary>Chat or embedding.</summary>
    public ModelKind Kind { get; }

    /// <summary>Unix time it was loaded.</summary>
    public long Created { get; }

    /// <summary>Shown as <c>owned_by</c> in /v1/models.</summary>
    public string OwnedBy { get; }

    /// <summary>The decode loop of a chat model.</summary>
    public ContinuousBatcher? Batcher { get; }

    /// <summary>The generator of an embedding model.</summary>
    public IEmbeddingGenerator<string, Embedding<float>>? Embeddings { get; }

    /// <summary>The generator of an embedding model, for inputs given as token ids; null where the model takes text only.</summary>
    public Sovereign.Inference.Embeddings.ITokenEmbeddingGenerator? TokenEmbeddings => Embeddings as Sovereign.Inference.Embeddings.ITokenEmbeddingGenerator;

    /// <summary>Counts an embedding input's tokens, to refuse over-long inputs before any work.</summary>
    public Func<string, int>? CountTokens { get; }

    /// <summary>Most tokens one embedding input may have.</summary>
    public int MaxInputTokens { get; }

    /// <summary>The loaded GGUF of a chat model.</summary>
    public LlamaModel? Model => Batcher?.Model;
}
