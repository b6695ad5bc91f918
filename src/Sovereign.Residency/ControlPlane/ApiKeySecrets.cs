using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace Sovereign.Residency.ControlPlane;

/// <summary>Makes and recognises tenant API keys: 256 random bits behind a visible prefix, stored only as a hash.</summary>
public static class ApiKeySecrets
{
    /// <summary>Every tenant key starts with this, so leaked keys are recognisable (and scannable).</summary>
    public const string Prefix = "sk-sov-";

    /// <summary>Creates a key: its id, the secret (shown once), the visible prefix and the hash to store.</summary>
    public static (string Id, string Secret, string VisiblePrefix, string Hash) Create()
    {
        var id = "key_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var secret = Prefix + Base64Url(RandomNumberGenerator.GetBytes(32));
        return (id, secret, secret[..(Prefix.Length + 6)], Hash(secret));
    }

    /// <summary>Lowercase hex SHA-256 of a presented secret. A fast hash is right here: the secret has 256 bits of entropy.</summary>
    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>The length of <see cref="Hash(string)"/>'s text: 64 hex digits.</summary>
    public const int HashLength = SHA256.HashSizeInBytes * 2;

    /// <summary>
    /// <see cref="Hash(string)"/> written into <paramref name="destination"/> (<see cref="HashLength"/> characters), with
    /// nothing allocated: a gateway hashes the presented key of every request to look up its cached identity.
    /// </summary>
    public static void Hash(ReadOnlySpan<char> secret, Span<char> destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, HashLength);
        var most = Encoding.UTF8.GetMaxByteCount(secret.Length);
        byte[]? rented = null;
        var utf8 = most <= 256 ? stackalloc byte[256] : (rented = ArrayPool<byte>.Shared.Rent(most));
        try
        {
            var length = Encoding.UTF8.GetBytes(secret, utf8);
            Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(utf8[..length], digest);
            Convert.TryToHexStringLower(digest, destination, out _);
        }
        finally
        {
            // The secret's bytes do not stay behind in a buffer another caller gets.
            utf8.Clear();
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
