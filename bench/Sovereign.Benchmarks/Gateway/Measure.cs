using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>A latency distribution in milliseconds.</summary>
internal sealed class Dist
{
    private readonly double[] _sorted;

    public Dist(IEnumerable<double> values)
    {
        _sorted = values.Where(v => !double.IsNaN(v)).ToArray();
        Array.Sort(_sorted);
    }

    public int Count => _sorted.Length;

    public double P50 => Q(0.50);

    public double P90 => Q(0.90);

    public double P99 => Q(0.99);

    public double Max => _sorted.Length == 0 ? double.NaN : _sorted[^1];

    public double Mean => _sorted.Length == 0 ? double.NaN : _sorted.Average();

    public double Q(double q) => _sorted.Length == 0 ? double.NaN : _sorted[Math.Clamp((int)Math.Ceiling(q * _sorted.Length) - 1, 0, _sorted.Length - 1)];

    public static Dist Merge(IEnumerable<Dist> parts) => new(parts.SelectMany(p => p._sorted));
}

/// <summary>The outcome of running one operation many times.</summary>
internal sealed record RunStats(Dist Latency, int Errors, TimeSpan Elapsed, TimeSpan Cpu, Dist? StartLag, string? FirstError)
{
    /// <summary>Time the runtime paused every thread for garbage collection during the run.</summary>
    public TimeSpan GcPause { get; init; }

    /// <summary>Full (gen 2) collections during the run.</summary>
    public int Gen2 { get; init; }

    /// <summary>Collections of any generation during the run (each gen 1 or gen 2 collection is also a gen 0 one).</summary>
    public int Gen0 { get; init; }

    /// <summary>Gen 1 collections during the run (gen 2 ones included).</summary>
    public int Gen1 { get; init; }

    /// <summary>The process's context switches during the run (every thread that slept and was woken, or was preempted).</summary>
    public long ContextSwitches { get; init; }

    /// <summary>Bytes the process handed to write calls during the run (database pages and sockets).</summary>
    public long BytesWritten { get; init; }

    /// <summary>
    /// Work items the thread pool ran during the run: each is a hand-off between threads (a continuation queued, a
    /// Task.Run), counted whether or not a thread had to be woken for it, so it does not move with load.
    /// </summary>
    public long PoolWorkItems { get; init; }

    public double PerSecond => (Latency.Count + Errors) / Elapsed.TotalSeconds;
}

/// <summary>
/// Drives an operation back to back (one caller, closed loop) or open loop at a fixed arrival rate. The paced
/// driver is one dedicated thread that wakes about every millisecond (Thread.Sleep(1)) and starts, on the thread
/// pool, every request whose scheduled time has come; each latency is measured from the request's actual start,
/// and the start lag behind the schedule is reported separately, so pacing error is visible rather than hidden.
/// </summary>
internal static class Driver
{
    public static async Task<RunStats> BackToBackAsync(int count, Func<int, Task> operation)
    {
        var latencies = new double[count];
        var errors = 0;
        string? firstError = null;
        var cpu = Environment.CpuUsage.TotalTime;
        var switches = ProcessSwitches.Count();
        var written = ProcessSwitches.BytesWritten();
        var workItems = ThreadPool.CompletedWorkItemCount;
        var (pause, gen2) = (GC.GetTotalPauseDuration(), GC.CollectionCount(2));
        var (gen0, gen1) = (GC.CollectionCount(0), GC.CollectionCount(1));
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            var start = Stopwatch.GetTimestamp();
            try
            {
                await operation(i);
                latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                latencies[i] = double.NaN;
                errors++;
                firstError ??= ex.GetType().Name + ": " + ex.Message;
            }
        }

        clock.Stop();
        return new RunStats(new Dist(latencies), errors, clock.Elapsed, Environment.CpuUsage.TotalTime - cpu, null, firstError)
        {
            GcPause = GC.GetTotalPauseDuration() - pause,
            Gen2 = GC.CollectionCount(2) - gen2,
            Gen0 = GC.CollectionCount(0) - gen0,
            Gen1 = GC.CollectionCount(1) - gen1,
            ContextSwitches = ProcessSwitches.Count() - switches,
            BytesWritten = ProcessSwitches.BytesWritten() - written,
            PoolWorkItems = ThreadPool.CompletedWorkItemCount - workItems,
        };
    }

    public static async Task<RunStats> PacedAsync(int count, double perSecond, Func<int, Task> operation)
    {
        var latencies = new double[count];
        var lags = new double[count];
        var tasks = new Task[count];
        var errors = 0;
        string? firstError = null;
        var interval = Stopwatch.Frequency / perSecond;
        var cpu = Environment.CpuUsage.TotalTime;
        var (pause, gen2) = (GC.GetTotalPauseDuration(), GC.CollectionCount(2));
        var origin = Stopwatch.GetTimestamp();

        async Task RunOne(int i, long due)
        {
            var start = Stopwatch.GetTimestamp();
            lags[i] = Stopwatch.GetElapsedTime(due, start).TotalMilliseconds;
            try
            {
                await operation(i);
                latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                latencies[i] = double.NaN;
                Interlocked.Increment(ref errors);
                Interlocked.CompareExchange(ref firstError, ex.GetType().Name + ": " + ex.Message, null);
            }
        }

        var pacer = new Thread(() =>
        {
            for (var i = 0; i < count; i++)
            {
                var due = origin + (long)(i * interval);
                while (Stopwatch.GetTimestamp() < due)
                {
                    Thread.Sleep(1);
                }

                var index = i;
                tasks[i] = Task.Run(() => RunOne(index, due));
            }
        })
        { IsBackground = true, Name = "bench pacer", Priority = ThreadPriority.AboveNormal };
        pacer.Start();
        await Task.Run(pacer.Join);
        await Task.WhenAll(tasks);
        var elapsed = Stopwatch.GetElapsedTime(origin);
        return new RunStats(new Dist(latencies), errors, elapsed, Environment.CpuUsage.TotalTime - cpu, new Dist(lags), firstError)
        {
            GcPause = GC.GetTotalPauseDuration() - pause,
            Gen2 = GC.CollectionCount(2) - gen2,
        };
    }

    /// <summary>C callers, each looping until the deadline; returns what each completed call returned.</summary>
    public static async Task<(List<T> Results, TimeSpan Elapsed, TimeSpan Cpu, int Errors, string? FirstError)> ConcurrentAsync<T>(int callers, TimeSpan duration, Func<int, int, Task<T>> operation)
    {
        var results = new List<T>();
        var errors = 0;
        string? firstError = null;
        var cpu = Environment.CpuUsage.TotalTime;
        var clock = Stopwatch.StartNew();
        var deadline = clock.Elapsed + duration;
        var workers = Enumerable.Range(0, callers).Select(c => Task.Run(async () =>
        {
            var local = new List<T>();
            for (var n = 0; clock.Elapsed < deadline; n++)
            {
                try
                {
                    local.Add(await operation(c, n));
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, ex.GetType().Name + ": " + ex.Message, null);
                }
            }

            lock (results)
            {
                results.AddRange(local);
            }
        })).ToArray();
        await Task.WhenAll(workers);
        clock.Stop();
        return (results, clock.Elapsed, Environment.CpuUsage.TotalTime - cpu, errors, firstError);
    }
}

/// <summary>Prints aligned markdown tables and the machine header.</summary>
internal static class Report
{
    public static string Ms(double value) => double.IsNaN(value) ? "-" : value.ToString(value < 0.1 ? "0.000" : "0.00", CultureInfo.InvariantCulture);

    public static string Us(double ms) => double.IsNaN(ms) ? "-" : (ms * 1000).ToString(ms < 0.01 ? "0.00" : "0.0", CultureInfo.InvariantCulture);

    public static string Ratio(double value, double baseline) =>
        double.IsNaN(value) || double.IsNaN(baseline) || baseline <= 0 ? "-" : (value / baseline).ToString(value / baseline < 10 ? "0.00x" : "0x", CultureInfo.InvariantCulture);

    public static string N(double value, string format = "N0") => value.ToString(format, CultureInfo.InvariantCulture);

    public static void Table(string[] header, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { header };
        all.AddRange(rows);
        var widths = Enumerable.Range(0, header.Length).Select(c => all.Max(r => c < r.Length ? r[c].Length : 0)).ToArray();
        var sb = new StringBuilder();
        for (var r = 0; r < all.Count; r++)
        {
            sb.Append('|');
            for (var c = 0; c < header.Length; c++)
            {
                var cell = c < all[r].Length ? all[r][c] : "";
                sb.Append(' ').Append(c == 0 ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c])).Append(" |");
            }

            sb.AppendLine();
            if (r == 0)
            {
                sb.Append('|');
                for (var c = 0; c < header.Length; c++)
                {
                    sb.Append(c == 0 ? new string('-', widths[c] + 2) : new string('-', widths[c] + 1) + ":").Append('|');
                }

                sb.AppendLine();
            }
        }

        Console.Write(sb.ToString());
        Console.WriteLine();
    }

    // The configuration this benchmark was built in, so a Debug run's report does not claim Release.
#if DEBUG
    private const string BuildConfiguration = "Debug";
#else
    private const string BuildConfiguration = "Release";
#endif

    public static void Machine(string command, string[] args)
    {
        var cpu = Field("/proc/cpuinfo", "model name") ?? RuntimeInformation.ProcessArchitecture.ToString();
        var memory = Field("/proc/meminfo", "MemTotal") is { } total ? long.Parse(total.Split(' ')[0], CultureInfo.InvariantCulture) / 1048576.0 : 0;
        Console.WriteLine($"## {command}");
        Console.WriteLine();
        Console.WriteLine($"Command: `dotnet run -c {BuildConfiguration} --project bench/Sovereign.Benchmarks -- {command}{(args.Length > 0 ? " " + string.Join(' ', args) : "")}`");
        Console.WriteLine(FormattableString.Invariant(
            $"Machine: {Environment.ProcessorCount} cores, {cpu}, {memory:F1} GiB RAM, {RuntimeInformation.FrameworkDescription}, {RuntimeInformation.OSDescription}; GC {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")}"));
        Console.WriteLine($"Load average at start: {LoadAverage()}; {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC; commit {Commit()}");
        Console.WriteLine();
    }

    /// <summary>The commit measured, and whether src/ had uncommitted changes.</summary>
    public static string Commit()
    {
        try
        {
            var head = Git("rev-parse", "--short", "HEAD").Trim();
            var dirty = Git("status", "--porcelain", "--", "src").Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
            return head.Length == 0 ? "unknown" : dirty == 0 ? head : $"{head} + uncommitted changes in {dirty} src/ paths";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown (no git)";
        }
    }

    private static string Git(params string[] args)
    {
        var start = new ProcessStartInfo("git") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppContext.BaseDirectory };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0 ? output : "";
    }

    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    private static string? Field(string file, string key)
    {
        if (!File.Exists(file))
        {
            return null;
        }

        foreach (var line in File.ReadLines(file))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line[..colon].Trim() == key)
            {
                return line[(colon + 1)..].Trim();
            }
        }

        return null;
    }
}

/// <summary>Command-line options shared by these benchmarks.</summary>
internal sealed class Args
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);

    private Args()
    {
    }

    public bool Quick => _values.ContainsKey("--quick");

    public static Args Parse(string[] args, params string[] known) => Parse(args, [], known);

    /// <summary>
    /// As <see cref="Parse(string[], string[])"/>; an option named in <paramref name="bare"/> may also stand alone (the
    /// last argument, or followed by another option), which <see cref="IntOrBare"/> reads as its "on" value. Before,
    /// <c>pipeline --allocations</c> stopped at once with a message on stderr and printed nothing on stdout.
    /// </summary>
    public static Args Parse(string[] args, IReadOnlyCollection<string> bare, params string[] known)
    {
        var parsed = new Args();
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (name == "--quick")
            {
                parsed._values[name] = null;
                continue;
            }

            if (bare.Contains(name) && (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal)))
            {
                parsed._values[name] = string.Empty;
                continue;
            }

            if (!known.Contains(name) || i + 1 >= args.Length)
            {
                throw new ArgumentException($"unknown option or missing value: '{name}' (options: --quick {string.Join(' ', known.Select(k => bare.Contains(k) ? k + " [V]" : k + " V"))})");
            }

            parsed._values[name] = args[++i];
        }

        return parsed;
    }

    public int Int(string name, int normal, int quick) =>
        _values.TryGetValue(name, out var v) && !string.IsNullOrEmpty(v) ? int.Parse(v, CultureInfo.InvariantCulture) : Quick ? quick : normal;

    /// <summary>An option that may stand alone: absent, <paramref name="off"/>; alone, <paramref name="on"/>; with a value, the value.</summary>
    public int IntOrBare(string name, int off, int on) =>
        !_values.TryGetValue(name, out var v) ? off : string.IsNullOrEmpty(v) ? on : int.Parse(v, CultureInfo.InvariantCulture);

    public bool Has(string name) => _values.ContainsKey(name);

    public double Double(string name, double normal) =>
        _values.TryGetValue(name, out var v) && v is not null ? double.Parse(v, CultureInfo.InvariantCulture) : normal;

    public string? String(string name) => _values.TryGetValue(name, out var v) ? v : null;
}

/// <summary>
/// The whole process's voluntary and involuntary context switches (getrusage, every thread). A request that hops
/// between threads wakes a sleeping one for each hop; unlike time, the count barely depends on what else runs here.
/// </summary>
internal static class ProcessSwitches
{
    public static long Count()
    {
        if (!OperatingSystem.IsLinux())
        {
            return 0;
        }

        // struct rusage on 64-bit Linux: two timevals (4 longs), then 14 longs; ru_nvcsw and ru_nivcsw are the last two.
        var usage = new long[18];
        return GetRusage(0, usage) == 0 ? usage[16] + usage[17] : 0;
    }

    /// <summary>Bytes this process has handed to write calls (files and sockets alike), from /proc/self/io.</summary>
    public static long BytesWritten()
    {
        if (!OperatingSystem.IsLinux())
        {
            return 0;
        }

        foreach (var line in File.ReadLines("/proc/self/io"))
        {
            if (line.StartsWith("wchar:", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(6).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "getrusage")]
    private static extern int GetRusage(int who, long[] usage);
}
