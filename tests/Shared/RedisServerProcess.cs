using System.Diagnostics;
using System.Globalization;

namespace Sovereign.Tests;

/// <summary>
/// A throwaway <c>redis-server</c> for a test (Debian's package; <c>test.sh</c> installs it): on loopback at the given
/// port, nothing saved, its files in <paramref name="directory"/>. Shared by the test projects (linked, see their csproj).
/// </summary>
internal static class RedisServerProcess
{
    /// <summary>Starts it (its output read and dropped, so it never blocks on a full pipe); the caller kills it.</summary>
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
        return redis;
    }
}
