using System.Text.Json;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Templates;
using Sovereign.Residency.Audit;
using Sovereign.Residency.Content;
using Sovereign.Residency.Jurisdictions;
using Sovereign.Residency.Policies;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// <c>store</c>, <c>previous_response_id</c>, and <c>GET</c>/<c>DELETE /v1/responses/{id}</c>: content is kept only
/// where the caller's policy (narrowed by its key) retains content (<see cref="RetentionMode.Store"/>), for its days,
/// only through a gateway in a jurisdiction the policy allows, and only in a database whose jurisdiction the policy
/// allows (<see cref="ContentHome"/>: where the content rests, which in a cluster is the shared PostgreSQL's, not the
/// gateway's). Otherwise nothing is stored: a request that asks for storage is refused with a 400 naming the rule
/// (fail closed).
/// A response is visible to its tenant alone; another tenant's id is answered exactly as a missing one. The audit
/// log records that content was stored or deleted (the id and expiry), never the content.
/// Each access by id (GET, HEAD, input_items, DELETE, cancel) takes one of the caller's requests per minute, as
/// <c>/tokenize</c> does: a read writes an audit entry into the one chain every tenant's requests wait on, and reads
/// were counted nowhere (a tenant limited to 3 a minute wrote 11,180 entries in 10 s).
/// </summary>
internal sealed class ResponsesStorage(
    ResponseStore store, JurisdictionCatalog catalog, AuditLog audit, Metering.RequestMetering metering, IOptions<SovereignOptions> options, TimeProvider time, Orleans.IGrainFactory grains)
{
    private static readonly JsonSerializerOptions TurnJson = new(JsonSerializerDefaults.Web);

    /// <summary>This gateway's jurisdiction, which stored content passes through.</summary>
    private string Here => string.IsNullOrWhiteSpace(options.Value.Jurisdiction) ? InferenceRouter.Undeclared : options.Value.Jurisdiction.ToUpperInvariant();

    /// <summary>
    /// Where stored content rests: the database's declared jurisdiction (<c>Sovereign:Database:Jurisdiction</c>); else a
    /// SQLite file, which is on this machine, rests where this gateway is; a PostgreSQL database declared nowhere is
    /// null, and nothing is stored in it (one database serves gateways of several jurisdictions from wherever it runs).
    /// </summary>
    public string? ContentHome => options.Value.Database.Jurisdiction is { } declared && !string.IsNullOrWhiteSpace(declared)
        ? declared.Trim().ToUpperInvariant()
        : store.Provider == Storage.SqlProvider.Sqlite ? Here : null;

    /// <summary>Whether <paramref name="policy"/> lets content rest where this gateway's database keeps it.</summary>
    public bool AllowsContentHome(ResidencyPolicy policy) => ContentHome is { } home && catalog.ResolveMany(policy.AllowedJurisdictions, out _).Contains(home);

    /// <summary>
    /// Refuses <c>store: true</c> or <c>previous_response_id</c> unless the policy retains content and allows this
    /// gateway's jurisdiction; both need the store.
    /// </summary>
    public void RequireRetention(ResponsesRequest request, Caller caller)
    {
        var param = request.Store == true ? "store" : request.PreviousResponseId is not null ? "previous_response_id" : null;
        if (param is null)
        {
            return;
        }

        var retention = caller.Policy?.Retention ?? RetentionPolicy.None;
        if (retention.Mode != RetentionMode.Store)
        {
            throw OpenAIException.BadRequest(
                $"{param} needs responses to be stored, but your policy's retention is '{retention}': no prompt or completion content may be kept. " +
                "Send store: false (or omit it) and the whole conversation as input.", param, "content_retention_not_allowed");
        }

        if (!AllowsHere(caller.Policy!))
        {
            throw OpenAIException.BadRequest(
                $"{param} needs responses to be stored by this gateway, which is in {Here}; your policy's allowed_jurisdictions do not include it, " +
                "so no content may be kept here. Send store: false and the whole conversation as input, or use a gateway in an allowed jurisdiction.",
                param, "content_retention_jurisdiction_not_allowed");
        }

        RequireContentHomeAllowed(caller.Policy!, param);
    }

    /// <summary>Stored content rests in this gateway's database: its jurisdiction must be declared and allowed (fail closed).</summary>
    private void RequireContentHomeAllowed(ResidencyPolicy policy, string param)
    {
        if (ContentHome is not { } home)
        {
            throw OpenAIException.BadRequest(
                $"{param} needs responses to be stored, but this gateway's database (shared PostgreSQL) has no declared jurisdiction, so no content may be kept in it. " +
                "Send store: false and the whole conversation as input; the operator declares where the database runs with Sovereign:Database:Jurisdiction.",
                param, "content_store_jurisdiction_undeclared");
        }

        if (!AllowsContentHome(policy))
        {
            throw OpenAIException.BadRequest(
                $"{param} needs responses to be stored in this gateway's database, which is in {home}; your policy's allowed_jurisdictions do not include it, " +
                "so no content may be kept there. Send store: false and the whole conversation as input.",
                param, "content_retention_jurisdiction_not_allowed");
        }
    }

    /// <summary>The conversation a stored response ends, for <c>previous_response_id</c>; a 400 when there is none for this tenant.</summary>
    public async Task<IReadOnlyList<ChatTurn>> ConversationAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        var stored = await FindAsync(caller, id, cancellationToken)
            ?? throw OpenAIException.BadRequest($"Previous response with id '{RequestReader.Shorten(id)}' not found.", "previous_response_id", "previous_response_not_found");
        return [.. JsonSerializer.Deserialize<List<StoredTurn>>(stored.ConversationJson, TurnJson)!.Select(t => t.ToTurn())];
    }

    /// <summary>
    /// Keeps a response and the conversation it ends until the policy's retention runs out; the request's audit entry
    /// says so. The policy is read again once it is written: one updated while the response was generated (to keep
    /// nothing, or fewer days) has already deleted what it no longer allows, and this response was written after that.
    /// </summary>
    public async Task SaveAsync(Caller caller, RoutedRequest route, ResponseObject response, IEnumerable<ChatTurn> conversation, CancellationToken cancellationToken)
    {
        var retention = caller.Policy!.Retention;
        var now = time.GetUtcNow();
        var expires = now.AddDays(retention.Days);
        await store.InsertAsync(new StoredResponse(
            response.Id, caller.TenantId, ContentHome!, options.Value.NodeId, now.ToUnixTimeMilliseconds(), expires.ToUnixTimeMilliseconds(),
            JsonSerializer.Serialize(response, OpenAIJson.Options), JsonSerializer.Serialize(conversation.Select(StoredTurn.Of), TurnJson)), cancellationToken);

        // Written, then read: an update that lands after this read deletes the row itself (it writes the policy first).
        ResidencyPolicy? current;
        try
        {
            current = await grains.GetGrain<Cluster.Grains.ITenantGrain>(caller.TenantId).GetAsync() is { } tenant
                ? PolicyDocument.FromJson(tenant.PolicyJson).ToPolicy()
                : null;
        }
        catch
        {
            // Not known to be allowed still: not kept (the request fails as the read did).
            await store.DeleteAsync(caller.TenantId, response.Id, CancellationToken.None);
            throw;
        }

        if (current?.Retention is not { Mode: RetentionMode.Store } kept || !AllowsContentHome(current))
        {
            await store.DeleteAsync(caller.TenantId, response.Id, CancellationToken.None);
            return;
        }

        if (kept.Days < retention.Days)
        {
            expires = now.AddDays(kept.Days);
            await store.ShortenTenantAsync(caller.TenantId, kept.Days, time.GetUtcNow(), CancellationToken.None);
        }

        route.StoredContent = new StoredContentNote(response.Id, expires, ContentHome!);
    }

    /// <summary><c>GET /v1/responses/{id}</c>: the response object as it was answered; the read is audited before it is answered.</summary>
    public async Task<IResult> GetAsync(HttpContext context, Caller caller, string id)
    {
        await metering.CountRequestAsync(context, caller);
        var stored = await FindAsync(caller, id, context.RequestAborted) ?? throw NotFound(id);
        await AuditAsync(context, caller, ReadAction(context), id, "response");
        return TypedResults.Text(stored.ResponseJson, OpenAIJson.ContentType);
    }

    /// <summary>
    /// <c>POST /v1/responses/{id}/cancel</c>: a stored response has already ended (this server has no background mode,
    /// whose responses alone OpenAI cancels), so it is a 400 naming why; 404 for an id the tenant does not hold. Nothing
    /// is read out, so nothing is audited.
    /// </summary>
    public async Task<IResult> CancelAsync(HttpContext context, Caller caller, string id)
    {
        await metering.CountRequestAsync(context, caller);
        _ = await FindAsync(caller, id, context.RequestAborted) ?? throw NotFound(id);
        throw OpenAIException.BadRequest(
            $"Response '{RequestReader.Shorten(id)}' cannot be cancelled: only responses created with background=true can be, and this server does not run "
            + "background responses (background is refused), so every response has ended when its request answers. To stop one while it is generated, close its stream.",
            "response_id", "response_not_cancellable");
    }

    /// <summary>Most input items in one page, as OpenAI allows.</summary>
    internal const int MaxInputItemsPage = 100;

    /// <summary>
    /// <c>GET /v1/responses/{id}/input_items</c>: the items the response was generated from (the conversation it
    /// continued and its own input, not its output or instructions), paged as OpenAI pages lists: <c>limit</c> (1 to
    /// 100, default 20), <c>order</c> (<c>desc</c> by default), <c>after</c> (an item id). Item ids are derived from
    /// the response id and the item's place, so they are the same on every read.
    /// </summary>
    public async Task<IResult> InputItemsAsync(HttpContext context, Caller caller, string id)
    {
        var query = context.Request.Query;
        var limit = ListPaging.Limit(query, MaxInputItemsPage, fallback: 20);
        var newestFirst = ListPaging.NewestFirst(query, newestFirstByDefault: true);
        if (query["include"].Count > 0 || query["include[]"].Count > 0)
        {
            throw OpenAIException.BadRequest("include is not supported: input items have no extra fields to include.", "include", "unsupported_parameter");
        }

        await metering.CountRequestAsync(context, caller);
        var stored = await FindAsync(caller, id, context.RequestAborted) ?? throw NotFound(id);
        var turns = JsonSerializer.Deserialize<List<StoredTurn>>(stored.ConversationJson, TurnJson)!;
        var items = InputItems(id, turns.Take(turns.Count - 1)).ToList(); // the last turn is the response's own output
        if (newestFirst)
        {
            items.Reverse();
        }

        var start = 0;
        if (query["after"].ToString() is { Length: > 0 } after)
        {
            var index = items.FindIndex(item => item.Id == after);
            start = index >= 0
                ? index + 1
                : throw OpenAIException.BadRequest($"after must be the id of an input item of response '{id}'.", "after", "invalid_value");
        }

        var page = items.Skip(start).Take(limit).ToList();
        await AuditAsync(context, caller, ReadAction(context), id, "input_items");
        return TypedResults.Json(new
        {
            @object = "list",
            data = page.Select(item => item.Body),
            first_id = page.Count > 0 ? page[0].Id : null,
            last_id = page.Count > 0 ? page[^1].Id : null,
            has_more = start + page.Count < items.Count,
        }, OpenAIJson.Options);
    }

    /// <summary>Stored turns as Responses input items: messages, and an assistant's calls and their outputs as items of their own.</summary>
    private static IEnumerable<(string Id, object Body)> InputItems(string responseId, IEnumerable<StoredTurn> turns)
    {
        var place = 0;
        string NextId(string prefix) =>
            prefix + "_" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{responseId}/{place++}")))[..32];

        foreach (var turn in turns)
        {
            if (turn.Role == "tool")
            {
                var outputId = NextId("fco");
                yield return (outputId, new FunctionCallOutputItem(outputId, turn.CallId ?? "", turn.Content, "completed"));
                continue;
            }

            if (turn.Content.Length > 0 || turn.Calls is not { Count: > 0 })
            {
                var messageId = NextId("msg");
                object part = turn.Role == "assistant" ? new OutputText(turn.Content) : new InputText(turn.Content);
                yield return (messageId, new InputMessageItem(messageId, turn.Role, [part], "completed"));
            }

            foreach (var call in turn.Calls ?? [])
            {
                var callId = NextId("fc");
                yield return (callId, new FunctionCallItem(callId, call.Id, call.Name, call.Arguments, "completed"));
            }
        }
    }

    /// <summary>
    /// <c>DELETE /v1/responses/{id}</c>: deletes it, audited under the request's id (sent as the audit id, as an inference
    /// answer is). Once deleted, the entry is written even if the client has gone.
    /// </summary>
    public async Task<IResult> DeleteAsync(HttpContext context, Caller caller, string id)
    {
        await metering.CountRequestAsync(context, caller);
        RequireReadableHere(caller);

        // Only what the caller could read: a key narrowed to no (or a shorter) retention got 404 on GET but deleted
        // the response, confirming an id it may not see and destroying another application's conversation.
        if (await FindAsync(caller, id, context.RequestAborted) is null || !await store.DeleteAsync(caller.TenantId, id, context.RequestAborted))
        {
            throw NotFound(id);
        }

        await AuditAsync(context, caller, "response.deleted", id, part: null);
        return TypedResults.Json(new { id, @object = "response", deleted = true }, OpenAIJson.Options);
    }

    /// <summary>
    /// What a GET of stored content is audited as: <c>response.read</c>, or <c>response.checked</c> for a HEAD (every
    /// GET takes HEAD), which learns that the caller holds the response but receives none of its content; it was
    /// recorded as a read of content that never left.
    /// </summary>
    private static string ReadAction(HttpContext context) =>
        HttpMethods.IsHead(context.Request.Method) ? "response.checked" : "response.read";

    /// <summary>
    /// Audits an access to stored content under the request's id (sent as the audit id, as an inference answer is):
    /// who read or deleted which response, and here. A read is evidence before the content leaves: if the entry cannot
    /// be written the read fails (503), as an inference request does. The entry is written even if the client has gone.
    /// </summary>
    private async Task AuditAsync(HttpContext context, Caller caller, string action, string id, string? part)
    {
        var requestId = RequestIds.Of(context);
        context.Response.Headers[InferenceRouter.AuditIdHeader] = requestId;
        var details = new Dictionary<string, string> { ["response_id"] = id, ["request_id"] = requestId, ["content_jurisdiction"] = ContentHome ?? InferenceRouter.Undeclared };
        if (part is not null)
        {
            details["part"] = part;
        }

        await audit.AppendAsync(new AuditRecord
        {
            Kind = AuditKind.Inference,
            Actor = caller.KeyId ?? caller.TenantId,
            Action = action,
            Tenant = caller.TenantId,
            KeyId = caller.KeyId,
            Gateway = options.Value.NodeId,
            Jurisdiction = Here,
            Details = details,
        }, CancellationToken.None);
    }

    /// <summary>
    /// The tenant's stored response, within the retention its policy allows now (a policy that stopped retaining or
    /// shortened its days hides what it no longer allows); null otherwise, whoever else holds the id.
    /// </summary>
    private async Task<StoredResponse?> FindAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        if (caller.Policy?.Retention is not { Mode: RetentionMode.Store } retention || !ResourceIds.IsValid(id, ResourceKind.Other))
        {
            return null;
        }

        RequireReadableHere(caller);
        var now = time.GetUtcNow();
        var stored = await store.GetAsync(caller.TenantId, id, now, cancellationToken);
        return stored is not null && DateTimeOffset.FromUnixTimeMilliseconds(stored.CreatedAt).AddDays(retention.Days) > now ? stored : null;
    }

    /// <summary>
    /// Stored content is read only through a gateway whose jurisdiction the policy allows (reading it elsewhere would move
    /// it), and only from a database whose jurisdiction it still allows (a policy narrowed since deleted what rested there).
    /// </summary>
    private void RequireReadableHere(Caller caller)
    {
        if (caller.Policy is not { } policy || !AllowsHere(policy))
        {
            throw new OpenAIException(StatusCodes.Status403Forbidden,
                $"Refused by allowed_jurisdictions: this gateway is in {Here}, which your policy does not allow; stored responses are read only where it does.",
                "permission_error", null, RoutingCodes.ResidencyViolation);
        }

        if (!AllowsContentHome(policy))
        {
            throw new OpenAIException(StatusCodes.Status403Forbidden,
                $"Refused by allowed_jurisdictions: this gateway's database is in {ContentHome ?? "no declared jurisdiction"}, which your policy does not allow; no stored response is read from it.",
                "permission_error", null, RoutingCodes.ResidencyViolation);
        }
    }

    private bool AllowsHere(ResidencyPolicy policy) => catalog.ResolveMany(policy.AllowedJurisdictions, out _).Contains(Here);

    private static OpenAIException NotFound(string id) =>
        new(StatusCodes.Status404NotFound, $"Response with id '{RequestReader.Shorten(id)}' not found.", "invalid_request_error", "response_id", "not_found");

    /// <summary>A chat turn as stored: the gateway's own format, read back only by this code.</summary>
    private sealed record StoredTurn(string Role, string Content, List<StoredCall>? Calls, string? CallId)
    {
        public static StoredTurn Of(ChatTurn turn) =>
            new(turn.Role, turn.Content, turn.ToolCalls?.Select(c => new StoredCall(c.Id, c.Name, c.Arguments)).ToList(), turn.ToolCallId);

        public ChatTurn ToTurn() => new(Role, Content)
        {
            ToolCalls = Calls?.Select(c => new ChatToolCall(c.Id, c.Name, c.Arguments)).ToList(),
            ToolCallId = CallId,
        };
    }

    private sealed record StoredCall(string Id, string Name, string Arguments);
}

/// <summary>That a request's response was stored, and until when: the audit entry's note (never the content).</summary>
internal sealed record StoredContentNote(string ResponseId, DateTimeOffset ExpiresAt, string Jurisdiction);
