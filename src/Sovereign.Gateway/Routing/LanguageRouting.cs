using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Models;
using Sovereign.Inference.Engine;
using Sovereign.Languages;

namespace Sovereign.Gateway.Routing;

/// <summary>
/// Detects each request's language and resolves model aliases (<c>auto</c>, <c>legal-th</c>, …) to the best model
/// the tenant's policy allows for it. The detector (about 90-120 MB of RSS in the server, see docs/benchmarks.md) is loaded
/// in the background after start when every request's language is detected (<see cref="LanguageDetectorWarmup"/>), else
/// on first use, so servers that never see an alias or need a language do not pay for it.
/// </summary>
public sealed class LanguageRouting(ModelCatalog catalog, FrontedEngines engines, NodeDirectory nodes, IOptions<SovereignOptions> options)
{
    /// <summary>Response header: the detected language and the detector's confidence, as a structured-field item with
    /// parameters (RFC 8941): <c>th;confidence=0.973</c>, <c>und;confidence=0.000</c>; with a <c>group</c> parameter when
    /// the detector did not decide the member of a close group: <c>bs;confidence=0.640;group=hbs</c>.</summary>
    public const string LanguageHeader = "x-sovereign-language";

    /// <summary>Response header: why the alias resolved to its model.</summary>
    public const string RouteReasonHeader = "x-sovereign-route-reason";

    private readonly Lazy<LanguageDetector> _detector = new(() => new LanguageDetector(options.Value.Languages), LazyThreadSafetyMode.ExecutionAndPublication);
    /// <summary>Whether a model name is an alias rather than a model of this process.</summary>
    public async ValueTask<bool> IsAliasAsync(string? model) =>
        model is not null && !catalog.TryGet(model, out _) && !engines.TryGet(model, out _) && (await AliasesAsync()).ContainsKey(model);

    /// <summary>
    /// The aliases a caller may name, each with the models it may choose among <paramref name="visible"/> (the caller's
    /// models), in name order; an alias that could choose none of them is left out, as <c>GET /v1/models/{alias}</c>
    /// answers 404 for it.
    /// </summary>
    public async ValueTask<IReadOnlyList<(string Alias, IReadOnlyList<ServedModelCard> Reachable)>> ReachableAliasesAsync(IReadOnlyList<ServedModelCard> visible)
    {
        ArgumentNullException.ThrowIfNull(visible);
        var reachable = new List<(string, IReadOnlyList<ServedModelCard>)>();
        foreach (var (name, alias) in (await AliasesAsync()).OrderBy(a => a.Key, StringComparer.Ordinal))
        {
            if (catalog.TryGet(name, out _) || engines.TryGet(name, out _) || visible.Any(m => m.Id == name))
            {
                continue;
            }

            // A candidate that declares no language is never chosen (LanguageRouter.Choose matches languages only), so
            // it does not make the alias usable: a key narrowed to such a model (an engine registered without
            // --language) saw 'auto' listed, and every request to it was 403 model_not_allowed.
            var targets = alias.Candidates.Where(c => c.Languages.Count > 0).Select(c => c.ModelId).Append(alias.DefaultModelId).ToHashSet(StringComparer.Ordinal);
            if (visible.Where(m => targets.Contains(m.Id)).ToList() is { Count: > 0 } models)
            {
                reachable.Add((name, models));
            }
        }

        return reachable;
    }

    private volatile AliasTable? _aliases;

    // Built once per catalog snapshot (the catalog replaces its list on every load or unload) and registry view (replaced
    // when a node reports a change), so models loaded at run time, here or on a node, join `auto` without the request
    // path rebuilding the table on every call.
    private async ValueTask<Dictionary<string, LanguageAlias>> AliasesAsync()
    {
        var models = catalog.All;
        var registry = await nodes.GetNodesAsync();
        if (_aliases is { } cached && ReferenceEquals(cached.Models, models) && ReferenceEquals(cached.Nodes, registry))
        {
            return cached.Aliases;
        }

        var built = BuildAliases(catalog, engines, RoutableNodeModels(registry), options.Value);
        _aliases = new AliasTable(models, registry, built);
        return built;
    }

    private sealed record AliasTable(IReadOnlyList<ServedModel> Models, IReadOnlyList<NodeView> Nodes, Dictionary<string, LanguageAlias> Aliases);

    /// <summary>The chat models of the other nodes a request may be routed to (cluster nodes, registered engines), in id order.</summary>
    private IEnumerable<NodeModel> RoutableNodeModels(IReadOnlyList<NodeView> registry) =>
        registry.Where(n => n.Kind == nameof(Residency.Policies.NodeKind.External) || (n.Id != options.Value.NodeId && NodeDirectory.IsClusterNode(n)))
            .SelectMany(n => n.Models)
            .Where(m => !m.IsEmbedding)
            .OrderBy(m => m.Id, StringComparer.Ordinal);

    /// <summary>The model an alias falls back to (for undetermined text, or a language no candidate serves).</summary>
    public async ValueTask<string> DefaultOfAsync(string alias) => (await AliasesAsync())[alias].DefaultModelId;

    /// <summary>Whether any node serves a model now: this process, a fronted engine, a registered or cluster node.</summary>
    public async ValueTask<bool> IsServedAsync(string model) => IsServed(model, await nodes.GetNodesAsync());

    private bool IsServed(string model, IReadOnlyList<NodeView> registry) =>
        catalog.TryGet(model, out _) || engines.TryGet(model, out _) || registry.Any(n => n.Models.Any(m => m.Id == model));

    /// <summary>Language codes as the detector names them (<c>tl</c> is <c>fil</c>) and close groups (<c>hbs</c>,
    /// <c>msa</c>; <see cref="LanguageGroups.TryPolicyCode"/>), each once; null when none.</summary>
    public static string[]? Canonical(IReadOnlyList<string>? codes)
    {
        var canonical = (codes ?? []).Select(c => LanguageGroups.TryPolicyCode(c, out var code) ? code : null)
            .OfType<string>().Distinct(StringComparer.Ordinal).ToArray();
        return canonical.Length == 0 ? null : canonical;
    }

    /// <summary>Whether the detector is loaded (it loads on first use, or when warmed).</summary>
    public bool IsLoaded => _detector.IsValueCreated;

    /// <summary>
    /// Loads the detector now, on the calling thread (about 2 s of CPU and 90-120 MB): a request that needs it before
    /// it is loaded waits for this load rather than starting another.
    /// </summary>
    public void Warm() => _ = _detector.Value;

    /// <summary>Detects the language of one text (<c>POST /v1/language/detect</c>).</summary>
    public LanguageDetection Detect(string text) => _detector.Value.Detect(text);

    /// <summary>Detects a request's language: its conversation's (<see cref="LanguageDetector.DetectConversation"/>).</summary>
    public LanguageDetection Detect(PromptText prompt) => _detector.Value.DetectConversation(prompt);

    /// <summary>The language recorded with a request's usage, or null when detection of every request is off.</summary>
    public LanguageDetection? DetectForUsage(PromptText prompt) =>
        options.Value.DetectLanguageOfEveryRequest && HasText(prompt.Turns) ? Detect(prompt) : null;

    // A loop, not Any(): every governed request asks (a boxed enumerator and a delegate call per turn).
    private static bool HasText(IReadOnlyList<PromptTurn> turns)
    {
        for (var i = 0; i < turns.Count; i++)
        {
            if (!string.IsNullOrWhiteSpace(turns[i].Text))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The share of a request's letters written in a language, for the language tax's waiver
    /// (<see cref="LanguageDetector.ShareOf(PromptText, string, int)"/>); the passages drawn from a long prompt are
    /// drawn with the request id's seed, which the server makes and the client cannot choose.
    /// </summary>
    public LanguageShare ShareOf(PromptText prompt, string language, string requestId) => _detector.Value.ShareOf(prompt, language, StableSeed(requestId));

    /// <summary>The share of a completion's letters (gathered in <see cref="NewSample"/>'s sample) written in a language.</summary>
    public LanguageShare ShareOf(LetterSample text, string language) => _detector.Value.ShareOf(text, language);

    /// <summary>
    /// A sample to gather a completion's letters in as it is delivered, read as a prompt is: passages as long as the
    /// detector reads, the newest and some drawn from the rest (<see cref="LanguageDetectorOptions.ShareCharacters"/>),
    /// with the request id's seed.
    /// </summary>
    public LetterSample NewSample(string requestId) => LanguageDetector.NewSample(options.Value.Languages, StableSeed(requestId));

    /// <summary>A seed from a string that is the same in every process (string hash codes are not).</summary>
    private static int StableSeed(string value)
    {
        var hash = 2166136261u;
        foreach (var c in value)
        {
            hash = (hash ^ c) * 16777619u;
        }

        return (int)hash;
    }

    /// <summary>The value of <see cref="LanguageHeader"/>; <paramref name="undecidedGroup"/> is added as <c>group</c>.</summary>
    public static string HeaderValue(string language, double confidence, string? undecidedGroup = null) =>
        undecidedGroup is null
            ? FormattableString.Invariant($"{language};confidence={confidence:0.000}")
            : FormattableString.Invariant($"{language};confidence={confidence:0.000};group={undecidedGroup}");

    /// <summary>Says on a response (served or refused) which language an alias saw and why it chose its model.</summary>
    public static void AddHeaders(IHeaderDictionary headers, RouteChoice? choice)
    {
        if (choice is not null)
        {
            headers[LanguageHeader] = HeaderValue(choice.Language, choice.Confidence, choice.UndecidedGroup);
            headers[RouteReasonHeader] = Uri.EscapeDataString(choice.Reason);
        }
    }

    /// <summary>Adds the detector's confidence to an audit entry's details (as <c>language_confidence</c>).</summary>
    public static Dictionary<string, string> WithConfidence(Dictionary<string, string> details, double? confidence)
    {
        if (confidence is { } value)
        {
            details["language_confidence"] = value.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture);
        }

        return details;
    }

    /// <summary>Adds the close group to an audit entry's details (as <c>language_group</c>) when the detector did not
    /// decide its member (<see cref="LanguageDetection.UndecidedGroup"/>).</summary>
    public static Dictionary<string, string> WithGroup(Dictionary<string, string> details, string? undecidedGroup)
    {
        if (undecidedGroup is not null)
        {
            details["language_group"] = undecidedGroup;
        }

        return details;
    }

    /// <summary>How a caller's aliases match languages: its plan's <c>Sovereign:LanguageMatch</c>.</summary>
    public LanguageMatch MatchFor(Caller caller) => options.Value.LanguageMatch.For(caller?.Plan);

    /// <summary>Resolves an alias for a caller; the choice names the model (or none: fail closed), the language and why.</summary>
    public async Task<RouteChoice> ChooseAsync(InferenceRouter router, Caller caller, string alias, PromptText text)
    {
        var visible = (await router.VisibleModelsAsync(caller)).Select(m => m.Id).ToHashSet(StringComparer.Ordinal);
        // Callers without a tenant policy are served by this process only (never relayed): only its own models qualify.
        Func<string, bool> eligible = caller.Policy is null
            ? model => visible.Contains(model) && (catalog.TryGet(model, out _) || engines.TryGet(model, out _))
            : visible.Contains;
        var table = (await AliasesAsync())[alias];
        // A candidate no node serves (unloaded, its node gone) is named as such in the reason, not as a policy refusal. A
        // visible model is served; the registry is scanned only for the others, which a reason names.
        var registry = await nodes.GetNodesAsync();
        return LanguageRouter.Choose(table, Detect(text), eligible, model => visible.Contains(model) || IsServed(model, registry), MatchFor(caller));
    }

    private static Dictionary<string, LanguageAlias> BuildAliases(ModelCatalog catalog, FrontedEngines engines, IEnumerable<NodeModel> nodeModels, SovereignOptions options)
    {
        // This node's chat models first (its GGUF models, then those of the engines it fronts), then the models other
        // nodes serve, so a gateway routes `auto` across the cluster; a model served in several places is one candidate
        // with every language declared for it.
        var declared = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (id, languages) in catalog.All.Where(m => m.Kind == ModelKind.Chat)
            .Select(m => (m.Id, Languages: (IReadOnlyList<string>)(m.Model?.Options.Languages ?? [])))
            .Concat(engines.All.Where(m => m.Kind == ModelKind.Chat).Select(m => (m.Id, m.Languages)))
            .Concat(nodeModels.Select(m => (m.Id, Languages: (IReadOnlyList<string>)(m.Languages ?? [])))))
        {
            if (!declared.TryGetValue(id, out var known))
            {
                declared[id] = known = [];
            }

            known.AddRange(languages.Where(l => !known.Contains(l, StringComparer.OrdinalIgnoreCase)));
        }

        var aliases = options.Aliases.ToDictionary(
            a => a.Key,
            a => new LanguageAlias(a.Key, a.Value.Default, a.Value.Candidates
                .Select(c => new RouteCandidate(c.Model, c.Languages.Count > 0 ? c.Languages : declared.GetValueOrDefault(c.Model) ?? []))
                .ToList()),
            StringComparer.Ordinal);
        if (!aliases.ContainsKey("auto") && declared.Count > 0)
        {
            aliases["auto"] = new LanguageAlias("auto", declared.Keys.First(), declared.Select(d => new RouteCandidate(d.Key, d.Value)).ToList());
        }

        return aliases;
    }
}
