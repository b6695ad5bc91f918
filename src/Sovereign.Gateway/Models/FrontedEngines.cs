using System.Collections.Frozen;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Hosting;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.Models;

/// <summary>
/// An OpenAI-compatible engine this node fronts (<c>Sovereign:Engines</c>): vLLM, llama-server or Ollama on the node's
/// own machine, usually its GPU server. Its models are this node's models: a gateway routes to them as to the node's
/// own engine, and the node relays to the engine.
/// </summary>
public sealed class EngineOptions
{
    /// <summary>Default <see cref="Capacity"/>: requests sent to the engine at once, per model, as for a registered engine.</summary>
    public const int DefaultCapacity = 16;

    /// <summary>The engine's base URL without <c>/v1</c>, e.g. <c>http://127.0.0.1:8000</c>.</summary>
    public string BaseUrl { get; set; } = "";

    /// <summary>The bearer key the engine needs, if any. Never logged or reported.</summary>
    public string? ApiKey { get; set; }

    /// <summary>Requests sent to the engine at once, per model, unless the model says otherwise; more wait in the fair route queue.</summary>
    public int Capacity { get; set; } = DefaultCapacity;

    /// <summary>
    /// How the engine's own prompt cache is kept apart between tenants: <c>shared</c> (Ollama: nothing to set), <c>salt</c>
    /// (vLLM: a <c>cache_salt</c> per tenant) or <c>off</c> (llama-server: <c>cache_prompt: false</c>); see <see cref="EnginePromptCaches"/>.
    /// </summary>
    public string PromptCache { get; set; } = EnginePromptCaches.Shared;

    /// <summary>The models the engine serves.</summary>
    public List<EngineModelOptions> Models { get; set; } = [];
}

/// <summary>One model of a fronted engine.</summary>
public sealed class EngineModelOptions
{
    /// <summary>The id clients send as <c>model</c>.</summary>
    public string Id { get; set; } = "";

    /// <summary>The engine's own name for it (default: <see cref="Id"/>), e.g. <c>scb10x/typhoon-2-8b</c>.</summary>
    public string? Upstream { get; set; }

    /// <summary>Chat (chat, completions, responses) or Embedding (<c>/v1/embeddings</c>).</summary>
    public ModelKind Kind { get; set; } = ModelKind.Chat;

    /// <summary>Requests sent to the engine at once for this model (default: the engine's <see cref="EngineOptions.Capacity"/>).</summary>
    public int? Capacity { get; set; }

    /// <summary>The model's licence as an SPDX id; residency policies can allow or deny by it.</summary>
    public string? License { get; set; }

    /// <summary>The publisher's country (ISO 3166-1 alpha-2); residency policies can allow or deny by it.</summary>
    public string? Origin { get; set; }

    /// <summary>Languages (ISO 639-1 codes) the model serves well; <c>model: "auto"</c> routes by them.</summary>
    public List<string> Languages { get; set; } = [];
}

/// <summary>A model of a fronted engine, as the router and the relay see it.</summary>
/// <param name="Model">The model as a registry row lists it (id, engine name, capacity, licence, origin, kind).</param>
/// <param name="Engine">Which of <c>Sovereign:Engines</c> serves it.</param>
/// <param name="BaseUrl">The engine's base URL.</param>
/// <param name="ApiKey">The engine's key, if any.</param>
/// <param name="Languages">Languages the model serves well.</param>
/// <param name="PromptCache">How the engine keeps its prompt cache apart between tenants (<see cref="EnginePromptCaches"/>).</param>
public sealed record FrontedModel(NodeModel Model, int Engine, string BaseUrl, string? ApiKey, IReadOnlyList<string> Languages, string PromptCache = EnginePromptCaches.Shared)
{
    /// <summary>The id clients send.</summary>
    public string Id => Model.Id;

    /// <summary>Chat or embedding.</summary>
    public ModelKind Kind => Model.IsEmbedding ? ModelKind.Embedding : ModelKind.Chat;
}

/// <summary>
/// The engines this node fronts and whether each answers now. The relay marks an engine down when a connection to
/// it is refused; the node's load reporter probes every engine each second and marks it up or down. A down engine
/// takes no request (the router sees no capacity: 503, never another jurisdiction) until a probe or, where no probe
/// runs, <see cref="RetryAfter"/> says it may be back.
/// </summary>
public sealed class FrontedEngines
{
    /// <summary>How long a refused engine is routed around when nothing probes it.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(5);

    private readonly FrozenDictionary<string, FrontedModel> _models;
    private readonly long[] _downSince;
    private readonly long[] _answeredAt;
    private readonly bool[] _usageOnEveryEvent;
    private readonly TimeProvider _time;

    public FrontedEngines(IOptions<SovereignOptions> options, IOptions<Cluster.Hosting.SovereignClusterOptions> cluster, TimeProvider time)
    {
        _time = time;
        Created = time.GetUtcNow().ToUnixTimeSeconds();
        var engines = cluster.Value.ServesModels ? options.Value.Engines : [];
        var models = new List<FrontedModel>();
        for (var i = 0; i < engines.Count; i++)
        {
            var engine = engines[i];
            var baseUrl = engine.BaseUrl.Trim().TrimEnd('/');
            models.AddRange(engine.Models.Select(m => new FrontedModel(
                new NodeModel(m.Id, string.IsNullOrWhiteSpace(m.Upstream) ? m.Id : m.Upstream, m.Capacity ?? engine.Capacity, m.License, m.Origin?.ToUpperInvariant(),
                    m.Kind == ModelKind.Embedding ? NodeModelKinds.Embedding : NodeModelKinds.Chat, Routing.LanguageRouting.Canonical(m.Languages)),
                i, baseUrl, string.IsNullOrEmpty(engine.ApiKey) ? null : engine.ApiKey, m.Languages, EnginePromptCaches.Parse(engine.PromptCache) ?? EnginePromptCaches.Shared)));
        }

        All = models;
        BaseUrls = [.. engines.Select(e => e.BaseUrl.Trim().TrimEnd('/'))];
        ApiKeys = [.. engines.Select(e => string.IsNullOrEmpty(e.ApiKey) ? null : e.ApiKey)];
        _models = models.ToFrozenDictionary(m => m.Id, StringComparer.Ordinal);
        _downSince = new long[engines.Count];
        _answeredAt = new long[engines.Count];
        _usageOnEveryEvent = new bool[engines.Count];
    }

    /// <summary>When this process started fronting them (Unix seconds; <c>created</c> in /v1/models).</summary>
    public long Created { get; }

    /// <summary>Every fronted model, in configuration order.</summary>
    public IReadOnlyList<FrontedModel> All { get; }

    /// <summary>Each engine's base URL, by its index in <c>Sovereign:Engines</c>.</summary>
    public IReadOnlyList<string> BaseUrls { get; }

    /// <summary>Each engine's key, if any, by its index in <c>Sovereign:Engines</c> (the probe sends it: llama-server's /metrics asks for it).</summary>
    public IReadOnlyList<string?> ApiKeys { get; }

    /// <summary>Finds a fronted model by id (ordinal, as OpenAI ids are).</summary>
    public bool TryGet(string id, out FrontedModel model) => _models.TryGetValue(id, out model!);

    /// <summary>Whether the engine may take a request now.</summary>
    public bool IsUp(int engine)
    {
        var since = Volatile.Read(ref _downSince[engine]);
        return since == 0 || Sovereign.Cluster.Hosting.WallClock.HasPassed(_time.GetUtcNow().ToUnixTimeMilliseconds(), since, (long)RetryAfter.TotalMilliseconds);
    }

    /// <summary>The engine refused a connection (or a probe failed): routed around until it answers again.</summary>
    public void MarkDown(int engine) => Volatile.Write(ref _downSince[engine], Math.Max(1, _time.GetUtcNow().ToUnixTimeMilliseconds()));

    /// <summary>A probe reached the engine: it takes requests again.</summary>
    public void MarkUp(int engine) => Volatile.Write(ref _downSince[engine], 0);

    /// <summary>Whether the engine's metrics show it can put the usage so far on every event of a stream (vLLM).</summary>
    public bool UsageOnEveryEvent(int engine) => Volatile.Read(ref _usageOnEveryEvent[engine]);

    /// <summary>What the engine's metrics page showed of <see cref="UsageOnEveryEvent"/>.</summary>
    public void NoteUsageOnEveryEvent(int engine, bool can) => Volatile.Write(ref _usageOnEveryEvent[engine], can);

    /// <summary>The engine sent part of an answer to a request relayed to it (headers, an event of a stream).</summary>
    public void NoteAnswered(int engine) => Volatile.Write(ref _answeredAt[engine], _time.GetTimestamp());

    /// <summary>
    /// Whether the engine sent part of an answer within <paramref name="window"/>: it is alive, however slow its other
    /// answers (llama-server serves its /metrics on the threads its streams hold, so a busy one answers the probe late).
    /// </summary>
    public bool AnsweredWithin(int engine, TimeSpan window) =>
        Volatile.Read(ref _answeredAt[engine]) is var at and not 0 && _time.GetElapsedTime(at) <= window;

    /// <summary>Whether a probe or a refused connection found the engine down (whatever the retry time says).</summary>
    public bool IsMarkedDown(int engine) => Volatile.Read(ref _downSince[engine]) != 0;
}
