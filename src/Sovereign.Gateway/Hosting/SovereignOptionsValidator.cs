using Microsoft.Extensions.Options;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.Hosting;

/// <summary>Checks settings at start-up; every message names the exact setting and the value at fault.</summary>
internal sealed class SovereignOptionsValidator : IValidateOptions<SovereignOptions>
{
    public ValidateOptionsResult Validate(string? name, SovereignOptions options)
    {
        var failures = new List<string>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Models.Count; i++)
        {
            var model = options.Models[i];
            var key = $"Sovereign:Models:{i}";
            if (string.IsNullOrWhiteSpace(model.Path))
            {
                failures.Add($"{key}:Path is required (the GGUF file to serve).");
            }
            else if (!File.Exists(model.Path))
            {
                failures.Add($"{key}:Path '{model.Path}' does not exist.");
            }

            if (string.IsNullOrWhiteSpace(model.Id))
            {
                failures.Add($"{key}:Id is required.");
            }
            else if (!ids.Add(model.Id))
            {
                failures.Add($"{key}:Id '{model.Id}' is used by two models.");
            }
            else if (model.Id.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
            {
                failures.Add($"{key}:Id '{model.Id}' must not contain spaces or control characters.");
            }

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

            if (!Enum.IsDefined(model.Kind))
            {
                failures.Add($"{key}:Kind must be Chat or Embedding.");
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
        Positive(failures, "Sovereign:Limits:MaxTokenizeBytes", limits.MaxTokenizeBytes, 1, int.MaxValue);
        Positive(failures, "Sovereign:Limits:RouteQueue", limits.RouteQueue, 0, 1_000_000);
        Positive(failures, "Sovereign:Limits:UpstreamDefaultMaxTokens", limits.UpstreamDefaultMaxTokens, 1, 10_000_000);
        Positive(failures, "Sovereign:Metering:RetentionDays", options.Metering.RetentionDays, 1, 36_500);
        if (!string.IsNullOrWhiteSpace(options.Jurisdiction) && !Residency.Jurisdictions.JurisdictionCatalog.Default.IsCountry(options.Jurisdiction))
        {
            failures.Add($"Sovereign:Jurisdiction '{options.Jurisdiction}' is not an ISO 3166-1 alpha-2 country code.");
        }

        ValidateLanguages(failures, options.Languages);
        if (options.ApiKeys.Any(string.IsNullOrWhiteSpace))
        {
            failures.Add("Sovereign:ApiKeys must not contain empty keys.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
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

    private static void NonNegative(List<string> failures, string key, int value)
    {
        if (value < 0)
        {
            failures.Add($"{key} must not be negative; got {value}.");
        }
    }
}
