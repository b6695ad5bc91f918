using Microsoft.Net.Http.Headers;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Optimistic concurrency for the admin API's edits that send back whole what GET answered (a tenant's policy, its
/// limits): GET answers an <c>ETag</c>, and a <c>PATCH</c> or <c>PUT</c> with <c>If-Match</c> is applied only while
/// the resource is still at that version, checked in the tenant's activation in the same turn as the write
/// (<see cref="Cluster.Grains.TenantVersions"/>); else 412 <c>precondition_failed</c> and nothing changes. Without
/// <c>If-Match</c> (or with <c>*</c>) the write is applied as before.
/// </summary>
internal static class EditVersions
{
    /// <summary>The header's name, as a 400 or 412 names it.</summary>
    public const string IfMatchHeader = "If-Match";

    /// <summary>States <paramref name="version"/> as the answer's strong ETag.</summary>
    public static void SetETag(HttpContext context, string version) => context.Response.Headers.ETag = $"\"{version}\"";

    /// <summary>
    /// The version <c>If-Match</c> requires: null without the header or with <c>*</c> (the resource exists, which the
    /// handler checks anyway). A weak tag never matches (If-Match compares strongly): 412 at once. More than one tag,
    /// or a value that is not an entity tag, is a 400 naming the header.
    /// </summary>
    public static string? IfMatch(HttpContext context, string what)
    {
        var values = context.Request.Headers.IfMatch;
        if (values.Count == 0)
        {
            return null;
        }

        if (!EntityTagHeaderValue.TryParseStrictList(values, out var tags) || tags.Count != 1)
        {
            throw OpenAIException.BadRequest(
                $"{IfMatchHeader} takes one entity tag as GET answered it in ETag (a quoted string, e.g. \"3f2a...\"), or *; got '{RequestReader.Shorten(values.ToString())}'.",
                IfMatchHeader, "invalid_value");
        }

        var tag = tags[0];
        if (tag.Equals(EntityTagHeaderValue.Any))
        {
            return null;
        }

        return tag.IsWeak ? throw Stale(what) : tag.Tag.ToString().Trim('"');
    }

    /// <summary>The 412 for an edit based on a version that is no longer current.</summary>
    public static OpenAIException Stale(string what) => new(StatusCodes.Status412PreconditionFailed,
        $"The {what} changed after it was read: {IfMatchHeader} no longer matches its ETag, and nothing was changed. Read it again (GET), make the change on what it is now, and send it with the new ETag.",
        "invalid_request_error", IfMatchHeader, "precondition_failed");
}
