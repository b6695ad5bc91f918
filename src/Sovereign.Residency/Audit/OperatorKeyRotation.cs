using System.Security.Cryptography;
using System.Text;
using Sovereign.Storage;

namespace Sovereign.Residency.Audit;

/// <summary>What a rotation did.</summary>
/// <param name="Retired">The key that signed until now (retired, and compromised when asked).</param>
/// <param name="Current">The new key, in operator-key.pem from now on.</param>
/// <param name="History">The history written.</param>
public sealed record OperatorKeyRotated(OperatorPublicKey Retired, OperatorPublicKey Current, OperatorKeyHistory History);

/// <summary>
/// Rotates the operator key in a data directory (<c>sovereign operator-key rotate</c>) and marks a retired key
/// compromised. Both change files only: the new private key replaces operator-key.pem, the public halves go to
/// <see cref="OperatorKeyHistory.FileName"/>. One change at a time per directory (a lock file); each step leaves a
/// directory that loads: the history is written before the new key is moved into place, so a crash between the two
/// leaves the old key signing and the new one trusted but unused, and no public half is ever lost.
/// </summary>
public static class OperatorKeyRotation
{
    private const string LockFile = "operator-key.lock";

    /// <summary>
    /// Makes a new key the current one; the old one is retired at <paramref name="now"/> and, when
    /// <paramref name="compromisedFrom"/> is given, marked compromised from then (at most <paramref name="now"/>).
    /// </summary>
    public static OperatorKeyRotated Rotate(string keyPath, long now, long? compromisedFrom = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyPath);
        if (compromisedFrom > now)
        {
            throw new ArgumentException("A key cannot be marked compromised from a time after its rotation.", nameof(compromisedFrom));
        }

        if (!File.Exists(keyPath))
        {
            throw new FileNotFoundException($"The operator key {keyPath} does not exist: there is nothing to rotate.", keyPath);
        }

        using var turn = Lock(keyPath);
        var historyPath = HistoryPath(keyPath);

        // The old key as it is, compromised or not (loading it to sign would refuse a compromised one).
        using var old = OperatorSigningKey.FromPem(File.ReadAllText(keyPath));
        var history = (OperatorKeyHistory.ReadFile(historyPath) ?? OperatorKeyHistory.Of(old.PublicKeyPem)).WithCurrent(old.PublicKeyPem);
        using var fresh = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var freshPem = fresh.ExportSubjectPublicKeyInfoPem();
        var retired = history.Current with { RetiredAt = now, CompromisedFrom = compromisedFrom ?? history.Current.CompromisedFrom };
        var current = new OperatorPublicKey(OperatorSigningKey.ComputeKeyId(freshPem), OperatorKeyHistory.Of(freshPem).Current.PublicKeyPem, now, null, null);
        var rotated = new OperatorKeyHistory([.. history.Keys.Select(k => k.KeyId == retired.KeyId ? retired : k), current]);

        // New private key beside the old (owner-only, on disk), then the history that trusts it, then the swap.
        using (var key = AtomicFileWriter.Begin(keyPath, ExistingFile.Replace, FileAccessScope.OwnerOnly))
        {
            key.Stream.Write(Encoding.UTF8.GetBytes(fresh.ExportPkcs8PrivateKeyPem()));
            key.Close();
            rotated.WriteFile(historyPath);
            key.Commit();
        }

        return new OperatorKeyRotated(retired, current, rotated);
    }

    /// <summary>
    /// Marks a retired key compromised from <paramref name="from"/>: its signatures from then on, and every node
    /// credential it signed, are refused. The current key cannot be marked: rotate it (with its mark) instead.
    /// </summary>
    public static OperatorKeyHistory MarkCompromised(string keyPath, string keyId, long from)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyPath);
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        using var turn = Lock(keyPath);
        var historyPath = HistoryPath(keyPath);
        using var current = OperatorSigningKey.FromPem(File.ReadAllText(keyPath));
        var history = (OperatorKeyHistory.ReadFile(historyPath) ?? OperatorKeyHistory.Of(current.PublicKeyPem)).WithCurrent(current.PublicKeyPem);
        var key = history.Find(keyId) ?? throw new ArgumentException(
            $"The operator key history ({historyPath}) holds no key {keyId}; it holds {string.Join(", ", history.Keys.Select(k => k.KeyId))}.", nameof(keyId));
        if (key.KeyId == history.Current.KeyId)
        {
            throw new ArgumentException(
                $"Key {keyId} is the current key (it signs now): rotate it and mark it in one step ('sovereign operator-key rotate --compromised-from TIME').", nameof(keyId));
        }

        var marked = new OperatorKeyHistory(history.Keys.Select(k => k.KeyId == keyId ? k with { CompromisedFrom = Math.Min(from, k.CompromisedFrom ?? long.MaxValue) } : k).ToList(), history.Current.KeyId);
        marked.WriteFile(historyPath);
        return marked;
    }

    /// <summary>The history file beside <paramref name="keyPath"/>.</summary>
    public static string HistoryPath(string keyPath) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(keyPath)) ?? ".", OperatorKeyHistory.FileName);

    private static FileStream Lock(string keyPath)
    {
        var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(keyPath)) ?? ".", LockFile);
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex)
        {
            throw new IOException($"Another change of the operator key in {Path.GetDirectoryName(path)} is running ({ex.Message}); try again when it has finished.", ex);
        }
    }
}
