namespace Sovereign.Languages;

/// <summary>A model an alias may route to, with the languages it serves well.</summary>
/// <param name="ModelId">The registered model.</param>
/// <param name="Languages">Language codes it serves (see <see cref="LanguageCatalog"/>).</param>
public sealed record RouteCandidate(string ModelId, IReadOnlyList<string> Languages);

/// <summary>An alias such as <c>auto</c>: candidates in order of preference, and the model used when none fits.</summary>
/// <param name="Name">The alias clients send as <c>model</c>.</param>
/// <param name="DefaultModelId">Used for undetermined text and languages no candidate serves.</param>
/// <param name="Candidates">Most preferred first.</param>
public sealed record LanguageAlias(string Name, string DefaultModelId, IReadOnlyList<RouteCandidate> Candidates);

/// <summary>How a detected language matches the languages a model is declared for.</summary>
public enum LanguageMatch
{
    /// <summary>Only the detected language itself (the default). A member of a close group matches a candidate
    /// declared for it only when the detector decided the member; undecided, it matches a candidate declared for its
    /// group (<c>hbs</c>, <c>msa</c>) or for every member (<see cref="LanguageGroups.Covers(IReadOnlyCollection{string}, LanguageDetection)"/>).</summary>
    Exact,

    /// <summary>
    /// When the detector did not decide the member of a close group (<see cref="LanguageDetection.UndecidedGroup"/>),
    /// any member of the group: a model declared for <c>hr</c> serves text read as Bosnian-or-Croatian. A decided
    /// member, and every language outside a group, still match exactly.
    /// </summary>
    Family,
}

/// <summary>The model chosen for a request, and why.</summary>
/// <param name="ModelId">The model; null when no model may serve it (the request must be refused).</param>
/// <param name="Language">The detected language (<c>und</c> when undetermined).</param>
/// <param name="Reason">One line for logs and response headers.</param>
public sealed record RouteChoice(string? ModelId, string Language, string Reason)
{
    /// <summary>The detector's confidence in <see cref="Language"/> (0..1).</summary>
    public double Confidence { get; init; }

    /// <summary>The close group of <see cref="Language"/> when the detector did not decide the member
    /// (<see cref="LanguageDetection.UndecidedGroup"/>: <c>hbs</c>, <c>msa</c>), else null.</summary>
    public string? UndecidedGroup { get; init; }

    /// <summary>Whether a model was chosen.</summary>
    public bool IsRouted => ModelId is not null;
}

/// <summary>
/// Chooses the model for an alias from the detected language and the models the tenant's policy allows: the most
/// preferred allowed candidate that serves the language, else the alias's default if allowed, else nothing (fail
/// closed: a model the policy does not allow is never chosen).
/// </summary>
public static class LanguageRouter
{
    /// <summary>Chooses a model.</summary>
    /// <param name="alias">The alias requested.</param>
    /// <param name="detection">The language of the request.</param>
    /// <param name="isAllowed">Whether the tenant's policy allows a model id.</param>
    /// <param name="isServed">Whether any node serves a model id now (default: every model); a model no node serves is
    /// passed over and named as such, not as one the policy refuses.</param>
    /// <param name="match">How the language matches a candidate's: with <see cref="LanguageMatch.Family"/>, text whose
    /// group member is undecided matches a candidate declared for any member of the group, in the alias's order of
    /// preference (never the guessed member first: a coin toss between members does not change the route).</param>
    public static RouteChoice Choose(LanguageAlias alias, LanguageDetection detection, Func<string, bool> isAllowed, Func<string, bool>? isServed = null, LanguageMatch match = LanguageMatch.Exact)
    {
        ArgumentNullException.ThrowIfNull(alias);
        ArgumentNullException.ThrowIfNull(detection);
        ArgumentNullException.ThrowIfNull(isAllowed);
        isServed ??= _ => true;

        var language = detection.Language;
        var group = detection.UndecidedGroup;
        // What the reasons name: the member, or, when the member was not decided, the group with the member it guessed.
        var matched = group is not null ? $"'{group}' (member '{language}' undecided)" : $"'{language}'";
        // A candidate serves what its declared languages cover (LanguageGroups.Covers: a member declared serves that
        // member once decided; a group declared, or every member, serves the group). With family an undecided member
        // also matches a candidate declared for any member of its group.
        bool Serves(RouteCandidate candidate)
        {
            var declared = Declared(candidate.Languages);
            return LanguageGroups.Covers(declared, detection)
                || (match == LanguageMatch.Family && group is not null && declared.Any(d => d == group || LanguageGroups.Of(d) == group));
        }

        var serving = detection.IsDetermined
            ? alias.Candidates.Where(Serves).ToList()
            : [];
        var chosen = serving.FirstOrDefault(c => isServed(c.ModelId) && isAllowed(c.ModelId));
        if (chosen is not null)
        {
            var rank = alias.Candidates.ToList().IndexOf(chosen) + 1;
            return new RouteChoice(chosen.ModelId, language,
                $"{alias.Name}: {chosen.ModelId} serves {matched} (preference {rank})" + PassedOver("; ", serving.TakeWhile(c => c != chosen).ToList(), isServed))
            { Confidence = detection.Confidence, UndecidedGroup = group };
        }

        var why = !detection.IsDetermined
            ? "language undetermined"
            : serving.Count == 0
                ? $"no candidate serves {matched}"
                : $"candidates for {matched}" + PassedOver(" ", serving, isServed);
        return !isServed(alias.DefaultModelId)
            ? new RouteChoice(null, language, $"{alias.Name}: {why}; alias default {alias.DefaultModelId} not served now") { Confidence = detection.Confidence, UndecidedGroup = group }
            : isAllowed(alias.DefaultModelId)
                ? new RouteChoice(alias.DefaultModelId, language, $"{alias.Name}: {why}; alias default {alias.DefaultModelId}") { Confidence = detection.Confidence, UndecidedGroup = group }
                : new RouteChoice(null, language, $"{alias.Name}: {why}; alias default {alias.DefaultModelId} not allowed by policy") { Confidence = detection.Confidence, UndecidedGroup = group };
    }

    // Why candidates were passed over: a model no node serves is not the policy's refusal, and the reason (in the audit
    // entry and x-sovereign-route-reason) must not blame the policy for it.
    private static string PassedOver(string separator, IReadOnlyList<RouteCandidate> skipped, Func<string, bool> isServed)
    {
        var unserved = skipped.Where(c => !isServed(c.ModelId)).Select(c => c.ModelId).ToList();
        var refused = skipped.Where(c => isServed(c.ModelId)).Select(c => c.ModelId).ToList();
        return string.Join("; ", new[]
            {
                unserved.Count > 0 ? $"not served now: {string.Join(", ", unserved)}" : null,
                refused.Count > 0 ? $"not allowed by policy: {string.Join(", ", refused)}" : null,
            }.OfType<string>()) is { Length: > 0 } text ? separator + text : "";
    }

    // Codes compare case-insensitively, tl is Filipino, and hbs and msa name their groups.
    private static HashSet<string> Declared(IReadOnlyList<string> languages) =>
        languages.Select(l => LanguageGroups.TryPolicyCode(l, out var code) ? code : l.Trim().ToLowerInvariant()).ToHashSet(StringComparer.Ordinal);
}
