using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Npgsql;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// <c>sovereign database copy</c>: a laptop grows into a cluster's first gateway by moving its SQLite state into
/// PostgreSQL. Found walking the operator guide from one laptop to a cluster: it had no way to do this, so a gateway
/// started on PostgreSQL began from nothing (every key 401, every budget's spend forgotten, a second audit chain
/// beside the one auditors had verified). The source is the data directory of <see cref="UpgradeTests"/> (the README's
/// tour done by hand by an older build).
/// </summary>
public sealed class DatabaseCopyTests(PostgreSqlFixture postgres) : IClassFixture<PostgreSqlFixture>, IDisposable
{
    private const string AdminToken = "copy-admin-token-0001";
    private const string HospitalKey = "sk-sov-KeHhZBwgDh8Mnw3EJ89A3482V7b4vRK9cJUEDbfPdBk";
    private const string BankRevokedKey = "sk-sov-1n39SonITGUj7zWmqmnKzjRhBBNdaqMhXYnZLf2H7Wc";
    private const string BankKey = "sk-sov-iSusKcHfiXvqK1B2RuxzUacTfYhIhm4iwLlvQJW7rJE";

    private readonly string _directory = LaptopDataDirectory();

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Copy_OfALaptopsDataDirectory_IntoPostgreSql_KeepsKeysSpendInvoicesAndTheAuditChain_AndAGatewayThereServesThem()
    {
        var target = await OwnDatabaseAsync();

        // The laptop as its operator last saw it: limits with their spend, invoices, the chain.
        Snapshot before;
        await using (var laptop = Build(null))
        {
            await laptop.StartAsync();

            // While it runs, nothing is copied: it would go on writing spend and audit entries the cluster never sees.
            var (busyExit, _, busyError) = await CliProcess.RunAsync("database", "copy", "--data-dir", _directory, "--to", "postgres:" + target);
            Assert.True(busyExit == 1, $"{busyExit} {busyError}");
            Assert.Contains("a sovereign server is using", busyError, StringComparison.Ordinal);
            Assert.Equal(0, await CountAsync(target, "tenants"));

            before = await SnapshotAsync(laptop);
            await laptop.StopAsync();
        }

        var (exit, stdout, stderr) = await CliProcess.RunAsync("database", "copy", "--data-dir", _directory, "--to", "postgres:" + target);
        Assert.True(exit == 0, $"{exit} {stdout} {stderr}");
        Assert.Contains("verified in both: trusted", stdout, StringComparison.Ordinal);
        Assert.Contains("EUR 0.000124", stdout, StringComparison.Ordinal);

        // The file is the past now. A second copy (a second cluster spending the same budgets) is refused, and so is a
        // server started on it without the PostgreSQL settings: it started from the state as it was at the copy (or
        // stopped calling the log truncated, the witness having moved on), and 'audit verify' called it tampered.
        var elsewhere = await OwnDatabaseAsync();
        var (again, _, againError) = await CliProcess.RunAsync("database", "copy", "--data-dir", _directory, "--to", "postgres:" + elsewhere);
        Assert.True(again == 1, $"{again} {againError}");
        Assert.Contains("was copied into PostgreSQL", againError, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync(elsewhere, "tenants"));
        await using (var stale = Build(null))
        {
            var refused = await Assert.ThrowsAsync<Gateway.ControlPlane.DatabaseMovedException>(() => stale.StartAsync());
            Assert.Contains("Sovereign__Database__Provider=PostgreSql", refused.Message, StringComparison.Ordinal);
        }

        // The same data directory (operator key, witness) as a gateway on PostgreSQL: everything is where it was.
        await using (var gateway = Build(target))
        {
            await gateway.StartAsync();
            var after = await SnapshotAsync(gateway);
            Assert.Equal(before.Tenants, after.Tenants);
            Assert.Equal(before.HospitalLimits, after.HospitalLimits);
            Assert.Equal(before.HospitalInvoice, after.HospitalInvoice);
            Assert.Equal(before.BankInvoice, after.BankInvoice);
            Assert.Equal(before.Keys, after.Keys);
            Assert.True(after.AuditEntries >= before.AuditEntries, $"{after.AuditEntries} < {before.AuditEntries}");
            Assert.True(after.AuditValid, "the copied chain does not verify on PostgreSQL");

            foreach (var (key, status) in new[] { (HospitalKey, HttpStatusCode.OK), (BankKey, HttpStatusCode.OK), (BankRevokedKey, HttpStatusCode.Unauthorized) })
            {
                using var client = Client(gateway, key);
                using var answer = await client.PostAsync("/v1/chat/completions", new StringContent(
                    """{"model":"stories","messages":[{"role":"user","content":"Hello"}],"max_tokens":4}""", Encoding.UTF8, "application/json"));
                Assert.True(answer.StatusCode == status, $"{key[..13]}: {(int)answer.StatusCode} {await answer.Content.ReadAsStringAsync()}");
            }

            await gateway.StopAsync();
        }

        // The auditor's check of the one chain, now in PostgreSQL, with the new entries after the copied ones; the data
        // directory's own file is no longer what to check, and says where to look.
        var (verified, verifyOut, verifyError) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory, "--database", "postgres:" + target);
        Assert.True(verified == 0, $"{verified} {verifyOut} {verifyError}");
        var (old, oldOut, oldError) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory);
        Assert.True(old == 2, $"{old} {oldOut} {oldError}");
        Assert.Contains("--database \"postgres:...\"", oldError, StringComparison.Ordinal);
        Assert.DoesNotContain("tampered", oldOut + oldError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Copy_IntoADatabaseAServerHasUsed_IsRefused_AndChangesNothing()
    {
        var target = await OwnDatabaseAsync();
        var elsewhere = Directory.CreateTempSubdirectory("sovereign-copy-used-").FullName;
        try
        {
            await using var used = ServeCommand.Build(new ServeSettings
            {
                Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Threads = 1, Parallel = 1 }],
                Urls = "http://127.0.0.1:0",
                DataDirectory = elsewhere,
                Overrides = new Dictionary<string, string?>
                {
                    ["Sovereign:BuiltInEmbeddings"] = "false",
                    ["Sovereign:Database:Provider"] = "PostgreSql",
                    ["Sovereign:Database:ConnectionString"] = target,
                },
            }, []);
            await used.StartAsync();
            await used.StopAsync();
        }
        finally
        {
            Directory.Delete(elsewhere, recursive: true);
        }

        var nodes = await CountAsync(target, "nodes");
        var (exit, _, stderr) = await CliProcess.RunAsync("database", "copy", "--data-dir", _directory, "--to", "postgres:" + target);

        Assert.True(exit == 1, $"{exit} {stderr}");
        Assert.Contains("is not empty", stderr, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync(target, "tenants"));
        Assert.Equal(nodes, await CountAsync(target, "nodes"));
        Assert.False(File.Exists(Path.Combine(_directory, "sovereign.db.moved")));
    }

    [Fact]
    public async Task Copy_OfAChainThatDoesNotVerify_IsRefused_WithExit3_AndCopiesNothing()
    {
        await ExecuteSqliteAsync("UPDATE audit_entries SET tenant = 'x-tampered' WHERE seq = 5");
        var target = await OwnDatabaseAsync();

        var (exit, _, stderr) = await CliProcess.RunAsync("database", "copy", "--data-dir", _directory, "--to", "postgres:" + target);

        Assert.True(exit == 3, $"{exit} {stderr}");
        Assert.Contains("does not verify", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Equal(0, await CountAsync(target, "audit_entries"));
    }

    /// <summary>Stored responses are tenants' content at rest: copied into a database of their own jurisdiction only.</summary>
    [Fact]
    public async Task Copy_OfStoredResponses_IntoADatabaseInAnotherJurisdiction_IsRefused_NoneAcrossTheBorder()
    {
        await Sovereign.Storage.SqlDatabase.Sqlite(Path.Combine(_directory, "sovereign.db")).MigrateAsync(Gateway.ControlPlane.ControlPlaneServices.Migrations);
        await ExecuteSqliteAsync("INSERT INTO stored_responses VALUES ('resp_1', 'th-hospital', 'TH', 'laptop', 1, 9999999999999, '{}', '[]')");
        var target = await OwnDatabaseAsync();

        var (undeclared, _, undeclaredError) = await CliProcess.RunAsync("database", "copy", "--data-dir", _directory, "--to", "postgres:" + target);
        Assert.True(undeclared == 2, $"{undeclared} {undeclaredError}");
        Assert.Contains("--content-jurisdiction", undeclaredError, StringComparison.Ordinal);

        var (abroad, _, abroadError) = await CliProcess.RunAsync("database", "copy", "--data-dir", _directory, "--to", "postgres:" + target, "--content-jurisdiction", "SG");
        Assert.True(abroad == 1, $"{abroad} {abroadError}");
        Assert.Contains("1 in TH", abroadError, StringComparison.Ordinal);
        Assert.Contains("across a border", abroadError, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync(target, "tenants"));

        var (home, homeOut, homeError) = await CliProcess.RunAsync("database", "copy", "--data-dir", _directory, "--to", "postgres:" + target, "--content-jurisdiction", "th");
        Assert.True(home == 0, $"{home} {homeOut} {homeError}");
        Assert.Equal(1, await CountAsync(target, "stored_responses"));
    }

    /// <summary>
    /// The laptop's own node ('local', no URL: it ran in the laptop's process) comes along with the copy. A gateway under
    /// another node id (the cluster's 'gateway-th') listed it as up, with its model, and counted it in the jurisdiction's
    /// nodes up, though no process serves it. The same held for a single machine whose node id was changed.
    /// </summary>
    [Fact]
    public async Task ASingleMachinesOwnNode_SeenFromAProcessUnderAnotherNodeId_IsStale_NotUp()
    {
        await using var gateway = Build(null, nodeId: "gateway-th");
        await gateway.StartAsync();
        using var admin = Client(gateway, AdminToken);

        var nodes = (await Json(admin.GetAsync("/admin/v1/nodes"))).GetProperty("data").EnumerateArray()
            .ToDictionary(n => n.GetProperty("id").GetString()!, n => n.GetProperty("health").GetString());

        Assert.Equal("stale", nodes["local"]);
        Assert.Equal("up", nodes["gateway-th"]);
        await gateway.StopAsync();
    }

    private sealed record Snapshot(string Tenants, string HospitalLimits, string HospitalInvoice, string BankInvoice, string Keys, long AuditEntries, bool AuditValid);

    private static async Task<Snapshot> SnapshotAsync(WebApplication app)
    {
        using var admin = Client(app, AdminToken);
        var tenants = string.Join(",", (await Json(admin.GetAsync("/admin/v1/tenants"))).GetProperty("data").EnumerateArray()
            .Select(t => $"{t.GetProperty("id").GetString()}:{t.GetProperty("plan").GetString()}:{t.GetProperty("policy")}").Order(StringComparer.Ordinal));
        var limits = (await Json(admin.GetAsync("/admin/v1/tenants/th-hospital/limits"))).ToString();
        var hospital = (await Json(admin.GetAsync("/admin/v1/tenants/th-hospital/invoice?format=json&from=2026-12-01&to=2026-12-05"))).ToString();
        var bank = (await Json(admin.GetAsync("/admin/v1/tenants/us-bank/invoice?format=json&from=2026-12-01&to=2026-12-05"))).ToString();
        var keys = (await Json(admin.GetAsync("/admin/v1/tenants/th-hospital/keys"))).ToString() + (await Json(admin.GetAsync("/admin/v1/tenants/us-bank/keys"))).ToString();
        var verified = await Json(admin.PostAsync("/admin/v1/audit/verify", null));
        return new Snapshot(tenants, limits, hospital, bank, keys, verified.GetProperty("entries_checked").GetInt64(), verified.GetProperty("valid").GetBoolean());
    }

    private static string LaptopDataDirectory()
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-copy-").FullName;
        var upgrade = Path.Combine(AppContext.BaseDirectory, "Storage", "Upgrade");
        using (var connection = new SqliteConnection($"Data Source={Path.Combine(directory, "sovereign.db")};Pooling=False"))
        {
            connection.Open();
            using var restore = connection.CreateCommand();
            restore.CommandText = File.ReadAllText(Path.Combine(upgrade, "data-298d725.sql"));
            restore.ExecuteNonQuery();
        }

        File.Copy(Path.Combine(upgrade, "data-298d725-operator-key.pem"), Path.Combine(directory, "operator-key.pem"));
        return directory;
    }

    private async Task ExecuteSqliteAsync(string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={Path.Combine(_directory, "sovereign.db")};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>A server on the laptop's data directory: its SQLite file, or (given a connection string) PostgreSQL.</summary>
    private WebApplication Build(string? postgreSql, string? nodeId = null)
    {
        var overrides = new Dictionary<string, string?>
        {
            ["Sovereign:BuiltInEmbeddings"] = "false",
            ["Sovereign:Jurisdiction"] = "TH",
            ["Sovereign:AdminToken"] = AdminToken,
        };
        if (nodeId is not null)
        {
            overrides["Sovereign:NodeId"] = nodeId;
        }

        if (postgreSql is not null)
        {
            overrides["Sovereign:Database:Provider"] = "PostgreSql";
            overrides["Sovereign:Database:ConnectionString"] = postgreSql;
        }

        return ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Threads = 1, Parallel = 2 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Overrides = overrides,
        }, []);
    }

    private async Task<string> OwnDatabaseAsync()
    {
        var name = "copy_" + Guid.NewGuid().ToString("N")[..8];
        await using (var admin = new NpgsqlConnection(postgres.ConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = name }.ConnectionString;
    }

    private static async Task<long> CountAsync(string connectionString, string table)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var exists = new NpgsqlCommand($"SELECT to_regclass('{table}') IS NOT NULL", connection);
        if (await exists.ExecuteScalarAsync() is not true)
        {
            return 0;
        }

        await using var count = new NpgsqlCommand($"SELECT COUNT(*) FROM {table}", connection);
        return (long)(await count.ExecuteScalarAsync())!;
    }

    private static HttpClient Client(WebApplication app, string token)
    {
        var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private static async Task<JsonElement> Json(Task<HttpResponseMessage> request)
    {
        using var response = await request;
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
