using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sovereign.Residency.ControlPlane;

/// <summary>What a node credential asserts, signed by the operator.</summary>
/// <param name="Node">Node id.</param>
/// <param name="Jurisdiction">ISO 3166-1 alpha-2 country the node runs in.</param>
/// <param name="Kind">local or external.</param>
/// <param name="Url">For external nodes, the engine's base URL (so a credential cannot be moved to another engine).</param>
/// <param name="IssuedAt">Unix milliseconds.</param>
/// <param name="Pool">The pool the operator put the node in (prices and reservations are per pool), or null.</param>
/// <param name="DeviceClass">The device class the operator named for the node (prices), or null: derived from its report.</param>
/// <param name="KeyId">The id of the operator key that signed it; null in credentials issued before keys rotated, which
/// the operator's original key (the oldest of its key history) signed.</param>
public sealed record NodeClaims(
    [property: JsonPropertyName("node")] string Node,
    [property: JsonPropertyName("jurisdiction")] string Jurisdiction,
    [property: JsonPropertyName("kind")] string Kind,
    [property: JsonPropertyName("url")] string? Url,
    [property: JsonPropertyName("issued_at")] long IssuedAt,
    [property: JsonPropertyName("pool"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Pool = null,
    [property: JsonPropertyName("device_class"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? DeviceClass = null,
    [property: JsonPropertyName("key_id"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? KeyId = null);

/// <summary>
/// Operator-signed node credentials (<c>v1.&lt;claims&gt;.&lt;signature&gt;</c>, base64url, ECDSA P-256 over the
/// claims bytes). A node's jurisdiction is a claim the operator signed, not a label anyone can edit: the router
/// trusts a node's jurisdiction only when its credential verifies and agrees with the registry row.
/// </summary>
public static class NodeCredentials
{
    private const string Version = "v1";

    /// <summary>Issues a credential for the claims, naming the key that signs it (<see cref="NodeClaims.KeyId"/>).</summary>
    public static string Issue(NodeClaims claims, Audit.OperatorSigningKey operatorKey)
    {
        ArgumentNullException.ThrowIfNull(claims);
        ArgumentNullException.ThrowIfNull(operatorKey);
        var payload = JsonSerializer.SerializeToUtf8Bytes(claims with { KeyId = operatorKey.KeyId });
        var signature = operatorKey.Sign(payload);
        return $"{Version}.{Base64Url(payload)}.{Base64Url(signature)}";
    }

    /// <summary>
    /// Verifies a credential against the operator's public key (PEM) or key history (its text); returns its claims, or
    /// null with the reason.
    /// </summary>
    public static NodeClaims? Verify(string credential, string operatorPublicKeyPem, out string? problem) =>
        Verify(credential, Audit.OperatorKeyHistory.Parse(operatorPublicKeyPem), out problem);

    /// <summary>
    /// Verifies a credential against the operator's key history: with the key it names (none named: the original key,
    /// the only one before rotation), which must be in the history and not marked compromised (a leaked key could have
    /// signed any credential, whatever time it wrote in it). Returns its claims, or null with the reason.
    /// </summary>
    public static NodeClaims? Verify(string credential, Audit.OperatorKeyHistory operatorKeys, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(operatorKeys);
        var parts = (credential ?? "").Split('.');
        string? keyId = null;
        if (parts.Length == 3 && parts[0] == Version)
        {
            try
            {
                using var claims = JsonDocument.Parse(FromBase64Url(parts[1]));
                keyId = claims.RootElement.ValueKind == JsonValueKind.Object && claims.RootElement.TryGetProperty("key_id", out var named) && named.ValueKind == JsonValueKind.String
                    ? named.GetString()
                    : null;
            }
            catch (Exception ex) when (ex is FormatException or JsonException)
            {
                // Reported below, where the signature check reads the same parts.
            }
        }

        // The named key is the credential's unverified word, and the reason is logged (4111, 4152): shown escaped.
        var signer = keyId is null ? operatorKeys.Original : operatorKeys.Find(keyId);
        if (signer is null)
        {
            problem = $"the credential is signed by key {DisplayText.Shortened(keyId!, 64)}, which is not in the operator key history ({string.Join(", ", operatorKeys.Keys.Select(k => k.KeyId))})";
            return null;
        }

        using var key = Audit.OperatorSigningKey.ImportPublicKey(signer.PublicKeyPem);
        var verified = Verify(credential!, key, out problem);
        if (verified is not null && operatorKeys.Refusal(signer.KeyId, null) is { } refusal)
        {
            problem = $"the credential is {refusal}: the node must join again (a new join token) or be registered again";
            return null;
        }

        return verified;
    }

    /// <summary>Verifies a credential; returns its claims, or null with the reason.</summary>
    public static NodeClaims? Verify(string credential, ECDsa operatorPublicKey, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(operatorPublicKey);
        problem = null;
        var parts = (credential ?? "").Split('.');
        if (parts.Length != 3 || parts[0] != Version)
        {
            problem = "the credential is not a v1 node credential";
            return null;
        }

        byte[] payload, signature;
        try
        {
            payload = FromBase64Url(parts[1]);
            signature = FromBase64Url(parts[2]);
        }
        catch (FormatException)
        {
            problem = "the credential is not valid base64url";
            return null;
        }

        if (!operatorPublicKey.VerifyData(payload, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation))
        {
            problem = "the credential's signature does not verify with the operator key";
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<NodeClaims>(payload) ?? throw new JsonException();
        }
        catch (JsonException)
        {
            problem = "the credential's claims are malformed";
            return null;
        }
    }

    /// <summary>Checks that a verified credential matches a node's declared id, jurisdiction, kind and URL.</summary>
    public static string? Mismatch(NodeClaims claims, string node, string jurisdiction, string kind, string? url) =>
        claims.Node != node ? $"the credential is for node '{claims.Node}', not '{node}'"
        : !string.Equals(claims.Jurisdiction, jurisdiction, StringComparison.OrdinalIgnoreCase) ? $"the credential binds jurisdiction {claims.Jurisdiction}, not {jurisdiction}"
        : !string.Equals(claims.Kind, kind, StringComparison.OrdinalIgnoreCase) ? $"the credential is for a {claims.Kind} node"
        : !string.Equals(claims.Url?.TrimEnd('/'), url?.TrimEnd('/'), StringComparison.Ordinal) ? "the credential is for another URL"
        : null;

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static byte[] FromBase64Url(string text)
    {
        var s = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(s.PadRight(s.Length + ((4 - (s.Length % 4)) % 4), '='));
    }
}
