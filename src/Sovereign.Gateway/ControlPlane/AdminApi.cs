using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Routing;
using Sovereign.Metering.Pricing;
using Sovereign.Residency.Audit;
using Sovereign.Residency.Content;
using Sovereign.Residency.ControlPlane;
using Sovereign.Residency.Jurisdictions;
using Sovereign.Residency.Policies;
using Sovereign.Storage;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The operator's API (<c>/admin/v1</c>): tenants, keys, nodes, jurisdictions and the audit trail. It needs the
/// operator token, never a tenant key. Every change is validated (a 400 names the field) and audited.
/// </summary>
public static class AdminApi
{
    /// <summary>Maps /admin/v1 and returns the group.</summary>
    public static RouteGroupBuilder MapAdminApi(this IEndpointRouteBuilder endpoints)
    {
        var admin = endpoints.MapGroup("/admin/v1");

        // Every body here is read strictly (RequestReader.StrictBody): a field /admin/v1 does not know is a 400.
        admin.WithMetadata(RequestReader.StrictBody.Instance);
        admin.AddEndpointFilter(RequireOperator);
        admin.AddEndpointFilter(ResourceIds.ValidateRouteValues);
        admin.AddEndpointFilter(QueryParameters.Admin);
        admin.MapGet("/tenants", ListTenants).Takes("limit", "after");
        admin.MapPost("/tenants", CreateTenant);
        admin.MapGet("/tenants/{id}", GetTenant);
        admin.MapPatch("/tenants/{id}", UpdateTenant);
        admin.MapGet("/tenants/{id}/keys", ListKeys);
        admin.MapPost("/tenants/{id}/keys", CreateKey);
        admin.MapDelete("/tenants/{id}/keys/{key_id}", RevokeKey);
        admin.MapPost("/tenants/{id}/keys/{key_id}/rotate", RotateKey);
        admin.MapOperatorKeys();
        admin.MapGet("/nodes", ListNodes);
        admin.MapPost("/nodes", RegisterNode);
        admin.MapPut("/nodes/{id}/state", SetNodeState);
        admin.MapDelete("/nodes/{id}", DeleteNode);
        admin.MapGet("/cluster", ClusterStatusApi.GetAsync);
        admin.MapGet("/cluster/revocations", ListRevocations);
        admin.MapPost("/cluster/revocations", RevokeCertificate);
        admin.MapGet("/jurisdictions", ListJurisdictions);
        admin.MapGet("/models/{id}/languages", LanguageTaxReport);
        admin.MapGet("/models", ListModels);
        admin.MapPost("/models/{id}/load", LoadModel);
        admin.MapPost("/models/{id}/unload", UnloadModel);
        admin.MapGet("/audit", ReadAudit).Takes("tenant", "from", "to", "limit", "order", "after", "id");
        admin.MapPost("/audit/verify", VerifyAudit).Takes("max_uncovered_seconds");
        admin.MapPost("/audit/checkpoint", Checkpoint);
        admin.MapFallback((HttpContext context) =>
            throw (AllowedMethods.For(context) is { Count: > 0 } allowed
                ? AllowedMethods.NotAllowed(context, allowed)
                : new OpenAIException(StatusCodes.Status404NotFound, $"Unknown admin URL: {RequestReader.Shorten(context.Request.Method)} {context.Request.Path}.", "invalid_request_error", null, "unknown_url"))).AnyQuery();
        return admin;
    }

    private static async ValueTask<object?> RequireOperator(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        var (identified, refused) = await context.RequestServices.GetRequiredService<AdminToken>().AuthenticateAsync(AdminToken.Presented(context), context.RequestAborted);
        var credential = identified
            ?? throw refused ?? OpenAIException.Unauthorized("The admin API needs the operator token (Authorization: Bearer <admin token>); tenant keys are not accepted here.");

        // The audit entries of what it changes name the credential (operator, operator:NAME, operator:NAME/opk_...), never its secret.
        AdminToken.SetActor(context, credential.Actor);
        AdminToken.SetCredential(context, credential);
        KnownCallers.MarkKnown(context, "Operator token " + credential.Actor);
        return await next(invocation);
    }

    /// <summary>The most tenants one page of <c>GET /admin/v1/tenants</c> holds, and its size when no limit is asked.</summary>
    internal const int MaxTenantPage = 1_000;

    /// <summary>
    /// One page of the tenants by id, as OpenAI pages its lists: <c>limit</c> (1 to 1,000; default the most) and
    /// <c>after</c> (the previous page's <c>last_id</c>); <c>has_more</c> says whether another page follows and
    /// <c>total</c> how many tenants exist. It answered every tenant in one body: at 100,000 tenants a 31 MB answer,
    /// built whole in the server's memory, and the console's tenants page rendered all of them.
    /// </summary>
    private static async Task<IResult> ListTenants(HttpContext context, ControlPlaneStore store)
    {
        var query = context.Request.Query;
        var limit = ListPaging.Limit(query, MaxTenantPage, MaxTenantPage);
        var after = query["after"].ToString() is { Length: > 0 } cursor
            ? ResourceIds.IsValid(cursor, ResourceKind.Tenant)
                ? cursor
                : throw OpenAIException.BadRequest($"after must be a tenant id (the previous page's last_id); got '{RequestReader.Shorten(cursor)}'.", "after", "invalid_value")
            : null;
        var page = await store.ListTenantsPageAsync(after, limit + 1, context.RequestAborted);
        var tenants = page.Count > limit ? page.GetRange(0, limit) : page;
        return Json(new
        {
            @object = "list",
            data = tenants.Select(TenantJson),
            first_id = tenants.Count > 0 ? tenants[0].Id : null,
            last_id = tenants.Count > 0 ? tenants[^1].Id : null,
            has_more = page.Count > limit,
            total = await store.CountTenantsAsync(context.RequestAborted),
        });
    }

    private static async Task<IResult> GetTenant(string id, HttpContext context, IGrainFactory grains)
    {
        var tenant = await grains.GetGrain<ITenantGrain>(id).GetAsync() ?? throw NotFound("tenant", id);

        // For an edit of what is read here: sent back as If-Match, it is refused (412) once another change came between.
        EditVersions.SetETag(context, TenantVersions.Of(tenant));
        return Json(TenantJson(tenant));
    }

    private static async Task<IResult> CreateTenant(HttpContext context, IGrainFactory grains, JurisdictionCatalog catalog, AuditLog audit, CallerAuthenticator authenticator, PriceBookProvider prices)
    {
        var request = await RequestReader.ReadAsync<TenantCreateRequest>(context);
        var id = ResourceIds.RequireNewTenantId(request.Id);
        var policy = (request.Policy ?? throw OpenAIException.BadRequest("policy is required: at least allowed_jurisdictions.", "policy", "missing_required_parameter"))
            .ValidateTenantPolicy(catalog, "policy");
        var plan = await ExistingPlanAsync(request.Plan, prices, context.RequestAborted);
        var name = request.Name is null ? id : ResourceIds.RequireName(request.Name, "name");
        // Decided in the tenant's activation: two creations at once both found no tenant here and both wrote one.
        var tenant = await grains.GetGrain<ITenantGrain>(id).CreateAsync(name, policy.ToJson(), plan, request.Disabled ?? false)
            ?? throw new OpenAIException(StatusCodes.Status409Conflict, $"The tenant '{id}' already exists.", "invalid_request_error", "id", "tenant_exists");
        authenticator.TenantCreated();
        await AuditAdminAsync(context, audit, AuditActions.TenantCreate, id, new() { ["policy"] = tenant.PolicyJson, ["plan"] = plan });
        return Results.Json(TenantJson(tenant), OpenAIJson.Options, statusCode: StatusCodes.Status201Created);
    }

    private static async Task<IResult> UpdateTenant(string id, HttpContext context, IGrainFactory grains, JurisdictionCatalog catalog, AuditLog audit, ResponseStore responses, OpenAI.ResponsesStorage storage, PriceBookProvider prices, TimeProvider time)
    {
        var grain = grains.GetGrain<ITenantGrain>(id);
        _ = await grain.GetAsync() ?? throw NotFound("tenant", id);
        var ifVersion = EditVersions.IfMatch(context, "tenant");
        var request = await RequestReader.ReadAsync<TenantUpdateRequest>(context);
        if (request.Id is { } sentId && sentId != id)
        {
            throw OpenAIException.BadRequest($"id is '{RequestReader.Shorten(sentId)}' but this is tenant '{id}'; a tenant's id cannot be changed.", "id", "invalid_value");
        }

        var newPolicy = request.Policy?.ValidateTenantPolicy(catalog, "policy");
        var name = request.Name is null ? null : ResourceIds.RequireName(request.Name, "name");
        var plan = request.Plan is null ? null : await ExistingPlanAsync(request.Plan, prices, context.RequestAborted);
        // Only what the request names, merged in the tenant's activation: merged here, a change made meanwhile
        // (another operator disabling the tenant) was written back over with the value read before it. A policy is
        // replaced whole, so an edit of a policy read before sends If-Match: checked in the same turn as the write.
        var change = await grain.TryUpdateIfVersionAsync(ifVersion, name, newPolicy?.ToJson(), plan, request.Disabled);
        var update = change.Refusal switch
        {
            TenantChangeRefusal.None => change.Update!,
            TenantChangeRefusal.TenantNotFound => throw NotFound("tenant", id),
            TenantChangeRefusal.VersionChanged => throw EditVersions.Stale("tenant"),
            TenantChangeRefusal.BudgetCurrencyConflict => throw new OpenAIException(StatusCodes.Status409Conflict,
                BudgetCurrencyConflictException.MessageFor(id, change.BudgetCurrency, plan!, change.PlanCurrency), "invalid_request_error", "plan", "budget_currency_conflict"),
            _ => throw new OpenAIException(StatusCodes.Status409Conflict, $"The tenant was not changed ({change.Refusal}).", "invalid_request_error", null, "tenant_change_refused"),
        };

        var updated = update.After;
        if (update.After == update.Before)
        {
            // A PATCH that changes nothing (empty, or the tenant as it is) is answered with the tenant and not audited:
            // the log recorded a change that did not happen.
            EditVersions.SetETag(context, TenantVersions.Of(updated));
            return Json(TenantJson(updated));
        }

        var details = new Dictionary<string, string> { ["plan"] = updated.Plan, ["disabled"] = updated.Disabled ? "true" : "false" };
        // What each changed field was before (only those that changed): the entry stated only the values after, so an
        // auditor could not tell from it which plan a tenant was moved off, or whether it had been disabled.
        var before = update.Before;
        if (before.Plan != updated.Plan)
        {
            details["old_plan"] = before.Plan;
        }

        if (before.Disabled != updated.Disabled)
        {
            details["old_disabled"] = before.Disabled ? "true" : "false";
        }

        if (before.Name != updated.Name)
        {
            details["old_name"] = before.Name;
            details["name"] = updated.Name;
        }

        if (newPolicy is not null)
        {
            details["old_policy"] = update.Before.PolicyJson;
            details["policy"] = updated.PolicyJson;

            // A policy that no longer retains content keeps none, and one that no longer allows where this database is
            // keeps none there: what it stored before is deleted now, not at expiry.
            var policy = PolicyDocument.FromJson(updated.PolicyJson).ToPolicy();
            if (policy.Retention.Mode == Residency.Policies.RetentionMode.None || (storage.ContentHome is not null && !storage.AllowsContentHome(policy)))
            {
                details["stored_responses_deleted"] = (await responses.DeleteTenantAsync(id, context.RequestAborted)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (PolicyDocument.FromJson(update.Before.PolicyJson).ToPolicy().Retention is { Mode: Residency.Policies.RetentionMode.Store } was && was.Days > policy.Retention.Days)
            {
                // Fewer days keep nothing older: deleted now and the rest expiring sooner, not hidden from reads until
                // the old expiry (a policy lengthened again showed it back).
                details["stored_responses_deleted"] = (await responses.ShortenTenantAsync(id, policy.Retention.Days, time.GetUtcNow(), context.RequestAborted)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        await AuditAdminAsync(context, audit, newPolicy is null ? AuditActions.TenantUpdate : AuditActions.PolicyUpdate, id, details);
        EditVersions.SetETag(context, TenantVersions.Of(updated));
        return Json(TenantJson(updated));
    }

    private static async Task<IResult> ListKeys(string id, IGrainFactory grains)
    {
        var grain = grains.GetGrain<ITenantGrain>(id);
        _ = await grain.GetAsync() ?? throw NotFound("tenant", id);
        return Json(new { data = (await grain.ListKeysAsync()).Select(KeyJson) });
    }

    private static async Task<IResult> CreateKey(string id, HttpContext context, IGrainFactory grains, JurisdictionCatalog catalog, AuditLog audit, TimeProvider time)
    {
        var grain = grains.GetGrain<ITenantGrain>(id);
        var tenant = await grain.GetAsync() ?? throw NotFound("tenant", id);
        // No body is a key with the defaults (named "key", the tenant's whole policy): it was a 400 "body is empty".
        var request = await RequestReader.ReadOptionalAsync<KeyCreateRequest>(context);
        var narrowing = request.Policy?.RefuseInvisibleModelIds("policy").ValidateNarrowing(PolicyDocument.FromJson(tenant.PolicyJson).ToPolicy(), catalog, "policy");
        var name = request.Name is null ? "key" : ResourceIds.RequireName(request.Name, "name");
        // Stored to the millisecond, so the audit entry states exactly the instant the key stops working.
        var expiresAt = KeyExpiry(request, time.GetUtcNow()) is { } expiry ? DateTimeOffset.FromUnixTimeMilliseconds(expiry.ToUnixTimeMilliseconds()) : (DateTimeOffset?)null;

        var created = await grain.CreateKeyAsync(name, narrowing?.ToJson(), expiresAt?.ToUnixTimeMilliseconds());
        var details = new Dictionary<string, string> { ["key_id"] = created.Key.Id, ["policy"] = created.Key.PolicyJson ?? "" };
        if (expiresAt is { } expires)
        {
            details["expires_at"] = expires.ToString("O", System.Globalization.CultureInfo.InvariantCulture);
        }

        await AuditAdminAsync(context, audit, AuditActions.KeyCreate, id, details, created.Key.Id);
        return Results.Json(new { key = KeyJson(created.Key), secret = created.Secret }, OpenAIJson.Options, statusCode: StatusCodes.Status201Created);
    }

    /// <summary>
    /// Rotates a key with overlap: issues a new key with the old one's name and policy (the expiry the request gives, else
    /// none), and leaves the old one working until it is revoked, so clients move at their pace. Audited as
    /// <c>key.create</c> with <c>rotated_from</c>. A revoked key may be rotated too (its replacement after a leak).
    /// </summary>
    private static async Task<IResult> RotateKey(string id, [Microsoft.AspNetCore.Mvc.FromRoute(Name = "key_id")] string keyId, HttpContext context, IGrainFactory grains,
        JurisdictionCatalog catalog, AuditLog audit, TimeProvider time)
    {
        var grain = grains.GetGrain<ITenantGrain>(id);
        var tenant = await grain.GetAsync() ?? throw NotFound("tenant", id);
        var old = (await grain.ListKeysAsync()).FirstOrDefault(k => k.Id == keyId) ?? throw NotFound("key", keyId);
        var request = await RequestReader.ReadOptionalAsync<KeyCreateRequest>(context);
        if (request.Name is not null || request.Policy is not null)
        {
            throw OpenAIException.BadRequest("A rotation keeps the key's name and policy; issue a new key (POST .../keys) to change them.",
                request.Name is not null ? "name" : "policy", "invalid_value");
        }

        // The old key's narrowing must still fit the tenant's policy as it is now, or the new key would be refused at use.
        var narrowing = old.PolicyJson is null ? null
            : PolicyDocument.FromJson(old.PolicyJson).ValidateNarrowing(PolicyDocument.FromJson(tenant.PolicyJson).ToPolicy(), catalog, "policy");
        var expiresAt = KeyExpiry(request, time.GetUtcNow()) is { } expiry ? expiry.ToUnixTimeMilliseconds() : (long?)null;
        var created = await grain.CreateKeyAsync(old.Name, narrowing?.ToJson(), expiresAt);
        // Before the secret is answered, so the replacement is never usable without the old key's limits.
        var (carried, limitsGiven, limitsChange) = await CarryKeyLimitsAsync(grain, keyId, created.Key.Id);
        var details = new Dictionary<string, string> { ["key_id"] = created.Key.Id, ["policy"] = created.Key.PolicyJson ?? "", ["rotated_from"] = keyId };
        if (expiresAt is { } expires)
        {
            details["expires_at"] = DateTimeOffset.FromUnixTimeMilliseconds(expires).ToString("O", System.Globalization.CultureInfo.InvariantCulture);
        }

        if (carried is not null)
        {
            details["limits"] = JsonSerializer.Serialize(carried, OpenAIJson.Options);
        }

        await AuditAdminAsync(context, audit, AuditActions.KeyCreate, id, details, created.Key.Id);
        if (limitsChange is { } change)
        {
            // As every change of the limits, so an auditor reading limits.update entries sees the replacement's.
            var limitsDetails = new Dictionary<string, string>
            {
                ["request_id"] = RequestIds.Of(context),
                ["limits"] = JsonSerializer.Serialize(Metering.MeteringApi.LimitsJson(change.Limits), OpenAIJson.Options),
                ["rotated_from"] = keyId,
            };
            if (change.Previous is { } previous)
            {
                limitsDetails["old_limits"] = JsonSerializer.Serialize(Metering.MeteringApi.LimitsJson(previous), OpenAIJson.Options);
            }

            await audit.AppendAsync(new AuditRecord { Kind = AuditKind.Admin, Actor = AdminToken.ActorOf(context), Action = "limits.update", Tenant = id, Details = limitsDetails });
        }

        if (!limitsGiven)
        {
            // Issued without the old key's limits: revoked before its secret is ever shown, and both entries recorded.
            if ((await grain.RevokeKeyOnceAsync(created.Key.Id))?.Newly == true)
            {
                await AuditAdminAsync(context, audit, AuditActions.KeyRevoke, id, new() { ["key_id"] = created.Key.Id }, created.Key.Id);
            }

            throw new OpenAIException(StatusCodes.Status409Conflict,
                $"The key {keyId} has budgets or rate limits of its own, and they could not be given to its replacement (the tenant's limits kept changing, or were refused); the replacement was revoked unused. Try again.",
                "invalid_request_error", null, "limits_refused");
        }

        return Results.Json(new { key = KeyJson(created.Key), secret = created.Secret, rotated_from = keyId, limits = carried }, OpenAIJson.Options, statusCode: StatusCodes.Status201Created);
    }

    /// <summary>What a rotation gave the replacement key of the old key's own budgets and rate limits.</summary>
    internal sealed record CarriedKeyLimits(IReadOnlyList<CarriedBudget> Budgets, RateLimitSetting? RateLimit);

    /// <summary>One budget of a replacement key: a total budget at what the old key had left of it, day and month as they were.</summary>
    internal sealed record CarriedBudget(string Period, decimal Amount);

    /// <summary>
    /// Gives the replacement of <paramref name="oldKeyId"/> the old key's own budgets and rate limit; null when it had
    /// none. A rotation issued a key without them: budgets and rate limits name a key id, so the replacement of a key
    /// capped at 10 a month (LiteLLM's max_budget and rpm_limit per key, moved over) spent without a cap. A total budget
    /// goes on at what the old key has left of it (its settled and reserved spend counted; at least one millionth, so an
    /// exhausted one stays exhausted), a day or month budget at its amount. The limits are written only if no other change
    /// came since they were read, else read again; Given false when that keeps failing (the caller then revokes the new
    /// key and refuses the rotation, never answering with a key that has no limits).
    /// </summary>
    private static async Task<(CarriedKeyLimits? Carried, bool Given, (TenantLimits Limits, TenantLimits? Previous)? Change)> CarryKeyLimitsAsync(ITenantGrain grain, string oldKeyId, string newKeyId)
    {
        for (var attempt = 1; attempt <= 5; attempt++)
        {
            var limits = await grain.GetLimitsAsync();
            var budgets = limits.Budgets.Where(b => b.KeyId == oldKeyId).ToList();
            var rate = limits.RateLimits.FirstOrDefault(r => r.KeyId == oldKeyId);
            if (budgets.Count == 0 && rate is null)
            {
                return (null, true, null);
            }

            var status = await grain.GetBudgetsAsync();
            var carried = budgets.Select(b => new CarriedBudget(b.Period, string.Equals(b.Period, nameof(Sovereign.Metering.Budgets.BudgetPeriod.Total), StringComparison.OrdinalIgnoreCase)
                ? Math.Max(status.FirstOrDefault(s => s.KeyId == oldKeyId && string.Equals(s.Period, b.Period, StringComparison.OrdinalIgnoreCase))?.Remaining ?? b.Amount, LeastBudget)
                : b.Amount)).ToList();
            var replaced = new TenantLimits(
                [.. limits.Budgets, .. carried.Select(b => new BudgetSetting(newKeyId, b.Period, b.Amount))],
                rate is null ? limits.RateLimits : [.. limits.RateLimits, rate with { KeyId = newKeyId }],
                limits.Currency);
            var change = await grain.SetLimitsIfVersionAsync(replaced, TenantVersions.Of(limits));
            if (change.Refusal == TenantChangeRefusal.None)
            {
                return (new CarriedKeyLimits(carried, rate is null ? null : rate with { KeyId = newKeyId }), true, (replaced, change.PreviousLimits));
            }

            if (change.Refusal != TenantChangeRefusal.VersionChanged)
            {
                break;
            }
        }

        return (null, false, null);
    }

    /// <summary>The least budget there is (a millionth): a replacement of a key that spent its total budget gets this, not a fresh one.</summary>
    private const decimal LeastBudget = 0.000001m;

    // The route value is key_id: an error's param names it, and params are snake_case like the body's fields (it was keyId).
    private static async Task<IResult> RevokeKey(string id, [Microsoft.AspNetCore.Mvc.FromRoute(Name = "key_id")] string keyId, HttpContext context, IGrainFactory grains, AuditLog audit)
    {
        var grain = grains.GetGrain<ITenantGrain>(id);
        _ = await grain.GetAsync() ?? throw NotFound("tenant", id);
        var revocation = await grain.RevokeKeyOnceAsync(keyId) ?? throw NotFound("key", keyId);
        if (revocation.Newly)
        {
            // A retried revoke changes nothing: a second key.revoke entry would date the revocation when it did not happen.
            await AuditAdminAsync(context, audit, AuditActions.KeyRevoke, id, new() { ["key_id"] = keyId }, keyId);
        }

        return Json(new { id = keyId, revoked = true, revoked_at = revocation.RevokedAt });
    }

    private static async Task<IResult> ListNodes(NodeDirectory nodes, Orleans.Runtime.IClusterMembershipService membership)
    {
        await nodes.GetNodesAsync(); // the verified claims that place each node
        var members = membership.CurrentSnapshot.Members.Values;
        // A node whose credential does not verify is in no pool (as in the cluster status), and says why it gets nothing.
        return Json(new
        {
            data = (await nodes.Registry.GetAsync()).Nodes
                .Select(n => (Node: n, Health: nodes.HealthOf(n)))
                .Select(v => NodeJson(v.Node, nodes.InFlight(v.Node.Id), v.Health == NodeHealth.Untrusted ? null : nodes.PlacementOf(v.Node), v.Health,
                    Reporting(nodes, v.Node), MemberStatus(members, v.Node))),
        });
    }

    /// <summary>
    /// A cluster node's process as membership shows it (<c>active</c>, <c>dead</c>, ...; a restarted one by its live
    /// silo): null when membership does not list it or it is no cluster node. A killed node is dead here after
    /// <c>DeathSeconds</c>, whatever its last load report says.
    /// </summary>
    private static string? MemberStatus(IEnumerable<Orleans.Runtime.ClusterMember> members, NodeView node)
    {
        if (!NodeDirectory.IsClusterNode(node))
        {
            return null;
        }

        // Silos are named role/node-id (a node, or an all-in-one member).
        var statuses = members.Where(m => m.Name == $"node/{node.Id}" || m.Name == $"all/{node.Id}").Select(m => m.Status).ToList();
        return statuses.Count == 0 ? null
            : statuses.FirstOrDefault(s => s != Orleans.Runtime.SiloStatus.Dead, Orleans.Runtime.SiloStatus.Dead).ToString().ToLowerInvariant();
    }

    /// <summary>
    /// Whether a cluster node's last load report is recent (<c>NodeStaleSeconds</c>), whatever its state: its health
    /// says only "draining" once it is drained, so 'nodes drain --wait' could not tell a node finishing its work from
    /// one that had stopped (and waited out its whole timeout). Null for an engine that reports nothing.
    /// </summary>
    private static bool? Reporting(NodeDirectory nodes, NodeView node) => NodeDirectory.IsClusterNode(node) ? nodes.IsFresh(node, nodes.NowMs) : null;

    private static async Task<IResult> RegisterNode(
        HttpContext context, NodeDirectory nodes, JurisdictionCatalog catalog, OperatorSigningKey operatorKey, AuditLog audit, TimeProvider time, IOptions<SovereignOptions> options)
    {
        var request = await RequestReader.ReadAsync<NodeCreateRequest>(context);
        var id = ResourceIds.Require(request.Id, ResourceKind.Node, "id");

        // Registering an engine again under its id updates it; an id that is a Sovereign node (this server, or a
        // cluster member that registered itself) was silently turned into an external engine at another URL.
        var existing = (await nodes.Registry.GetAsync()).Nodes.FirstOrDefault(n => n.Id == id);
        if (id == options.Value.NodeId || (existing is not null && existing.Kind != nameof(NodeKind.External)))
        {
            throw new OpenAIException(StatusCodes.Status409Conflict,
                $"Node '{id}' is {(id == options.Value.NodeId ? "this server's own node" : "a Sovereign node that registered itself")}, not an external engine: give the engine another id.",
                "invalid_request_error", "id", "node_exists");
        }
        var jurisdiction = request.Jurisdiction?.Trim().ToUpperInvariant();
        if (!catalog.IsCountry(jurisdiction))
        {
            throw OpenAIException.BadRequest($"jurisdiction must be an ISO 3166-1 alpha-2 country code; got '{RequestReader.Shorten(request.Jurisdiction ?? "")}'.", "jurisdiction", "invalid_value");
        }

        if (EngineBaseUrl.Problem(request.BaseUrl) is { } urlProblem)
        {
            throw OpenAIException.BadRequest("base_url " + urlProblem, "base_url", "invalid_value");
        }

        var url = new Uri(request.BaseUrl!.Trim(), UriKind.Absolute);
        if (await EngineAddressRule.ProblemAsync(url, options.Value.AllowLinkLocalEngineUrls, System.Net.Dns.GetHostAddressesAsync, context.RequestAborted) is { } addressProblem)
        {
            throw OpenAIException.BadRequest("base_url " + addressProblem, "base_url", "invalid_value");
        }

        // Sent as 'Authorization: Bearer KEY' on every relay: one that cannot be was a 500 on each request. Never echoed.
        if (!string.IsNullOrEmpty(request.ApiKey) && !UpstreamProxy.IsSendableKey(request.ApiKey))
        {
            throw OpenAIException.BadRequest(
                "api_key must be visible ASCII characters without spaces or line breaks: it is sent to the engine as 'Authorization: Bearer KEY'.", "api_key", "invalid_value");
        }

        if (request.Models is not { Count: > 0 })
        {
            throw OpenAIException.BadRequest("models must list at least one model the node serves.", "models", "invalid_value");
        }

        var promptCache = request.PromptCache is null ? EnginePromptCaches.Shared : EnginePromptCaches.Parse(request.PromptCache)
            ?? throw OpenAIException.BadRequest(
                $"prompt_cache must be 'shared', 'salt' (vLLM: a cache_salt per tenant) or 'off' (llama-server: cache_prompt false); got '{RequestReader.Shorten(request.PromptCache)}'.",
                "prompt_cache", "invalid_value");

        // The same rules as an engine's models in the settings (Models.ModelRules); the first problem is the 400.
        var models = new List<NodeModel>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var problems = new List<Models.ModelProblem>();
        for (var i = 0; i < request.Models.Count; i++)
        {
            var model = request.Models[i] ?? throw OpenAIException.BadRequest($"models[{i}] must be an object.", $"models[{i}]", "invalid_type");
            Models.ModelRules.Check(new(model.Id, Relayed: true, model.Kind, model.Upstream, model.Capacity, model.License, model.Origin, model.Languages),
                Models.ModelFieldNames.Json($"models[{i}]"), ids, problems);
            if (problems is [var problem, ..])
            {
                throw OpenAIException.BadRequest(problem.Message, problem.Field, problem.Code);
            }

            // An alias's name routes by language before any model of that id is looked up, as `auto` does: the model
            // was listed in /v1/models and never reached.
            if (options.Value.Aliases.ContainsKey(model.Id!))
            {
                throw OpenAIException.BadRequest(
                    $"models[{i}].id '{model.Id}' is a model alias of this gateway (Sovereign:Aliases:{model.Id}), whose requests are routed by language: a model of that id would never be reached; choose another model id (the engine's own name goes in models[{i}].upstream).",
                    $"models[{i}].id", "invalid_value");
            }

            models.Add(new NodeModel(model.Id!, model.Upstream ?? model.Id!, model.Capacity ?? 16, model.License, model.Origin?.ToUpperInvariant(), Models.ModelRules.KindName(model.Kind)!,
                Routing.LanguageRouting.Canonical(model.Languages?.Select(l => l!).ToList())));
        }

        var baseUrl = url.ToString().TrimEnd('/');
        var kind = nameof(NodeKind.External);
        foreach (var (field, value) in new[] { ("pool", request.Pool), ("device_class", request.DeviceClass) })
        {
            if (value is not null && !Sovereign.Metering.Pricing.PriceValidator.IsValidScopeName(value))
            {
                throw OpenAIException.BadRequest($"{field} '{RequestReader.Shorten(value ?? "")}' must be 1 to 64 letters, digits, '.', '_' or '-'.", field, "invalid_value");
            }
        }

        // The pool and device class price the node's work, so they are claims the operator signs, like its jurisdiction.
        var credential = NodeCredentials.Issue(new NodeClaims(id, jurisdiction, kind, baseUrl, time.GetUtcNow().ToUnixTimeMilliseconds(), request.Pool, DeviceClasses.Canonical(request.DeviceClass)), operatorKey);
        // Active when new; registered again, it keeps the state its operator set (it was put back in rotation).
        var node = await nodes.Registry.RegisterAsync(new NodeView(id, jurisdiction, kind, baseUrl, models, nameof(NodeState.Active), credential, request.ApiKey, 0, PromptCache: promptCache));
        nodes.Invalidate();
        await AuditAdminAsync(context, audit, "node.register", null, new() { ["node"] = id, ["jurisdiction"] = jurisdiction, ["url"] = baseUrl, ["models"] = string.Join(",", models.Select(m => m.Id)), ["prompt_cache"] = promptCache });
        return Results.Json(NodeJson(node), OpenAIJson.Options, statusCode: StatusCodes.Status201Created);
    }

    private static async Task<IResult> SetNodeState(string id, HttpContext context, NodeDirectory nodes, AuditLog audit)
    {
        var request = await RequestReader.ReadAsync<NodeStateRequest>(context);
        var state = request.State?.ToLowerInvariant() switch
        {
            "active" => nameof(NodeState.Active),
            "down" => nameof(NodeState.Down),
            "draining" => nameof(NodeState.Draining),
            _ => throw OpenAIException.BadRequest("state must be 'active', 'draining' or 'down'.", "state", "invalid_value"),
        };
        if (!await nodes.Registry.SetStateAsync(id, state))
        {
            throw NotFound("node", id);
        }

        nodes.Invalidate();
        await AuditAdminAsync(context, audit, "node.state", null, new() { ["node"] = id, ["state"] = state });
        return Json(new { id, state = state.ToLowerInvariant() });
    }

    private static async Task<IResult> DeleteNode(
        string id, HttpContext context, NodeDirectory nodes, IGrainFactory grains, AuditLog audit, TimeProvider time, IOptions<SovereignOptions> options, IOptions<Cluster.Hosting.SovereignClusterOptions> cluster)
    {
        if (id == options.Value.NodeId && cluster.Value.ServesModels)
        {
            // This process registers itself only at start: removed, it vanished from the pool (and could no longer be
            // drained) while it kept serving, until a restart.
            throw new OpenAIException(StatusCodes.Status409Conflict,
                $"Node '{id}' is this server itself, which is running and would keep serving unseen: set its state to 'draining' to take it out of rotation, or remove it from another gateway once it has stopped.",
                "invalid_request_error", "id", "node_in_use");
        }

        // Another member that still reports its load is running too: removed, it kept its silo and its engine, out of
        // every list (so it could not be drained), and registered again at its next start. The guide's order is drain,
        // stop, remove; a node whose reports stopped (stopped, or cut off), or whose silo has left the membership (a
        // stop just now, before its last report went stale), can go.
        if (await RunningClusterNodeAsync(nodes, grains, cluster.Value.IsDistributed, id) is { } running)
        {
            throw new OpenAIException(StatusCodes.Status409Conflict,
                $"Node '{id}' is running (its last load report is {running.ReportAgeMs / 1000} s old): drain it (sovereign nodes drain {id} --wait), stop it, then remove it. Removed while it runs, it would keep serving unseen and register again when it restarts.",
                "invalid_request_error", "id", "node_in_use");
        }

        if (!await nodes.Registry.DeleteAsync(id))
        {
            throw NotFound("node", id);
        }

        nodes.Invalidate();
        await AuditAdminAsync(context, audit, "node.delete", null, new() { ["node"] = id });
        return Json(new { id, deleted = true });
    }

    /// <summary>
    /// The registered cluster node of this id while it runs: it reports its load, and (in a cluster) the membership
    /// lists its silo as active. Null for an external engine, a node whose reports stopped, or one whose silo has left.
    /// The report's age is read on the registry's clock, which stamped it (this process's clock may differ).
    /// </summary>
    internal static async Task<(NodeView Node, long ReportAgeMs)?> RunningClusterNodeAsync(NodeDirectory nodes, IGrainFactory grains, bool distributed, string id)
    {
        var snapshot = await nodes.Registry.GetAsync();
        var now = snapshot.Now != 0 ? snapshot.Now : nodes.NowMs; // 0: a registry of a release that did not send its clock
        return snapshot.Nodes.FirstOrDefault(n => n.Id == id) is { } node && NodeDirectory.IsClusterNode(node) && nodes.IsFresh(node, now)
            && (!distributed || await HasActiveSiloAsync(grains, id))
            ? (node, Math.Max(0, now - node.Load!.ReportedAt))
            : null;
    }

    /// <summary>
    /// Whether the membership lists a silo of this node (named <c>role/node-id</c>) as active. When the membership
    /// cannot be read, the fresh load report decides alone.
    /// </summary>
    private static async Task<bool> HasActiveSiloAsync(IGrainFactory grains, string nodeId)
    {
        try
        {
            var hosts = await grains.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: true);
            return hosts.Any(h => h.SiloName?.EndsWith("/" + nodeId, StringComparison.Ordinal) == true);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return true;
        }
    }

    private static IResult ListModels(Models.ModelCatalog catalog)
    {
        var registered = catalog.Registry.List();
        var loaded = catalog.All.Select(m => m.Id).ToHashSet(StringComparer.Ordinal);
        return Json(new
        {
            data = registered.Select(e => new
            {
                id = e.Id,
                digest = e.Digest,
                size_bytes = e.SizeBytes,
                architecture = e.Architecture,
                parameters = e.Parameters,
                quantization = e.Quantization,
                context_length = e.ContextLength,
                license = e.License,
                origin = new { publisher = e.Origin.Publisher, country = e.Origin.Country },
                languages = e.Languages,
                modality = e.Modality.ToString().ToLowerInvariant(),
                source = e.Source,
                loaded = loaded.Contains(e.Id),
            }),
            loaded_from_configuration = catalog.All.Where(m => registered.All(e => e.Id != m.Id)).Select(m => m.Id),
        });
    }

    /// <summary>
    /// A model id from its route value. Ids may hold '/' (Hugging Face names such as <c>Qwen/Qwen2.5-7B-Instruct</c>):
    /// clients send it as %2F, which the server leaves encoded in a route value, as it must for a path.
    /// </summary>
    internal static string ModelIdOf(string routeValue) => routeValue.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);

    private static async Task<IResult> LoadModel(string id, HttpContext context, Models.ModelCatalog catalog, AuditLog audit)
    {
        id = ModelIdOf(id);
        var request = await RequestReader.ReadOptionalAsync<ModelLoadRequest>(context);
        if (request.Parallel is < 1 or > 256 || request.ContextLength is < 16 || request.Threads is < 1)
        {
            throw OpenAIException.BadRequest("parallel must be 1-256, context_length at least 16, threads at least 1.", request.Parallel is < 1 or > 256 ? "parallel" : request.ContextLength is < 16 ? "context_length" : "threads", "invalid_value");
        }

        try
        {
            var served = await catalog.LoadFromRegistryAsync(id, request.Parallel, request.ContextLength, request.Threads, context.RequestAborted);
            await AuditAdminAsync(context, audit, "model.load", null, new() { ["model"] = id, ["digest"] = catalog.Registry.Get(id)?.Digest ?? "" });
            return Json(new { id = served.Id, kind = served.Kind.ToString().ToLowerInvariant(), loaded = true });
        }
        catch (KeyNotFoundException ex)
        {
            throw new OpenAIException(StatusCodes.Status404NotFound, ex.Message, "invalid_request_error", "id", "model_not_found");
        }
        catch (Models.ModelSettingsException ex)
        {
            throw OpenAIException.BadRequest(ex.Message, ex.Param, "invalid_value");
        }
        catch (Inference.Engine.ModelLoadException ex)
        {
            // The file llama.cpp was given is gone or is no GGUF it can read (replaced since the start): the server's
            // state, not a defect, and the model stays unloaded. It was a 500 with a logged stack.
            await AuditAdminAsync(context, audit, "model.load_refused", null, new() { ["model"] = id, ["reason"] = "load_failed", ["message"] = ex.Message });
            throw new OpenAIException(StatusCodes.Status409Conflict, ex.Message, "invalid_request_error", "id", "model_load_failed");
        }
        catch (InvalidOperationException ex)
        {
            throw new OpenAIException(StatusCodes.Status409Conflict, ex.Message, "invalid_request_error", "id", "model_already_loaded");
        }
        catch (InsufficientMemoryException ex)
        {
            await AuditAdminAsync(context, audit, "model.load_refused", null, new() { ["model"] = id, ["reason"] = "insufficient_memory", ["message"] = ex.Message });
            throw new OpenAIException(StatusCodes.Status409Conflict, ex.Message, "invalid_request_error", null, "insufficient_memory");
        }
        catch (Inference.Registry.ModelDigestMismatchException ex)
        {
            await AuditAdminAsync(context, audit, "model.load_refused", null, new() { ["model"] = id, ["reason"] = "digest_mismatch", ["expected"] = ex.ExpectedDigest, ["actual"] = ex.ActualDigest ?? "" });
            throw new OpenAIException(StatusCodes.Status409Conflict, $"Refused to load '{id}': the file's digest {ex.ActualDigest} differs from the registry's {ex.ExpectedDigest}.", "invalid_request_error", null, "digest_mismatch");
        }
        catch (Inference.Registry.ModelRegistryException ex) when (ex.Error == Inference.Registry.ModelRegistryError.Busy)
        {
            // `models rm` holds the model at this moment.
            throw new OpenAIException(StatusCodes.Status409Conflict, ex.Message, "invalid_request_error", "id", "model_being_removed");
        }
    }

    private static async Task<IResult> UnloadModel(string id, HttpContext context, Models.ModelCatalog catalog, AuditLog audit, CancellationToken cancellationToken)
    {
        id = ModelIdOf(id);
        await RequestReader.ReadOptionalAsync<EmptyRequest>(context);
        if (!await catalog.UnloadAsync(id, cancellationToken))
        {
            throw NotFound("loaded model", id);
        }

        await AuditAdminAsync(context, audit, "model.unload", null, new() { ["model"] = id });
        return Json(new { id, loaded = false });
    }

    /// <summary>The language tax of a served chat model: tokens per 1,000 characters per language, and the ratio to English.</summary>
    private static IResult LanguageTaxReport(string id, Models.ModelCatalog catalog)
    {
        id = ModelIdOf(id);
        if (!catalog.TryGet(id, out var model) || model.Model is not { } llama)
        {
            throw NotFound("chat model", id);
        }

        var report = Languages.LanguageTax.Measure(id, text => llama.Tokenize(text, addBos: false).Length);
        return Json(new
        {
            model = report.ModelId,
            base_language = Languages.LanguageTax.BaseLanguage,
            languages = report.Entries.Select(e => new
            {
                language = e.Language,
                name = e.Name,
                characters = e.Characters,
                tokens = e.Tokens,
                tokens_per_1000_characters = Math.Round(e.TokensPer1000Characters, 1),
                ratio_to_english = Math.Round(e.RatioToEnglish, 3),
                document_ratio_to_english = Math.Round(e.ContentRatioToEnglish, 3),
            }),
            without_reference_text = report.WithoutReferenceText,
            source = report.Source,
        });
    }

    private static IResult ListJurisdictions(JurisdictionCatalog catalog) => Json(new
    {
        countries = catalog.CountryCodes,
        groups = catalog.GroupNames.ToDictionary(g => g, g => catalog.GetGroupMembers(g)),
    });

    private static async Task<IResult> ReadAudit(HttpContext context, AuditLog audit, IGrainFactory grains) =>
        Json(await ReadAuditPageAsync(audit, context, await TenantFilterAsync(context, grains)));

    /// <summary>
    /// The <c>tenant</c> query parameter of an admin list (usage, audit), or null without one: a tenant that exists, or
    /// an id the gateway records its own work under. A misspelt or blank one answered an empty list, which reads as
    /// "no usage" or "no entries"; it is a 400 naming <c>tenant</c>, or the 404 an unknown tenant gets elsewhere.
    /// </summary>
    internal static async Task<string?> TenantFilterAsync(HttpContext context, IGrainFactory grains)
    {
        var tenant = context.Request.Query["tenant"].ToString();
        if (tenant.Length == 0 || ResourceIds.ReservedTenantIds.Contains(tenant))
        {
            return tenant.Length == 0 ? null : tenant;
        }

        ResourceIds.Require(tenant, ResourceKind.Tenant, "tenant");
        return await grains.GetGrain<ITenantGrain>(tenant).GetAsync() is null
            ? throw new OpenAIException(StatusCodes.Status404NotFound, $"No tenant '{tenant}'.", "invalid_request_error", "tenant", "tenant_not_found")
            : tenant;
    }

    /// <summary>Most audit entries in one page.</summary>
    internal const int MaxAuditPage = 10_000;

    /// <summary>
    /// One page of the audit log, as OpenAI pages its lists: <c>limit</c> (1 to 10,000; default the most),
    /// <c>order</c> (<c>asc</c> by sequence, or <c>desc</c> for the newest first) and <c>after</c> (the sequence of
    /// the previous page's last entry) over the <c>from</c>/<c>to</c> time range; the answer says whether there is
    /// more (<c>has_more</c>) and where the page ends (<c>last_id</c>).
    /// </summary>
    internal static async Task<object> ReadAuditPageAsync(AuditLog audit, HttpContext context, string? tenant)
    {
        var query = context.Request.Query;
        var (from, to) = AuditRange(query["from"], query["to"]);
        if (query.ContainsKey("id"))
        {
            return await FindRequestAsync(audit, query, from, to, tenant, context.RequestAborted);
        }

        var limit = ListPaging.Limit(query, MaxAuditPage, MaxAuditPage);
        // A member chain's entry is named CHAIN:SEQUENCE (a cluster whose members keep their own chains); a plain
        // number is the shared chain's sequence, as before member chains.
        var (afterChain, afterText) = SplitCursor(query["after"].ToString());
        var after = ListPaging.WholeNumber(afterText, "after", 0, long.MaxValue);
        var newestFirst = ListPaging.NewestFirst(query, newestFirstByDefault: false);

        IReadOnlyList<AuditEntry> page;
        try
        {
            page = await audit.ReadAsync(new AuditQuery
            {
                Tenant = tenant,
                From = from,
                To = to,
                After = newestFirst ? null : after,
                Before = newestFirst ? after : null,
                CursorChain = after is null ? null : afterChain,
                NewestFirst = newestFirst,
                Limit = limit + 1,
            }, context.RequestAborted);
        }
        catch (ArgumentException unknown) when (after is not null)
        {
            throw OpenAIException.BadRequest($"after: {unknown.Message.Split(" (Parameter", 2)[0]}", "after", "invalid_value");
        }

        var entries = page.Count > limit ? page.Take(limit) : page;
        return new
        {
            @object = "list",
            data = entries.Select(AuditJson),
            first_id = page.Count > 0 ? CursorOf(page[0]) : null,
            last_id = page.Count > 0 ? CursorOf(page[Math.Min(page.Count, limit) - 1]) : null,
            has_more = page.Count > limit,
        };
    }

    /// <summary>
    /// <c>?id=</c>: the entries of the request that a response's body id (<c>chatcmpl-...</c>, <c>cmpl-...</c>,
    /// <c>resp_...</c>, an engine's) or a request id (<c>x-sovereign-audit-id</c>) names, in time order, as one page
    /// (<see cref="AuditRequestLookup"/>): what an auditor handed a client's response asks. <c>from</c> bounds the search
    /// for a response id (the response's <c>created</c>); paging does not apply.
    /// </summary>
    private static async Task<object> FindRequestAsync(AuditLog audit, IQueryCollection query, DateTimeOffset from, DateTimeOffset to, string? tenant, CancellationToken cancellationToken)
    {
        var id = query["id"].ToString();
        if (!AuditRequestLookup.IsValidId(id))
        {
            throw OpenAIException.BadRequest(
                $"id '{RequestReader.Shorten(id)}' is not a response or request id: 1 to 128 ASCII letters, digits, '-', '_', '.' or ':'.", "id", "invalid_value");
        }

        foreach (var paging in (string[])["after", "order", "limit"])
        {
            if (query.ContainsKey(paging))
            {
                throw OpenAIException.BadRequest($"{paging} pages the log; with id the answer is that request's entries, one page.", paging, "invalid_value");
            }
        }

        // Without from, the lookup stops at the newest window holding the id; with a to, that window could lie after it
        // and hide an earlier match, so the whole log up to it is searched.
        var start = from != DateTimeOffset.UnixEpoch ? from : to == DateTimeOffset.MaxValue ? (DateTimeOffset?)null : DateTimeOffset.UnixEpoch;
        var entries = (await audit.FindRequestAsync(id, start, tenant, cancellationToken))
            .Where(e => e.Timestamp < to.ToUnixTimeMilliseconds() && (tenant is null || e.Tenant == tenant)).ToList();
        return new
        {
            @object = "list",
            data = entries.Select(AuditJson),
            first_id = entries.Count > 0 ? CursorOf(entries[0]) : null,
            last_id = entries.Count > 0 ? CursorOf(entries[^1]) : null,
            has_more = false,
        };
    }

    /// <summary>A page's cursor for an entry: its sequence (the shared chain), or CHAIN:SEQUENCE (a member chain).</summary>
    private static object CursorOf(AuditEntry entry) => entry.Chain is { } chain
        ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{chain}:{entry.Sequence}")
        : entry.Sequence;

    /// <summary>Splits an <c>after</c> cursor into its member chain (null: the shared chain) and its sequence's text.</summary>
    private static (string? Chain, string? Sequence) SplitCursor(string cursor)
    {
        var colon = cursor.LastIndexOf(':');
        if (colon < 0)
        {
            return (null, cursor);
        }

        var chain = cursor[..colon];
        return AuditCanonical.IsChainName(chain)
            ? (chain, cursor[(colon + 1)..])
            : throw OpenAIException.BadRequest($"after must be an entry's sequence, or CHAIN:SEQUENCE for a member chain's; got '{RequestReader.Shorten(cursor)}'.", "after", "invalid_value");
    }

    private static async Task<IResult> VerifyAudit(HttpContext context, SqlDatabase database, OperatorSigningKey key, TimeProvider time, IOptions<SovereignOptions> settings)
    {
        // This server's witness, the last head it signed: a rewritten tail whose checkpoints were deleted shows here.
        await RequestReader.ReadOptionalAsync<EmptyRequest>(context);
        var options = new AuditVerificationOptions { Time = time, Witness = AuditWitness.Read(Path.Combine(settings.Value.ResolvedDataDirectory, AuditWitness.FileName)) };
        var bound = context.Request.Query["max_uncovered_seconds"].ToString();
        if (bound.Length > 0)
        {
            if (!int.TryParse(bound, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds))
            {
                throw OpenAIException.BadRequest($"max_uncovered_seconds must be a whole number of seconds (0 or more); got '{RequestReader.Shorten(bound)}'.", "max_uncovered_seconds", "invalid_value");
            }

            options = options with { MaxUncoveredAge = TimeSpan.FromSeconds(seconds) };
        }

        // 200 whatever the verdict: the body is the report (valid, verdict, covered_through, uncovered, problems).
        var result = await AuditVerifier.VerifyAsync(database, [key.History.ToText()], options, null, context.RequestAborted);
        result = Metering.LedgerReconciliation.With(result, await Metering.LedgerReconciliation.CheckAsync(database, context.RequestAborted));

        // This server holds the database as it answers: an open request is running (or a stopped member's, not closed yet).
        return Json(result.Decisions is { Open: > 0 } open ? result with { Decisions = open with { ServerRunning = true } } : result);
    }

    private static async Task<IResult> Checkpoint(HttpContext context, AuditLog audit, CancellationToken cancellationToken)
    {
        await RequestReader.ReadOptionalAsync<EmptyRequest>(context);
        return Json(await audit.CheckpointAsync(cancellationToken));
    }

    /// <summary>Parses an audit time range (ISO 8601 or unix seconds); defaults to everything.</summary>
    internal static (DateTimeOffset From, DateTimeOffset To) AuditRange(string? from, string? to)
    {
        var range = (From: ParseTime(from, "from") ?? DateTimeOffset.UnixEpoch, To: ParseTime(to, "to") ?? DateTimeOffset.MaxValue);
        return range.From <= range.To
            ? range
            : string.IsNullOrEmpty(from)
                // Without a from, the period starts at the epoch: naming from (which the client never sent) misled.
                ? throw OpenAIException.BadRequest($"to ({Utc(range.To)}) is before {Utc(DateTimeOffset.UnixEpoch)}, where records begin.", "to", "invalid_value")
                : throw OpenAIException.BadRequest($"from ({Utc(range.From)}) is after to ({Utc(range.To)}).", "from", "invalid_value");

        // As entries and usage show times: UTC, milliseconds only when there are any.
        static string Utc(DateTimeOffset time) =>
            time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFF'Z'", System.Globalization.CultureInfo.InvariantCulture);
    }

    private const long MaxUnixSeconds = 253_402_300_799;

    internal static DateTimeOffset? ParseTime(string? value, string field)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        // Past 9999-12-31 a number is no time in seconds: most likely milliseconds, which audit entries carry. It was
        // read as the last second of 9999, so an entry's own timestamp pasted back answered an empty list.
        if (long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds))
        {
            return seconds <= MaxUnixSeconds
                ? DateTimeOffset.FromUnixTimeSeconds(seconds)
                : throw OpenAIException.BadRequest(
                    $"{field} is unix seconds, at most {MaxUnixSeconds} (9999-12-31); got '{RequestReader.Shorten(value)}'. Audit entries' timestamps are milliseconds: divide by 1000.",
                    field, "invalid_value");
        }

        return IsoTime.TryParse(value, out var time)
            ? time
            : throw OpenAIException.BadRequest($"{field} must be unix seconds or {IsoTime.Expected}; got '{RequestReader.Shorten(value)}'.", field, "invalid_value");
    }

    internal static object AuditJson(AuditEntry e) => new
    {
        chain = e.Chain,
        sequence = e.Sequence,
        timestamp = e.Timestamp,
        kind = e.Kind.ToString().ToLowerInvariant(),
        action = e.Action,
        actor = e.Actor,
        tenant = e.Tenant,
        key_id = e.KeyId,
        model = e.Model,
        gateway = e.Gateway,
        node = e.Node,
        jurisdiction = e.Jurisdiction,
        decision = e.Decision?.ToString().ToLowerInvariant(),
        code = e.DecisionCode,
        reasons = e.Reasons,
        prompt_tokens = e.PromptTokens,
        completion_tokens = e.CompletionTokens,
        details = e.Details,
        // With it a tenant re-hashes its own entries (FORMAT.md) and finds each hash in a signed export; the hash
        // alone covered a previous hash the page never showed, so nothing on it could be checked.
        previous_hash = e.PreviousHash,
        hash = e.Hash,
    };

    private static async Task<IResult> ListRevocations(ControlPlaneStore store) =>
        Json(new { data = (await store.ListCertificateRevocationsAsync()).Select(RevocationJson) });

    /// <summary>
    /// Revokes a cluster certificate before it expires, by serial number or every certificate of a node id: recorded
    /// durably, applied here at once and by every member within <see cref="Cluster.Security.CertificateRevocationSync.RefreshInterval"/>,
    /// to every new silo, gateway-to-node and relay connection.
    /// </summary>
    private static async Task<IResult> RevokeCertificate(HttpContext context, ControlPlaneStore store, AuditLog audit, TimeProvider time, Cluster.Security.CertificateRevocationSync sync)
    {
        var request = await RequestReader.ReadAsync<CertificateRevocationRequest>(context);
        if ((request.Serial is null) == (request.NodeId is null))
        {
            throw OpenAIException.BadRequest("Give exactly one of serial (one certificate) and node_id (every certificate of that node).", request.Serial is null ? "serial" : "node_id", "missing_required_parameter");
        }

        if (request.Reason is { Length: > 200 } || request.Reason?.Any(char.IsControl) == true)
        {
            throw OpenAIException.BadRequest("reason must be at most 200 characters, without control characters.", "reason", "invalid_value");
        }

        CertificateRevocationRecord revocation;
        if (request.Serial is not null)
        {
            var serial = Cluster.Security.CertificateRevocations.NormalizeSerial(request.Serial)
                ?? throw OpenAIException.BadRequest($"serial must be the certificate's serial number in hex; got '{RequestReader.Shorten(request.Serial ?? "")}'.", "serial", "invalid_value");
            revocation = new CertificateRevocationRecord(Cluster.Security.CertificateRevocations.SerialKind, serial, time.GetUtcNow().ToUnixTimeMilliseconds(), request.Reason);
        }
        else
        {
            var nodeId = Cluster.Security.ClusterIdentity.IsNodeId(request.NodeId)
                ? request.NodeId!
                : throw OpenAIException.BadRequest("node_id must be 1-63 lowercase letters, digits and '-', starting with a letter or digit.", "node_id", "invalid_value");
            revocation = new CertificateRevocationRecord(Cluster.Security.CertificateRevocations.NodeKind, nodeId, time.GetUtcNow().ToUnixTimeMilliseconds(), request.Reason);
        }

        await store.RevokeCertificateAsync(revocation);
        await sync.RefreshAsync(context.RequestAborted);
        await AuditAdminAsync(context, audit, "cluster.cert.revoke", null, new() { ["kind"] = revocation.Kind, ["value"] = revocation.Value, ["reason"] = revocation.Reason ?? "-" });
        return Results.Json(RevocationJson(revocation), OpenAIJson.Options, statusCode: StatusCodes.Status201Created);
    }

    private static object RevocationJson(CertificateRevocationRecord r) => new
    {
        serial = r.Kind == Cluster.Security.CertificateRevocations.SerialKind ? r.Value : null,
        node_id = r.Kind == Cluster.Security.CertificateRevocations.NodeKind ? r.Value : null,
        revoked_at = r.RevokedAt,
        reason = r.Reason,
    };

    /// <summary>An operator's change, with the id its answer states (<c>x-request-id</c>), as inference entries carry theirs.</summary>
    private static Task AuditAdminAsync(HttpContext context, AuditLog audit, string action, string? tenant, Dictionary<string, string> details, string? keyId = null) =>
        audit.AppendAsync(new AuditRecord { Kind = AuditKind.Admin, Actor = AdminToken.ActorOf(context), Action = action, Tenant = tenant, KeyId = keyId, Details = RequestIds.Stated(context, details) });

    private static string PlanName(string? plan) => plan is null ? "default" : ResourceIds.Require(plan, ResourceKind.Plan, "plan");

    /// <summary>
    /// The plan a tenant is put on. Left out, it is <c>default</c>, which may have no prices (a laptop's free use); named,
    /// it must exist, or a misspelt plan would serve the tenant unpriced, for free. The stored book is read again when
    /// this gateway's copy lacks it (another gateway may have just created it).
    /// </summary>
    private static async Task<string> ExistingPlanAsync(string? requested, PriceBookProvider prices, CancellationToken cancellationToken)
    {
        // The plan's own name: it is found whatever the case, and a tenant stored 'STANDARD' as typed.
        var plan = PlanName(requested);
        if (plan == "default")
        {
            return plan;
        }

        if (prices.Current.FindPlan(plan) is { } found)
        {
            return found.Name;
        }

        await prices.ReloadAsync(cancellationToken);
        return prices.Current.FindPlan(plan)?.Name
            ?? throw new OpenAIException(StatusCodes.Status400BadRequest,
                $"No plan '{plan}' exists. Create it first (PUT /admin/v1/plans/{plan}, or 'sovereign plans set {plan} --currency EUR'), or leave the plan out for 'default'.",
                "invalid_request_error", "plan", "plan_not_found");
    }

    private static OpenAIException NotFound(string what, string id) =>
        new(StatusCodes.Status404NotFound, $"No {what} '{RequestReader.Shorten(id)}'.", "invalid_request_error", null,
            what is "loaded model" or "chat model" ? "model_not_found" : what + "_not_found"); // "chat model_not_found" was a code with a space

    private static IResult Json(object? value) => Results.Json(value, OpenAIJson.Options);

    private static object TenantJson(TenantView t) => new
    {
        id = t.Id,
        name = t.Name,
        plan = t.Plan,
        disabled = t.Disabled,
        policy = JsonDocument.Parse(t.PolicyJson).RootElement,
        created_at = t.CreatedAt,
        updated_at = t.UpdatedAt,
    };

    private static object TenantJson(TenantRecord t) => TenantJson(new TenantView(t.Id, t.Name, t.PolicyJson, t.Plan, t.Disabled, t.CreatedAt, t.UpdatedAt));

    /// <summary>
    /// When a new key expires: <c>expires_at</c> (a time) or <c>expires_in</c> (seconds), in the future and within 10
    /// years (a typo of the year must not issue a key valid for ever), or null. Both end at the same time, ten calendar
    /// years from now: <c>expires_in</c> allowed 10 × 366 days, up to a week past what <c>expires_at</c> calls 10 years.
    /// </summary>
    internal static DateTimeOffset? KeyExpiry(KeyCreateRequest request, DateTimeOffset now)
    {
        var latest = now.AddYears(10);
        var maxSeconds = (long)(latest - now).TotalSeconds;
        if (request is { ExpiresAt: not null, ExpiresIn: not null })
        {
            throw OpenAIException.BadRequest("Set expires_at or expires_in, not both.", "expires_in", "invalid_value");
        }

        if (request.ExpiresIn is { } seconds)
        {
            return seconds > 0 && seconds <= maxSeconds
                ? now.AddSeconds(seconds)
                : throw OpenAIException.BadRequest($"expires_in must be a number of seconds from 1 to {maxSeconds} (10 years from now); got {seconds}.", "expires_in", "invalid_value");
        }

        var expiresAt = request.ExpiresAt is { ValueKind: not JsonValueKind.Null } value ? KeyExpiresAt(value) : (DateTimeOffset?)null;
        if (expiresAt is { } at && (at <= now || at > latest))
        {
            throw OpenAIException.BadRequest(
                $"expires_at must be in the future and within 10 years; got {at.ToUniversalTime():yyyy-MM-ddTHH:mm:ssZ} (now {now:yyyy-MM-ddTHH:mm:ssZ}).", "expires_at", "invalid_value");
        }

        return expiresAt?.ToUniversalTime();
    }

    /// <summary>
    /// A key's <c>expires_at</c>: unix seconds as a number (OpenAI's API states times so) or a string of digits, or an
    /// ISO 8601 time (UTC when it names no offset).
    /// </summary>
    private static DateTimeOffset KeyExpiresAt(JsonElement value)
    {
        const string Field = "expires_at";
        switch (value.ValueKind)
        {
            case JsonValueKind.Number:
                var raw = value.GetRawText();
                if (!value.TryGetInt64(out var seconds))
                {
                    throw OpenAIException.BadRequest($"{Field} must be whole unix seconds; got {RequestReader.Shorten(raw)}.", Field, "invalid_value");
                }

                return UnixSeconds(seconds, raw);
            case JsonValueKind.String:
                var text = value.GetString()!;
                if (long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var digits))
                {
                    return UnixSeconds(digits, $"'{RequestReader.Shorten(text)}'");
                }

                return IsoTime.TryParse(text, out var time)
                    ? time
                    : throw OpenAIException.BadRequest($"{Field} must be unix seconds or {IsoTime.Expected}; got '{RequestReader.Shorten(text)}'.", Field, "invalid_value");
            default:
                throw OpenAIException.BadRequest($"{Field} must be unix seconds (a number) or an ISO 8601 time (a string); got {value.ValueKind.ToString().ToLowerInvariant()}.", Field, "invalid_type");
        }

        // Past 9999-12-31 a number is no time in seconds: most likely milliseconds, which this API's own times carry.
        static DateTimeOffset UnixSeconds(long seconds, string shown) => seconds is >= 0 and <= MaxUnixSeconds
            ? DateTimeOffset.FromUnixTimeSeconds(seconds)
            : throw OpenAIException.BadRequest(
                $"{Field} is unix seconds, from 0 to {MaxUnixSeconds} (9999-12-31); got {shown}."
                + (seconds > MaxUnixSeconds ? " A time in milliseconds (as keys list it): divide by 1000." : ""),
                Field, "invalid_value");
    }

    internal static object KeyJson(ApiKeyView k) => new
    {
        id = k.Id,
        tenant = k.TenantId,
        prefix = k.Prefix,
        name = k.Name,
        policy = k.PolicyJson is null ? (JsonElement?)null : JsonDocument.Parse(k.PolicyJson).RootElement,
        created_at = k.CreatedAt,
        revoked_at = k.RevokedAt,
        expires_at = k.ExpiresAt,
    };

    private static object NodeJson(NodeView n) => NodeJson(n, null, null, null, null, null);

    /// <summary>
    /// A node; <paramref name="inFlight"/> is the requests this gateway has running on it now, and
    /// <paramref name="health"/> whether it takes requests (up, draining, down, unreachable, stale, untrusted), when
    /// known, <paramref name="reporting"/> whether a cluster node still sends load reports and <paramref name="member"/>
    /// its process's status in membership.
    /// </summary>
    private static object NodeJson(NodeView n, long? inFlight, Sovereign.Metering.Pricing.Placement? placement, NodeHealth? health, bool? reporting, string? member) => new
    {
        in_flight = inFlight,
        health = health?.ToString().ToLowerInvariant(),
        reporting,
        member,
        pool = placement?.Pool,
        device_class = placement?.DeviceClass,
        id = n.Id,
        jurisdiction = n.Jurisdiction,
        kind = n.Kind.ToLowerInvariant(),
        base_url = n.BaseUrl,
        prompt_cache = n.Kind == nameof(NodeKind.External) ? n.PromptCacheOrShared : null,
        state = n.State.ToLowerInvariant(),
        models = n.Models.Select(m => new { id = m.Id, kind = m.Kind ?? NodeModelKinds.Chat, upstream = m.Upstream, capacity = m.Capacity, license = m.License, origin = m.Origin, languages = m.Languages ?? [] }),
        credential = n.Credential,
        updated_at = n.UpdatedAt,
        load = n.Load is { } load
            ? new
            {
                reported_at = load.ReportedAt,
                models = load.Models.Select(m => new { id = m.Model, running = m.Running, free_slots = m.FreeSlots, queue_depth = m.QueueDepth, kv_cache_use = m.KvCacheUse }),
                accelerators = load.Accelerators.Select(a => new { kind = a.Kind, name = a.Name, memory_total_mib = a.MemoryTotalMiB, memory_used_mib = a.MemoryUsedMiB }),
                available = load.Available ?? [],
            }
            : null,
    };
}
