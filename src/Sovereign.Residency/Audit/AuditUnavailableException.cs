namespace Sovereign.Residency.Audit;

/// <summary>
/// The audit log could not record an entry (its storage refused the commit after retries, or the log is closed). What
/// needed the entry must not go ahead: a request whose decision is not evidence is refused (fail closed).
/// </summary>
public sealed class AuditUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public AuditUnavailableException()
        : base("The audit log could not record the entry.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public AuditUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public AuditUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>
    /// The entry as each commit of it that was sent and never answered hashed it (its place and hash in the chain of the
    /// log that threw this): it may be in the chain at one of them, committed after this was thrown (a paused database
    /// that went on). Empty when no commit of it was sent. Pass them to
    /// <see cref="AuditLog.AppendUnlessCommittedAsync"/> to record the entry later without recording it twice.
    /// </summary>
    public IReadOnlyList<AuditEntry> InDoubt { get; init; } = [];

    /// <summary>Wraps why the commit failed.</summary>
    public static AuditUnavailableException From(Exception cause) =>
        cause as AuditUnavailableException ?? new AuditUnavailableException("The audit log could not record the entry: " + cause.Message, cause);
}
