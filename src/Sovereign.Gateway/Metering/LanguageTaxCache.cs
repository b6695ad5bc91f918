using System.Collections.Concurrent;
using Sovereign.Gateway.Models;
using Sovereign.Languages;

namespace Sovereign.Gateway.Metering;

/// <summary>
/// The language tax of each local model, measured once on first use (tokenizing the reference texts takes a
/// moment) and kept: the ratio of a language's tokens per character to English's on that model.
/// </summary>
public sealed class LanguageTaxCache(ModelCatalog catalog)
{
    private readonly ConcurrentDictionary<string, Lazy<LanguageTaxReport?>> _reports = new(StringComparer.Ordinal);

    /// <summary>
    /// The ratio to English of <paramref name="language"/> on <paramref name="model"/>, written in
    /// <paramref name="script"/> where the language has more than one (<see cref="LanguageTax.ScriptOf"/>), or null
    /// when unknown (external model, no reference text).
    /// </summary>
    public double? RatioToEnglish(string model, string language, string? script = null)
    {
        var report = _reports.GetOrAdd(model, id => new Lazy<LanguageTaxReport?>(() =>
            catalog.TryGet(id, out var served) && served.Model is { } llama
                ? LanguageTax.Measure(id, text => llama.Tokenize(text, addBos: false).Length)
                : null)).Value;
        return report?.RatioFor(language, script);
    }
}
