using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.Pipeline.Executors;
using Sovereign.Gateway.Routing;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// One governed request as it flows through the pipeline's stages: who asked, what, where it runs, the money ticket,
/// the demand it reserved, and the execution. Its books close exactly once: <see cref="CompleteAsync"/> before the
/// client's last byte on success, or <see cref="DisposeAsync"/> on every other exit (refusal after admission,
/// engine or upstream error, client abort at any byte, exception), billing what was actually generated.
/// </summary>
internal sealed class GovernedRequest : IAsyncDisposable
{
    private readonly RequestAccounting _accounting;
    private int _closed;

    internal GovernedRequest(HttpContext http, Caller caller, Workload work, DateTimeOffset arrivedAt, RequestAccounting accounting)
    {
        Http = http;
        Caller = caller;
        Work = work;
        ArrivedAt = arrivedAt;
        _accounting = accounting;
    }

    /// <summary>The HTTP exchange.</summary>
    public HttpContext Http { get; }

    /// <summary>Who asked: after a decision made on a stale cached tenant, the caller as the tenant is now.</summary>
    public Caller Caller { get; internal set; }

    /// <summary>What was asked.</summary>
    public Workload Work { get; }

    /// <summary>When the request arrived: the time its usage record carries.</summary>
    public DateTimeOffset ArrivedAt { get; }

    /// <summary>Where it runs, once the residency stage decided.</summary>
    public RoutedRequest? Route { get; internal set; }

    /// <summary>The most it can consume, once measured by its executor.</summary>
    public WorkDemand Demand { get; internal set; }

    /// <summary>What the executor prepared while measuring (e.g. the tokenized prompts), for starting the work.</summary>
    public object? Plan { get; internal set; }

    /// <summary>The admission ticket (price, reservation, fair-share weight), once admitted.</summary>
    public MeterTicket? Ticket { get; internal set; }

    /// <summary>The request's slot of its pool where plans reserve slots there (<see cref="PoolAdmission"/>), until it ends.</summary>
    public IAsyncDisposable? PoolLease { get; internal set; }

    /// <summary>Keeps the budget reservation alive while the request runs (<see cref="Metering.ReservationRenewals"/>); ends when its books close.</summary>
    internal IDisposable? ReservationHold { get; set; }

    /// <summary>The error code of the refusal that ended the request before its work started, if one did.</summary>
    public string? RefusalCode { get; internal set; }

    /// <summary>The running work, once started.</summary>
    public IExecution? Execution { get; internal set; }

    /// <summary>Fires when the client goes away.</summary>
    public CancellationToken Aborted => Http.RequestAborted;

    /// <summary>
    /// What is to be done once the relay has been handed to the connection (<see cref="RelaySent"/>): the decision's
    /// entry appended after the relay to a cluster node left (<see cref="RequestPipeline"/>, the relay overlap).
    /// </summary>
    private Action? _afterRelaySent;

    /// <summary>Runs <paramref name="action"/> once, when the relay has been sent (<see cref="RelaySent"/>), or when the executor returns without one.</summary>
    internal void AfterRelaySent(Action action) => _afterRelaySent = action;

    /// <summary>Whether something waits for the relay to be sent (<see cref="AfterRelaySent"/>).</summary>
    internal bool AppendsDecisionAfterRelay => Volatile.Read(ref _afterRelaySent) is not null;

    /// <summary>
    /// The relay's request has been handed to its connection (its bytes written, or its connection being opened): runs
    /// what was to follow it (<see cref="AfterRelaySent"/>), once; later calls do nothing.
    /// </summary>
    internal void RelaySent()
    {
        Observability.FirstTokenMarks.Mark(Http, "sent");
        Interlocked.Exchange(ref _afterRelaySent, null)?.Invoke();
        if (Observability.FirstTokenMarks.On && Route is { } route)
        {
            Observability.FirstTokenMarks.MarkWhenDone(Http, route.DecisionRecorded, "entry");
        }
    }

    /// <summary>
    /// The decision's entry still committing while the work already runs and the endpoint may write its headers (a
    /// stream relayed to this node: <see cref="RequestPipeline"/>); null once it need not be awaited. Content waits for it
    /// (<see cref="EvidenceDurableAsync"/>).
    /// </summary>
    private Task? _evidence;

    /// <summary>Whether the endpoint may write its headers (and a stream's role chunk, no content) before the evidence is durable.</summary>
    public bool HoldsContentForEvidence => _evidence is not null;

    /// <summary>Lets the endpoint answer before <paramref name="decisionRecorded"/> is durable; content waits for it.</summary>
    internal void HoldContentUntil(Task decisionRecorded) => _evidence = decisionRecorded;

    /// <summary>
    /// Awaited before the first content is written: the decision's entry is durable. If it cannot be committed, the
    /// work is stopped, nothing generated is sent, and the request ends refused (<c>audit_unavailable</c>, billed 0);
    /// the exception is for the endpoint to end its stream with as an error event.
    /// </summary>
    public ValueTask EvidenceDurableAsync()
    {
        var pending = _evidence;
        if (pending is null || pending.IsCompletedSuccessfully)
        {
            _evidence = null;
            return ValueTask.CompletedTask;
        }

        return AwaitEvidenceAsync(pending);
    }

    private async ValueTask AwaitEvidenceAsync(Task pending)
    {
        try
        {
            await pending;
            _evidence = null;
        }
        catch (Exception ex)
        {
            // The work ran for nothing: stopped before any of it left, and the request is closed as refused at no cost.
            _evidence = null;
            if (ex is Residency.Audit.AuditUnavailableException)
            {
                RefusalCode = OpenAI.OpenAIErrorResults.AuditUnavailableCode;
            }

            var execution = Execution;
            Execution = null;
            if (execution is not null)
            {
                await execution.DisposeAsync();
            }

            throw;
        }
    }

    /// <summary>Closes the books of work that ran to its end; call before writing the response's last bytes.</summary>
    public async Task CompleteAsync()
    {
        await CloseAsync(Aborted.IsCancellationRequested && !Hosting.ShutdownCut.WasCut(Http) ? UsageOutcome.Cancelled : UsageOutcome.Completed);
        StateOutcomeEntry();
    }

    /// <summary>Closes the books of work that ended in an error the client is told about (e.g. an upstream's 4xx).</summary>
    public async Task FailAsync()
    {
        await CloseAsync(UsageOutcome.Failed);
        StateOutcomeEntry();
    }

    /// <summary>
    /// Names the outcome's entry on the answer (<see cref="InferenceRouter.AuditEntryHeader"/>) where its headers have not
    /// left yet: every answer but a stream, whose headers leave before its end is known; a stream whose client asked
    /// (<see cref="InferenceRouter.StreamAuditEntryHeader"/>) states it as a comment before its last event
    /// (<see cref="OpenAI.ServerSentEvents.WriteOutcomeEntryAsync"/>).
    /// </summary>
    private void StateOutcomeEntry()
    {
        if (Route?.OutcomeEntry is not { } entry)
        {
            return;
        }

        if (!Http.Response.HasStarted)
        {
            Http.Response.Headers[InferenceRouter.AuditEntryHeader] = InferenceRouter.AuditEntryValue(entry);
        }
        else if (InferenceRouter.AsksStreamAuditEntry(Http.Request))
        {
            OpenAI.ServerSentEvents.NameOutcomeEntry(Http, InferenceRouter.AuditEntryValue(entry));
        }
    }

    /// <summary>Closes the books if nothing else did, then releases the execution (its slot, its sequences).</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            // A client that left is a cancellation, also before its work started (queued, or waiting for an engine's
            // headers, which a non-streaming engine sends only at the end): nothing refused it.
            // A stream the server's stop cut (its grace ran out, Hosting.ShutdownCut) failed on the server's side: its
            // client did not leave.
            await CloseAsync(Aborted.IsCancellationRequested && !Hosting.ShutdownCut.WasCut(Http) ? UsageOutcome.Cancelled
                : Execution is null ? UsageOutcome.Refused
                : UsageOutcome.Failed);
        }
        finally
        {
            try
            {
                if (Execution is not null)
                {
                    await Execution.DisposeAsync();
                }
            }
            finally
            {
                if (PoolLease is { } lease)
                {
                    await lease.DisposeAsync();
                }
            }
        }
    }

    private async Task CloseAsync(UsageOutcome outcome)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        try
        {
            await _accounting.CloseAsync(this, outcome);
        }
        finally
        {
            // Settled, or its settlement failed (then it expires as a crashed caller's would): no longer renewed.
            ReservationHold?.Dispose();
        }
    }
}
