using System.Globalization;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.OpenAI;
using Sovereign.Inference.Engine;
using Sovereign.Residency.Jurisdictions;
using Sovereign.Residency.Policies;

namespace Sovereign.Gateway.Models;

/// <summary>A rule a declared model breaks: the field as its caller names it, the message (which starts with it) and the API's code.</summary>
internal readonly record struct ModelProblem(string Field, string Message, string Code);

/// <summary>
/// How a caller names a model's fields: the admin API's <c>models[0].languages[1]</c>, the settings'
/// <c>Sovereign:Engines:0:Models:0:Languages:1</c>. Members are given in snake_case.
/// </summary>
internal sealed class ModelFieldNames
{
    private readonly string _prefix;
    private readonly bool _settings;

    private ModelFieldNames(string prefix, bool settings) => (_prefix, _settings) = (prefix, settings);

    /// <summary>A JSON body's names under <paramref name="prefix"/> (<c>models[0]</c>): <c>models[0].languages[1]</c>.</summary>
    public static ModelFieldNames Json(string prefix) => new(prefix, settings: false);

    /// <summary>Configuration keys under <paramref name="prefix"/> (<c>Sovereign:Models:0</c>): <c>Sovereign:Models:0:Languages:1</c>.</summary>
    public static ModelFieldNames Settings(string prefix) => new(prefix, settings: true);

    /// <summary>The name of one member, given in snake_case (<c>id</c>, <c>languages</c>).</summary>
    public string Member(string name) => _settings
        ? $"{_prefix}:{string.Concat(name.Split('_').Select(part => char.ToUpperInvariant(part[0]) + part[1..]))}"
        : $"{_prefix}.{name}";

    /// <summary>The name of item <paramref name="index"/> of the list member <paramref name="list"/>.</summary>
    public string Item(string list, int index) => _settings ? $"{Member(list)}:{index}" : $"{Member(list)}[{index}]";
}

/// <summary>
/// What a model declaration must meet, wherever a model is declared: a node's registration (<c>POST /admin/v1/nodes</c>,
/// <c>models[i]</c>), a fronted engine's settings (<c>Sovereign:Engines:N:Models:M</c>) and a local model's
/// (<c>Sovereign:Models:N</c>). One rule set with one wording, so a model one of them refuses the others refuse too; the
/// callers differ only in how they name a field (<see cref="ModelFieldNames"/>) and in stopping at the first problem
/// (the API's 400) or listing them all (the start).
/// </summary>
internal static class ModelRules
{
    /// <summary>The most a relayed model may run at once.</summary>
    public const int MaxCapacity = 100_000;

    /// <summary>
    /// <c>auto</c> names the built-in language alias: a model of that id would take its requests (a local one) or never
    /// get any (a registered one), so no model may have it, as the model registry already refuses.
    /// </summary>
    public static bool IsReservedId(string id) => string.Equals(id, "auto", StringComparison.OrdinalIgnoreCase);

    /// <summary>The kind's wire name (<c>chat</c>, <c>embedding</c>), or null when it names neither.</summary>
    public static string? KindName(string? kind) => kind switch
    {
        null or NodeModelKinds.Chat => NodeModelKinds.Chat,
        NodeModelKinds.Embedding => NodeModelKinds.Embedding,
        _ => null,
    };

    /// <summary>The settings' kind as the wire names it (an undefined number as its digits, which no rule accepts).</summary>
    public static string KindName(ModelKind kind) => kind switch
    {
        ModelKind.Chat => NodeModelKinds.Chat,
        ModelKind.Embedding => NodeModelKinds.Embedding,
        _ => ((int)kind).ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>
    /// Adds the problems of one declared model to <paramref name="problems"/>. <paramref name="ids"/> holds the ids
    /// declared before it (this one is added): an id declared twice is a problem. A relayed model (an engine's, a
    /// node's) has an upstream name and a capacity; a local one has neither, nor a licence or origin of its own here.
    /// </summary>
    public static void Check(ModelDeclaration model, ModelFieldNames names, ISet<string> ids, List<ModelProblem> problems)
    {
        var id = names.Member("id");
        if (string.IsNullOrEmpty(model.Id))
        {
            problems.Add(new(id, $"{id} is required.", "missing_required_parameter"));
        }
        else if (!ResourceIds.IsValid(model.Id, ResourceKind.Other))
        {
            problems.Add(new(id, $"{id} must be 1-{ResourceIds.MaxOtherLength} characters without whitespace or control characters; got '{RequestReader.Shorten(model.Id)}'.", "invalid_value"));
        }
        else if (model.Id.FirstOrDefault(RequestReader.Disguises) is var disguise and not '\0')
        {
            // A bidirectional override makes an id display as another in the console, the invoice CSV and every table:
            // whoever declares a node's models could bill "llama-3-8b" as what reads like a cheaper model's id.
            problems.Add(new(id, $"{id} must not contain bidirectional overrides; got U+{(int)disguise:X4} in '{RequestReader.Shorten(model.Id)}'.", "invalid_value"));
        }
        else if (RequestReader.FirstInvisible(model.Id) is { } invisible)
        {
            // A zero-width character makes two ids look the same: "llama-3-8b" and "llama-3-8b\u200B" side by side in
            // the console and on an invoice, one of them billed at another price.
            problems.Add(new(id, $"{id} must not contain {RequestReader.InvisibleRule}; got U+{(int)invisible:X4} in '{RequestReader.Shorten(model.Id)}'.", "invalid_value"));
        }
        else if (IsReservedId(model.Id))
        {
            var hint = model.Relayed ? $" (the engine's own name goes in {names.Member("upstream")})" : "";
            problems.Add(new(id, $"{id} '{model.Id}' is reserved for routing by language; choose another model id{hint}.", "invalid_value"));
        }
        else if (!ids.Add(model.Id))
        {
            // Two declarations of one id: one of them was never used, while both were shown.
            problems.Add(new(id, $"{id} '{RequestReader.Shorten(model.Id)}' is used by two models; give each model its own id.", "invalid_value"));
        }

        if (model.Relayed)
        {
            if (model.Upstream is not null && !ResourceIds.IsValid(model.Upstream, ResourceKind.Other))
            {
                var upstream = names.Member("upstream");
                problems.Add(new(upstream, $"{upstream} must be 1-{ResourceIds.MaxOtherLength} characters without whitespace or control characters; got '{RequestReader.Shorten(model.Upstream)}'.", "invalid_value"));
            }

            if (model.Capacity is < 1 or > MaxCapacity)
            {
                var capacity = names.Member("capacity");
                problems.Add(new(capacity, $"{capacity} must be between 1 and {MaxCapacity}; got {model.Capacity}.", "invalid_value"));
            }
        }

        if (KindName(model.Kind) is null)
        {
            // The kind decides the endpoints: an embedding model serves /v1/embeddings only, a chat model everything else.
            var kind = names.Member("kind");
            problems.Add(new(kind, $"{kind} must be '{NodeModelKinds.Chat}' or '{NodeModelKinds.Embedding}'; got '{RequestReader.Shorten(model.Kind!)}'.", "invalid_value"));
        }

        if (model.License is not null && !KnownLicenses.IsKnown(model.License))
        {
            var license = names.Member("license");
            problems.Add(new(license, $"{license} '{RequestReader.Shorten(model.License)}' is not a known SPDX id (or LicenseRef-...).", "invalid_value"));
        }

        if (model.Origin is not null && !JurisdictionCatalog.Default.IsCountry(model.Origin))
        {
            var origin = names.Member("origin");
            problems.Add(new(origin, $"{origin} '{RequestReader.Shorten(model.Origin)}' is not an ISO 3166-1 alpha-2 country code.", "invalid_value"));
        }

        // A model's languages are a set, stored canonical (LanguageRouting.Canonical): "ms" and "MS" are one.
        CheckLanguages(model.Languages, names, problems, foldRepeats: true);
    }

    /// <summary>
    /// The languages a model (or an alias's candidate) serves: codes the detector knows, or a close group (<c>hbs</c>,
    /// <c>msa</c>: every member, decided or not). <c>auto</c> routes by them, so
    /// an unknown one would be a language no request is ever sent for. A repeat is folded into one where
    /// <paramref name="foldRepeats"/> (a model's set), else refused (an alias candidate's list).
    /// </summary>
    public static void CheckLanguages(IReadOnlyList<string?>? codes, ModelFieldNames names, List<ModelProblem> problems, bool foldRepeats = false)
    {
        var first = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var k = 0; k < (codes?.Count ?? 0); k++)
        {
            var item = names.Item("languages", k);
            var code = codes![k];
            if (code is null || !Sovereign.Languages.LanguageGroups.TryPolicyCode(code, out var language))
            {
                problems.Add(new(item, $"{item} '{RequestReader.Shorten(code ?? "")}' is not a language code the detector knows (ISO 639-1, e.g. th, ms, en) nor a close group (hbs, msa).", "invalid_value"));
            }
            else if (first.TryGetValue(language, out var earlier) && !foldRepeats)
            {
                problems.Add(new(item, $"{item} '{RequestReader.Shorten(code)}' repeats {names.Item("languages", earlier)}.", "invalid_value"));
            }
            else
            {
                first.TryAdd(language, k);
            }
        }
    }
}

/// <summary>One declared model as the rules see it, whichever caller declared it.</summary>
/// <param name="Id">The id clients ask for.</param>
/// <param name="Relayed">Whether another server runs it (an engine or a node): it then has an upstream name and a capacity.</param>
/// <param name="Kind">The kind's wire name (<see cref="ModelRules.KindName(string?)"/>), null for chat.</param>
internal sealed record ModelDeclaration(
    string? Id,
    bool Relayed,
    string? Kind = null,
    string? Upstream = null,
    int? Capacity = null,
    string? License = null,
    string? Origin = null,
    IReadOnlyList<string?>? Languages = null);
