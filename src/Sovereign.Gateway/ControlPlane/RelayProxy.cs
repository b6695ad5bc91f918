using System.Net;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Which proxy the server's own HTTP clients use: the relays to external engines and to cluster nodes, a node's join,
/// the console's calls to this server. None unless the operator names one (<see cref="SovereignOptions.RelayProxy"/>).
/// .NET's default is the environment's (<c>HTTP_PROXY</c>, <c>HTTPS_PROXY</c>, <c>ALL_PROXY</c>), set machine-wide for
/// package downloads or inherited from a shell: every prompt and answer then went through a proxy that may run in
/// another jurisdiction, past the residency decision, which judges only where the engine runs. Data residency fails
/// closed, so the environment is ignored here and said so at start (event 4124).
/// </summary>
internal static partial class RelayProxy
{
    /// <summary>The setting's name in messages.</summary>
    public const string Setting = "Sovereign:RelayProxy";

    /// <summary>The variables .NET's default proxy reads on Linux and macOS (either case).</summary>
    private static readonly string[] EnvironmentVariables = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

    /// <summary>
    /// Sets <paramref name="handler"/>'s proxy: the one configured (<paramref name="proxy"/>, validated at start), or
    /// none, whatever the environment says.
    /// </summary>
    public static SocketsHttpHandler Apply(SocketsHttpHandler handler, string? proxy)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (string.IsNullOrWhiteSpace(proxy))
        {
            handler.UseProxy = false;
            handler.Proxy = null;
        }
        else
        {
            handler.UseProxy = true;
            handler.Proxy = Create(proxy);
        }

        return handler;
    }

    /// <summary>What is wrong with the setting's value, or null when it is usable (or unset).</summary>
    public static string? Problem(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            // Unset, as Apply takes it (an empty variable in an environment file).
            return null;
        }

        if (!Uri.TryCreate(value.Trim(), UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https" or "socks5" or "socks4" or "socks4a") || uri.Host.Length == 0)
        {
            return $"{Setting} must be a proxy URL such as http://proxy.example:3128 (http, https, socks5, socks4 or socks4a); got '{WithoutPassword(value.Trim())}'.";
        }

        // A scheme .NET does not know (socks5) parses with an empty path, a known one with "/".
        if (uri.AbsolutePath is not ("/" or "") || uri.Query.Length > 0 || uri.Fragment.Length > 0)
        {
            return $"{Setting} names a proxy by its scheme, host and port only (with user:password@ if it needs them); '{uri.Scheme}://{uri.Authority}' without the rest.";
        }

        return null;
    }

    /// <summary>
    /// <paramref name="value"/> with whatever stands between its scheme and an <c>@</c> shown as <c>***</c>: a value that is
    /// not a usable URL may still hold a password, and the refusal is printed and logged.
    /// </summary>
    private static string WithoutPassword(string value)
    {
        var at = value.LastIndexOf('@');
        if (at < 0)
        {
            return value;
        }

        var scheme = value.IndexOf("://", StringComparison.Ordinal);
        var start = scheme >= 0 && scheme < at ? scheme + 3 : 0;
        return string.Concat(value.AsSpan(0, start), "***", value.AsSpan(at));
    }

    /// <summary>The proxy variables set in this process's environment, by name (never their values, which may hold a password).</summary>
    public static IReadOnlyList<string> EnvironmentProxies() =>
        [.. EnvironmentVariables.Where(name => !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(name)))];

    /// <summary>The setting's proxy without any user information, for logs.</summary>
    public static string Describe(string proxy)
    {
        var uri = new Uri(proxy.Trim());
        return $"{uri.Scheme}://{uri.Host}:{uri.Port}";
    }

    private static WebProxy Create(string value)
    {
        var uri = new Uri(value.Trim());
        var proxy = new WebProxy(new Uri(Describe(value))) { BypassProxyOnLocal = false };
        if (uri.UserInfo.Length > 0)
        {
            var separator = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            proxy.Credentials = separator < 0
                ? new NetworkCredential(Uri.UnescapeDataString(uri.UserInfo), string.Empty)
                : new NetworkCredential(Uri.UnescapeDataString(uri.UserInfo[..separator]), Uri.UnescapeDataString(uri.UserInfo[(separator + 1)..]));
        }

        return proxy;
    }

    /// <summary>Says at start which proxy the relays use, and that an environment proxy is not one of them.</summary>
    internal sealed class Notice(IOptions<SovereignOptions> options, ILogger<Notice> logger) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            if (!string.IsNullOrWhiteSpace(options.Value.RelayProxy))
            {
                LogConfigured(logger, Describe(options.Value.RelayProxy));
            }
            else if (EnvironmentProxies() is { Count: > 0 } variables)
            {
                LogEnvironmentIgnored(logger, string.Join(", ", variables));
            }

            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    [LoggerMessage(EventId = 4124, EventName = "EnvironmentProxyIgnored", Level = LogLevel.Warning,
        Message = "The environment sets {Variables}; relays to engines and cluster nodes do not use it: a proxy may run in another jurisdiction, and tenants' prompts and answers would pass through it. Name the proxy in " + Setting + " to relay through it")]
    private static partial void LogEnvironmentIgnored(ILogger logger, string variables);

    [LoggerMessage(EventId = 4125, EventName = "RelayProxyConfigured", Level = LogLevel.Information,
        Message = "Relays to engines and cluster nodes go through the proxy {Proxy} (" + Setting + "): it carries every tenant's prompts and answers, so it must run where their policies allow")]
    private static partial void LogConfigured(ILogger logger, string proxy);
}
