using System.Diagnostics;
using System.Globalization;

namespace Sovereign.Tests;

/// <summary>
/// A throwaway <c>redis-server</c> for a test (Debian's package; <c>test.sh</c> installs it): on loopback at the given
/// port, nothing saved, its files in <paramref name="directory"/>. Shared by the test projects (linked, see their csproj).
/// </summary>
internal static class RedisServerProcess
{
    /// <summary>
    /// Starts it (its output read and dropped, so it never blocks on a full pipe) and returns once it answers a PING, so
    /// whatever starts next finds it listening; the caller kills it. It returned as the process started, and a member
    /// started at once could find no Redis and exit before it was ready (MembershipLostTests, seen once in a suite run).
    /// </summary>
    public static Process Start(int port, string directory, string? password = null)
    {
        var server = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists);
        Assert.True(server is not null, "redis-server is not installed: apt-get install redis-server (test.sh does this).");
        var start = new ProcessStartInfo(server) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        string[] args = ["--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory];
        foreach (var arg in password is null ? args : [.. args, "--requirepass", password])
        {
            start.ArgumentList.Add(arg);
        }

        var redis = Process.Start(start)!;
        redis.OutputDataReceived += (_, _) => { };
        redis.ErrorDataReceived += (_, _) => { };
        redis.BeginOutputReadLine();
        redis.BeginErrorReadLine();
        WaitUntilAnswering(redis, port);
        return redis;
    }

    /// <summary>
    /// Asks PING until the server answers it (any reply but LOADING: one that requires a password says NOAUTH); two
    /// minutes at most, a bound for a hang (it answers in milliseconds; 30 s, as before, is a pause a loaded CI runner can reach).
    /// </summary>
    private static void WaitUntilAnswering(Process redis, int port)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            Assert.False(redis.HasExited, $"redis-server exited ({(redis.HasExited ? redis.ExitCode : 0)}) before it answered on port {port}.");
            try
            {
                using var client = new System.Net.Sockets.TcpClient();
                client.Connect(System.Net.IPAddress.Loopback, port);
                using var stream = client.GetStream();
                stream.ReadTimeout = 2000;
                stream.Write("PING\r\n"u8);
                var reply = new byte[64];
                var read = stream.Read(reply, 0, reply.Length);
                var text = System.Text.Encoding.ASCII.GetString(reply, 0, read);
                if (read > 0 && (text.StartsWith('+') || (text.StartsWith('-') && !text.StartsWith("-LOADING", StringComparison.Ordinal))))
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is System.Net.Sockets.SocketException or IOException)
            {
                // Not listening yet.
            }

            Assert.True(DateTime.UtcNow < deadline, $"redis-server did not answer on port {port} within two minutes.");
            Thread.Sleep(50);
        }
    }
}
