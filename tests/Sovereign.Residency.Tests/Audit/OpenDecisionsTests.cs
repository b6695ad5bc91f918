using Sovereign.Residency.Audit;

namespace Sovereign.Residency.Tests.Audit;

/// <summary><see cref="AuditLog.FindOpenDecisionsAsync"/>: allowed decisions that no outcome follows, of one gateway.</summary>
public sealed class OpenDecisionsTests
{
    [Fact]
    public async Task FindOpenDecisionsAsync_OnlyThisGatewaysDecisionsWithoutAnOutcome_OnceMarkedNotAgain()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-done"));
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-open"));
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-failover")); // a failover decides twice, one outcome closes both
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-failover"));
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-tokenize", endpoint: "/tokenize")); // never gets an outcome
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-elsewhere", gateway: "gw-other"));
        await log.AppendAsync(Entry(AuditActions.InferenceRefused, "req-refused"));
        await log.AppendAsync(Entry(AuditActions.InferenceCompleted, "req-done"));
        await log.AppendAsync(Entry(AuditActions.InferenceCompleted, "req-failover"));

        var open = await log.FindOpenDecisionsAsync("gw-fra-1");

        Assert.Equal(["req-open"], open.Decisions.Select(d => d.Details["request_id"]));
        Assert.Equal(2, open.Decisions[0].Sequence);
        Assert.Equal(log.HeadSequence, open.CheckedThrough);

        // Closed, and the search marked: the next start neither finds it nor reads what it already read.
        await log.AppendAsync(Entry(AuditActions.InferenceInterrupted, "req-open"));
        await log.MarkOutcomesCheckedAsync("gw-fra-1", open.CheckedThrough);
        Assert.Empty((await log.FindOpenDecisionsAsync("gw-fra-1")).Decisions);
        await log.MarkOutcomesCheckedAsync("gw-fra-1", 1); // never moves back
        Assert.Empty((await log.FindOpenDecisionsAsync("gw-fra-1")).Decisions);
        Assert.Equal(["req-elsewhere"], (await log.FindOpenDecisionsAsync("gw-other")).Decisions.Select(d => d.Details["request_id"]));

        // A decision after the mark is found again.
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-later"));
        Assert.Equal(["req-later"], (await log.FindOpenDecisionsAsync("gw-fra-1")).Decisions.Select(d => d.Details["request_id"]));
    }

    /// <summary>
    /// The search reads one gateway id's rows in a sequence range. On SQLite one server holds the file, so every
    /// inference row of that range is its own: the range is read on the rowid, and no index by gateway is kept, which
    /// cost every append a page (two of a governed request's ~12.5). PostgreSQL, where cluster members share the chain,
    /// keeps the index (<c>PostgreSqlSchemaTests.OpenDecisionsScan_UsesTheGatewayIndex</c>).
    /// </summary>
    [Fact]
    public async Task OpenDecisionsScan_OnSqlite_ReadsTheRangeOnTheRowid_WithNoIndexByGateway()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        var plan = await PlanAsync(context);

        Assert.Equal(0L, await context.ScalarAsync("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_entries' AND sql LIKE '%gateway%'"));
        Assert.Contains(plan, step => step.Contains("USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)", StringComparison.Ordinal));
        Assert.DoesNotContain(plan, step => step.Contains("TEMP B-TREE", StringComparison.Ordinal));
    }

    /// <summary>
    /// A file from before <c>audit-010-no-gateway-index-on-sqlite</c> has the index: its next open drops it, and the
    /// search still finds only its own gateway's open decisions, the chain still verifies.
    /// </summary>
    [Fact]
    public async Task AnOlderSqliteFile_LosesTheGatewayIndexAtItsNextOpen_AndTheSearchStillFindsItsOwnOpenDecisions()
    {
        await using var context = AuditTestContext.Create();
        await using (var first = await context.OpenLogAsync())
        {
            await first.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-open"));
            await first.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-elsewhere", gateway: "gw-other"));
            await first.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-done"));
            await first.AppendAsync(Entry(AuditActions.InferenceCompleted, "req-done"));
        }

        // As audit-005 left a file, before audit-010 existed.
        await context.ExecuteAsync($"CREATE INDEX {AuditStore.GatewayIndex} ON audit_entries (gateway, seq)");
        await context.ExecuteAsync("DELETE FROM schema_migrations WHERE name = 'audit-010-no-gateway-index-on-sqlite'");
        Assert.Contains(await PlanAsync(context), step => step.Contains(AuditStore.GatewayIndex, StringComparison.Ordinal));

        await using var log = await context.OpenLogAsync();

        Assert.Equal(0L, await context.ScalarAsync($"SELECT COUNT(*) FROM sqlite_master WHERE name = '{AuditStore.GatewayIndex}'"));
        Assert.Equal(["req-open"], (await log.FindOpenDecisionsAsync("gw-fra-1")).Decisions.Select(d => d.Details["request_id"]));
        Assert.Equal(["req-elsewhere"], (await log.FindOpenDecisionsAsync("gw-other")).Decisions.Select(d => d.Details["request_id"]));
        Assert.True((await context.VerifyAsync()).Valid);
    }

    private static async Task<List<string>> PlanAsync(AuditTestContext context)
    {
        await using var connection = await context.Database.OpenAsync();
        using var command = connection.CreateCommand();
        command.CommandText = "EXPLAIN QUERY PLAN " + AuditLog.OpenDecisionsScan;
        foreach (var (name, value) in new (string, object)[] { ("@after", 10L), ("@through", 1000L), ("@gateway", "gw-fra-1"), ("@allowed", "a"), ("@completed", "c"), ("@interrupted", "i"), ("@refused", "r") })
        {
            Sovereign.Storage.SqlDatabase.AddParameter(command, name, value);
        }

        var plan = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            plan.Add(reader.GetString(3));
        }

        return plan;
    }

    /// <summary>
    /// The verifier and an export's verification tell each allowed request's end: completed, closed as interrupted (its
    /// process stopped first), or open. Before, an auditor saw only entries: a decision with no outcome looked the same
    /// whether it had been closed or not.
    /// </summary>
    [Fact]
    public async Task Verify_CountsCompletedInterruptedAndOpenRequests_InTheLogAndInAnExport()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-done"));
        var open = await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-open"));
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-killed"));
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-failover"));
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-failover"));
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-tokenize", endpoint: "/tokenize"));
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-done", gateway: "gw-other")); // another gateway's id space
        await log.AppendAsync(Entry(AuditActions.InferenceRefused, "req-refused"));
        await log.AppendAsync(Entry(AuditActions.InferenceCompleted, "req-done"));
        await log.AppendAsync(Entry(AuditActions.InferenceCompleted, "req-failover"));
        await log.AppendAsync(Entry(AuditActions.InferenceInterrupted, "req-killed"));
        var otherOpen = (await log.ReadAsync(7, 7)).Single();
        await log.CheckpointAsync();

        var verified = await AuditVerifier.VerifyAsync(context.Database, context.Key.PublicKeyPem);
        Assert.True(verified.Valid, string.Join("; ", verified.Problems));
        var decisions = verified.Decisions!;
        Assert.Equal((5L, 2L, 1L, 2L), (decisions.Allowed, decisions.Completed, decisions.Interrupted, decisions.Open));
        Assert.Equal([open.Sequence, otherOpen.Sequence], decisions.OpenSequences);

        using var export = new MemoryStream();
        await AuditExport.WriteAsync(context.Database, context.Key, null, DateTimeOffset.UnixEpoch, DateTimeOffset.MaxValue, export);
        export.Position = 0;
        var exported = await AuditExport.VerifyExportAsync(export, context.Key.PublicKeyPem);
        Assert.True(exported.Valid, string.Join("; ", exported.Problems));
        var inExport = exported.Decisions!;
        Assert.Equal((5L, 2L, 1L, 2L), (inExport.Allowed, inExport.Completed, inExport.Interrupted, inExport.Open));
        Assert.Equal(decisions.OpenSequences, inExport.OpenSequences);
    }

    /// <summary>
    /// A request decided on a gateway's cached tenant whose policy changed meanwhile is decided again under the same
    /// request id; refused then, its refusal is how it ended. Its first (allowed) decision ran nothing and gets no
    /// outcome of its own: it stayed open in <c>audit verify</c> while the gateway ran, and the gateway's next start
    /// (or, in a cluster, another gateway once it stopped) closed it as <c>inference.interrupted</c>, evidence of a
    /// process stopping mid-request where none did (found running a cluster: a policy narrowed under load).
    /// </summary>
    [Fact]
    public async Task ARequestDecidedAgainAndRefused_IsClosedByItsRefusal_NotLeftOpenNorClosedAsInterrupted()
    {
        await using var context = AuditTestContext.Create();
        await using var log = await context.OpenLogAsync();
        await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-redecided"));
        await log.AppendAsync(Entry(AuditActions.InferenceRefused, "req-redecided"));
        await log.AppendAsync(Entry(AuditActions.InferenceRefused, "req-later")); // a refusal closes only decisions before it
        var open = await log.AppendAsync(Entry(AuditActions.InferenceAllowed, "req-later"));
        await log.CheckpointAsync();

        Assert.Equal(["req-later"], (await log.FindOpenDecisionsAsync("gw-fra-1")).Decisions.Select(d => d.Details["request_id"]));

        var verified = await AuditVerifier.VerifyAsync(context.Database, context.Key.PublicKeyPem);
        Assert.True(verified.Valid, string.Join("; ", verified.Problems));
        var decisions = verified.Decisions!;
        Assert.Equal((1L, 0L, 0L, 1L), (decisions.Allowed, decisions.Completed, decisions.Interrupted, decisions.Open));
        Assert.Equal([open.Sequence], decisions.OpenSequences);

        using var export = new MemoryStream();
        await AuditExport.WriteAsync(context.Database, context.Key, null, DateTimeOffset.UnixEpoch, DateTimeOffset.MaxValue, export);
        export.Position = 0;
        var inExport = (await AuditExport.VerifyExportAsync(export, context.Key.PublicKeyPem)).Decisions!;
        Assert.Equal((1L, 0L, 0L, 1L), (inExport.Allowed, inExport.Completed, inExport.Interrupted, inExport.Open));
    }

    private static AuditRecord Entry(string action, string requestId, string gateway = "gw-fra-1", string? endpoint = null)
    {
        var details = new Dictionary<string, string> { ["request_id"] = requestId };
        if (endpoint is not null)
        {
            details["endpoint"] = endpoint;
        }

        return new AuditRecord
        {
            Kind = AuditKind.Inference,
            Tenant = "acme",
            KeyId = "key-acme",
            Actor = "key-acme",
            Action = action,
            Model = "m",
            Gateway = gateway,
            Decision = action == AuditActions.InferenceRefused ? AuditDecision.Refused : AuditDecision.Allowed,
            Details = details,
        };
    }
}
