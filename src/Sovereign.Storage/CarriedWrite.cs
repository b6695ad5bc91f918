using System.Data.Common;

namespace Sovereign.Storage;

/// <summary>
/// A write that rides in another writer's transaction, so that both are durable together or neither is: a request's
/// usage record commits with its outcome's audit entry, one commit instead of two on every request, and never a
/// record billed whose audit entry failed (or the reverse). The host writer (the audit log) calls
/// <see cref="Writer"/>'s <see cref="ICarriedWriter.WriteAsync"/> inside its transaction, then exactly one of
/// <see cref="Committed"/> or <see cref="Failed"/>.
/// </summary>
public interface ICarriedWrite
{
    /// <summary>Writes this item, together with the others of its kind the host's transaction carries.</summary>
    ICarriedWriter Writer { get; }

    /// <summary>The host's transaction committed: the write is durable.</summary>
    void Committed();

    /// <summary>The host's transaction did not commit (after its own retries): nothing of the write is stored.</summary>
    void Failed(Exception error);
}

/// <summary>Writes carried items into a host's open transaction (see <see cref="ICarriedWrite"/>).</summary>
public interface ICarriedWriter
{
    /// <summary>The database the items belong to: only a host writing the same database can carry them.</summary>
    SqlDatabase Database { get; }

    /// <summary>
    /// Writes <paramref name="items"/> (all of this writer) in <paramref name="transaction"/> (null: the connection's
    /// own transaction, begun by SQL: see <see cref="PreparedTransaction"/>). After a rollback the host
    /// may call it again with the same items in a new transaction, so it must not keep anything from the failed one.
    /// <paramref name="cancellationToken"/> is the host's commit deadline: a statement the server does not answer stops.
    /// </summary>
    Task WriteAsync(IReadOnlyList<ICarriedWrite> items, DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken = default);

    /// <summary>The host is about to close <paramref name="connection"/>: release what was prepared on it.</summary>
    void Release(DbConnection connection);
}
