using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Routing;
using Sovereign.Metering.Ledger;
using Sovereign.Residency.Audit;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// The accounting stage: the one place a request's books close. The usage record and the audit log's outcome entry
/// commit together, then the reservation is settled at the actual cost (what the executor confirms was generated,
/// nothing for work refused before it started). Requests refused before admission hold no reservation:
/// the stage that refused them recorded the refusal, and a routed one gets its audit outcome here.
/// </summary>
internal sealed class RequestAccounting(InferenceRouter router, RequestMetering metering, LanguageRouting languages, DatabaseHealth database, DeferredOutcomes deferred, ILogger<RequestAccounting> logger)
{
    /// <summary>An outcome as the audit entry and the span name it (lower case), without a new string per request.</summary>
    internal static string NameOf(UsageOutcome outcome) => outcome switch
    {
        UsageOutcome.Completed => "completed",
        UsageOutcome.Refused => "refused",
        UsageOutcome.Cancelled => "cancelled",
        UsageOutcome.Failed => "failed",
        _ => outcome.ToString().ToLowerInvariant(),
    };

    public async Task CloseAsync(GovernedRequest request, UsageOutcome outcome)
    {
        if (request.Route is not { } route)
        {
            return;
        }

        using var span = Observability.GatewayTelemetry.Source.StartActivity(Observability.GatewayTelemetry.Account);
        span?.SetTag("sovereign.outcome", NameOf(outcome));
        // A decision left pending for admission (its key was rate-limited) is recorded before its outcome.
        router.RecordPendingDecision(route, request.Aborted);
        var decided = true;
        try
        {
            // The outcome's audit entry follows its decision's in the chain, even for work refused at once.
            await route.DecisionRecorded;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            decided = false;
            // No content reached the client without it (work sent while it committed was stopped); the outcome is still recorded below, and the operator is told: once per
            // database outage (4160), or at Error when the database is not the cause.
            Observability.GatewayLog.DecisionAuditFailed(logger, database.IsOutage(ex) ? LogLevel.Debug : LogLevel.Error, ex, route.RequestId);
        }
        catch (OperationCanceledException)
        {
            // The client left while the entry committed; the entry itself is still written.
        }

        // Every outcome's entry names the request's language, a rejected one too (it said und, whatever the text).
        if (route.Language is null && languages.DetectForUsage(request.Work.LanguageSample) is { } detected)
        {
            (route.Language, route.LanguageConfidence, route.LanguageGroup) = (detected.Language, detected.Confidence, detected.UndecidedGroup);
        }

        if (request.Ticket is not { } ticket)
        {
            // Routed, then refused before admission (e.g. too long for the context): no money moved, but the audit
            // trail shows how the allowed decision ended.
            await router.CompleteAsync(route, 0, 0, "rejected", request.RefusalCode);
            return;
        }

        var usage = WithinReservation(request, route, request.Execution is { } execution ? await execution.FinalUsageAsync() : ExecutedUsage.None);

        // The usage record commits in the outcome entry's transaction: one commit, and neither is durable without the
        // other. The settlement follows.
        var outcomeName = NameOf(outcome);
        try
        {
            var computeSeconds = await metering.FinishAsync(route, ticket, usage.PromptTokens, usage.CompletionTokens, usage.Timing, outcome, usage.CachedTokens, request.RefusalCode,
                carried => router.CompleteAsync(route, usage.PromptTokens, usage.CompletionTokens, outcomeName, carried));
            // The outcome and its usage record committed: the database records requests (again).
            database.ReportRecorded();
            if (request.Caller.TenantId == ClusterRelay.RelayTenant && outcome == UsageOutcome.Completed)
            {
                // The relaying gateway bills the tenant for the work this node ran, and cannot measure it itself.
                RelayComputeReport.Attach(request.Http, computeSeconds);
            }

            if (ticket.ReservedWithGrain && usage is { PromptTokens: 0, CompletionTokens: 0 } && UpstreamProxy.RefusedAsInvalid(request.Http))
            {
                // Refused where it was relayed, as the client's mistake (a token id outside the node's vocabulary): a
                // local route refuses it before admission, so it is not counted there either. The settlement gave the
                // tokens back; this gives back the request, as a relayed /detokenize's is.
                await metering.RefundRequestAsync(request.Http, request.Caller);
            }
        }
        catch (AuditUnavailableException unrecorded)
        {
            // Neither committed. The client is billed for what it received: a stream already under way keeps its
            // tokens; an answer not yet sent becomes this 503, recorded as refused at no cost. The ledger records it
            // alone, the reservation is settled, and the error goes on to the client. During a database outage the
            // outcome entry (and the usage record the ledger could not write either) is kept and written once the
            // database is back (DeferredOutcomes): its decision, committed before, stayed open until a restart.
            var keep = decided && database.IsOutage(unrecorded);
            if (request.Http.Response.HasStarted)
            {
                try
                {
                    await metering.FinishAsync(route, ticket, usage.PromptTokens, usage.CompletionTokens, usage.Timing, outcome, usage.CachedTokens, request.RefusalCode);
                    if (keep)
                    {
                        deferred.Keep(route.RequestId, router.OutcomeRecord(route, usage.PromptTokens, usage.CompletionTokens, outcomeName, request.RefusalCode), null, inDoubt: unrecorded.InDoubt);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException && database.IsOutage(ex))
                {
                    // The database is down (PostgreSQL stopped, a full disk): the ledger cannot bill what the stream
                    // delivered now. Kept (DeferredOutcomes), it is billed when the database is back: its record, as
                    // failed for want of the audit log, is priced now exactly as it would have been (it was written at
                    // cost 0), and its reservation settled at that cost, so the budget counts what was delivered. Not
                    // kept, its reservation goes back and the tokens go unbilled (held, it kept the tenant's money for
                    // 30 minutes after the database was back, for tokens never billed). Either way logged once (4162).
                    Observability.GatewayLog.StreamNotBilled(logger, route.RequestId, usage.PromptTokens, usage.CompletionTokens);
                    var priced = keep ? metering.PricedUnwritten(route, ticket, usage.PromptTokens, usage.CompletionTokens, usage.Timing, UsageOutcome.Failed, usage.CachedTokens, OpenAIErrorResults.AuditUnavailableCode) : null;
                    if (priced is not null && deferred.Keep(route.RequestId, router.OutcomeRecord(route, usage.PromptTokens, usage.CompletionTokens, "failed", OpenAIErrorResults.AuditUnavailableCode), priced,
                        () => metering.CountWritten(priced), unrecorded.InDoubt))
                    {
                        await metering.SettleUnwrittenAsync(route, ticket, priced);
                    }
                    else
                    {
                        await metering.ReleaseAsync(route, ticket);
                    }
                }

                await TellStreamAsync(request);
            }
            else
            {
                const string refused = "refused";
                try
                {
                    await metering.FinishAsync(route, ticket, 0, 0, null, UsageOutcome.Refused, refusalCode: OpenAIErrorResults.AuditUnavailableCode);
                    if (keep)
                    {
                        deferred.Keep(route.RequestId, router.OutcomeRecord(route, 0, 0, refused, OpenAIErrorResults.AuditUnavailableCode), null, inDoubt: unrecorded.InDoubt);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The ledger cannot write either (a full disk fails both): nothing ran and nothing is billed, so
                    // the reservation goes back all the same. Held, it counted against the budget until it expired
                    // (30 minutes): once the disk had room again, the tenant was refused 429 for money it never spent.
                    var outage = database.IsOutage(ex);
                    Observability.GatewayLog.RefusalNotRecorded(logger, outage ? LogLevel.Debug : LogLevel.Error, ex, route.RequestId);
                    await metering.ReleaseAsync(route, ticket);
                    if (keep && outage)
                    {
                        var unbilled = metering.UnbilledRecord(route, ticket, 0, 0, UsageOutcome.Refused, OpenAIErrorResults.AuditUnavailableCode);
                        deferred.Keep(route.RequestId, router.OutcomeRecord(route, 0, 0, refused, OpenAIErrorResults.AuditUnavailableCode), unbilled, inDoubt: unrecorded.InDoubt);
                    }
                }
            }

            throw;
        }
    }

    /// <summary>
    /// Ends a chat or text completion stream whose outcome could not be recorded with an error event saying so, in place
    /// of its usage and <c>[DONE]</c>: it used to stop without a word, which an SDK reads as a complete answer, and a
    /// gateway relaying from this node told its client that the engine had sent no usage (<c>upstream_invalid_usage</c>,
    /// event 4103, "check the engine"). A client already gone is not told.
    /// </summary>
    private static async Task TellStreamAsync(GovernedRequest request)
    {
        var response = request.Http.Response;
        if (request.Work is not GenerationWorkload { Endpoint: "chat/completions" or "completions" }
            || response.ContentType?.StartsWith("text/event-stream", StringComparison.Ordinal) != true)
        {
            return;
        }

        try
        {
            await ServerSentEvents.WriteAsync(response, new System.Text.Json.Nodes.JsonObject
            {
                ["error"] = new System.Text.Json.Nodes.JsonObject
                {
                    ["message"] = "The audit log could not record how this request ended, so its answer was cut here and not billed (fail closed). Try again.",
                    ["type"] = "server_error",
                    ["param"] = null,
                    ["code"] = OpenAIErrorResults.AuditUnavailableCode,
                },
            }, request.Http.RequestAborted);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The client left: nobody to tell.
        }
    }

    /// <summary>
    /// Usage is billed at most up to the request's measured demand, the bound its reservation was made for (the prompt's
    /// tokens, or its bytes for a remote tokenizer; the output limit times the choices). Only an engine that ignores
    /// max_tokens or miscounts reports more: billing its claim would overdraw a budget the reservation was meant to
    /// hold, so it is billed at the bound and the operator is told.
    /// </summary>
    private ExecutedUsage WithinReservation(GovernedRequest request, RoutedRequest route, ExecutedUsage usage)
    {
        var (promptBound, outputBound) = (request.Demand.PromptTokens, request.Demand.MaxOutputTokens);
        if (usage.PromptTokens <= promptBound && usage.CompletionTokens <= outputBound)
        {
            return usage;
        }

        Observability.GatewayLog.UsageAboveReservation(logger, route.RequestId, route.NodeId, usage.PromptTokens, usage.CompletionTokens, promptBound, outputBound);
        return usage with
        {
            PromptTokens = (int)Math.Min(usage.PromptTokens, promptBound),
            CompletionTokens = (int)Math.Min(usage.CompletionTokens, outputBound),
        };
    }
}
