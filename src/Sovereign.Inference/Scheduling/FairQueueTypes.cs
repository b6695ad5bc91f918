namespace Sovereign.Inference.Scheduling;

/// <summary>Strict priority between classes: no Batch item is dequeued while any Interactive item waits.</summary>
public enum PriorityClass
{
    /// <summary>Chat and completions a person is waiting for.</summary>
    Interactive = 0,

    /// <summary>Background work (batch API, evals): only when no interactive work waits.</summary>
    Batch = 1,
}

/// <summary>
/// How an item is scheduled: its tenant, the tenant's plan weight (shares are proportional to it), its class, and its
/// cost in whatever unit the caller chose (1 per request, or prompt + max tokens for token-fair sharing).
/// </summary>
public readonly record struct FairQueueEntry(string TenantId, int Weight, PriorityClass Priority, long Cost)
{
    /// <summary>Largest accepted weight.</summary>
    public const int MaxWeight = 1_000_000;
}

/// <summary>Why <see cref="FairQueue{T}.TryEnqueue(T, FairQueueEntry, out EnqueueRefusal)"/> refused.</summary>
public enum EnqueueRefusal
{
    /// <summary>Not refused.</summary>
    None,

    /// <summary>The whole queue is at capacity: the server is overloaded (HTTP 503 with Retry-After).</summary>
    QueueFull,

    /// <summary>This tenant already has its maximum waiting: the tenant is over its share (HTTP 429 with Retry-After).</summary>
    TenantQueueFull,
}
