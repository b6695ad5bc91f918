namespace Sovereign.Inference.Engine;

/// <summary>The request cannot run on this model as given; the client must change it (HTTP 400).</summary>
public sealed class InvalidGenerationRequestException(string message, string? parameter = null, string code = "invalid_request")
    : Exception(message)
{
    /// <summary>The request field at fault, when there is one.</summary>
    public string? Parameter { get; } = parameter;

    /// <summary>A stable machine-readable code, e.g. <c>context_length_exceeded</c>.</summary>
    public string Code { get; } = code;
}

/// <summary>The model's wait queue is full; the client may retry later (HTTP 503 with Retry-After).</summary>
public sealed class EngineOverloadedException(string modelId, int queueLimit)
    : Exception($"Model '{modelId}' is at capacity: {queueLimit} requests are already waiting. Retry later.")
{
    /// <summary>The model that is full.</summary>
    public string ModelId { get; } = modelId;
}

/// <summary>The engine is shutting down or the model was unloaded.</summary>
public sealed class EngineStoppedException(string modelId, GenerationResult? partial = null)
    : Exception($"Model '{modelId}' is not accepting requests: it is stopping.")
{
    /// <summary>The model that stopped.</summary>
    public string ModelId { get; } = modelId;

    /// <summary>
    /// What a running sequence had generated when the engine stopped under it (finish reason cancelled), so that what
    /// a stream delivered can be billed; null for a sequence that had not started.
    /// </summary>
    public GenerationResult? Partial { get; } = partial;
}

/// <summary>
/// llama.cpp failed (or threw) decoding a step; every running sequence of that step is stopped and the executor rebuilt,
/// so a retry runs on a fresh context (HTTP 500, which SDKs retry).
/// </summary>
public sealed class EngineDecodeFailedException(string modelId, string status, GenerationResult? partial = null)
    : Exception($"The engine failed decoding a step of model '{modelId}' ({status}); this request was stopped. Try again.")
{
    /// <summary>The model whose decode failed.</summary>
    public string ModelId { get; } = modelId;

    /// <summary>
    /// What the sequence had generated before the failed step (finish reason cancelled), so that what a stream delivered
    /// can be billed, as on <see cref="EngineStoppedException.Partial"/>.
    /// </summary>
    public GenerationResult? Partial { get; } = partial;
}

/// <summary>One tenant already has its share of the model's wait queue; it may retry later (HTTP 429 with Retry-After).</summary>
public sealed class TenantQueueFullException(string modelId, string tenant, int limit)
    : Exception($"Too many requests of this tenant are waiting for model '{modelId}' (limit {limit}). Retry later.")
{
    /// <summary>The model.</summary>
    public string ModelId { get; } = modelId;

    /// <summary>The tenant.</summary>
    public string Tenant { get; } = tenant;
}
