using System.Security.Cryptography;
using Sovereign.Storage;

namespace Sovereign.Residency.Audit;

/// <summary>
/// The operator's ECDSA P-256 key that signs audit checkpoints and exports. The private key stays on the operator's
/// machine (PKCS#8 PEM, mode 600); auditors get <see cref="PublicKeyPem"/> and check signatures offline.
/// </summary>
public sealed class OperatorSigningKey : IDisposable
{
    private readonly ECDsa _key;

    // ECDsa instances are not documented as thread-safe; the writer and an export may sign at the same time.
    private readonly Lock _signLock = new();

    private OperatorSigningKey(ECDsa key)
    {
        _key = key;
        PublicKeyPem = key.ExportSubjectPublicKeyInfoPem();
        KeyId = ComputeKeyId(key.ExportSubjectPublicKeyInfo());
        History = OperatorKeyHistory.Of(PublicKeyPem);
    }

    /// <summary>
    /// Every operator key this one follows (<see cref="OperatorKeyHistory.FileName"/> beside the key file), this one
    /// last: what signatures are checked against. A key with no history file is a history of itself alone.
    /// </summary>
    public OperatorKeyHistory History { get; private set; }

    /// <summary>The public key (SubjectPublicKeyInfo PEM) to hand to auditors.</summary>
    public string PublicKeyPem { get; }

    /// <summary>First 16 hex digits of SHA-256 over the SubjectPublicKeyInfo DER.</summary>
    public string KeyId { get; }

    /// <summary>
    /// Loads the PEM private key at <paramref name="path"/>, or creates a new P-256 key there (mode 600 on Unix,
    /// written to a temporary file and moved into place so a crash never leaves half a key).
    /// </summary>
    public static OperatorSigningKey LoadOrCreate(string path)
    {
        var key = LoadOrCreateKey(path);
        try
        {
            return key.WithHistoryBeside(path);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Takes the key history kept beside <paramref name="keyPath"/> (none: this key alone). Refuses a key the history
    /// marks compromised: nothing it signs would be accepted, so the operator must rotate it first.
    /// </summary>
    private OperatorSigningKey WithHistoryBeside(string keyPath)
    {
        var historyPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(keyPath)) ?? ".", OperatorKeyHistory.FileName);
        History = (OperatorKeyHistory.ReadFile(historyPath) ?? History).WithCurrent(PublicKeyPem);
        if (History.Current.CompromisedFrom is { } from)
        {
            // A setting-like refusal (serve: "cannot start", exit 2), not a broken key.
            throw new InvalidOperationException(
                $"The operator key {KeyId} in {keyPath} is marked compromised (from {OperatorKeyHistory.FormatTime(from)}) in {historyPath}: " +
                "nothing it signs would be accepted. Rotate it ('sovereign operator-key rotate --data-dir DIR'), then start again.");
        }

        return this;
    }

    private static OperatorSigningKey LoadOrCreateKey(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (File.Exists(path))
        {
            return FromPem(File.ReadAllText(path));
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        try
        {
            try
            {
                AtomicFile.WriteAllText(path, ExistingFile.Refuse, key.ExportPkcs8PrivateKeyPem(), FileAccessScope.OwnerOnly);
            }
            catch (AtomicFileExistsException)
            {
                // Another process created the key first: use theirs, so there is only ever one operator key.
                key.Dispose();
                return FromPem(File.ReadAllText(path));
            }

            return new OperatorSigningKey(key);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <summary>Loads a PEM private key (PKCS#8 or SEC1 "EC PRIVATE KEY"); it must be P-256.</summary>
    public static OperatorSigningKey FromPem(string privateKeyPem)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(privateKeyPem);
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(privateKeyPem);
            if (key.KeySize != 256 || key.ExportParameters(false).Curve.Oid.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
            {
                throw new CryptographicException("The operator signing key must be ECDSA P-256.");
            }

            return new OperatorSigningKey(key);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <summary>A fresh in-memory key (tests, throwaway tooling).</summary>
    public static OperatorSigningKey CreateEphemeral() => new(ECDsa.Create(ECCurve.NamedCurves.nistP256));

    /// <summary>The key id of a public key given as SubjectPublicKeyInfo PEM.</summary>
    public static string ComputeKeyId(string publicKeyPem)
    {
        using var key = ImportPublicKey(publicKeyPem);
        return ComputeKeyId(key.ExportSubjectPublicKeyInfo());
    }

    /// <summary>SHA-256 over the SubjectPublicKeyInfo DER, all 64 hex digits (the key id is its first 16).</summary>
    public static string ComputeFingerprint(string publicKeyPem)
    {
        using var key = ImportPublicKey(publicKeyPem);
        return Convert.ToHexStringLower(SHA256.HashData(key.ExportSubjectPublicKeyInfo()));
    }

    /// <summary>Signs with SHA-256; the signature is IEEE P1363 (r||s, 64 bytes).</summary>
    public byte[] Sign(ReadOnlySpan<byte> data)
    {
        lock (_signLock)
        {
            return _key.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
    }

    /// <inheritdoc />
    public void Dispose() => _key.Dispose();

    /// <summary>Imports a P-256 public key from SubjectPublicKeyInfo PEM (what auditors hold).</summary>
    internal static ECDsa ImportPublicKey(string publicKeyPem)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(publicKeyPem);
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(publicKeyPem);
            if (key.KeySize != 256)
            {
                throw new CryptographicException("The operator key must be ECDSA P-256.");
            }

            return key;
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    internal static bool Verify(ECDsa publicKey, ReadOnlySpan<byte> data, string signatureHex)
    {
        if (signatureHex.Length != 128)
        {
            return false;
        }

        Span<byte> signature = stackalloc byte[64];
        if (Convert.FromHexString(signatureHex, signature, out _, out var written) != System.Buffers.OperationStatus.Done || written != 64)
        {
            return false;
        }

        return publicKey.VerifyData(data, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    private static string ComputeKeyId(byte[] subjectPublicKeyInfo) => Convert.ToHexStringLower(SHA256.HashData(subjectPublicKeyInfo))[..16];
}
