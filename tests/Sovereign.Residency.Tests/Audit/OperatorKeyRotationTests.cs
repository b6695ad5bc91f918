using Sovereign.Residency.Audit;

namespace Sovereign.Residency.Tests.Audit;

public sealed class OperatorKeyRotationTests
{
    private static readonly long Noon = DateTimeOffset.Parse("2025-01-01T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds();

    [Fact]
    public async Task LoadOrCreate_DataDirectoryWithOnlyTheOldKey_IsAHistoryOfThatKeyAndNothingIsWritten()
    {
        await using var context = AuditTestContext.Create();

        using var reloaded = OperatorSigningKey.LoadOrCreate(Path.Combine(context.Directory, "operator.pem"));

        var only = Assert.Single(reloaded.History.Keys);
        Assert.Equal(context.Key.KeyId, only.KeyId);
        Assert.True(reloaded.History.IsPlain);
        Assert.Equal(context.Key.PublicKeyPem.TrimEnd('\n'), reloaded.History.ToText().TrimEnd('\n'));
        Assert.False(File.Exists(Path.Combine(context.Directory, OperatorKeyHistory.FileName)));
    }

    [Fact]
    public async Task Rotate_ThenVerify_OldAndNewCheckpointsVerifyWithTheHistoryAndEachKeyIsNamed()
    {
        await using var context = AuditTestContext.Create();
        var keyPath = Path.Combine(context.Directory, "operator.pem");
        await using (var log = await context.OpenLogAsync())
        {
            await context.AppendManyAsync(log, 5);
            Assert.NotNull(await log.CheckpointAsync());
        }

        var rotated = OperatorKeyRotation.Rotate(keyPath, context.Time.GetUtcNow().ToUnixTimeMilliseconds());
        Assert.Equal(context.Key.KeyId, rotated.Retired.KeyId);
        using var newKey = OperatorSigningKey.LoadOrCreate(keyPath);
        Assert.Equal(rotated.Current.KeyId, newKey.KeyId);
        Assert.NotEqual(context.Key.KeyId, newKey.KeyId);
        Assert.Equal([context.Key.KeyId, newKey.KeyId], newKey.History.Keys.Select(k => k.KeyId));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyPath));
        }

        context.Time.Advance(TimeSpan.FromSeconds(1));
        await using (var log = await AuditLog.OpenAsync(context.Database, newKey, null, context.Time))
        {
            await context.AppendManyAsync(log, 3);
            Assert.Equal(newKey.KeyId, (await log.CheckpointAsync())!.KeyId);
        }

        var result = await AuditVerifier.VerifyAsync(context.Database, [newKey.History.ToText()]);

        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal(
            [(context.Key.KeyId, "retired"), (newKey.KeyId, "current")],
            result.SignedBy.Select(u => (u.KeyId, u.Status)));
        Assert.True(result.SignedBy[0].LastSequence < result.SignedBy[1].FirstSequence);

        // The old key alone does not know the new one: its checkpoints are named as signed by an unknown key.
        var oldOnly = await AuditVerifier.VerifyAsync(context.Database, context.Key.PublicKeyPem);
        Assert.Contains(oldOnly.Problems, p => p.Kind == AuditProblemKind.KeyMismatch && p.Message.Contains(newKey.KeyId, StringComparison.Ordinal));
    }

    [Fact]
    public async Task MarkCompromised_FromBeforeItsCheckpoints_RefusesThemWithAClearMessage_FromAfter_KeepsThem()
    {
        await using var context = AuditTestContext.Create();
        var keyPath = Path.Combine(context.Directory, "operator.pem");
        await using (var log = await context.OpenLogAsync())
        {
            await context.AppendManyAsync(log, 4);
            await log.CheckpointAsync();
        }

        var signedAt = context.Time.GetUtcNow().ToUnixTimeMilliseconds();
        OperatorKeyRotation.Rotate(keyPath, signedAt + 10);

        // Marked from after its last signature: what it signed before still counts.
        var later = OperatorKeyRotation.MarkCompromised(keyPath, context.Key.KeyId, signedAt + 5);
        var kept = await AuditVerifier.VerifyAsync(context.Database, [later.ToText()]);
        Assert.True(kept.Valid, string.Join("\n", kept.Problems));
        Assert.Equal("compromised", Assert.Single(kept.SignedBy).Status);

        // Marked from before it: refused, named, and the log is no longer trusted.
        var earlier = OperatorKeyRotation.MarkCompromised(keyPath, context.Key.KeyId, signedAt - 1);
        var refused = await AuditVerifier.VerifyAsync(context.Database, [earlier.ToText()]);
        Assert.False(refused.Valid);
        var problem = Assert.Single(refused.Problems, p => p.Kind == AuditProblemKind.CompromisedKey);
        Assert.Contains($"signed by key {context.Key.KeyId}", problem.Message, StringComparison.Ordinal);
        Assert.Contains("marked compromised", problem.Message, StringComparison.Ordinal);
        Assert.Equal(AuditVerdict.Tampered, refused.Verdict);
    }

    [Fact]
    public async Task MarkCompromised_TheCurrentKey_IsRefused_AndACompromisedCurrentKeyIsNotLoaded()
    {
        await using var context = AuditTestContext.Create();
        var keyPath = Path.Combine(context.Directory, "operator.pem");

        var refused = Assert.Throws<ArgumentException>(() => OperatorKeyRotation.MarkCompromised(keyPath, context.Key.KeyId, Noon));
        Assert.Contains("rotate", refused.Message, StringComparison.Ordinal);

        // A history copied in by hand that marks the key operator-key.pem holds: the key is not used to sign.
        var marked = new OperatorKeyHistory([OperatorKeyHistory.Of(context.Key.PublicKeyPem).Current with { CompromisedFrom = Noon }]);
        marked.WriteFile(OperatorKeyRotation.HistoryPath(keyPath));
        var error = Assert.Throws<InvalidOperationException>(() => OperatorSigningKey.LoadOrCreate(keyPath));
        Assert.Contains("marked compromised", error.Message, StringComparison.Ordinal);

        // Rotating with the mark recovers: the new key loads.
        OperatorKeyRotation.Rotate(keyPath, Noon + 1);
        using var fresh = OperatorSigningKey.LoadOrCreate(keyPath);
        Assert.Equal(Noon, fresh.History.Find(context.Key.KeyId)!.CompromisedFrom);
    }

    [Fact]
    public async Task LoadOrCreate_TheNewHistoryBesideTheOldKey_SignsWithTheOldKeyAndTrustsTheNewOne()
    {
        // A member of a cluster rotation given the history first: it keeps signing with the key it holds, and already
        // accepts what the new key signs (credentials of nodes that hold it, checkpoints of gateways that moved).
        await using var context = AuditTestContext.Create();
        var elsewhere = Path.Combine(context.Directory, "operator-machine", "operator.pem");
        Directory.CreateDirectory(Path.GetDirectoryName(elsewhere)!);
        File.Copy(Path.Combine(context.Directory, "operator.pem"), elsewhere);
        var rotated = OperatorKeyRotation.Rotate(elsewhere, Noon);
        File.Copy(OperatorKeyRotation.HistoryPath(elsewhere), Path.Combine(context.Directory, OperatorKeyHistory.FileName));

        using var member = OperatorSigningKey.LoadOrCreate(Path.Combine(context.Directory, "operator.pem"));

        Assert.Equal(context.Key.KeyId, member.KeyId);
        Assert.Equal(context.Key.KeyId, member.History.Current.KeyId);
        Assert.Equal(context.Key.KeyId, member.History.Original.KeyId);
        Assert.Null(member.History.Refusal(rotated.Current.KeyId, Noon + 1));
        Assert.Equal(member.History.Current.KeyId, OperatorKeyHistory.Parse(member.History.ToText()).Current.KeyId);
    }

    [Fact]
    public void Parse_TheHistoryText_RoundTrips_AndAWrongKeyIdIsRefused()
    {
        using var a = OperatorSigningKey.CreateEphemeral();
        using var b = OperatorSigningKey.CreateEphemeral();
        var history = new OperatorKeyHistory([
            OperatorKeyHistory.Of(a.PublicKeyPem).Current with { CreatedAt = Noon - 1000, RetiredAt = Noon, CompromisedFrom = Noon - 500 },
            OperatorKeyHistory.Of(b.PublicKeyPem).Current with { CreatedAt = Noon },
        ]);

        var text = history.ToText();
        var parsed = OperatorKeyHistory.Parse(text);

        Assert.Equal(history.Keys, parsed.Keys);
        Assert.Equal(b.KeyId, parsed.Current.KeyId);
        Assert.Equal(a.KeyId, parsed.Original.KeyId);
        Assert.Null(parsed.Refusal(a.KeyId, Noon - 501));
        Assert.NotNull(parsed.Refusal(a.KeyId, Noon - 500));
        Assert.NotNull(parsed.Refusal(a.KeyId, null));
        Assert.Null(parsed.Refusal(b.KeyId, null));
        Assert.Contains("not in the operator key history", parsed.Refusal("0123456789abcdef", Noon), StringComparison.Ordinal);

        var forged = text.Replace($"# key {a.KeyId}", "# key 0123456789abcdef", StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => OperatorKeyHistory.Parse(forged));
        Assert.Single(OperatorKeyHistory.Parse(a.PublicKeyPem).Keys);
    }
}
