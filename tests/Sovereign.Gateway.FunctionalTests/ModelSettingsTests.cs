using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// Model ids, their languages and the language-routed aliases (<c>Sovereign:Aliases</c>) are checked at start: an alias
/// that cannot route, or a model that would shadow one, stops the start naming the setting. Before, each of these
/// started, and every request for the alias answered 403 "not allowed by policy" (or reached the wrong model).
/// </summary>
public sealed class ModelSettingsTests
{
    [Theory]
    [InlineData("""{"Aliases":{"m":{"Default":"m"}}}""", "Sovereign:Aliases:m: a model of this process is named 'm' too")]
    [InlineData("""{"Aliases":{"legal":{"Candidates":[{"Model":"m","Languages":["th"]}]}}}""", "Sovereign:Aliases:legal:Default is required")]
    [InlineData("""{"Aliases":{"legal":{"Default":"m","Candidates":[{"Model":"m","Languages":["th","xx"]}]}}}""", "Sovereign:Aliases:legal:Candidates:0:Languages:1 'xx' is not a language code")]
    [InlineData("""{"Aliases":{"legal":{"Default":"m","Candidates":[{"Model":"m","Languages":["th","TH"]}]}}}""", "Sovereign:Aliases:legal:Candidates:0:Languages:1 'TH' repeats Sovereign:Aliases:legal:Candidates:0:Languages:0")]
    [InlineData("""{"Aliases":{"legal":{"Default":"m","Candidates":[{"Languages":["th"]}]}}}""", "Sovereign:Aliases:legal:Candidates:0:Model is required")]
    [InlineData("""{"Engines":[{"BaseUrl":"http://127.0.0.1:9","Models":[{"Id":"auto","Upstream":"qwen"}]}]}""", "Sovereign:Engines:0:Models:0:Id 'auto' is reserved for routing by language")]
    public async Task Serve_AnAliasOrModelThatCannotRoute_StopsTheStartNamingIt(string section, string message) =>
        Assert.Contains(message, await StartFailure.WithSovereignSectionAsync(section), StringComparison.Ordinal);

    [Fact]
    public async Task Serve_AModelNamedAuto_StopsTheStart()
    {
        var message = await StartFailure.WithSovereignSectionAsync("{}", [new ModelOptions { Id = "AUTO", Path = TestModels.Stories260K }]);

        Assert.Contains("Sovereign:Models:0:Id 'AUTO' is reserved for routing by language", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_AModelLanguageTheDetectorDoesNotKnow_StopsTheStart()
    {
        var message = await StartFailure.WithSovereignSectionAsync("{}", [new ModelOptions { Id = "m", Path = TestModels.Stories260K, Languages = ["en", "english"] }]);

        Assert.Contains("Sovereign:Models:0:Languages:1 'english' is not a language code", message, StringComparison.Ordinal);
    }
}
