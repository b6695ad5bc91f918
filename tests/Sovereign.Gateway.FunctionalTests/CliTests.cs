using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using OpenAI.Chat;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Models;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Gguf;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>The sovereign command: version, synth, chat, models list, the built-in test model, and settings.</summary>
[Collection(ServerCollection.Name)]
public sealed class CliTests(ServerFixture server) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-cli-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Version_PrintsTheProductVersion()
    {
        var (exit, stdout, _) = await CliProcess.RunAsync("--version");

        Assert.Equal(0, exit);
        Assert.StartsWith("0.1.0", stdout.Trim(), StringComparison.Ordinal);
    }

    /// <summary>It created missing folders, where 'invoice -o' and 'audit export -o' refuse them (a mistyped path made a tree).</summary>
    [Fact]
    public async Task ModelsSynth_IntoAFolderThatDoesNotExist_IsAUsageErrorNamingIt_AndCreatesNothing()
    {
        var folder = Path.Combine(_directory, "no-such-folder");
        var (exit, stdout, stderr) = await CliProcess.RunAsync("models", "synth", "-o", Path.Combine(folder, "m.gguf"), "--layers", "1", "--width", "64", "--vocab", "600");

        Assert.Equal(2, exit);
        Assert.Contains($"the folder {folder} does not exist", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Writing", stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(folder));
    }

    [Fact]
    public async Task ModelsSynth_WritesAGgufThatLoadsAndGenerates()
    {
        var path = Path.Combine(_directory, "synth-q8.gguf");
        var (exit, stdout, stderr) = await CliProcess.RunAsync(
            "models", "synth", "--output", path, "--layers", "2", "--width", "64", "--vocab", "600", "--type", "q8_0", "--seed", "7");

        Assert.True(exit == 0, stderr);
        Assert.Contains("parameters", stdout, StringComparison.Ordinal);
        var header = GgufReader.Open(path);
        Assert.Equal("llama", header.Architecture);
        Assert.Equal(600, header.VocabularySize);
        Assert.Contains(header.Tensors, t => t.Type == GgmlType.Q8_0);

        await using var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "synth", Path = path, Threads = 1, Parallel = 2 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
        }, []);
        await app.StartAsync();
        var client = ServerFixture.CreateOpenAIClient(new Uri(app.Urls.First()), "x").GetChatClient("synth");
        var completion = (await client.CompleteChatAsync([new UserChatMessage("hello")], new ChatCompletionOptions { MaxOutputTokenCount = 6, Temperature = 0 })).Value;
        Assert.Equal(6, completion.Usage.OutputTokenCount);
        await app.StopAsync();
    }

    [Fact]
    public async Task ModelsSynth_InvalidOption_ExitsWithMessageNamingIt()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync("models", "synth", "--output", Path.Combine(_directory, "x.gguf"), "--layers", "0");

        Assert.Equal(2, exit);
        Assert.Contains("Layers", stderr, StringComparison.OrdinalIgnoreCase);
        Assert.False(File.Exists(Path.Combine(_directory, "x.gguf")));
    }

    /// <summary>A rule that depends on another option named it as the code does ('EmbeddingLength / HeadCount = 65').</summary>
    [Fact]
    public async Task ModelsSynth_ARuleBetweenOptions_NamesBothFlags()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync("models", "synth", "--output", Path.Combine(_directory, "odd.gguf"), "--width", "96", "--heads", "5");

        Assert.Equal(2, exit);
        Assert.Contains("--heads must divide --width (96), got 5.", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("EmbeddingLength", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// An output that is a folder was written beside it as '&lt;folder&gt;.partial' (0.3 MiB, left behind) before the
    /// last move failed with "Is a directory"; other failures named 'x.gguf.partial.partial'.
    /// </summary>
    [Fact]
    public async Task ModelsSynth_OutputThatIsAFolder_IsAUsageError_AndLeavesNoFile()
    {
        var folder = Path.Combine(_directory, "synth-folder");
        Directory.CreateDirectory(folder);

        var (exit, _, stderr) = await CliProcess.RunAsync("models", "synth", "--output", folder, "--layers", "1", "--width", "64");

        Assert.Equal(2, exit);
        Assert.Contains("is a folder", stderr, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_directory, "synth-folder*"));
        Assert.Empty(Directory.GetFileSystemEntries(folder));
    }

    [Fact]
    public async Task Chat_OneShotPrompt_StreamsTheAnswer()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(
            "chat", "--url", server.BaseAddress.ToString(), "--model", ServerFixture.Stories, "--prompt", "Once upon a time", "--max-tokens", "12", "--temperature", "0");

        Assert.True(exit == 0, stderr);
        var expected = (await server.OpenAI.GetChatClient(ServerFixture.Stories).CompleteChatAsync(
            [new UserChatMessage("Once upon a time")], new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0 })).Value.Content[0].Text;
        Assert.Equal(expected, stdout.TrimEnd('\n'));
    }

    /// <summary>An OpenAI base URL (…/v1, as SDKs take it) names the same server: it was a 404 for /v1/v1/models.</summary>
    [Fact]
    public async Task ModelsList_WithTheOpenAIBaseUrl_ReachesTheSameServer()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync("models", "list", "--url", server.BaseAddress.ToString().TrimEnd('/') + "/v1/");

        Assert.True(exit == 0, stderr);
        Assert.Contains(ServerFixture.TinyRandom, stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelsList_ShowsTheServersModels()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync("models", "list", "--url", server.BaseAddress.ToString());

        Assert.True(exit == 0, stderr);
        Assert.Contains(ServerFixture.TinyRandom, stdout, StringComparison.Ordinal);
        Assert.Contains("all-MiniLM-L6-v2", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_NoModel_WritesAndServesTheBuiltInTestModel_BehindAnApiKey()
    {
        await using var app = ServeCommand.Build(new ServeSettings { Urls = "http://127.0.0.1:0", DataDirectory = _directory, ApiKeys = ["sk-test-123"] }, []);
        await app.StartAsync();
        var address = new Uri(app.Urls.First());

        Assert.True(File.Exists(Path.Combine(_directory, "models", BuiltInTestModel.FileName)));
        var chat = ServerFixture.CreateOpenAIClient(address, "sk-test-123").GetChatClient(BuiltInTestModel.Id);
        var completion = (await chat.CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { MaxOutputTokenCount = 5, Temperature = 0 })).Value;
        // Random weights may pick the end-of-sequence token early; the limit must hold and the reason must say which.
        Assert.InRange(completion.Usage.OutputTokenCount, 1, 5);
        Assert.Equal(completion.Usage.OutputTokenCount == 5 ? ChatFinishReason.Length : ChatFinishReason.Stop, completion.FinishReason);

        var wrongKey = await Assert.ThrowsAsync<System.ClientModel.ClientResultException>(
            () => ServerFixture.CreateOpenAIClient(address, "sk-wrong").GetChatClient(BuiltInTestModel.Id).CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(401, wrongKey.Status);
        using var http = new HttpClient { BaseAddress = address };
        Assert.Equal(401, (int)(await http.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(200, (int)(await http.GetAsync("/health")).StatusCode);
        await app.StopAsync();
    }

    [Fact]
    public async Task Serve_WatchesNoConfigurationFile_SoItsWorkingDirectoryIsNotWatched()
    {
        // The host's appsettings.json source watched the working directory and every folder below it: each write under
        // it (the server's own SQLite commits when the data directory is there) woke the watcher.
        await using var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "m", Path = TestModels.Stories260K }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
        }, []);

        var files = ((Microsoft.Extensions.Configuration.IConfigurationRoot)app.Configuration).Providers
            .OfType<Microsoft.Extensions.Configuration.FileConfigurationProvider>().ToList();
        Assert.Contains(files, f => f.Source.Path == "appsettings.json");
        Assert.All(files, f => Assert.False(f.Source.ReloadOnChange, f.Source.Path));
    }

    /// <summary>
    /// The built-in test model's warning says "To serve a real model: sovereign serve --model /path/to/model.gguf (or
    /// set Sovereign__Models__0__Path)", and the README shows that variable alone; set alone, the start stopped with
    /// "Sovereign:Models:0:Id is required". A model configured by its path alone is named after its file, as
    /// <c>--model PATH</c> names it.
    /// </summary>
    [Fact]
    public async Task Settings_AModelPathWithoutAnId_IsNamedAfterItsFile_AsTheModelFlagNamesIt()
    {
        var config = Path.Combine(_directory, "sovereign.json");
        File.WriteAllText(config, $$$"""{"Sovereign":{"BuiltInEmbeddings":false,"Models":[{"Path":"{{{TestModels.Stories260K}}}","Parallel":1,"Threads":1}]}}""");
        await using var app = ServeCommand.Build(new ServeSettings { ConfigFile = config, DataDirectory = _directory, Urls = "http://127.0.0.1:0" }, []);

        var options = app.Services.GetRequiredService<IOptions<SovereignOptions>>().Value;

        Assert.Equal(Path.GetFileNameWithoutExtension(TestModels.Stories260K), Assert.Single(options.Models).Id);
    }

    [Fact]
    public async Task Serve_BadSetting_StopsTheStartNamingIt()
    {
        await using var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "m", Path = Path.Combine(_directory, "missing.gguf") }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Parallel = 0,
        }, []);

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("Sovereign:Models:0:Path", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Sovereign:Models:0:Parallel", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_BadSettingFromTheCommandLine_ExitsWithCode2AndMessage()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync("serve", "--model", Path.Combine(_directory, "nope.gguf"), "--urls", "http://127.0.0.1:0", "--data-dir", _directory);

        Assert.Equal(2, exit);
        Assert.Contains("Sovereign:Models:0:Path", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Settings_FlagsOverrideConfigFileOverrideDefaults()
    {
        var config = Path.Combine(_directory, "sovereign.json");
        File.WriteAllText(config, $$$"""{"Sovereign":{"Limits":{"MaxChoices":3,"MaxStopSequences":2},"Models":[{"Id":"from-file","Path":"{{{TestModels.Stories260K}}}","Parallel":5}]}}""");

        var fileOnly = Options(new ServeSettings { ConfigFile = config, DataDirectory = _directory });
        Assert.Equal(3, fileOnly.Limits.MaxChoices);
        Assert.Equal(2, fileOnly.Limits.MaxStopSequences);
        Assert.Equal(4096, fileOnly.Limits.MaxOutputTokens);
        Assert.Equal("from-file", Assert.Single(fileOnly.Models).Id);
        Assert.Equal(5, fileOnly.Models[0].Parallel);

        var withFlags = Options(new ServeSettings
        {
            ConfigFile = config,
            DataDirectory = _directory,
            Parallel = 2,
            Overrides = new Dictionary<string, string?> { ["Sovereign:Limits:MaxChoices"] = "6" },
        });
        Assert.Equal(6, withFlags.Limits.MaxChoices);
        Assert.Equal(2, withFlags.Limits.MaxStopSequences);
        Assert.Equal(2, withFlags.Models[0].Parallel);

        static SovereignOptions Options(ServeSettings settings)
        {
            var app = ServeCommand.Build(settings, []);
            return app.Services.GetRequiredService<IOptions<SovereignOptions>>().Value;
        }
    }
}
