using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Scheduling;

namespace Sovereign.Gateway.Pipeline.Executors;

/// <summary>
/// Relays chat and text completions, and embeddings, to an external OpenAI-compatible engine (vLLM, llama-server,
/// Ollama, another Sovereign). The engine's tokenizer is remote, so the prompt is bounded by its bytes (a token covers
/// at least one) and the output by an explicit limit that the gateway sends upstream when the client set none, times
/// the choices: the reservation is a true bound of what the upstream may generate. Embeddings have no output; their
/// inputs are bounded the same way (<see cref="UpstreamEmbeddings.Bound"/>).
/// </summary>
internal class ExternalEngineExecutor(UpstreamProxy proxy, NodeDirectory nodes, RouteGates gates, IOptions<SovereignOptions> options, EngineOccupancy occupancy) : IRequestExecutor
{
    public virtual bool Runs(RoutedRequest route, Workload work) =>
        route is { Fronted: null, ExternalNode.Kind: nameof(Residency.Policies.NodeKind.External) } && Relays(route, work);

    /// <summary>Whether the route's model is of the work's kind (the router only routes to those).</summary>
    protected static bool Relays(RoutedRequest route, Workload work) => work switch
    {
        GenerationWorkload => route.ExternalModel is { IsEmbedding: false },
        EmbeddingWorkload => route.ExternalModel is { IsEmbedding: true },
        _ => false,
    };

    /// <summary>The bearer token the relay presents to the node's engine.</summary>
    protected virtual string? UpstreamKey(NodeView node) => node.UpstreamKey;

    /// <summary>The named HttpClient the relay uses (its TLS trust: the machine's store for external engines).</summary>
    protected virtual string HttpClientName => UpstreamProxy.ClientName;

    /// <summary>This process's node id.</summary>
    protected string NodeId => options.Value.NodeId;

    /// <summary>Headers the relay adds (a cluster node is told which gateway relays, and whose cached prompts the request may reuse).</summary>
    protected virtual IReadOnlyList<(string Name, string Value)> RelayHeaders(GovernedRequest request) => [];

    /// <summary>How the route's engine keeps its prompt cache apart between tenants (<see cref="EnginePromptCaches"/>).</summary>
    protected virtual string PromptCache(RoutedRequest route) => route.ExternalNode!.PromptCacheOrShared;

    /// <summary>
    /// Whether the engine's 503 means it took no work (llama-server loading its model, Ollama's queue full), so the
    /// request may go to another replica as when the connection is refused. Another Sovereign's 503 is its own governed
    /// refusal (its queue, its audit log) and reaches the client with its code.
    /// </summary>
    protected virtual bool FailsOverWhenUnavailable => true;

    /// <summary>
    /// Whether the engine's 503 states that it did not start the request (<see cref="RelayNotStarted"/>: a cluster node
    /// refused it before any engine had it), so the request may go to another replica although its 503s are passed on.
    /// </summary>
    protected virtual bool SaysNotStarted(HttpResponseMessage response) => false;

    /// <summary>
    /// Whether the engine reports the compute seconds it ran (<see cref="RelayComputeReport"/>): a cluster node does;
    /// for any other engine the relay measures its share of the engine's busy time (<see cref="EngineOccupancy"/>).
    /// </summary>
    protected virtual bool ReportsCompute => false;

    /// <summary>
    /// Whether to ask the route's engine for the usage so far on every event of a stream (vLLM's
    /// <c>continuous_usage_stats</c>): a stream that ends before its usage event (the client left, the engine stopped) is
    /// then billed the prompt the engine counted, not 0. Only for an engine known to take it: others may refuse the field.
    /// </summary>
    protected virtual bool AsksUsageOnEveryEvent(RoutedRequest route) => false;

    /// <summary>What to tell when the route's engine sends part of an answer (a fronted engine's liveness); null: nobody.</summary>
    protected virtual Action? EngineAnswered(RoutedRequest route) => null;

    /// <summary>The route's engine refused the connection: routing goes around it until it is back.</summary>
    protected virtual void OnUnreachable(RoutedRequest route) => nodes.MarkUnreachable(route.ExternalNode!);

    public ValueTask<WorkDemand> MeasureAsync(GovernedRequest request)
    {
        if (request.Work is EmbeddingWorkload embeddings)
        {
            request.Plan = UpstreamEmbeddings.RelayBody(RequestReader.RawBody(request.Http));
            return ValueTask.FromResult(new WorkDemand(UpstreamEmbeddings.Bound(embeddings), 0));
        }

        var work = (GenerationWorkload)request.Work;
        var raw = RequestReader.RawBody(request.Http);
        var limits = options.Value.Limits;
        var maxTokens = work.MaxTokens ?? limits.UpstreamDefaultMaxTokens;
        var prompts = work.Prompt is { ValueKind: JsonValueKind.Array } array && array.GetArrayLength() > 0 && array[0].ValueKind != JsonValueKind.Number
            ? array.GetArrayLength()
            : 1;

        // vLLM runs echo with max_tokens 0 as max_tokens 1 and counts that token it does not return in its usage, so
        // the bound allows it (else the bill of an honest engine is cut to the bound and the operator warned).
        var outputPerChoice = work.Echo && maxTokens == 0 ? 1 : maxTokens;
        var demand = new WorkDemand(raw.Length, (long)outputPerChoice * work.N * prompts);
        if (work.ChatRelayBody is null && RelayRequestBody.TryRead(raw) is { } relayed)
        {
            // The client's body with the same edits as below, written from its bytes when it is sent (no JsonNode tree).
            if (work.RequestedMaxTokens is null)
            {
                relayed.SetMaxTokens(work.MaxTokensParameter, maxTokens);
            }

            if (relayed.TopPIsZero)
            {
                relayed.MakeGreedy();
            }

            relayed.SetPromptCache(PromptCache(request.Route!), request.Caller.TenantId, work.CacheSalt);
            request.Plan = relayed;
            return ValueTask.FromResult(demand);
        }

        JsonObject body;
        long promptBytes = raw.Length;
        if (work.ChatRelayBody is { } translated)
        {
            // A fresh copy per route: the relay writes the upstream's model id into it, and a failover measures again.
            body = (JsonObject)translated.DeepClone();
            promptBytes = Math.Max(promptBytes, System.Text.Encoding.UTF8.GetByteCount(body.ToJsonString()));
        }
        else
        {
            body = JsonNode.Parse(raw.Span) as JsonObject ?? throw OpenAIException.BadRequest("The request body must be a JSON object.");
        }

        if (work.RequestedMaxTokens is null || work.ChatRelayBody is not null)
        {
            body[work.ChatRelayBody is null ? work.MaxTokensParameter : "max_tokens"] = maxTokens;
        }

        // Read as JSON text: a translated body (Responses) holds a CLR float, which GetValue<double> refuses.
        if (body["top_p"] is JsonValue topP && topP.GetValueKind() == JsonValueKind.Number
            && double.Parse(topP.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture) == 0)
        {
            // vLLM refuses top_p 0, which OpenAI accepts and means the most likely token alone: greedy, as here.
            body.Remove("top_p");
            body["temperature"] = 0;
        }

        EnginePromptCache.Apply(body, PromptCache(request.Route!), request.Caller, work.CacheSalt);
        request.Plan = body;
        return ValueTask.FromResult(demand with { PromptTokens = promptBytes });
    }

    public async ValueTask<IExecution> StartAsync(GovernedRequest request)
    {
        var route = request.Route!;
        var node = route.ExternalNode!;
        var model = route.ExternalModel!;
        var ticket = request.Ticket!;
        var relayed = request.Plan as RelayRequestBody;
        var body = relayed is null ? (JsonObject)request.Plan! : null;
        var path = request.Work is GenerationWorkload work ? work.RelayEndpoint : "embeddings";
        var stream = relayed?.Stream ?? body!["stream"]?.GetValueKind() == JsonValueKind.True;
        var clientWantsUsage = relayed?.ClientWantsUsage ?? body!["stream_options"]?["include_usage"]?.GetValueKind() == JsonValueKind.True;
        var slot = await gates.For(route.NodeId, model.Id, model.Capacity)
            .AcquireAsync(new FairQueueEntry(request.Caller.TenantId, ticket.Weight, ticket.Priority, 1), request.Aborted);
        Observability.FirstTokenMarks.Mark(request.Http, "slot");
        var inFlight = nodes.Track(route.NodeId);
        var compute = new RelayCompute(occupancy.Enter(node.BaseUrl!), ReportsCompute);

        // The relay's one idle timer: for the engine's headers, then (a relayed answer) between the parts of its answer.
        var idleTimer = CancellationTokenSource.CreateLinkedTokenSource(request.Aborted);
        try
        {
            // Connected before the execution counts as started: a node that cannot be reached has done nothing, so the
            // pipeline may send the request to another replica the policy allows.
            var usageOnEveryEvent = stream && request.Work is GenerationWorkload && AsksUsageOnEveryEvent(route);
            var url = proxy.EngineUrl(node.BaseUrl!, path);
            var response = relayed is not null
                ? await proxy.OpenAtAsync(url, UpstreamKey(node), relayed.Write(model.Upstream, usageOnEveryEvent), request.Aborted, HttpClientName, RelayHeaders(request), idleTimer, request.RelaySent)
                : await proxy.OpenAtAsync(url, UpstreamKey(node), body!, model.Upstream, request.Aborted, HttpClientName, RelayHeaders(request), usageOnEveryEvent, idleTimer, request.RelaySent);
            Observability.FirstTokenMarks.Mark(request.Http, "headers");
            if (response.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable && FailsOverWhenUnavailable)
            {
                response.Dispose();
                throw new UpstreamUnreachableException(new HttpRequestException("the engine answered 503 (unavailable: loading, or its queue is full)"));
            }

            if (response.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable && SaysNotStarted(response))
            {
                // A cluster node's governed refusal of work it never handed to an engine (the model not loaded there now,
                // its queue full): routed around like a node that cannot be reached, and the request routed again; its
                // answer is the client's if no failover is left.
                OpenAIException answer;
                using (response)
                {
                    answer = await UpstreamErrors.ToOpenAIAsync(response, request.Aborted);
                }

                throw new NodeUnreachableException(route.NodeId, answer);
            }

            var answered = EngineAnswered(route);
            answered?.Invoke();
            if (request.Work is EmbeddingWorkload)
            {
                idleTimer.Dispose(); // the answer is read with a timer of its own
                return new UpstreamEmbeddings(proxy, request, response, compute, slot, inFlight);
            }

            // A relaying gateway that asked gets the engine's count on every event (it bills the prompt if its client
            // leaves first); a node's answer saying its events carry it is read here, on the gateway.
            var passesUsageSoFar = usageOnEveryEvent && request.Caller.TenantId == ClusterRelay.RelayTenant && RelayUsageSoFar.Asked(request.Http);
            if (passesUsageSoFar)
            {
                RelayUsageSoFar.Confirm(request.Http);
            }

            usageOnEveryEvent |= stream && compute.FromNode && RelayUsageSoFar.Given(response);
            // The route's slot and the node's in-flight count are the engine's: given back once it has answered (both
            // are given back once only, whichever comes first, this or the request's end).
            return new UpstreamRelay(proxy, request, response, stream, clientWantsUsage, compute, slot, inFlight, answered, usageOnEveryEvent, passesUsageSoFar, idleTimer,
                () =>
                {
                    slot.Dispose();
                    inFlight.Dispose();
                });
        }
        catch (NodeUnreachableException)
        {
            idleTimer.Dispose();
            compute.Dispose();
            inFlight.Dispose();
            slot.Dispose();
            nodes.MarkUnreachable(node, logged: false);
            throw;
        }
        catch (UpstreamUnreachableException ex)
        {
            idleTimer.Dispose();
            compute.Dispose();
            inFlight.Dispose();
            slot.Dispose();
            OnUnreachable(route);
            throw new NodeUnreachableException(route.NodeId, ex);
        }
        catch
        {
            idleTimer.Dispose();
            compute.Dispose();
            inFlight.Dispose();
            slot.Dispose();
            throw;
        }
    }
}

/// <summary>
/// A request relayed to an external engine or a remote node. <see cref="RespondAsync"/> writes OpenAI's wire format
/// as the engine sends it; an endpoint that translated its request (Responses) reads <see cref="Response"/> itself and
/// reports what it delivered in <see cref="Progress"/>, which bills an answer cut short.
/// </summary>
internal sealed class UpstreamRelay(
    UpstreamProxy proxy, GovernedRequest request, HttpResponseMessage response, bool stream, bool clientWantsUsage, RelayCompute compute, IDisposable slot, IDisposable inFlight,
    Action? engineAnswered = null, bool usageOnEveryEvent = false, bool passesUsageSoFar = false, CancellationTokenSource? idleTimer = null, Action? engineDone = null) : IExecution
{
    private readonly RelayProgress _progress = new()
    {
        Completion = request.Route!.Completion, EngineAnswered = engineAnswered, UsageOnEveryEvent = usageOnEveryEvent, PassesUsageSoFar = passesUsageSoFar,
        EngineDone = engineDone, ReadAheadBytes = engineDone is null ? 0 : proxy.ReadAheadBytes, ReadAheadBudget = engineDone is null ? null : proxy.ReadAheadBudget,
    };

    /// <summary>The engine's answer, headers read.</summary>
    public HttpResponseMessage Response => response;

    /// <summary>What has been delivered, and the usage the engine reported.</summary>
    public RelayProgress Progress => _progress;

    /// <summary>The proxy, for its failure reporting.</summary>
    public UpstreamProxy Proxy => proxy;

    /// <summary>Relays the answer; the books close before the client receives its last part.</summary>
    public async Task RespondAsync()
    {
        UpstreamResult result;
        try
        {
            result = await proxy.RelayAsync(request.Http, response, stream, clientWantsUsage, request.Route!.Model, _progress, idleTimer);
        }
        finally
        {
            // The body's id as the client received it (the engine's, or the node's): the outcome's entry states it, on
            // every exit (a client that left mid-stream had it from the first chunk; it was lost when the relay threw).
            request.Route!.ResponseId ??= _progress.ResponseId;
        }

        if (request.Execution is null)
        {
            // Stopped: this gateway's decision could not be committed (the stream ended with audit_unavailable before
            // any content); the request closes as refused, at no cost, when it is disposed.
            return;
        }

        await (result.Succeeded ? request.CompleteAsync() : request.FailAsync());
        await result.FinishAsync(request.Http);
    }

    public ValueTask<ExecutedUsage> FinalUsageAsync()
    {
        if (_progress.RefusedBeforeContent || (_progress.Reported is null && _progress.DeliveredChunks == 0 && !request.Aborted.IsCancellationRequested))
        {
            // The engine's error answer (as a stream's error event before any content too), or one that could not be
            // metered: the client received nothing, so nothing is billed, not even the engine's time (on a
            // compute-priced plan the tenant paid for every second it took).
            return ValueTask.FromResult(ExecutedUsage.None);
        }

        // Without the engine's usage (the client left first, or the engine stopped), the chunks relayed are the output,
        // and the prompt is what a cluster node measured; an engine's own prompt count arrives only with its usage.
        // A count so far (usage on every event, the stream ended first) is the engine's prompt, and at least the chunks relayed.
        var (prompt, completion, cached) = _progress.Reported is { } usage
            ? (usage.PromptTokens, _progress.UsageSoFar ? Math.Max(usage.CompletionTokens, _progress.DeliveredChunks) : usage.CompletionTokens, usage.CachedTokens)
            : (compute.FromNode ? RelayPromptTokens.From(response) ?? 0 : 0, _progress.DeliveredChunks, 0);
        return ValueTask.FromResult(new ExecutedUsage(prompt, completion, compute.Timing(prompt, completion, _progress, response), cached));
    }

    public ValueTask DisposeAsync()
    {
        idleTimer?.Dispose();
        compute.Dispose();
        response.Dispose();
        inFlight.Dispose();
        slot.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// The timing of a relayed request for its usage record: from the send to the end of the answer, the first content
/// chunk's time, and its compute seconds: the node's report where the engine is a cluster node that sent one, else the
/// request's share of the engine's busy time measured here.
/// </summary>
internal sealed class RelayCompute(EngineOccupancy.Stay stay, bool reportsCompute) : IDisposable
{
    private readonly long _sent = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>Whether the engine is a cluster node, whose reports (compute seconds, prompt tokens) are read.</summary>
    public bool FromNode => reportsCompute;

    public GenerationResult Timing(int promptTokens, int completionTokens, RelayProgress progress, HttpResponseMessage response)
    {
        var share = stay.Leave();
        var reported = reportsCompute ? progress.ReportedComputeSeconds ?? RelayComputeReport.FromHeaders(response) : null;
        return new GenerationResult
        {
            FinishReason = progress.Reported is null || progress.UsageSoFar ? FinishReason.Cancelled : FinishReason.Stop,
            PromptTokens = promptTokens,
            CompletionTokens = completionTokens,
            CachedPromptTokens = progress.Reported?.CachedTokens ?? 0,
            TimeToFirstToken = progress.FirstDeliveredAt is > 0 and var first ? System.Diagnostics.Stopwatch.GetElapsedTime(_sent, first) : null,
            Duration = System.Diagnostics.Stopwatch.GetElapsedTime(_sent),
            ComputeSeconds = reported is { } seconds ? (double)seconds : share,
        };
    }

    public void Dispose() => stay.Dispose();
}

/// <summary>
/// The route's node could not be reached before any work was sent: the pipeline may route the request again, to a
/// replica the policy allows, without that node.
/// </summary>
internal sealed class NodeUnreachableException : Exception
{
    public NodeUnreachableException(string nodeId, Exception inner)
        : base($"Node {nodeId} could not be reached.", inner) => NodeId = nodeId;

    /// <summary>The node answered, saying it did not start the request (<see cref="RelayNotStarted"/>): its answer.</summary>
    public NodeUnreachableException(string nodeId, OpenAIException answer)
        : base($"Node {nodeId} did not start the request ({answer.Code}).", answer)
    {
        NodeId = nodeId;
        NodeAnswer = answer;
    }

    public string NodeId { get; }

    /// <summary>
    /// The node's own refusal when it answered that it did not start the request: what the client is told when no
    /// failover is left (as before failing over, the node's status, code and Retry-After). Null: not reached.
    /// </summary>
    public OpenAIException? NodeAnswer { get; }

    /// <summary>What failed, for the operator's log.</summary>
    public string Reason => InnerException is UpstreamUnreachableException unreachable ? unreachable.Reason : InnerException!.Message;
}
