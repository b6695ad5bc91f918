using Microsoft.Data.Sqlite;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>sovereign operator-key rotate</c> on a data directory that held only the original key (as every release before
/// rotation left it): the log signed before and after verifies with <c>audit verify</c> and, given the key history
/// <c>audit public-key</c> prints, with <c>audit verify-export</c> and <c>tools/audit-verify.mjs</c> (Node, as the other
/// auditor tests run it); each names which key signed what. Marked compromised, the old key's signatures are refused.
/// </summary>
public sealed class OperatorKeyRotationCliTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-signkey-").FullName;

    private SqlDatabase Database => SqlDatabase.Sqlite(Path.Combine(_directory, "sovereign.db"));

    private string KeyPath => Path.Combine(_directory, "operator-key.pem");

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Rotate_ThenVerifyAndVerifyExportAndTheJsVerifier_AcceptBothKeysAndNameThem_CompromisedIsRefused()
    {
        // An upgrade: a data directory with operator-key.pem alone, its log signed by it.
        string oldKeyId, newKeyId;
        using (var original = OperatorSigningKey.LoadOrCreate(KeyPath))
        {
            oldKeyId = original.KeyId;
            await AppendAndSignAsync(original, "acme", "globex");
        }

        var oldExport = await ExportAsync("before.jsonl");
        var oldPem = await PublicKeyAsync("original.pem");
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(await File.ReadAllTextAsync(oldPem), "BEGIN PUBLIC KEY"));

        var (exit, stdout, stderr) = await CliProcess.RunAsync("operator-key", "rotate", "--data-dir", _directory);
        Assert.True(exit == 0, $"exit {exit}: {stderr}");
        Assert.Contains($"Retired key {oldKeyId}", stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(_directory, OperatorKeyHistory.FileName)));

        using (var rotated = OperatorSigningKey.LoadOrCreate(KeyPath))
        {
            newKeyId = rotated.KeyId;
            Assert.NotEqual(oldKeyId, newKeyId);
            await AppendAndSignAsync(rotated, "acme");
        }

        var newExport = await ExportAsync("after.jsonl");
        (exit, stdout, stderr) = await CliProcess.RunAsync("operator-key", "list", "--data-dir", _directory);
        Assert.True(exit == 0, stderr);
        Assert.Matches($@"{oldKeyId}\s+retired", stdout);
        Assert.Matches($@"{newKeyId}\s+current", stdout);

        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory);
        Assert.True(exit == 0, $"exit {exit}: {stdout}{stderr}");
        Assert.Contains($"Signed by key {oldKeyId} (retired)", stdout, StringComparison.Ordinal);
        Assert.Contains($"Signed by key {newKeyId} (current)", stdout, StringComparison.Ordinal);

        var history = await PublicKeyAsync("history.pem");
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(await File.ReadAllTextAsync(history), "BEGIN PUBLIC KEY").Count);
        foreach (var export in new[] { oldExport, newExport })
        {
            (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", export, "--public-key", history);
            Assert.True(exit == 0, $"{export}: exit {exit}: {stdout}{stderr}");
        }

        var (jsExit, js) = await AuditVerifyScript.RunAsync(oldExport, history);
        Assert.True(jsExit == 0, js);
        Assert.Contains($"signed by key {oldKeyId} (retired)", js, StringComparison.Ordinal);
        (jsExit, js) = await AuditVerifyScript.RunAsync(newExport, history);
        Assert.True(jsExit == 0, js);
        Assert.Contains($"signed by key {newKeyId} (current)", js, StringComparison.Ordinal);

        // The console's auditor page (/console/verify) takes the pasted history too.
        Assert.Contains("(ok): Verified", await VerifyInConsoleAsync(oldExport, history), StringComparison.Ordinal);
        Assert.Contains("(ok): Verified", await VerifyInConsoleAsync(newExport, history), StringComparison.Ordinal);

        // The original key alone does not vouch for what the new one signed.
        (jsExit, js) = await AuditVerifyScript.RunAsync(newExport, oldPem);
        Assert.True(jsExit == 3, js);
        Assert.Contains($"signed by key {newKeyId}, not the trusted key {oldKeyId}", js, StringComparison.Ordinal);

        // The old key leaked, long before it signed anything: all it signed is refused, what the new key signed stands.
        (exit, stdout, stderr) = await CliProcess.RunAsync("operator-key", "compromised", oldKeyId, "--from", "2020-01-01T00:00:00Z", "--data-dir", _directory);
        Assert.True(exit == 0, $"exit {exit}: {stderr}");
        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory);
        Assert.True(exit == 3, $"exit {exit}: {stdout}{stderr}");
        Assert.Contains($"CompromisedKey: Checkpoint signed by key {oldKeyId} at ", stdout, StringComparison.Ordinal);
        Assert.Contains("after it was marked compromised (from 2020-01-01T00:00:00.000Z)", stdout, StringComparison.Ordinal);

        var marked = await PublicKeyAsync("marked.pem");
        (exit, stdout, _) = await CliProcess.RunAsync("audit", "verify-export", oldExport, "--public-key", marked);
        Assert.True(exit == 3, stdout);
        Assert.Contains("CompromisedKey", stdout, StringComparison.Ordinal);
        (jsExit, js) = await AuditVerifyScript.RunAsync(oldExport, marked);
        Assert.True(jsExit == 3, js);
        Assert.Contains("after it was marked compromised (from 2020-01-01T00:00:00.000Z)", js, StringComparison.Ordinal);
        (jsExit, js) = await AuditVerifyScript.RunAsync(newExport, marked);
        Assert.True(jsExit == 0, js);
        var page = await VerifyInConsoleAsync(oldExport, marked);
        Assert.Contains("(bad): Does not verify", page, StringComparison.Ordinal);
        Assert.Contains("after it was marked compromised (from 2020-01-01T00:00:00.000Z)", page, StringComparison.Ordinal);
        Assert.Contains("(ok): Verified", await VerifyInConsoleAsync(newExport, marked), StringComparison.Ordinal);

        // The current key cannot be marked: it would sign what nobody accepts.
        (exit, _, stderr) = await CliProcess.RunAsync("operator-key", "compromised", newKeyId, "--from", "now", "--data-dir", _directory);
        Assert.True(exit == 2, stderr);
        Assert.Contains("rotate", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OperatorKeyCommands_OnAnUnreadableHistoryOrKey_AreUsageErrorsThatChangeNothing()
    {
        using (OperatorSigningKey.LoadOrCreate(KeyPath))
        {
        }

        var historyPath = Path.Combine(_directory, OperatorKeyHistory.FileName);
        await File.WriteAllTextAsync(historyPath, "# key 0123456789abcdef\n-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n");
        var keyBefore = await File.ReadAllTextAsync(KeyPath);
        foreach (var args in new[] { new[] { "operator-key", "rotate" }, ["operator-key", "list"], ["operator-key", "compromised", "0123456789abcdef", "--from", "now"], ["audit", "public-key"] })
        {
            var (exit, stdout, stderr) = await CliProcess.RunAsync([.. args, "--data-dir", _directory]);
            Assert.True(exit == 2, $"{string.Join(' ', args)}: exit {exit}: {stdout}{stderr}");
            Assert.DoesNotContain("defect", stderr, StringComparison.Ordinal);
        }

        Assert.Equal(keyBefore, await File.ReadAllTextAsync(KeyPath));

        // A key file that holds no private key: refused, named, nothing written.
        File.Delete(historyPath);
        await File.WriteAllTextAsync(KeyPath, "not a key\n");
        var (code, _, error) = await CliProcess.RunAsync("operator-key", "rotate", "--data-dir", _directory);
        Assert.True(code == 2, $"exit {code}: {error}");
        Assert.DoesNotContain("(Parameter", error, StringComparison.Ordinal);
        Assert.False(File.Exists(historyPath));
    }

    private async Task AppendAndSignAsync(OperatorSigningKey key, params string[] tenants)
    {
        await using var log = await AuditLog.OpenAsync(Database, key, new AuditLogOptions());
        foreach (var tenant in tenants)
        {
            await log.AppendAsync(new AuditRecord
            {
                Kind = AuditKind.Inference,
                Tenant = tenant,
                Actor = "key-" + tenant,
                Action = AuditActions.InferenceRefused,
                Gateway = "gw-th",
                Jurisdiction = "TH",
                Decision = AuditDecision.Refused,
                DecisionCode = "jurisdiction_not_allowed",
            });
        }

        Assert.NotNull(await log.CheckpointAsync());
    }

    private async Task<string> ExportAsync(string name)
    {
        var file = Path.Combine(_directory, name);
        var (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", _directory, "-o", file);
        Assert.True(exit == 0, $"exit {exit}: {stderr}");
        return file;
    }

    private async Task<string> PublicKeyAsync(string name)
    {
        var (exit, pem, stderr) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", _directory);
        Assert.True(exit == 0, stderr);
        var file = Path.Combine(_directory, name);
        await File.WriteAllTextAsync(file, pem);
        return file;
    }

    /// <summary>The console's page script, run by <c>Console/console-verify.mjs</c>: its verdict and problems, a line each.</summary>
    private static async Task<string> VerifyInConsoleAsync(string export, string publicKey)
    {
        var repository = IndependentAuditVerifierTests.Repository;
        var (exit, stdout, stderr) = await ChildProcess.RunAsync("node",
            [Path.Combine(repository, "tests", "Sovereign.Gateway.FunctionalTests", "Console", "console-verify.mjs"),
                Path.Combine(repository, "src", "Sovereign.Gateway", "Console", "Assets", "audit-verify.js"), export, publicKey], TimeSpan.FromMinutes(1));
        Assert.True(exit == 0, stdout + stderr);
        return stdout;
    }
}
