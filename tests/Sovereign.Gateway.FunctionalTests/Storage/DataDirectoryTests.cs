using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sovereign.Cli.Commands;
using Sovereign.Cli.Output;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// What an operator meets when the data directory is taken or unusable. Found by trying it: two <c>serve</c> processes
/// on one data directory both started, each with its own grains over the one SQLite file, so a key revoked at one was
/// still accepted by the other and a budget set at one was ignored by the other; a read-only file system, a full disk
/// or a file that is not a database stopped the start as "unexpected SqliteException ... a defect in sovereign"
/// (exit 70) with the host's stack trace, as did <c>audit verify</c> on such a file.
/// </summary>
public sealed class DataDirectoryTests : IDisposable
{
    private static readonly Dictionary<string, string?> Quiet = new() { ["Sovereign__BuiltInEmbeddings"] = "false", ["OMP_WAIT_POLICY"] = "PASSIVE" };

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-data-dir-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task ASecondServer_OnTheSameDataDirectory_StopsWithOneLine_AndStartsOnceTheFirstHasStopped()
    {
        var first = Build();
        await first.StartAsync();
        try
        {
            // Another process, as an operator would start it.
            var (exit, _, stderr) = await CliProcess.RunAsync(Quiet, "serve", "--urls", "http://127.0.0.1:0", "--data-dir", _directory,
                "--model", TestModels.Stories260K + "=stories", "--threads", "1");
            Assert.True(exit == ExitCodes.Usage, $"{exit} {stderr}");
            var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("cannot start", StringComparison.Ordinal));
            Assert.Contains($"another sovereign server is using the database {Path.Combine(_directory, "sovereign.db")}", line, StringComparison.Ordinal);
            Assert.DoesNotContain("defect", stderr, StringComparison.Ordinal);

            // And in this process (the lock is per open, not per process).
            await using var second = Build();
            await Assert.ThrowsAsync<DataDirectoryInUseException>(() => second.StartAsync());

            using var health = await new HttpClient().GetAsync(new Uri(new Uri(first.Urls.First()), "/health"));
            Assert.True(health.IsSuccessStatusCode);
        }
        finally
        {
            await first.StopAsync();
            await first.DisposeAsync();
        }

        await using var after = Build();
        await after.StartAsync();
        await after.StopAsync();
    }

    [Fact]
    public async Task AFileThatIsNotADatabase_StopsTheStartWithOneLine_Exit1_AndIsLeftAsItWas()
    {
        var database = Path.Combine(_directory, "sovereign.db");
        var garbage = new byte[8192];
        new Random(7).NextBytes(garbage);
        await File.WriteAllBytesAsync(database, garbage);

        var (exit, _, stderr) = await Serve();

        Assert.True(exit == ExitCodes.Failed, $"{exit} {stderr}");
        Assert.Contains($"cannot start: the database {database} is not a readable Sovereign database (SQLite Error 26: 'file is not a database'): restore it from a backup", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("defect", stderr, StringComparison.Ordinal);
        Assert.Equal(garbage, await File.ReadAllBytesAsync(database));

        // The auditor's command on the same file (with an operator key, which that failed start never wrote).
        Residency.Audit.OperatorSigningKey.LoadOrCreate(Path.Combine(_directory, "operator-key.pem")).Dispose();
        var (verifyExit, _, verifyError) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory);
        Assert.True(verifyExit == ExitCodes.Failed, $"{verifyExit} {verifyError}");
        Assert.Equal("sovereign audit verify: the database is not a readable Sovereign database (SQLite Error 26: 'file is not a database'): restore it from a backup.", verifyError.Trim());
    }

    /// <summary>
    /// Found in the restore drill (explorer32): a file damaged inside (the root page of a table overwritten, as a bad
    /// disk or a copy cut short leaves it) passed the start, which opened it and migrated nothing: the server said
    /// "ready" and answered every request reading that table 500 internal_error. SQLite's quick check now runs at start:
    /// one line naming the damage, exit 1, the file left as it was; <c>Sovereign:Database:CheckAtStart=false</c> skips it.
    /// </summary>
    [Fact]
    public async Task ADatabaseDamagedInside_StopsTheStartWithOneLine_Exit1_AndIsLeftAsItWas()
    {
        await using (var first = Build())
        {
            await first.StartAsync();
            await first.StopAsync();
        }

        SqliteConnection.ClearAllPools();
        var database = Path.Combine(_directory, "sovereign.db");
        long rootPage, pageSize;
        await using (var connection = new SqliteConnection($"Data Source={database};Pooling=False"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT rootpage FROM sqlite_master WHERE name = 'metering_tenant_periods'";
            rootPage = (long)(await command.ExecuteScalarAsync())!;
            command.CommandText = "PRAGMA page_size";
            pageSize = (long)(await command.ExecuteScalarAsync())!;
        }

        Assert.False(File.Exists(database + "-wal"), "the stop folded the WAL into the file");
        await using (var file = new FileStream(database, FileMode.Open, FileAccess.Write))
        {
            file.Position = (rootPage - 1) * pageSize;
            await file.WriteAsync(Enumerable.Repeat((byte)0xDE, (int)pageSize).ToArray());
        }

        var damaged = await File.ReadAllBytesAsync(database);
        await using (var second = Build())
        {
            var refused = await Assert.ThrowsAsync<DatabaseUnusableException>(() => second.StartAsync());
            Assert.StartsWith($"the database {database} is damaged (SQLite's quick check: ", refused.Message, StringComparison.Ordinal);
        }

        SqliteConnection.ClearAllPools();
        var (exit, _, stderr) = await Serve();
        Assert.True(exit == ExitCodes.Failed, $"{exit} {stderr}");
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("cannot start", StringComparison.Ordinal));
        Assert.Contains($"the database {database} is damaged (SQLite's quick check: ", line, StringComparison.Ordinal);
        Assert.Contains("restore it from a backup", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        Assert.Equal(damaged, await File.ReadAllBytesAsync(database));
    }

    /// <summary>
    /// The server's lock file cannot be created (here a folder holds its name; a read-only file system or a folder
    /// owned by another user fail the same way): a write failure, exit 1, not "another server is using it".
    /// </summary>
    [Fact]
    public async Task ALockFileThatCannotBeCreated_IsAWriteFailure_NotAnotherServer()
    {
        Directory.CreateDirectory(Path.Combine(_directory, "sovereign.db." + ServerDatabaseLock.LockName + ".lock"));

        var (exit, _, stderr) = await Serve();

        Assert.True(exit == ExitCodes.Failed, $"{exit} {stderr}");
        Assert.Contains($"cannot start: the data directory {_directory} cannot be written (", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("another sovereign server", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("defect", stderr, StringComparison.Ordinal);
        // Nothing was written: at most the empty, owner-only file the database is created as (an empty SQLite database).
        var database = new FileInfo(Path.Combine(_directory, "sovereign.db"));
        Assert.True(!database.Exists || database.Length == 0, $"{database.Length} bytes");
    }

    /// <summary>
    /// A folder that cannot take the database file (here /proc; a read-only file system or another user's folder fail
    /// alike): describing the database does not fail, so the server's lock reports the folder as not writable, naming it.
    /// Creating the file owner-only first threw there, ahead of that message.
    /// </summary>
    [Fact]
    public async Task AFolderThatCannotTakeTheDatabase_IsReportedByTheLock_NotByDescribingTheDatabase()
    {
        var database = Sovereign.Storage.SqlDatabase.Sqlite("/proc/sovereign-cannot-exist.db");

        var refused = await Assert.ThrowsAsync<DatabaseUnusableException>(() => new ServerDatabaseLock().TakeSqliteAsync(database, "/proc/sovereign-cannot-exist.db"));
        Assert.Contains("the data directory /proc cannot be written", refused.Message, StringComparison.Ordinal);
        Assert.False(File.Exists("/proc/sovereign-cannot-exist.db"));
    }

    /// <summary>A data directory without a database: the line said "sovereign audit:", naming no command as every other line does.</summary>
    [Theory]
    [InlineData("verify")]
    [InlineData("export", "-o", "never.jsonl")]
    [InlineData("archive", "--before", "2026-01-01", "-o", "never.jsonl")]
    public async Task AnAuditCommand_WithoutADatabase_NamesItselfAndTheFile(string verb, params string[] more)
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(["audit", verb, "--data-dir", _directory, .. more]);

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Equal("", stdout);
        Assert.Equal($"sovereign audit {verb}: the database {Path.Combine(_directory, "sovereign.db")} does not exist.", stderr.Trim());
    }

    private Task<(int ExitCode, string Stdout, string Stderr)> Serve() =>
        CliProcess.RunAsync(Quiet, "serve", "--urls", "http://127.0.0.1:0", "--data-dir", _directory, "--model", TestModels.Stories260K + "=stories", "--threads", "1");

    /// <summary>
    /// Found restarting the cluster's first gateway (gateway-th) with Sovereign__Jurisdiction=SG by mistake: it started
    /// silently as SG, refused its TH tenants, and would pass SG-only tenants' content through a machine in TH, stating
    /// SG on every answer and in the audit log. Nothing binds a gateway's jurisdiction but its setting; the data
    /// directory now keeps the one it stated, and a start that states another stops with one line.
    /// </summary>
    [Fact]
    public async Task AServerRestartedInAnotherJurisdiction_StopsWithOneLine_AndStartsAgainInItsOwn()
    {
        await using (var thai = Build("TH"))
        {
            await thai.StartAsync();
            await thai.StopAsync();
        }

        await using (var moved = Build("SG"))
        {
            var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => moved.StartAsync());
            Assert.Contains("Sovereign:Jurisdiction is SG, but this server has stated TH since", refused.Message, StringComparison.Ordinal);
        }

        // As an operator meets it: one line, exit 2.
        var (exit, _, stderr) = await CliProcess.RunAsync(new Dictionary<string, string?>(Quiet) { ["Sovereign__Jurisdiction"] = "SG" },
            "serve", "--urls", "http://127.0.0.1:0", "--data-dir", _directory, "--model", TestModels.Stories260K + "=stories", "--threads", "1");

        Assert.True(exit == ExitCodes.Usage, $"{exit} {stderr}");
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("cannot start", StringComparison.Ordinal));
        Assert.Contains("Sovereign:Jurisdiction is SG, but this server has stated TH since", line, StringComparison.Ordinal);
        Assert.Contains("jurisdiction.json", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);

        // Its own jurisdiction (any case), or none (it then states the kept one), starts as before.
        foreach (var jurisdiction in new[] { "th", null })
        {
            await using var again = Build(jurisdiction);
            await again.StartAsync();
            await again.StopAsync();
        }
    }

    /// <summary>
    /// Found by restarting a TH server without <c>Sovereign__Jurisdiction</c>: it warned that it declared no
    /// jurisdiction and answered "this gateway is in ZZ" (x-sovereign-jurisdiction: ZZ, language detection refused for TH
    /// tenants), while its chat still ran in TH from the node registration the first start left. It now states the one
    /// its data directory kept.
    /// </summary>
    [Fact]
    public async Task AServerRestartedWithoutAJurisdiction_StatesTheOneItsDataDirectoryKept()
    {
        await using (var thai = Build("TH"))
        {
            await thai.StartAsync();
            await thai.StopAsync();
        }

        await using var again = Build();
        await again.StartAsync();
        try
        {
            Assert.Equal("TH", again.Services.GetRequiredService<IOptions<Sovereign.Gateway.Hosting.SovereignOptions>>().Value.Jurisdiction);
            using var client = new HttpClient { BaseAddress = new Uri(again.Urls.First()) };
            using var models = await client.GetAsync(new Uri("/v1/models", UriKind.Relative));
            Assert.Equal("TH", Assert.Single(models.Headers.GetValues("x-sovereign-jurisdiction")));
        }
        finally
        {
            await again.StopAsync();
        }
    }

    private WebApplication Build(string? jurisdiction = null) =>
        ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Threads = 1, Parallel = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Overrides = jurisdiction is null
                ? new Dictionary<string, string?> { ["Sovereign:BuiltInEmbeddings"] = "false" }
                : new Dictionary<string, string?> { ["Sovereign:BuiltInEmbeddings"] = "false", ["Sovereign:Jurisdiction"] = jurisdiction },
        }, []);
}
