using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The mark <c>sovereign database copy</c> leaves beside a SQLite file whose state it copied into PostgreSQL
/// (<c>&lt;database&gt;.moved</c>). The file stays as it was, to go back to, but nothing may carry on from it unnoticed: a
/// server started on it without the PostgreSQL settings began from the state as it was at the copy (keys revoked since
/// accepted again, spend since forgotten) and refused with "the audit log was truncated or rewritten", since the data
/// directory's witness had moved on with the cluster; <c>audit verify</c> called it tampered; a second copy into another
/// database would have made two installations of one set of tenants, each spending their budgets.
/// </summary>
public sealed record DatabaseMoved(
    [property: JsonPropertyName("to")] string To,
    [property: JsonPropertyName("at")] DateTimeOffset At,
    [property: JsonPropertyName("audit_head")] long AuditHead)
{
    /// <summary>The mark's path for the SQLite file <paramref name="databasePath"/>.</summary>
    public static string PathFor(string databasePath) => Path.GetFullPath(databasePath) + ".moved";

    /// <summary>The mark beside <paramref name="databasePath"/>, or null when its state was never copied.</summary>
    public static DatabaseMoved? Read(string databasePath)
    {
        var path = PathFor(databasePath);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<DatabaseMoved>(File.ReadAllText(path)) ?? throw new JsonException("empty");
        }
        catch (JsonException)
        {
            // Unreadable, it still says the file was moved: refuse all the same, without the details.
            return new DatabaseMoved("another database (the mark cannot be read)", DateTimeOffset.UnixEpoch, 0);
        }
    }

    /// <summary>Writes the mark beside <paramref name="databasePath"/> (owner-only, like the database).</summary>
    public void Write(string databasePath)
    {
        // Whole or not at all (it was written in place: a crash left a truncated mark).
        Storage.AtomicFile.Write(PathFor(databasePath), Storage.ExistingFile.Replace, stream => JsonSerializer.Serialize(stream, this), Storage.FileAccessScope.OwnerOnly);
    }

    /// <summary>Why <paramref name="databasePath"/> is not to be used as it is, for a refusal; <paramref name="use"/> says what to do instead.</summary>
    public string Explain(string databasePath, string use) =>
        $"the state in {databasePath} was copied into {To} by 'sovereign database copy' on {At:yyyy-MM-dd HH:mm:ss} UTC (audit log through entry {AuditHead}); " +
        "carrying on from the file would start from it as it was then (keys revoked since accepted again, spend and audit entries since missing). " +
        $"{use} To go back to the file as it was, delete {PathFor(databasePath)}.";
}

/// <summary>A SQLite database whose state was copied into PostgreSQL (<see cref="DatabaseMoved"/>): the start stops (a setting to change).</summary>
public sealed class DatabaseMovedException(string message) : InvalidOperationException(message);

/// <summary>
/// The database records migrations this release does not know: a newer release ran on it, and this one was started
/// after it (a downgrade). The start stops before anything is written; the message names the migrations.
/// </summary>
public sealed class DatabaseOfNewerReleaseException(string message) : InvalidOperationException(message);
