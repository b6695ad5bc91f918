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
        Positive(failures, "Sovereign:Limits:RouteQueue", limits.RouteQueue, 0, 1_000_000);
        Positive(failures, "Sovereign:Limits:UpstreamDefaultMaxTokens", limits.UpstreamDefaultMaxTokens, 1, 10_000_000);
        Positive(failures, "Sovereign:Metering:RetentionDays", options.Metering.RetentionDays, 1, 36_500);
        if (!string.IsNullOrWhiteSpace(options.Jurisdiction) && !Residency.Jurisdictions.JurisdictionCatalog.Default.IsCountry(options.Jurisdiction))
        {
            failures.Add($"Sovereign:Jurisdiction '{options.Jurisdiction}' is not an ISO 3166-1 alpha-2 country code.");
        }

        if (options.ApiKeys.Any(string.IsNullOrWhiteSpace))
        {
            failures.Add("Sovereign:ApiKeys must not contain empty keys.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
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
