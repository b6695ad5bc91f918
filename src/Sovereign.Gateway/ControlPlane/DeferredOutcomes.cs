using Microsoft.Extensions.Hosting;
using Sovereign.Metering.Ledger;
using Sovereign.Residency.Audit;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The outcomes of requests that ended while the database could not record them (a stream under way when PostgreSQL
/// stopped, an answer refused 503 <c>audit_unavailable</c> whose refusal the ledger could not write either): each is
/// kept here, its outcome entry and usage record built when it ended (no content), and written as soon as the outage
/// ends (event 4161), in one commit each as a request's books are. Before, their decisions stayed open (an allowed
/// request with no outcome, which <c>audit verify</c> counts as running) and the ledger lacked their records until the
/// server's next start closed them as interrupted, with their tokens unknown.
/// </summary>
/// <remarks>
/// Held in memory, except refusals whose outcome commit was in doubt, which <see cref="RefusedInDoubtJournal"/> also
/// records on disk so that the next start corrects a late commit that billed one (events 4190, 4157). Otherwise a
/// server stopped before the database is back leaves them open, and its next start (or, in a
/// cluster, the gateways once it is dead) closes them as interrupted, as before, billed nothing: what a kept record
/// would have billed is lost with it, never counted twice (the tenant's budget, settled at its cost when the request
/// ended, is rebuilt from the ledger at its next activation, which never held it). Bounded by <see cref="MaxHeld"/>
/// (event 4141 for one not kept; its reservation is given back unbilled). A usage record the ledger could not write is
/// priced when its request ends exactly as the request would have been billed (the price book, its tokens, the
/// language waiver, cached tokens, compute seconds), and its reservation settled at that cost then; writing it moves no
/// money again. It was written at cost 0.
/// </remarks>
internal sealed partial class DeferredOutcomes : BackgroundService
{
    /// <summary>The most outcomes kept for the database's return; past it a request's decision stays open until a restart closes it.</summary>
    public const int MaxHeld = 10_000;

    private readonly Lazy<AuditLog> _audit;
    private readonly Lazy<UsageLedger> _ledger;
    private readonly DatabaseHealth _health;
    private readonly ILogger<DeferredOutcomes> _logger;
    private readonly RefusedInDoubtJournal? _journal;
    private readonly Lock _gate = new();
    private readonly List<Held> _held = [];
    private readonly SemaphoreSlim _writing = new(1, 1);
    private readonly SemaphoreSlim _kick = new(0, 1);

    /// <param name="audit">The audit log.</param>
    /// <param name="ledger">The usage ledger.</param>
    /// <param name="health">Tells when an outage ends.</param>
    /// <param name="logger">The logger.</param>
    /// <param name="journal">
    /// Where refusals whose outcome's commit was in doubt are recorded durably (the data directory), so a late commit
    /// that billed one is corrected after a restart too; null: in memory only.
    /// </param>
    public DeferredOutcomes(Lazy<AuditLog> audit, Lazy<UsageLedger> ledger, DatabaseHealth health, ILogger<DeferredOutcomes> logger, RefusedInDoubtJournal? journal = null)
    {
        _audit = audit;
        _ledger = ledger;
        _health = health;
        _logger = logger;
        _journal = journal;
        health.Recovered += Kick;
    }

    /// <summary>How many outcomes wait for the database.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _held.Count;
            }
        }
    }

    /// <summary>
    /// Keeps <paramref name="outcome"/> (and <paramref name="usage"/>, when the ledger could not write it either) to be
    /// written once the database records requests again. False when <see cref="MaxHeld"/> are kept already.
    /// </summary>
    /// <param name="requestId">The request.</param>
    /// <param name="outcome">Its outcome entry.</param>
    /// <param name="usage">Its usage record, priced, when the ledger could not write it either.</param>
    /// <param name="written">Called once both are written (the spend series counts the record's cost then).</param>
    /// <param name="inDoubt">
    /// The outcome's entry as commits of it that were sent and never answered hashed it
    /// (<see cref="AuditUnavailableException.InDoubt"/>): one the chain holds once the database is back was applied after
    /// the request was answered, and the outcome is not written again.
    /// </param>
    public bool Keep(string requestId, AuditRecord outcome, UsageRecord? usage, Action? written = null, IReadOnlyList<AuditEntry>? inDoubt = null)
    {
        lock (_gate)
        {
            if (_held.Count >= MaxHeld)
            {
                OutcomeNotKept(_logger, requestId, MaxHeld);
                return false;
            }

            _held.Add(new Held(requestId, outcome, usage, written, inDoubt ?? []));
        }

        if (_journal is not null && inDoubt is { Count: > 0 } && IsRefusal(outcome))
        {
            // The client was told 503 and billed nothing, but the commit may land: recorded on disk, so a late commit
            // that billed it is corrected even if this process stops before the database is back.
            try
            {
                _journal.Add(new RefusedInDoubtJournal.Refusal(requestId, outcome, inDoubt));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                RefusalNotJournaled(_logger, ex, requestId, _journal.Path);
            }
        }

        if (_health.Problem is null)
        {
            Kick(); // the outage ended meanwhile: nothing else would say so
        }

        return true;
    }

    /// <summary>
    /// Takes up the refusals a previous process recorded in the journal and did not settle (it stopped before the
    /// database was back): each is checked once the database records requests, and a late commit that billed it is
    /// corrected. Returns how many were taken up.
    /// </summary>
    internal int Recover()
    {
        if (_journal is null)
        {
            return 0;
        }

        var recovered = 0;
        lock (_gate)
        {
            foreach (var refusal in _journal.Pending)
            {
                if (_held.Any(held => held.RequestId == refusal.RequestId))
                {
                    continue;
                }

                _held.Add(new Held(refusal.RequestId, refusal.Outcome, null, null, refusal.InDoubt, Recovered: true));
                recovered++;
            }
        }

        if (recovered > 0)
        {
            RefusalsRecovered(_logger, recovered, _journal.Path);
        }

        return recovered;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (Recover() > 0)
        {
            Kick();
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            // Woken when an outage ends; else every probe interval, in case one was kept after the end was told.
            await _kick.WaitAsync(DatabaseHealth.OutageProbeInterval, stoppingToken);
            if (_health.Problem is null && Count > 0)
            {
                await WriteAsync(stoppingToken);
            }
        }
    }

    /// <summary>Writes what is kept, oldest first; stops at the first that fails for the database (kept for the next end).</summary>
    internal async Task<int> WriteAsync(CancellationToken cancellationToken)
    {
        await _writing.WaitAsync(cancellationToken);
        try
        {
            var written = 0;
            while (true)
            {
                Held next;
                lock (_gate)
                {
                    if (_held.Count == 0)
                    {
                        break;
                    }

                    next = _held[0];
                }

                try
                {
                    await WriteAsync(next, cancellationToken);
                    written++;
                    next.Written?.Invoke();
                    Forget(next);
                }
                catch (Exception ex) when (ex is not OperationCanceledException && DatabaseHealth.StorageFault(ex) is not null)
                {
                    // Down again: kept, and the next end of the outage writes it.
                    _health.IsOutage(ex);
                    break;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // Not the database (a log found rewritten stops the server anyway): written never, and its decision
                    // stays open until a restart closes it, as every one did before.
                    OutcomeNotWritten(_logger, ex, next.RequestId);
                    Forget(next);
                }

                lock (_gate)
                {
                    _held.Remove(next);
                }
            }

            if (written > 0)
            {
                OutcomesWritten(_logger, written);
            }

            return written;
        }
        finally
        {
            _writing.Release();
        }
    }

    private async Task WriteAsync(Held held, CancellationToken cancellationToken)
    {
        if (held.Recovered)
        {
            await SettleRecoveredAsync(held, cancellationToken);
            return;
        }

        AuditEntry entry;
        if (held.Usage is null)
        {
            entry = await AppendOutcomeAsync(held, null, cancellationToken);
        }
        else if (_ledger.Value.Carry(held.Usage) is { } carried)
        {
            // One commit, as a request's books: the usage record rides in the outcome entry's transaction. Where the
            // earlier commit was applied, it carried the request's record too, and this one is a duplicate kept once.
            entry = await AppendOutcomeAsync(held, carried, cancellationToken);
            await carried.Stored;
        }
        else
        {
            await _ledger.Value.AppendAsync(held.Usage, cancellationToken); // a ledger that commits on its own
            entry = await AppendOutcomeAsync(held, null, cancellationToken);
        }

        if (held.InDoubt.Any(sent => sent.Sequence == entry.Sequence && sent.Hash == entry.Hash))
        {
            entry.Details.TryGetValue("outcome", out var outcome);
            if (Correction(held.Outcome, entry) is { } correction)
            {
                await CorrectAsync(held, entry, correction, cancellationToken);
                return;
            }

            OutcomeFoundCommitted(_logger, held.RequestId, entry.Sequence, outcome ?? "");
        }
    }

    /// <summary>
    /// A refusal taken up from the journal: its kept outcome is not appended (the process that answered it stopped,
    /// and its next start closes the decision as interrupted unless the late commit closed it), but a commit that
    /// landed after all and billed the request is corrected, once.
    /// </summary>
    private async Task SettleRecoveredAsync(Held held, CancellationToken cancellationToken)
    {
        foreach (var sent in held.InDoubt)
        {
            var found = await _audit.Value.ReadAsync(AuditChainScope.Of(sent.Chain), sent.Sequence, sent.Sequence, cancellationToken);
            if (found is [var landed] && landed.Hash == sent.Hash)
            {
                if (Correction(held.Outcome, landed) is { } correction)
                {
                    await CorrectAsync(held, landed, correction, cancellationToken);
                }

                return;
            }
        }

        RecoveredRefusalNotLanded(_logger, held.RequestId);
    }

    private static bool IsRefusal(AuditRecord outcome) =>
        outcome.Details.TryGetValue("outcome", out var name) && name == "refused" && outcome.Details.ContainsKey("refusal_code");

    private void Forget(Held held)
    {
        if (_journal is null || !IsRefusal(held.Outcome) || held.InDoubt.Count == 0)
        {
            return;
        }

        try
        {
            _journal.Remove(held.RequestId);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Left in the journal: the next start checks it again, and finds it corrected (or not billed).
            RefusalNotJournaled(_logger, ex, held.RequestId, _journal.Path);
        }
    }

    /// <summary>
    /// The correcting entry for a request answered as refused (nothing delivered, nothing billed) whose outcome entry
    /// <paramref name="landed"/>, committed by a commit that went unanswered, states anything else (another outcome,
    /// tokens, a cost): the kept refusal as <see cref="AuditActions.InferenceCorrected"/>, naming what it corrects.
    /// Null when the landed entry is the kept outcome (a stream's, which delivered what it states), or no refusal.
    /// </summary>
    internal static AuditRecord? Correction(AuditRecord kept, AuditEntry landed)
    {
        kept.Details.TryGetValue("outcome", out var keptOutcome);
        kept.Details.TryGetValue("refusal_code", out var refusalCode);
        if (keptOutcome != "refused" || refusalCode is null)
        {
            return null;
        }

        landed.Details.TryGetValue("outcome", out var landedOutcome);
        landed.Details.TryGetValue(LedgerAuditDetails.Cost, out var landedCost);
        var billedNothing = landedOutcome == "refused" && (landed.PromptTokens ?? 0) == 0 && (landed.CompletionTokens ?? 0) == 0
            && (landedCost is null || decimal.TryParse(landedCost, System.Globalization.NumberStyles.Number, System.Globalization.CultureInfo.InvariantCulture, out var cost) && cost == 0m);
        if (billedNothing)
        {
            return null;
        }

        var details = new Dictionary<string, string>(kept.Details, StringComparer.Ordinal)
        {
            ["corrects"] = landed.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["corrected_outcome"] = landedOutcome ?? "",
            ["corrected_prompt_tokens"] = (landed.PromptTokens ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["corrected_completion_tokens"] = (landed.CompletionTokens ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (landedCost is not null)
        {
            details["corrected_cost"] = landedCost;
        }

        return kept with { Action = AuditActions.InferenceCorrected, PromptTokens = 0, CompletionTokens = 0, Details = details };
    }

    /// <summary>
    /// Corrects a refused request that a late commit billed: the correcting entry and the usage record's correction (to a
    /// refusal at no cost, its totals moved by the difference) in one commit, as a request's books are; the landed
    /// entry stays in the chain as committed. The request's reservation was settled at no cost when it was refused, so
    /// the budget already counts nothing for it.
    /// </summary>
    private async Task CorrectAsync(Held held, AuditEntry landed, AuditRecord correction, CancellationToken cancellationToken)
    {
        var refusalCode = correction.Details["refusal_code"];
        if (await FindCorrectionAsync(held.RequestId, landed, cancellationToken) is { } existing)
        {
            // Corrected already: by a commit of this correction that went unanswered (and was applied), or by a
            // process that stopped before it could forget the refusal. Not appended twice; the void, carried in that
            // commit, is applied with it (a record already voided is left as it is).
            await _ledger.Value.VoidAsync(held.RequestId, refusalCode, cancellationToken);
            CorrectionFoundCommitted(_logger, held.RequestId, landed.Sequence, existing.Sequence);
            return;
        }

        AuditEntry written;
        UsageRecord? voided;
        if (_ledger.Value.CarryVoid(held.RequestId, refusalCode) is { } carried)
        {
            written = await _audit.Value.AppendAsync(correction, carried, cancellationToken);
            voided = await carried.Done;
        }
        else
        {
            voided = await _ledger.Value.VoidAsync(held.RequestId, refusalCode, cancellationToken); // a ledger that commits on its own
            written = await _audit.Value.AppendAsync(correction, null, cancellationToken);
        }

        landed.Details.TryGetValue("outcome", out var outcome);
        OutcomeCorrected(_logger, held.RequestId, landed.Sequence, outcome ?? "", voided?.Cost ?? 0m, voided?.Currency ?? "", written.Sequence);
    }

    /// <summary>The <c>inference.corrected</c> entry that already corrects <paramref name="landed"/>, if any.</summary>
    private async Task<AuditEntry?> FindCorrectionAsync(string requestId, AuditEntry landed, CancellationToken cancellationToken)
    {
        var audit = _audit.Value;
        var after = audit.Scope.Name == landed.Chain ? landed.Sequence : 0;
        var corrects = landed.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var entry in await audit.ReadActionAfterAsync(AuditActions.InferenceCorrected, after, cancellationToken))
        {
            if (entry.Details.TryGetValue("request_id", out var id) && id == requestId
                && entry.Details.TryGetValue("corrects", out var sequence) && sequence == corrects)
            {
                return entry;
            }
        }

        return null;
    }

    /// <summary>
    /// Appends the kept outcome, unless a commit of the request's outcome that went unanswered (the request was told it
    /// failed) was applied after all: then that entry is the request's outcome, and nothing is appended.
    /// </summary>
    private Task<AuditEntry> AppendOutcomeAsync(Held held, Storage.ICarriedWrite? carried, CancellationToken cancellationToken) =>
        held.InDoubt.Count == 0
            ? _audit.Value.AppendAsync(held.Outcome, carried, cancellationToken)
            : _audit.Value.AppendUnlessCommittedAsync(held.Outcome, carried, held.InDoubt, cancellationToken);

    private void Kick()
    {
        try
        {
            _kick.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already woken.
        }
    }

    public override void Dispose()
    {
        _health.Recovered -= Kick;
        _writing.Dispose();
        _kick.Dispose();
        base.Dispose();
    }

    private sealed record Held(string RequestId, AuditRecord Outcome, UsageRecord? Usage, Action? Written, IReadOnlyList<AuditEntry> InDoubt, bool Recovered = false);

    [LoggerMessage(EventId = 4189, EventName = "RefusedInDoubtNotJournaled", Level = LogLevel.Error,
        Message = "Request {RequestId}'s refusal (its outcome's commit in doubt) could not be recorded in, or removed from, the journal {Path}: if this process stops before the database is back, a late commit that billed it is not corrected (or, left there, it is checked again at the next start)")]
    private static partial void RefusalNotJournaled(ILogger logger, Exception exception, string requestId, string path);

    [LoggerMessage(EventId = 4190, EventName = "RefusedInDoubtRecovered", Level = LogLevel.Warning,
        Message = "{Count} requests answered 503 by this gateway's previous process while the commit of their outcome was in doubt were found in {Path}: each is checked once the database records requests, and a late commit that billed one is corrected (event 4157)")]
    private static partial void RefusalsRecovered(ILogger logger, int count, string path);

    [LoggerMessage(EventId = 4191, EventName = "DeferredCorrectionFoundCommitted", Level = LogLevel.Warning,
        Message = "Request {RequestId}'s late-billed outcome at sequence {Sequence} is corrected already by entry {Correction} (a commit of the correction that went unanswered, or a process that stopped before it settled it): not corrected twice")]
    private static partial void CorrectionFoundCommitted(ILogger logger, string requestId, long sequence, long correction);

    [LoggerMessage(EventId = 4192, EventName = "RecoveredRefusalNotLanded", Level = LogLevel.Information,
        Message = "Request {RequestId}, answered 503 by this gateway's previous process while its outcome's commit was in doubt: that commit never landed, so nothing was billed; nothing to correct")]
    private static partial void RecoveredRefusalNotLanded(ILogger logger, string requestId);

    [LoggerMessage(EventId = 4140, EventName = "DeferredOutcomesWritten", Level = LogLevel.Information,
        Message = "The database is back: the outcomes of {Count} requests that ended while it could not record them are written now (their usage records at what they cost, priced when each request ended), so their decisions are closed")]
    private static partial void OutcomesWritten(ILogger logger, int count);

    [LoggerMessage(EventId = 4141, EventName = "DeferredOutcomeNotKept", Level = LogLevel.Warning,
        Message = "Request {RequestId} ended while the database could not record it, with {Max} other outcomes already waiting for it: its decision stays open until this server's next start closes it as interrupted")]
    private static partial void OutcomeNotKept(ILogger logger, string requestId, int max);

    [LoggerMessage(EventId = 4142, EventName = "DeferredOutcomeNotWritten", Level = LogLevel.Error,
        Message = "Request {RequestId}'s outcome, kept while the database was down, could not be written; its decision stays open until this server's next start closes it as interrupted")]
    private static partial void OutcomeNotWritten(ILogger logger, Exception exception, string requestId);

    [LoggerMessage(EventId = 4157, EventName = "DeferredOutcomeCorrected", Level = LogLevel.Warning,
        Message = "Request {RequestId} was answered as refused (its outcome could not be recorded in time), but the commit of its outcome that went unanswered was applied after: the audit log holds it at sequence {Sequence} (outcome {Outcome}) and its usage record billed {Cost} {Currency}. Corrected: the record is now a refusal at no cost, and entry {Correction} (inference.corrected) says so; the entry it corrects stays in the chain")]
    private static partial void OutcomeCorrected(ILogger logger, string requestId, long sequence, string outcome, decimal cost, string currency, long correction);

    [LoggerMessage(EventId = 4154, EventName = "DeferredOutcomeFoundCommitted", Level = LogLevel.Warning,
        Message = "Request {RequestId} was told its outcome could not be recorded, but the commit of it that went unanswered was applied after: the audit log holds it at sequence {Sequence} (outcome {Outcome}), with the usage record it carried, so the outcome kept for it is not written again. Its reservation was settled as the request was answered")]
    private static partial void OutcomeFoundCommitted(ILogger logger, string requestId, long sequence, string outcome);
}
