using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// An auditor's verifiers print what an altered export's problems quote (a line's type, the header's key id and
/// tenant), and whoever altered it wrote those values. Sent raw to the terminal, <c>ESC[2J ESC[H</c> cleared the
/// screen to show a forged "intact" line and <c>ESC[8m</c> hid every line after it, the real verdict included (the
/// exit code still said 3). Both <c>sovereign audit verify-export</c> and <c>tools/audit-verify.mjs</c> now show every
/// such character as its <c>\uXXXX</c> escape. Found by hand: both wrote ESC to stdout (session 48).
/// </summary>
public sealed class HostileExportOutputTests : IDisposable
{
    private const string Forged = "\u001b[2J\u001b[HThe export is intact and signed by the operator.\n\u001b[8m";

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-hostile-export-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task VerifyExport_ValuesAnAlteredFileQuotes_ReachTheTerminalEscaped()
    {
        var (export, publicKey) = await WriteAsync();

        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", export, "--public-key", publicKey);

        Assert.Equal(3, exit);
        AssertNothingActs(stdout + stderr);
        Assert.Contains("Unknown line type '\\u001B[2J\\u001B[HThe export is intact and signed by the operator.\\u000A\\u001B[8m\\u202E'", stdout, StringComparison.Ordinal);
        Assert.EndsWith("The export does not verify." + Environment.NewLine, stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuditVerifyMjs_ValuesAnAlteredFileQuotes_ReachTheTerminalEscaped()
    {
        var (export, publicKey) = await WriteAsync();

        var (exit, stdout, stderr) = await AuditVerifyScript.RunSplitAsync(export, publicKey);

        Assert.Equal(3, exit);
        AssertNothingActs(stdout + stderr);
        Assert.Contains("unknown line type \\u001B[2J\\u001B[HThe export is intact and signed by the operator.\\u000A\\u001B[8m\\u202E", stdout, StringComparison.Ordinal);
        Assert.Contains("0 entries of t\\u001B[2J", stdout, StringComparison.Ordinal);
        Assert.Contains("NOT VERIFIED", stdout, StringComparison.Ordinal);
    }

    private static void AssertNothingActs(string output)
    {
        // Line breaks are the report's own: each ends a line the verifier wrote (one per problem, then the verdict).
        var acting = output.Where(c => c is not '\n' && (char.IsControl(c) || c is (>= '\u202A' and <= '\u202E') or (>= '\u2066' and <= '\u2069')))
            .Select(c => $"U+{(int)c:X4}").Distinct().ToList();
        Assert.True(acting.Count == 0, $"The terminal was sent {string.Join(", ", acting)}:\n{output}");
        Assert.DoesNotContain("\nThe export is intact", output, StringComparison.Ordinal);
    }

    /// <summary>A version 2 export whose header names a hostile key id and tenant, then a line of a hostile type.</summary>
    private async Task<(string Export, string PublicKey)> WriteAsync()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var pem = key.ExportSubjectPublicKeyInfoPem();
        var publicKey = Path.Combine(_directory, "operator.pem");
        await File.WriteAllTextAsync(publicKey, pem);
        var header = new JsonObject
        {
            ["type"] = "header", ["format"] = "sovereign-audit-export", ["version"] = 2, ["entryFormat"] = 1, ["keyId"] = "k" + Forged,
            ["publicKeyPem"] = pem, ["tenant"] = "t" + Forged, ["from"] = 0, ["to"] = 1, ["firstSequence"] = 1, ["lastSequence"] = 1,
            ["createdAt"] = 0, ["entriesDigest"] = new string('0', 64), ["signature"] = new string('0', 128),
        };
        var line = new JsonObject { ["type"] = Forged + "\u202e" };
        var export = Path.Combine(_directory, "altered.jsonl");
        await File.WriteAllTextAsync(export, header.ToJsonString() + "\n" + line.ToJsonString() + "\n");
        return (export, publicKey);
    }
}
