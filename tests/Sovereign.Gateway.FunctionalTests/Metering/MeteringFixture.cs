using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// A server with priced plans: 1,000 per million input tokens and 2,000 per million output tokens (EUR); the
/// "cached" plan charges prompt tokens served from the prefix cache 100 per million.
/// </summary>
public sealed class MeteringFixture() : AdminServerFixture(AdminToken, "sovereign-metering-")
{
    public const string AdminToken = "metering-admin-token";
    public const string Model = "stories";
    public const decimal InputPerMillion = 1000m;
    public const decimal OutputPerMillion = 2000m;
    public const decimal CachedInputPerMillion = 100m;

    /// <summary>The named operator token of <c>alice</c> (<c>Sovereign:OperatorTokens:alice</c>).</summary>
    public const string AliceToken = "alice-operator-token-7f3a9c1e";

    private int _tenants;

    protected override IReadOnlyList<ModelOptions> Models =>
        [new ModelOptions { Id = Model, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 8, MaxQueue = 512, Threads = 1 }];

    protected override IDictionary<string, string?> Overrides => new Dictionary<string, string?>
    {
        ["Sovereign:Jurisdiction"] = "DE",
        ["Sovereign:BuiltInEmbeddings"] = "false",
        ["Sovereign:Metering:CharacterEquivalentLanguages:fair:0"] = "th",
        // Filipino under its other code: the detector reports fil.
        ["Sovereign:Metering:CharacterEquivalentLanguages:fair:1"] = "tl",
        // Serbian, written in Cyrillic and in Latin: each script at its own ratio.
        ["Sovereign:Metering:CharacterEquivalentLanguages:fair:2"] = "sr",
        // Bosnian, Croatian and Serbian by their group: the member need not be decided.
        ["Sovereign:Metering:CharacterEquivalentLanguages:balkan:0"] = "hbs",
        // A second operator with a token of its own: the audit log names which token acted.
        ["Sovereign:OperatorTokens:alice"] = AliceToken,
    };

    protected override async Task SetUpAsync()
    {
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/standard", new { currency = "EUR", weight = 1 }, 200);
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/standard/prices", new { model = Model, input_per_million = InputPerMillion, output_per_million = OutputPerMillion }, 201);
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/fair", new { currency = "EUR", weight = 1 }, 200);
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/fair/prices", new { model = Model, input_per_million = InputPerMillion, output_per_million = OutputPerMillion }, 201);
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/balkan", new { currency = "EUR", weight = 1 }, 200);
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/balkan/prices", new { model = Model, input_per_million = InputPerMillion, output_per_million = OutputPerMillion }, 201);
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/cached", new { currency = "EUR", weight = 1 }, 200);
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/cached/prices",
            new { model = Model, input_per_million = InputPerMillion, cached_input_per_million = CachedInputPerMillion, output_per_million = OutputPerMillion }, 201);
    }

    /// <summary>A new tenant on the standard plan with one key; returns (tenant id, key secret).</summary>
    public async Task<(string Tenant, string Key)> NewTenantAsync(object? limits = null, string plan = "standard")
    {
        var id = "t" + Interlocked.Increment(ref _tenants);
        await SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan, policy = new { allowed_jurisdictions = new[] { "EU" } } }, 201);
        var key = await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201);
        if (limits is not null)
        {
            await SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{id}/limits", limits, 200);
        }

        return (id, key.GetProperty("secret").GetString()!);
    }
}

/// <summary>
/// Runs alone, after the parallel collections: its tests read per-tenant series from /metrics, and test servers share
/// one process, where OpenTelemetry merges same-named instruments of every server's meters into one stream, which a
/// server that stops takes off every other server's page for good. No other server stops while this one lives.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MeteringCollection : ICollectionFixture<MeteringFixture>
{
    public const string Name = "metering";
}
