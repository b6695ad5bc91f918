using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sovereign.Residency.Audit;

/// <summary>
/// Checks the responses a client kept against an export's entries (<c>sovereign audit verify-export --responses</c>),
/// as <c>tools/audit-verify.mjs --responses</c> does, rule for rule and in its words: each kept response has its
/// request's entries (found by <c>audit_id</c>, or by the body's <c>id</c> alone through the outcome that states it as
/// <c>details.response_id</c>), a 200 an allowed decision and an outcome that ran, a 403 a refused decision, the
/// jurisdiction (and node) its headers stated the one the decision its outcome followed names, its
/// <c>x-sovereign-audit-entry</c> the entry the export holds with that hash, and its body's id the one its outcome
/// states. The export's own integrity is <see cref="AuditExport.VerifyExportAsync(Stream, string, CancellationToken)"/>'s:
/// lines it cannot read are skipped here.
/// </summary>
/// <remarks>
/// A response line is one JSON object: <c>status</c>, <c>request_id</c> (x-request-id), <c>audit_id</c>
/// (x-sovereign-audit-id), <c>jurisdiction</c>, <c>node</c> (x-sovereign-node, optional), <c>id</c> (the body's id,
/// optional), <c>audit_entry</c> (x-sovereign-audit-entry, optional). A line without <c>audit_id</c> or <c>id</c> claims
/// no decision (a 400, 401, 404) and is not counted.
/// </remarks>
public static partial class AuditResponseCheck
{
    /// <summary>What the check found.</summary>
    /// <param name="ResponsesChecked">The kept responses checked (those naming an audit id or a body id).</param>
    /// <param name="Problems">Each disagreement, in the order of the responses.</param>
    public sealed record Result(int ResponsesChecked, IReadOnlyList<AuditProblem> Problems);

    private sealed record Entry(string? Chain, long Sequence, string? Hash, string? Kind, string? Action, string? Jurisdiction, string? Node,
        string? Decision, string? RequestId, string? ResponseId, string? Outcome);

    /// <summary>Checks <paramref name="responses"/> (JSONL) against the full entries of <paramref name="export"/>.</summary>
    /// <exception cref="FormatException">A line of <paramref name="responses"/> is not a JSON object (named by its number).</exception>
    public static async Task<Result> CheckAsync(Stream export, Stream responses, CancellationToken cancellationToken = default)
    {
        var entries = await ReadEntriesAsync(export, cancellationToken);
        var index = new Index();
        foreach (var e in entries)
        {
            if (e.RequestId is { } id)
            {
                if (!index.ByRequest.TryGetValue(id, out var list))
                {
                    index.ByRequest[id] = list = [];
                }

                list.Add(e);
            }

            // The first of each, as a scan in file order finds: one lookup per kept response, not a pass over the export.
            if (e.Kind == "inference" && e.ResponseId is { } responseId)
            {
                index.ByResponse.TryAdd(responseId, e);
            }

            index.ByPosition.TryAdd((e.Chain, e.Sequence), e);
        }

        var problems = new List<AuditProblem>();
        var checkedCount = 0;
        using var reader = new StreamReader(responses);
        var lineNumber = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } text)
        {
            lineNumber++;
            if (text.Length == 0)
            {
                continue;
            }

            JsonElement r;
            try
            {
                using var document = JsonDocument.Parse(text);
                r = document.RootElement.Clone();
            }
            catch (JsonException ex)
            {
                throw new FormatException($"line {lineNumber} of the responses file is not JSON: {ex.Message}", ex);
            }

            if (r.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException($"line {lineNumber} of the responses file is not a JSON object.");
            }

            if (Check(r, index, problems))
            {
                checkedCount++;
            }
        }

        return new Result(checkedCount, problems);
    }

    /// <summary>The export's full entries by request id (in file order), by the response id an outcome states, and by chain and sequence.</summary>
    private sealed class Index
    {
        public Dictionary<string, List<Entry>> ByRequest { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, Entry> ByResponse { get; } = new(StringComparer.Ordinal);

        public Dictionary<(string? Chain, long Sequence), Entry> ByPosition { get; } = [];
    }

    /// <summary>One response line; false when it claims no decision (not counted).</summary>
    private static bool Check(JsonElement r, Index index, List<AuditProblem> problems)
    {
        var auditId = String(r, "audit_id");
        var bodyId = String(r, "id") is { Length: > 0 } body ? body : null;
        var id = string.IsNullOrEmpty(auditId) ? null : auditId;
        void Problem(string at, string what, Entry? about = null, AuditProblemKind kind = AuditProblemKind.ResponseMismatch) =>
            problems.Add(new AuditProblem(about?.Sequence, kind, $"{at}: {what}") { Chain = about?.Chain });

        if (id is null && bodyId is not null)
        {
            // Only the body kept (its headers dropped): the outcome entry that names its id is the request's.
            var named = index.ByResponse.GetValueOrDefault(bodyId);
            if (named?.RequestId is null)
            {
                Problem($"response {DisplayText.Shortened(bodyId, 200)}", "no outcome entry names this response id (details.response_id)");
                return true;
            }

            id = named.RequestId;
        }
        else if (id is null)
        {
            return false;
        }

        var at = $"response {DisplayText.Shortened(id, 200)}";
        if (String(r, "request_id") is { Length: > 0 } requestId && requestId != id)
        {
            Problem(at, $"x-request-id {DisplayText.Shortened(requestId, 200)} differs from x-sovereign-audit-id");
        }

        if (!index.ByRequest.TryGetValue(id, out var found))
        {
            Problem(at, "no entry has this request_id");
            return true;
        }

        static bool IsDecision(Entry e) => e.Kind == "inference" && e.Action is AuditActions.InferenceAllowed or AuditActions.InferenceRefused;
        if (!found.Exists(IsDecision))
        {
            Problem(at, "no decision entry");
            return true;
        }

        // A request may be decided more than once under its id (failed over, or decided again and refused): the
        // response answers the decision its outcome followed, or the last one when there is no outcome (a refusal).
        var outcomeAt = found.FindIndex(e => e.Kind == "inference" && e.Action is AuditActions.InferenceCompleted or AuditActions.InferenceInterrupted);
        var followed = (outcomeAt >= 0 ? found.Take(outcomeAt) : found).LastOrDefault(IsDecision) ?? found.Last(IsDecision);
        var hasJurisdiction = r.TryGetProperty("jurisdiction", out var jurisdictionValue);
        var jurisdiction = hasJurisdiction && jurisdictionValue.ValueKind == JsonValueKind.String ? jurisdictionValue.GetString() : null;
        if ((!string.IsNullOrEmpty(auditId) || hasJurisdiction) && followed.Jurisdiction != jurisdiction)
        {
            Problem(at, $"entry {followed.Sequence} says {followed.Jurisdiction ?? "null"}, the response said {(jurisdiction is null ? "null" : DisplayText.Shortened(jurisdiction, 200))}", followed);
        }

        var refused = followed.Decision == "refused";
        if (String(r, "node") is { } node && !refused && followed.Node != node)
        {
            Problem(at, $"entry {followed.Sequence} says node {followed.Node ?? "null"}, the response said {DisplayText.Shortened(node, 200)}", followed);
        }

        // A 200's headers leave before its end is known: a stream its client closed, one cut by an error event, one
        // whose process was killed mid-answer all began as 200s. Only an outcome that ran can have answered 200.
        var outcome = outcomeAt >= 0 ? found[outcomeAt] : null;
        var ran = outcome is not null && (outcome.Action == AuditActions.InferenceInterrupted || outcome.Outcome is "completed" or "cancelled" or "failed" or "interrupted");
        var status = r.TryGetProperty("status", out var statusValue) && statusValue.ValueKind == JsonValueKind.Number && statusValue.TryGetInt32(out var s) ? s : (int?)null;
        if (status == 200 && refused)
        {
            Problem(at, $"a 200, but entry {followed.Sequence} refused it", followed);
        }
        else if (status == 200 && outcome is null)
        {
            Problem(at, "a 200 without an outcome entry: the export ends before it (made while it ran?) or it was removed", followed);
        }
        else if (status == 200 && !ran)
        {
            Problem(at, $"a 200, but its outcome (entry {outcome!.Sequence}) is '{DisplayText.Shortened(outcome.Outcome ?? "", 200)}': refused before it ran", outcome);
        }

        if (status == 403 && !refused)
        {
            Problem(at, "a 403 without a refused decision", followed);
        }

        // x-sovereign-audit-entry ([CHAIN:]SEQUENCE:HASH): the entry the server named when it answered (the outcome; a
        // refusal's decision). Its hash binds the entry and the chain before it, so a log rewritten afterwards cannot match.
        if (String(r, "audit_entry") is { } auditEntry)
        {
            var expected = refused ? followed : outcome;
            var m = AuditEntryPattern().Match(auditEntry);
            if (!m.Success)
            {
                Problem(at, $"audit_entry '{DisplayText.Shortened(auditEntry, 200)}' is not [CHAIN:]SEQUENCE:HASH");
            }
            else
            {
                var chain = m.Groups[1].Success ? m.Groups[1].Value : null;
                var sequence = long.TryParse(m.Groups[2].Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : -1;
                var hash = m.Groups[3].Value;
                var named = index.ByPosition.GetValueOrDefault((chain, sequence));
                var label = $"entry {DisplayText.Shortened(m.Groups[2].Value, 40)}{(chain is null ? "" : $" of chain {DisplayText.Shortened(chain, 200)}")}";
                if (named is null)
                {
                    Problem(at, $"x-sovereign-audit-entry names {label}, which the export does not show in full (outside its range?)");
                }
                else if (named.Hash != hash)
                {
                    Problem(at, $"x-sovereign-audit-entry states hash {hash} for {label}; the export has {named.Hash}: the log was rewritten after the response", named, AuditProblemKind.WitnessMismatch);
                }
                else if (expected is not null && !ReferenceEquals(named, expected))
                {
                    Problem(at, $"x-sovereign-audit-entry names {label}, not the {(refused ? "refused decision" : "outcome")} of this request (entry {expected.Sequence})", named);
                }
            }
        }

        // The body's id is the one its outcome entry states (entries written before response_id was recorded state none).
        if (bodyId is not null && outcome?.ResponseId is { } stated && stated != bodyId)
        {
            Problem(at, $"its outcome (entry {outcome.Sequence}) names response {DisplayText.Shortened(stated, 200)}, the body said {DisplayText.Shortened(bodyId, 200)}", outcome);
        }

        return true;
    }

    /// <summary>The entries an export shows in full, each with its chain (a version 3 file's <c>chain</c> lines start each chain's section).</summary>
    private static async Task<List<Entry>> ReadEntriesAsync(Stream export, CancellationToken cancellationToken)
    {
        var entries = new List<Entry>();
        string? chain = null;
        using var reader = new StreamReader(export, leaveOpen: true);
        while (await reader.ReadLineAsync(cancellationToken) is { } text)
        {
            if (text.Length == 0)
            {
                continue;
            }

            try
            {
                using var document = JsonDocument.Parse(text);
                var line = document.RootElement;
                if (line.ValueKind != JsonValueKind.Object)
                {
                    continue;
                }

                switch (String(line, "type"))
                {
                    case "chain":
                        chain = String(line, "chain");
                        break;
                    case "entry" when line.TryGetProperty("sequence", out var sequence) && sequence.TryGetInt64(out var s):
                        var details = line.TryGetProperty("details", out var d) && d.ValueKind == JsonValueKind.Object ? d : default;
                        entries.Add(new Entry(chain, s, String(line, "hash"), String(line, "kind"), String(line, "action"), String(line, "jurisdiction"),
                            String(line, "node"), String(line, "decision"), Detail(details, "request_id"), Detail(details, "response_id"), Detail(details, "outcome")));
                        break;
                }
            }
            catch (JsonException)
            {
                // Not JSON: the export's verification reports the line.
            }
        }

        return entries;
    }

    /// <summary>A string property; null when absent, not a string, or not text (a lone surrogate escaped into it).</summary>
    private static string? String(JsonElement element, string name)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String)
        {
            return null;
        }

        try
        {
            return value.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    private static string? Detail(JsonElement details, string name) =>
        details.ValueKind == JsonValueKind.Object ? String(details, name) : null;

    [GeneratedRegex("^(?:(.+):)?([0-9]+):([0-9a-f]{64})\\z", RegexOptions.CultureInvariant)]
    private static partial Regex AuditEntryPattern();
}
