using System.Net;
using System.Net.Sockets;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Where an engine registered through the API may be: anywhere but a link-local address (169.254.0.0/16, fe80::/10)
/// or a cloud's instance metadata service (<c>metadata.google.internal</c>, AWS's <c>fd00:ec2::254</c>, Alibaba's
/// <c>100.100.100.200</c>), unless <see cref="Hosting.SovereignOptions.AllowLinkLocalEngineUrls"/>. The gateway sends
/// tenants' prompts and the engine's key there and shows whether it answers: at a metadata address it reached the
/// service that hands out the machine's cloud credentials. Loopback and private ranges stay open: nodes and engines
/// run there. A name is resolved at registration and refused when any of its addresses is such an address; a name
/// that does not resolve then is taken (an engine may be registered before its DNS record exists).
/// </summary>
internal static class EngineAddressRule
{
    /// <summary>The setting that lifts the rule, as messages name it.</summary>
    public const string Setting = "Sovereign:AllowLinkLocalEngineUrls";

    /// <summary>The longest a registration waits for a name to resolve.</summary>
    public static readonly TimeSpan ResolveTimeout = TimeSpan.FromSeconds(2);

    // Names the clouds give their metadata services inside an instance (GCP; AWS's EC2 instance-data).
    private static readonly HashSet<string> MetadataNames = new(StringComparer.OrdinalIgnoreCase)
    {
        "metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal",
    };

    // Metadata services at addresses outside the link-local ranges: AWS's IPv6 endpoint (in fd00::/8, otherwise
    // private) and Alibaba Cloud's (in the shared 100.64.0.0/10 range).
    private static readonly IPAddress[] MetadataAddresses = [IPAddress.Parse("fd00:ec2::254"), IPAddress.Parse("100.100.100.200")];

    /// <summary>Resolves a host name to its addresses (<see cref="Dns.GetHostAddressesAsync(string, CancellationToken)"/>).</summary>
    public delegate Task<IPAddress[]> Resolver(string host, CancellationToken cancellationToken);

    /// <summary>
    /// What is wrong with <paramref name="url"/>'s host, to follow the field's name in a message; null when it may be
    /// registered. <paramref name="url"/> has passed <see cref="EngineBaseUrl.Problem"/>.
    /// </summary>
    public static async Task<string?> ProblemAsync(Uri url, bool allowed, Resolver resolve, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(url);
        ArgumentNullException.ThrowIfNull(resolve);
        if (allowed)
        {
            return null;
        }

        var host = url.IdnHost.TrimEnd('.');
        var problem = LiteralProblem(url);
        if (problem is not null || url.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6)
        {
            return problem;
        }

        IPAddress[] addresses;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ResolveTimeout);
        try
        {
            addresses = await resolve(host, timeout.Token);
        }
        catch (Exception ex) when (ex is SocketException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return null; // not resolvable now: nothing it names can be reached through it yet
        }

        foreach (var address in addresses)
        {
            if (Forbidden(address) is { } what)
            {
                return $"names {host}, which resolves to {what}: {Refusal}";
            }
        }

        return null;
    }

    /// <summary>
    /// What is wrong with <paramref name="url"/>'s host as written, without resolving it (a metadata service's name, a
    /// link-local or metadata address); null when nothing is, or when only resolving the name could tell. For the
    /// configuration's fronted engines (<c>Sovereign:Engines</c>), checked at start; a name is checked at each connection.
    /// </summary>
    public static string? LiteralProblem(Uri url)
    {
        ArgumentNullException.ThrowIfNull(url);
        var host = url.IdnHost.TrimEnd('.');
        if (MetadataNames.Contains(host))
        {
            return $"names {host}, a cloud's instance metadata service, which hands out the machine's credentials: {Refusal}";
        }

        return url.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6 && IPAddress.TryParse(url.DnsSafeHost, out var literal) && Forbidden(literal) is { } what
            ? $"is {what}: {Refusal}"
            : null;
    }

    /// <summary>
    /// The engine client's connect step (<see cref="SocketsHttpHandler.ConnectCallback"/>): the rule again at every
    /// connection, on the addresses actually connected to, unless <paramref name="allowed"/>. Registration checks a URL
    /// once, as given; an engine URL stored before the rule existed, set by a path that does not check it (fronted
    /// engines in the configuration, a database copied or imported) or a name whose DNS record changed since reached
    /// the address all the same. A refused connection throws <see cref="EngineAddressRefusedException"/> (fail closed:
    /// nothing is sent), which the relay logs naming the engine (event 4144) and treats as an engine it cannot reach.
    /// </summary>
    public static Func<SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>> Connector(Func<bool> allowed)
    {
        ArgumentNullException.ThrowIfNull(allowed);
        return async (context, cancellationToken) =>
        {
            var endpoint = context.DnsEndPoint;
            var host = endpoint.Host.Trim('[', ']').TrimEnd('.');
            var rule = !allowed();
            if (rule && MetadataNames.Contains(host))
            {
                throw new EngineAddressRefusedException($"{host} names a cloud's instance metadata service, which hands out the machine's credentials: {Refusal}");
            }

            var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, cancellationToken);
            foreach (var address in rule ? addresses : [])
            {
                if (Forbidden(address) is { } what)
                {
                    throw new EngineAddressRefusedException(literal is null ? $"{host} resolves to {what}: {Refusal}" : $"{host} is {what}: {Refusal}");
                }
            }

            // As the handler's own connect: a dual-mode socket, each address in turn, Nagle off.
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(addresses, endpoint.Port, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        };
    }

    /// <summary>Says what <paramref name="address"/> is when an engine may not be there; null when it may.</summary>
    internal static string? Forbidden(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (MetadataAddresses.Contains(address))
        {
            return $"{address}, a cloud's instance metadata service";
        }

        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            Span<byte> bytes = stackalloc byte[4];
            address.TryWriteBytes(bytes, out _);
            return bytes[0] == 169 && bytes[1] == 254 ? $"{address}, a link-local address (169.254.0.0/16, where clouds serve instance metadata)" : null;
        }

        return address.IsIPv6LinkLocal ? $"{address}, a link-local address (fe80::/10)" : null;
    }

    private const string Refusal = "an engine there is refused unless " + Setting + " is true.";
}

/// <summary>
/// A connection to an engine refused by <see cref="EngineAddressRule"/>: its address is link-local or a cloud's metadata
/// service, and <see cref="EngineAddressRule.Setting"/> is not true. The message names the host and what it is.
/// </summary>
internal sealed class EngineAddressRefusedException(string message) : IOException(message);
