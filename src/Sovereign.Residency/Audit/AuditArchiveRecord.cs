namespace Sovereign.Residency.Audit;

/// <summary>
/// The operator's signed statement "entries up to <see cref="Sequence"/>, the last with <see cref="Hash"/>, were
/// written to an archive file and may leave the database". It is what lets a verifier accept a log that no longer
/// starts at sequence 1: without one (or with a forged one) the missing entries are reported as removed.
/// </summary>
/// <param name="Sequence">The last archived entry.</param>
/// <param name="Hash">That entry's hash: the first retained entry links to it.</param>
/// <param name="Entries">How many entries the archive file holds (informational; signed).</param>
/// <param name="Timestamp">When the archive was made (unix ms).</param>
/// <param name="KeyId">The signing key's id.</param>
/// <param name="Signature">ECDSA P-256 / SHA-256, IEEE P1363 (r||s), lowercase hex, over <see cref="AuditCanonical.ArchivePayload"/>.</param>
public sealed record AuditArchiveRecord(long Sequence, string Hash, long Entries, long Timestamp, string KeyId, string Signature)
{
    internal static AuditArchiveRecord Sign(OperatorSigningKey key, long sequence, string hash, long entries, long timestamp)
    {
        var payload = AuditCanonical.ArchivePayload(sequence, hash, entries, timestamp, key.KeyId);
        return new AuditArchiveRecord(sequence, hash, entries, timestamp, key.KeyId, Convert.ToHexStringLower(key.Sign(payload)));
    }
}
