using Microsoft.Extensions.Options;
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
public sealed class LanguageRouting(ModelCatalog catalog, FrontedEngines engines, IOptions<SovereignOptions> options)
{
    /// <summary>Response header: the detected language and the detector's confidence, as a structured-field item with a
    /// parameter (RFC 8941): <c>th;confidence=0.973</c>, <c>und;confidence=0.000</c>.</summary>
    public const string LanguageHeader = "x-sovereign-language";

    /// <summary>Response header: why the alias resolved to its model.</summary>
    public const string RouteReasonHeader = "x-sovereign-route-reason";

    private readonly Lazy<LanguageDetector> _detector = new(() => new LanguageDetector(options.Value.Languages), LazyThreadSafetyMode.ExecutionAndPublication);
    /// <summary>Whether a model name is an alias rather than a model.</summary>
    public bool IsAlias(string? model) => model is not null && !catalog.TryGet(model, out _) && !engines.TryGet(model, out _) && Aliases().ContainsKey(model);

    private volatile AliasTable? _aliases;

    // Built once per catalog snapshot (the catalog replaces its list on every load or unload), so models loaded at
    // run time join `auto` without the request path rebuilding the table on every call.
    private Dictionary<string, LanguageAlias> Aliases()
    {
        var models = catalog.All;
        if (_aliases is { } cached && ReferenceEquals(cached.Models, models))
        {
            return cached.Aliases;
        }

        var built = BuildAliases(catalog, engines, options.Value);
        _aliases = new AliasTable(models, built);
        return built;
    }

    private sealed record AliasTable(IReadOnlyList<ServedModel> Models, Dictionary<string, LanguageAlias> Aliases);

    /// <summary>Whether the detector is loaded (it loads on first use, or when warmed).</summary>
    public bool IsLoaded => _detector.IsValueCreated;

    /// <summary>
    /// Loads the detector now, on the calling thread (about 2 s of CPU and 90-120 MB): a request that needs it before
    /// it is loaded waits for this load rather than starting another.
    /// </summary>
    public void Warm() => _ = _detector.Value;

    /// <summary>Detects the language of a text (the last user message).</summary>
    public LanguageDetection Detect(string text) => _detector.Value.Detect(text);

    /// <summary>The language recorded with a request's usage, or null when detection of every request is off.</summary>
    public LanguageDetection? DetectForUsage(string text) =>
        options.Value.DetectLanguageOfEveryRequest && !string.IsNullOrWhiteSpace(text) ? Detect(text) : null;

    /// <summary>The value of <see cref="LanguageHeader"/>.</summary>
    public static string HeaderValue(string language, double confidence) =>
        FormattableString.Invariant($"{language};confidence={confidence:0.000}");

    /// <summary>Adds the detector's confidence to an audit entry's details (as <c>language_confidence</c>).</summary>
    public static Dictionary<string, string> WithConfidence(Dictionary<string, string> details, double? confidence)
    {
        if (confidence is { } value)
        {
            details["language_confidence"] = value.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture);
        }

        return details;
    }

    /// <summary>Resolves an alias for a caller; the choice names the model (or none: fail closed), the language and why.</summary>
    public async Task<RouteChoice> ChooseAsync(InferenceRouter router, Caller caller, string alias, string text)
    {
        var visible = (await router.VisibleModelsAsync(caller)).Select(m => m.Id).ToHashSet(StringComparer.Ordinal);
        return LanguageRouter.Choose(Aliases()[alias], Detect(text), visible.Contains);
    }

    private static Dictionary<string, LanguageAlias> BuildAliases(ModelCatalog catalog, FrontedEngines engines, SovereignOptions options)
    {
        // This node's chat models: its GGUF models first, then those of the engines it fronts.
        var declared = catalog.All.Where(m => m.Kind == ModelKind.Chat)
            .Select(m => (m.Id, Languages: (IReadOnlyList<string>)(m.Model?.Options.Languages ?? [])))
            .Concat(engines.All.Where(m => m.Kind == ModelKind.Chat).Select(m => (m.Id, m.Languages)))
            .ToDictionary(m => m.Id, m => m.Languages, StringComparer.Ordinal);
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
