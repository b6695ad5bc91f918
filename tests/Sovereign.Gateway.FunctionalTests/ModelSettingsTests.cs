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

    /// <summary>
    /// A chat model's languages are what `auto` routes by, so one the detector never reports stops the start, as it does
    /// in an alias candidate's list. Found by declaring Amharic for a model with the default language set (which lacks
    /// it): the server started, and Amharic text went to the alias's default as undetermined.
    /// </summary>
    [Theory]
    [InlineData("{}", "Sovereign:Models:0:Languages:1 'am' is not among the languages the detector reports")]
    [InlineData("""{"Engines":[{"BaseUrl":"http://127.0.0.1:9","Models":[{"Id":"x","Languages":["th","am"]}]}]}""",
        "Sovereign:Engines:0:Models:0:Languages:1 'am' is not among the languages the detector reports")]
    public async Task Serve_AModelLanguageTheDetectorDoesNotReport_StopsTheStart(string section, string expected)
    {
        var message = await StartFailure.WithSovereignSectionAsync(section, [new ModelOptions { Id = "m", Path = TestModels.Stories260K, Languages = ["en", "am"] }]);

        Assert.Contains(expected, message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A local model's id had only "no spaces" for a rule, where a node's registration refused what is not a resource
    /// id (over 256 characters, a lone surrogate): the settings and the admin API now share one rule set.
    /// </summary>
    [Fact]
    public async Task Serve_ALocalModelIdTheAdminApiWouldRefuse_StopsTheStart()
    {
        var message = await StartFailure.WithSovereignSectionAsync("{}", [new ModelOptions { Id = new string('m', 300), Path = TestModels.Stories260K }]);

        Assert.Contains("Sovereign:Models:0:Id must be 1-256 characters without whitespace or control characters", message, StringComparison.Ordinal);
    }

    /// <summary>The admin API and the settings say the same of the same model, each naming the field its own way.</summary>
    [Fact]
    public void ModelRules_SayTheSameToTheAdminApiAndToTheSettings()
    {
        var bad = new Models.ModelDeclaration("auto", Relayed: true, "embeddings", "has space", 0, "not-a-licence", "XX1", ["th", "xx", "TH"]);
        var (api, settings) = (new List<Models.ModelProblem>(), new List<Models.ModelProblem>());
        Models.ModelRules.Check(bad, Models.ModelFieldNames.Json("models[0]"), new HashSet<string>(), api);
        Models.ModelRules.Check(bad, Models.ModelFieldNames.Settings("Sovereign:Engines:0:Models:0"), new HashSet<string>(), settings);

        Assert.Equal(
            ["models[0].id", "models[0].upstream", "models[0].capacity", "models[0].kind", "models[0].license", "models[0].origin", "models[0].languages[1]"],
            api.Select(p => p.Field));
        Assert.Equal(
            ["Sovereign:Engines:0:Models:0:Id", "Sovereign:Engines:0:Models:0:Upstream", "Sovereign:Engines:0:Models:0:Capacity", "Sovereign:Engines:0:Models:0:Kind",
             "Sovereign:Engines:0:Models:0:License", "Sovereign:Engines:0:Models:0:Origin", "Sovereign:Engines:0:Models:0:Languages:1"],
            settings.Select(p => p.Field));
        Assert.Equal(api.Select(p => Unnamed(p)), settings.Select(p => Unnamed(p)));
        Assert.Equal("models[0].origin 'XX1' is not an ISO 3166-1 alpha-2 country code.", api[5].Message);

        // A model's languages are a set: "TH" after "th" is the same language, folded, for both.
    }

    /// <summary>
    /// A model id could hold a bidirectional override (names could not): declared by whoever registers a node's models,
    /// it displayed as another id in the console, the invoice CSV and every table. Refused for the admin API and the
    /// settings alike; letters of any script are ids as before (session 48).
    /// </summary>
    [Fact]
    public void ModelRules_RefuseAModelIdWithABidirectionalOverride_AndKeepEveryScript()
    {
        foreach (var id in new[] { "cheap\u202E8-b3-amall", "a\u2066b", "x\u202Ay" })
        {
            var problems = new List<Models.ModelProblem>();
            Models.ModelRules.Check(new Models.ModelDeclaration(id, Relayed: true, "chat", "up", 1), Models.ModelFieldNames.Json("models[0]"), new HashSet<string>(), problems);
            var problem = Assert.Single(problems);
            Assert.Equal(("models[0].id", "invalid_value"), (problem.Field, problem.Code));
            Assert.StartsWith("models[0].id must not contain bidirectional overrides; got U+", problem.Message, StringComparison.Ordinal);
        }

        var scripts = new List<Models.ModelProblem>();
        Models.ModelRules.Check(new Models.ModelDeclaration("typhoon-ไทย-مستشفى-日本語", Relayed: true, "chat", "up", 1), Models.ModelFieldNames.Json("models[0]"), new HashSet<string>(), scripts);
        Assert.Empty(scripts);
    }

    /// <summary>
    /// Zero-width and other invisible characters were accepted in model ids (bidirectional overrides were refused):
    /// "llama-3-8b" and "llama-3-8b" with a U+200B displayed the same in the console, the invoice CSV and every table.
    /// </summary>
    [Fact]
    public void ModelRules_RefuseAModelIdWithAnInvisibleCharacter_NamingTheRuleAndTheCharacter()
    {
        foreach (var (id, codePoint) in new[] { ("llama\u200B", "200B"), ("a\u200Cb", "200C"), ("a\u200Db", "200D"), ("x\u200Ey", "200E"), ("x\u200Fy", "200F"),
            ("m\u2060", "2060"), ("m\u2064", "2064"), ("\uFEFFm", "FEFF"), ("soft\u00ADhyphen", "00AD"), ("fill\u3164er", "3164"), ("vs\uFE0F", "FE0F") })
        {
            var problems = new List<Models.ModelProblem>();
            Models.ModelRules.Check(new Models.ModelDeclaration(id, Relayed: true, "chat", "up", 1), Models.ModelFieldNames.Json("models[0]"), new HashSet<string>(), problems);
            var problem = Assert.Single(problems);
            Assert.Equal(("models[0].id", "invalid_value"), (problem.Field, problem.Code));
            Assert.StartsWith("models[0].id must not contain invisible characters: Unicode format characters such as the zero-width spaces", problem.Message, StringComparison.Ordinal);
            Assert.Contains($"; got U+{codePoint} in '", problem.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(id[id.IndexOfAny([.. id.Where(c => !char.IsAsciiLetterOrDigit(c))])], problem.Message);
        }
    }

    // A message with its field names taken out (they are the caller's; the rest is the rule's).
    private static string Unnamed(Models.ModelProblem problem) =>
        System.Text.RegularExpressions.Regex.Replace(problem.Message, @"(models\[0\]\.[a-z_]+(\[\d\])?|Sovereign:Engines:0:Models:0:[A-Za-z]+(:\d)?)", "FIELD");
}
