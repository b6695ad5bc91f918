using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.Observability;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Pipeline.Executors;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// The one path every /v1 inference request takes, stage by stage, each with one home:
/// <list type="number">
/// <item>authentication (<see cref="CallerAuthenticator"/>, through the router): 401/403 before the body is read;</item>
/// <item>model resolution: an alias (<c>auto</c>) becomes the best model the policy allows for the text's language;</item>
/// <item>the residency decision (<see cref="InferenceRouter"/>): fail closed, audited, stated on the response;</item>
/// <item>measuring (the executor): prompt tokens and one output limit including every choice; 400 before money;</item>
/// <item>admission and reservation (<see cref="RequestMetering"/>, the tenant's grain): rate limits, budget; then a
/// slot of the pool where plans reserve slots (<see cref="PoolAdmission"/>);</item>
/// <item>execution (an <see cref="IRequestExecutor"/>): a slot in the route's weighted-fair queue, then the work;</item>
/// <item>accounting (<see cref="RequestAccounting"/>): exactly once on every exit of the request.</item>
/// </list>
/// Endpoints only translate OpenAI's wire format to a <see cref="Workload"/> and the execution's output back.
/// </summary>
internal sealed class RequestPipeline(
    InferenceRouter router,
    LanguageRouting languages,
    RequestMetering metering,
    RequestAccounting accounting,
    PoolAdmission pools,
    IEnumerable<IRequestExecutor> executors,
    RelayLoads relayLoads,
    ReservationRenewals renewals,
    RateLimitRefusals rateLimited,
    CallerAuthenticator authenticator,
    TimeProvider time,
    ControlPlane.DatabaseHealth database,
    ILogger<RequestPipeline> logger)
{
    /// <summary>How many times a request whose node cannot be reached is routed again before it is refused.</summary>
    public const int MaxFailovers = 2;

    private static readonly object ArrivalKey = new();
    private readonly IRequestExecutor[] _executors = [.. executors];

    /// <summary>Stage 1: who is calling. Also notes the arrival time, which the usage record carries.</summary>
    public Task<Caller> AuthenticateAsync(HttpContext context)
    {
        context.Items[ArrivalKey] = time.GetUtcNow();
        return GatewayTelemetry.Source.HasListeners() ? AuthenticateTracedAsync(context, forAdmission: false) : router.AuthenticateAsync(context);
    }

    /// <summary>
    /// Stage 1 for work that <see cref="StartAsync"/> admits: a key whose tenant this gateway has seen is authorized from
    /// its cache, and admission's one tenant-grain call confirms it (<see cref="CallerAuthenticator.AuthenticateForAdmissionAsync"/>).
    /// The endpoint must hand the caller to <see cref="StartAsync"/> and read it back from the governed request after.
    /// </summary>
    public Task<Caller> AuthenticateForAdmissionAsync(HttpContext context)
    {
        FirstTokenMarks.Mark(context, "auth");
        context.Items[ArrivalKey] = time.GetUtcNow();
        return GatewayTelemetry.Source.HasListeners() ? AuthenticateTracedAsync(context, forAdmission: true) : router.AuthenticateForAdmissionAsync(context);
    }

    private async Task<Caller> AuthenticateTracedAsync(HttpContext context, bool forAdmission)
    {
        using var span = GatewayTelemetry.Source.StartActivity(GatewayTelemetry.Authenticate);
        var caller = forAdmission ? await router.AuthenticateForAdmissionAsync(context) : await router.AuthenticateAsync(context);
        span?.SetTag("sovereign.tenant", caller.TenantId);
        return caller;
    }

    /// <summary>
    /// Stages 2 to 6: resolves, routes, measures, admits and starts the work. The returned request must be disposed
    /// (<c>await using</c>); on any refusal the stages already run are accounted for and the error is thrown.
    /// </summary>
    public async Task<GovernedRequest> StartAsync(HttpContext context, Caller caller, Workload work)
    {
        FirstTokenMarks.Mark(context, "start");
        // Fail closed, and fast, while the database does not answer (DatabaseHealth.NotAnswering): nothing is decided,
        // reserved or run, so there is nothing to record. Tried, the request waited minutes for the driver's timeouts.
        if (database.Damaged is not null)
        {
            throw OpenAI.OpenAIErrorResults.DatabaseDamaged();
        }

        if (database.NotAnswering is { } stalled)
        {
            throw new Residency.Audit.AuditUnavailableException("The request was refused before it was decided: " + stalled,
                new Cluster.Grains.StorageUnavailableException("The database does not answer."));
        }

        var arrivedAt = context.Items.TryGetValue(ArrivalKey, out var arrival) && arrival is DateTimeOffset at ? at : time.GetUtcNow();
        var request = new GovernedRequest(context, caller, work, arrivedAt, accounting);

        // Whether any executor took the work: until then a refusal ran nothing (a relaying gateway is told so).
        var started = false;
        try
        {
            IRequestExecutor executor;
            for (var decision = 1; ; decision++)
            {
                try
                {
                    executor = await DecideAndAdmitAsync(request);
                    break;
                }
                catch (CallerChangedException changed) when (decision == 1)
                {
                    // Decided on this gateway's cached tenant, whose policy or plan has changed since: nothing was reserved
                    // and no refusal recorded. The request is decided again, once, on the tenant as it is now, under the
                    // same request id (as a failover is): both decisions are in the audit log, the second saying why.
                    if (request.Route is { } stale)
                    {
                        // Its entry commits before the next decision's (a failure is this request's, accounted as today);
                        // one that was to follow the relay is appended now.
                        request.RelaySent();
                        await stale.DecisionRecorded;
                        request.Route = null;

                        // Where the stale decision would have run is not where this request runs: the next decision
                        // states its own place, and a refusal this gateway's, as any refusal does.
                        context.Response.Headers.Remove(InferenceRouter.JurisdictionHeader);
                        context.Response.Headers.Remove(InferenceRouter.NodeHeader);
                    }

                    request.Caller = caller = changed.Caller;

                    // What the endpoint checked on the first caller (e.g. that its policy keeps stored content) holds for
                    // this one too, or the request is refused before it is decided again.
                    if (work.CallerCheck is { } check)
                    {
                        await check(caller);
                    }
                }
            }

            if (request.Route is null)
            {
                throw new InvalidOperationException("Admitted without a route.");
            }

            for (var failovers = 0; ; failovers++)
            {
                // Where the plan may waive the language tax, the completion's letters are gathered as it is delivered.
                request.Route.Completion ??= metering.CompletionSampleFor(request.Route);
                try
                {
                    if (RunsInThisProcess(request.Route))
                    {
                        // The prompt does not leave this process: the engine takes it while the decision's entry commits,
                        // and the entry is durable before anything leaves: the endpoint writes nothing (not even headers)
                        // before this returns, except a relayed stream's headers and role chunk (below). On a node, a
                        // gateway's relay was in its own audit log before it was sent.
                        using (GatewayTelemetry.Source.StartActivity(GatewayTelemetry.Execute))
                        {
                            FirstTokenMarks.Mark(context, "run");
                            request.Execution = await executor.StartAsync(request);
                            started = true;
                        }

                        FirstTokenMarks.MarkWhenDone(context, request.Route.DecisionRecorded, "entry");

                        var relayed = caller.TenantId == ClusterRelay.RelayTenant && work is GenerationWorkload;
                        if (relayed && work is GenerationWorkload { Stream: true, AwaitsEvidenceBeforeContent: true })
                        {
                            // A stream a gateway relayed: its headers and role chunk (no content) may leave while the
                            // entry commits, so the gateway handles them before the first token comes; the endpoint
                            // writes no content before the entry is durable, and a commit that fails ends the stream
                            // with an audit_unavailable error event, billed 0 here and at the gateway.
                            request.HoldContentUntil(request.Route.DecisionRecorded);
                        }
                        else
                        {
                            await DecisionRecordedOrStopAsync(request);
                        }

                        if (relayed)
                        {
                            // The relaying gateway bills these if the stream ends before the engine's usage does.
                            RelayPromptTokens.Attach(context, request.Demand.PromptTokens);
                        }

                        return request;
                    }

                    if (router.RelaysWhileDecisionCommits && RelaysToClusterNode(request.Route))
                    {
                        // Members on their own audit chains: the relay to another member leaves while the decision's
                        // entry commits (the node's own commit, which it makes before it runs anything, no longer
                        // waits for it under one chain's lock), and fails closed as local work does: no content
                        // reaches the client until the entry is durable (the endpoint writes nothing, not even headers,
                        // before this returns, except a stream's headers and role chunk: below); if it cannot be, the
                        // relay is aborted and the request ends refused, nothing delivered and nothing billed.
                        using (GatewayTelemetry.Source.StartActivity(GatewayTelemetry.Execute))
                        {
                            try
                            {
                                FirstTokenMarks.Mark(context, "run");
                                request.Execution = await executor.StartAsync(request);
                            }
                            finally
                            {
                                // The entry follows the relay (appended as it left); an executor that sent nothing, or
                                // returned before saying so, appends it now, so the evidence is there whatever happened.
                                request.RelaySent();
                            }

                            started = true;
                        }

                        // Admitted from this gateway's budget lease: nothing is written to the client (not even
                        // headers) before the tenant's grain confirmed it; a refusal stops the relay.
                        await AdmissionConfirmedOrStopAsync(request);

                        if (work is GenerationWorkload { Stream: true, AwaitsEvidenceBeforeContent: true } && request.Execution is UpstreamRelay relay)
                        {
                            // A stream: the node's headers and role chunk are passed on at once, its content only once the
                            // entry is durable; a commit that fails stops the relay and ends the stream with
                            // audit_unavailable, nothing delivered, nothing billed (UpstreamProxy.RelayAsync).
                            request.HoldContentUntil(request.Route.DecisionRecorded);
                            relay.Progress.BeforeContent = request.EvidenceDurableAsync;
                            return request;
                        }

                        await DecisionRecordedOrStopAsync(request);
                        return request;
                    }

                    // Fail closed: the decision is durable evidence before any work is sent (it committed meanwhile).
                    await request.Route.DecisionRecorded;
                    using (GatewayTelemetry.Source.StartActivity(GatewayTelemetry.Execute))
                    {
                        request.Execution = await executor.StartAsync(request);
                        started = true;
                    }

                    return request;
                }
                catch (NodeUnreachableException unreachable) when (failovers < MaxFailovers && !context.RequestAborted.IsCancellationRequested)
                {
                    // A relay sent while its decision committed: that decision is durable (or the request is refused)
                    // before the request is decided again elsewhere, and its admission from a lease confirmed.
                    await request.Route.DecisionRecorded;
                    await AdmissionConfirmedOrStopAsync(request);
                    // Nothing reached the node, so the request may run elsewhere the policy allows, on the money already
                    // reserved: a replica that needs more than the reservation covers is not taken.
                    if (unreachable.NodeAnswer is { } refusal)
                    {
                        // The node answered that it did not start the request (its model not loaded now, its queue full):
                        // nothing ran there and nothing was billed there, so it may run on another node, as above.
                        Observability.GatewayLog.RequestNotStartedByNode(logger, request.Route.RequestId, unreachable.NodeId, refusal.Status, refusal.Code);
                    }
                    else
                    {
                        Observability.GatewayLog.RequestFailedOver(logger, request.Route.RequestId, unreachable.NodeId, unreachable.Reason);
                    }

                    var leasedPool = request.Route.Placement?.Pool;
                    request.Route = await router.FailoverAsync(context, request.Route, work.Kind, unreachable.NodeAnswer is { } said ? $"did not start it ({said.Code})" : null);
                    executor = await PrepareAsync(request.Route, work, context.RequestAborted);
                    var demand = await executor.MeasureAsync(request);
                    var ticket = demand.PromptTokens > request.Demand.PromptTokens || demand.MaxOutputTokens > request.Demand.MaxOutputTokens
                        ? null
                        : RequestMetering.Reprice(request.Ticket!, request.Route, request.Demand.PromptTokens, request.Demand.MaxOutputTokens);
                    request.Ticket = ticket ?? throw new OpenAIException(StatusCodes.Status503ServiceUnavailable,
                        "The node chosen for this request could not be reached, and no other compliant node can take it now; try again.",
                        "server_error", null, Residency.Policies.RoutingCodes.NoCompliantCapacity, TimeSpan.FromSeconds(1));
                    await MovePoolLeaseAsync(request, leasedPool);
                }
            }
        }
        catch (Exception ex)
        {
            // Refused before the tenant's grain answered for a caller authorized from the cache: a key revoked or a
            // tenant disabled since is answered (and recorded) as such, as authentication answers it.
            var answered = request.Caller.Provisional is { Confirmed: false } provisional ? await ConfirmedRefusalAsync(context, provisional, ex) : ex;

            // A refusal after admission (a full queue, a reserved pool) is recorded with the rule that refused it.
            request.RefusalCode = answered switch
            {
                OpenAIException refusal => refusal.Code,
                Residency.Audit.AuditUnavailableException => OpenAIErrorResults.AuditUnavailableCode,
                NodeUnreachableException { NodeAnswer: { } nodes } => nodes.Code,
                NodeUnreachableException => "node_unreachable",
                _ => null,
            };
            if (!started && request.Caller.TenantId == ClusterRelay.RelayTenant && !context.Response.HasStarted)
            {
                // On a node: nothing of the relayed request reached an engine, so the gateway may send it elsewhere.
                RelayNotStarted.Attach(context);
            }

            await request.DisposeAsync();
            if (!ReferenceEquals(answered, ex))
            {
                throw answered;
            }

            throw;
        }
    }

    /// <summary>
    /// Stages 2 to 5: routes (the residency decision), places, measures and admits the request, then takes its pool's
    /// slot. Returns the executor that runs it.
    /// </summary>
    private async Task<IRequestExecutor> DecideAndAdmitAsync(GovernedRequest request)
    {
        var context = request.Http;
        var caller = request.Caller;
        var work = request.Work;

        // A key the rate limit refused within the interval is admitted before its decision is recorded: refused
        // again, it is counted, not recorded twice more (a flood chose the audit log's length).
        var countRateLimitRefusal = rateLimited.IsLimited(caller);

        // The allowed decision's entry is left pending: recorded after admission (a rate-limited key), or committed
        // on this thread while the admission call is in the grain (below).
        context.Items[countRateLimitRefusal ? InferenceRouter.DeferDecisionKey : InferenceRouter.DecisionBesideAdmissionKey] = true;
        try
        {
            request.Route = await RouteAsync(context, caller, work);
            FirstTokenMarks.Mark(context, "routed");
        }
        finally
        {
            // A failover's decision, made after admission, is recorded at once.
            context.Items.Remove(InferenceRouter.DeferDecisionKey);
            context.Items.Remove(InferenceRouter.DecisionBesideAdmissionKey);
        }

        request.Route.ArrivedAt = request.ArrivedAt;
        if (caller.TenantId == ClusterRelay.RelayTenant && context.Request.Headers[RelayLoads.GatewayHeader] is [{ Length: > 0 and <= ResourceIds.MaxOtherLength } gateway])
        {
            // Counted per relaying gateway until the answer is written (the node's load report carries it).
            context.Response.RegisterForDispose(relayLoads.Track(gateway, request.Route.Model));
        }

        var executor = await PrepareAsync(request.Route, work, context.RequestAborted);
        using (GatewayTelemetry.Source.StartActivity(GatewayTelemetry.Measure))
        {
            request.Demand = await executor.MeasureAsync(request);
            FirstTokenMarks.Mark(context, "measured");
        }

        using (GatewayTelemetry.Source.StartActivity(GatewayTelemetry.Admit))
        {
            try
            {
                // Work relayed to another member while its decision commits: its content is held until the entry is
                // durable, and until the tenant's grain confirmed an admission made from this gateway's budget lease.
                var relayOverlap = !countRateLimitRefusal && router.RelaysWhileDecisionCommits && RelaysToClusterNode(request.Route);
                var admission = metering.AdmitAsync(context, request.Route, request.Demand.PromptTokens, request.Demand.MaxOutputTokens,
                    (work as GenerationWorkload)?.MaxTokensParameter, countRateLimitRefusal, mayLease: relayOverlap);
                FirstTokenMarks.Mark(context, "admitting");
                if (relayOverlap)
                {
                    // The relay overlap (a member chain, work for another member): the entry's commit is no longer
                    // awaited before the relay leaves, so it is not sent before it either. This thread awaits the grain,
                    // sends the relay, then appends the entry (GovernedRequest.RelaySent): the relay left 0.18 ms sooner
                    // (session 50, ttft8), and no content reaches the client before the entry is durable, as before. An
                    // executor that returns or fails without sending it appends it then (StartAsync), a refusal before
                    // the relay in its accounting (RequestAccounting), as for a rate-limited key.
                    var route = request.Route;
                    var aborted = context.RequestAborted;
                    request.AfterRelaySent(() => router.RecordPendingDecisionBesideAdmission(route, aborted));
                }
                else if (!countRateLimitRefusal)
                {
                    // The grain admits while this thread commits the decision's entry (it used to commit on a pool
                    // thread from the decision on, and the request waited for that thread's turn). Nothing is sent
                    // anywhere before the entry is durable, as before.
                    router.RecordPendingDecisionBesideAdmission(request.Route, context.RequestAborted);
                }

                request.Ticket = await admission;
                FirstTokenMarks.Mark(context, "admitted");
            }
            catch (OpenAIException refused) when (RateLimitRefusals.IsRateLimit(refused))
            {
                if (countRateLimitRefusal && request.Route.PendingDecision is not null)
                {
                    // Nothing decided is recorded, nothing billed: counted into the key's next summary entry,
                    // which no answer can name yet.
                    rateLimited.Count(caller, refused);
                    RateLimitRefusals.MarkCounted(context);
                    request.Route = null;
                    context.Response.Headers.Remove(InferenceRouter.AuditIdHeader);
                }
                else
                {
                    rateLimited.NoteLimited(caller);
                }

                throw;
            }

            if (!request.AppendsDecisionAfterRelay)
            {
                router.RecordPendingDecision(request.Route, context.RequestAborted);
            }

            if (request.Ticket.ReservedWithGrain)
            {
                request.ReservationHold = renewals.Hold(caller.TenantId, request.Route.RequestId);
            }

            request.PoolLease = await pools.AcquireAsync(request);
        }

        return executor;
    }

    /// <summary>
    /// The error to answer for a request refused before admission confirmed its provisional authorization: the
    /// 401/403 of a key or tenant that no longer authorizes it, else <paramref name="refusal"/> as it is. A grain that
    /// does not answer leaves the refusal as it is (the request is refused either way).
    /// </summary>
    private async Task<Exception> ConfirmedRefusalAsync(HttpContext context, ProvisionalAuthorization provisional, Exception refusal)
    {
        try
        {
            await authenticator.ConfirmAsync(provisional);
            return refusal;
        }
        catch (OpenAIException unauthorized)
        {
            KnownCallers.Forget(context);
            return unauthorized;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return refusal;
        }
    }

    /// <summary>
    /// For a refusal an endpoint decided itself, before the pipeline, on a caller authorized from this gateway's cache
    /// (<see cref="Caller.Provisional"/>): the tenant's grain answers for it first. Throws the 401/403 of a key or
    /// tenant that no longer authorizes the request; returns the caller as the tenant is now when its policy or plan
    /// changed since (the refusal is to be decided again on it), else null (the refusal stands, as when the grain does
    /// not answer).
    /// </summary>
    public async Task<Caller?> ConfirmBeforeRefusalAsync(HttpContext context, Caller caller)
    {
        if (caller.Provisional is not { Confirmed: false } provisional)
        {
            return null;
        }

        try
        {
            return await authenticator.ConfirmAsync(provisional);
        }
        catch (OpenAIException)
        {
            KnownCallers.Forget(context);
            throw;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>
    /// After a failover: the slot of the first route's pool is given back and the new route's pool is entered, so each
    /// pool's gate counts exactly the requests running there. A failover inside the same pool keeps its slot.
    /// </summary>
    private async Task MovePoolLeaseAsync(GovernedRequest request, string? leasedPool)
    {
        if (request.Route!.Placement?.Pool == leasedPool)
        {
            return;
        }

        var lease = request.PoolLease;
        request.PoolLease = null;
        if (lease is not null)
        {
            await lease.DisposeAsync();
        }

        request.PoolLease = await pools.AcquireAsync(request);
    }

    /// <summary>
    /// Whether the work is relayed to another member of the cluster (not an external engine, nor one this node
    /// fronts): that member records its own decision before it runs anything, so the prompt never reaches work
    /// without durable evidence even while this gateway's entry still commits.
    /// </summary>
    private static bool RelaysToClusterNode(RoutedRequest route) =>
        route is { Local: null, Fronted: null, ExternalNode: { } node } && NodeDirectory.IsClusterNode(node);

    /// <summary>Whether the work runs on this process's own engine (a local model), not behind another server.</summary>
    private static bool RunsInThisProcess(RoutedRequest route) => route is { Local: not null, ExternalNode: null };

    /// <summary>
    /// Waits for the decision's audit entry of work already started here. If it cannot be committed, the work is
    /// stopped before anything left the process, and the request ends refused (nothing delivered, nothing billed).
    /// </summary>
    private static async Task DecisionRecordedOrStopAsync(GovernedRequest request)
    {
        try
        {
            await request.Route!.DecisionRecorded;
        }
        catch
        {
            var execution = request.Execution;
            request.Execution = null;
            if (execution is not null)
            {
                await execution.DisposeAsync();
            }

            throw;
        }
    }

    /// <summary>
    /// Waits for the tenant's grain to confirm an admission made from this gateway's budget lease
    /// (<see cref="Metering.MeterTicket.Confirmation"/>; nothing to wait for otherwise). Refused (or unanswered), the
    /// work is stopped before anything reached the client, and the request ends as one refused at admission: nothing
    /// reserved, its refusal recorded by the confirmation.
    /// </summary>
    private static async Task AdmissionConfirmedOrStopAsync(GovernedRequest request)
    {
        if (request.Ticket is not { Confirmation: { } confirmation } ticket)
        {
            return;
        }

        try
        {
            await confirmation;
            RequestMetering.ApplyConfirmation(request.Http, ticket);
        }
        catch
        {
            RequestMetering.ApplyConfirmation(request.Http, ticket);
            request.Ticket = null;
            request.ReservationHold?.Dispose();
            request.ReservationHold = null;
            var execution = request.Execution;
            request.Execution = null;
            if (execution is not null)
            {
                await execution.DisposeAsync();
            }

            throw;
        }
    }

    /// <summary>Names the route's operation, places it in its node's pool and device class, and picks its executor.</summary>
    private async Task<IRequestExecutor> PrepareAsync(RoutedRequest route, Workload work, CancellationToken cancellationToken)
    {
        route.Operation = OperationOf(work);
        route.Prompt = work.LanguageSample;
        await pools.PlaceAsync(route, cancellationToken);
        return _executors.FirstOrDefault(e => e.Runs(route, work))
            ?? throw OpenAIException.BadRequest($"The model '{route.Model}' cannot serve this endpoint.", "model", "model_not_supported");
    }

    private static string OperationOf(Workload work) => work switch
    {
        GenerationWorkload { Endpoint: "completions" } => "text_completion",
        GenerationWorkload => "chat",
        _ => "embeddings",
    };

    /// <summary>
    /// Stages 2 and 3: an alias resolves to a model first; then the residency decision, whose audit entry commits
    /// while the request is measured and admitted (awaited before the work starts).
    /// </summary>
    private async Task<RoutedRequest> RouteAsync(HttpContext context, Caller caller, Workload work)
    {
        var prefixKey = PrefixAffinity.KeyOf(work, caller.TenantId);
        if (!await languages.IsAliasAsync(work.Model))
        {
            return await router.DecideAsync(context, caller, work.Model, work.Kind, prefixKey: prefixKey);
        }

        if (work.Kind != ModelKind.Chat)
        {
            // Aliases choose chat models by language: the wrong endpoint, as for a chat model's id (it was a 404).
            throw OpenAIException.BadRequest($"The model '{RequestReader.Shorten(work.Model!)}' is an alias for chat models and cannot serve this endpoint.", "model", "model_not_supported");
        }

        var choice = await languages.ChooseAsync(router, caller, work.Model!, work.LanguageSample);
        if (!choice.IsRouted)
        {
            // Not the policy's doing when the fallback runs nowhere (not loaded yet, or named in error): as for a model
            // loaded nowhere, a 503 the client may retry; the operator sees the model in the message, and the refusal is
            // audited and recorded like the router's own 503s.
            var fallback = await languages.DefaultOfAsync(work.Model!);
            if (!await languages.IsServedAsync(fallback))
            {
                throw await router.RefuseUnservedDefaultAsync(context, caller, work.Model!, choice, fallback);
            }

            // The policy refuses the fallback: the router refuses it as it would the model itself, so the refusal is
            // audited (with the alias and its reason) and recorded under the exact rule; the message says why.
            try
            {
                return await router.DecideAsync(context, caller, fallback, ModelKind.Chat, work.Model, choice, prefixKey);
            }
            catch (OpenAIException refused) when (refused.Status == StatusCodes.Status403Forbidden)
            {
                throw new OpenAIException(refused.Status,
                    $"No model that your policy allows can serve '{work.Model}' for this request: {choice.Reason}. {refused.Message}", refused.Type, "model", refused.Code, refused.RetryAfter);
            }
        }

        return await router.DecideAsync(context, caller, choice.ModelId, ModelKind.Chat, work.Model, choice, prefixKey);
    }
}
