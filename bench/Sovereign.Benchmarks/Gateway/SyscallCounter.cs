using System.Diagnostics;
using System.Globalization;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// Counts this process's system calls over a span of the benchmark with <c>strace -c -f -p PID</c> (every thread;
/// the client, the gateway and the mock all live here, as in the rest of <c>pipeline</c>). ptrace stops the process at
/// every call, so the span runs several times slower than untraced: read the counts per request, never the times.
/// </summary>
internal sealed class SyscallCounter : IDisposable
{
    private readonly string _file = Path.Combine(Path.GetTempPath(), $"sovereign-strace-{Environment.ProcessId}-{Guid.NewGuid():N}.txt");
    private Process? _strace;

    /// <summary>Whether strace can be started here (it is not on every machine, and ptrace may be refused).</summary>
    public static bool Available => File.Exists("/usr/bin/strace") || File.Exists("/bin/strace");

    /// <summary>Attaches to every thread of this process; returns once strace says it has attached to them.</summary>
    public async Task StartAsync()
    {
        var threads = Directory.GetDirectories("/proc/self/task").Length;
        var attached = 0;
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var info = new ProcessStartInfo("strace", $"-c -f -p {Environment.ProcessId.ToString(CultureInfo.InvariantCulture)} -o {_file}")
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        _strace = new Process { StartInfo = info };
        _strace.ErrorDataReceived += (_, e) =>
        {
            // "strace: Process N attached" once per thread; threads started later are followed (-f).
            if (e.Data is { } line && line.Contains("attached", StringComparison.Ordinal) && Interlocked.Increment(ref attached) >= threads)
            {
                ready.TrySetResult();
            }
        };
        _strace.Start();
        _strace.BeginErrorReadLine();
        await Task.WhenAny(ready.Task, Task.Delay(TimeSpan.FromSeconds(5)));
    }

    /// <summary>Detaches (SIGINT) and returns each call's count, most frequent first.</summary>
    public async Task<IReadOnlyList<(string Call, long Count)>> StopAsync()
    {
        if (_strace is null)
        {
            return [];
        }

        using (var kill = Process.Start("kill", ["-INT", _strace.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        await _strace.WaitForExitAsync();
        var counts = new List<(string, long)>();
        foreach (var line in await File.ReadAllLinesAsync(_file))
        {
            // % time     seconds  usecs/call     calls    errors syscall
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length is 5 or 6 && double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out _)
                && long.TryParse(parts[3], NumberStyles.Integer, CultureInfo.InvariantCulture, out var calls) && parts[^1] != "total")
            {
                counts.Add((parts[^1], calls));
            }
        }

        return [.. counts.OrderByDescending(c => c.Item2)];
    }

    public void Dispose()
    {
        _strace?.Dispose();
        try
        {
            File.Delete(_file);
        }
        catch (IOException)
        {
        }
    }
}
