using System.Net;
using System.Net.Http.Headers;
using Microsoft.Data.Sqlite;

using static Sovereign.Gateway.FunctionalTests.Storage.ServerProcessHttp;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// The restore drill (explorer32): a backup taken while the server served, then a key revoked, more spent and the log
/// signed further, then the backup restored by the guide's steps (files moved aside, the witness moved aside). The
/// revoked key worked again, the log went on from the backup's head with nothing saying entries signed before were
/// rolled back (the server then signed other entries at those sequences), and the spend since the backup was gone
/// unsaid. <c>sovereign database restore</c> refuses while a server runs and, behind the witness, until told; then
/// carries the revocation (and a tenant disabled since), records the rollback in the restored log (signed) and keeps
/// the replaced database.
/// </summary>
public sealed class DatabaseRestoreTests : IDisposable
{
    private const string AdminToken = "database-restore-admin-token";
    private readonly string _root = Directory.CreateTempSubdirectory("sovereign-restore-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task ARestoreBehindTheWitness_IsRefusedUntilAccepted_ThenKeepsRevokedKeysRevoked_AndRecordsTheRollback()
    {
        var data = Directory.CreateDirectory(Path.Combine(_root, "data")).FullName;
        var database = Path.Combine(data, "sovereign.db");
        var environment = new Dictionary<string, string> { ["Sovereign__AdminToken"] = AdminToken };
        string[] serve = ["--model", $"{TestModels.Stories260K}=stories", "--threads", "1", "--ctx-size", "256", "--parallel", "2", "--data-dir", data];
        var backup = Path.Combine(_root, "backup.db");
        var server = await ServeProcess.StartAsync(serve, environment);
        var port = server.Port;
        string revokedSecret, revokedId, key, otherTenantKey;
        decimal settledAtBackup;
        try
        {
            using var http = Client(port, AdminToken);
            key = await TenantWithBudgetAsync(http, "stories");
            using (var tenant = Client(port, key))
            using (var served = await tenant.PostAsync("/v1/chat/completions", StoriesChat()))
            {
                Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            }

            await SendAsync(http, HttpMethod.Post, "/admin/v1/tenants", new { id = "t2", plan = "standard", policy = new { allowed_jurisdictions = new[] { "DE" } } }, 201);
            otherTenantKey = (await SendAsync(http, HttpMethod.Post, "/admin/v1/tenants/t2/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
            var second = await SendAsync(http, HttpMethod.Post, "/admin/v1/tenants/t1/keys", new { name = "k2" }, 201);
            (revokedSecret, revokedId) = (second.GetProperty("secret").GetString()!, second.GetProperty("key").GetProperty("id").GetString()!);
            settledAtBackup = (await SendAsync(http, HttpMethod.Get, "/admin/v1/tenants/t1/limits", null, 200)).GetProperty("budgets")[0].GetProperty("settled").GetDecimal();
            var backedUp = await CliProcess.RunAsync("database", "backup", "--data-dir", data, "-o", backup);
            Assert.True(backedUp.ExitCode == 0, backedUp.Stdout + backedUp.Stderr);

            // Never under a running server: its writes would go to the replaced file.
            var running = await CliProcess.RunAsync("database", "restore", "--data-dir", data, "--from", backup);
            Assert.True(running.ExitCode == 1, $"{running.ExitCode} {running.Stdout}{running.Stderr}");
            Assert.Equal($"sovereign database restore: a sovereign server is using {database}: stop it first; nothing was changed.\n", running.Stderr);

            // After the backup: the key revoked, more spent, and (at the stop) the log signed past the backup's head.
            await SendAsync(http, HttpMethod.Delete, $"/admin/v1/tenants/t1/keys/{revokedId}", null, 200);
            await SendAsync(http, HttpMethod.Patch, "/admin/v1/tenants/t2", new { disabled = true }, 200);
            using (var tenant = Client(port, key))
            using (var served = await tenant.PostAsync("/v1/chat/completions", StoriesChat()))
            {
                Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            }
        }
        finally
        {
            await ServeProcess.StopAsync(server);
        }

        var before = await File.ReadAllBytesAsync(database);
        var refused = await CliProcess.RunAsync("database", "restore", "--data-dir", data, "--from", backup);
        Assert.True(refused.ExitCode == 1, $"{refused.ExitCode} {refused.Stdout}{refused.Stderr}");
        Assert.Contains("restoring it rolls the log back", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("--accept-rollback", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllBytesAsync(database));
        Assert.Empty(Directory.GetFiles(data, "*.replaced-*"));

        var restored = await CliProcess.RunAsync("database", "restore", "--data-dir", data, "--from", backup, "--accept-rollback");
        Assert.True(restored.ExitCode == 0, $"{restored.ExitCode} {restored.Stdout}{restored.Stderr}");
        Assert.Contains($"Revocations carried from the replaced database (revoked or disabled there, active in the backup): {revokedId}, tenant t2.", restored.Stdout, StringComparison.Ordinal);
        Assert.Contains("Spend recorded after the backup, no longer counted against budgets: tenant t1 EUR ", restored.Stdout, StringComparison.Ordinal);
        var replaced = Assert.Single(Directory.GetFiles(data, "sovereign.db.replaced-*"), f => !f.EndsWith("-wal", StringComparison.Ordinal) && !f.EndsWith("-shm", StringComparison.Ordinal));
        Assert.Equal(before, await File.ReadAllBytesAsync(replaced));
        Assert.Single(Directory.GetFiles(data, "audit-witness.json.replaced-*"));

        var verify = await CliProcess.RunAsync("audit", "verify", "--data-dir", data);
        Assert.True(verify.ExitCode == 0, verify.Stdout + verify.Stderr);

        server = await ServeProcess.StartAsync(serve, environment);
        port = server.Port;
        try
        {
            using var http = Client(port, AdminToken);
            using (var tenant = Client(port, revokedSecret))
            using (var refusedKey = await tenant.PostAsync("/v1/chat/completions", StoriesChat()))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, refusedKey.StatusCode);
            }

            using (var tenant = Client(port, otherTenantKey))
            using (var disabled = await tenant.PostAsync("/v1/chat/completions", StoriesChat()))
            {
                Assert.Equal(HttpStatusCode.Forbidden, disabled.StatusCode);
                Assert.Contains("tenant_disabled", await disabled.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            var budget = (await SendAsync(http, HttpMethod.Get, "/admin/v1/tenants/t1/limits", null, 200)).GetProperty("budgets")[0];
            Assert.Equal(settledAtBackup, budget.GetProperty("settled").GetDecimal());

            var entries = (await SendAsync(http, HttpMethod.Get, "/admin/v1/audit?limit=1000", null, 200)).GetProperty("data").EnumerateArray().ToList();
            var restore = Assert.Single(entries, e => e.GetProperty("action").GetString() == "database.restore");
            var details = restore.GetProperty("details");
            Assert.Equal($"{revokedId}, tenant t2", details.GetProperty("revocations_carried").GetString());
            var rolledBackFrom = long.Parse(details.GetProperty("rolled_back_from_sequence").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(rolledBackFrom > restore.GetProperty("sequence").GetInt64() - 1, details.ToString());
            Assert.Equal(64, details.GetProperty("backup_sha256").GetString()!.Length);

            var verified = await SendAsync(http, HttpMethod.Post, "/admin/v1/audit/verify", null, 200);
            Assert.True(verified.GetProperty("valid").GetBoolean(), verified.ToString());
        }
        finally
        {
            await ServeProcess.StopAsync(server);
        }
    }

    private static HttpClient Client(int port, string token)
    {
        var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }
}
