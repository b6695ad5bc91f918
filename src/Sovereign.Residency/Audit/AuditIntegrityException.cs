namespace Sovereign.Residency.Audit;

/// <summary>Thrown when an operation refuses to vouch for (sign or export) an audit chain that does not verify.</summary>
public sealed class AuditIntegrityException : Exception
{
    /// <summary>Creates the exception.</summary>
    public AuditIntegrityException()
    {
        Problems = [];
    }

    /// <summary>Creates the exception with a message.</summary>
    public AuditIntegrityException(string message)
        : base(message)
    {
        Problems = [];
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public AuditIntegrityException(string message, Exception innerException)
        : base(message, innerException)
    {
        Problems = [];
    }

    /// <summary>Creates the exception with what the verifier found.</summary>
    public AuditIntegrityException(string message, IReadOnlyList<AuditProblem> problems)
        : base(message)
    {
        Problems = problems;
    }

    /// <summary>What the verifier found.</summary>
    public IReadOnlyList<AuditProblem> Problems { get; }
}
