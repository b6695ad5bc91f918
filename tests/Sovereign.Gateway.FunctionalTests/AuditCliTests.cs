using Microsoft.Data.Sqlite;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>The operator's and the auditor's commands against a real gateway's data.</summary>
[Collection(ResidencyCollection.Name)]
public sealed class AuditCliTests(ResidencyFixture fixture) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-audit-").FullName;

    /// <summary>A consistent copy of the running TH gateway's SQLite database (SQLite's online backup), to tamper with or archive.</summary>
    private string CopyOfTheGatewaysDatabase(string name)
    {
        var copy = Path.Combine(_directory, name);
        using var source = new SqliteConnection($"Data Source={Path.Combine(fixture.ThDataDirectory, "sovereign.db")}");
        source.Open();
        using var backup = new SqliteConnection($"Data Source={copy}");
        source.BackupDatabase(backup);
        return copy;
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task TenantsAndNodes_ListThroughTheAdminApi()
    {
        var url = fixture.ThAddress.ToString();
        var (exit, stdout, stderr) = await CliProcess.RunAsync("tenants", "list", "--url", url, "--admin-token", ResidencyFixture.AdminToken);
        Assert.True(exit == 0, stderr);
        Assert.Contains("th-hospital", stdout, StringComparison.Ordinal);

        (exit, stdout, stderr) = await CliProcess.RunAsync("nodes", "list", "--url", url, "--admin-token", ResidencyFixture.AdminToken);
        Assert.True(exit == 0, stderr);
        Assert.Contains("sg-1", stdout, StringComparison.Ordinal);

        // An OpenAI base URL (…/v1) names the same server: it asked for /v1/admin/v1/tenants and reported a 404.
        (exit, stdout, stderr) = await CliProcess.RunAsync("tenants", "list", "--url", url.TrimEnd('/') + "/v1", "--admin-token", ResidencyFixture.AdminToken);
        Assert.True(exit == 0, stderr);
        Assert.Contains("th-hospital", stdout, StringComparison.Ordinal);

        (exit, _, stderr) = await CliProcess.RunAsync("tenants", "list", "--url", url, "--admin-token", fixture.ThOnlyKey);
        Assert.Equal(1, exit);
        Assert.Contains("401", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeysCreateAndRevoke_FromTheCommandLine()
    {
        var url = fixture.ThAddress.ToString();
        var (exit, stdout, stderr) = await CliProcess.RunAsync("keys", "create", "asean-corp", "--name", "cli", "--url", url, "--admin-token", ResidencyFixture.AdminToken, "--json");
        Assert.True(exit == 0, stderr);
        var created = System.Text.Json.JsonDocument.Parse(stdout).RootElement;
        var keyId = created.GetProperty("key").GetProperty("id").GetString()!;

        (exit, _, stderr) = await CliProcess.RunAsync("keys", "revoke", "asean-corp", keyId, "--url", url, "--admin-token", ResidencyFixture.AdminToken);
        Assert.True(exit == 0, stderr);
        using var client = fixture.TenantClient(created.GetProperty("secret").GetString()!);
        Assert.Equal(401, (int)(await client.GetAsync("/v1/models")).StatusCode);
    }

    [Fact]
    public async Task KeysCreateWithExpiry_FromTheCommandLine_ListsIt_AndABadDurationIsAUsageError()
    {
        var url = fixture.ThAddress.ToString();
        // The server's clock held: the expiry is a week from the instant the test reads, even across midnight UTC.
        var (exit, stdout, stderr) = (0, "", "");
        using (fixture.ThClock.Hold())
        {
            (exit, stdout, stderr) = await CliProcess.RunAsync("keys", "create", "asean-corp", "--name", "week", "--expires-in", "7d", "--url", url, "--admin-token", ResidencyFixture.AdminToken);
            Assert.True(exit == 0, stderr);
            Assert.Contains("valid until " + fixture.ThClock.GetUtcNow().AddDays(7).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture), stdout, StringComparison.Ordinal);
        }

        (exit, stdout, stderr) = await CliProcess.RunAsync("keys", "list", "asean-corp", "--url", url, "--admin-token", ResidencyFixture.AdminToken);
        Assert.True(exit == 0, stderr);
        Assert.Contains("expires", stdout, StringComparison.Ordinal);

        (exit, _, stderr) = await CliProcess.RunAsync("keys", "create", "asean-corp", "--expires-in", "7 days", "--url", url, "--admin-token", ResidencyFixture.AdminToken);
        Assert.Equal(2, exit);
        Assert.Contains("--expires-in", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeysCreateWithExpiresAtInUnixSeconds_FromTheCommandLine_ExpiresThen()
    {
        var url = fixture.ThAddress.ToString();
        var at = DateTimeOffset.UtcNow.AddDays(10).ToUnixTimeSeconds();
        var (exit, stdout, stderr) = await CliProcess.RunAsync("keys", "create", "asean-corp", "--expires-at", at.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--url", url, "--admin-token", ResidencyFixture.AdminToken, "--json");
        Assert.True(exit == 0, stderr);
        Assert.Equal(at * 1000, System.Text.Json.JsonDocument.Parse(stdout).RootElement.GetProperty("key").GetProperty("expires_at").GetInt64());

        (exit, _, stderr) = await CliProcess.RunAsync("keys", "create", "asean-corp", "--expires-at", (at * 1000).ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--url", url, "--admin-token", ResidencyFixture.AdminToken);
        Assert.Equal(1, exit);
        Assert.Contains("divide by 1000", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuditVerify_IntactLog_ThenATamperedCopyIsLocated()
    {
        using (var client = fixture.TenantClient(fixture.ThOnlyKey))
        {
            var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                """{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":3}""", System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(200, (int)response.StatusCode);
        }

        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", fixture.ThDataDirectory);
        Assert.True(exit == 0, stdout + stderr);
        Assert.Contains("intact", stdout, StringComparison.Ordinal);

        // A serving gateway signs from its first commit on: something is covered, and the rest is younger than the bound.
        Assert.Matches(@"Last signed checkpoint: sequence [1-9]\d* at ", stdout);
        Assert.Matches(@"Covered through [1-9]\d*; uncovered: \d+\.", stdout);

        // Tamper with a copy: change the model recorded in entry 3.
        var copy = CopyOfTheGatewaysDatabase("copy.db");

        using (var connection = new SqliteConnection($"Data Source={copy}"))
        {
            connection.Open();
            using var update = connection.CreateCommand();
            update.CommandText = "UPDATE audit_entries SET actor = 'someone-else' WHERE seq = 3";
            Assert.Equal(1, update.ExecuteNonQuery());
        }

        (exit, stdout, _) = await CliProcess.RunAsync("audit", "verify", "--data-dir", fixture.ThDataDirectory, "--database", copy);
        Assert.Equal(3, exit);
        Assert.Contains("tampered", stdout, StringComparison.Ordinal);
        Assert.Contains("3", stdout, StringComparison.Ordinal);
    }

    /// <summary>
    /// Entry times never decrease along the chain (FORMAT.md), and reads by time binary-search on it. An entry moved
    /// back in time, the chain re-hashed and the checkpoints after it deleted, verified as merely uncovered (exit 5);
    /// it is tampered (exit 3), naming the entry.
    /// </summary>
    [Fact]
    public async Task AuditVerify_EntryTimeMovedBackAndChainRehashed_IsTamperedNamingTheEntry()
    {
        using (var client = fixture.TenantClient(fixture.ThOnlyKey))
        {
            var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                """{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":3}""", System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(200, (int)response.StatusCode);
        }

        var copy = CopyOfTheGatewaysDatabase("time-reversed.db");
        var database = Sovereign.Storage.SqlDatabase.Sqlite(copy);
        var all = await Sovereign.Residency.Audit.AuditStore.ReadEntriesAsync(database, "WHERE seq >= 1 ORDER BY seq", _ => { }, CancellationToken.None);
        var moved = all[^2].Sequence; // the last but one, an hour before the entry it follows
        var previous = all[^3].Hash;
        using (var connection = new SqliteConnection($"Data Source={copy}"))
        {
            connection.Open();
            foreach (var original in all.Where(e => e.Sequence >= moved))
            {
                var entry = original with { PreviousHash = previous, Timestamp = original.Sequence == moved ? all[^3].Timestamp - 3_600_000 : original.Timestamp };
                entry = entry with { Hash = entry.ComputeHash() };
                using var update = connection.CreateCommand();
                update.CommandText = "UPDATE audit_entries SET at_ms = $at, previous_hash = $prev, hash = $hash WHERE seq = $seq";
                update.Parameters.AddWithValue("$at", entry.Timestamp);
                update.Parameters.AddWithValue("$prev", entry.PreviousHash);
                update.Parameters.AddWithValue("$hash", entry.Hash);
                update.Parameters.AddWithValue("$seq", entry.Sequence);
                Assert.Equal(1, update.ExecuteNonQuery());
                previous = entry.Hash;
            }

            using var head = connection.CreateCommand();
            head.CommandText = "UPDATE audit_head SET hash = $hash WHERE id = 1; DELETE FROM audit_checkpoints WHERE seq >= $from";
            head.Parameters.AddWithValue("$hash", previous);
            head.Parameters.AddWithValue("$from", moved);
            head.ExecuteNonQuery();
        }

        // The witness (the live gateway's last signed head) would also tell; without it only the times do.
        var (exit, stdout, _) = await CliProcess.RunAsync("audit", "verify", "--data-dir", fixture.ThDataDirectory, "--database", copy, "--no-witness");
        Assert.True(exit == 3, stdout);
        Assert.Contains($"seq {moved}: TimeReversed: Entry {moved}'s time ", stdout, StringComparison.Ordinal);
        Assert.Contains($"before entry {moved - 1}'s", stdout, StringComparison.Ordinal);
        Assert.Contains("The audit log has been tampered with.", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuditVerify_CopyWithEveryCheckpointDeleted_IsIntactButNotTrusted()
    {
        using (var client = fixture.TenantClient(fixture.ThOnlyKey))
        {
            var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                """{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":3}""", System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(200, (int)response.StatusCode);
        }

        var copy = CopyOfTheGatewaysDatabase("no-checkpoints.db");

        using (var connection = new SqliteConnection($"Data Source={copy}"))
        {
            connection.Open();
            using var delete = connection.CreateCommand();
            delete.CommandText = "DELETE FROM audit_checkpoints";
            Assert.True(delete.ExecuteNonQuery() > 0);
        }

        // Every hash still chains (an attacker who re-hashed would leave the same picture): only the missing signatures tell.
        var (exit, stdout, _) = await CliProcess.RunAsync("audit", "verify", "--data-dir", fixture.ThDataDirectory, "--database", copy);
        Assert.True(exit == 5, stdout);
        Assert.Contains("No signed checkpoint matches the log.", stdout, StringComparison.Ordinal);
        Assert.Contains("Covered through 0; uncovered: ", stdout, StringComparison.Ordinal);
        Assert.Contains("NOT fully trusted", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("tampered", stdout, StringComparison.Ordinal);

        // For scripts: the admin API's report as JSON, the same exit code (explorer7 found no --json here).
        (exit, stdout, _) = await CliProcess.RunAsync("audit", "verify", "--data-dir", fixture.ThDataDirectory, "--database", copy, "--json");
        var report = System.Text.Json.JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(5, exit);
        Assert.Equal(("uncovered", 0L), (report.GetProperty("verdict").GetString(), report.GetProperty("covered_through").GetInt64()));
        Assert.True(report.GetProperty("entries_checked").GetInt64() > 0);
    }

    [Fact]
    public async Task AuditArchive_OnACopy_WritesAVerifiedFileThenRemovesTheEntriesAndTheLogStillVerifies()
    {
        using (var client = fixture.TenantClient(fixture.ThOnlyKey))
        {
            for (var i = 0; i < 3; i++)
            {
                var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                    """{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":3}""", System.Text.Encoding.UTF8, "application/json"));
                Assert.Equal(200, (int)response.StatusCode);
            }
        }

        var copy = CopyOfTheGatewaysDatabase("archived.db");

        long Count(string sql)
        {
            using var connection = new SqliteConnection($"Data Source={copy}");
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            return (long)command.ExecuteScalar()!;
        }

        var before = Count("SELECT COUNT(*) FROM audit_entries");
        var newest = Count("SELECT MAX(seq) FROM audit_entries");
        var archive = Path.Combine(_directory, "archive-1.jsonl");
        var publicKey = Path.Combine(_directory, "archive-operator.pem");
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", fixture.ThDataDirectory);
        Assert.True(exit == 0, stderr);
        await File.WriteAllTextAsync(publicKey, stdout);

        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "archive", "--data-dir", fixture.ThDataDirectory, "--database", copy,
            "--before", DateTimeOffset.UtcNow.ToString("O"), "-o", archive);
        Assert.True(exit == 0, stdout + stderr);
        Assert.Contains("Keep the file", stdout, StringComparison.Ordinal);

        // Every entry went to the file; all but the newest left the database, and both halves verify.
        Assert.True(before > 3, $"{before} entries");
        Assert.Equal(1, Count("SELECT COUNT(*) FROM audit_entries"));
        Assert.Equal(newest, Count("SELECT MIN(seq) FROM audit_entries"));
        (exit, stdout, _) = await CliProcess.RunAsync("audit", "verify-export", archive, "--public-key", publicKey);
        Assert.True(exit == 0, stdout);
        Assert.Contains($"Checked {before} entries.", stdout, StringComparison.Ordinal);
        // The newest entry (the last request's outcome) stays in the database: its decision in the file is cut off, not
        // a request "still running", as verify-export called it.
        Assert.Contains("open (no outcome in this file: written after the file's last entry", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("still running", stdout, StringComparison.Ordinal);
        (exit, stdout, _) = await CliProcess.RunAsync("audit", "verify", "--data-dir", fixture.ThDataDirectory, "--database", copy);
        Assert.True(exit == 0, stdout);
        Assert.Contains($"Entries 1..{newest - 1} were archived", stdout, StringComparison.Ordinal);

        // The file is never overwritten, and the future cannot be archived.
        (exit, _, stderr) = await CliProcess.RunAsync("audit", "archive", "--data-dir", fixture.ThDataDirectory, "--database", copy, "--before", "2020-01-01", "-o", archive);
        Assert.Equal(2, exit);
        Assert.Contains("already exists", stderr, StringComparison.Ordinal);
        (exit, _, stderr) = await CliProcess.RunAsync("audit", "archive", "--data-dir", fixture.ThDataDirectory, "--database", copy,
            "--before", DateTimeOffset.UtcNow.AddDays(1).ToString("O"), "-o", Path.Combine(_directory, "archive-2.jsonl"));
        Assert.Equal(2, exit);
        Assert.Contains("in the future", stderr, StringComparison.Ordinal);
        var missingFolder = Path.Combine(_directory, "no-such-folder");
        (exit, _, stderr) = await CliProcess.RunAsync("audit", "archive", "--data-dir", fixture.ThDataDirectory, "--database", copy, "--before", "2020-01-01",
            "-o", Path.Combine(missingFolder, "archive-3.jsonl"));
        Assert.Equal(2, exit);
        Assert.Contains($"the folder {missingFolder} does not exist", stderr, StringComparison.Ordinal);

        // Deleting entries by hand, without an archive record, is still tampering.
        using (var connection = new SqliteConnection($"Data Source={copy}"))
        {
            connection.Open();
            using var delete = connection.CreateCommand();
            delete.CommandText = "DELETE FROM audit_archives";
            Assert.Equal(1, delete.ExecuteNonQuery());
        }

        (exit, stdout, _) = await CliProcess.RunAsync("audit", "verify", "--data-dir", fixture.ThDataDirectory, "--database", copy);
        Assert.Equal(3, exit);
        Assert.Contains("SequenceGap", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuditExport_ForOneTenant_VerifiesOfflineWithThePublicKeyAlone()
    {
        using (var client = fixture.TenantClient(fixture.AseanKey))
        {
            await client.PostAsync("/v1/chat/completions", new StringContent(
                """{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":3}""", System.Text.Encoding.UTF8, "application/json"));
        }

        var export = Path.Combine(_directory, "asean.jsonl");
        var publicKey = Path.Combine(_directory, "operator.pub.pem");
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", fixture.ThDataDirectory);
        Assert.True(exit == 0, stderr);
        await File.WriteAllTextAsync(publicKey, stdout);

        (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", fixture.ThDataDirectory, "--tenant", "asean-corp", "--output", export);
        Assert.True(exit == 0, stderr);
        var lines = await File.ReadAllLinesAsync(export);
        Assert.Contains(lines, l => l.Contains("asean-corp", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("\"th-hospital\"", StringComparison.Ordinal));

        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", export, "--public-key", publicKey);
        Assert.True(exit == 0, stdout + stderr);

        // Any edit of an exported line is detected.
        var tampered = Path.Combine(_directory, "tampered.jsonl");
        var target = Array.FindIndex(lines, l => l.Contains("asean-corp", StringComparison.Ordinal) && l.Contains("inference", StringComparison.Ordinal));
        lines[target] = lines[target].Replace("asean-corp", "asean-corq", StringComparison.Ordinal);
        await File.WriteAllLinesAsync(tampered, lines);
        (exit, stdout, _) = await CliProcess.RunAsync("audit", "verify-export", tampered, "--public-key", publicKey);
        Assert.Equal(3, exit);
    }
}
