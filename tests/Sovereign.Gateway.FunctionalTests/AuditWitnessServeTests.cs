using System.Net;
using System.Text;
using Microsoft.Data.Sqlite;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// An attacker with write access to the SQLite file (not to the operator key) deletes the newest checkpoints and
/// rewrites and re-hashes the tail, then waits for <c>serve</c> to restart: it signed a checkpoint over the rewrite and
/// <c>audit verify</c> passed. The witness beside the key (<c>audit-witness.json</c>) now makes serve refuse to start
/// and verify report it; an untouched log starts and signs as before.
/// </summary>
public sealed class AuditWitnessServeTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-witness-").FullName;
    private readonly FakeChatEngine _engine = new();

    public Task InitializeAsync() => _engine.InitializeAsync();

    public async Task DisposeAsync()
    {
        await _engine.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task TailRewrittenAfterCheckpointsDeleted_ServeRefusesAndVerifyReportsIt()
    {
        // A request (its decision and its outcome with the usage), and a clean stop that signs the head.
        using (var server = await ServeProcess.StartAsync(_data, _engine.BaseUrl, "fake"))
        {
            using var client = new HttpClient { BaseAddress = server.BaseAddress };
            using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                """{"model":"fake","messages":[{"role":"user","content":"Hello"}]}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await ServeProcess.StopAsync(server);
        }

        var witnessPath = Path.Combine(_data, AuditWitness.FileName);
        var signed = AuditWitness.Read(witnessPath);
        Assert.NotNull(signed);

        // Untouched: serve starts and signs as before; the witness moves with it.
        using (var server = await ServeProcess.StartAsync(_data, _engine.BaseUrl, "fake"))
        {
            await ServeProcess.StopAsync(server);
        }

        Assert.True(AuditWitness.Read(witnessPath)!.Sequence >= signed.Sequence);
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _data);
        Assert.True(exit == 0, stdout + stderr);
        Assert.Contains("the log holds it", stdout, StringComparison.Ordinal);

        // The attack: the outcome's tokens lowered, the chain from there re-hashed, the checkpoints after it deleted.
        await RewriteCompletedTailAsync();
        // Without the witness the chain alone verifies; the usage record, still as billed, no longer agrees with the
        // rewritten outcome (audit verify checks the ledger against the log).
        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _data, "--no-witness");
        Assert.True(exit == 3, "the ledger disagrees with the rewritten outcome: " + stdout + stderr);
        Assert.Contains("LedgerMismatch: usage record ", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("WitnessMismatch", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("HashMismatch", stdout, StringComparison.Ordinal);

        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _data);
        Assert.True(exit == 3, stdout + stderr);
        Assert.Contains("WitnessMismatch", stdout, StringComparison.Ordinal);

        (exit, stdout, stderr) = await CliProcess.RunAsync("serve", "--engine", _engine.BaseUrl, "--engine-model", "fake", "--urls", "http://127.0.0.1:0", "--data-dir", _data);
        Assert.True(exit == 3, stdout + stderr);
        Assert.Contains("no longer holds the head this server last signed", stderr, StringComparison.Ordinal);

        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", _data, "-o", Path.Combine(_data, "export.jsonl"));
        Assert.True(exit == 3, stdout + stderr);

        // Nothing signed the rewrite.
        var database = SqlDatabase.Sqlite(Path.Combine(_data, "sovereign.db"));
        await using var connection = await database.OpenAsync();
        using var count = connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM audit_checkpoints WHERE seq >= (SELECT MIN(seq) FROM audit_entries WHERE action = 'inference.completed')";
        Assert.Equal(0L, Convert.ToInt64(await count.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// The same rewrite while serve runs, over a head it had signed: its next append finds it (the head it extends is
    /// gone, and the chain no longer holds what it signed). It answered 503 from then on but kept running; now it
    /// logs it (event 4220, Critical) and stops with exit 3, as at start, without signing anything over the rewrite.
    /// </summary>
    [Fact]
    public async Task TailRewrittenWhileServing_ServeStopsWithExit3()
    {
        const string Admin = "witness-admin-token";
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var served = await ServeProcess.StartAsync(["--engine", _engine.BaseUrl, "--engine-model", "fake", "--data-dir", _data],
            new Dictionary<string, string> { ["Sovereign__AdminToken"] = Admin }, output.Enqueue);
        var server = served.Process;
        try
        {
            using var client = new HttpClient { BaseAddress = served.BaseAddress };
            using (var response = await client.PostAsync("/v1/chat/completions", Chat()))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            // The server signs its head (the outcome entry included): that head is its witness from now on.
            using (var checkpoint = new HttpRequestMessage(HttpMethod.Post, "/admin/v1/audit/checkpoint"))
            {
                checkpoint.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Admin);
                using var signed = await client.SendAsync(checkpoint);
                Assert.Equal(HttpStatusCode.OK, signed.StatusCode);
            }

            await RewriteCompletedTailAsync();
            try
            {
                using var refused = await client.PostAsync("/v1/chat/completions", Chat());
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            }
            catch (HttpRequestException)
            {
                // Already gone: the stop may outrun the answer.
            }

            await ServeProcess.WaitForExitAsync(server, () => string.Join('\n', output));
            Assert.True(server.ExitCode == 3, $"exit {server.ExitCode}:\n{string.Join('\n', output)}");
            Assert.Contains(output, line => line.Contains("AuditLogRewrittenStopping", StringComparison.Ordinal) || line.Contains("truncated or rewritten while this server ran", StringComparison.Ordinal));
            Assert.Contains(output, line => line.StartsWith("sovereign serve: stopped: ", StringComparison.Ordinal));
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true);
            }
        }

        // Nothing signed the rewrite.
        var database = SqlDatabase.Sqlite(Path.Combine(_data, "sovereign.db"));
        await using var connection = await database.OpenAsync();
        using var count = connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM audit_checkpoints WHERE seq >= (SELECT MIN(seq) FROM audit_entries WHERE action = 'inference.completed')";
        Assert.Equal(0L, Convert.ToInt64(await count.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture));
    }

    private static StringContent Chat() => new("""{"model":"fake","messages":[{"role":"user","content":"Hello"}]}""", Encoding.UTF8, "application/json");

    /// <summary>Rewrites the log from its first outcome entry on as an attacker with the database but not the key can.</summary>
    private async Task RewriteCompletedTailAsync()
    {
        var database = SqlDatabase.Sqlite(Path.Combine(_data, "sovereign.db"));
        var all = await AuditStore.ReadEntriesAsync(database, "WHERE seq >= 1 ORDER BY seq", _ => { }, CancellationToken.None);
        var from = all.First(e => e.Action == AuditActions.InferenceCompleted).Sequence;
        var previous = all.Single(e => e.Sequence == from - 1).Hash;
        await using var connection = await database.OpenAsync();
        foreach (var original in all.Where(e => e.Sequence >= from))
        {
            var entry = original with { PreviousHash = previous, PromptTokens = original.Action == AuditActions.InferenceCompleted ? 1 : original.PromptTokens };
            entry = entry with { Hash = entry.ComputeHash() };
            using var update = connection.CreateCommand();
            update.CommandText = "UPDATE audit_entries SET prompt_tokens = $pt, previous_hash = $prev, hash = $hash WHERE seq = $seq";
            update.Parameters.Add(new SqliteParameter("$pt", (object?)entry.PromptTokens ?? DBNull.Value));
            update.Parameters.Add(new SqliteParameter("$prev", entry.PreviousHash));
            update.Parameters.Add(new SqliteParameter("$hash", entry.Hash));
            update.Parameters.Add(new SqliteParameter("$seq", entry.Sequence));
            Assert.Equal(1, await update.ExecuteNonQueryAsync());
            previous = entry.Hash;
        }

        using var head = connection.CreateCommand();
        head.CommandText = "UPDATE audit_head SET hash = $hash WHERE id = 1; DELETE FROM audit_checkpoints WHERE seq >= $from";
        head.Parameters.Add(new SqliteParameter("$hash", previous));
        head.Parameters.Add(new SqliteParameter("$from", from));
        await head.ExecuteNonQueryAsync();
    }
}
