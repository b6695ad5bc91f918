using System.Text.Json;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Residency.Audit;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>sovereign audit archive</c> pointed at the data directory of a node that joined with a token, whose
/// <c>operator-key.pem</c> is one of its own that signs nothing: found archiving a cluster's log from a node's machine,
/// it went ahead with that key and reported the cluster's log as not verifying (exit 3, "tampered") while
/// <c>audit verify</c> on the same directory said intact; an export was signed with that key, and its auditor's
/// <c>verify-export</c> called it forged. Both now refuse up front, saying where to run them.
/// </summary>
public sealed class AuditArchiveOnANodeTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-node-archive-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Archive_WithAJoinedNodesDataDirectory_IsRefused_NamingWhereToRunIt()
    {
        using (OperatorSigningKey.LoadOrCreate(Path.Combine(_directory, "operator-key.pem")))
        {
        }

        using var operatorKey = OperatorSigningKey.CreateEphemeral();
        var joined = new JoinResponse("node-th-3", "TH", "th-h100", "credential", operatorKey.PublicKeyPem);
        await File.WriteAllTextAsync(Path.Combine(_directory, JoinResponse.FileName), JsonSerializer.Serialize(joined));
        var database = Path.Combine(_directory, "copy.db");
        await File.WriteAllBytesAsync(database, []);
        var archive = Path.Combine(_directory, "archive.jsonl");

        var (exit, _, stderr) = await CliProcess.RunAsync("audit", "archive", "--data-dir", _directory, "--database", database, "--before", "2026-01-01", "-o", archive);

        Assert.True(exit == 2, stderr);
        Assert.Contains("joined with a token", stderr, StringComparison.Ordinal);
        Assert.Contains("gateway", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(archive));

        // An export is signed with the same key: its auditor's verify-export called it forged (exit 3).
        var export = Path.Combine(_directory, "export.jsonl");
        (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", _directory, "--database", database, "-o", export);

        Assert.True(exit == 2, stderr);
        Assert.Contains("joined with a token", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(export));
    }
}
