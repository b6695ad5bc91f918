using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>--chat-template</c> (<c>Sovereign:Models:N:ChatTemplate</c>) names the template of a model whose GGUF has none.
/// Found by hand: a name llama.cpp does not know (<c>--chat-template chatlm</c>) started the server, and then every
/// chat request to that model was a 500 <c>internal_error</c> (llama.cpp's "template not found"), which the SDKs retry.
/// </summary>
public sealed class ChatTemplateSettingTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-chat-template-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Serve_AChatTemplateLlamaCppDoesNotKnow_StopsTheStartNamingItAndTheKnownOnes()
    {
        await using var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Threads = 1 }],
            ChatTemplate = "chatlm",
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Overrides = new Dictionary<string, string?> { ["Sovereign:BuiltInEmbeddings"] = "false" },
        }, []);

        var error = await Assert.ThrowsAsync<ModelLoadException>(() => app.StartAsync());

        Assert.StartsWith($"Model 'stories' at '{TestModels.Stories260K}' cannot be loaded: the chat template 'chatlm' (Sovereign:Models:N:ChatTemplate, --chat-template) "
            + "is neither one llama.cpp has built in nor a template it recognises; built in: ", error.Message, StringComparison.Ordinal);
        Assert.Contains("chatml", error.Message, StringComparison.Ordinal);
        Assert.Contains("llama3", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("chatml")]
    public async Task Serve_ABuiltInChatTemplate_Starts(string template)
    {
        await using var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Threads = 1 }],
            ChatTemplate = template,
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Overrides = new Dictionary<string, string?> { ["Sovereign:BuiltInEmbeddings"] = "false" },
        }, []);

        await app.StartAsync();
        await app.StopAsync();
    }
}
