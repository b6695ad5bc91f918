using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Sovereign.Storage;

namespace Sovereign.Residency.Audit;

/// <summary>
/// The last head a signer signed (<see cref="AuditWitness"/>): entry <paramref name="Sequence"/> had <paramref name="Hash"/>.
/// </summary>
/// <param name="Sequence">The checkpoint's sequence.</param>
/// <param name="Hash">That entry's hash.</param>
/// <param name="Timestamp">When it was signed (unix ms).</param>
/// <param name="KeyId">The key that signed it.</param>
public sealed record AuditWitnessHead(long Sequence, string Hash, long Timestamp, string KeyId)
{
    /// <summary>The member chain it is a head of (the file's <c>chain</c>); null: the shared chain (every witness before member chains).</summary>
    public string? Chain { get; init; }
}

/// <summary>
/// A signer's own record, beside the operator key and outside the database, of the last head it signed. Whoever can
/// write the database can delete newer checkpoints and rewrite and re-hash the tail after them; a signer that then
/// signed the head would vouch for the rewrite. Before signing it checks that the chain still holds this head (the
/// chain is append-only, so every later head extends it), and refuses when it does not. The file is written to a
/// temporary file, flushed and moved into place, so a crash leaves the old head or the new one, never half.
/// </summary>
public static class AuditWitness
{
    /// <summary>The witness file's name, in the operator key's directory (the data directory).</summary>
    public const string FileName = "audit-witness.json";

    /// <summary>The head recorded at <paramref name="path"/>, or null when there is none yet (a fresh install, or a signer before witnesses).</summary>
    /// <exception cref="AuditIntegrityException">The file exists but is not a witness.</exception>
    public static AuditWitnessHead? Read(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            var root = document.RootElement;
            var head = new AuditWitnessHead(
                root.GetProperty("sequence").GetInt64(),
                root.GetProperty("hash").GetString() ?? string.Empty,
                root.GetProperty("timestamp").GetInt64(),
                root.GetProperty("keyId").GetString() ?? string.Empty)
            {
                Chain = root.TryGetProperty("chain", out var chain) ? chain.GetString() ?? throw new FormatException("chain is null") : null,
            };
            return head.Sequence >= 1 && AuditCanonical.IsHash(head.Hash) && (head.Chain is null || AuditCanonical.IsChainName(head.Chain))
                ? head
                : throw new FormatException("sequence or hash out of range");
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new AuditIntegrityException($"The audit witness {path} cannot be read ({ex.Message}). It records the last head this signer signed; restore it from a backup, or remove it to trust the log as it is now.", ex);
        }
    }

    /// <summary>Records <paramref name="head"/> at <paramref name="path"/> (mode 600), replacing the previous one whole.</summary>
    public static void Write(string path, AuditWitnessHead head)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(head);
        // Owner-only, flushed to disk and renamed into place: a crash leaves the previous head or this one.
        AtomicFile.Write(path, ExistingFile.Replace, stream =>
        {
            using var writer = new Utf8JsonWriter(stream);
            writer.WriteStartObject();
            writer.WriteNumber("sequence", head.Sequence);
            writer.WriteString("hash", head.Hash);
            writer.WriteNumber("timestamp", head.Timestamp);
            writer.WriteString("keyId", head.KeyId);
            if (head.Chain is { } chain)
            {
                writer.WriteString("chain", chain);
            }
            writer.WriteEndObject();
        }, FileAccessScope.OwnerOnly);
    }

    /// <summary>
    /// Why the chain as <paramref name="transaction"/> sees it does not hold <paramref name="head"/>, or null when it
    /// does. An entry archived out of the database (below the first stored one) cannot be compared here: the archive
    /// record, which the verifier checks, vouches for those.
    /// </summary>
    internal static async Task<string?> CheckAsync(DbConnection connection, DbTransaction? transaction, AuditWitnessHead head, CancellationToken cancellationToken)
    {
        var scope = AuditChainScope.Of(head.Chain);
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT MIN(seq), MAX(seq) FROM {scope.EntriesFrom}";
        scope.Bind(command);
        string? stored;
        long? first = null, last = null;
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            if (await reader.ReadAsync(cancellationToken) && !reader.IsDBNull(0))
            {
                first = AuditStore.ToInt64(reader.GetValue(0));
                last = AuditStore.ToInt64(reader.GetValue(1));
            }
        }

        if (last is null || head.Sequence > last)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"{(scope.IsShared ? "the log" : scope.Label)} ends at {last ?? 0}, but this signer signed entry {head.Sequence} (hash {head.Hash}) at {DateTimeOffset.FromUnixTimeMilliseconds(head.Timestamp):u}: entries were removed");
        }

        if (head.Sequence < first)
        {
            return null;
        }

        using (var entry = connection.CreateCommand())
        {
            entry.Transaction = transaction;
            entry.CommandText = $"SELECT hash FROM {scope.EntriesAnd} seq = @seq";
            SqlDatabase.AddParameter(entry, "@seq", head.Sequence);
            scope.Bind(entry);
            stored = await entry.ExecuteScalarAsync(cancellationToken) is { } value and not DBNull ? Convert.ToString(value, CultureInfo.InvariantCulture) : null;
        }

        return stored == head.Hash
            ? null
            : string.Create(CultureInfo.InvariantCulture,
                $"entry {head.Sequence} has hash {stored ?? "(missing)"}, but this signer signed it with hash {head.Hash} at {DateTimeOffset.FromUnixTimeMilliseconds(head.Timestamp):u}: the chain was rewritten from there (and newer checkpoints deleted)");
    }
}
