using System.Collections;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.Hosting;

/// <summary>Checks settings at start-up; every message names the exact setting and the value at fault.</summary>
internal sealed class SovereignOptionsValidator(IOptions<Cluster.Hosting.SovereignClusterOptions> cluster, IConfiguration configuration) : IValidateOptions<SovereignOptions>
{
    /// <summary>
    /// What is wrong with named operator tokens (<c>Sovereign:OperatorTokens</c>), at start and when they are read again
    /// after a change (<see cref="ControlPlane.AdminToken"/>); never echoes a token.
    /// </summary>
    internal static List<string> OperatorTokenProblems(IReadOnlyDictionary<string, string> tokens, string? adminToken)
    {
        var failures = new List<string>();
        foreach (var (operatorName, token) in tokens)
        {
            // The name is the audit actor's (operator:NAME): something an auditor can read and a log can carry.
            if (operatorName.Length is 0 or > 64 || (!char.IsAsciiLetterLower(operatorName[0]) && !char.IsAsciiDigit(operatorName[0]))
                || !operatorName.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '_' or '-'))
            {
                failures.Add($"Sovereign:OperatorTokens: the name '{operatorName}' must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit (it names the operator in the audit log as operator:NAME).");
            }

            if (string.IsNullOrWhiteSpace(token) || !ControlPlane.AdminToken.IsStrongEnough(token))
            {
                // Never echoed, as the operator token.
                failures.Add($"Sovereign:OperatorTokens:{operatorName} must be at least {ControlPlane.AdminToken.MinLength} characters of visible ASCII without spaces (it is sent as a bearer token).");
            }
        }

        if (tokens.Values.Where(t => !string.IsNullOrWhiteSpace(t)).GroupBy(t => t, StringComparer.Ordinal).Any(g => g.Count() > 1)
            || (!string.IsNullOrWhiteSpace(adminToken) && tokens.Values.Contains(adminToken, StringComparer.Ordinal)))
        {
            failures.Add("Sovereign:OperatorTokens: two operators share a token (with each other or with Sovereign:AdminToken): give each operator a token of its own, so the audit log can tell them apart.");
        }

        return failures;
    }

    public ValidateOptionsResult Validate(string? name, SovereignOptions options)
    {
        var failures = new List<string>();
        ListsGivenAsOneValue(failures, configuration.GetSection(SovereignOptions.SectionName), typeof(SovereignOptions), depth: 0);
        if (File.Exists(options.ResolvedDataDirectory))
        {
            // It stopped the start with the runtime's "The file '...' already exists.", exit 1.
            failures.Add($"Sovereign:DataDirectory '{options.ResolvedDataDirectory}' is a file, not a folder (--data-dir, Sovereign__DataDirectory).");
        }

        if (!string.IsNullOrWhiteSpace(options.AdminToken) && !ControlPlane.AdminToken.IsStrongEnough(options.AdminToken))
        {
            // Never echoed: it is the operator's secret.
            failures.Add($"Sovereign:AdminToken must be at least {ControlPlane.AdminToken.MinLength} characters of visible ASCII without spaces (it is sent as a bearer token); " +
                $"the one set has {options.AdminToken.Length}. Leave it unset and a random one is generated into the data directory's {ControlPlane.AdminToken.FileName}.");
        }
        else if (string.IsNullOrWhiteSpace(options.AdminToken) && !File.Exists(options.ResolvedDataDirectory)
            && ControlPlane.AdminToken.FileProblem(Path.Combine(options.ResolvedDataDirectory, ControlPlane.AdminToken.FileName)) is { } problem)
        {
            // The token the server would read instead of the setting is held to the setting's rule.
            failures.Add("Sovereign:AdminToken is unset and " + problem);
        }

        failures.AddRange(OperatorTokenProblems(options.OperatorTokens, options.AdminToken));

        var ids = new HashSet<string>(StringComparer.Ordinal);
        if (options.TestModel is { } test)
        {
            Positive(failures, "Sovereign:TestModel:Parallel", test.Parallel, 1, 256);
            NonNegative(failures, "Sovereign:TestModel:ContextLength", test.ContextLength);
            NonNegative(failures, "Sovereign:TestModel:Threads", test.Threads);
            KvCacheFits(failures, "Sovereign:TestModel", test);
        }

        for (var i = 0; i < options.Models.Count; i++)
        {
            var model = options.Models[i];
            var key = $"Sovereign:Models:{i}";
            if (string.IsNullOrWhiteSpace(model.Path))
            {
                // Without a path the id names a registered model (sovereign models pull|import), loaded from the registry.
                using var registry = new Sovereign.Inference.Registry.ModelRegistry(Sovereign.Inference.Registry.ModelRegistryOptions.ForDataDirectory(options.ResolvedDataDirectory));
                if (string.IsNullOrWhiteSpace(model.Id) || registry.Get(model.Id) is null)
                {
                    failures.Add($"{key}:Path is required (the GGUF file to serve), unless {key}:Id names a model in the registry (sovereign models pull or import); '{model.Id}' is not registered in {registry.ModelDirectory}.");
                }
            }
            else if (!File.Exists(model.Path))
            {
                failures.Add($"{key}:Path '{model.Path}' does not exist.");
            }

            CheckModel(failures, new(model.Id, Relayed: false, Models.ModelRules.KindName(model.Kind), Languages: model.Languages), key, ids);

            Positive(failures, $"{key}:Parallel", model.Parallel, 1, 256);
            Positive(failures, $"{key}:BatchSize", model.BatchSize, 1, 65536);
            NonNegative(failures, $"{key}:ContextLength", model.ContextLength);
            NonNegative(failures, $"{key}:KvCacheTokens", model.KvCacheTokens);
            NonNegative(failures, $"{key}:Threads", model.Threads);
            NonNegative(failures, $"{key}:GpuLayers", model.GpuLayers);
            NonNegative(failures, $"{key}:MaxQueue", model.MaxQueue);
            NonNegative(failures, $"{key}:PrefixCacheHostMiB", model.PrefixCacheHostMiB);
            if (model.PrefixCacheSequences is { } prefixCache)
            {
                Positive(failures, $"{key}:PrefixCacheSequences", prefixCache, 0, 255);
            }
            if (model.KvCacheTokens > 0 && model.ContextLength > 0 && model.KvCacheTokens < model.ContextLength)
            {
                failures.Add($"{key}:KvCacheTokens ({model.KvCacheTokens}) must be at least ContextLength ({model.ContextLength}).");
            }

            KvCacheFits(failures, key, model);
        }

        ValidateEngines(failures, options.Engines, ids, cluster.Value.ServesModels, options.AllowLinkLocalEngineUrls);
        if (ControlPlane.RelayProxy.Problem(options.RelayProxy) is { } proxyProblem)
        {
            failures.Add(proxyProblem);
        }

        var detected = DetectedLanguages(options.Languages);
        // This process's embedding models: an alias routes chat requests only.
        var embeddingModels = options.Models.Where(m => m?.Kind == ModelKind.Embedding).Select(m => m.Id)
            .Concat(options.Engines.SelectMany(e => e?.Models ?? []).Where(m => m?.Kind == ModelKind.Embedding).Select(m => m!.Id))
            .OfType<string>().ToHashSet(StringComparer.Ordinal);
        ValidateAliases(failures, options.Aliases, ids, detected, embeddingModels);
        // A chat model's declared languages are what `auto` routes by: one the detector never reports (Amharic outside the
        // configured set) was accepted, and requests in it went to the alias's default without a word.
        const string neverRouted = "`auto` would never route a request in it to this model";
        for (var i = 0; i < options.Models.Count; i++)
        {
            if (options.Models[i] is { Kind: ModelKind.Chat, Languages: { Count: > 0 } languages })
            {
                Detectable(failures, languages, $"Sovereign:Models:{i}:Languages", detected, neverRouted);
            }
        }

        for (var i = 0; i < options.Engines.Count; i++)
        {
            for (var j = 0; j < (options.Engines[i]?.Models?.Count ?? 0); j++)
            {
                if (options.Engines[i].Models[j] is { Kind: ModelKind.Chat, Languages: { Count: > 0 } languages })
                {
                    Detectable(failures, languages, $"Sovereign:Engines:{i}:Models:{j}:Languages", detected, neverRouted);
                }
            }
        }

        var limits = options.Limits;
        if (limits.MaxRequestBodyBytes < 1024)
        {
            failures.Add($"Sovereign:Limits:MaxRequestBodyBytes must be at least 1024; got {limits.MaxRequestBodyBytes}.");
        }

        NonNegative(failures, "Sovereign:Limits:MaxOutputTokens", limits.MaxOutputTokens);
        Positive(failures, "Sovereign:Limits:MaxChoices", limits.MaxChoices, 1, 128);
        Positive(failures, "Sovereign:Limits:MaxStopSequences", limits.MaxStopSequences, 0, 64);
        Positive(failures, "Sovereign:Limits:MaxEmbeddingInputs", limits.MaxEmbeddingInputs, 1, 100_000);
        Positive(failures, "Sovereign:Limits:MaxEmbeddingTokensPerRequest", limits.MaxEmbeddingTokensPerRequest, 1, 100_000_000);
        Positive(failures, "Sovereign:Limits:MaxTokenizeBytes", limits.MaxTokenizeBytes, 1, int.MaxValue);
        Positive(failures, "Sovereign:Limits:TenantReadsPerMinute", limits.TenantReadsPerMinute, 1, int.MaxValue);
        Positive(failures, "Sovereign:Limits:RouteQueue", limits.RouteQueue, 0, 1_000_000);
        Positive(failures, "Sovereign:Limits:UpstreamDefaultMaxTokens", limits.UpstreamDefaultMaxTokens, 1, 10_000_000);
        Positive(failures, "Sovereign:Limits:UpstreamIdleTimeoutSeconds", limits.UpstreamIdleTimeoutSeconds, 1, 86_400);
        Positive(failures, "Sovereign:Limits:RelayReadAheadBytes", limits.RelayReadAheadBytes, 0, Routing.UpstreamProxy.MaxAnswerBytes);
        Positive(failures, "Sovereign:Limits:RelayReadAheadTotalBytes", limits.RelayReadAheadTotalBytes, 64 * 1024, int.MaxValue);
        Positive(failures, "Sovereign:Metering:RetentionDays", options.Metering.RetentionDays, 1, 36_500);
        Positive(failures, "Sovereign:Metering:AggregateFoldIntervalMs", options.Metering.AggregateFoldIntervalMs, 1, 86_400_000);
        Positive(failures, "Sovereign:Metering:AggregateFoldRecords", options.Metering.AggregateFoldRecords, 1, 10_000_000);
        Positive(failures, "Sovereign:Metering:SpendSeriesLimit", options.Metering.SpendSeriesLimit, MeteringOptions.MinSeriesLimit, MeteringOptions.MaxSeriesLimit);
        Positive(failures, "Sovereign:Metering:GenAiSeriesLimit", options.Metering.GenAiSeriesLimit, MeteringOptions.MinSeriesLimit, MeteringOptions.MaxSeriesLimit);
        if (!string.IsNullOrWhiteSpace(options.Jurisdiction) && !Residency.Jurisdictions.JurisdictionCatalog.Default.IsCountry(options.Jurisdiction))
        {
            failures.Add($"Sovereign:Jurisdiction '{options.Jurisdiction}' is not an ISO 3166-1 alpha-2 country code.");
        }

        if (!string.IsNullOrWhiteSpace(options.Database.Jurisdiction) && !Residency.Jurisdictions.JurisdictionCatalog.Default.IsCountry(options.Database.Jurisdiction))
        {
            failures.Add($"Sovereign:Database:Jurisdiction '{options.Database.Jurisdiction}' is not an ISO 3166-1 alpha-2 country code (where the database runs).");
        }

        // The admin API names a node in its paths (nodes drain, state, rm): a node id it refuses left the node started
        // but out of the operator's reach.
        if (!IsModelOwner(options.ModelOwner))
        {
            failures.Add("Sovereign:ModelOwner must be 1-64 visible ASCII characters (spaces inside allowed), the operator's name tenants read as owned_by in /v1/models; "
                + $"got '{OpenAI.RequestReader.Shorten(options.ModelOwner ?? "")}'.");
        }

        if (!ControlPlane.ResourceIds.IsValid(options.NodeId, ControlPlane.ResourceKind.Other))
        {
            failures.Add($"Sovereign:NodeId must be 1-{ControlPlane.ResourceIds.MaxOtherLength} characters without whitespace or control characters (e.g. node-th-1); "
                + $"got '{OpenAI.RequestReader.Shorten(options.NodeId ?? "")}'.");
        }

        ValidateDatabase(failures, options.Database);
        ValidateAuditArchive(failures, options.Audit?.Archive);
        if (options.Audit is { } audit && (audit.RateLimitSummaryInterval < AuditOptions.MinRateLimitSummaryInterval || audit.RateLimitSummaryInterval > AuditOptions.MaxRateLimitSummaryInterval))
        {
            failures.Add($"Sovereign:Audit:RateLimitSummaryInterval must be between {AuditOptions.MinRateLimitSummaryInterval:c} and {AuditOptions.MaxRateLimitSummaryInterval:c} (hh:mm:ss); got {audit.RateLimitSummaryInterval:c}.");
        }

        if (options.Audit is { } commits && (commits.CommitTimeout < AuditOptions.MinCommitTimeout || commits.CommitTimeout > AuditOptions.MaxCommitTimeout))
        {
            failures.Add($"Sovereign:Audit:CommitTimeout must be between {AuditOptions.MinCommitTimeout:c} and {AuditOptions.MaxCommitTimeout:c} (hh:mm:ss); got {commits.CommitTimeout:c}.");
        }

        ValidateLanguages(failures, options.Languages);
        ValidateCharacterEquivalentLanguages(failures, options.Metering.CharacterEquivalentLanguages, detected);
        ValidateLanguageMatch(failures, options.LanguageMatch);
        foreach (var field in options.AcceptedRequestFields)
        {
            // A nested field is its path without indices; '*' alone is any field, as a last segment any field of that object.
            var segments = field?.Split('.') ?? [];
            if (string.IsNullOrWhiteSpace(field) || field.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c is '[' or ']')
                || segments.Any(s => s.Length == 0) || segments[..^1].Contains("*"))
            {
                failures.Add($"Sovereign:AcceptedRequestFields has '{field}'; each entry is a body field's name (no spaces), a nested field's path without indices "
                    + "(messages.content.cache_control), a path ending in .* for any field of that object (messages.*), or * for any field.");
            }
        }

        if (options.ApiKeys.Any(string.IsNullOrWhiteSpace))
        {
            failures.Add("Sovereign:ApiKeys must not contain empty keys.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>
    /// Settings whose shape is not their type's: a list given as one value, or one value given as a list or an object.
    /// The second fails the binding itself, before any validator runs, so <c>serve</c> asks for these when a start fails.
    /// </summary>
    internal static IReadOnlyList<string> ShapeFailures(IConfiguration configuration)
    {
        var failures = new List<string>();
        ListsGivenAsOneValue(failures, configuration.GetSection(SovereignOptions.SectionName), typeof(SovereignOptions), depth: 0);
        return failures;
    }

    /// <summary>Sections of <see cref="SovereignOptions"/> that other components also bind, with the options they bind.</summary>
    private static readonly (string Path, Type Type)[] AlsoBound = [("Sovereign:Metering", typeof(Cluster.Grains.TenantMoneyOptions))];

    private static int EditDistance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            previous = current;
        }

        return previous[b.Length];
    }

    private static bool IsOneValue(Type type)
    {
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        return underlying == typeof(string) || underlying.IsPrimitive || underlying.IsEnum || underlying == typeof(decimal) || underlying == typeof(TimeSpan)
            || underlying == typeof(DateTimeOffset) || underlying == typeof(DateTime) || underlying == typeof(Guid) || underlying == typeof(Uri);
    }

    // Configuration binds a list only from indexed keys (Sovereign__ApiKeys__0, or a JSON array): a single value for a
    // list setting (Sovereign__ApiKeys=sk-..., "Languages": "en") was dropped without a word and the list kept its
    // default, so a server meant to require keys served /v1 to anyone, and one meant to detect English only detected
    // every covered language. The value is not echoed: it may be a key.
    private static void ListsGivenAsOneValue(List<string> failures, IConfigurationSection section, Type type, int depth)
    {
        if (!section.Exists() || depth > 8)
        {
            return;
        }

        if (IsOneValue(type))
        {
            // The reverse: "Jurisdiction": ["TH"] stopped the start with the binder's "Cannot create instance of type
            // 'System.String' because it has multiple public parameterized constructors", naming no setting.
            if (section.GetChildren().Any())
            {
                failures.Add($"{section.Path} is one value, but it is set to a list or an object: set it as \"{section.Key}\": \"...\" in the config file, or {section.Path.Replace(":", "__", StringComparison.Ordinal)}=... in the environment.");
            }

            return;
        }

        var dictionary = type.GetInterfaces().Append(type).FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IDictionary<,>));
        if (dictionary is not null)
        {
            foreach (var entry in section.GetChildren())
            {
                ListsGivenAsOneValue(failures, entry, dictionary.GetGenericArguments()[1], depth + 1);
            }

            return;
        }

        if (typeof(IEnumerable).IsAssignableFrom(type))
        {
            if (!string.IsNullOrEmpty(section.Value))
            {
                var variable = section.Path.Replace(":", "__", StringComparison.Ordinal);
                failures.Add($"{section.Path} is a list, but it is set to one value, which would be ignored: set it item by item ({variable}__0, {variable}__1, ...) or as a JSON array in the config file.");
            }

            var item = type.IsArray ? type.GetElementType() : type.GetInterfaces().Append(type)
                .FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>))?.GetGenericArguments()[0];
            if (item is not null)
            {
                foreach (var element in section.GetChildren())
                {
                    ListsGivenAsOneValue(failures, element, item, depth + 1);
                }
            }

            return;
        }

        if (type.IsClass)
        {
            // A section of settings given one value ("LanguageMatch": "family", as the proposal wrote it) was ignored
            // without a word, leaving every setting in it at its default.
            if (depth > 0 && !string.IsNullOrEmpty(section.Value))
            {
                failures.Add($"{section.Path} is a section of settings, but it is set to one value, which would be ignored: set its settings by name ({string.Join(", ", type.GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance).Select(p => $"{section.Path}:{p.Name}"))}).");
            }

            // A section another component binds too (the tenant grains read Sovereign:Metering) has its settings as well.
            var properties = AlsoBound.Where(bound => string.Equals(bound.Path, section.Path, StringComparison.OrdinalIgnoreCase)).Select(bound => bound.Type).Prepend(type)
                .SelectMany(t => t.GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)).Where(p => p.GetIndexParameters().Length == 0).ToList();
            foreach (var property in properties)
            {
                ListsGivenAsOneValue(failures, section.GetSection(property.Name), property.PropertyType, depth + 1);
            }

            // A misspelt setting ("Jurisdicton", Sovereign__Limits__MaxOutputToken) was ignored without a word, leaving
            // the default in force. Sovereign:Cluster is the cluster's own options, read beside these.
            foreach (var child in section.GetChildren())
            {
                if (depth == 0 && string.Equals(child.Key, "Cluster", StringComparison.OrdinalIgnoreCase))
                {
                    ListsGivenAsOneValue(failures, child, typeof(Cluster.Hosting.SovereignClusterOptions), depth + 1);
                }
                else if (!properties.Any(p => string.Equals(p.Name, child.Key, StringComparison.OrdinalIgnoreCase)))
                {
                    var names = depth == 0 ? properties.Select(p => p.Name).Append("Cluster") : properties.Select(p => p.Name);
                    var nearest = names.Select(n => (Name: n, Distance: EditDistance(n.ToUpperInvariant(), child.Key.ToUpperInvariant()))).MinBy(n => n.Distance);
                    failures.Add($"{child.Path} is not a setting, so it would be ignored"
                        + (nearest.Name is not null && nearest.Distance <= 3 ? $"; did you mean {section.Path}:{nearest.Name}?" : $"; the settings here are {string.Join(", ", names)}."));
                }
            }
        }
    }

    // A fronted engine's settings fail here, as a registered engine's do at the admin API: the same rules.
    private static void ValidateEngines(List<string> failures, List<Models.EngineOptions> engines, HashSet<string> ids, bool servesModels, bool allowLinkLocal)
    {
        if (engines.Count > 0 && !servesModels)
        {
            failures.Add("Sovereign:Engines: a gateway serves no model itself; name engines on the node (--role node or all) that runs beside them.");
        }

        for (var i = 0; i < engines.Count; i++)
        {
            var engine = engines[i];
            var key = $"Sovereign:Engines:{i}";
            if (engine is null)
            {
                failures.Add($"{key} must be an object with BaseUrl and Models.");
                continue;
            }

            if (string.IsNullOrWhiteSpace(engine.BaseUrl))
            {
                failures.Add($"{key}:BaseUrl is required (the engine's OpenAI-compatible URL without /v1, e.g. http://127.0.0.1:8000).");
            }
            else if (ControlPlane.EngineBaseUrl.Problem(engine.BaseUrl) is { } urlProblem)
            {
                // Not echoed: a URL with credentials in it would put them in the log.
                failures.Add($"{key}:BaseUrl {urlProblem}");
            }
            else if (!allowLinkLocal && ControlPlane.EngineAddressRule.LiteralProblem(new Uri(engine.BaseUrl.Trim(), UriKind.Absolute)) is { } addressProblem)
            {
                // As a registration refuses it (a name is checked at each connection): it was served from the configuration.
                failures.Add($"{key}:BaseUrl {addressProblem}");
            }

            // Never echoed: it is a secret.
            if (!string.IsNullOrEmpty(engine.ApiKey) && !Routing.UpstreamProxy.IsSendableKey(engine.ApiKey))
            {
                failures.Add($"{key}:ApiKey (--engine-api-key) must be visible ASCII characters without spaces or line breaks: it is sent as 'Authorization: Bearer KEY'.");
            }

            Positive(failures, $"{key}:Capacity", engine.Capacity, 1, 100_000);
            if (Cluster.Grains.EnginePromptCaches.Parse(engine.PromptCache) is null)
            {
                failures.Add($"{key}:PromptCache (--engine-prompt-cache) must be 'shared', 'salt' (vLLM: a cache_salt per tenant) or 'off' (llama-server: cache_prompt false).");
            }

            if (engine.Models is not { Count: > 0 })
            {
                failures.Add($"{key}:Models must list at least one model the engine serves.");
                continue;
            }

            for (var j = 0; j < engine.Models.Count; j++)
            {
                var model = engine.Models[j];
                var declared = model is null
                    ? new Models.ModelDeclaration(null, Relayed: true)
                    : new Models.ModelDeclaration(model.Id, Relayed: true, Models.ModelRules.KindName(model.Kind), model.Upstream, model.Capacity, model.License, model.Origin, model.Languages);
                CheckModel(failures, declared, $"{key}:Models:{j}", ids);
            }
        }
    }

    // The rules the admin API applies to a node's models, worded with the settings' keys.
    private static void CheckModel(List<string> failures, Models.ModelDeclaration model, string key, HashSet<string> ids)
    {
        var problems = new List<Models.ModelProblem>();
        Models.ModelRules.Check(model, Models.ModelFieldNames.Settings(key), ids, problems);
        failures.AddRange(problems.Select(p => p.Message));
    }

    // A model alias is read on the request path: one that cannot route (no default, a candidate without a model, a
    // language the detector does not know, a name a model already has) stops the start instead of answering 403s.
    private static void ValidateAliases(List<string> failures, Dictionary<string, AliasOptions> aliases, HashSet<string> modelIds, HashSet<string> detected, HashSet<string> embeddingModels)
    {
        foreach (var (name, alias) in aliases)
        {
            var key = $"Sovereign:Aliases:{name}";
            if (!ControlPlane.ResourceIds.IsValid(name, ControlPlane.ResourceKind.Other))
            {
                failures.Add($"{key}: the alias name must be 1 to {ControlPlane.ResourceIds.MaxOtherLength} characters without spaces or control characters.");
                continue;
            }

            if (modelIds.Contains(name))
            {
                failures.Add($"{key}: a model of this process is named '{name}' too, and a model's own name wins, so the alias would never route; rename one of them.");
            }

            if (alias is null)
            {
                failures.Add($"{key} must be an object with Default and Candidates.");
                continue;
            }

            if (string.IsNullOrWhiteSpace(alias.Default))
            {
                failures.Add($"{key}:Default is required: the model for text whose language no candidate serves (or that is undetermined).");
            }
            else if (aliases.ContainsKey(alias.Default) || Models.ModelRules.IsReservedId(alias.Default))
            {
                // Resolved as a model id: the request would end 404 model_not_found (or 503) for a setting's mistake.
                failures.Add($"{key}:Default '{alias.Default}' is an alias, not a model; aliases do not lead to one another: name a chat model.");
            }
            else if (embeddingModels.Contains(alias.Default))
            {
                failures.Add($"{key}:Default '{alias.Default}' is an embedding model; an alias routes chat requests: name a chat model.");
            }

            for (var i = 0; i < (alias.Candidates?.Count ?? 0); i++)
            {
                var candidate = alias.Candidates![i];
                if (candidate is null || string.IsNullOrWhiteSpace(candidate.Model))
                {
                    failures.Add($"{key}:Candidates:{i}:Model is required.");
                    continue;
                }

                if (embeddingModels.Contains(candidate.Model))
                {
                    failures.Add($"{key}:Candidates:{i}:Model '{candidate.Model}' is an embedding model; an alias routes chat requests: name a chat model.");
                }

                var problems = new List<Models.ModelProblem>();
                Models.ModelRules.CheckLanguages(candidate.Languages, Models.ModelFieldNames.Settings($"{key}:Candidates:{i}"), problems);
                failures.AddRange(problems.Select(p => p.Message));
                if (problems.Count == 0)
                {
                    Detectable(failures, candidate.Languages, $"{key}:Candidates:{i}:Languages", detected, "no request would be routed to this candidate for it");
                }
            }
        }
    }

    // The languages the detector may report: the configured set, or the covered set when none is configured (an
    // unknown code there is reported by ValidateLanguages).
    private static HashSet<string> DetectedLanguages(Languages.LanguageDetectorOptions languages) =>
        (languages.Languages is { Count: > 0 } configured ? (IEnumerable<string>)configured : Languages.LanguageCatalog.Covered)
            .Select(c => c is not null && Languages.LanguageCatalog.TryGet(c.Trim(), out var language) ? language.Code : null)
            .OfType<string>().ToHashSet(StringComparer.Ordinal);

    // A language the detector never reports matches no request: routing or billing by it would silently never apply.
    private static void Detectable(List<string> failures, IReadOnlyList<string> codes, string key, HashSet<string> detected, string consequence)
    {
        for (var k = 0; k < codes.Count; k++)
        {
            // A group (hbs, msa) is reported when any of its members is.
            if (codes[k] is { } code && Languages.LanguageGroups.TryPolicyCode(code, out var language)
                && !detected.Contains(language) && !Languages.LanguageGroups.ReportedMembers(language).Any(detected.Contains))
            {
                failures.Add($"{key}:{k} '{codes[k]}' is not among the languages the detector reports (Sovereign:Languages:Languages), so {consequence}; add it there or remove it here.");
            }
        }
    }

    // A misspelt match would leave a plan routed exactly, by a coin toss between close languages, without a word.
    private static void ValidateLanguageMatch(List<string> failures, LanguageMatchOptions? match)
    {
        if (match is null)
        {
            return;
        }

        const string Values = "it must be 'exact' (the detected language only) or 'family' (any member of a close group whose member the detector did not decide: hbs, msa)";
        if (LanguageMatchOptions.Parse(match.Default) is null)
        {
            failures.Add($"Sovereign:LanguageMatch:Default is '{OpenAI.RequestReader.Shorten(match.Default ?? "")}'; {Values}.");
        }

        foreach (var (plan, value) in match.Plans ?? [])
        {
            if (LanguageMatchOptions.Parse(value) is null)
            {
                failures.Add($"Sovereign:LanguageMatch:Plans:{OpenAI.RequestReader.Shorten(plan)} is '{OpenAI.RequestReader.Shorten(value ?? "")}'; {Values}.");
            }
        }
    }

    // Billing per character-equivalent matches the detected language's code: an unknown code, or one the detector never
    // reports, would leave the plan billed per token for it without a word.
    private static void ValidateCharacterEquivalentLanguages(List<string> failures, Dictionary<string, List<string>> byPlan, HashSet<string> detected)
    {
        foreach (var (plan, codes) in byPlan)
        {
            var key = $"Sovereign:Metering:CharacterEquivalentLanguages:{plan}";
            var unknown = 0;
            for (var k = 0; k < (codes?.Count ?? 0); k++)
            {
                var code = codes![k];
                if (string.IsNullOrWhiteSpace(code) || !Languages.LanguageGroups.TryPolicyCode(code, out _))
                {
                    failures.Add($"{key}:{k} '{OpenAI.RequestReader.Shorten(code ?? "")}' is not a language code the detector knows (ISO 639-1, e.g. th, ms, en) nor a close group (hbs, msa).");
                    unknown++;
                }
            }

            if (unknown == 0 && codes is not null)
            {
                Detectable(failures, codes, key, detected, "requests in it would never be billed per character-equivalent");
            }
        }
    }

    // Scheduled retention deletes evidence: a setting it cannot honour stops the start rather than archive differently.
    // Any provider but PostgreSql ran on SQLite, taking a PostgreSQL connection string for a file name: a misspelt
    // "Postgres" left each gateway of a cluster with its own budgets, keys and audit chain.
    private static void ValidateDatabase(List<string> failures, DatabaseOptions database)
    {
        var provider = database.Provider;
        if (string.IsNullOrWhiteSpace(provider) || string.Equals(provider, nameof(Storage.SqlProvider.Sqlite), StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        if (!string.Equals(provider, nameof(Storage.SqlProvider.PostgreSql), StringComparison.OrdinalIgnoreCase))
        {
            failures.Add($"Sovereign:Database:Provider '{provider}' is not a database provider; use Sqlite or PostgreSql.");
        }
        else if (string.IsNullOrWhiteSpace(database.ConnectionString))
        {
            failures.Add("Sovereign:Database:ConnectionString is required with Sovereign:Database:Provider PostgreSql "
                + "(Sovereign__Database__ConnectionString=\"Host=...;Database=sovereign;Username=...;Password=...\").");
        }
    }

    private static void ValidateAuditArchive(List<string> failures, AuditArchiveOptions? archive)
    {
        const string key = "Sovereign:Audit:Archive";
        if (archive is null)
        {
            return;
        }

        Positive(failures, $"{key}:AfterDays", archive.AfterDays, 0, AuditArchiveOptions.MaxAfterDays);
        if (archive.Interval < AuditArchiveOptions.MinInterval || archive.Interval > AuditArchiveOptions.MaxInterval)
        {
            failures.Add($"{key}:Interval must be between {AuditArchiveOptions.MinInterval:c} and {AuditArchiveOptions.MaxInterval:c} (d.hh:mm:ss); got {archive.Interval:c}.");
        }

        if (archive.Directory is { } directory)
        {
            if (string.IsNullOrWhiteSpace(directory) || directory.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
            {
                failures.Add($"{key}:Directory '{directory}' is not a usable path; leave it unset for <data dir>/{AuditArchiveOptions.DefaultDirectoryName}.");
            }
            else if (!Path.IsPathFullyQualified(directory))
            {
                failures.Add($"{key}:Directory '{directory}' must be an absolute path (a relative one would depend on the working directory).");
            }
            else if (File.Exists(directory))
            {
                failures.Add($"{key}:Directory '{directory}' is a file, not a directory.");
            }
        }
    }

    // Language settings fail here, at start, rather than on the first request that needs the detector.
    private static void ValidateLanguages(List<string> failures, Languages.LanguageDetectorOptions languages)
    {
        const string key = "Sovereign:Languages";
        if (Languages.LanguageDetector.MissingModels() is { } missing)
        {
            failures.Add($"{key}: language detection cannot run: {missing} Deploy the application's Lingua folder with it (dotnet publish copies it).");
        }

        // An empty list means the covered set (configuration cannot bind an empty array); an empty entry is an error.
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < (languages.Languages?.Count ?? 0); i++)
        {
            var code = languages.Languages![i];
            if (string.IsNullOrWhiteSpace(code))
            {
                failures.Add($"{key}:Languages:{i} is empty; name a language code or leave {key}:Languages unset for the covered set.");
            }
            else if (!Languages.LanguageCatalog.TryGet(code.Trim(), out var descriptor))
            {
                failures.Add($"{key}:Languages:{i} '{code}' is not a language the detector knows; known: {string.Join(", ", Languages.LanguageCatalog.All.Select(l => l.Code))}.");
            }
            else if (seen.TryGetValue(descriptor.Code, out var first))
            {
                failures.Add($"{key}:Languages:{i} '{code}' repeats {key}:Languages:{first} (both are {descriptor.Code}).");
            }
            else
            {
                seen[descriptor.Code] = i;
            }
        }

        Positive(failures, $"{key}:MinimumLetters", languages.MinimumLetters, 1, 10_000);
        Positive(failures, $"{key}:MinimumScriptLetters", languages.MinimumScriptLetters, 1, 10_000);
        Positive(failures, $"{key}:MinimumHanLetters", languages.MinimumHanLetters, 1, 10_000);
        Positive(failures, $"{key}:MaxCharacters", languages.MaxCharacters, 16, 1_000_000);

        // The language tax's thresholds: which language a conversation is in, and how much of a text the waiver reads.
        Positive(failures, $"{key}:StandAloneLetters", languages.StandAloneLetters, 1, 10_000);
        Positive(failures, $"{key}:ConversationCharacters", languages.ConversationCharacters, 16, 100_000);
        Positive(failures, $"{key}:ShareCharacters", languages.ShareCharacters, 16, 1_000_000);
        if (languages.MinimumConfidence is < 0 or > 1 || double.IsNaN(languages.MinimumConfidence))
        {
            failures.Add($"{key}:MinimumConfidence must be between 0 and 1; got {languages.MinimumConfidence}.");
        }

        if (languages.MinimumMargin is < 0 or > 1 || double.IsNaN(languages.MinimumMargin))
        {
            failures.Add($"{key}:MinimumMargin must be between 0 and 1; got {languages.MinimumMargin}.");
        }
    }

    private static void Positive(List<string> failures, string key, int value, int min, int max)
    {
        if (value < min || value > max)
        {
            failures.Add($"{key} must be between {min} and {max}; got {value}.");
        }
    }

    /// <summary>
    /// Without its own KvCacheTokens a model's KV cache has ContextLength × Parallel cells, an int: 1073741824 × 256
    /// overflowed while the model loaded, and the start stopped as "a defect in sovereign" (exit 70).
    /// </summary>
    private static void KvCacheFits(List<string> failures, string key, ModelOptions model)
    {
        if (model.KvCacheTokens == 0 && model.Parallel > 0 && (long)model.ContextLength * model.Parallel > int.MaxValue)
        {
            failures.Add($"{key}:ContextLength × {key}:Parallel is the KV cache's cells, at most {int.MaxValue}; got {model.ContextLength} × {model.Parallel}.");
        }
    }

    private static void NonNegative(List<string> failures, string key, int value)
    {
        if (value < 0)
        {
            failures.Add($"{key} must not be negative; got {value}.");
        }
    }

    /// <summary>Whether <paramref name="owner"/> can be <see cref="SovereignOptions.ModelOwner"/>: 1-64 visible ASCII characters, spaces only inside.</summary>
    internal static bool IsModelOwner(string? owner) =>
        owner is { Length: > 0 and <= 64 } && owner[0] != ' ' && owner[^1] != ' ' && owner.All(c => c is >= ' ' and <= '~');
}
