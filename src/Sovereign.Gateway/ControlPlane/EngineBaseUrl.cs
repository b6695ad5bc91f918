namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The one rule for an OpenAI-compatible engine's base URL, whether registered through the admin API (<c>base_url</c>)
/// or fronted by a node (<c>Sovereign:Engines:N:BaseUrl</c>).
/// </summary>
internal static class EngineBaseUrl
{
    /// <summary>What is wrong with <paramref name="value"/>, to follow the field's name in a message; null when it is fine.</summary>
    public static string? Problem(string? value)
    {
        if (!Uri.TryCreate(value?.Trim(), UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            return "must be an absolute http(s) URL of an OpenAI-compatible engine (without /v1).";
        }

        // A URL is shown in node lists, the console and audit entries; a secret in it would be shown with it.
        if (!string.IsNullOrEmpty(url.UserInfo) || !string.IsNullOrEmpty(url.Fragment) || !string.IsNullOrEmpty(url.Query))
        {
            return "must not carry credentials, a query or a fragment (it is shown in node lists and the audit log): give the engine's key as its API key.";
        }

        // The relay appends /v1/...; a base URL that already ends in /v1 would send every request to /v1/v1/... and
        // the engine's 404 would reach the client as if the client were wrong.
        var path = url.AbsolutePath.TrimEnd('/');
        if (path.EndsWith("/v1", StringComparison.OrdinalIgnoreCase))
        {
            var suggestion = new UriBuilder(url) { Path = path[..^3] + "/" }.Uri.ToString().TrimEnd('/');
            return $"must not end in /v1 (Sovereign adds /v1 itself): use '{suggestion}'.";
        }

        return null;
    }
}
