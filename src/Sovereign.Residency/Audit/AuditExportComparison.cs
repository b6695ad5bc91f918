using System.Globalization;
using System.Text.Json;

namespace Sovereign.Residency.Audit;

/// <summary>
/// Compares an export with an earlier one of the same log that the auditor kept (<c>audit verify-export FILE --earlier
/// OLDER</c>). Each file verifies on its own with the operator's key, but the operator holds that key: a log whose
/// entries were deleted or rewritten, re-hashed and signed again yields a new export that verifies too. The auditor's
/// earlier file is what the operator signed before; a later history must agree with it wherever both state a hash.
/// </summary>
/// <remarks>
/// Checked (FORMAT.md, "Comparing with an earlier export"): every sequence of a chain at which both files state a
/// hash (an entry or redacted line's own hash and its previous hash, a gap line's ends, a checkpoint, a version 3
/// header's last hash) has the same hash in both (else <see cref="AuditProblemKind.WitnessMismatch"/>: the operator
/// signed two histories); an entry the earlier file shows in full, inside this file's range, is shown in full here too
/// when both are exports of the same tenant or this one is of every tenant (else <see cref="AuditProblemKind.OutOfScope"/>:
/// hidden); a chain this file covers from the earlier one's <c>from</c> to past the time the earlier one was made ends
/// no earlier than the earlier one did (else <see cref="AuditProblemKind.Truncated"/>). Files that state no hash at a common sequence cannot be compared,
/// which is reported rather than passed, and so is a file made before the earlier one. The earlier file's statements
/// are held in memory.
/// </remarks>
public static class AuditExportComparison
{
    /// <summary>Problems reported at most; further disagreements are counted in the last one.</summary>
    public const int MaxProblems = 100;

    /// <summary>What the later file contradicts of the earlier one; empty when they agree.</summary>
    public static async Task<IReadOnlyList<AuditProblem>> CompareAsync(Stream later, Stream earlier, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(later);
        ArgumentNullException.ThrowIfNull(earlier);
        var before = new Statements();
        var now = new Statements();
        var problems = new List<AuditProblem>();
        try
        {
            await before.ReadAsync(earlier, keep: true, cancellationToken);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException or KeyNotFoundException)
        {
            return [new AuditProblem(null, AuditProblemKind.Malformed, $"The earlier export cannot be read: {ex.Message}")];
        }

        long compared = 0, contradicted = 0;
        var reported = new HashSet<(string?, long)>();
        now.OnHash = (chain, sequence, hash) =>
        {
            if (!before.Hashes.TryGetValue((chain, sequence), out var stated))
            {
                return;
            }

            compared++;
            // A sequence is stated by its own line and by the next line's previous hash: reported once.
            if (stated != hash && reported.Add((chain, sequence)) && ++contradicted <= MaxProblems)
            {
                problems.Add(new AuditProblem(sequence, AuditProblemKind.WitnessMismatch, string.Create(CultureInfo.InvariantCulture,
                    $"The earlier export (made {Time(before.CreatedAt)}) states hash {stated} for entry {sequence}; this one states {hash}: the operator signed two different histories, so entries up to here were rewritten, removed or inserted since.")) { Chain = chain });
            }
        };
        try
        {
            await now.ReadAsync(later, keep: false, cancellationToken);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException or KeyNotFoundException)
        {
            return [.. problems, new AuditProblem(null, AuditProblemKind.Malformed, $"This export cannot be read: {ex.Message}")];
        }

        // An entry the earlier file showed in full is shown in full here too, where both show the same tenant's entries.
        if (now.Tenant is null || now.Tenant == before.Tenant)
        {
            foreach (var (chain, sequence) in before.Full.Where(k => !now.Full.Contains(k) && now.Covers(k.Chain, k.Sequence)).Order().Take(MaxProblems))
            {
                problems.Add(new AuditProblem(sequence, AuditProblemKind.OutOfScope, string.Create(CultureInfo.InvariantCulture,
                    $"Entry {sequence} is shown in full in the earlier export (made {Time(before.CreatedAt)}) but not in this one, whose range holds it: it was hidden or replaced.")) { Chain = chain });
            }
        }

        // A chain this file covers beyond the earlier file's making ends no earlier than the earlier file did.
        if (now.To >= before.CreatedAt)
        {
            foreach (var (key, last) in before.Last)
            {
                var chain = key.Length == 0 ? null : key;
                var ends = now.Last.GetValueOrDefault(key);
                if (ends < last)
                {
                    problems.Add(new AuditProblem(ends + 1, AuditProblemKind.Truncated, string.Create(CultureInfo.InvariantCulture,
                        $"The earlier export (made {Time(before.CreatedAt)}) holds entries up to {last}; this one, of entries up to {Time(now.To)}, ends at {ends}: entries the operator signed before are gone (removed, or the log rolled back).")) { Chain = chain });
                }
            }
        }

        // An export older than the one kept is no later export: the files given the wrong way round, or an old one
        // handed over again as new. Its hashes agree, which read as "agrees" and hid that it says nothing newer.
        if (now.CreatedAt < before.CreatedAt)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.OutOfScope, string.Create(CultureInfo.InvariantCulture,
                $"This export was made {Time(now.CreatedAt)}, before the earlier one ({Time(before.CreatedAt)}): it is older, not newer (the files given the wrong way round, or an old export handed over again).")));
        }

        if (contradicted > MaxProblems)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.WitnessMismatch, string.Create(CultureInfo.InvariantCulture,
                $"{contradicted - MaxProblems} more sequences state other hashes than the earlier export.")));
        }

        if (compared == 0)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.OutOfScope,
                "The two files state no hash at a common sequence, so nothing shows that they are one history: ask for an export whose range holds the earlier one's last entry (made after it, with --from no later than that entry)."));
        }

        return problems;
    }

    private static string Time(long unixMs) =>
        unixMs is >= 0 and <= 253402300799999
            ? DateTimeOffset.FromUnixTimeMilliseconds(unixMs).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture)
            : unixMs.ToString(CultureInfo.InvariantCulture);

    /// <summary>The hashes one file states, by chain (null: the shared chain) and sequence.</summary>
    private sealed class Statements
    {
        public Dictionary<(string? Chain, long Sequence), string> Hashes { get; } = [];

        public HashSet<(string? Chain, long Sequence)> Full { get; } = [];

        /// <summary>Each chain's first and last sequence in the file, by <see cref="Key"/>.</summary>
        public Dictionary<string, long> First { get; } = [];

        public Dictionary<string, long> Last { get; } = [];

        public string? Tenant { get; private set; }

        public long CreatedAt { get; private set; }

        public long From { get; private set; }

        public long To { get; private set; }

        public Action<string?, long, string>? OnHash { get; set; }

        private bool _keep;

        /// <summary>A chain's key in <see cref="First"/> and <see cref="Last"/>: the shared chain's is empty (no chain's name is).</summary>
        public static string Key(string? chain) => chain ?? string.Empty;

        public bool Covers(string? chain, long sequence) =>
            First.TryGetValue(Key(chain), out var first) && sequence >= first && sequence <= Last[Key(chain)];

        public async Task ReadAsync(Stream input, bool keep, CancellationToken cancellationToken)
        {
            _keep = keep;
            using var reader = new StreamReader(input, leaveOpen: true);
            string? chain = null;
            var header = true;
            while (await reader.ReadLineAsync(cancellationToken) is { } text)
            {
                if (text.Length == 0)
                {
                    continue;
                }

                using var document = JsonDocument.Parse(text);
                var root = document.RootElement;
                if (header)
                {
                    header = false;
                    Tenant = AuditExport.OptionalString(root, "tenant");
                    CreatedAt = AuditExport.RequireInt64(root, "createdAt");
                    From = AuditExport.RequireInt64(root, "from");
                    To = AuditExport.RequireInt64(root, "to");
                    if (root.TryGetProperty("chains", out var chains) && chains.ValueKind == JsonValueKind.Array)
                    {
                        foreach (var item in chains.EnumerateArray())
                        {
                            if (AuditExport.OptionalInt64(item, "lastSequence") is { } last && AuditExport.OptionalString(item, "lastHash") is { } lastHash)
                            {
                                State(AuditExport.OptionalString(item, "chain"), last, lastHash);
                            }
                        }
                    }

                    continue;
                }

                switch (AuditExport.OptionalString(root, "type"))
                {
                    case "chain":
                        chain = AuditExport.OptionalString(root, "chain");
                        break;
                    case "entry" or "redacted":
                        var sequence = AuditExport.RequireInt64(root, "sequence");
                        Range(chain, sequence, sequence);
                        State(chain, sequence - 1, AuditExport.RequireString(root, "previousHash"));
                        State(chain, sequence, AuditExport.RequireString(root, "hash"));
                        if (AuditExport.OptionalString(root, "type") == "entry")
                        {
                            Full.Add((chain, sequence));
                        }

                        break;
                    case "gap":
                        var from = AuditExport.RequireInt64(root, "fromSequence");
                        var to = AuditExport.RequireInt64(root, "toSequence");
                        Range(chain, from, to);
                        State(chain, from - 1, AuditExport.RequireString(root, "previousHash"));
                        State(chain, to, AuditExport.RequireString(root, "hash"));
                        break;
                    case "checkpoint":
                        State(chain, AuditExport.RequireInt64(root, "sequence"), AuditExport.RequireString(root, "hash"));
                        break;
                }
            }
        }

        private void Range(string? chain, long from, long to)
        {
            First.TryAdd(Key(chain), from);
            Last[Key(chain)] = Math.Max(Last.GetValueOrDefault(Key(chain)), to);
        }

        private void State(string? chain, long sequence, string hash)
        {
            if (sequence < 1)
            {
                return; // entry 1's previous hash is the chain's genesis, not an entry
            }

            if (_keep)
            {
                Hashes[(chain, sequence)] = hash;
            }

            OnHash?.Invoke(chain, sequence, hash);
        }
    }
}
