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

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
