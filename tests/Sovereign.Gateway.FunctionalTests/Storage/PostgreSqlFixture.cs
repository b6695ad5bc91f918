using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// A throwaway PostgreSQL server for the schema tests: initdb into a temp directory and pg_ctl start on a free
/// loopback port (as the postgres user when running as root, since PostgreSQL refuses root). Needs Debian's
/// postgresql package; <c>.ci/run</c> installs it.
/// </summary>
public sealed class PostgreSqlFixture : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sovereign-pg-" + Guid.NewGuid().ToString("N")[..8]);
    private string _bin = "";
    private int _port;

    public string ConnectionString { get; private set; } = "";

    public async Task InitializeAsync()
    {
        _bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").OrderDescending().Select(d => Path.Combine(d, "bin")).FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb"))) ?? ""
            : "";
        Assert.True(_bin.Length > 0, "PostgreSQL is not installed: apt-get install postgresql (.ci/run does this).");
        Directory.CreateDirectory(_directory);
        var asRoot = Environment.UserName == "root";
        if (asRoot)
        {
            await RunAsync("chown", "postgres", _directory);
        }

        _port = Sovereign.Tests.LoopbackPorts.Unused();
        await Pg(asRoot, "initdb", "-D", Path.Combine(_directory, "data"), "-A", "trust", "-U", "sovereign", "--no-sync");
        await StartServerAsync();
        ConnectionString = $"Host=127.0.0.1;Port={_port};Username=sovereign;Database=postgres;Pooling=true;Maximum Pool Size=20";
    }

    /// <summary>Stops the server as an operator's restart does (fast: clients are disconnected); its data stays.</summary>
    // pg_ctl waits 60 s by default; a start under a loaded machine (a full test run beside builds) took longer.
    private const string WaitSeconds = "300";

    public Task StopServerAsync() =>
        Pg(Environment.UserName == "root", "pg_ctl", "-D", Path.Combine(_directory, "data"), "-m", "fast", "-w", "-t", WaitSeconds, "stop");

    /// <summary>Starts the server (again) on the same port and data; returns once it accepts connections.</summary>
    // max_connections: each test's own database keeps its own client pool (up to 20, idle for minutes), so a class of
    // tests can pass PostgreSQL's default 100 with no leak ("53300: too many clients", seen once in a full run).
    public Task StartServerAsync() =>
        Pg(Environment.UserName == "root", "pg_ctl", "-D", Path.Combine(_directory, "data"), "-o", $"-p {_port} -k {_directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400",
            "-l", Path.Combine(_directory, "log"), "-w", "-t", WaitSeconds, "start");

    /// <summary>
    /// Freezes the whole server (SIGSTOP to the postmaster and every backend), as a hung host or a VM paused by its
    /// hypervisor does: connections stay open and new ones are taken by the kernel, but nothing answers.
    /// </summary>
    public Task PauseServerAsync() => SignalServerAsync("-STOP");

    /// <summary>Lets a paused server go on (SIGCONT).</summary>
    public Task ResumeServerAsync() => SignalServerAsync("-CONT");

    /// <summary>Sets a server setting as <c>ALTER SYSTEM</c> and reloads it, so existing sessions take it too; null resets it.</summary>
    public async Task SetServerSettingAsync(string name, string? value)
    {
        await using var connection = new Npgsql.NpgsqlConnection(new Npgsql.NpgsqlConnectionStringBuilder(ConnectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = value is null ? $"ALTER SYSTEM RESET {name}" : $"ALTER SYSTEM SET {name} = '{value}'";
        await command.ExecuteNonQueryAsync();
        command.CommandText = "SELECT pg_reload_conf()";
        await command.ExecuteNonQueryAsync();

        // The reload is a signal: the postmaster rereads the file, then signals every backend, which takes it before its
        // next command. This session existed before it, as the server's pooled ones did: once it sees the new value,
        // every backend has been signalled (bounded, for a broken server).
        command.CommandText = "SELECT setting = COALESCE(@value, boot_val) FROM pg_settings WHERE name = @name";
        command.Parameters.Add(new Npgsql.NpgsqlParameter<string?>("value", value));
        command.Parameters.Add(new Npgsql.NpgsqlParameter<string>("name", name));
        for (var deadline = DateTime.UtcNow.AddSeconds(30); !(bool)(await command.ExecuteScalarAsync())! && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(20);
        }
    }

    private async Task SignalServerAsync(string signal)
    {
        var postmaster = int.Parse((await File.ReadAllLinesAsync(Path.Combine(_directory, "data", "postmaster.pid")))[0], System.Globalization.CultureInfo.InvariantCulture);
        var children = Directory.GetDirectories("/proc").Select(Path.GetFileName).Where(name => int.TryParse(name, out _))
            .Where(pid => ParentOf(pid!) == postmaster).Select(pid => pid!);
        await RunAsync("kill", [signal, postmaster.ToString(System.Globalization.CultureInfo.InvariantCulture), .. children]);

        static int ParentOf(string pid)
        {
            try
            {
                // /proc/PID/stat: "pid (comm) state ppid ...", comm may hold spaces: read after its closing parenthesis.
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                return -1; // gone meanwhile
            }
        }
    }

    public async Task DisposeAsync()
    {
        try
        {
            await ResumeServerAsync(); // a test that failed while it was paused: a stopped server would not stop
            await Pg(Environment.UserName == "root", "pg_ctl", "-D", Path.Combine(_directory, "data"), "-m", "immediate", "-w", "-t", WaitSeconds, "stop");
        }
        finally
        {
            Npgsql.NpgsqlConnection.ClearAllPools();
            Directory.Delete(_directory, recursive: true);
        }
    }

    private Task Pg(bool asRoot, string tool, params string[] args) =>
        asRoot ? RunAsync("runuser", ["-u", "postgres", "--", Path.Combine(_bin, tool), .. args]) : RunAsync(Path.Combine(_bin, tool), args);

    private static async Task RunAsync(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(6)); // above pg_ctl's own -t
        Assert.True(process.ExitCode == 0, $"{file} {string.Join(' ', args)} failed: {await output}{await error}");
    }
}
