using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// A throwaway PostgreSQL server for a benchmark's cluster (a cluster member on SQLite is refused at start): initdb into
/// a folder of the temp directory (which the postgres user can reach) and pg_ctl start on a free loopback port, as the postgres user when run as root (PostgreSQL
/// refuses root). Durable as in production (fsync on): the cluster's commits are part of what is measured.
/// Needs Debian's postgresql package.
/// </summary>
internal sealed class BenchPostgres : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sovereign-benchpg-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly string _bin;
    private readonly bool _asRoot = Environment.UserName == "root";

    public BenchPostgres()
    {
        Directory.CreateDirectory(_directory);
        _bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").OrderDescending().Select(d => Path.Combine(d, "bin")).FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb"))) ?? ""
            : "";
        if (_bin.Length == 0)
        {
            throw new InvalidOperationException("PostgreSQL is not installed (apt-get install postgresql): the cluster benchmarks run their members on it.");
        }

        if (_asRoot)
        {
            Run("chown", "postgres", _directory);
        }

        var port = FreePort();
        Pg("initdb", "-D", Data, "-A", "trust", "-U", "sovereign");
        // SOVEREIGN_BENCH_PG_OPTIONS: more server options for a profile (for example "-c log_min_duration_statement=0"),
        // the server's log kept at SOVEREIGN_BENCH_PG_LOG when set (the folder is deleted at the end).
        var extra = Environment.GetEnvironmentVariable("SOVEREIGN_BENCH_PG_OPTIONS") is { Length: > 0 } options ? " " + options : "";
        Pg("pg_ctl", "-D", Data, "-o", $"-p {port.ToString(CultureInfo.InvariantCulture)} -k {_directory} -c listen_addresses=127.0.0.1{extra}", "-l", Path.Combine(_directory, "log"), "-w", "start");
        ConnectionString = $"Host=127.0.0.1;Port={port.ToString(CultureInfo.InvariantCulture)};Username=sovereign;Database=postgres";
    }

    public string ConnectionString { get; }

    /// <summary>
    /// The median time, in ms, to write 8 KiB to a file beside the database and flush it to the disk (fsync; a
    /// WAL flush at COMMIT is an fdatasync), over <paramref name="samples"/> flushes: what each synchronous commit waits for, which on
    /// a shared machine moves with other processes' disk traffic.
    /// </summary>
    public double FlushMilliseconds(int samples = 40)
    {
        var path = Path.Combine(_directory, "flush-probe");
        var page = new byte[8192];
        var times = new double[samples];
        using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1))
        {
            for (var i = 0; i < samples; i++)
            {
                var start = Stopwatch.GetTimestamp();
                file.Position = 0;
                file.Write(page);
                file.Flush(flushToDisk: true);
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }

        File.Delete(path);
        Array.Sort(times);
        return times[samples / 2];
    }

    private string Data => Path.Combine(_directory, "data");

    public void Dispose()
    {
        try
        {
            Pg("pg_ctl", "-D", Data, "-m", "immediate", "-w", "stop");
        }
        finally
        {
            if (Environment.GetEnvironmentVariable("SOVEREIGN_BENCH_PG_LOG") is { Length: > 0 } keep)
            {
                File.Copy(Path.Combine(_directory, "log"), keep, overwrite: true);
            }


            Directory.Delete(_directory, recursive: true);
        }
    }

    private void Pg(string tool, params string[] args)
    {
        if (_asRoot)
        {
            Run("runuser", ["-u", "postgres", "--", Path.Combine(_bin, tool), .. args]);
        }
        else
        {
            Run(Path.Combine(_bin, tool), args);
        }
    }

    private static void Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)) || process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {output.Result}{error.Result}");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
