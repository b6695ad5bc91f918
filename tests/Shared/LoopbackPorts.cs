using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Sovereign.Tests;

/// <summary>
/// Loopback ports for what cannot bind port 0 and say which it took: a child process given its port (a cluster member,
/// which advertises its <c>--urls</c> port; redis-server; PostgreSQL), or an address where nothing may listen (a
/// refused connection). Shared by the test projects (linked, see their csproj).
/// </summary>
/// <remarks>
/// A port the kernel picks (bind to 0) is in its ephemeral range (32768-60999 by default), and is free when chosen, not
/// when used: every Kestrel or engine another test starts on port 0 draws from that range, so it could take the port
/// before the child bound it ("address already in use") or start listening where a test expects a refusal. Below the
/// range only an explicit bind takes a port, and these ports are drawn at random, so two tests seldom meet.
/// </remarks>
internal static class LoopbackPorts
{
    /// <summary>A loopback port nothing listens on now, below the kernel's ephemeral range.</summary>
    public static int Unused()
    {
        var (low, high) = (20_000, EphemeralStart());
        if (high - low >= 1_000)
        {
            for (var attempt = 0; attempt < 200; attempt++)
            {
                var port = Random.Shared.Next(low, high);
                try
                {
                    using var listener = new TcpListener(IPAddress.Loopback, port);
                    listener.Start();
                    return port;
                }
                catch (SocketException)
                {
                    // Taken: try another.
                }
            }
        }

        // A machine whose ephemeral range starts low: the kernel's choice, with the race described above.
        using var fallback = new TcpListener(IPAddress.Loopback, 0);
        fallback.Start();
        return ((IPEndPoint)fallback.LocalEndpoint).Port;
    }

    /// <summary>The first port of Linux's ephemeral range (32768 where it cannot be read).</summary>
    private static int EphemeralStart()
    {
        try
        {
            var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return int.Parse(range[0], CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return 32_768;
        }
    }
}
