using System.Text.Json;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The requests this gateway answered 503 <c>audit_unavailable</c> (nothing delivered, nothing billed) while the commit
/// of their outcome, sent and never answered, was in doubt: kept in a file in the data directory
/// (<see cref="FileName"/>), each with its refusal and the entries that commit hashed, until
/// <see cref="DeferredOutcomes"/> has settled it. The database cannot hold this: it is what could not be reached. A
/// gateway stopped before the database was back finds them at its next start and corrects any whose commit landed
/// (an <c>inference.corrected</c> entry, the usage record voided), as it would have had it kept running.
/// </summary>
/// <remarks>
/// Written whole on every change (a temporary file renamed into place), so a stop mid-write leaves the old file or the
/// new one. Holds no content: the refusal's audit record (tenant, key, model, its token counts) and the hashed entries.
/// </remarks>
internal sealed class RefusedInDoubtJournal
{
    /// <summary>The journal's file name in the data directory.</summary>
    public const string FileName = "refused-in-doubt.json";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    private readonly Lock _gate = new();
    private readonly List<Refusal> _refusals = [];

    /// <summary>Opens the journal in <paramref name="directory"/>, reading what a previous process left there.</summary>
    public RefusedInDoubtJournal(string directory)
    {
        Path = System.IO.Path.Combine(directory, FileName);
        if (File.Exists(Path))
        {
            try
            {
                _refusals.AddRange(JsonSerializer.Deserialize<List<Refusal>>(File.ReadAllText(Path), Json) ?? []);
            }
            catch (JsonException ex)
            {
                // Written whole and renamed, so this is a file changed by hand or a damaged disk: the start stops and
                // says so, rather than forget refusals whose late charges it should correct.
                throw new InvalidDataException(
                    $"{Path} cannot be read ({ex.Message}). It lists requests refused 503 while their outcome's commit was in doubt, to correct a late charge at start. " +
                    "Restore it from a backup, or move it aside to start without it (a late charge it names then stays billed: the request ids are in the moved file).", ex);
            }
        }
    }

    /// <summary>The journal's file.</summary>
    public string Path { get; }

    /// <summary>The refusals not settled yet, oldest first.</summary>
    public IReadOnlyList<Refusal> Pending
    {
        get
        {
            lock (_gate)
            {
                return [.. _refusals];
            }
        }
    }

    /// <summary>Records <paramref name="refusal"/> durably (the file is on disk when this returns).</summary>
    public void Add(Refusal refusal)
    {
        ArgumentNullException.ThrowIfNull(refusal);
        lock (_gate)
        {
            _refusals.RemoveAll(kept => kept.RequestId == refusal.RequestId);
            _refusals.Add(refusal);
            Save();
        }
    }

    /// <summary>Forgets <paramref name="requestId"/>'s refusal once it is settled; false when none was recorded.</summary>
    public bool Remove(string requestId)
    {
        lock (_gate)
        {
            if (_refusals.RemoveAll(kept => kept.RequestId == requestId) == 0)
            {
                return false;
            }

            Save();
            return true;
        }
    }

    private void Save()
    {
        if (_refusals.Count == 0)
        {
            File.Delete(Path);
            return;
        }

        AtomicFile.WriteAllText(Path, ExistingFile.Replace, JsonSerializer.Serialize(_refusals, Json), FileAccessScope.OwnerOnly);
    }

    /// <summary>One request answered as refused while its outcome's commit was in doubt.</summary>
    /// <param name="RequestId">The request.</param>
    /// <param name="Outcome">The outcome it was answered with (refused, with its <c>refusal_code</c>).</param>
    /// <param name="InDoubt">The entries the unanswered commits hashed.</param>
    internal sealed record Refusal(string RequestId, AuditRecord Outcome, IReadOnlyList<AuditEntry> InDoubt);
}
