namespace Sovereign.Metering.Ledger;

/// <summary>What a completed <see cref="UsageLedger.AppendAsync"/> survives (SQLite; PostgreSQL follows its own settings).</summary>
public enum LedgerDurability
{
    /// <summary>WAL with synchronous=NORMAL: a committed record survives a killed process (the OS holds the pages) but not a power cut.</summary>
    ProcessCrash = 0,

    /// <summary>WAL with synchronous=FULL: one fsync per batch, so a committed record also survives power loss.</summary>
    PowerLoss = 1,
}

/// <summary>Tuning for <see cref="UsageLedger"/>.</summary>
public sealed class UsageLedgerOptions
{
    /// <summary>Most records committed in one transaction.</summary>
    public int MaxBatchSize { get; init; } = 2048;

    /// <summary>
    /// How long the writer waits to fill a batch after the first record arrives. Zero (the default) commits whatever
    /// is queued at once: under load the queue refills while a batch commits, so batches grow by themselves.
    /// </summary>
    public TimeSpan MaxBatchDelay { get; init; } = TimeSpan.Zero;

    /// <summary>Records that may wait for the writer before <see cref="UsageLedger.AppendAsync"/> waits for room (back-pressure).</summary>
    public int QueueCapacity { get; init; } = 100_000;

    /// <summary>Days raw records are kept by <see cref="UsageLedger.PurgeExpiredAsync"/>; aggregates are kept for ever.</summary>
    public int RetentionDays { get; init; } = 90;

    /// <summary>See <see cref="LedgerDurability"/>.</summary>
    public LedgerDurability Durability { get; init; } = LedgerDurability.ProcessCrash;

    /// <summary>
    /// SQLite page cache of the writer's own connection, in MiB: the random request-id index of records written before
    /// session 49 needed it warm; the gateway's ids are time-ordered since, so new records go to the index's end.
    /// </summary>
    public int CacheSizeMiB { get; init; } = 64;

    /// <summary>
    /// SQLite page cache, in MiB, of a connection that carries usage records in its own transactions (the audit log's: a
    /// governed request's record commits with its outcome's entry) while it carries them; null (the default) leaves that
    /// connection's own cache (SQLite's default, 2,000 KiB). A large cache is not free there: a commit that rebalanced a
    /// b-tree page (a random request id splitting its index page) re-keys a page through the lock-byte page number, and
    /// SQLite's page cache then scans its whole hash table at the commit's end, so each such commit costs time in
    /// proportion to the cache's pages (about 0.4 ms at 64 MiB, one commit in ~19 in the pipeline benchmark), inside the
    /// single writer's turn. The index's pages missing from a small cache are read from the operating system's cache.
    /// </summary>
    public int? CarriedCacheSizeMiB { get; init; }

    /// <summary>
    /// SQLite: WAL pages (4 KiB each) the writer appends before it checkpoints them into the database file (SQLite's
    /// default is 1000). Larger means fewer checkpoints, and so fewer fsyncs per record, for a larger -wal file.
    /// </summary>
    public int CheckpointPages { get; init; } = 10_000;

    /// <summary>
    /// The name this process keeps its carry of sub-millionth remainders under (<see cref="CostCarry"/>): the node id.
    /// Each writer has its own rows, read back when it opens, so processes sharing a database never bill one
    /// remainder twice, and a restarted one goes on from its own.
    /// </summary>
    public string Writer { get; init; } = "local";

    /// <summary>
    /// How often records committed since the last fold are folded into the period aggregates (default 250 ms). Readers
    /// add the records not yet folded, so this bounds how many they add, never what they see.
    /// </summary>
    public TimeSpan AggregateFoldInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Records committed since the last fold past which the next fold runs at once (default 256).</summary>
    public int AggregateFoldRecords { get; init; } = 256;

    /// <summary>
    /// Called (on the fold loop; return at once) when a background fold fails after the last one succeeded (once per run
    /// of failures): nothing of it is committed, and it is tried again at every interval. Readers stay exact; they only
    /// add more unfolded records until a fold succeeds. A server logs it (event 4193).
    /// </summary>
    public Action<Exception>? FoldFailed { get; init; }

    /// <summary>The clock for retention.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Use plain ADO.NET commands on SQLite too (the PostgreSQL path), so tests cover it without a server.</summary>
    internal bool PortableCommands { get; init; }

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBatchSize, 1, nameof(MaxBatchSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBatchDelay, TimeSpan.Zero, nameof(MaxBatchDelay));
        ArgumentOutOfRangeException.ThrowIfLessThan(QueueCapacity, 1, nameof(QueueCapacity));
        ArgumentOutOfRangeException.ThrowIfLessThan(RetentionDays, 1, nameof(RetentionDays));
        ArgumentOutOfRangeException.ThrowIfLessThan(CacheSizeMiB, 1, nameof(CacheSizeMiB));
        if (CarriedCacheSizeMiB is { } carried)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(carried, 1, nameof(CarriedCacheSizeMiB));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(CheckpointPages, 1, nameof(CheckpointPages));
        ArgumentOutOfRangeException.ThrowIfLessThan(AggregateFoldInterval, TimeSpan.FromMilliseconds(1), nameof(AggregateFoldInterval));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(AggregateFoldInterval, TimeSpan.FromDays(1), nameof(AggregateFoldInterval));
        ArgumentOutOfRangeException.ThrowIfLessThan(AggregateFoldRecords, 1, nameof(AggregateFoldRecords));
        ArgumentNullException.ThrowIfNull(TimeProvider, nameof(TimeProvider));
        ArgumentException.ThrowIfNullOrWhiteSpace(Writer, nameof(Writer));
    }
}
