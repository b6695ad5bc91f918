using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Models;
using Sovereign.Gateway.OpenAI;
using Sovereign.Inference.Engine;
using Sovereign.Languages;
using Sovereign.Residency.Audit;
using Sovereign.Residency.Jurisdictions;
using Sovereign.Residency.Policies;

namespace Sovereign.Gateway.Routing;

/// <summary>Where one request will run, decided and audited before any work starts.</summary>
public sealed class RoutedRequest
{
    internal RoutedRequest(string requestId, Caller caller, string model, string nodeId, string jurisdiction, ServedModel? local, NodeView? externalNode, NodeModel? externalModel)
    {
        RequestId = requestId;
        Caller = caller;
        Model = model;
        NodeId = nodeId;
        Jurisdiction = jurisdiction;
        Local = local;
        ExternalNode = externalNode;
        ExternalModel = externalModel;
    }

    /// <summary>The request's id; it is also its audit id.</summary>
    public string RequestId { get; }

    /// <summary>Who asked.</summary>
    public Caller Caller { get; }

    /// <summary>The model id the client named.</summary>
    public string Model { get; }

    /// <summary>The node that processes it.</summary>
    public string NodeId { get; }

    /// <summary>That node's jurisdiction.</summary>
    public string Jurisdiction { get; }

    /// <summary>The local model, when this process runs it.</summary>
    public ServedModel? Local { get; }

    /// <summary>The external node, when the request is proxied.</summary>
    public NodeView? ExternalNode { get; }

    /// <summary>The model on the external node.</summary>
    public NodeModel? ExternalModel { get; }

    /// <summary>
    /// Set when an engine this node fronts runs it (<c>Sovereign:Engines</c>): then <see cref="ExternalNode"/> is this
    /// node with the engine's address, and the work is relayed there.
    /// </summary>
    public FrontedModel? Fronted { get; init; }

    /// <summary>When the request arrived (its usage record's timestamp).</summary>
    public DateTimeOffset ArrivedAt { get; set; } = DateTimeOffset.UtcNow;

    /// <summary>The request's language, once detected.</summary>
    public string? Language { get; set; }

    /// <summary>The detector's confidence in <see cref="Language"/> (0..1), once detected.</summary>
    public double? LanguageConfidence { get; set; }

    /// <summary>The close group of <see cref="Language"/> when the detector did not decide the member (<c>hbs</c>,
    /// <c>msa</c>), once detected; recorded in the audit entry as <c>language_group</c>.</summary>
    public string? LanguageGroup { get; set; }

    /// <summary>For an alias: which alias, and why it resolved to <see cref="Model"/>.</summary>
    public RouteChoice? AliasChoice { get; init; }

    /// <summary>The alias the client asked for, if any.</summary>
    public string? Alias { get; init; }

    /// <summary>The GenAI operation (<c>chat</c>, <c>text_completion</c>, <c>embeddings</c>), once the pipeline knows the endpoint.</summary>
    public string? Operation { get; set; }

    /// <summary>The hash of the prompt's leading text (<see cref="PrefixAffinity"/>), when long enough to matter.</summary>
    public ulong? PrefixKey { get; set; }

    /// <summary>Why the request left this route for another (a failover's decision says it); null: its node could not be reached.</summary>
    internal string? LeftBecause { get; set; }

    /// <summary>The serving node's pool and device class (its price and reservations), once the pipeline placed it.</summary>
    public Sovereign.Metering.Pricing.Placement? Placement { get; set; }

    /// <summary>
    /// The commit of the allowed decision's audit entry. No work may be sent anywhere before it completes (the
    /// evidence comes first); the pipeline overlaps it with measuring and admission instead of waiting at once.
    /// </summary>
    internal Task DecisionRecorded { get; set; } = Task.CompletedTask;

    /// <summary>
    /// The allowed decision's entry not yet appended: a key the rate limit refused within the interval is admitted
    /// first (<see cref="Metering.RateLimitRefusals"/>). Appended by <see cref="InferenceRouter.RecordPendingDecision"/>
    /// unless the rate limit refuses the request again, which is then counted instead.
    /// </summary>
    internal AuditRecord? PendingDecision;

    /// <summary>Set when the answer's content was stored (Responses' <c>store</c>): the completion's audit entry says so.</summary>
    internal OpenAI.StoredContentNote? StoredContent { get; set; }

    /// <summary>The request's text, turn by turn: the language tax's waiver measures the share of it in the request's language.</summary>
    internal PromptText? Prompt { get; set; }

    /// <summary>
    /// The completion's letters as delivered (every choice), gathered when the caller's plan may waive the language
    /// tax: the completion's tokens are billed at the completion's own mix of letters, not the prompt's.
    /// </summary>
    internal LetterSample? Completion { get; set; }

    /// <summary>Set when the request was billed per character-equivalent: the basis, which its completion's audit entry gives.</summary>
    internal Sovereign.Metering.Pricing.CharacterEquivalentBasis? CharacterEquivalent { get; set; }

    /// <summary>The stored response whose conversation this request sent to the model (<c>previous_response_id</c>): the completion's audit entry names it.</summary>
    internal string? ContinuedFrom { get; set; }

    /// <summary>What its usage record bills, set before the outcome's entry is written: the entry states it, so the ledger can be checked against the chain.</summary>
    internal (decimal Amount, string Currency)? Billed { get; set; }

    /// <summary>
    /// The <c>id</c> of the answer's body (<c>chatcmpl-...</c>, <c>cmpl-...</c>, <c>resp_...</c>), once the endpoint
    /// chose it or the engine that ran it sent it: the outcome's entry states it as <c>response_id</c>, so an auditor
    /// handed a client's response finds its entry (the body is what clients keep; the <c>x-sovereign-audit-id</c>
    /// header is often dropped).
    /// </summary>
    internal string? ResponseId { get; set; }

    /// <summary>The outcome's entry once committed (<see cref="InferenceRouter.AuditEntryHeader"/> names it on an answer not yet started).</summary>
    internal AuditEntry? OutcomeEntry { get; set; }
}

/// <summary>
/// The <c>id</c> an endpoint gives its answer's body, chosen before the residency decision
/// (<see cref="InferenceRouter.AnswerIdKey"/>): <paramref name="EvenWhenRelayed"/> where the body is this gateway's
/// wherever the work runs (Responses translates a relay's chat answer), otherwise only when the work runs on this
/// process's own engine (a relay passes on the engine's or node's id, unknown until its first chunk).
/// </summary>
internal sealed record AnswerId(string Id, bool EvenWhenRelayed);

/// <summary>A model as /v1/models lists it.</summary>
public sealed record ServedModelCard(string Id, long Created, string OwnedBy, string? License, string? Origin, bool ExternalOnly);

/// <summary>
/// The residency gate of every inference request: authenticates the caller, gathers the model's replicas (this
/// process's engine and registered external nodes), asks the pure <see cref="RoutingDecider"/>, records the decision
/// in the audit log, and either refuses with the rule's code or states on the response where the request runs.
/// </summary>
public sealed class InferenceRouter(
    CallerAuthenticator authenticator,
    ModelCatalog catalog,
    FrontedEngines engines,
    NodeDirectory nodes,
    AuditLog audit,
    JurisdictionCatalog jurisdictions,
    Lazy<Metering.RequestMetering> metering,
    Pipeline.RouteGates gates,
    PrefixAffinity affinity,
    IOptions<SovereignOptions> options,
    ControlPlane.GatewayInstance instance)
{
    /// <summary>Response header: the jurisdiction that processed the request.</summary>
    public const string JurisdictionHeader = "x-sovereign-jurisdiction";

    /// <summary>Response header: the node that processed the request.</summary>
    public const string NodeHeader = "x-sovereign-node";

    /// <summary>Response header: the request's audit id.</summary>
    public const string AuditIdHeader = "x-sovereign-audit-id";

    /// <summary>
    /// Response header: the entry that states how the request ended, as <c>[CHAIN:]SEQUENCE:HASH</c> (its member chain,
    /// when it has one; the sequence; its 64-digit hash): the outcome of an answer whose headers leave after its books
    /// close (every answer but a stream), the refused decision of a refusal. Unsigned, like the other headers; but its
    /// hash commits to the entry and, through <c>previousHash</c>, to the whole chain before it, so a client that keeps it
    /// holds what a later export must show at that sequence (<c>tools/audit-verify.mjs --responses</c>, <c>audit_entry</c>):
    /// a log rebuilt afterwards cannot match it.
    /// </summary>
    public const string AuditEntryHeader = "x-sovereign-audit-entry";

    /// <summary>
    /// Request header: <c>comment</c> asks a stream to name its outcome entry as the event-stream comment
    /// <c>: x-sovereign-audit-entry [CHAIN:]SEQUENCE:HASH</c> before its last event (a stream's headers leave before its
    /// outcome is known). Asked for, not sent to every client: OpenAI's streams carry no comments, and a client that
    /// reads every event as <c>data:</c> (many hand-written ones do) would stumble on one.
    /// </summary>
    public const string StreamAuditEntryHeader = "x-sovereign-stream-audit-entry";

    /// <summary>Whether the request asks its stream to name its outcome entry (<see cref="StreamAuditEntryHeader"/>: <c>comment</c>).</summary>
    internal static bool AsksStreamAuditEntry(HttpRequest request) =>
        request.Headers[StreamAuditEntryHeader] is [{ } value] && string.Equals(value.Trim(), "comment", StringComparison.OrdinalIgnoreCase);

    /// <summary>The <see cref="AuditEntryHeader"/> value of <paramref name="entry"/>.</summary>
    internal static string AuditEntryValue(AuditEntry entry) => entry.Chain is { } chain
        ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{chain}:{entry.Sequence}:{entry.Hash}")
        : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{entry.Sequence}:{entry.Hash}");

    /// <summary>Jurisdiction code for "not declared": ISO's user-assigned ZZ, which no policy can allow.</summary>
    public const string Undeclared = "ZZ";

    /// <summary>This process's jurisdiction as decisions and audit entries name it (<see cref="Undeclared"/> when none is set).</summary>
    private string Here => string.IsNullOrWhiteSpace(options.Value.Jurisdiction) ? Undeclared : options.Value.Jurisdiction.ToUpperInvariant();

    private static readonly IReadOnlyList<string> AnonymousReasons = ["anonymous: served by the local node only"];

    // Per registry snapshot's replica list of a model: its index and what does not change until the next snapshot.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<object, SnapshotReplicas> _snapshots = new();

    // Made once: a lambda that reads this router's fields is a new delegate at every call (every routed request).
    private System.Runtime.CompilerServices.ConditionalWeakTable<object, SnapshotReplicas>.CreateValueCallback? _newSnapshot;

    /// <summary>Who is calling; throws 401/403 before the body is even read.</summary>
    public Task<Caller> AuthenticateAsync(HttpContext context) => authenticator.AuthenticateAsync(context);

    /// <summary>As <see cref="AuthenticateAsync"/>, for work that admission meters (<see cref="CallerAuthenticator.AuthenticateForAdmissionAsync"/>).</summary>
    public Task<Caller> AuthenticateForAdmissionAsync(HttpContext context) => authenticator.AuthenticateForAdmissionAsync(context);

    /// <summary>
    /// For work on the caller's text that this gateway does itself, with no model to route (language detection):
    /// a tenant whose policy does not allow this gateway's jurisdiction is refused as a routed request is, before the
    /// text is read. Detection used to run here for any tenant, processing content pinned elsewhere.
    /// </summary>
    public void RequireContentAllowedHere(Caller caller)
    {
        if (caller.IsAnonymous || caller.Policy is not { } policy)
        {
            return;
        }

        var allowed = jurisdictions.ResolveMany(policy.AllowedJurisdictions, out _);
        if (!allowed.Contains(Here))
        {
            throw new OpenAIException(StatusCodes.Status403Forbidden,
                $"Refused by allowed_jurisdictions: this gateway is in {Here}, which is not in the allowed {ResidencyPolicyValidator.Format(allowed)}.",
                "permission_error", null, RoutingCodes.ResidencyViolation);
        }
    }

    /// <summary>The models this caller may see: those some replica could serve under its policy.</summary>
    public async Task<IReadOnlyList<ServedModelCard>> VisibleModelsAsync(Caller caller)
    {
        var allNodes = await nodes.GetNodesAsync();
        // Every model is owned by the operator as tenants know it (Sovereign:ModelOwner): a node's or an external
        // engine's id is the operator's internal layout (it named "b-th-engine", the engine's registry id).
        var owner = options.Value.ModelOwner;
        var cards = catalog.All.Select(m => new ServedModelCard(m.Id, m.Created, owner, m.Model?.Options.License, m.Model?.Options.Origin, false)).ToList();
        cards.AddRange(engines.All.Select(m => new ServedModelCard(m.Id, engines.Created, owner, m.Model.License, m.Model.Origin, false)));
        foreach (var node in allNodes.Where(n => n.Kind == nameof(NodeKind.External) || (n.Id != options.Value.NodeId && NodeDirectory.IsClusterNode(n))))
        {
            foreach (var model in node.Models.Where(m => cards.All(c => c.Id != m.Id)))
            {
                cards.Add(new ServedModelCard(model.Id, node.UpdatedAt / 1000, owner, model.License, model.Origin, !NodeDirectory.IsClusterNode(node)));
            }
        }

        if (caller.Policy is null)
        {
            return cards.Where(c => !c.ExternalOnly).ToList();
        }

        // A model is visible when the policy would let it run somewhere it is served: by id, licence and origin, and
        // in the jurisdiction of this node, of a cluster node or of an external node serving it (capacity does not
        // matter here). Not this node's jurisdiction for a model only cluster nodes serve: a TH gateway would show a
        // TH-only tenant a model served only in SG, and `auto` would choose it, to be refused by residency.
        var policy = caller.Policy;
        var settings = options.Value;
        var here = allNodes.FirstOrDefault(n => n.Id == settings.NodeId && n.Kind == nameof(NodeKind.Local))?.Jurisdiction
            ?? Here;
        return cards.Select(c =>
        {
            var probes = new List<ModelReplica>();
            if (catalog.TryGet(c.Id, out _) || engines.TryGet(c.Id, out _))
            {
                probes.Add(new ModelReplica("probe-local", here, NodeKind.Local, true, 0, 1));
            }

            probes.AddRange(allNodes.Where(n => n.Id != settings.NodeId && n.Models.Any(m => m.Id == c.Id)
                    && (n.Kind == nameof(NodeKind.External) || NodeDirectory.IsClusterNode(n)))
                .Select(n => new ModelReplica(n.Id, n.Jurisdiction, n.Kind == nameof(NodeKind.External) ? NodeKind.External : NodeKind.Local, true, 0, 1)));
            var decision = RoutingDecider.Decide(new RoutingRequest(here, policy, new ModelFacts(c.Id, c.License, c.Origin), probes) { Catalog = jurisdictions });

            return decision.Allowed ? c : null;
        }).OfType<ServedModelCard>().ToList();
    }

    /// <summary>Decides and audits where an authenticated request runs; throws the OpenAI error to answer with when refused.</summary>
    public async Task<RoutedRequest> RouteAsync(HttpContext context, Caller caller, string? model, ModelKind kind, string? alias = null, RouteChoice? aliasChoice = null, ulong? prefixKey = null)
    {
        var routed = await DecideAsync(context, caller, model, kind, alias, aliasChoice, prefixKey);
        await routed.DecisionRecorded;
        return routed;
    }

    /// <summary>
    /// Decides where an authenticated request runs, as <see cref="RouteAsync"/>, but returns while the allowed
    /// decision's audit entry is still committing: the caller must await <see cref="RoutedRequest.DecisionRecorded"/>
    /// before it sends any work. A refusal is audited before it is thrown.
    /// </summary>
    internal Task<RoutedRequest> DecideAsync(HttpContext context, Caller caller, string? model, ModelKind kind, string? alias = null, RouteChoice? aliasChoice = null, ulong? prefixKey = null) =>
        RouteTracedAsync(context, caller, model, kind, alias, aliasChoice, null, prefixKey);

    /// <summary>
    /// Decides again, under the same request id and policy, for a request whose node could not be reached before any
    /// work was sent, or answered that it had not started it (that node is now routed around). Both decisions are in the audit log; a refusal is thrown as
    /// usual (no compliant node left: 503), and the caller's accounting records it.
    /// Like <see cref="DecideAsync"/>, the new decision's audit entry may still be committing when this returns.
    /// </summary>
    /// <param name="why">Why the request left <paramref name="previous"/> (a node that answered it did not start it); null: it could not be reached.</param>
    public Task<RoutedRequest> FailoverAsync(HttpContext context, RoutedRequest previous, ModelKind kind, string? why = null)
    {
        previous.LeftBecause = why;
        return RouteTracedAsync(context, previous.Caller, previous.Model, kind, previous.Alias, previous.AliasChoice, previous, previous.PrefixKey);
    }

    private async Task<RoutedRequest> RouteTracedAsync(HttpContext context, Caller caller, string? model, ModelKind kind, string? alias, RouteChoice? aliasChoice, RoutedRequest? failoverOf, ulong? prefixKey)
    {
        // A span per decision: ids, model, place and outcome only; never content.
        using var activity = Observability.GatewayTelemetry.Source.StartActivity(Observability.GatewayTelemetry.Route);
        activity?.SetTag("sovereign.tenant", caller.TenantId);
        // The model the client asked for, even one nobody serves: every character is the client's, so it is at most a
        // model id's length and shown escaped (a prompt pasted into the field went whole into the tracing backend).
        activity?.SetTag("gen_ai.request.model", model is null ? null : Residency.DisplayText.Shortened(model, ControlPlane.ResourceIds.MaxOtherLength));
        try
        {
            var routed = await RouteCoreAsync(context, caller, model, kind, alias, aliasChoice, failoverOf, prefixKey);
            activity?.SetTag("sovereign.node", routed.NodeId);
            activity?.SetTag("sovereign.jurisdiction", routed.Jurisdiction);
            activity?.SetTag("sovereign.request_id", routed.RequestId);
            return routed;
        }
        catch (OpenAIException ex)
        {
            activity?.SetTag("sovereign.refusal", ex.Code);
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, ex.Code);
            throw;
        }
    }

    private async Task<RoutedRequest> RouteCoreAsync(HttpContext context, Caller caller, string? model, ModelKind kind, string? alias, RouteChoice? aliasChoice, RoutedRequest? failoverOf, ulong? prefixKey)
    {
        if (string.IsNullOrEmpty(model))
        {
            throw OpenAIException.BadRequest("You must provide a model parameter.", "model", "missing_required_parameter");
        }

        var settings = options.Value;
        var here = Here;
        var requestId = failoverOf?.RequestId ?? Hosting.RequestIds.Of(context);
        catalog.TryGet(model, out var local);
        var fronted = local is null && engines.TryGet(model, out var onEngine) ? onEngine : null;
        if ((local?.Kind ?? fronted?.Kind) is { } servedAs && servedAs != kind)
        {
            throw OpenAIException.BadRequest(
                $"The model '{model}' is {(servedAs == ModelKind.Embedding ? "an embedding" : "a chat")} model and cannot serve this endpoint.", "model", "model_not_supported");
        }

        var onThisNode = local is not null || fronted is not null;
        var external = await nodes.ExternalReplicasAsync(model, kind);
        IReadOnlyList<NodeView> unloaded = [];

        // A model this process could serve but has not loaded (unloaded by the operator, or still loading) exists: it is
        // a 503 with Retry-After, which SDKs retry, not a 404, which they do not. Asked of the catalog itself, not of
        // this node's row in the registry, which its load report updates up to a moment after the unload (each unload
        // answered 404 for about a second), and which a process without a jurisdiction never writes.
        var notLoadedHere = onThisNode || external.Count > 0 ? null : catalog.KindWhenNotLoaded(model);
        if (notLoadedHere is { } registeredAs && registeredAs != kind)
        {
            throw OpenAIException.BadRequest(
                $"The model '{model}' is {(registeredAs == ModelKind.Embedding ? "an embedding" : "a chat")} model and cannot serve this endpoint.", "model", "model_not_supported");
        }

        if (notLoadedHere is not null && caller.Policy is not null)
        {
            // Other nodes may hold it unloaded too, in jurisdictions this node's is not: the decision sees them all.
            unloaded = [.. (await nodes.NodesWithUnloadedAsync(model)).Where(n => n.Id != options.Value.NodeId)];
        }

        if (!onThisNode && notLoadedHere is null && external.Count == 0 && (caller.Policy is null || (unloaded = await nodes.NodesWithUnloadedAsync(model)).Count == 0))
        {
            // The snapshot may be up to a refresh old: before saying a model does not exist, read the registry itself,
            // so a model a node has just registered is never a 404 at a gateway that has not refreshed yet.
            nodes.Invalidate();
            external = await nodes.ExternalReplicasAsync(model, kind);
            if (!onThisNode && external.Count == 0 && (caller.Policy is null || (unloaded = await nodes.NodesWithUnloadedAsync(model)).Count == 0))
            {
                // Served elsewhere, but as the other kind: a chat model asked for embeddings (or the reverse) is the
                // client's mistake, as for a local model. Anonymous callers are never relayed, so for them it is absent.
                var other = kind == ModelKind.Embedding ? ModelKind.Chat : ModelKind.Embedding;
                if (caller.Policy is not null && (await nodes.ExternalReplicasAsync(model, other)).Count > 0)
                {
                    throw OpenAIException.BadRequest(
                        $"The model '{model}' is {(other == ModelKind.Embedding ? "an embedding" : "a chat")} model and cannot serve this endpoint.", "model", "model_not_supported");
                }

                throw OpenAIException.ModelNotFound(model);
            }
        }

        var localNode = await nodes.GetLocalNodeAsync();

        if (caller.Policy is null)
        {
            // Anonymous callers (a fresh install, or static keys) are served by this process only, never proxied.
            if (fronted is not null)
            {
                if (!engines.IsUp(fronted.Engine))
                {
                    throw FrontedEngineDown(model);
                }

                return Allow(context, OnFrontedEngine(requestId, caller, model, settings.NodeId, localNode?.Jurisdiction ?? here, fronted, localNode, alias, aliasChoice), here, AnonymousReasons);
            }

            if (local is null)
            {
                if (notLoadedHere is null)
                {
                    throw OpenAIException.ModelNotFound(model);
                }

                MarkNotLoaded(context);
                throw NotLoadedNow(model);
            }

            return Allow(context, new RoutedRequest(requestId, caller, model, settings.NodeId, here, local, null, null) { Alias = alias, AliasChoice = aliasChoice, Language = aliasChoice?.Language, LanguageConfidence = aliasChoice?.Confidence }, here, AnonymousReasons);
        }

        // The replicas outside the snapshot's index: this process's engine, and nodes that have the model unloaded.
        var replicas = new List<ModelReplica>(unloaded.Count + 1);
        var prefixNode = affinity.LastNodeOf(prefixKey);
        if (local is not null)
        {
            var batcher = local.Batcher;
            var capacity = batcher is null ? int.MaxValue : batcher.Model.Options.Parallel + batcher.Model.Options.MaxQueue;
            var load = batcher is null ? 0 : batcher.RunningCount + batcher.WaitingCount;
            var healthy = localNode is null || localNode.State == nameof(Residency.ControlPlane.NodeState.Active);
            replicas.Add(new ModelReplica(settings.NodeId, localNode?.Jurisdiction ?? here, NodeKind.Local, healthy, load, capacity)
                { HoldsPrefix = prefixNode == settings.NodeId, Draining = localNode?.State == nameof(Residency.ControlPlane.NodeState.Draining), Outage = healthy ? ReplicaOutage.Unknown : ReplicaOutage.Down });
        }

        if (fronted is not null)
        {
            // The engine beside this node is the operator's own (kind local), at this node's jurisdiction; it takes
            // nothing while it does not answer (a refused connection or a failed probe).
            var (running, waiting) = gates.For(settings.NodeId, fronted.Id, fronted.Model.Capacity).Occupancy;
            var active = localNode is null || localNode.State == nameof(Residency.ControlPlane.NodeState.Active);
            var healthy = active && engines.IsUp(fronted.Engine);
            replicas.Add(new ModelReplica(settings.NodeId, localNode?.Jurisdiction ?? here, NodeKind.Local, healthy, running + waiting, fronted.Model.Capacity + settings.Limits.RouteQueue)
            {
                HoldsPrefix = prefixNode == settings.NodeId,
                Draining = localNode?.State == nameof(Residency.ControlPlane.NodeState.Draining),
                Outage = healthy ? ReplicaOutage.Unknown : active ? ReplicaOutage.Unreachable : ReplicaOutage.Down,
            });
        }

        if (notLoadedHere is not null)
        {
            // Registered here but not loaded now: no capacity, so 503 where the policy allows this node.
            replicas.Add(new ModelReplica(settings.NodeId, localNode?.Jurisdiction ?? here, NodeKind.Local, false, 0, 0)
                { Draining = localNode?.State == nameof(Residency.ControlPlane.NodeState.Draining), Outage = ReplicaOutage.NotLoaded });
        }

        foreach (var node in unloaded)
        {
            // Registered there but not loaded: no capacity, so 503 (SDKs retry) where the policy allows the node.
            replicas.Add(new ModelReplica(node.Id, node.Jurisdiction, NodeKind.Local, false, 0, 0) { Draining = node.State == nameof(Residency.ControlPlane.NodeState.Draining), Outage = node.State == nameof(Residency.ControlPlane.NodeState.Active) ? ReplicaOutage.NotLoaded : ReplicaOutage.Down });
        }

        // The other nodes' replicas, prepared once per registry snapshot: the decider visits only those in the
        // jurisdictions and of the kinds the policy allows, and of those reads only the ones whose route holds a
        // request or whose node is marked unreachable (every one when that cannot be known; SnapshotReplicas).
        var snapshot = _snapshots.GetValue(external, _newSnapshot ??= list => new SnapshotReplicas((IReadOnlyList<(NodeView, NodeModel)>)list, gates, nodes.NodeStaleSeconds, options.Value.NodeId));
        var facts = FactsOf(model, local, fronted?.Model ?? (external.Count > 0 ? external[0].Model : null));
        var reader = snapshot.ReadAt(nodes, gates);
        var decision = RoutingDecider.Decide(
            new RoutingRequest(localNode?.Jurisdiction ?? here, caller.Policy, facts, replicas) { Catalog = jurisdictions },
            snapshot.Baseline,
            snapshot.Deviated(nodes, gates, reader.NowMs),
            reader,
            prefixNode);
        var lead = failoverOf is not null ? $"failover: {failoverOf.NodeId} {failoverOf.LeftBecause ?? "could not be reached"}"
            : caller.Provisional is { Redecided: true } ? "decided again: the tenant's policy or plan changed after this gateway's first decision"
            : null;
        if (!decision.Allowed)
        {
            if (local is null && fronted is null && external.Count == 0)
            {
                // Every replica is one that is not loaded (or its node is down): the operator's unload, not overload.
                MarkNotLoaded(context);
            }

            await RecordRefusalAsync(context, caller, model, requestId, here, decision.Code, Capped(lead, decision.Reasons), alias, aliasChoice,
                node: decision.SelectedReplica?.NodeId ?? "-", metered: failoverOf is null);
            throw new OpenAIException(
                decision.HttpStatus,
                decision.Message,
                decision.HttpStatus == StatusCodes.Status403Forbidden ? "permission_error" : "server_error",
                decision.Code == RoutingCodes.ModelNotAllowed ? "model" : null,
                decision.Code,
                decision.HttpStatus == StatusCodes.Status503ServiceUnavailable ? TimeSpan.FromSeconds(1) : null);
        }

        var selected = decision.SelectedReplica!;
        var routed = selected.Kind == NodeKind.Local && selected.NodeId == settings.NodeId && local is not null
            ? new RoutedRequest(requestId, caller, model, selected.NodeId, selected.Jurisdiction, local, null, null) { Alias = alias, AliasChoice = aliasChoice, Language = aliasChoice?.Language, LanguageConfidence = aliasChoice?.Confidence }
            : selected.Kind == NodeKind.Local && selected.NodeId == settings.NodeId && fronted is not null
            ? OnFrontedEngine(requestId, caller, model, selected.NodeId, selected.Jurisdiction, fronted, localNode, alias, aliasChoice)
            : snapshot.Index.ReplicasOn(selected.NodeId) is [var at, ..] && snapshot[at] is var target
                ? new RoutedRequest(requestId, caller, model, selected.NodeId, selected.Jurisdiction, null, target.Node, target.Model) { Alias = alias, AliasChoice = aliasChoice, Language = aliasChoice?.Language, LanguageConfidence = aliasChoice?.Confidence }
                : throw new InvalidOperationException("The decider chose an unknown replica.");
        routed.PrefixKey = prefixKey;
        affinity.Remember(prefixKey, routed.NodeId);
        if (failoverOf is not null)
        {
            routed.ArrivedAt = failoverOf.ArrivedAt;
            routed.Language = failoverOf.Language;
            routed.LanguageConfidence = failoverOf.LanguageConfidence;
            routed.LanguageGroup = failoverOf.LanguageGroup;
        }

        return Allow(context, routed, localNode?.Jurisdiction ?? here, Capped(lead, decision.Reasons));
    }

    /// <summary>
    /// Refuses an alias's request whose default model no node serves now (a 503 the client may retry, as for a model
    /// loaded nowhere), with the same evidence as the decider's refusals: the audit entry under the rule's code, with the
    /// alias and its reason, and the ledger's record at no cost. Returns the error to throw.
    /// </summary>
    internal async Task<OpenAIException> RefuseUnservedDefaultAsync(HttpContext context, Caller caller, string alias, RouteChoice choice, string fallback)
    {
        var requestId = Hosting.RequestIds.Of(context);
        await RecordRefusalAsync(context, caller, fallback, requestId, Here, RoutingCodes.NoCompliantCapacity,
            [$"{RoutingReasons.NoCompliantCapacity}: no node serves the alias's default model now"], alias, choice, node: "-", metered: true);
        return new OpenAIException(StatusCodes.Status503ServiceUnavailable,
            $"'{alias}' sends this request to its default model '{RequestReader.Shorten(fallback)}', which no node serves now; try again once it is loaded.",
            "server_error", "model", RoutingCodes.NoCompliantCapacity, TimeSpan.FromSeconds(1));
    }

    /// <summary>
    /// The evidence of a refused request, before the refusal is thrown: its audit entry (the rule's code and reasons)
    /// and, unless a failover's request already holds a reservation that accounts for it, the ledger's record at no cost.
    /// </summary>
    private async Task RecordRefusalAsync(
        HttpContext context, Caller caller, string model, string requestId, string here, string? code, IReadOnlyList<string> reasons, string? alias, RouteChoice? aliasChoice, string node, bool metered)
    {
        if (caller.Provisional is { Confirmed: false } provisional)
        {
            // Decided on this gateway's cached tenant: before the refusal becomes evidence, the tenant's grain confirms
            // the key and the policy. A key revoked or a tenant disabled since is answered as authentication answers it
            // (nothing recorded, as then); a policy changed since is decided again, on the tenant as it is now.
            Caller? fresh;
            try
            {
                fresh = await authenticator.ConfirmAsync(provisional);
            }
            catch (OpenAIException)
            {
                Hosting.KnownCallers.Forget(context);
                context.Response.Headers.Remove(AuditIdHeader);
                throw;
            }

            if (fresh is not null)
            {
                throw new CallerChangedException(fresh);
            }
        }

        var refused = await audit.AppendAsync(new AuditRecord
        {
            Kind = AuditKind.Inference,
            Actor = caller.KeyId ?? caller.TenantId,
            Action = AuditActions.InferenceRefused,
            Tenant = caller.TenantId,
            KeyId = caller.KeyId,
            Model = model,
            Gateway = options.Value.NodeId,
            Jurisdiction = here,
            Decision = AuditDecision.Refused,
            DecisionCode = code,
            Reasons = reasons,
            Details = AliasDetails(WithEndpoint(new Dictionary<string, string> { ["request_id"] = requestId }, context), alias, aliasChoice),
        }, CancellationToken.None); // The evidence does not depend on the client staying: its ledger record follows, gone or not.
        context.Response.Headers[AuditIdHeader] = requestId;
        context.Response.Headers[AuditEntryHeader] = AuditEntryValue(refused);
        // The refusal's answer says which language the alias saw, as the audit entry does.
        LanguageRouting.AddHeaders(context.Response.Headers, aliasChoice);
        if (metered)
        {
            await metering.Value.RecordRefusalAsync(caller, requestId, model, node, here, code);
        }
    }

    /// <summary>
    /// Records how an allowed request ended: tokens and outcome, never content; <paramref name="carried"/> (its usage
    /// record) commits in the same transaction.
    /// </summary>
    public Task CompleteAsync(RoutedRequest request, long promptTokens, long completionTokens, string outcome, Storage.ICarriedWrite? carried = null) =>
        CompleteAsync(request, promptTokens, completionTokens, outcome, null, carried);

    /// <summary>
    /// As <see cref="CompleteAsync(RoutedRequest, long, long, string, Storage.ICarriedWrite?)"/>, with the code of the rule
    /// that refused an allowed request before it ran (<c>refusal_code</c>, e.g. <c>rate_limit_exceeded</c>): the chain
    /// said only <c>rejected</c>, and the reason was in the usage ledger alone, which is not hash-chained.
    /// </summary>
    public async Task CompleteAsync(RoutedRequest request, long promptTokens, long completionTokens, string outcome, string? refusalCode, Storage.ICarriedWrite? carried = null) =>
        request.OutcomeEntry = await audit.AppendAsync(OutcomeRecord(request, promptTokens, completionTokens, outcome, refusalCode), carried);

    /// <summary>
    /// The outcome entry <see cref="CompleteAsync(RoutedRequest, long, long, string, string?, Storage.ICarriedWrite?)"/>
    /// appends, built now: an outcome the database could not record is kept as this (no content) until it can
    /// (<see cref="ControlPlane.DeferredOutcomes"/>).
    /// </summary>
    internal AuditRecord OutcomeRecord(RoutedRequest request, long promptTokens, long completionTokens, string outcome, string? refusalCode) =>
        new()
        {
            Kind = AuditKind.Inference,
            Actor = request.Caller.KeyId ?? request.Caller.TenantId,
            Action = AuditActions.InferenceCompleted,
            Tenant = request.Caller.TenantId,
            KeyId = request.Caller.KeyId,
            Model = request.Model,
            Gateway = options.Value.NodeId,
            Node = request.NodeId,
            Jurisdiction = request.Jurisdiction,
            Decision = AuditDecision.Allowed,
            PromptTokens = promptTokens,
            CompletionTokens = completionTokens,
            Details = WithResponseId(WithRefusalCode(BilledDetails(CharacterEquivalentDetails(StoredContentDetails(AliasDetails(LanguageRouting.WithGroup(LanguageRouting.WithConfidence(new Dictionary<string, string>(DetailsCapacity, StringComparer.Ordinal) { ["request_id"] = request.RequestId, ["outcome"] = outcome, ["language"] = request.Language ?? LanguageDetection.Undetermined }, request.LanguageConfidence), request.LanguageGroup), request.Alias, request.AliasChoice), request), request.CharacterEquivalent), request.Billed), refusalCode), request.ResponseId),

            // Made here for this record alone, and never changed after: its entry keeps it instead of a copy.
            HandsOverCollections = true,
        };

    /// <summary>
    /// Room for a routed request's usual details (request id, outcome, language and its confidence, cost, currency,
    /// endpoint, instance, the answer's id): the dictionary is made once at its size, not grown from three. Ordinal, as the audit entry's
    /// copy of it is (<c>AuditEntry.FromRecord</c>), so that copy takes its entries as they are, without hashing each again.
    /// </summary>
    private const int DetailsCapacity = 9;

    /// <summary>The detail naming the answer's body <c>id</c> in an outcome entry (<see cref="RoutedRequest.ResponseId"/>).</summary>
    internal const string ResponseIdDetail = "response_id";

    private static Dictionary<string, string> WithResponseId(Dictionary<string, string> details, string? responseId)
    {
        if (responseId is not null)
        {
            details[ResponseIdDetail] = responseId;
        }

        return details;
    }

    private static Dictionary<string, string> WithRefusalCode(Dictionary<string, string> details, string? refusalCode)
    {
        if (refusalCode is not null)
        {
            details["refusal_code"] = refusalCode;
        }

        return details;
    }

    /// <summary>
    /// The amount the usage record bills, as the ledger holds it (millionths): the chain then vouches for the money too,
    /// and <c>audit verify</c> finds a usage record changed after it was written (the ledger alone is not hash-chained).
    /// </summary>
    private static Dictionary<string, string> BilledDetails(Dictionary<string, string> details, (decimal Amount, string Currency)? billed)
    {
        if (billed is { } cost)
        {
            details[Sovereign.Metering.Ledger.LedgerAuditDetails.Cost] = cost.Amount.ToString("0.000000", System.Globalization.CultureInfo.InvariantCulture);
            details[Sovereign.Metering.Ledger.LedgerAuditDetails.Currency] = cost.Currency;
        }

        return details;
    }

    /// <summary>
    /// The basis of a bill per character-equivalent, for an auditor to recompute it: the share of the prompt's letters
    /// in the waived language (and how they were told apart), and the language's ratio to English on the model. The
    /// billed tokens are the counted ones divided by <c>1 + share × (ratio − 1)</c>, rounded up.
    /// </summary>
    private static Dictionary<string, string> CharacterEquivalentDetails(Dictionary<string, string> details, Sovereign.Metering.Pricing.CharacterEquivalentBasis? basis)
    {
        if (basis is not null)
        {
            var invariant = System.Globalization.CultureInfo.InvariantCulture;
            details["character_equivalent_share"] = basis.Share.ToString("0.0000", invariant);
            details["character_equivalent_letters"] = FormattableString.Invariant($"{basis.LanguageLetters}/{basis.PromptLetters}");
            // The completion is billed at its own letters' mix.
            details["character_equivalent_completion_letters"] = FormattableString.Invariant($"{basis.CompletionLanguageLetters}/{basis.CompletionLetters}");
            details["character_equivalent_basis"] = basis.Method;
            // As billed, every digit: the bill is recomputed from it.
            details["ratio_to_english"] = basis.RatioToEnglish.ToString("R", invariant);
        }

        return details;
    }

    /// <summary>
    /// The endpoint a decision was for, as routed (<c>/v1/chat/completions</c>, <c>/tokenize</c>): <c>/tokenize</c> and
    /// <c>/detokenize</c> are decided like inference but generate and bill nothing, so no outcome entry follows their
    /// decision, which looked like a request that never ended.
    /// </summary>
    private static Dictionary<string, string> WithEndpoint(Dictionary<string, string> details, HttpContext context)
    {
        if ((context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText is { } endpoint)
        {
            details["endpoint"] = endpoint;
        }

        return details;
    }

    /// <summary>That content was stored, which response and until when, and which stored response it continued; never the content.</summary>
    private static Dictionary<string, string> StoredContentDetails(Dictionary<string, string> details, RoutedRequest request)
    {
        if (request.ContinuedFrom is { } previous)
        {
            details["previous_response_id"] = previous;
        }

        if (request.StoredContent is { } stored)
        {
            details["content_stored"] = stored.ResponseId;
            details["content_expires_at"] = stored.ExpiresAt.ToString("O", System.Globalization.CultureInfo.InvariantCulture);

            // Where the content rests (the database's jurisdiction), beside where the request ran.
            details["content_jurisdiction"] = stored.Jurisdiction;
        }

        return details;
    }

    private RoutedRequest Allow(HttpContext context, RoutedRequest routed, string gatewayJurisdiction, IReadOnlyList<string> reasons)
    {
        var details = AliasDetails(WithEndpoint(new Dictionary<string, string>(DetailsCapacity, StringComparer.Ordinal) { ["request_id"] = routed.RequestId, ["gateway_jurisdiction"] = gatewayJurisdiction }, context), routed.Alias, routed.AliasChoice);
        if (instance.Id is { } process)
        {
            // A cluster gateway's process: once membership declares it dead, another gateway closes what it left open.
            details[AuditLog.InstanceDetail] = process;
        }

        if (context.Items.TryGetValue(AnswerIdKey, out var chosen) && chosen is AnswerId answer
            && (answer.EvenWhenRelayed || routed is { Local.Batcher: not null, ExternalNode: null, Fronted: null }))
        {
            // The body's id, chosen before the decision: the decision names it, so the outcome of a process that stops
            // before it records one (inference.interrupted, written by another from this entry) names it too.
            routed.ResponseId = answer.Id;
            details[ResponseIdDetail] = answer.Id;
        }

        if (routed.Caller.TenantId == ClusterRelay.RelayTenant
            && context.Request.Headers[ClusterRelay.RelayOfHeader] is [{ } relayOf] && ResourceIds.IsValid(relayOf, ResourceKind.Other))
        {
            // Only a relay (the cluster secret) names it: the tenant's request this node's work is part of.
            details[ClusterRelay.RelayOfDetail] = relayOf;
        }

        var record = new AuditRecord
        {
            Kind = AuditKind.Inference,
            Actor = routed.Caller.KeyId ?? routed.Caller.TenantId,
            Action = AuditActions.InferenceAllowed,
            Tenant = routed.Caller.TenantId,
            KeyId = routed.Caller.KeyId,
            Model = routed.Model,
            Gateway = options.Value.NodeId,
            Node = routed.NodeId,
            Jurisdiction = routed.Jurisdiction,
            Decision = AuditDecision.Allowed,
            Reasons = reasons,
            Details = details,

            // The details are this record's alone and never changed after; the reasons are the decision's, read only.
            HandsOverCollections = true,
        };

        if (context.Items.ContainsKey(DeferDecisionKey) || context.Items.ContainsKey(DecisionBesideAdmissionKey))
        {
            routed.PendingDecision = record;
        }
        else
        {
            StartAppend(routed, record, context.RequestAborted);
        }

        var headers = context.Response.Headers;
        headers[JurisdictionHeader] = routed.Jurisdiction;
        headers[NodeHeader] = routed.NodeId;
        headers[AuditIdHeader] = routed.RequestId;
        LanguageRouting.AddHeaders(headers, routed.AliasChoice);

        return routed;
    }

    /// <summary>
    /// Whether a relay to another server may leave while its decision's entry commits (the client still gets nothing
    /// before the entry is durable): where this process appends to its own chain (<see cref="AuditLogOptions.Chain"/>),
    /// so the node's commit, on the first token's path, does not queue behind this one under a shared chain's lock.
    /// </summary>
    internal bool RelaysWhileDecisionCommits => !audit.Scope.IsShared;

    /// <summary>
    /// Holds the <see cref="AnswerId"/> an endpoint chose for its answer's body before the decision: the decision's
    /// entry names it (<c>response_id</c>) where this gateway writes the body itself.
    /// </summary>
    internal static readonly object AnswerIdKey = new();

    /// <summary>Set on a request whose allowed decision is recorded after admission (its key was rate-limited just before).</summary>
    internal static readonly object DeferDecisionKey = new();

    /// <summary>
    /// Set on a request whose allowed decision the pipeline commits on its own thread once it has sent the admission
    /// call (<see cref="RecordPendingDecisionBesideAdmission"/>), instead of on a pool thread from the decision on.
    /// </summary>
    internal static readonly object DecisionBesideAdmissionKey = new();

    /// <summary>Starts appending a decision left pending (<see cref="RoutedRequest.PendingDecision"/>), once.</summary>
    internal void RecordPendingDecision(RoutedRequest routed, CancellationToken aborted)
    {
        if (Interlocked.Exchange(ref routed.PendingDecision, null) is { } record)
        {
            StartAppend(routed, record, aborted);
        }
    }

    /// <summary>
    /// Appends a decision left pending (<see cref="DecisionBesideAdmissionKey"/>), once, on the caller's thread: the
    /// caller has sent the admission call, so the tenant grain admits while this thread commits (or, for a relay to a
    /// cluster member on a member chain, the relay has just left: <c>GovernedRequest.RelaySent</c>). An uncontended append
    /// commits before this returns; behind another writer's commit it returns at once, its entry queued for that writer.
    /// Saves the pool thread's hand-off the commit otherwise waited for (on a loaded machine, a wake-up, then another
    /// back), and no work is sent anywhere before <see cref="RoutedRequest.DecisionRecorded"/> completes, as before.
    /// </summary>
    internal void RecordPendingDecisionBesideAdmission(RoutedRequest routed, CancellationToken aborted)
    {
        if (Interlocked.Exchange(ref routed.PendingDecision, null) is not { } record)
        {
            return;
        }

        try
        {
            routed.DecisionRecorded = Observability.GatewayTelemetry.Source.HasListeners() ? AppendTracedAsync(record, aborted) : audit.AppendAsync(record, aborted);
        }
        catch (Exception ex)
        {
            // A draft the log refuses (it throws before queueing it) fails the decision's task, as on the pool thread.
            routed.DecisionRecorded = Task.FromException(ex);
        }
    }

    private void StartAppend(RoutedRequest routed, AuditRecord record, CancellationToken aborted) =>
        // On the thread pool: an uncontended append commits inline, and this one should run beside admission.
        routed.DecisionRecorded = Observability.GatewayTelemetry.Source.HasListeners()
            ? Task.Run(() => AppendTracedAsync(record, aborted), CancellationToken.None)
            : Task.Run(() => audit.AppendAsync(record, aborted), CancellationToken.None);

    private async Task AppendTracedAsync(AuditRecord record, CancellationToken aborted)
    {
        using var span = Observability.GatewayTelemetry.Source.StartActivity(Observability.GatewayTelemetry.AuditDecision);
        await audit.AppendAsync(record, aborted);
    }

    /// <summary>
    /// Keeps an audit entry within the log's limit of reasons: with many replicas the decider explains each one, so
    /// the first ones and the last one (the selection or the refusal) are kept and the rest are counted. A failover's
    /// <paramref name="lead"/> goes first. Reads only the reasons it keeps (the decider writes them as they are read).
    /// </summary>
    private static IReadOnlyList<string> Capped(string? lead, IReadOnlyList<string> reasons, int limit = 64)
    {
        var offset = lead is null ? 0 : 1;
        var total = reasons.Count + offset;
        var kept = new List<string>(Math.Min(total, limit));
        if (lead is not null)
        {
            kept.Add(lead);
        }

        var head = total <= limit ? reasons.Count : limit - 2 - offset;
        for (var i = 0; i < head; i++)
        {
            kept.Add(reasons[i]);
        }

        if (total > limit)
        {
            kept.Add($"... {total - limit + 1} more reasons");
            kept.Add(reasons[^1]);
        }

        return kept;
    }

    /// <summary>Adds the alias, the language it detected and its reason to an audit entry's details.</summary>
    private static Dictionary<string, string> AliasDetails(Dictionary<string, string> details, string? alias, RouteChoice? choice)
    {
        if (alias is not null && choice is not null)
        {
            details["alias"] = alias;
            details["language"] = choice.Language;
            LanguageRouting.WithConfidence(details, choice.Confidence);
            LanguageRouting.WithGroup(details, choice.UndecidedGroup);
            details["route_reason"] = choice.Reason;
        }

        return details;
    }

    /// <summary>A route to an engine this node fronts: this node as the place, the engine's address as where the relay goes.</summary>
    private static RoutedRequest OnFrontedEngine(
        string requestId, Caller caller, string model, string nodeId, string jurisdiction, FrontedModel fronted, NodeView? localNode, string? alias, RouteChoice? aliasChoice)
    {
        // This node's registry row (when registered) carries its credential and report, so prices and pool reservations
        // see this node's pool and device class.
        var node = new NodeView(nodeId, jurisdiction, nameof(NodeKind.Local), fronted.BaseUrl, [fronted.Model], localNode?.State ?? nameof(Residency.ControlPlane.NodeState.Active),
            localNode?.Credential ?? "", fronted.ApiKey, localNode?.UpdatedAt ?? 0, localNode?.Load);
        return new RoutedRequest(requestId, caller, model, nodeId, jurisdiction, null, node, fronted.Model)
        {
            Fronted = fronted, Alias = alias, AliasChoice = aliasChoice, Language = aliasChoice?.Language, LanguageConfidence = aliasChoice?.Confidence,
        };
    }

    private static readonly object NotLoadedKey = new();

    private static void MarkNotLoaded(HttpContext context) => context.Items[NotLoadedKey] = NotLoadedKey;

    /// <summary>
    /// Whether the request was refused 503 because its model is registered but not loaded anywhere it may run: logged as
    /// a refusal (4001), not as shedding for want of capacity (4002 at Warning, a line per request after each unload).
    /// </summary>
    public static bool RefusedAsNotLoaded(HttpContext context) => context.Items.ContainsKey(NotLoadedKey);

    private static OpenAIException NotLoadedNow(string model) => new(
        StatusCodes.Status503ServiceUnavailable, $"The model '{RequestReader.Shorten(model)}' is not loaded on this server now; try again shortly.", "server_error", null,
        RoutingCodes.NoCompliantCapacity, TimeSpan.FromSeconds(1));

    private static OpenAIException FrontedEngineDown(string model) => new(
        StatusCodes.Status503ServiceUnavailable, $"The engine that serves '{model}' on this node does not answer now; try again shortly.", "server_error", null,
        RoutingCodes.NoCompliantCapacity, TimeSpan.FromSeconds(1));

    private static ModelFacts FactsOf(string model, ServedModel? local, NodeModel? external) =>
        local?.Model?.Options is { } o ? new ModelFacts(model, o.License, o.Origin)
        : external is not null ? new ModelFacts(model, external.License, external.Origin)
        : new ModelFacts(model);
}
