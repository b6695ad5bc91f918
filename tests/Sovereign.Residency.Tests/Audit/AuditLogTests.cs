using Sovereign.Residency.Audit;

namespace Sovereign.Residency.Tests.Audit;

public sealed class AuditLogTests
{
    [Fact]
    public async Task AppendAsync_SequentialAppends_AreGaplessChainedAndVerify()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();

        var entries = await context.AppendManyAsync(log, 1200, "acme", "globex");

        Assert.Equal(Enumerable.Range(1, 1200).Select(i => (long)i), entries.Select(e => e.Sequence));
        Assert.Equal(AuditCanonical.GenesisHash, entries[0].PreviousHash);
        for (var i = 1; i < entries.Count; i++)
        {
            Assert.Equal(entries[i - 1].Hash, entries[i].PreviousHash);
        }

        Assert.All(entries, e => Assert.Equal(e.ComputeHash(), e.Hash));
        Assert.Equal(1200, log.HeadSequence);
        Assert.Equal(entries[^1].Hash, log.HeadHash);
        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(1200, result.EntriesChecked);
        Assert.Equal(1, result.CheckpointsVerified);
    }

    [Fact]
    public async Task AppendAsync_ConcurrentAppendsFromManyTasks_AreGaplessAndChainValid()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync(new AuditLogOptions { CheckpointInterval = 500 });

        var tasks = Enumerable.Range(0, 64).Select(t => Task.Run(async () =>
        {
            var mine = new List<AuditEntry>();
            for (var i = 0; i < 40; i++)
            {
                mine.Add(await log.AppendAsync(AuditTestContext.Inference($"tenant-{t % 5}", i)));
            }

            return mine;
        }));
        var entries = (await Task.WhenAll(tasks)).SelectMany(e => e).OrderBy(e => e.Sequence).ToList();

        Assert.Equal(Enumerable.Range(1, 2560).Select(i => (long)i), entries.Select(e => e.Sequence));
        for (var i = 1; i < entries.Count; i++)
        {
            Assert.Equal(entries[i - 1].Hash, entries[i].PreviousHash);
        }

        var stored = await log.ReadAsync(1, 3000);
        Assert.Equal(entries.Select(e => e.Hash), stored.Select(e => e.Hash));
        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(2560, result.EntriesChecked);
        Assert.Equal(5, result.CheckpointsVerified);
    }

    [Fact]
    public async Task AppendAsync_Entry_RoundTripsEveryFieldThroughTheDatabase()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        var details = new Dictionary<string, string> { ["old"] = "{\"allow\":[\"DE\"]}", ["new"] = "{\"allow\":[\"DE\",\"FR\"]}", ["ünïcode"] = "日本" };

        var admin = await log.AppendAsync(AuditTestContext.Admin("acme", AuditActions.PolicyUpdate, details));
        var inference = await log.AppendAsync(AuditTestContext.Inference("acme", 7));

        var stored = await log.ReadAsync(1, 2);
        Assert.Equal(2, stored.Count);
        AssertSame(admin, stored[0]);
        AssertSame(inference, stored[1]);
        Assert.Equal(context.Time.GetUtcNow().ToUnixTimeMilliseconds(), admin.Timestamp);
        Assert.Equal(AuditKind.Admin, stored[0].Kind);
        Assert.Equal("日本", stored[0].Details["ünïcode"]);
        Assert.Equal(AuditDecision.Refused, stored[1].Decision);
        Assert.Null(stored[1].CompletionTokens);
        Assert.Equal(["policy eu-only", "no eligible node in DE"], stored[1].Reasons);
    }

    [Fact]
    public async Task AppendAsync_ClockGoesBackwards_TimestampsNeverDecrease()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();

        var first = await log.AppendAsync(AuditTestContext.Inference("acme", 1));
        context.Time.Advance(TimeSpan.FromMinutes(-5));
        var second = await log.AppendAsync(AuditTestContext.Inference("acme", 2));

        Assert.Equal(first.Timestamp, second.Timestamp);
    }

    [Fact]
    public async Task AppendAsync_EveryIntervalEntries_WritesASignedCheckpoint()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync(new AuditLogOptions { CheckpointInterval = 10 });

        var entries = await context.AppendManyAsync(log, 35);

        Assert.Equal(3L, Convert.ToInt64(await context.ScalarAsync("SELECT COUNT(*) FROM audit_checkpoints"), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(entries[29].Hash, await context.ScalarAsync("SELECT hash FROM audit_checkpoints WHERE seq = 30"));
        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(3, result.CheckpointsVerified);
    }

    [Fact]
    public async Task CheckpointAsync_EmptyLog_ReturnsNull()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();

        Assert.Null(await log.CheckpointAsync());
    }

    [Fact]
    public async Task CheckpointAsync_AtHead_SignsOnceAndVerifiesWithThePublicKey()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        var entries = await context.AppendManyAsync(log, 5);

        var checkpoint = await log.CheckpointAsync();
        var again = await log.CheckpointAsync();

        Assert.NotNull(checkpoint);
        Assert.Equal(5, checkpoint.Sequence);
        Assert.Equal(entries[^1].Hash, checkpoint.Hash);
        Assert.Equal(context.Key.KeyId, checkpoint.KeyId);
        Assert.Equal(checkpoint, again);
        Assert.Equal(1L, Convert.ToInt64(await context.ScalarAsync("SELECT COUNT(*) FROM audit_checkpoints"), System.Globalization.CultureInfo.InvariantCulture));
        using var publicKey = System.Security.Cryptography.ECDsa.Create();
        publicKey.ImportFromPem(context.Key.PublicKeyPem);
        Assert.True(publicKey.VerifyData(
            AuditCanonical.CheckpointPayload(checkpoint.Sequence, checkpoint.Hash, checkpoint.Timestamp, checkpoint.KeyId),
            Convert.FromHexString(checkpoint.Signature),
            System.Security.Cryptography.HashAlgorithmName.SHA256));
    }

    [Fact]
    public async Task OpenAsync_SameDatabaseAfterRestart_ContinuesTheChain()
    {
        await using var context = AuditTestContext.Create();
        AuditEntry last;
        await using (var first = await context.OpenLogAsync())
        {
            last = (await context.AppendManyAsync(first, 20))[^1];
        }

        await using var second = await context.OpenLogAsync();
        var next = await second.AppendAsync(AuditTestContext.Inference("acme", 99));

        Assert.Equal(21, next.Sequence);
        Assert.Equal(last.Hash, next.PreviousHash);
        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(21, result.EntriesChecked);
    }

    [Fact]
    public async Task AppendAsync_TwoWritersOnOneDatabase_ReloadTheHeadAndStayGapless()
    {
        await using var context = AuditTestContext.Create();
        await using var first = await context.OpenLogAsync();
        await using var second = await context.OpenLogAsync();

        var a = await first.AppendAsync(AuditTestContext.Inference("acme", 1));
        var b = await second.AppendAsync(AuditTestContext.Inference("acme", 2));
        var c = await first.AppendAsync(AuditTestContext.Inference("acme", 3));

        long[] sequences = [a.Sequence, b.Sequence, c.Sequence];
        Assert.Equal([1L, 2, 3], sequences);
        Assert.Equal(b.Hash, c.PreviousHash);
        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
    }

    [Fact]
    public async Task DisposeAsync_HeadMovedSinceLastCheckpoint_WritesAFinalCheckpoint()
    {
        await using var context = AuditTestContext.Create();
        await using (var log = await context.OpenLogAsync())
        {
            await context.AppendManyAsync(log, 3);
        }

        Assert.Equal(3L, Convert.ToInt64(await context.ScalarAsync("SELECT MAX(seq) FROM audit_checkpoints"), System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task OpenAsync_TailTruncated_RefusesToBuildOnIt()
    {
        await using var context = AuditTestContext.Create();
        await using (var log = await context.OpenLogAsync())
        {
            await context.AppendManyAsync(log, 10);
        }

        await context.ExecuteAsync("DELETE FROM audit_entries WHERE seq > 8");

        await Assert.ThrowsAsync<AuditIntegrityException>(() => context.OpenLogAsync());
    }

    [Fact]
    public async Task DisposeAsync_WhileAppendsAreInFlight_EveryAppendCommitsOrFailsAndTheChainVerifies()
    {
        await using var context = AuditTestContext.Create();
        var log = await context.OpenLogAsync();
        var appends = Enumerable.Range(0, 400).Select(i => Task.Run(() => log.AppendAsync(AuditTestContext.Inference("acme", i)))).ToList();

        await log.DisposeAsync();
        var outcomes = await Task.WhenAll(appends.Select(async task =>
        {
            try
            {
                return (await task).Sequence;
            }
            catch (Exception ex) when (ex is ObjectDisposedException or AuditUnavailableException)
            {
                return 0L;
            }
        }));

        var committed = outcomes.Where(s => s > 0).Order().ToList();
        Assert.Equal(Enumerable.Range(1, committed.Count).Select(i => (long)i), committed);
        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(committed.Count, result.EntriesChecked);
    }

    [Fact]
    public async Task AppendAsync_AfterDispose_Throws()
    {
        await using var context = AuditTestContext.Create();
        var log = await context.OpenLogAsync();
        await log.DisposeAsync();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => log.AppendAsync(AuditTestContext.Inference("acme", 1)));
    }

    [Fact]
    public async Task AppendAsync_InvalidDraft_IsRejectedBeforeItReachesTheChain()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();

        await Assert.ThrowsAnyAsync<ArgumentException>(() => log.AppendAsync(AuditTestContext.Inference("acme", 1) with { Actor = " " }));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => log.AppendAsync(AuditTestContext.Inference("acme", 1) with { Model = "bad\ud800" }));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => log.AppendAsync(AuditTestContext.Inference("acme", 1) with { PromptTokens = -1 }));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => log.AppendAsync(AuditTestContext.Admin("acme", AuditActions.PolicyUpdate,
            new Dictionary<string, string> { ["prompt"] = new string('x', 300_000) })));
        var ok = await log.AppendAsync(AuditTestContext.Inference("acme", 1));

        Assert.Equal(1, ok.Sequence);
    }

    [Fact]
    public async Task ReadAsync_ByTenantAndTimeRange_ReturnsOnlyThatTenantInRange()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        var start = context.Time.GetUtcNow();
        var entries = await context.AppendManyAsync(log, 30, "acme", "globex", "initech");

        var acme = await log.ReadAsync("acme", start.AddMilliseconds(3), start.AddMilliseconds(15));

        var expected = entries.Where(e => e.Tenant == "acme" && e.Timestamp >= start.ToUnixTimeMilliseconds() + 3 && e.Timestamp < start.ToUnixTimeMilliseconds() + 15).ToList();
        Assert.Equal(4, expected.Count);
        Assert.Equal(expected.Select(e => e.Sequence), acme.Select(e => e.Sequence));
        Assert.All(acme, e => Assert.Equal("acme", e.Tenant));
    }

    [Fact]
    public async Task ReadAsync_NullTenant_ReturnsEveryTenantInTheTimeRange()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        var start = context.Time.GetUtcNow();
        await context.AppendManyAsync(log, 30, "acme", "globex", "initech");

        var all = await log.ReadAsync(null, start.AddMilliseconds(3), start.AddMilliseconds(15), limit: 5);

        Assert.Equal([4L, 5, 6, 7, 8], all.Select(e => e.Sequence));
    }

    [Fact]
    public async Task ReadAsync_NullTenant_AnyTimeRange_IsExactlyTheEntriesInIt_WithoutAnIndexOnTime()
    {
        // Times repeat, jump, and the clock goes back (the log keeps them from decreasing): every range, read as a
        // sequence range found by binary search, holds exactly the entries a filter over the whole log finds.
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        var start = context.Time.GetUtcNow();
        int[] steps = [0, 0, 1, 5, 0, 2, -3, 0, 7, 1, 0, 0, 4, -10, 3, 1, 0, 9, 2, 0];
        var entries = new List<AuditEntry>();
        for (var i = 0; i < 60; i++)
        {
            entries.Add(await log.AppendAsync(AuditTestContext.Inference(i % 2 == 0 ? "acme" : "globex", i)));
            context.Time.Set(context.Time.GetUtcNow().AddMilliseconds(steps[i % steps.Length]));
        }

        Assert.Equal(0L, await context.ScalarAsync("SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_entries_at'"));
        var first = start.ToUnixTimeMilliseconds();
        var last = entries[^1].Timestamp;
        for (var from = first - 2; from <= last + 2; from++)
        {
            for (var to = from - 1; to <= last + 3; to += 3)
            {
                var read = await log.ReadAsync(null, DateTimeOffset.FromUnixTimeMilliseconds(from), DateTimeOffset.FromUnixTimeMilliseconds(to), limit: 1000);
                var expected = entries.Where(e => e.Timestamp >= from && e.Timestamp < to).Select(e => e.Sequence);
                Assert.True(expected.SequenceEqual(read.Select(e => e.Sequence)), $"from {from - first} to {to - first}: [{string.Join(",", read.Select(e => e.Sequence))}]");
            }
        }

        // Newest first, one page below a cursor.
        var page = await log.ReadAsync(new AuditQuery { From = start.AddMilliseconds(5), To = DateTimeOffset.FromUnixTimeMilliseconds(last), Limit = 3, NewestFirst = true, Before = 40 });
        var inRange = entries.Where(e => e.Timestamp >= first + 5 && e.Timestamp < last && e.Sequence < 40).Select(e => e.Sequence).Reverse().Take(3);
        Assert.Equal(inRange, page.Select(e => e.Sequence));
    }

    [Fact]
    public async Task ANewSqliteFile_KeysTheChainByRowid_NoSeparateSequenceIndex()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        await context.AppendManyAsync(log, 3);

        // An INTEGER PRIMARY KEY is the rowid: no sqlite_autoindex for it, one page less per append.
        Assert.Contains("seq INTEGER NOT NULL PRIMARY KEY", (string)(await context.ScalarAsync("SELECT sql FROM sqlite_master WHERE name = 'audit_entries'"))!, StringComparison.Ordinal);
        Assert.Equal(0L, await context.ScalarAsync("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_entries' AND name LIKE 'sqlite_autoindex%'"));
        Assert.True((await context.VerifyAsync()).Valid);
    }

    [Fact]
    public async Task ReadAsync_BySequenceRange_ReturnsThatRangeInOrder()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        await context.AppendManyAsync(log, 20);

        var range = await log.ReadAsync(5, 9);

        Assert.Equal([5L, 6, 7, 8, 9], range.Select(e => e.Sequence));
    }

    [Fact]
    public async Task AppendAsync_CommitsOnlyInItsTurnOnTheFile()
    {
        // Other writers of the process (the usage ledger) share the file: they take turns instead of meeting
        // SQLite's busy handler, which sleeps milliseconds before retrying a writer that found the file locked.
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        var turn = await context.Database.EnterWriteAsync();

        var append = log.AppendAsync(AuditTestContext.Inference("acme", 0));
        Assert.False(append.IsCompleted);
        Assert.Empty(await log.ReadAsync(1, 1));

        turn.Dispose();
        Assert.Equal(1, (await append).Sequence);
        Assert.Single(await log.ReadAsync(1, 1));
    }

    private static void AssertSame(AuditEntry expected, AuditEntry actual)
    {
        // Records compare collections by reference: compare the scalars with shared empty collections, then the collections.
        IReadOnlyList<string> noReasons = [];
        var noDetails = new Dictionary<string, string>();
        Assert.Equal(expected with { Reasons = noReasons, Details = noDetails }, actual with { Reasons = noReasons, Details = noDetails });
        Assert.Equal(expected.Reasons, actual.Reasons);
        Assert.Equal(expected.Details.OrderBy(p => p.Key), actual.Details.OrderBy(p => p.Key));
        Assert.Equal(actual.ComputeHash(), actual.Hash);
    }

    [Fact]
    public async Task WalHousekeeping_CommitsBesideTheCheckpoint_TheWalStillStartsOver()
    {
        // Under steady load a checkpoint never ends with every frame copied, and SQLite starts the WAL over only then:
        // it grew without end (about 19 KiB a request). Commits run beside the housekeeping here, as under load.
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync(new AuditLogOptions { SqliteWalCheckpointCommits = 20, SqliteWalRestartBytes = 1 });
        await context.AppendManyAsync(log, 20);
        var housekeeping = log.WalHousekeeping;
        var beside = 0;
        while (!housekeeping.IsCompleted)
        {
            await log.AppendAsync(AuditTestContext.Inference("acme", 1000 + beside++));
        }

        await housekeeping;
        await log.AppendAsync(AuditTestContext.Inference("acme", 5000));
        await log.WalHousekeeping; // the commits beside the first housekeeping were due another

        // The WAL started over: it holds the frames of the last commit or the last few (an entry, its two index leaves
        // and the head: four frames a commit), not the 80 or more of every commit since the first.
        var frames = await WalFramesAsync(context);
        Assert.InRange(frames, 1, 40);
        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(21 + beside, result.EntriesChecked);
    }

    [Fact]
    public async Task WalHousekeeping_RunsOnItsOwnThread_NotAPoolThread()
    {
        // A pass is synchronous I/O (the copy and two fsyncs) for as long as it takes: on a pool thread it held one of
        // the pool's threads (as many as cores) that long, every 200 commits, while requests' continuations queued.
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync(new AuditLogOptions { SqliteWalCheckpointCommits = 20 });
        await context.AppendManyAsync(log, 20);
        await log.WalHousekeeping;

        Assert.NotNull(log.WalCheckpointer);
        Assert.False(log.WalCheckpointer.LastPassOnPoolThread);
    }

    [Fact]
    public async Task WalHousekeeping_PassHeld_AppendsStillCommit_ThenTheWalStartsOver()
    {
        // A pass is PASSIVE and asked for without waiting: no commit waits for it, even one that falls due for the next.
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync(new AuditLogOptions { SqliteWalCheckpointCommits = 20, SqliteWalRestartBytes = 1 });
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        log.WalCheckpointer!.BeforePass = () =>
        {
            entered.Set();
            release.Wait(TimeSpan.FromMinutes(1)); // a bound for a broken build only: the test releases it below
        };
        await context.AppendManyAsync(log, 20);
        var held = log.WalHousekeeping;
        Assert.True(entered.Wait(TimeSpan.FromMinutes(1)));

        for (var i = 0; i < 60; i++)
        {
            await log.AppendAsync(AuditTestContext.Inference("acme", 1000 + i));
        }

        Assert.False(held.IsCompleted); // the 60 commits (three passes' worth) went by the held pass
        Assert.Same(held, log.WalHousekeeping); // and asked for no second pass beside it

        release.Set();
        await held;
        await log.AppendAsync(AuditTestContext.Inference("acme", 5000)); // due a pass since the held one: asks for it
        Assert.NotSame(held, log.WalHousekeeping);
        await log.WalHousekeeping;

        // Bounded: the WAL started over and holds the last commit or the last few, not the 80 commits' frames.
        var frames = await WalFramesAsync(context);
        Assert.InRange(frames, 1, 40);
        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
        Assert.Equal(81, result.EntriesChecked);
    }

    private static async Task<long> WalFramesAsync(AuditTestContext context)
    {
        await using var connection = await context.Database.OpenAsync();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(0, reader.GetInt64(0)); // not busy: nothing else checkpoints now
        return reader.GetInt64(1);
    }

    [Fact]
    public async Task AppendAsync_HandedOverCollections_AreKept_OthersCopied_AndEitherChainsTheSame()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        var keptDetails = new Dictionary<string, string>(StringComparer.Ordinal) { ["request_id"] = "req_1", ["outcome"] = "completed" };
        var keptReasons = new List<string> { "policy eu-only" };
        var copiedDetails = new Dictionary<string, string>(StringComparer.Ordinal) { ["request_id"] = "req_2", ["outcome"] = "completed" };

        // A governed request's two records hand their collections over (the router makes them for the record alone):
        // the entry keeps them instead of a copy per entry.
        var kept = await log.AppendAsync(AuditTestContext.Inference("acme", 1) with { Reasons = keptReasons, Details = keptDetails, HandsOverCollections = true });
        var copied = await log.AppendAsync(AuditTestContext.Inference("acme", 2) with { Reasons = keptReasons, Details = copiedDetails });

        Assert.Same(keptDetails, kept.Details);
        Assert.Same(keptReasons, kept.Reasons);

        // Without the flag the entry holds its own copy: a caller that edits its dictionary after appending does not
        // change a committed entry (its hash still matches).
        Assert.NotSame(copiedDetails, copied.Details);
        Assert.NotSame(keptReasons, copied.Reasons);
        copiedDetails["outcome"] = "edited";
        Assert.Equal("completed", copied.Details["outcome"]);
        Assert.Equal(copied.ComputeHash(), copied.Hash);

        var stored = await log.ReadAsync(1, 2);
        Assert.Equal(new[] { kept.Hash, copied.Hash }, stored.Select(e => e.Hash));
        Assert.Equal("req_1", stored[0].Details["request_id"]);
        Assert.Equal(["policy eu-only"], stored[0].Reasons);
        var result = await context.VerifyAsync();
        Assert.True(result.Valid, string.Join("\n", result.Problems));
    }

    [Fact]
    public void RecordsAndEntriesWithoutDetails_ShareOneEmptyMap()
    {
        // The initializer made a new empty dictionary for every record and entry, replaced at once on the request path.
        var first = AuditTestContext.Inference("acme", 1);
        var second = AuditTestContext.Inference("acme", 2);

        Assert.Empty(first.Details);
        Assert.Same(first.Details, second.Details);
    }
}
