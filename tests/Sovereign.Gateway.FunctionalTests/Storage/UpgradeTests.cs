using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Sovereign.Cli.Commands;
using Sovereign.Cli.Output;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Inference.Engine;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Residency.Audit;
using Sovereign.Residency.Content;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// The current build started on a data directory an older one wrote. <c>Upgrade/data-298d725.sql</c> is the
/// <c>sqlite3 .dump</c> of a data directory made by the build of commit 298d725 (six migrations; nine came after it),
/// with its <c>operator-key.pem</c>: the README's tour done by hand (plans standard in EUR and gold in USD, tenants
/// th-hospital and us-bank, three keys with one revoked, budgets and rate limits, an external node, chats, a
/// residency refusal and a budget refusal) on 2026-12-04, then the server stopped. Every migration must apply, and
/// what the operator had must read back as it was: the audit chain (and the old build's signed checkpoint), keys,
/// limits, invoices.
/// </summary>
public sealed class UpgradeTests : IDisposable
{
    private const string AdminToken = "upgrade-admin-token";

    // The keys' secrets as the old build printed them (keys create); the database holds only their hashes.
    private const string HospitalKey = "sk-sov-KeHhZBwgDh8Mnw3EJ89A3482V7b4vRK9cJUEDbfPdBk";
    private const string BankRevokedKey = "sk-sov-1n39SonITGUj7zWmqmnKzjRhBBNdaqMhXYnZLf2H7Wc";
    private const string BankKey = "sk-sov-iSusKcHfiXvqK1B2RuxzUacTfYhIhm4iwLlvQJW7rJE";

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-upgrade-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task ADataDirectoryOfCommit298d725_Migrates_AndKeepsItsChainKeysLimitsAndInvoices()
    {
        var upgrade = Path.Combine(AppContext.BaseDirectory, "Storage", "Upgrade");
        await using (var connection = new SqliteConnection($"Data Source={Path.Combine(_directory, "sovereign.db")};Pooling=False"))
        {
            await connection.OpenAsync();
            await using var restore = connection.CreateCommand();
            restore.CommandText = await File.ReadAllTextAsync(Path.Combine(upgrade, "data-298d725.sql"));
            await restore.ExecuteNonQueryAsync();
        }

        File.Copy(Path.Combine(upgrade, "data-298d725-operator-key.pem"), Path.Combine(_directory, "operator-key.pem"));

        await using var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Threads = 1, Parallel = 2 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:BuiltInEmbeddings"] = "false",
                ["Sovereign:Jurisdiction"] = "TH",
                ["Sovereign:AdminToken"] = AdminToken,
            },
        }, []);
        await app.StartAsync();
        using var admin = Client(app, AdminToken);

        // The old chain (and the checkpoint the old build signed) verifies under the new build.
        var verified = await Json(admin.PostAsync("/admin/v1/audit/verify", null));
        Assert.True(verified.GetProperty("valid").GetBoolean(), verified.ToString());
        Assert.True(verified.GetProperty("entries_checked").GetInt64() >= 32);
        Assert.True(verified.GetProperty("checkpoints_verified").GetInt64() >= 1);

        var tenants = (await Json(admin.GetAsync("/admin/v1/tenants"))).GetProperty("data").EnumerateArray()
            .ToDictionary(t => t.GetProperty("id").GetString()!, t => t.GetProperty("plan").GetString());
        Assert.Equal(new Dictionary<string, string?> { ["th-hospital"] = "standard", ["us-bank"] = "gold" }, tenants);

        var limits = (await Json(admin.GetAsync("/admin/v1/tenants/th-hospital/limits"))).GetProperty("limits");
        Assert.Equal("EUR", limits.GetProperty("currency").GetString());
        Assert.Equal([("day", 10m), ("month", 500m)], limits.GetProperty("budgets").EnumerateArray()
            .Select(b => (b.GetProperty("period").GetString()!, b.GetProperty("amount").GetDecimal())).Order());
        Assert.Equal(600, limits.GetProperty("rate_limits")[0].GetProperty("requests_per_minute").GetInt32());
        Assert.Equal(100000, (await Json(admin.GetAsync("/admin/v1/tenants/us-bank/limits"))).GetProperty("limits").GetProperty("rate_limits")[0].GetProperty("tokens_per_minute").GetInt32());

        // The invoices of the old usage: the same lines and totals as the old build printed.
        var hospital = await Json(admin.GetAsync("/admin/v1/tenants/th-hospital/invoice?format=json&from=2026-12-01&to=2026-12-05"));
        Assert.Equal("EUR", hospital.GetProperty("currency").GetString());
        Assert.Equal("0.000124", hospital.GetProperty("total").GetString());
        var stories = hospital.GetProperty("lines").EnumerateArray().Single(l => l.GetProperty("model").GetString() == "stories");
        Assert.Equal((4, 138, 24), (stories.GetProperty("requests").GetInt32(), stories.GetProperty("input_tokens").GetInt32(), stories.GetProperty("output_tokens").GetInt32()));
        var bank = await Json(admin.GetAsync("/admin/v1/tenants/us-bank/invoice?format=json&from=2026-12-01&to=2026-12-05"));
        Assert.Equal(("USD", "0.000209"), (bank.GetProperty("currency").GetString(), bank.GetProperty("total").GetString()));

        // The old keys: the revoked one stays revoked, the others still work.
        var revoked = (await Json(admin.GetAsync("/admin/v1/tenants/us-bank/keys"))).GetProperty("data").EnumerateArray()
            .Single(k => k.GetProperty("id").GetString() == "key_a68825b12da39d7f");
        Assert.NotEqual(JsonValueKind.Null, revoked.GetProperty("revoked_at").ValueKind);
        foreach (var (key, status) in new[] { (HospitalKey, HttpStatusCode.OK), (BankKey, HttpStatusCode.OK), (BankRevokedKey, HttpStatusCode.Unauthorized) })
        {
            using var client = Client(app, key);
            using var answer = await client.PostAsync("/v1/chat/completions", new StringContent(
                """{"model":"stories","messages":[{"role":"user","content":"Hello"}],"max_tokens":4}""", Encoding.UTF8, "application/json"));
            Assert.True(answer.StatusCode == status, $"{key[..13]}: {(int)answer.StatusCode} {await answer.Content.ReadAsStringAsync()}");
        }

        // Every migration of this build is recorded, and the chain with the new entries still verifies.
        await app.StopAsync();
        var applied = new List<string>();
        await using (var connection = new SqliteConnection($"Data Source={Path.Combine(_directory, "sovereign.db")};Pooling=False"))
        {
            await connection.OpenAsync();
            await using var read = connection.CreateCommand();
            read.CommandText = "SELECT name FROM schema_migrations";
            await using var reader = await read.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                applied.Add(reader.GetString(0));
            }
        }

        var current = ControlPlaneStore.Migrations.Concat(AuditLog.Migrations).Concat(UsageLedger.Migrations).Concat(PriceBookStore.Migrations).Concat(ResponseStore.Migrations).Select(m => m.Name);
        Assert.Empty(current.Except(applied));

        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory);
        Assert.True(exit == 0, $"{exit} {stdout} {stderr}");
        Assert.Contains("The audit log is intact.", stdout, StringComparison.Ordinal);
    }

    /// <summary>
    /// A downgrade: the release before this one started on a data directory this one had migrated (commit 79c601f on
    /// one migrated by 28aa8a7) started without a word and served, ignoring the newer migrations' columns (a join token
    /// withdrawn under the newer release was usable again). A release now refuses a database that records a migration
    /// it does not know, naming it, and changes nothing; the newer release (here: without the unknown row) starts on it.
    /// </summary>
    [Fact]
    public async Task ADatabaseANewerReleaseMigrated_StopsTheStartWithOneLine_AndIsLeftAsItWas()
    {
        const string Newer = "controlplane-999-from-a-newer-release";
        await using (var first = Build())
        {
            await first.StartAsync();
            await first.StopAsync();
        }

        // Every connection closed, so the file holds every page (no WAL) before and after.
        SqliteConnection.ClearAllPools();
        var database = Path.Combine(_directory, "sovereign.db");
        await Sql(database, $"INSERT INTO schema_migrations (name, applied_at) VALUES ('{Newer}', 1796600000000)");
        var before = await File.ReadAllBytesAsync(database);

        await using (var older = Build())
        {
            var refused = await Assert.ThrowsAsync<DatabaseOfNewerReleaseException>(() => older.StartAsync());
            Assert.Contains($"the database {database} was upgraded by a newer release of sovereign: it records the migration {Newer}, which this release does not know", refused.Message, StringComparison.Ordinal);
        }

        // As an operator meets it: one line, exit 2, and the file as it was.
        var (exit, _, stderr) = await CliProcess.RunAsync(new Dictionary<string, string?> { ["Sovereign__BuiltInEmbeddings"] = "false", ["OMP_WAIT_POLICY"] = "PASSIVE" },
            "serve", "--urls", "http://127.0.0.1:0", "--data-dir", _directory, "--model", TestModels.Stories260K + "=stories", "--threads", "1");
        Assert.True(exit == ExitCodes.Usage, $"{exit} {stderr}");
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("cannot start", StringComparison.Ordinal));
        Assert.Contains(Newer, line, StringComparison.Ordinal);
        Assert.Contains("restore the backup taken before the upgrade. Nothing was changed.", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        SqliteConnection.ClearAllPools();
        Assert.Equal(before, await File.ReadAllBytesAsync(database));

        // The release that knows every recorded migration starts on it.
        await Sql(database, $"DELETE FROM schema_migrations WHERE name = '{Newer}'");
        await using var again = Build();
        await again.StartAsync();
        await again.StopAsync();
    }

    private WebApplication Build() => ServeCommand.Build(new ServeSettings
    {
        Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Threads = 1, Parallel = 2 }],
        Urls = "http://127.0.0.1:0",
        DataDirectory = _directory,
        Overrides = new Dictionary<string, string?>
        {
            ["Sovereign:BuiltInEmbeddings"] = "false",
            ["Sovereign:Jurisdiction"] = "TH",
            ["Sovereign:AdminToken"] = AdminToken,
        },
    }, []);

    private static async Task Sql(string database, string statement)
    {
        await using var connection = new SqliteConnection($"Data Source={database};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = statement;
        await command.ExecuteNonQueryAsync();
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
