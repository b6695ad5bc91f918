using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Metering.Ledger;
using Sovereign.Residency.Audit;
using Sovereign.Storage;
using Sovereign.Tests;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// The audit log's commit when PostgreSQL stops answering in the middle of it. A COMMIT whose answer never came may
/// have been applied: the writer retried the batch from the head as it found it after reconnecting, so an entry the
/// database had committed was appended a second time (the same decision twice in the chain, under two sequences). And
/// every retry waited for the driver's timeouts (Command Timeout, its cancel, a reconnect), three attempts over, so a
/// request already waiting when PostgreSQL paused waited minutes for its 503. This class has its own PostgreSQL server:
/// it pauses it.
/// </summary>
public sealed class AuditCommitInDoubtTests(PostgreSqlFixture postgres) : IClassFixture<PostgreSqlFixture>
{
    private async Task<string> OwnConnectionStringAsync(string prefix)
    {
        var name = prefix + "_" + Guid.NewGuid().ToString("N")[..8];
        await using (var admin = new Npgsql.NpgsqlConnection(postgres.ConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new Npgsql.NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new Npgsql.NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = name }.ConnectionString;
    }

    private static AuditRecord Decision(string requestId, string gateway = "gw-th") => new()
    {
        Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceAllowed, Tenant = "in-doubt", Gateway = gateway,
        Jurisdiction = "TH", Decision = AuditDecision.Allowed, Details = new Dictionary<string, string> { ["request_id"] = requestId },
    };

    /// <summary>
    /// When the usage records happened: one instant per test, so a day's spend is read on the records' own day (a read
    /// of the clock after midnight UTC asked about the next day, where 0 was right for any ledger).
    /// </summary>
    private readonly DateTimeOffset _at = DateTimeOffset.UtcNow;

    /// <summary>The commit timeout of the tests whose commit runs out of it: on a <see cref="ManualClock"/> of their own.</summary>
    private static readonly TimeSpan CommitTimeout = TimeSpan.FromSeconds(3);

    /// <summary>A bound for a hang (a wait the test expects to end at once), never for a pace.</summary>
    private static readonly TimeSpan Hang = TimeSpan.FromMinutes(2);

    /// <summary>
    /// A clock for the audit log's commit deadline that only the test moves. These tests used a real 3 s deadline:
    /// every other append (the first opens a connection, its code is cold) had to commit within it too, which a loaded
    /// CI runner need not do, and the held commit had to be sent within it. Now no deadline passes unless the test says.
    /// </summary>
    private static ManualClock Deadlines() => new(DateTimeOffset.UnixEpoch, timestamps: true);

    /// <summary>
    /// Runs <paramref name="append"/>, whose commit the proxy will hold, past its commit deadline: once the proxy holds
    /// it (the commit was sent), the deadline clock moves by the commit timeout; the append fails.
    /// </summary>
    private static async Task<AuditUnavailableException> RunOutOfTimeAsync(Func<Task<AuditEntry>> append, AnswerLosingProxy proxy, ManualClock deadlines)
    {
        var appending = append();
        await proxy.HeldOne.WaitAsync(Hang);
        deadlines.Advance(CommitTimeout);
        return await Assert.ThrowsAsync<AuditUnavailableException>(() => appending.WaitAsync(Hang));
    }

    /// <summary>
    /// The database applies the commit and its answer is lost (a connection cut after the COMMIT left, a server that
    /// went on after the client gave up): the writer's retry finds the entry it sent at the sequence and hash it sent,
    /// and returns it, instead of appending it again after itself. The shared chain (single node, gateways of a cluster
    /// with member chains off) commits with BEGIN, its statements and COMMIT; a member chain in one statement.
    /// </summary>
    [Theory]
    [InlineData(null)]
    [InlineData("node-th")]
    public async Task CommitAppliedButItsAnswerLost_TheRetryFindsItCommitted_TheEntryIsInTheChainOnce(string? chain)
    {
        var connection = await OwnConnectionStringAsync("in_doubt");
        var database = SqlDatabase.PostgreSql(connection);
        await database.MigrateAsync(AuditLog.Migrations);
        await using var proxy = new AnswerLosingProxy(new Npgsql.NpgsqlConnectionStringBuilder(connection).Port);

        // The driver's own bound is short so the old code's wait ends too (it retried after it).
        var proxied = SqlDatabase.PostgreSql(new Npgsql.NpgsqlConnectionStringBuilder(connection) { Port = proxy.Port, Pooling = false, CommandTimeout = 3 }.ConnectionString);
        using var key = OperatorSigningKey.CreateEphemeral();
        AuditEntry returned;
        await using (var audit = await AuditLog.OpenAsync(proxied, key, new AuditLogOptions { Chain = chain, SignsCheckpoints = false, CommitTimeout = Hang }))
        {
            await audit.AppendAsync(Decision("before"));

            // The answers stop once the connection carrying this entry sent its commit: the entry's own statement
            // where it is the commit (a member chain), else the COMMIT that follows it.
            proxy.LoseAnswersAfter(chain is null ? ["r-in-doubt", "COMMIT"] : ["r-in-doubt"]);
            returned = await audit.AppendAsync(Decision("r-in-doubt"));
            Assert.Equal(1, proxy.AnswersLost);

            var after = await audit.AppendAsync(Decision("after"));
            Assert.Equal(returned.Sequence + 1, after.Sequence);
            Assert.Equal(returned.Hash, after.PreviousHash);
        }

        var scope = AuditChainScope.Of(chain);
        var stored = await AuditStore.ReadEntriesAsync(database, scope, "seq >= 1 ORDER BY seq", scope.Bind, CancellationToken.None);
        Assert.Equal(["before", "r-in-doubt", "after"], stored.Select(e => e.Details["request_id"]));
        Assert.Equal((returned.Sequence, returned.Hash), (stored[1].Sequence, stored[1].Hash));
        var result = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
    }

    /// <summary>
    /// A request's outcome whose commit is still on its way at the commit timeout (the COMMIT held between the gateway
    /// and PostgreSQL): the request is answered as unrecorded and its outcome kept (<see cref="DeferredOutcomes"/>) with
    /// the entry as that commit hashed it. The commit then lands. Once the database is back the kept outcome finds it
    /// and is not written again: the chain holds the outcome once, the usage record is in the ledger once, and the
    /// operator is told (event 4154). Before, the kept outcome was appended as well: the chain read <c>before, r, r</c>.
    /// </summary>
    [Theory]
    [InlineData(null, true)]
    [InlineData("node-th", true)]
    [InlineData("node-th", false)] // a member chain's appends alone commit in one statement
    public async Task OutcomeCommitLandsAfterItsDeadline_TheKeptOutcomeFindsIt_TheChainHoldsItOnce(string? chain, bool withUsage)
    {
        var connection = await OwnConnectionStringAsync("landed_late");
        var database = SqlDatabase.PostgreSql(connection);
        await database.MigrateAsync(AuditLog.Migrations);
        await database.MigrateAsync(UsageLedger.Migrations);
        await using var proxy = new AnswerLosingProxy(new Npgsql.NpgsqlConnectionStringBuilder(connection).Port);

        // The driver waits long; the commit timeout gives up first, with the COMMIT sent and held.
        var proxied = SqlDatabase.PostgreSql(new Npgsql.NpgsqlConnectionStringBuilder(connection) { Port = proxy.Port, Pooling = false, CommandTimeout = 60 }.ConnectionString);
        using var key = OperatorSigningKey.CreateEphemeral();
        var logs = new ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)>();
        using var loggers = LoggerFactory.Create(builder => builder.AddProvider(new CapturingLoggerProvider(logs)));
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var deadlines = Deadlines();
        await using (var audit = await AuditLog.OpenAsync(proxied, key, new AuditLogOptions { Chain = chain, SignsCheckpoints = false, CommitTimeout = CommitTimeout, DeadlineClock = deadlines }))
        await using (var ledger = await UsageLedger.OpenAsync(proxied))
        {
            await audit.AppendAsync(Decision("before"));
            // With a carried write a member chain commits as the shared one does; without, in one statement.
            proxy.HoldAfter(chain is null || withUsage ? ["r-late", "COMMIT"] : ["r-late"]);
            var outcome = Decision("r-late") with { Action = AuditActions.InferenceCompleted };
            var carried = withUsage ? ledger.Carry(Usage("r-late", 7)) : null;
            var refused = await RunOutOfTimeAsync(() => audit.AppendAsync(outcome, carried), proxy, deadlines);
            Assert.Equal(1, proxy.Held);
            var sent = Assert.Single(refused.InDoubt);
            Assert.Equal("r-late", sent.Details["request_id"]);

            // The commit lands (the database went on), and the attempt given up on comes out of the driver.
            await proxy.ReleaseAsync();
            await audit.AbandonedCommit;

            var health = new DatabaseHealth(new Lazy<SqlDatabase>(() => proxied), TimeProvider.System, services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), NullLogger<DatabaseHealth>.Instance);
            using var deferred = new DeferredOutcomes(new Lazy<AuditLog>(() => audit), new Lazy<UsageLedger>(() => ledger), health, loggers.CreateLogger<DeferredOutcomes>());
            Assert.True(deferred.Keep("r-late", outcome, withUsage ? Usage("r-late", 7) : null, inDoubt: refused.InDoubt));
            Assert.Equal(1, await deferred.WriteAsync(CancellationToken.None));
            Assert.Equal(0, deferred.Count);

            var after = await audit.AppendAsync(Decision("after"));
            Assert.Equal(sent.Sequence + 1, after.Sequence);
            Assert.Equal(sent.Hash, after.PreviousHash);
        }

        var scope = AuditChainScope.Of(chain);
        var stored = await AuditStore.ReadEntriesAsync(database, scope, "seq >= 1 ORDER BY seq", scope.Bind, CancellationToken.None);
        Assert.Equal(["before", "r-late", "after"], stored.Select(e => e.Details["request_id"]));
        Assert.Equal(AuditActions.InferenceCompleted, stored[1].Action);
        await using (var ledger = await UsageLedger.OpenAsync(database))
        {
            Assert.Equal(withUsage, await ledger.GetAsync("r-late") is not null);
            Assert.Equal(withUsage ? 0.25m : 0m, await ledger.GetSpendAsync("in-doubt", "k", UsagePeriod.Total, DateTimeOffset.UtcNow, "EUR")); // once
        }

        var found = Assert.Single(logs, log => log.Event.Id == 4154);
        Assert.Contains("r-late", found.Message, StringComparison.Ordinal);
        var result = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
    }

    /// <summary>
    /// A request whose outcome commit (completed, 7 tokens, its usage record billing 0.25 EUR carried in it) is still on
    /// its way at the commit timeout is answered 503 <c>audit_unavailable</c>: nothing delivered, its refusal recorded at
    /// no cost (a duplicate once the late commit holds the record), its outcome kept as a refusal. The commit then lands.
    /// Once the database is back the kept refusal finds it: the chain holds the completed entry as committed, then an
    /// <c>inference.corrected</c> entry naming it, and the usage record is a refusal at no cost in the same commit, its
    /// totals moved by the difference; the tenant's spend is 0, the ledger reconciles with the chain (event 4157). Before,
    /// the refused request stayed billed as completed (spend 0.25, the refusal kept out as a duplicate).
    /// </summary>
    [Theory]
    [InlineData(null, false)]
    [InlineData("node-th", false)]
    [InlineData("node-th", true)] // the refusal's record could not be written either: kept with the outcome
    public async Task RefusedRequestsOutcomeCommitLandsLate_TheChargeIsCorrected_NotBilled_AndTheLedgerReconciles(string? chain, bool refusalKeptWithItsRecord)
    {
        var connection = await OwnConnectionStringAsync("refused_late");
        var database = SqlDatabase.PostgreSql(connection);
        await database.MigrateAsync(AuditLog.Migrations);
        await database.MigrateAsync(UsageLedger.Migrations);
        await using var proxy = new AnswerLosingProxy(new Npgsql.NpgsqlConnectionStringBuilder(connection).Port);
        var proxied = SqlDatabase.PostgreSql(new Npgsql.NpgsqlConnectionStringBuilder(connection) { Port = proxy.Port, Pooling = false, CommandTimeout = 60 }.ConnectionString);
        using var key = OperatorSigningKey.CreateEphemeral();
        var logs = new ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)>();
        using var loggers = LoggerFactory.Create(builder => builder.AddProvider(new CapturingLoggerProvider(logs)));
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        long landedAt;
        var deadlines = Deadlines();
        await using (var audit = await AuditLog.OpenAsync(proxied, key, new AuditLogOptions { Chain = chain, SignsCheckpoints = false, CommitTimeout = CommitTimeout, DeadlineClock = deadlines }))
        await using (var ledger = await UsageLedger.OpenAsync(proxied))
        {
            await audit.AppendAsync(Decision("before"));
            await audit.AppendAsync(Decision("r-refused"));
            proxy.HoldAfter(["r-refused", "COMMIT"]);
            var unanswered = await RunOutOfTimeAsync(() => audit.AppendAsync(Outcome("r-refused", "completed", 3, 7, 0.25m), ledger.Carry(Usage("r-refused", 7))), proxy, deadlines);
            Assert.Equal(1, proxy.Held);
            landedAt = Assert.Single(unanswered.InDoubt).Sequence;

            // The commit lands after the request was answered 503.
            await proxy.ReleaseAsync();
            await audit.AbandonedCommit;
            var refusal = Usage("r-refused", 0) with { PromptTokens = 0, Cost = 0m, PriceVersion = null, Outcome = UsageOutcome.Refused, RefusalCode = "audit_unavailable" };
            if (!refusalKeptWithItsRecord)
            {
                Assert.False(await ledger.AppendAsync(refusal)); // RequestAccounting's refusal: the landed record is kept
            }

            var health = new DatabaseHealth(new Lazy<SqlDatabase>(() => proxied), TimeProvider.System, services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), NullLogger<DatabaseHealth>.Instance);
            using var deferred = new DeferredOutcomes(new Lazy<AuditLog>(() => audit), new Lazy<UsageLedger>(() => ledger), health, loggers.CreateLogger<DeferredOutcomes>());
            var keptOutcome = Outcome("r-refused", "refused", 0, 0, 0m);
            keptOutcome = keptOutcome with { Details = new Dictionary<string, string>(keptOutcome.Details) { ["refusal_code"] = "audit_unavailable" } };
            Assert.True(deferred.Keep("r-refused", keptOutcome, refusalKeptWithItsRecord ? refusal : null, inDoubt: unanswered.InDoubt));
            Assert.Equal(1, await deferred.WriteAsync(CancellationToken.None));
            await audit.AppendAsync(Decision("after"));
        }

        var scope = AuditChainScope.Of(chain);
        var stored = await AuditStore.ReadEntriesAsync(database, scope, "seq >= 1 ORDER BY seq", scope.Bind, CancellationToken.None);
        Assert.Equal(["before", "r-refused", "r-refused", "r-refused", "after"], stored.Select(e => e.Details["request_id"]));
        Assert.Equal([AuditActions.InferenceAllowed, AuditActions.InferenceAllowed, AuditActions.InferenceCompleted, AuditActions.InferenceCorrected, AuditActions.InferenceAllowed],
            stored.Select(e => e.Action));
        var landed = stored[2];
        Assert.Equal((landedAt, "completed", 7L), (landed.Sequence, landed.Details["outcome"], landed.CompletionTokens));
        var correction = stored[3];
        Assert.Equal(landedAt.ToString(System.Globalization.CultureInfo.InvariantCulture), correction.Details["corrects"]);
        Assert.Equal(("refused", "audit_unavailable", "0.000000", "completed", "0.250000", 0L),
            (correction.Details["outcome"], correction.Details["refusal_code"], correction.Details["cost"], correction.Details["corrected_outcome"], correction.Details["corrected_cost"], correction.CompletionTokens));
        await using (var ledger = await UsageLedger.OpenAsync(database))
        {
            var record = await ledger.GetAsync("r-refused");
            Assert.NotNull(record);
            Assert.Equal((UsageOutcome.Refused, "audit_unavailable", 0, 0, 0m), (record.Outcome, record.RefusalCode, record.PromptTokens, record.CompletionTokens, record.Cost));
            Assert.Equal(0m, await ledger.GetSpendAsync("in-doubt", null, UsagePeriod.Total, DateTimeOffset.UtcNow, "EUR"));
            Assert.Equal(0m, await ledger.GetSpendAsync("in-doubt", "k", UsagePeriod.Day, _at, "EUR"));
            var day = Assert.Single(await ledger.QueryUsageAsync(new UsageQuery { Tenant = "in-doubt", From = _at.AddDays(-1), To = _at.AddDays(1) }));
            Assert.Equal((1L, 0L, 1L, 0L, 0L, 0m), (day.Requests, day.Completed, day.Refused, day.PromptTokens, day.CompletionTokens, day.Cost));
        }

        Assert.Empty(await Sovereign.Gateway.Metering.LedgerReconciliation.CheckAsync(database, CancellationToken.None));
        var told = Assert.Single(logs, log => log.Event.Id == 4157);
        Assert.Contains("r-refused", told.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(logs, log => log.Event.Id == 4154);
        var result = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
    }

    /// <summary>
    /// As above, but the gateway stops before the database is back: the refusal it kept in memory is gone. It was
    /// recorded in the data directory's journal (<see cref="RefusedInDoubtJournal"/>), so the next process's
    /// <see cref="DeferredOutcomes"/> takes it up, finds the late commit that billed it and corrects it (event 4157,
    /// spend 0, the ledger reconciles). A third start with the journal as the second found it (it stopped after its
    /// correction committed, before it forgot the refusal: a correction whose own commit went unanswered) finds the
    /// correction and appends none (event 4191). Before, nothing durable said the client was told 503: the landed charge
    /// stayed billed after a restart.
    /// </summary>
    [Theory]
    [InlineData(null)]
    [InlineData("node-th")]
    public async Task RefusedRequestsOutcomeCommitLandsLate_TheGatewayStopsFirst_TheNextStartCorrectsIt_Once(string? chain)
    {
        var connection = await OwnConnectionStringAsync("refused_restart");
        var database = SqlDatabase.PostgreSql(connection);
        await database.MigrateAsync(AuditLog.Migrations);
        await database.MigrateAsync(UsageLedger.Migrations);
        var dataDirectory = Directory.CreateTempSubdirectory("sovereign-refused-journal-").FullName;
        await using var proxy = new AnswerLosingProxy(new Npgsql.NpgsqlConnectionStringBuilder(connection).Port);
        var proxied = SqlDatabase.PostgreSql(new Npgsql.NpgsqlConnectionStringBuilder(connection) { Port = proxy.Port, Pooling = false, CommandTimeout = 60 }.ConnectionString);
        using var key = OperatorSigningKey.CreateEphemeral();
        var logs = new ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)>();
        using var loggers = LoggerFactory.Create(builder => builder.AddProvider(new CapturingLoggerProvider(logs)));
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        DatabaseHealth Health(SqlDatabase db) => new(new Lazy<SqlDatabase>(() => db), TimeProvider.System, services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), NullLogger<DatabaseHealth>.Instance);
        var deadlines = Deadlines();
        var options = new AuditLogOptions { Chain = chain, SignsCheckpoints = false, CommitTimeout = CommitTimeout, DeadlineClock = deadlines };
        var journalFile = Path.Combine(dataDirectory, RefusedInDoubtJournal.FileName);
        try
        {
            // The first process: the outcome's commit is held past the commit timeout, the client is answered 503 and
            // its refusal kept; the commit lands; the process stops before the database is back.
            await using (var audit = await AuditLog.OpenAsync(proxied, key, options))
            await using (var ledger = await UsageLedger.OpenAsync(proxied))
            {
                await audit.AppendAsync(Decision("before"));
                await audit.AppendAsync(Decision("r-restart"));
                proxy.HoldAfter(["r-restart", "COMMIT"]);
                var unanswered = await RunOutOfTimeAsync(() => audit.AppendAsync(Outcome("r-restart", "completed", 3, 7, 0.25m), ledger.Carry(Usage("r-restart", 7))), proxy, deadlines);
                Assert.Equal(1, proxy.Held);
                await proxy.ReleaseAsync();
                await audit.AbandonedCommit;

                using var deferred = new DeferredOutcomes(new Lazy<AuditLog>(() => audit), new Lazy<UsageLedger>(() => ledger), Health(proxied), loggers.CreateLogger<DeferredOutcomes>(), new RefusedInDoubtJournal(dataDirectory));
                var refused = Outcome("r-restart", "refused", 0, 0, 0m);
                refused = refused with { Details = new Dictionary<string, string>(refused.Details) { ["refusal_code"] = "audit_unavailable" } };
                Assert.True(deferred.Keep("r-restart", refused, null, inDoubt: unanswered.InDoubt));
                Assert.True(File.Exists(journalFile));
            }

            await using (var ledger = await UsageLedger.OpenAsync(database))
            {
                Assert.Equal(0.25m, await ledger.GetSpendAsync("in-doubt", "k", UsagePeriod.Total, DateTimeOffset.UtcNow, "EUR")); // billed, uncorrected
            }

            // The second process: it finds the refusal in the journal and corrects the landed charge.
            var journalAsLeft = await File.ReadAllTextAsync(journalFile);
            await using (var audit = await AuditLog.OpenAsync(database, key, options))
            await using (var ledger = await UsageLedger.OpenAsync(database))
            {
                using var deferred = new DeferredOutcomes(new Lazy<AuditLog>(() => audit), new Lazy<UsageLedger>(() => ledger), Health(database), loggers.CreateLogger<DeferredOutcomes>(), new RefusedInDoubtJournal(dataDirectory));
                Assert.Equal(1, deferred.Recover());
                Assert.Equal(1, await deferred.WriteAsync(CancellationToken.None));
                Assert.Equal(0, deferred.Count);
                Assert.False(File.Exists(journalFile)); // settled: forgotten
            }

            // A third, as if the second had stopped after its correction committed and before it forgot the refusal.
            await File.WriteAllTextAsync(journalFile, journalAsLeft);
            await using (var audit = await AuditLog.OpenAsync(database, key, options))
            await using (var ledger = await UsageLedger.OpenAsync(database))
            {
                using var deferred = new DeferredOutcomes(new Lazy<AuditLog>(() => audit), new Lazy<UsageLedger>(() => ledger), Health(database), loggers.CreateLogger<DeferredOutcomes>(), new RefusedInDoubtJournal(dataDirectory));
                Assert.Equal(1, deferred.Recover());
                Assert.Equal(1, await deferred.WriteAsync(CancellationToken.None));
                Assert.False(File.Exists(journalFile));
                await audit.AppendAsync(Decision("after"));
            }
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }

        var scope = AuditChainScope.Of(chain);
        var stored = await AuditStore.ReadEntriesAsync(database, scope, "seq >= 1 ORDER BY seq", scope.Bind, CancellationToken.None);
        Assert.Equal([AuditActions.InferenceAllowed, AuditActions.InferenceAllowed, AuditActions.InferenceCompleted, AuditActions.InferenceCorrected, AuditActions.InferenceAllowed],
            stored.Select(e => e.Action));
        Assert.Equal(stored[2].Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture), stored[3].Details["corrects"]);
        await using (var ledger = await UsageLedger.OpenAsync(database))
        {
            var record = await ledger.GetAsync("r-restart");
            Assert.NotNull(record);
            Assert.Equal((UsageOutcome.Refused, 0m), (record.Outcome, record.Cost));
            Assert.Equal(0m, await ledger.GetSpendAsync("in-doubt", "k", UsagePeriod.Total, DateTimeOffset.UtcNow, "EUR"));
        }

        Assert.Empty(await Sovereign.Gateway.Metering.LedgerReconciliation.CheckAsync(database, CancellationToken.None));
        Assert.Contains("r-restart", Assert.Single(logs, log => log.Event.Id == 4157).Message, StringComparison.Ordinal);
        Assert.Contains("r-restart", Assert.Single(logs, log => log.Event.Id == 4191).Message, StringComparison.Ordinal);
        var result = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
    }

    /// <summary>An outcome entry as the gateway writes it: tokens, and the cost its usage record bills.</summary>
    private static AuditRecord Outcome(string requestId, string outcome, long prompt, long completion, decimal cost) => Decision(requestId) with
    {
        Action = AuditActions.InferenceCompleted, Model = "m", PromptTokens = prompt, CompletionTokens = completion,
        Details = new Dictionary<string, string>
        {
            ["request_id"] = requestId, ["outcome"] = outcome,
            [LedgerAuditDetails.Cost] = cost.ToString("0.000000", System.Globalization.CultureInfo.InvariantCulture), [LedgerAuditDetails.Currency] = "EUR",
        },
    };

    /// <summary>
    /// A checkpoint-only commit (the shutdown's) whose COMMIT reaches PostgreSQL only after the writer gave it up and
    /// reloaded the head: the retry looks for it under the chain's lock and returns the checkpoint the database holds.
    /// Before, it signed the head again; the stored one was kept on conflict, and the writer returned and held a
    /// checkpoint (another time, another signature) that is nowhere in the database.
    /// </summary>
    [Fact]
    public async Task CheckpointOnlyCommitLandsAfterTheRetryReloaded_TheRetryReturnsTheStoredCheckpoint()
    {
        var connection = await OwnConnectionStringAsync("cp_doubt");
        var database = SqlDatabase.PostgreSql(connection);
        await database.MigrateAsync(AuditLog.Migrations);
        await using var proxy = new AnswerLosingProxy(new Npgsql.NpgsqlConnectionStringBuilder(connection).Port);
        var proxied = SqlDatabase.PostgreSql(new Npgsql.NpgsqlConnectionStringBuilder(connection) { Port = proxy.Port, Pooling = false, CommandTimeout = 2 }.ConnectionString);
        using var key = OperatorSigningKey.CreateEphemeral();
        AuditCheckpoint returned;
        await using (var audit = await AuditLog.OpenAsync(proxied, key, new AuditLogOptions { CommitTimeout = TimeSpan.FromSeconds(60) }))
        {
            await audit.AppendAsync(Decision("before"));

            // The COMMIT is held until the retry asks for the chain's lock (after it reloaded the head): it lands then.
            proxy.HoldAfter(["INSERT INTO audit_checkpoints", "COMMIT"], releaseOn: "pg_advisory_xact_lock");
            returned = (await audit.CheckpointAsync())!;
            Assert.Equal(1, proxy.Held);
        }

        await using var read = await database.OpenAsync();
        var stored = await AuditStore.ReadCheckpointsAsync(read, null, AuditChainScope.Shared, "WHERE key_id = @key", command => SqlDatabase.AddParameter(command, "@key", key.KeyId), CancellationToken.None);
        var held = Assert.Single(stored);
        Assert.Equal((held.Sequence, held.Timestamp, held.Signature), (returned.Sequence, returned.Timestamp, returned.Signature));
        var result = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
    }

    private UsageRecord Usage(string requestId, int completionTokens) => new()
    {
        RequestId = requestId, Timestamp = _at, Tenant = "in-doubt", KeyId = "k", Model = "m", Node = "gw-th", Jurisdiction = "TH",
        PromptTokens = 3, CompletionTokens = completionTokens, Cost = 0.25m, Currency = "EUR", PriceVersion = "v1",
    };

    /// <summary>
    /// PostgreSQL paused (SIGSTOP) with appends waiting, its driver's Command Timeout two minutes: each append ends
    /// within the commit timeout (plus the driver's cancel) with <see cref="AuditUnavailableException"/> whose cause is
    /// the database not answering (what <c>DatabaseHealth</c> takes as an outage that refuses requests at once), the
    /// ones queued behind the stalled batch too. Once it goes on, the log appends again, each refused entry is in the
    /// chain at most once, and the chain verifies.
    /// </summary>
    [Fact]
    public async Task PostgreSqlPaused_WaitingAppendsFailWithinTheCommitTimeout_NotTheDriversMinutes_AndTheChainStaysWhole()
    {
        var connection = await OwnConnectionStringAsync("paused");
        var database = SqlDatabase.PostgreSql(new Npgsql.NpgsqlConnectionStringBuilder(connection) { CommandTimeout = 120 }.ConnectionString);
        await database.MigrateAsync(AuditLog.Migrations);
        using var key = OperatorSigningKey.CreateEphemeral();
        var deadlines = Deadlines();
        await using (var audit = await AuditLog.OpenAsync(database, key, new AuditLogOptions { SignsCheckpoints = false, CommitTimeout = CommitTimeout, DeadlineClock = deadlines }))
        {
            await audit.AppendAsync(Decision("before"));
            await postgres.PauseServerAsync();
            try
            {
                var clock = Stopwatch.StartNew();
                var waiting = Enumerable.Range(0, 20).Select(i => audit.AppendAsync(Decision($"paused-{i}"))).ToArray();

                // The commit deadline passes when the test moves its clock by the commit timeout, which it does until
                // every append has ended (a batch that started after a move runs out at the next), polling at 200 ms.
                // Bounded at 60 s of real time: the old code waited for the driver's Command Timeout (120 s) and more,
                // three times over, whatever the deadline said; this code ends them at the first move after they wait.
                var ended = Task.WhenAll(waiting.Select(append => append.ContinueWith(_ => { }, TaskScheduler.Default)));
                while (!ended.IsCompleted && clock.Elapsed < TimeSpan.FromSeconds(60))
                {
                    deadlines.Advance(CommitTimeout);
                    await Task.WhenAny(ended, Task.Delay(TimeSpan.FromMilliseconds(200)));
                }

                Assert.True(ended.IsCompleted, $"{waiting.Count(append => !append.IsCompleted)} appends still waiting after {clock.Elapsed.TotalSeconds:0.#} s");
                foreach (var append in waiting)
                {
                    var refused = await Assert.ThrowsAsync<AuditUnavailableException>(() => append);
                    var fault = refused.InnerException;
                    Assert.True(fault is System.Data.Common.DbException && fault.InnerException is TimeoutException, $"cause: {refused}");
                }
            }
            finally
            {
                await postgres.ResumeServerAsync();
            }

            var after = await audit.AppendAsync(Decision("after")).WaitAsync(Hang);
            Assert.Equal("after", after.Details["request_id"]);
        }

        var stored = await AuditStore.ReadEntriesAsync(database, AuditChainScope.Shared, "seq >= 1 ORDER BY seq", AuditChainScope.Shared.Bind, CancellationToken.None);
        Assert.Equal("before", stored[0].Details["request_id"]);
        Assert.Equal("after", stored[^1].Details["request_id"]);
        var ids = stored.Select(e => e.Details["request_id"]).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        var result = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
    }

    /// <summary>
    /// A loopback TCP proxy to PostgreSQL that, when told, stops passing the server's answers on the first connection
    /// whose client sends the given markers in order (the client's bytes still reach the server): a commit applied
    /// whose answer never arrives. Or it holds that client's bytes from the last marker on (the server never sees them,
    /// though the client gave up and closed) until released: a commit that lands late. New connections pass as usual.
    /// </summary>
    private sealed class AnswerLosingProxy : IAsyncDisposable
    {
        private readonly System.Net.Sockets.TcpListener _listener = new(System.Net.IPAddress.Loopback, 0);
        private readonly int _target;
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _pumps = [];
        private readonly Task _accepting;
        private readonly Lock _gate = new();
        private string[]? _markers;
        private bool _hold;
        private string? _releaseOn;
        private ConnectionState? _holding;
        private readonly TaskCompletionSource _heldOne = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _answersLost;
        private int _held;

        public AnswerLosingProxy(int target)
        {
            _target = target;
            _listener.Start();
            _accepting = AcceptAsync();
        }

        public int Port => ((System.Net.IPEndPoint)_listener.LocalEndpoint).Port;

        /// <summary>How many connections lost their answers.</summary>
        public int AnswersLost => Volatile.Read(ref _answersLost);

        /// <summary>How many connections had their bytes held.</summary>
        public int Held => Volatile.Read(ref _held);

        /// <summary>Completes when the proxy starts holding a connection's bytes (what <see cref="HoldAfter"/> asked for was sent).</summary>
        public Task HeldOne => _heldOne.Task;

        public void LoseAnswersAfter(string[] markers)
        {
            lock (_gate)
            {
                (_markers, _hold) = (markers, false);
            }
        }

        /// <summary>
        /// Holds the bytes of the first connection whose client sends <paramref name="markers"/> in order, from the one
        /// that completes them, until <see cref="ReleaseAsync()"/>, or until another connection's client sends
        /// <paramref name="releaseOn"/> (they reach the server first).
        /// </summary>
        public void HoldAfter(string[] markers, string? releaseOn = null)
        {
            lock (_gate)
            {
                (_markers, _hold, _releaseOn) = (markers, true, releaseOn);
            }
        }

        /// <summary>Sends what is held on to the server; the connection then passes as usual (or closes, its client gone).</summary>
        public async Task ReleaseAsync()
        {
            ConnectionState? holding;
            lock (_gate)
            {
                (holding, _holding, _releaseOn) = (_holding, null, null);
            }

            if (holding is not null)
            {
                await ReleaseAsync(holding);
            }
        }

        private async Task ReleaseAsync(ConnectionState state)
        {
            while (true)
            {
                byte[][] chunks;
                var gone = false;
                lock (_gate)
                {
                    chunks = [.. state.HeldBytes];
                    state.HeldBytes.Clear();
                    if (chunks.Length == 0)
                    {
                        state.Holding = false;
                        gone = state.ClientGone;
                    }
                }

                if (chunks.Length == 0)
                {
                    if (gone)
                    {
                        state.Server.Dispose(); // after the held bytes: the server reads them, then the end
                    }

                    return;
                }

                foreach (var chunk in chunks)
                {
                    await state.Server.GetStream().WriteAsync(chunk, _stop.Token);
                }
            }
        }

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    var server = new System.Net.Sockets.TcpClient();
                    await server.ConnectAsync(System.Net.IPAddress.Loopback, _target, _stop.Token);
                    var state = new ConnectionState(server);
                    lock (_pumps)
                    {
                        _pumps.Add(PumpAsync(client, server, state, fromClient: true));
                        _pumps.Add(PumpAsync(server, client, state, fromClient: false));
                    }
                }
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
            }
        }

        private sealed class ConnectionState(System.Net.Sockets.TcpClient server)
        {
            public System.Net.Sockets.TcpClient Server { get; } = server;

            public List<byte[]> HeldBytes { get; } = [];

            public int Matched;
            public bool Losing;
            public bool Holding;
            public bool ClientGone;
        }

        private async Task PumpAsync(System.Net.Sockets.TcpClient from, System.Net.Sockets.TcpClient to, ConnectionState state, bool fromClient)
        {
            var buffer = new byte[64 * 1024];
            var keepServer = false;
            try
            {
                while (true)
                {
                    var read = await from.GetStream().ReadAsync(buffer, _stop.Token);
                    if (read == 0)
                    {
                        break;
                    }

                    ConnectionState? release = null;
                    lock (_gate)
                    {
                        if (fromClient && _releaseOn is { } trigger && _holding is { } holding && holding != state
                            && Encoding.Latin1.GetString(buffer, 0, read).Contains(trigger, StringComparison.Ordinal))
                        {
                            (release, _holding, _releaseOn) = (holding, null, null);
                        }

                        if (fromClient && state.Holding)
                        {
                            state.HeldBytes.Add(buffer[..read]);
                            continue;
                        }

                        if (fromClient && _markers is { } markers && !state.Losing)
                        {
                            var text = Encoding.Latin1.GetString(buffer, 0, read);
                            var at = 0;
                            while (state.Matched < markers.Length && text.IndexOf(markers[state.Matched], at, StringComparison.Ordinal) is var found and >= 0)
                            {
                                at = found + markers[state.Matched].Length;
                                state.Matched++;
                            }

                            if (state.Matched == markers.Length && _hold)
                            {
                                state.Holding = true;
                                state.HeldBytes.Add(buffer[..read]);
                                _holding = state;
                                _markers = null; // one connection only
                                _held++;
                                _heldOne.TrySetResult();
                                continue;
                            }

                            if (state.Matched == markers.Length)
                            {
                                state.Losing = true;
                                _markers = null; // one connection only
                                _answersLost++;
                            }
                        }

                        if (!fromClient && state.Losing)
                        {
                            continue; // the server's answer goes nowhere
                        }
                    }

                    if (release is not null)
                    {
                        await ReleaseAsync(release); // the held commit reaches the server before this connection's bytes
                    }

                    await to.GetStream().WriteAsync(buffer.AsMemory(0, read), _stop.Token);
                }
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or System.Net.Sockets.SocketException)
            {
                // Either side gone: the other is closed below.
            }
            finally
            {
                lock (_gate)
                {
                    // A client that gave up on a held commit: the server keeps its end until the commit is released.
                    keepServer = fromClient && state.Holding;
                    state.ClientGone |= fromClient;
                }

                from.Dispose();
                if (!keepServer)
                {
                    to.Dispose();
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _accepting;
            Task[] pumps;
            lock (_pumps)
            {
                pumps = [.. _pumps];
            }

            await Task.WhenAll(pumps);
            _stop.Dispose();
        }
    }
}
