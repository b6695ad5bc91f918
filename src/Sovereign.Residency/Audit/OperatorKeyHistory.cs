using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Sovereign.Storage;

namespace Sovereign.Residency.Audit;

/// <summary>One operator public key of a <see cref="OperatorKeyHistory"/>.</summary>
/// <param name="KeyId">First 16 hex digits of SHA-256 over its SubjectPublicKeyInfo (computed, never taken on trust).</param>
/// <param name="PublicKeyPem">SubjectPublicKeyInfo PEM.</param>
/// <param name="CreatedAt">When it was made (unix ms), where known.</param>
/// <param name="RetiredAt">When a newer key replaced it (unix ms); null for the current key.</param>
/// <param name="CompromisedFrom">
/// From this time on (unix ms) nothing it signed is accepted: checkpoints, archive records and exports it signed at or
/// after this time are refused, and every node credential it signed is refused (a credential has no time but the one
/// its signer wrote). Null: not compromised.
/// </param>
public sealed record OperatorPublicKey(string KeyId, string PublicKeyPem, long? CreatedAt, long? RetiredAt, long? CompromisedFrom);

/// <summary>
/// Every operator key that ever signed checkpoints and node credentials, oldest first: the public halves only, with
/// when each was retired and, for a leaked one, from when it is compromised. It lives beside <c>operator-key.pem</c> as
/// <see cref="FileName"/> (written by <c>sovereign operator-key rotate</c>) and is what <c>sovereign audit public-key</c>
/// prints for auditors. Its text is a sequence of PEM public keys, each after a comment line
/// <c># key ID [created T] [retired T] [compromised-from T]</c> (times ISO 8601 UTC); a plain single PEM is a history
/// of one key, so a data directory or auditor's file from before rotation existed reads unchanged.
/// </summary>
public sealed class OperatorKeyHistory
{
    /// <summary>The history's file in the data directory, beside the operator key.</summary>
    public const string FileName = "operator-key-history.pem";

    private const string Begin = "-----BEGIN PUBLIC KEY-----";
    private const string End = "-----END PUBLIC KEY-----";
    private const string KeyLine = "# key ";

    private readonly Dictionary<string, OperatorPublicKey> _byId;

    /// <summary>
    /// A history of these keys, oldest first (at least one; ids unique), signing now with <paramref name="currentKeyId"/>
    /// (null: the newest).
    /// </summary>
    public OperatorKeyHistory(IReadOnlyList<OperatorPublicKey> keys, string? currentKeyId = null)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (keys.Count == 0)
        {
            throw new ArgumentException("An operator key history holds at least one key.", nameof(keys));
        }

        _byId = new Dictionary<string, OperatorPublicKey>(StringComparer.Ordinal);
        foreach (var key in keys)
        {
            if (!_byId.TryAdd(key.KeyId, key))
            {
                throw new FormatException($"the operator key history lists key {key.KeyId} twice");
            }
        }

        Keys = keys;
        Current = currentKeyId is null ? keys[^1]
            : _byId.TryGetValue(currentKeyId, out var current) ? current
            : throw new ArgumentException($"The current key {currentKeyId} is not in the history.", nameof(currentKeyId));
    }

    /// <summary>The keys, oldest first.</summary>
    public IReadOnlyList<OperatorPublicKey> Keys { get; }

    /// <summary>
    /// The key that signs now: the one in operator-key.pem, normally the newest (an older one while a rotation is being
    /// rolled out: the history copied to a member first, its new key after).
    /// </summary>
    public OperatorPublicKey Current { get; }

    /// <summary>
    /// The key that made signatures naming no key id (node credentials issued before credentials named their key): the
    /// oldest, which was the only key before the first rotation.
    /// </summary>
    public OperatorPublicKey Original => Keys[0];

    /// <summary>Whether more than one key is known, or any is marked: what a plain PEM cannot say.</summary>
    public bool IsPlain => Keys.Count == 1 && Keys[0].CompromisedFrom is null && Keys[0].RetiredAt is null;

    /// <summary>The key with this id, or null.</summary>
    public OperatorPublicKey? Find(string? keyId) => keyId is not null && _byId.TryGetValue(keyId, out var key) ? key : null;

    /// <summary>
    /// Why a signature by <paramref name="keyId"/> made at <paramref name="signedAt"/> (unix ms; null for a node
    /// credential, refused whenever its key is compromised) is not accepted, or null when it is.
    /// </summary>
    public string? Refusal(string keyId, long? signedAt)
    {
        if (Find(keyId) is not { } key)
        {
            return $"signed by key {keyId}, which is not in the operator key history ({string.Join(", ", Keys.Select(k => k.KeyId))})";
        }

        if (key.CompromisedFrom is { } from && (signedAt is null || signedAt >= from))
        {
            return signedAt is { } at
                ? $"signed by key {keyId} at {FormatTime(at)}, after it was marked compromised (from {FormatTime(from)})"
                : $"signed by key {keyId}, which is marked compromised (from {FormatTime(from)})";
        }

        return null;
    }

    /// <summary>A history of one key.</summary>
    public static OperatorKeyHistory Of(string publicKeyPem) =>
        new([new OperatorPublicKey(OperatorSigningKey.ComputeKeyId(publicKeyPem), Normalize(publicKeyPem), null, null, null)]);

    /// <summary>
    /// Reads a history's text: the <see cref="FileName"/> format, or a plain PEM public key (a history of one). Throws
    /// <see cref="FormatException"/> naming what is wrong.
    /// </summary>
    public static OperatorKeyHistory Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var keys = new List<OperatorPublicKey>();
        string? currentKeyId = null;
        string? comment = null;
        StringBuilder? block = null;
        var lineNumber = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNumber++;
            var line = raw.TrimEnd('\r').Trim();
            if (block is not null)
            {
                block.Append(line).Append('\n');
                if (line == End)
                {
                    keys.Add(Read(block.ToString(), comment, lineNumber));
                    if (comment is not null && comment.Split(' ').Contains("current"))
                    {
                        currentKeyId = keys[^1].KeyId;
                    }

                    block = null;
                    comment = null;
                }

                continue;
            }

            if (line == Begin)
            {
                block = new StringBuilder().Append(line).Append('\n');
            }
            else if (line.StartsWith(KeyLine, StringComparison.Ordinal))
            {
                comment = line;
            }
        }

        if (block is not null)
        {
            throw new FormatException($"the public key that starts before line {lineNumber} has no '{End}' line");
        }

        if (keys.Count == 0)
        {
            throw new FormatException($"no PEM public key ('{Begin}') was found");
        }

        return new OperatorKeyHistory(keys, currentKeyId);
    }

    /// <summary>
    /// Checks a trusted key's text: a plain PEM as <see cref="OperatorSigningKey.ComputeKeyId(string)"/> checks it (its
    /// exceptions), a history by <see cref="Parse"/> (an <see cref="ArgumentException"/> naming what is wrong).
    /// </summary>
    public static void Validate(string text)
    {
        if (text.Split(Begin).Length <= 2 && !text.Contains(KeyLine, StringComparison.Ordinal))
        {
            _ = OperatorSigningKey.ComputeKeyId(text);
            return;
        }

        try
        {
            _ = Parse(text);
        }
        catch (FormatException ex)
        {
            throw new ArgumentException($"The operator key history cannot be read: {ex.Message}.", nameof(text), ex);
        }
    }

    /// <summary>Reads the history file at <paramref name="path"/>, or null when there is none.</summary>
    public static OperatorKeyHistory? ReadFile(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return Parse(File.ReadAllText(path));
        }
        catch (FormatException ex)
        {
            throw new FormatException($"{path}: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// This history with <paramref name="currentPem"/> (the key in operator-key.pem) as the key that signs now: unchanged
    /// when it is already; the same keys in the same order when it is listed (a member given the new history before its
    /// new key, or a rotation whose new key never reached operator-key.pem); appended when missing (a key made before
    /// any history, or put in place by hand).
    /// </summary>
    public OperatorKeyHistory WithCurrent(string currentPem)
    {
        var id = OperatorSigningKey.ComputeKeyId(currentPem);
        if (Current.KeyId == id)
        {
            return this;
        }

        return Find(id) is null
            ? new OperatorKeyHistory([.. Keys, new OperatorPublicKey(id, Normalize(currentPem), null, null, null)])
            : new OperatorKeyHistory(Keys, id);
    }

    /// <summary>The text of <see cref="FileName"/> and of <c>sovereign audit public-key</c> (a plain PEM when <see cref="IsPlain"/>).</summary>
    public string ToText()
    {
        if (IsPlain)
        {
            return Keys[0].PublicKeyPem;
        }

        var text = new StringBuilder();
        text.Append("# Sovereign operator key history, oldest first: every key that signed audit checkpoints and node credentials.\n");
        text.Append("# Give the whole file to auditors ('sovereign audit verify-export FILE --public-key THIS', 'node tools/audit-verify.mjs').\n");
        foreach (var key in Keys)
        {
            text.Append(KeyLine).Append(key.KeyId);
            if (key.CreatedAt is { } created)
            {
                text.Append(" created ").Append(FormatTime(created));
            }

            if (key.RetiredAt is { } retired)
            {
                text.Append(" retired ").Append(FormatTime(retired));
            }

            if (key.CompromisedFrom is { } from)
            {
                text.Append(" compromised-from ").Append(FormatTime(from));
            }

            if (ReferenceEquals(key, Current))
            {
                text.Append(" current");
            }

            text.Append('\n').Append(key.PublicKeyPem);
        }

        return text.ToString();
    }

    /// <summary>
    /// Writes the history to <paramref name="path"/> whole: a temporary file flushed to disk, then moved into place, so
    /// a crash leaves the old history or the new, never half of one.
    /// </summary>
    public void WriteFile(string path)
    {
        // A failed write (disk full, no permission) leaves the old history and no stray temporary beside it.
        AtomicFile.WriteAllText(path, ExistingFile.Replace, ToText());
    }

    /// <summary>A unix-ms time as the history writes it: ISO 8601 UTC with milliseconds.</summary>
    public static string FormatTime(long unixMilliseconds) =>
        DateTimeOffset.FromUnixTimeMilliseconds(unixMilliseconds).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static OperatorPublicKey Read(string pem, string? comment, int lineNumber)
    {
        string id;
        try
        {
            id = OperatorSigningKey.ComputeKeyId(pem);
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            throw new FormatException($"the public key ending on line {lineNumber} is not an ECDSA P-256 key ({ex.Message})", ex);
        }

        long? created = null, retired = null, compromised = null;
        if (comment is not null)
        {
            var words = comment[KeyLine.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 0 || words[0] != id)
            {
                throw new FormatException($"the comment '{comment}' before the public key ending on line {lineNumber} names another key id than that key's ({id})");
            }

            for (var i = 1; i < words.Length; i++)
            {
                switch (words[i])
                {
                    case "current":
                        break;
                    case "created" or "retired" or "compromised-from" when i + 1 < words.Length:
                        var at = ParseTime(words[i + 1], comment);
                        if (words[i] == "created")
                        {
                            created = at;
                        }
                        else if (words[i] == "retired")
                        {
                            retired = at;
                        }
                        else
                        {
                            compromised = at;
                        }

                        i++;
                        break;
                    default:
                        throw new FormatException($"the comment '{comment}' holds '{words[i]}', which is not 'created T', 'retired T', 'compromised-from T' or 'current'");
                }
            }
        }

        return new OperatorPublicKey(id, Normalize(pem), created, retired, compromised);
    }

    private static long ParseTime(string text, string comment) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time)
            ? time.ToUnixTimeMilliseconds()
            : throw new FormatException($"the comment '{comment}' holds '{text}', which is not an ISO 8601 time");

    private static string Normalize(string pem)
    {
        using var key = OperatorSigningKey.ImportPublicKey(pem);
        return key.ExportSubjectPublicKeyInfoPem().TrimEnd('\n') + "\n";
    }
}
