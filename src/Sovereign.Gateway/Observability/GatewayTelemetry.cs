using System.Diagnostics;

namespace Sovereign.Gateway.Observability;

/// <summary>The gateway's trace source. Spans carry ids, models and token counts; never prompts or outputs.</summary>
public static class GatewayTelemetry
{
    /// <summary>The <see cref="ActivitySource"/> name to subscribe to.</summary>
    public const string ActivitySourceName = "Sovereign.Gateway";

    internal static readonly ActivitySource Source = new(ActivitySourceName);
}
