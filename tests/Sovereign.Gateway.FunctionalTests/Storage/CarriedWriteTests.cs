using Microsoft.Data.Sqlite;
using Sovereign.Metering.Ledger;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// A request's usage record rides in its outcome entry's audit transaction (<see cref="ICarriedWrite"/>): both are
/// durable together or neither is, whichever of the two writes fails.
/// </summary>
public sealed class CarriedWriteTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-carried-").FullName;
    private readonly OperatorSigningKey _key = OperatorSigningKey.CreateEphemeral();
    private SqlDatabase _database = null!;
    private AuditLog _audit = null!;
    private UsageLedger _ledger = null!;

    public async Task InitializeAsync()
    {
        _database = SqlDatabase.Sqlite(Path.Combine(_directory, "sovereign.db"));
        await _database.MigrateAsync([.. AuditLog.Migrations, .. UsageLedger.Migrations]);
        _audit = await AuditLog.OpenAsync(_database, _key);
        _ledger = await UsageLedger.OpenAsync(_database);
    }

    public async Task DisposeAsync()
    {
        await _ledger.DisposeAsync();
        await _audit.DisposeAsync();
        _key.Dispose();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task RecordAndEntry_CommitTogether_AndAReplayedRecordIsNotStoredTwice()
    {
        var carried = _ledger.Carry(Record("req-1"))!;
        var entry = await _audit.AppendAsync(Outcome("req-1"), carried);

        Assert.True(await carried.Stored);
        Assert.Equal(1, entry.Sequence);
        Assert.Equal(0.5m, (await _ledger.GetAsync("req-1"))!.Cost);

        var replay = _ledger.Carry(Record("req-1"))!;
        await _audit.AppendAsync(Outcome("req-1"), replay);
        Assert.False(await replay.Stored);
        Assert.Equal(0.5m, await _ledger.GetSpendAsync("acme", null, UsagePeriod.Total, Now, "EUR"));
    }

    [Fact]
    public async Task AuditInsertFails_TheRecordIsNotStoredEither()
    {
        await ExecuteAsync("CREATE TRIGGER down BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;");
        var carried = _ledger.Carry(Record("req-a"))!;

        await Assert.ThrowsAsync<AuditUnavailableException>(() => _audit.AppendAsync(Outcome("req-a"), carried));
        await Assert.ThrowsAsync<AuditUnavailableException>(() => carried.Stored);
        Assert.Null(await _ledger.GetAsync("req-a"));
        Assert.Equal(0m, await _ledger.GetSpendAsync("acme", null, UsagePeriod.Total, Now, "EUR"));

        await ExecuteAsync("DROP TRIGGER down;");
        await AssertBothServeAgainAsync();
    }

    [Fact]
    public async Task LedgerInsertFails_TheAuditEntryIsNotStoredEither()
    {
        await ExecuteAsync("CREATE TRIGGER down BEFORE INSERT ON metering_usage BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;");
        var carried = _ledger.Carry(Record("req-b"))!;

        await Assert.ThrowsAsync<AuditUnavailableException>(() => _audit.AppendAsync(Outcome("req-b"), carried));
        await Assert.ThrowsAsync<AuditUnavailableException>(() => carried.Stored);
        Assert.Equal(0, _audit.HeadSequence);
        Assert.Empty(await _audit.ReadAsync(1, long.MaxValue));

        await ExecuteAsync("DROP TRIGGER down;");
        await AssertBothServeAgainAsync();
    }

    [Fact]
    public async Task ACarriedWriteOfAnotherDatabase_IsRefused()
    {
        var other = SqlDatabase.Sqlite(Path.Combine(_directory, "other.db"));
        await using var otherLedger = await UsageLedger.OpenAsync(other);

        Assert.Throws<ArgumentException>(() => { _ = _audit.AppendAsync(Outcome("req-c"), otherLedger.Carry(Record("req-c"))); });
    }

    [Fact]
    public async Task ALedgerThatCommitsForPowerLoss_IsNotCarried()
    {
        await using var strict = await UsageLedger.OpenAsync(_database, new UsageLedgerOptions { Durability = LedgerDurability.PowerLoss });

        Assert.Null(strict.Carry(Record("req-d")));
    }

    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;

    private static UsageRecord Record(string id) => new()
    {
        RequestId = id, Timestamp = Now, Tenant = "acme", KeyId = "k", Model = "m", Node = "n", Jurisdiction = "TH",
        PromptTokens = 10, CompletionTokens = 5, Cost = 0.5m, Currency = "EUR", PriceVersion = "standard:m@2026-01-01T00:00:00.000Z",
    };

    private static AuditRecord Outcome(string id) => new()
    {
        Kind = AuditKind.Inference, Actor = "k", Action = "inference.completed", Tenant = "acme", Node = "n", Jurisdiction = "TH",
        Details = new Dictionary<string, string> { ["request_id"] = id },
    };

    /// <summary>After a failure, the writers start over on fresh connections: both commit again and the chain verifies.</summary>
    private async Task AssertBothServeAgainAsync()
    {
        var carried = _ledger.Carry(Record("req-after"))!;
        await _audit.AppendAsync(Outcome("req-after"), carried);
        Assert.True(await carried.Stored);
        Assert.True(await _ledger.AppendAsync(Record("req-alone")));
        var verified = await AuditVerifier.VerifyAsync(_database, _key.PublicKeyPem);
        Assert.True(verified.Valid, string.Join("; ", verified.Problems));
        Assert.Equal(1, verified.EntriesChecked);
    }

    private Task ExecuteAsync(string sql) => Storage.SqliteScript.ExecuteAsync(_directory, sql);
}
