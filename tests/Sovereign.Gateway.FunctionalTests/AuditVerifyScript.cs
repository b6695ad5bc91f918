namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>tools/audit-verify.mjs</c>, the auditor's own verifier, run with Node.js as an auditor runs it, and the files it
/// reads written by the CLI as an operator hands them over: one runner for every test that checks the script.
/// </summary>
internal static class AuditVerifyScript
{
    /// <summary>The script in this repository.</summary>
    public static string Script => Path.Combine(IndependentAuditVerifierTests.Repository, "tools", "audit-verify.mjs");

    /// <summary>Runs it on <paramref name="export"/> checked with <paramref name="publicKey"/>: its exit code, and its output (stdout, then stderr).</summary>
    public static async Task<(int Exit, string Output)> RunAsync(string export, string publicKey, params string[] more)
    {
        var (exit, stdout, stderr) = await RunSplitAsync(export, publicKey, more);
        return (exit, stdout + stderr);
    }

    /// <summary>Runs it as <see cref="RunAsync"/> does, its stdout and stderr apart (for <c>--json</c>).</summary>
    public static Task<(int ExitCode, string Stdout, string Stderr)> RunSplitAsync(string export, string publicKey, params string[] more) =>
        ChildProcess.RunAsync("node", [Script, export, "--public-key", publicKey, .. more], TimeSpan.FromMinutes(1));

    /// <summary>
    /// The operator's public key of <paramref name="dataDirectory"/> (<c>sovereign audit public-key</c>), written to
    /// <paramref name="path"/> (by default <c>operator.pub.pem</c> in the data directory), which it returns.
    /// </summary>
    public static async Task<string> PublicKeyAsync(string dataDirectory, string? path = null)
    {
        var (exit, pem, stderr) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", dataDirectory);
        Assert.True(exit == 0, stderr);
        path ??= Path.Combine(dataDirectory, "operator.pub.pem");
        await File.WriteAllTextAsync(path, pem);
        return path;
    }

    /// <summary>The whole audit log of <paramref name="dataDirectory"/> exported (<c>sovereign audit export</c>) to <c>all.jsonl</c> there, and its public key.</summary>
    public static async Task<(string Export, string PublicKey)> ExportAsync(string dataDirectory)
    {
        var export = Path.Combine(dataDirectory, "all.jsonl");
        var (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", dataDirectory, "-o", export);
        Assert.True(exit == 0, stderr);
        return (export, await PublicKeyAsync(dataDirectory));
    }
}
