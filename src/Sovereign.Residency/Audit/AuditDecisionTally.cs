namespace Sovereign.Residency.Audit;

/// <summary>
/// How the allowed inference requests in a verified log ended: with their outcome entry (<c>inference.completed</c>),
/// closed as interrupted (<c>inference.interrupted</c>: the process that allowed them stopped first; tokens unknown,
/// nothing billed), or still open (a request still running, or a stopped process nobody has closed yet).
/// </summary>
/// <param name="Allowed">Requests with an allowed decision, per gateway id and request id (a failover's second decision counts once; one decided again and refused, after its tenant's policy changed, is a refusal, not counted; a relayed request counts at its gateway and at its node, each of which decides under its own request id).</param>
/// <param name="Completed">Of those, ended by their outcome entry.</param>
/// <param name="Interrupted">Of those, closed as interrupted.</param>
/// <param name="Open">Of those, with no outcome entry yet.</param>
/// <param name="OpenSequences">The decision entries of the first <see cref="AuditDecisionTally.MaxListed"/> open requests, oldest first.</param>
public sealed record AuditDecisionOutcomes(long Allowed, long Completed, long Interrupted, long Open, IReadOnlyList<long> OpenSequences)
{
    /// <summary>
    /// Whether a server held the database when the log was verified, which tells what the open requests are: true, a
    /// server runs (they are running, or, in a cluster, left by a stopped member that the gateways close); false, none
    /// does (each was interrupted, its process stopped before its outcome, and is not closed yet: a server's next start
    /// closes it); null when not asked (no request open, an export, or it could not be told).
    /// </summary>
    public bool? ServerRunning { get; init; }
}

/// <summary>
/// Matches, while a verifier walks the log, each allowed decision with the outcome entry that follows it (same
/// <c>gateway</c> and <c>request_id</c>; a refusal that follows it, the request decided again and refused, ends it too), as <see cref="AuditLog.FindOpenDecisionsAsync(string, CancellationToken)"/>
/// does. Holds only the requests still open, so memory follows the requests in flight, not the log's length.
/// </summary>
internal sealed class AuditDecisionTally
{
    /// <summary>The most open decisions a result lists by sequence (the rest are counted).</summary>
    public const int MaxListed = 100;

    private readonly Dictionary<(string? Gateway, string RequestId), long> _open = [];
    private long _allowed;
    private long _completed;
    private long _interrupted;

    public void Add(AuditEntry entry)
    {
        if (entry.Kind != AuditKind.Inference || !entry.Details.TryGetValue("request_id", out var requestId))
        {
            return;
        }

        var key = (entry.Gateway, requestId);
        switch (entry.Action)
        {
            // /tokenize and /detokenize are decided like inference but never get an outcome entry.
            case AuditActions.InferenceAllowed when !(entry.Details.TryGetValue("endpoint", out var endpoint) && endpoint is "/tokenize" or "/detokenize"):
                if (_open.TryAdd(key, entry.Sequence))
                {
                    _allowed++;
                }

                break;
            case AuditActions.InferenceCompleted when _open.Remove(key):
                _completed++;
                break;
            case AuditActions.InferenceInterrupted when _open.Remove(key):
                _interrupted++;
                break;

            // Decided on a gateway's cached tenant whose policy or plan changed meanwhile, then decided again under the
            // same request id and refused: the refusal is how it ended, and its first decision ran nothing. A refused
            // request, not an allowed one (it used to stay open, and be closed later as interrupted).
            case AuditActions.InferenceRefused when _open.Remove(key):
                _allowed--;
                break;
        }
    }

    public AuditDecisionOutcomes ToOutcomes() =>
        new(_allowed, _completed, _interrupted, _open.Count, [.. _open.Values.Order().Take(MaxListed)]);
}
