using System.Globalization;
using System.Text;
using Sovereign.Gateway.Metering;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// How a cluster node tells the gateway that relayed a request the compute seconds it ran (its engine's share of each
/// batched step, or its fronted engine's busy time): the gateway bills the tenant, at the price of the node's pool and
/// device class, and cannot measure a remote engine itself. A JSON answer carries it as a response header; a stream,
/// whose headers went before the work ended, as an event-stream comment before <c>[DONE]</c>, which clients ignore and
/// the gateway does not pass on. Only requests of the cluster's relay caller get it, and only nodes' reports are read.
/// </summary>
internal static class RelayComputeReport
{
    public const string Header = "x-sovereign-compute-seconds";

    private static readonly byte[] CommentPrefix = Encoding.ASCII.GetBytes(": " + Header + " ");
    private static readonly object PendingKey = new();

    /// <summary>
    /// Attaches the request's billed compute seconds to its answer: as a header while none is sent, else as the comment
    /// <see cref="Comment"/> writes before the stream's <c>[DONE]</c>.
    /// </summary>
    public static void Attach(HttpContext context, decimal computeSeconds)
    {
        var value = computeSeconds.ToString("0.######", CultureInfo.InvariantCulture);
        if (!context.Response.HasStarted)
        {
            context.Response.Headers[Header] = value;
        }

        context.Items[PendingKey] = value;
    }

    /// <summary>The comment line to write before a stream's <c>[DONE]</c>, when the request has a report; else null.</summary>
    public static byte[]? Comment(HttpContext context) =>
        context.Items.TryGetValue(PendingKey, out var value) && value is string seconds
            ? [.. CommentPrefix, .. Encoding.ASCII.GetBytes(seconds), (byte)'\n', (byte)'\n']
            : null;

    /// <summary>Whether an event-stream line is a report, and its seconds (null when it is one that cannot be read).</summary>
    public static bool IsComment(ReadOnlySpan<byte> line, out decimal? seconds)
    {
        seconds = null;
        if (!line.StartsWith(CommentPrefix))
        {
            return false;
        }

        seconds = Parse(Encoding.ASCII.GetString(line[CommentPrefix.Length..]).Trim());
        return true;
    }

    /// <summary>The report a node's JSON answer carries in its headers, if it carries a readable one.</summary>
    public static decimal? FromHeaders(HttpResponseMessage response) =>
        response.Headers.TryGetValues(Header, out var values) && values.ToArray() is [var value] ? Parse(value) : null;

    /// <summary>
    /// A reported figure: a plain non-negative decimal number; above the bound a request's reservation covers it is
    /// billed at the bound by the metering stage (<see cref="RequestMetering.MaxComputeSecondsPerRequest"/>).
    /// </summary>
    private static decimal? Parse(string text) =>
        decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds) ? seconds : null;
}
