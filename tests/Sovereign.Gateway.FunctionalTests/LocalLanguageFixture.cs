using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// A priced server in TH whose "fair" plan bills Thai per character-equivalent, on a model with a real multilingual
/// vocabulary and a context long enough for tools (the metering fixture's model has 256 tokens); its aliases name
/// models no node serves.
/// </summary>
public sealed class LocalLanguageFixture() : AdminServerFixture("language-tax-admin-token", "sovereign-language-tax-")
{
    public const string Model = "tiny";
    public const string Unserved = "typhoon-offline";
    public const string ThaiFirst = "thai-first";
    public const string UnservedDefault = "offline-default";

    /// <summary>An alias whose only candidate is declared for Croatian; everything else falls back to a model no node serves.</summary>
    public const string CroatianOnly = "hr-only";

    /// <summary>An alias whose candidate before the served model is declared for Bosnian only, and whose served
    /// model is declared for the group <c>hbs</c>; everything else falls back to a model no node serves.</summary>
    public const string GroupDeclared = "hbs-group";

    /// <summary>A plan whose aliases match the family of a close group whose member is undecided (<c>Sovereign:LanguageMatch</c>).</summary>
    public const string FamilyPlan = "balkan";

    private int _tenants;

    protected override IReadOnlyList<ModelOptions> Models =>
        [new ModelOptions { Id = Model, Path = TestModels.TinyRandomLlama2, ContextLength = 2048, Parallel = 2, Threads = 1 }];

    protected override IDictionary<string, string?> Overrides => new Dictionary<string, string?>
    {
        ["Sovereign:Jurisdiction"] = "TH",
        ["Sovereign:BuiltInEmbeddings"] = "false",
        ["Sovereign:Metering:CharacterEquivalentLanguages:fair:0"] = "th",
        // Thai prefers a model no node serves, then this one; the other alias falls back to a model no node serves.
        [$"Sovereign:Aliases:{ThaiFirst}:Default"] = Model,
        [$"Sovereign:Aliases:{ThaiFirst}:Candidates:0:Model"] = Unserved,
        [$"Sovereign:Aliases:{ThaiFirst}:Candidates:0:Languages:0"] = "th",
        [$"Sovereign:Aliases:{ThaiFirst}:Candidates:1:Model"] = Model,
        [$"Sovereign:Aliases:{ThaiFirst}:Candidates:1:Languages:0"] = "th",
        [$"Sovereign:Aliases:{UnservedDefault}:Default"] = Unserved,
        [$"Sovereign:Aliases:{CroatianOnly}:Default"] = Unserved,
        [$"Sovereign:Aliases:{CroatianOnly}:Candidates:0:Model"] = Model,
        [$"Sovereign:Aliases:{CroatianOnly}:Candidates:0:Languages:0"] = "hr",
        [$"Sovereign:Aliases:{GroupDeclared}:Default"] = Unserved,
        [$"Sovereign:Aliases:{GroupDeclared}:Candidates:0:Model"] = Unserved,
        [$"Sovereign:Aliases:{GroupDeclared}:Candidates:0:Languages:0"] = "bs",
        [$"Sovereign:Aliases:{GroupDeclared}:Candidates:1:Model"] = Model,
        [$"Sovereign:Aliases:{GroupDeclared}:Candidates:1:Languages:0"] = "HBS",
        // Plan names are case-insensitive, as the price book's are.
        [$"Sovereign:LanguageMatch:Plans:{FamilyPlan.ToUpperInvariant()}"] = "family",
    };

    protected override async Task SetUpAsync()
    {
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/fair", new { currency = "THB", weight = 1 }, 200);
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/fair/prices", new { model = Model, input_per_million = 1000m, output_per_million = 2000m }, 201);
        await SendAsync(HttpMethod.Put, $"/admin/v1/plans/{FamilyPlan}", new { currency = "THB", weight = 1 }, 200);
        await SendAsync(HttpMethod.Post, $"/admin/v1/plans/{FamilyPlan}/prices", new { model = Model, input_per_million = 1000m, output_per_million = 2000m }, 201);
    }

    /// <summary>A new tenant on the fair plan (or another) with one key; returns its key's secret.</summary>
    public async Task<string> NewTenantAsync(string plan = "fair")
    {
        var id = "w" + Interlocked.Increment(ref _tenants);
        await SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan, policy = new { allowed_jurisdictions = new[] { "TH" } } }, 201);
        return (await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
    }
}
