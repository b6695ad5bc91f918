using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.OpenAI;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// <c>/admin/v1/operator-keys</c>: the operator credential's rotation. <c>POST</c> issues a key (its secret shown once,
/// only its SHA-256 stored), <c>GET</c> lists the issued keys and this member's configured tokens without secrets,
/// <c>DELETE .../{key_id}</c> revokes an issued key or a configured token (by its id, <c>operator</c> or
/// <c>operator:NAME</c>). Every change is audited (<c>operator_key.create</c>, <c>operator_key.revoke</c>: who, when,
/// which key id; never a secret). The credential a request authenticates with cannot revoke itself, so the API never
/// leaves the operator without one: revoke an old key with the new one.
/// </summary>
internal static class OperatorKeysApi
{
    /// <summary>Maps the operator-key endpoints on the admin group (its filter has authenticated the operator).</summary>
    public static void MapOperatorKeys(this RouteGroupBuilder admin)
    {
        admin.MapGet("/operator-keys", ListAsync);
        admin.MapPost("/operator-keys", CreateAsync);
        admin.MapDelete("/operator-keys/{key_id}", RevokeAsync);
    }

    private static async Task<IResult> ListAsync(HttpContext context, ControlPlaneStore store, AdminToken tokens, TimeProvider time)
    {
        var rows = await store.ListOperatorKeysAsync(context.RequestAborted);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var current = AdminToken.CredentialOf(context)?.Id;
        var configured = tokens.ConfiguredTokens().Select(t =>
        {
            var revocation = rows.FirstOrDefault(r => r.Prefix is null && r.SecretHash == t.Hash);
            return (object)new
            {
                id = t.Id,
                kind = "configured",
                name = t.Id,
                prefix = (string?)null,
                created_at = (long?)null,
                created_by = (string?)null,
                expires_at = (long?)null,
                revoked_at = revocation?.RevokedAt,
                revoked_by = revocation?.RevokedBy,
                state = revocation is null ? "active" : "revoked",
                current = t.Id == current,
            };
        });
        var issued = rows.Where(r => r.Prefix is not null).Select(r => KeyJson(r, now, current));
        return Results.Json(new { data = configured.Concat(issued) }, OpenAIJson.Options);
    }

    private static async Task<IResult> CreateAsync(HttpContext context, ControlPlaneStore store, AuditLog audit, TimeProvider time)
    {
        var request = await RequestReader.ReadOptionalAsync<OperatorKeyCreateRequest>(context);
        var name = request.Name is null
            ? throw OpenAIException.BadRequest("name is required: who or what will use the key (it names the key in the audit log).", "name", "missing_required_parameter")
            : ResourceIds.RequireName(request.Name, "name");
        if (name.Contains('/', StringComparison.Ordinal))
        {
            // The actor is operator:NAME/opk_...: a '/' in the name would let it pose as another key's actor.
            throw OpenAIException.BadRequest("name must not contain '/'.", "name", "invalid_value");
        }

        var now = time.GetUtcNow();
        var expiry = AdminApi.KeyExpiry(new KeyCreateRequest { ExpiresAt = request.ExpiresAt, ExpiresIn = request.ExpiresIn }, now);
        var expiresAt = expiry?.ToUnixTimeMilliseconds();
        var (id, secret, prefix, hash) = AdminToken.CreateKey();
        var actor = AdminToken.ActorOf(context);
        var record = new OperatorKeyRecord(id, name, prefix, hash, now.ToUnixTimeMilliseconds(), actor, expiresAt, null, null);
        await store.InsertOperatorKeyAsync(record, context.RequestAborted);
        var details = new Dictionary<string, string> { ["key_id"] = id, ["name"] = name, ["prefix"] = prefix };
        if (expiresAt is { } expires)
        {
            details["expires_at"] = DateTimeOffset.FromUnixTimeMilliseconds(expires).ToString("O", CultureInfo.InvariantCulture);
        }

        await AppendAsync(context, audit, "operator_key.create", details);
        return Results.Json(new { key = KeyJson(record, record.CreatedAt, null), secret }, OpenAIJson.Options, statusCode: StatusCodes.Status201Created);
    }

    private static async Task<IResult> RevokeAsync([Microsoft.AspNetCore.Mvc.FromRoute(Name = "key_id")] string keyId, HttpContext context, ControlPlaneStore store,
        AdminToken tokens, AuditLog audit, TimeProvider time)
    {
        var current = AdminToken.CredentialOf(context);
        if (current?.Id == keyId)
        {
            throw new OpenAIException(StatusCodes.Status409Conflict,
                $"'{keyId}' is the credential this request authenticates with: revoke it with another operator key (issue one with POST /admin/v1/operator-keys), so an operator credential always remains.",
                "invalid_request_error", "key_id", "operator_key_in_use");
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var actor = AdminToken.ActorOf(context);
        OperatorKeyRecord? row;
        if (tokens.ConfiguredTokens().FirstOrDefault(t => t.Id == keyId) is { Id: not null } configured)
        {
            // A configured token is revoked by the hash of the secret this member holds: members that hold the same
            // one (the usual case, one Sovereign__AdminToken for all) refuse it too, from their next request.
            row = await store.FindOperatorKeyByHashAsync(configured.Hash, context.RequestAborted);
            if (row is null)
            {
                row = new OperatorKeyRecord("cfg_" + configured.Hash[..16], configured.Id, null, configured.Hash, now, actor, null, now, actor);
                try
                {
                    await store.InsertOperatorKeyAsync(row, context.RequestAborted);
                }
                catch (System.Data.Common.DbException)
                {
                    // Revoked at another gateway at the same moment (the hash is unique): that revocation stands.
                    var raced = await store.FindOperatorKeyByHashAsync(configured.Hash, CancellationToken.None);
                    if (raced is null)
                    {
                        throw;
                    }

                    return Json(raced, newly: false);
                }

                await AppendAsync(context, audit, "operator_key.revoke", new() { ["key_id"] = configured.Id, ["kind"] = "configured" });
                return Json(row, newly: true);
            }

            return Json(row, newly: false);
        }

        if (!keyId.StartsWith("opk_", StringComparison.Ordinal))
        {
            throw NotFound(keyId);
        }

        if (await store.RevokeOperatorKeyAsync(keyId, now, actor, context.RequestAborted) is not ({ Prefix: not null } revoked, var newly))
        {
            throw NotFound(keyId);
        }

        row = revoked;
        // A retried revoke changes nothing and is not audited again (the first one's time and actor are kept).
        if (newly)
        {
            await AppendAsync(context, audit, "operator_key.revoke", new() { ["key_id"] = keyId, ["name"] = row.Name, ["kind"] = "issued" });
        }

        return Json(row, newly);
    }

    private static IResult Json(OperatorKeyRecord row, bool newly) =>
        Results.Json(new { id = row.Prefix is null ? row.Name : row.Id, revoked = true, revoked_at = row.RevokedAt, revoked_by = row.RevokedBy, newly }, OpenAIJson.Options);

    private static OpenAIException NotFound(string keyId) => new(StatusCodes.Status404NotFound,
        $"No operator key '{RequestReader.Shorten(keyId)}': issued keys are opk_..., configured tokens 'operator' or 'operator:NAME' (GET /admin/v1/operator-keys lists them).",
        "invalid_request_error", "key_id", "operator_key_not_found");

    private static object KeyJson(OperatorKeyRecord r, long now, string? current) => new
    {
        id = r.Id,
        kind = "issued",
        name = r.Name,
        prefix = r.Prefix,
        created_at = r.CreatedAt,
        created_by = r.CreatedBy,
        expires_at = r.ExpiresAt,
        revoked_at = r.RevokedAt,
        revoked_by = r.RevokedBy,
        state = r.RevokedAt is not null ? "revoked" : r.ExpiresAt is { } e && now >= e ? "expired" : "active",
        current = r.Id == current,
    };

    private static Task AppendAsync(HttpContext context, AuditLog audit, string action, Dictionary<string, string> details) =>
        audit.AppendAsync(new AuditRecord { Kind = AuditKind.Admin, Actor = AdminToken.ActorOf(context), Action = action, Details = RequestIds.Stated(context, details) });
}

/// <summary>The body of <c>POST /admin/v1/operator-keys</c>.</summary>
internal sealed class OperatorKeyCreateRequest
{
    /// <summary>Who or what uses the key (the audit log names it).</summary>
    public string? Name { get; set; }

    /// <summary>When it stops authenticating: unix seconds or ISO 8601; or <see cref="ExpiresIn"/>.</summary>
    public JsonElement? ExpiresAt { get; set; }

    /// <summary>Seconds from now until it stops authenticating.</summary>
    public long? ExpiresIn { get; set; }
}
