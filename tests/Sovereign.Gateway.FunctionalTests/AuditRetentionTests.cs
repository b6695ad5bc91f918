using System.Globalization;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sovereign.Cli.Commands;
using Sovereign.Cluster.Hosting;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Residency.Audit;
using Sovereign.Storage;
using Sovereign.Tests;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// Scheduled audit retention (<c>Sovereign:Audit:Archive</c>): the service archives through the CLI's path, on the
/// schedule of its clock, never on a node, and a failed run removes nothing and is tried again. The clock is the
/// test's: runs happen at start and when the test moves the clock, and each run's log event is awaited, never slept for.
/// </summary>
public sealed class AuditRetentionTests : IAsyncDisposable
{
    // "Now" for the service; entries are written 100 and 50 days before it, and today.
    internal static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-06-15T12:00:00Z", CultureInfo.InvariantCulture);

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-retention-").FullName;
    private readonly SqlDatabase _database;
    private readonly OperatorSigningKey _key;

    public AuditRetentionTests()
    {
        _database = SqlDatabase.Sqlite(Path.Combine(_directory, "sovereign.db"));
        _key = OperatorSigningKey.LoadOrCreate(Path.Combine(_directory, "operator-key.pem"));
    }

    public async ValueTask DisposeAsync()
    {
        _key.Dispose();
        await using (var connection = await _database.OpenAsync())
        {
            SqliteConnection.ClearPool((SqliteConnection)connection);
        }

        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task RunOnce_ArchivesWhatIsOlderThanAfterDays_IntoAFileThatVerifies_AndTheLogStaysTrusted()
    {
        await SeedAsync(_database, _key);
        var clock = new ManualClock(Now);
        var (service, events) = Create(clock, afterDays: 60);

        var outcome = await service.RunOnceAsync();
        var logged = await events.Reader.ReadAsync();
        var verdict = await AuditVerifier.VerifyAsync(_database, _key.PublicKeyPem);

        // Due: entries written before 2026-04-16T00:00Z (60 whole days back), i.e. the ten of day -100.
        var file = Path.Combine(_directory, "archive", "audit-before-2026-04-16.jsonl");
        Assert.Equal(AuditArchiveFileStatus.Archived, outcome!.Status);
        Assert.Equal(file, outcome.Path);
        Assert.Equal((1L, 10L, 10L), (outcome.Summary!.FirstSequence!.Value, outcome.Summary.LastSequence!.Value, outcome.Removal!.Removed));
        Assert.True(await VerifiesAsync(file, _key.PublicKeyPem));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }

        Assert.Equal(15L, await CountAsync(_database, "SELECT COUNT(*) FROM audit_entries"));
        Assert.Equal(AuditVerdict.Trusted, verdict.Verdict);
        Assert.StartsWith("Entries 1..10 were archived", verdict.VerdictReason, StringComparison.Ordinal);
        Assert.Equal((4201, LogLevel.Information), (logged.Event.Id, logged.Level));
        Assert.Contains("1..10", logged.Message, StringComparison.Ordinal);
        Assert.Contains(file, logged.Message, StringComparison.Ordinal);
        Assert.Contains(outcome.Sha256!, logged.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Schedule_RunsAtStartAndEachInterval_OfItsClock_NeverOverwritingAFile()
    {
        await SeedAsync(_database, _key);
        var clock = new ManualClock(Now);
        var (service, events) = Create(clock, afterDays: 60);

        // A file of the name the first run would take already exists (say, from an earlier failed run): it stays.
        Directory.CreateDirectory(Path.Combine(_directory, "archive"));
        var taken = Path.Combine(_directory, "archive", "audit-before-2026-04-16.jsonl");
        await File.WriteAllTextAsync(taken, "kept");

        await service.StartAsync(CancellationToken.None);
        var first = await NextAsync(events);
        clock.Advance(TimeSpan.FromDays(1));
        var second = await NextAsync(events);
        clock.Advance(TimeSpan.FromDays(10)); // the timer fires once: 2026-06-26, due before 2026-04-27 (the day -50 entries)
        var third = await NextAsync(events);
        await service.StopAsync(CancellationToken.None);

        Assert.Equal(4201, first.Event.Id);
        Assert.Contains("audit-before-2026-04-16.2.jsonl", first.Message, StringComparison.Ordinal);
        Assert.Equal("kept", await File.ReadAllTextAsync(taken));
        Assert.Equal(4204, second.Event.Id); // the next day: nothing new is due, and no file is written
        Assert.Equal(4201, third.Event.Id);
        Assert.Contains("11..20", third.Message, StringComparison.Ordinal);
        Assert.Equal(
            ["audit-before-2026-04-16.2.jsonl", "audit-before-2026-04-16.jsonl", "audit-before-2026-04-27.jsonl"],
            Directory.GetFiles(Path.Combine(_directory, "archive")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.True(await VerifiesAsync(Path.Combine(_directory, "archive", "audit-before-2026-04-27.jsonl"), _key.PublicKeyPem));
        Assert.Equal(5L, await CountAsync(_database, "SELECT COUNT(*) FROM audit_entries"));
        Assert.Equal(AuditVerdict.Trusted, (await AuditVerifier.VerifyAsync(_database, _key.PublicKeyPem)).Verdict);
    }

    [Fact]
    public async Task RunOnce_DirectoryNotWritable_RemovesNothing_LogsAnError_AndTheNextRunArchives()
    {
        await SeedAsync(_database, _key);
        var clock = new ManualClock(Now);

        // A regular file where the directory should be: not writable by anyone (a root test run ignores modes).
        var blocked = Path.Combine(_directory, "blocked");
        await File.WriteAllTextAsync(blocked, "x");
        var (service, events) = Create(clock, afterDays: 60, directory: Path.Combine(blocked, "archive"));

        Assert.Null(await service.RunOnceAsync());
        var failed = await events.Reader.ReadAsync();
        Assert.Equal((4202, LogLevel.Error), (failed.Event.Id, failed.Level));
        Assert.Contains("2026-04-16", failed.Message, StringComparison.Ordinal);
        Assert.Equal(25L, await CountAsync(_database, "SELECT COUNT(*) FROM audit_entries"));
        Assert.Equal(0L, await CountAsync(_database, "SELECT COUNT(*) FROM audit_archives"));

        // Fixed before the next run, which then archives.
        File.Delete(blocked);
        Assert.Equal(AuditArchiveFileStatus.Archived, (await service.RunOnceAsync())!.Status);
        Assert.Equal(4201, (await events.Reader.ReadAsync()).Event.Id);
        Assert.Equal(15L, await CountAsync(_database, "SELECT COUNT(*) FROM audit_entries"));
    }

    [Fact]
    public async Task RunOnce_ChainDoesNotVerify_RemovesNothingAndLogsAnError()
    {
        await SeedAsync(_database, _key);
        await using (var connection = await _database.OpenAsync())
        {
            using var tamper = connection.CreateCommand();
            tamper.CommandText = "UPDATE audit_entries SET model = 'other' WHERE seq = 3";
            await tamper.ExecuteNonQueryAsync();
        }

        var (service, events) = Create(new ManualClock(Now), afterDays: 60);

        Assert.Null(await service.RunOnceAsync());
        var failed = await events.Reader.ReadAsync();

        Assert.Equal((4202, LogLevel.Error), (failed.Event.Id, failed.Level));
        Assert.Empty(Directory.GetFiles(Path.Combine(_directory, "archive")));
        Assert.Equal(25L, await CountAsync(_database, "SELECT COUNT(*) FROM audit_entries"));
        Assert.Equal(0L, await CountAsync(_database, "SELECT COUNT(*) FROM audit_archives"));
    }

    /// <summary>
    /// Retention that finds the log no longer holds the head this server last signed (its witness) used to log 4202 and
    /// serve on, the next run a day later; on PostgreSQL the server's unsigned appends went on extending the rewritten
    /// chain until its next signature. It is the finding the running log stops the server on, so now the log takes it
    /// at once: nothing more is appended, event 4220, the host stops (serve then exits 3), and nothing is archived.
    /// </summary>
    [Fact]
    public async Task RunOnce_LogNoLongerHoldsThisServersWitness_StopsTheServerAtOnce_AndTheLogAppendsNothingMore()
    {
        await SeedAsync(_database, _key);
        var clock = new ManualClock(Now);
        var lifetime = new StoppableLifetime();
        var watchEvents = Channel.CreateUnbounded<(LogLevel, EventId, string)>();
        var watch = new AuditIntegrityWatch(lifetime, new ChannelLogger<AuditIntegrityWatch>(watchEvents.Writer));
        await using var log = await AuditLog.OpenAsync(_database, _key,
            new AuditLogOptions { WitnessPath = Path.Combine(_directory, AuditWitness.FileName), IntegrityLost = watch.Report }, clock);

        // The serving log signs entry 26: its witness. Then someone with the database removes it.
        await log.AppendAsync(Entry());
        await log.CheckpointAsync();
        await log.WitnessWritten;
        Assert.Equal(26L, AuditWitness.Read(Path.Combine(_directory, AuditWitness.FileName))!.Sequence);
        await using (var connection = await _database.OpenAsync())
        {
            using var truncate = connection.CreateCommand();
            truncate.CommandText = "DELETE FROM audit_checkpoints WHERE seq = 26; DELETE FROM audit_entries WHERE seq = 26; " +
                "UPDATE audit_head SET seq = 25, hash = (SELECT hash FROM audit_entries WHERE seq = 25) WHERE id = 1";
            await truncate.ExecuteNonQueryAsync();
        }

        var (service, events) = Create(clock, afterDays: 60, log: log);
        Assert.Null(await service.RunOnceAsync());

        // A bound, not a pace: the watch stops the host off the caller's thread.
        Assert.True(await Task.WhenAny(lifetime.Stopping, Task.Delay(TimeSpan.FromMinutes(1))) == lifetime.Stopping, "retention did not stop the server");

        var stopping = await watchEvents.Reader.ReadAsync();
        Assert.Equal((4220, LogLevel.Critical), (stopping.Item2.Id, stopping.Item1));
        Assert.Contains("Scheduled audit retention found that the audit log no longer holds the head this server last signed", stopping.Item3, StringComparison.Ordinal);
        Assert.NotNull(watch.Lost);
        Assert.False(events.Reader.TryRead(out var other), $"retention logged {other} as well, as if it would try again tomorrow");
        await Assert.ThrowsAnyAsync<Exception>(() => log.AppendAsync(Entry()));
        Assert.Equal(25L, await CountAsync(_database, "SELECT COUNT(*) FROM audit_entries"));
        Assert.Equal(0L, await CountAsync(_database, "SELECT COUNT(*) FROM audit_archives"));
        Assert.False(Directory.Exists(Path.Combine(_directory, "archive")) && Directory.EnumerateFiles(Path.Combine(_directory, "archive")).Any());

        static AuditRecord Entry() => new()
        {
            Kind = AuditKind.Inference, Tenant = "acme", KeyId = "key-acme", Actor = "key-acme", Action = AuditActions.InferenceAllowed,
            Model = "stories", Decision = AuditDecision.Allowed, DecisionCode = "ok",
        };
    }

    [Fact]
    public async Task Off_OrOnANode_NothingRuns()
    {
        await SeedAsync(_database, _key);
        var clock = new ManualClock(Now);
        var node = new SovereignClusterOptions { Role = ServerRole.Node, Redis = "127.0.0.1:6379", NodeUrl = "http://127.0.0.1:5001" };
        var (onNode, _) = Create(clock, afterDays: 60, cluster: node);
        var (off, _) = Create(clock, afterDays: 0);

        await onNode.StartAsync(CancellationToken.None);
        await off.StartAsync(CancellationToken.None);

        // Neither keeps a schedule: ExecuteAsync ends (an enabled one runs until stopped), and a direct run does nothing either.
        await onNode.ExecuteTask!.WaitAsync(TimeSpan.FromMinutes(1));
        await off.ExecuteTask!.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Null(await onNode.RunOnceAsync());
        Assert.Null(await off.RunOnceAsync());
        Assert.False(Directory.Exists(Path.Combine(_directory, "archive")));
        Assert.Equal(25L, await CountAsync(_database, "SELECT COUNT(*) FROM audit_entries"));
        Assert.True(ControlPlaneServices.SignsAuditCheckpoints(new SovereignClusterOptions { Role = ServerRole.Gateway, Redis = "127.0.0.1:6379" }));
        Assert.False(ControlPlaneServices.SignsAuditCheckpoints(node));
    }

    [Fact]
    public async Task Serve_WithAfterDays_ArchivesAtStartIntoTheDataDirectory()
    {
        // Entries of 2026-03 to 2026-06 in the server's own database, signed with its operator key.
        await SeedAsync(_database, _key);
        var config = Path.Combine(_directory, "sovereign.json");
        await File.WriteAllTextAsync(config, """{"Sovereign":{"Audit":{"Archive":{"AfterDays":60}}}}""");
        await using var app = ServeCommand.Build(new ServeSettings { Urls = "http://127.0.0.1:0", DataDirectory = _directory, ConfigFile = config }, []);

        // The server names the file after its own clock's day: read before the start and after the stop, the one it
        // read lies between (a run across midnight UTC names either day).
        var started = DateTimeOffset.UtcNow;
        await app.StartAsync();
        // The first run is at start, in the background: wait for its archive record (a bound, not a pace).
        using (var limit = new CancellationTokenSource(TimeSpan.FromMinutes(1)))
        {
            while (await CountAsync(_database, "SELECT COUNT(*) FROM audit_archives") == 0)
            {
                await Task.Delay(20, limit.Token);
            }
        }

        await app.StopAsync();
        var files = Directory.GetFiles(Path.Combine(_directory, AuditArchiveOptions.DefaultDirectoryName));
        var verdict = await AuditVerifier.VerifyAsync(_database, _key.PublicKeyPem);

        var stopped = DateTimeOffset.UtcNow;
        string Named(DateTimeOffset now) => "audit-before-" + now.UtcDateTime.Date.AddDays(-60).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) + ".jsonl";
        Assert.Contains(Path.GetFileName(Assert.Single(files)), new[] { Named(started), Named(stopped) });
        Assert.True(await VerifiesAsync(files[0], _key.PublicKeyPem));
        Assert.True(await CountAsync(_database, "SELECT MIN(seq) FROM audit_entries") >= 25);
        Assert.Equal(AuditVerdict.Trusted, verdict.Verdict);
    }

    [Fact]
    public async Task Serve_BadArchiveSettings_StopTheStartNamingEach()
    {
        var message = await StartFailure.WithSovereignSectionAsync("""{"Audit":{"Archive":{"AfterDays":-1,"Interval":"00:00:10","Directory":"relative/archive"}}}""");

        Assert.Contains("Sovereign:Audit:Archive:AfterDays must be between 0 and 36500; got -1.", message, StringComparison.Ordinal);
        Assert.Contains("Sovereign:Audit:Archive:Interval must be between", message, StringComparison.Ordinal);
        Assert.Contains("Sovereign:Audit:Archive:Directory 'relative/archive' must be an absolute path", message, StringComparison.Ordinal);
    }

    /// <summary>Ten entries 100 days before <see cref="Now"/>, ten 50 days before, five on the day; signed at close.</summary>
    internal static async Task SeedAsync(SqlDatabase database, OperatorSigningKey key)
    {
        var clock = new ManualClock(Now.AddDays(-100));
        await using var log = await AuditLog.OpenAsync(database, key, new AuditLogOptions(), clock);
        foreach (var (daysBack, count) in new[] { (100, 10), (50, 10), (0, 5) })
        {
            clock.Set(Now.AddDays(-daysBack));
            for (var i = 0; i < count; i++)
            {
                await log.AppendAsync(new AuditRecord
                {
                    Kind = AuditKind.Inference, Tenant = "acme", KeyId = "key-acme", Actor = "key-acme", Action = AuditActions.InferenceAllowed,
                    Model = "stories", Decision = AuditDecision.Allowed, DecisionCode = "ok", PromptTokens = 3, CompletionTokens = 5,
                });
                clock.Advance(TimeSpan.FromSeconds(1));
            }
        }
    }

    internal static (AuditRetention Service, Channel<(LogLevel Level, EventId Event, string Message)> Events) Create(
        SqlDatabase database, OperatorSigningKey key, string dataDirectory, TimeProvider clock, int afterDays, string? directory = null, SovereignClusterOptions? cluster = null,
        AuditLog? log = null)
    {
        var settings = new SovereignOptions { DataDirectory = dataDirectory };
        settings.Audit.Archive.AfterDays = afterDays;
        settings.Audit.Archive.Directory = directory ?? Path.Combine(dataDirectory, "archive");
        var events = Channel.CreateUnbounded<(LogLevel, EventId, string)>();
        var service = new AuditRetention(new(database), new(key), new(() => log ?? throw new InvalidOperationException("this test gave retention no serving log")), Options.Create(settings), Options.Create(cluster ?? new SovereignClusterOptions()), clock, new ChannelLogger(events.Writer));
        return (service, events);
    }

    private (AuditRetention Service, Channel<(LogLevel Level, EventId Event, string Message)> Events) Create(
        TimeProvider clock, int afterDays, string? directory = null, SovereignClusterOptions? cluster = null, AuditLog? log = null) =>
        Create(_database, _key, _directory, clock, afterDays, directory, cluster, log);

    internal static async Task<bool> VerifiesAsync(string file, string publicKeyPem)
    {
        await using var stream = File.OpenRead(file);
        var result = await AuditExport.VerifyExportAsync(stream, publicKeyPem);
        return result.Valid;
    }

    internal static async Task<long> CountAsync(SqlDatabase database, string sql)
    {
        await using var connection = await database.OpenAsync();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    // A run's event, awaited: the schedule's runs are asynchronous, so the test waits for what each one logs.
    private static async Task<(LogLevel Level, EventId Event, string Message)> NextAsync(Channel<(LogLevel Level, EventId Event, string Message)> events)
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        try
        {
            return await events.Reader.ReadAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException("The retention service logged no run within a minute of the clock reaching its due time.");
        }
    }

    /// <summary>Hands every event to the test (Debug included).</summary>
    private sealed class ChannelLogger(ChannelWriter<(LogLevel, EventId, string)> events) : ChannelLogger<AuditRetention>(events);

    /// <summary>Hands every event to the test (Debug included).</summary>
    private class ChannelLogger<T>(ChannelWriter<(LogLevel, EventId, string)> events) : ILogger<T>
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            events.TryWrite((logLevel, eventId, formatter(state, exception)));
    }
}
