using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A TH gateway with no model of its own in front of another Sovereign that serves stories260K in embedding mode, as
/// an operator would run vLLM or llama-server <c>--embeddings</c> (and the same weights as a chat model): registered
/// once in TH (the embedding model and the chat model) and once in SG, with a plan that prices both embedding models at 1 THB per input token.
/// </summary>
public sealed class EmbeddingRelayFixture() : AdminServerFixture(AdminToken, "sovereign-embed-relay-")
{
    public const string AdminToken = "embed-relay-admin";

    /// <summary>The engine's own name for its embedding model.</summary>
    public const string EngineModel = "stories-embed";

    /// <summary>The engine's chat model (same weights; its tokenizer gives the ids of a text).</summary>
    public const string EngineChatModel = "stories";

    /// <summary>The embedding model registered on the TH engine node.</summary>
    public const string ThModel = "embed-th";

    /// <summary>The same engine registered in SG, under another model id.</summary>
    public const string SgModel = "embed-sg";

    /// <summary>A chat model registered on the TH engine node.</summary>
    public const string ChatModel = "chat-th";

    /// <summary>The priced plan: 1 THB per input token of <see cref="ThModel"/>.</summary>
    public const string Plan = "embed-priced";

    private readonly string _engineData = Directory.CreateTempSubdirectory("sovereign-embed-engine-").FullName;
    private int _tenants;

    /// <summary>The engine: a Sovereign serving <see cref="EngineModel"/> to anyone (no tenants).</summary>
    public WebApplication Engine { get; private set; } = null!;

    public Uri EngineAddress { get; private set; } = null!;

    protected override IDictionary<string, string?> Overrides => new Dictionary<string, string?>
    {
        ["Sovereign:Jurisdiction"] = "TH",
        ["Sovereign:NodeId"] = "th-gateway",
        ["Sovereign:BuiltInEmbeddings"] = "false",
    };

    protected override async Task SetUpAsync()
    {
        Engine = ServeCommand.Build(new ServeSettings
        {
            Models =
            [
                new ModelOptions { Id = EngineModel, Path = TestModels.Stories260K, Kind = ModelKind.Embedding, Threads = 1 },
                new ModelOptions { Id = EngineChatModel, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 1, Threads = 1 },
            ],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _engineData,
            Overrides = new Dictionary<string, string?> { ["Sovereign:Jurisdiction"] = "TH", ["Sovereign:NodeId"] = "engine", ["Sovereign:BuiltInEmbeddings"] = "false" },
        }, []);
        await Engine.StartAsync();
        EngineAddress = new Uri(Engine.Urls.First());

        await SendAsync(HttpMethod.Post, "/admin/v1/nodes", new
        {
            id = "th-engine",
            jurisdiction = "TH",
            base_url = EngineAddress.ToString().TrimEnd('/'),
            models = new object[]
            {
                new { id = ThModel, upstream = EngineModel, capacity = 2, kind = "embedding" },
                new { id = ChatModel, upstream = EngineChatModel, capacity = 2, kind = "chat" },
            },
        }, 201);
        await SendAsync(HttpMethod.Post, "/admin/v1/nodes", new
        {
            id = "sg-engine",
            jurisdiction = "SG",
            base_url = EngineAddress.ToString().TrimEnd('/'),
            models = new[] { new { id = SgModel, upstream = EngineModel, capacity = 2, kind = "embedding" } },
        }, 201);
        await SendAsync(HttpMethod.Put, $"/admin/v1/plans/{Plan}", new { currency = "THB" }, 200);
        await SendAsync(HttpMethod.Post, $"/admin/v1/plans/{Plan}/prices", new { model = ThModel, input_per_million = 1_000_000m, output_per_million = 0m }, 201);
        // Priced too: the tenants have budgets, under which a model the plan does not price is refused (model_not_priced).
        await SendAsync(HttpMethod.Post, $"/admin/v1/plans/{Plan}/prices", new { model = SgModel, input_per_million = 1_000_000m, output_per_million = 0m }, 201);
    }

    /// <summary>A new tenant on <see cref="Plan"/> allowed <paramref name="jurisdictions"/> and external engines, with a day budget; its key.</summary>
    public async Task<(string Tenant, string Key)> NewTenantAsync(decimal budget, params string[] jurisdictions)
    {
        var id = "e" + Interlocked.Increment(ref _tenants);
        await SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan = Plan, policy = new { allowed_jurisdictions = jurisdictions, allow_external_providers = true } }, 201);
        await SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{id}/limits", new { budgets = new[] { new { period = "day", amount = budget } } }, 200);
        var key = (await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        return (id, key);
    }

    /// <summary>The tenant's day budget: what is settled and what is still reserved.</summary>
    public async Task<(decimal Settled, decimal Reserved)> BudgetOfAsync(string tenant)
    {
        var budget = (await SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200)).GetProperty("budgets")[0];
        return (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal());
    }

    /// <summary>Registers another engine serving one embedding model under <paramref name="model"/> in TH.</summary>
    public Task<JsonElement> RegisterEmbeddingEngineAsync(string id, string url, string model) =>
        SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id, jurisdiction = "TH", base_url = url, models = new[] { new { id = model, upstream = "upstream", capacity = 2, kind = "embedding" } } }, 201);

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await Engine.StopAsync();
        await Engine.DisposeAsync();
        Directory.Delete(_engineData, recursive: true);
    }
}
