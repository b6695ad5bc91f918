using System.Text.Json;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Residency.Tests.ControlPlane;

public sealed class NodeCredentialKeyHistoryTests
{
    private const long Noon = 1_735_732_800_000;

    private static readonly NodeClaims Claims = new("node-th-1", "TH", "Local", "http://10.0.0.1:8080", Noon, "th-h100", "h100");

    [Fact]
    public void Issue_NamesTheSigningKey()
    {
        using var key = OperatorSigningKey.CreateEphemeral();

        var claims = NodeCredentials.Verify(NodeCredentials.Issue(Claims, key), key.PublicKeyPem, out var problem);

        Assert.Null(problem);
        Assert.Equal(key.KeyId, claims!.KeyId);
    }

    [Fact]
    public void Verify_OldKeyCredentialAfterRotation_IsAcceptedUntilTheKeyIsMarkedCompromised_ThenRefused()
    {
        using var old = OperatorSigningKey.CreateEphemeral();
        using var current = OperatorSigningKey.CreateEphemeral();
        var named = NodeCredentials.Issue(Claims, old);
        var legacy = LegacyCredential(Claims, old); // issued before credentials named their key
        var rotated = History(old, current, compromisedFrom: null);

        Assert.NotNull(NodeCredentials.Verify(named, rotated, out var problem));
        Assert.Null(problem);
        Assert.NotNull(NodeCredentials.Verify(legacy, rotated, out problem));
        Assert.Null(problem);
        Assert.NotNull(NodeCredentials.Verify(NodeCredentials.Issue(Claims, current), rotated, out _));

        // Compromised from any time: a credential carries only the time its signer wrote, so every one it signed goes.
        var compromised = History(old, current, compromisedFrom: Noon + 1);
        Assert.Null(NodeCredentials.Verify(named, compromised, out problem));
        Assert.Contains($"signed by key {old.KeyId}, which is marked compromised", problem, StringComparison.Ordinal);
        Assert.Contains("join again", problem, StringComparison.Ordinal);
        Assert.Null(NodeCredentials.Verify(legacy, compromised, out problem));
        Assert.Contains("marked compromised", problem, StringComparison.Ordinal);
        Assert.NotNull(NodeCredentials.Verify(NodeCredentials.Issue(Claims, current), compromised, out _));

        // The history's text, as gateways and joined nodes hold it, decides the same.
        Assert.Null(NodeCredentials.Verify(named, compromised.ToText(), out _));
        Assert.NotNull(NodeCredentials.Verify(named, rotated.ToText(), out _));
    }

    [Fact]
    public void Verify_CredentialOfAKeyNotInTheHistory_IsRefusedNamingIt_AndALegacyOneIsCheckedWithTheOriginalKey()
    {
        using var original = OperatorSigningKey.CreateEphemeral();
        using var current = OperatorSigningKey.CreateEphemeral();
        using var stranger = OperatorSigningKey.CreateEphemeral();

        Assert.Null(NodeCredentials.Verify(NodeCredentials.Issue(Claims, stranger), History(original, current, null), out var problem));
        Assert.Contains($"signed by key {stranger.KeyId}, which is not in the operator key history", problem, StringComparison.Ordinal);

        // No key named: the original key's, not whichever key happens to verify it.
        Assert.Null(NodeCredentials.Verify(LegacyCredential(Claims, current), History(original, current, null), out problem));
        Assert.Contains("does not verify", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_CredentialNamingAHostileKeyId_ReportsItEscapedAndShort()
    {
        // Whoever reaches a gateway can present a credential; the key id it names is read before any signature check
        // and goes into the refusal the gateway logs.
        using var key = OperatorSigningKey.CreateEphemeral();
        var hostile = "\u001b]52;c;cm0gLXJm\u0007\r\n" + new string('x', 5_000);
        var payload = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object> { ["node_id"] = "n", ["key_id"] = hostile });
        var credential = "v1." + Convert.ToBase64String(payload).TrimEnd('=').Replace('+', '-').Replace('/', '_') + ".AAAA";

        Assert.Null(NodeCredentials.Verify(credential, key.PublicKeyPem, out var problem));

        Assert.Contains("which is not in the operator key history", problem, StringComparison.Ordinal);
        Assert.DoesNotContain('\u001b', problem!);
        Assert.DoesNotContain('\u0007', problem!);
        Assert.DoesNotContain('\n', problem!);
        Assert.True(problem!.Length < 400, problem.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    private static OperatorKeyHistory History(OperatorSigningKey old, OperatorSigningKey current, long? compromisedFrom) => new([
        OperatorKeyHistory.Of(old.PublicKeyPem).Current with { RetiredAt = Noon, CompromisedFrom = compromisedFrom },
        OperatorKeyHistory.Of(current.PublicKeyPem).Current with { CreatedAt = Noon },
    ]);

    /// <summary>A credential as releases before key ids wrote it: the claims without <c>key_id</c>.</summary>
    private static string LegacyCredential(NodeClaims claims, OperatorSigningKey key)
    {
        var payload = JsonSerializer.SerializeToUtf8Bytes(claims);
        Assert.DoesNotContain("key_id", System.Text.Encoding.UTF8.GetString(payload), StringComparison.Ordinal);
        return $"v1.{Base64Url(payload)}.{Base64Url(key.Sign(payload))}";
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
