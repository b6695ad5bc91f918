using System.CommandLine;
using Sovereign.Cli.Commands;
using Sovereign.Cli.Commands.Registry;
using Sovereign.Cli.Output;

namespace Sovereign.Gateway.FunctionalTests.Registry;

/// <summary>The registry commands, in-process: pull, import, show, verify and rm, their output and exit codes.</summary>
public sealed class RegistryCliTests : IDisposable
{
    private const string StoriesHex = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d";

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-registry-cli-").FullName;

    public void Dispose()
    {
        foreach (var file in Directory.EnumerateFiles(_directory, "*", SearchOption.AllDirectories))
        {
            File.SetAttributes(file, FileAttributes.Normal);
        }

        Directory.Delete(_directory, recursive: true);
    }

    private string ModelsDirectory => Path.Combine(_directory, "models");

    [Fact]
    public void Create_SubcommandNames_DoNotCollideUnderModels()
    {
        var added = RegistryCommands.Create().Select(c => c.Name).ToList();
        var wired = ModelsCommand.Create().Subcommands.Select(c => c.Name).ToList();

        Assert.Equal(["pull", "import", "verify", "rm", "show"], added);
        Assert.Equal(wired.Count, wired.Distinct().Count());
    }

    /// <summary>
    /// The sovereign process with its output piped, as a script reads it: the registry commands kept Spectre's
    /// 80-column console (built before the CLI set the piped width), so each digest was broken onto a line of its own.
    /// </summary>
    [Fact]
    public async Task ShowAndVerify_Piped_KeepEachModelOnOneLine()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync("models", "import", TestModels.Stories260K, "--id", "stories-with-a-long-id",
            "--license", "Apache-2.0", "--origin-publisher", "karpathy", "--origin-country", "US", "--data-dir", _directory);
        Assert.True(exit == 0, stderr);

        var (showExit, show, _) = await CliProcess.RunAsync(new Dictionary<string, string?> { ["COLUMNS"] = null }, "models", "show", "--data-dir", _directory);
        var (verifyExit, verify, _) = await CliProcess.RunAsync(new Dictionary<string, string?> { ["COLUMNS"] = null }, "models", "verify", "--data-dir", _directory);

        Assert.Equal((0, 0), (showExit, verifyExit));
        Assert.Contains("stories-with-a-long-id: llama, 292.8K parameters, F32, 1.1 MiB, Apache-2.0, sha256:" + StoriesHex + "\n", show, StringComparison.Ordinal);
        Assert.Contains("OK        stories-with-a-long-id  sha256:" + StoriesHex + "\n", verify, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ImportThenShow_PrintsIdDigestLicenceOriginAndMetadata()
    {
        var cli = new RegistryCli(_directory);

        var (exit, stdout, stderr) = await cli.RunAsync("models", "import", TestModels.Stories260K, "--id", "stories",
            "--license", "mit", "--origin-publisher", "Andrej Karpathy", "--origin-country", "us", "--language", "en");
        Assert.True(exit == 0, stderr);
        Assert.Contains("Installed stories", stdout, StringComparison.Ordinal);

        (exit, stdout, stderr) = await cli.RunAsync("models", "show", "stories");

        Assert.True(exit == 0, stderr);
        Assert.Contains("Id: stories", stdout, StringComparison.Ordinal);
        Assert.Contains("Digest: sha256:" + StoriesHex, stdout, StringComparison.Ordinal);
        Assert.Contains("Licence: MIT", stdout, StringComparison.Ordinal);
        Assert.Contains("Origin: Andrej Karpathy (US)", stdout, StringComparison.Ordinal);
        Assert.Contains("Architecture: llama", stdout, StringComparison.Ordinal);
        Assert.Contains("Parameters: 292,800", stdout, StringComparison.Ordinal);
        Assert.Contains("Quantization: F32", stdout, StringComparison.Ordinal);
        Assert.Contains("Context length: 2,048", stdout, StringComparison.Ordinal);
        Assert.Contains("Languages: en", stdout, StringComparison.Ordinal);
        Assert.Contains("Modality: chat", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Show_InATerminal_RendersAGrid()
    {
        await new RegistryCli(_directory).RunAsync("models", "import", TestModels.TinyRandomLlama2, "--id", "tiny",
            "--license", "Apache-2.0", "--origin-publisher", "ollama", "--origin-country", "US", "--embedding");

        var (exit, stdout, stderr) = await new RegistryCli(_directory, interactive: true).RunAsync("models", "show", "tiny");

        Assert.True(exit == 0, stderr);
        Assert.Matches(@"Digest\s+sha256:81f226c62d28ed4a1a9b9fa080fcd9f0cc40e0f9d5680036583ff98fbcd035cb", stdout);
        Assert.Matches(@"Quantization\s+F16", stdout);
        Assert.Matches(@"Modality\s+embedding", stdout);
    }

    [Fact]
    public async Task ShowWithoutId_ListsEveryModel()
    {
        var cli = new RegistryCli(_directory);
        await cli.RunAsync("models", "import", TestModels.Stories260K, "--license", "MIT", "--origin-publisher", "k", "--origin-country", "US");

        var (exit, stdout, _) = await cli.RunAsync("models", "show");

        Assert.Equal(0, exit);
        Assert.Contains("stories260K: llama", stdout, StringComparison.Ordinal);
    }

    /// <summary>Importing a local file printed "downloading: 0% ..." lines, as if it came from the network.</summary>
    [Fact]
    public async Task Import_Piped_SaysItCopiesTheFile_NotThatItDownloads()
    {
        var (exit, stdout, stderr) = await new RegistryCli(_directory).RunAsync("models", "import", TestModels.Stories260K,
            "--license", "MIT", "--origin-publisher", "k", "--origin-country", "US");

        Assert.True(exit == 0, stderr);
        Assert.Contains("copying: 100% (1,185,376 of 1,185,376 bytes)", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("download", stdout, StringComparison.Ordinal);
    }

    /// <summary>
    /// A file whose name is no model id ("my model.gguf") was refused with the id rule alone: the user had given no id,
    /// so the line now says where it came from and that --id gives one.
    /// </summary>
    [Fact]
    public async Task Import_AFileNameThatIsNoModelId_SaysToGiveOneWithId()
    {
        var spaced = Path.Combine(_directory, "my model.gguf");
        File.Copy(TestModels.Stories260K, spaced);
        var cli = new RegistryCli(_directory);

        var (exit, _, stderr) = await cli.RunAsync("models", "import", spaced, "--license", "MIT", "--origin-publisher", "k", "--origin-country", "US");

        Assert.Equal(2, exit);
        Assert.Contains("the file name 'my model' is not a valid model id; give one with --id", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(ModelsDirectory));

        (exit, _, stderr) = await cli.RunAsync("models", "import", spaced, "--id", "my-model", "--license", "MIT", "--origin-publisher", "k", "--origin-country", "US");
        Assert.True(exit == 0, stderr);
    }

    /// <summary>
    /// Found by trying odd ids: 'a/../b', 'a//b' and 'a/' were installed, though an HTTP client normalizes them in
    /// /v1/models/{id} (curl's GET /v1/models/a/../b asked for 'b'). An id in parts (org/name:tag) still installs.
    /// </summary>
    [Theory]
    [InlineData("a/../b")]
    [InlineData("a/./b")]
    [InlineData("a//b")]
    [InlineData("a/")]
    [InlineData("a/..")]
    public async Task Import_AnIdWithAnEmptyOrDotPart_IsRefused(string id)
    {
        var cli = new RegistryCli(_directory);

        var (exit, _, stderr) = await cli.RunAsync("models", "import", TestModels.Stories260K, "--id", id, "--license", "MIT", "--origin-publisher", "k", "--origin-country", "US");

        Assert.Equal(2, exit);
        Assert.Contains($"'{id}' is not a valid model id", stderr, StringComparison.Ordinal);
        Assert.Contains("no empty, '.' or '..' part between slashes", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = await cli.RunAsync("models", "import", TestModels.Stories260K, "--id", "org.x/model-1.5:q4_0", "--license", "MIT", "--origin-publisher", "k", "--origin-country", "US");
        Assert.True(exit == 0, stderr);
    }

    [Fact]
    public async Task Import_UnknownLicense_ExitsTwoNamingItAndInstallsNothing()
    {
        var (exit, _, stderr) = await new RegistryCli(_directory).RunAsync("models", "import", TestModels.Stories260K,
            "--license", "whatever-1.0", "--origin-publisher", "k", "--origin-country", "US");

        Assert.Equal(2, exit);
        Assert.Contains("Unknown licence 'whatever-1.0'", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(ModelsDirectory));
    }

    [Fact]
    public async Task Import_MissingLicenceAndOrigin_ExitsTwoNamingTheOptions()
    {
        var (exit, _, stderr) = await new RegistryCli(_directory).RunAsync("models", "import", TestModels.Stories260K);

        Assert.Equal(2, exit);
        Assert.Contains("--license", stderr, StringComparison.Ordinal);
        Assert.Contains("--origin-country", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pull_Piped_PrintsPlainProgressLinesAndInstalls()
    {
        var model = await File.ReadAllBytesAsync(TestModels.Stories260K);
        await using var server = await LoopbackFiles.StartAsync(new Dictionary<string, byte[]>
        {
            ["/stories260K.gguf"] = model,
            ["/stories260K.gguf.sha256"] = System.Text.Encoding.ASCII.GetBytes(StoriesHex + "  stories260K.gguf\n"),
        });

        var (exit, stdout, stderr) = await new RegistryCli(_directory).RunAsync("models", "pull", server.Url("/stories260K.gguf"),
            "--license", "MIT", "--origin-publisher", "ggml-org", "--origin-country", "US");

        Assert.True(exit == 0, stderr);
        Assert.Contains("resolving ", stdout, StringComparison.Ordinal);
        Assert.Contains("downloading:   0%", stdout, StringComparison.Ordinal);
        Assert.Contains("downloading: 100% (1,185,376 of 1,185,376 bytes)", stdout, StringComparison.Ordinal);
        Assert.Contains("Installed stories260K: llama", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b[", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("pull", "missing SOURCE")]
    [InlineData("import", "missing PATH")]
    [InlineData("rm", "missing ID")]
    public async Task Command_MissingPositionalArgument_ExitsTwoNamingIt(string verb, string message)
    {
        var (exit, _, stderr) = await new RegistryCli(_directory).RunAsync("models", verb);

        Assert.Equal(2, exit);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pull_InATerminal_UsesTheProgressBarAndInstalls()
    {
        await using var server = await LoopbackFiles.StartAsync(new Dictionary<string, byte[]> { ["/m.gguf"] = await File.ReadAllBytesAsync(TestModels.Stories260K) });

        var (exit, stdout, stderr) = await new RegistryCli(_directory, interactive: true).RunAsync("models", "pull", server.Url("/m.gguf"),
            "--id", "m", "--license", "MIT", "--origin-publisher", "x", "--origin-country", "US", "--sha256", "sha256:" + StoriesHex);

        Assert.True(exit == 0, stderr);
        Assert.DoesNotContain("downloading:   0%", stdout, StringComparison.Ordinal);
        Assert.Contains("Installed m: llama", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pull_WrongSha256_ExitsThreeAndInstallsNothing()
    {
        await using var server = await LoopbackFiles.StartAsync(new Dictionary<string, byte[]> { ["/m.gguf"] = await File.ReadAllBytesAsync(TestModels.Stories260K) });

        var (exit, _, stderr) = await new RegistryCli(_directory).RunAsync("models", "pull", server.Url("/m.gguf"),
            "--license", "MIT", "--origin-publisher", "x", "--origin-country", "US", "--sha256", new string('a', 64));

        Assert.Equal(ExitCodes.IntegrityFailure, exit);
        Assert.Contains("not the given sha256:aaaa", stderr, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(Path.Combine(ModelsDirectory, "blobs")));
        Assert.Empty(Directory.GetFiles(Path.Combine(ModelsDirectory, "downloads")));
        Assert.False(File.Exists(Path.Combine(ModelsDirectory, "registry.json")));
    }

    [Fact]
    public async Task Pull_NoPublishedDigest_ExitsOneFailClosed()
    {
        await using var server = await LoopbackFiles.StartAsync(new Dictionary<string, byte[]> { ["/m.gguf"] = await File.ReadAllBytesAsync(TestModels.Stories260K) });

        var (exit, _, stderr) = await new RegistryCli(_directory).RunAsync("models", "pull", server.Url("/m.gguf"),
            "--license", "MIT", "--origin-publisher", "x", "--origin-country", "US");

        Assert.Equal(1, exit);
        Assert.Contains("No SHA-256", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ftp://127.0.0.1/m.gguf")]
    [InlineData("not/a/url.gguf")]
    public async Task Pull_BadUrl_ExitsTwo(string url)
    {
        var (exit, _, stderr) = await new RegistryCli(_directory).RunAsync("models", "pull", url,
            "--license", "MIT", "--origin-publisher", "x", "--origin-country", "US", "--sha256", StoriesHex);

        Assert.Equal(2, exit);
        Assert.Contains(url, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_TamperedFile_ExitsThreeAndNamesTheModel()
    {
        var cli = new RegistryCli(_directory);
        await cli.RunAsync("models", "import", TestModels.Stories260K, "--id", "stories", "--license", "MIT", "--origin-publisher", "k", "--origin-country", "US");
        var (exit, stdout, _) = await cli.RunAsync("models", "verify");
        Assert.Equal(0, exit);
        Assert.Contains("OK        stories", stdout, StringComparison.Ordinal);

        var blob = Path.Combine(ModelsDirectory, "blobs", $"sha256-{StoriesHex}.gguf");
        File.SetAttributes(blob, FileAttributes.Normal);
        await using (var stream = new FileStream(blob, FileMode.Open, FileAccess.Write))
        {
            stream.Position = 5000;
            stream.WriteByte(0x42);
        }

        (exit, stdout, var stderr) = await cli.RunAsync("models", "verify");

        // An integrity check that failed: 3, as README's exit codes and ExitCodes say (it exited 1).
        Assert.Equal(ExitCodes.IntegrityFailure, exit);
        Assert.Contains("MISMATCH  stories  expected sha256:" + StoriesHex, stdout, StringComparison.Ordinal);
        Assert.Contains("1 of 1", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rm_RemovesTheModelAndItsFile()
    {
        var cli = new RegistryCli(_directory);
        await cli.RunAsync("models", "import", TestModels.Stories260K, "--id", "stories", "--license", "MIT", "--origin-publisher", "k", "--origin-country", "US");

        var (exit, stdout, _) = await cli.RunAsync("models", "rm", "stories");
        Assert.Equal(0, exit);
        Assert.Contains("Removed stories and its file", stdout, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(Path.Combine(ModelsDirectory, "blobs")));

        (exit, _, var stderr) = await cli.RunAsync("models", "rm", "stories");
        Assert.Equal(1, exit);
        Assert.Contains("No model 'stories'", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// An id the registry does not hold is a failure (exit 1), as every other "No ... 'id'" of the CLI is (tenants show,
    /// models unload, nodes rm); it was exit 2, which the exit-code table keeps for a command used wrongly.
    /// </summary>
    [Theory]
    [InlineData("show")]
    [InlineData("rm")]
    public async Task Command_AnIdTheRegistryDoesNotHold_ExitsOneNamingIt(string verb)
    {
        var (exit, _, stderr) = await new RegistryCli(_directory).RunAsync("models", verb, "nosuch");

        Assert.Equal(1, exit);
        Assert.Contains($"sovereign models {verb}: No model 'nosuch'", stderr, StringComparison.Ordinal);
    }
}
