using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

using static Sovereign.Gateway.FunctionalTests.Storage.ServerProcessHttp;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// Backing up a running single machine and restoring it elsewhere (explorer16). The operator guide's way was
/// <c>sqlite3 sovereign.db ".backup backup.db"</c>: the image has no sqlite3, the copy was world-readable (mode 644: key
/// hashes, the ledger, the audit log) and nothing checked it. <c>sovereign database backup</c> takes SQLite's online
/// backup while the server runs, owner-only, and verifies the copy; restored on another data directory with the operator
/// key, the audit log verifies and the budget comes back exact.
/// </summary>
public sealed class DatabaseBackupTests : IDisposable
{
    private const string AdminToken = "database-backup-admin-token";
    private readonly string _root = Directory.CreateTempSubdirectory("sovereign-backup-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task Backup_OfARunningServer_IsOwnerOnlyAndVerified_AndRestoredElsewhere_VerifiesWithTheBudgetExact()
    {
        var data = Directory.CreateDirectory(Path.Combine(_root, "data")).FullName;
        var environment = new Dictionary<string, string> { ["Sovereign__AdminToken"] = AdminToken };
        string[] serve = ["--model", $"{TestModels.Stories260K}=stories", "--threads", "1", "--ctx-size", "256", "--parallel", "2"];
        var server = await ServeProcess.StartAsync([.. serve, "--data-dir", data], environment);
        var port = server.Port;
        decimal settled;
        string backup = Path.Combine(_root, "backup.db");
        try
        {
            using var http = Client(port, AdminToken);
            var key = await TenantWithBudgetAsync(http, "stories");
            using var tenant = Client(port, key);
            for (var i = 0; i < 3; i++)
            {
                using var served = await tenant.PostAsync("/v1/chat/completions", StoriesChat());
                Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            }

            settled = (await SendAsync(http, HttpMethod.Get, "/admin/v1/tenants/t1/limits", null, 200)).GetProperty("budgets")[0].GetProperty("settled").GetDecimal();
            Assert.True(settled > 0m);

            // While the server runs.
            var (exit, stdout, stderr) = await CliProcess.RunAsync("database", "backup", "--data-dir", data, "-o", backup);
            Assert.True(exit == 0, $"exit {exit}: {stdout}{stderr}");
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(backup));
            }

            Assert.Contains($"SHA-256 {Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(backup)))}", stdout, StringComparison.Ordinal);
            Assert.Contains("The copy verifies", stdout, StringComparison.Ordinal);
            Assert.False(File.Exists(backup + "-wal"), "the backup is one file");

            // A second backup never overwrites the first: a usage error said before anything is copied, as for
            // 'invoice -o' (it was exit 1). The copy was staged beside it and renamed: nothing else is left there.
            var again = await CliProcess.RunAsync("database", "backup", "--data-dir", data, "-o", backup);
            Assert.Equal(2, again.ExitCode);
            Assert.Equal($"sovereign database backup: --output {backup} exists already; a backup never replaces a file: choose another file.\n", again.Stderr);
            Assert.Equal([backup], Directory.GetFiles(_root));
        }
        finally
        {
            await ServeProcess.StopAsync(server);
        }

        // Restored on another machine: the backup as its database, with the operator key (and the jurisdiction it states).
        var restored = Directory.CreateDirectory(Path.Combine(_root, "restored")).FullName;
        File.Copy(backup, Path.Combine(restored, "sovereign.db"));
        File.Copy(Path.Combine(data, "operator-key.pem"), Path.Combine(restored, "operator-key.pem"));
        // Intact; its newest entries may wait for a checkpoint (5) when the server had signed none yet.
        var verify = await CliProcess.RunAsync("audit", "verify", "--data-dir", restored);
        Assert.True(verify.ExitCode is 0 or 5, verify.Stdout + verify.Stderr);
        Assert.Contains("The audit log is intact", verify.Stdout, StringComparison.Ordinal);

        server = await ServeProcess.StartAsync([.. serve, "--data-dir", restored], environment);
        port = server.Port;
        try
        {
            using var http = Client(port, AdminToken);
            var budget = (await SendAsync(http, HttpMethod.Get, "/admin/v1/tenants/t1/limits", null, 200)).GetProperty("budgets")[0];
            Assert.Equal(settled, budget.GetProperty("settled").GetDecimal());
            Assert.Equal(10m - settled, budget.GetProperty("remaining").GetDecimal());
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
