using System.Globalization;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// How a cluster node tells the gateway that relayed a generation how many prompt tokens it measured, in a response
/// header sent before the first token. The engine's usage comes only at the end of a stream; a client that left
/// before it (a stopped chat, a dropped connection) was billed no prompt tokens through a gateway, though the node ran
/// the prompt and a request to the gateway's own engine pays for it. Only requests of the cluster's relay caller get
/// it, only nodes' reports are read (as <see cref="RelayComputeReport"/>), and the gateway never passes it on.
/// </summary>
internal static class RelayPromptTokens
{
    public const string Header = "x-sovereign-prompt-tokens";

    /// <summary>States the prompt tokens the node measured; called before anything of the answer is written.</summary>
    public static void Attach(HttpContext context, long promptTokens) =>
        context.Response.Headers[Header] = promptTokens.ToString(CultureInfo.InvariantCulture);

    /// <summary>The prompt tokens a node's answer states, if it states a readable count.</summary>
    public static int? From(HttpResponseMessage response) =>
        response.Headers.TryGetValues(Header, out var values) && values.ToArray() is [var value]
            && int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var tokens)
            ? tokens
            : null;
}
