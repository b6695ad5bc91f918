namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// An auditor pointing <c>audit verify-export</c> at a folder (the one the export was saved in) was told the folder
/// "does not exist", for the export and for <c>--public-key</c> alike. Found by hand.
/// </summary>
public sealed class AuditVerifyExportArgumentTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-verify-export-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task AFolderForTheExportOrTheKey_IsAUsageErrorSayingItIsAFolder()
    {
        var export = Path.Combine(_directory, "export.jsonl");
        await File.WriteAllTextAsync(export, "{}\n");

        var (exit, _, stderr) = await CliProcess.RunAsync("audit", "verify-export", _directory, "--public-key", export);
        Assert.Equal(2, exit);
        Assert.Contains($"sovereign audit verify-export: {_directory} is a folder; give the export file.", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = await CliProcess.RunAsync("audit", "verify-export", export, "--public-key", _directory);
        Assert.Equal(2, exit);
        Assert.Contains($"--public-key {_directory} is a folder; give the PEM file 'sovereign audit public-key' wrote.", stderr, StringComparison.Ordinal);
    }
}
