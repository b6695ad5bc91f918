namespace Sovereign.Residency.Audit;

/// <summary>
/// The operator's signed statement "the chain had <see cref="Hash"/> at <see cref="Sequence"/>". Entries up to it
/// can no longer be rewritten without the private key, and a log shorter than a checkpoint is provably truncated.
/// </summary>
/// <param name="Sequence">The last entry covered.</param>
/// <param name="Hash">That entry's hash.</param>
/// <param name="Timestamp">When it was signed (unix ms).</param>
/// <param name="KeyId">The signing key's id.</param>
/// <param name="Signature">ECDSA P-256 / SHA-256, IEEE P1363 (r||s), lowercase hex, over
/// <see cref="AuditCanonical.CheckpointPayload"/>.</param>
public sealed record AuditCheckpoint(long Sequence, string Hash, long Timestamp, string KeyId, string Signature)
{
    internal static AuditCheckpoint Sign(OperatorSigningKey key, long sequence, string hash, long timestamp)
    {
        var payload = AuditCanonical.CheckpointPayload(sequence, hash, timestamp, key.KeyId);
        return new AuditCheckpoint(sequence, hash, timestamp, key.KeyId, Convert.ToHexStringLower(key.Sign(payload)));
    }
}
