using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.OpenAI;
using Sovereign.Inference.Engine;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// Stored data found damaged while the server runs (SQLite's "database disk image is malformed"; found in the restore
/// drill, explorer32): every request that read the damaged table was answered 500 internal_error, which SDKs retry at
/// once, and <c>/ready</c> said ready. Now it fails closed: 503 <c>database_damaged</c> (retry later, nothing billed),
/// one Critical log line (4155), <c>/ready</c> 503 naming the damage, and every later request refused at once until
/// the server restarts on a sound database.
/// </summary>
public sealed class DatabaseDamagedTests : IDisposable
{
    private static readonly SqliteException Corrupt = new("SQLite Error 11: 'database disk image is malformed'.", 11);

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-damaged-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public void Map_DamagedData_Is503DatabaseDamaged_WithRetryAfter_HoweverWrapped()
    {
        foreach (var exception in new Exception[]
        {
            Corrupt,
            new SqliteException("SQLite Error 26: 'file is not a database'.", 26),
            new AuditUnavailableException("The audit log could not record the entry.", Corrupt),
            new global::Sovereign.Cluster.Grains.StorageUnavailableException(global::Sovereign.Cluster.Grains.StorageUnavailableException.DamagedPrefix + " (SqliteException: SQLite Error 11: 'database disk image is malformed')."), // as a grain throws it
        })
        {
            var error = OpenAIErrorResults.Map(exception, 0);
            Assert.Equal((503, "server_error", "database_damaged"), (error.Status, error.Type, error.Code));
            Assert.Equal(TimeSpan.FromSeconds(30), error.RetryAfter);
        }

        // A disk that cannot be written now is still an outage that passes.
        Assert.Equal("storage_unavailable", OpenAIErrorResults.Map(new SqliteException("SQLite Error 10: 'disk I/O error'.", 10), 0).Code);
    }

    [Fact]
    public async Task DatabaseHealth_DamagedData_IsReportedOnce_AndStaysUntilRestart()
    {
        var logs = new ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)>();
        using var loggers = LoggerFactory.Create(builder => builder.AddProvider(new CapturingLoggerProvider(logs)));
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var database = SqlDatabase.Sqlite(Path.Combine(_directory, "sovereign.db"));
        var health = new DatabaseHealth(new Lazy<SqlDatabase>(() => database), TimeProvider.System,
            services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), loggers.CreateLogger<DatabaseHealth>());

        Assert.True(health.IsOutage(new AuditUnavailableException("x", Corrupt)));
        Assert.True(health.IsOutage(Corrupt));

        Assert.StartsWith($"The database ({database.Location}) is damaged since ", health.Problem, StringComparison.Ordinal);
        Assert.Contains("database disk image is malformed", health.Problem, StringComparison.Ordinal);
        Assert.Contains("Restore it from a backup", health.Problem, StringComparison.Ordinal);

        // A request's books that commit (another table), or a probe's write, do not end it: the damage is still there.
        health.ReportRecorded();
        Assert.NotNull(health.Damaged);
        Assert.Equal(health.Damaged, await health.CheckAsync(CancellationToken.None));

        var line = Assert.Single(logs, log => log.Event.Id == 4155);
        Assert.Equal(LogLevel.Critical, line.Level);
        Assert.Contains("database disk image is malformed", line.Message, StringComparison.Ordinal);
    }

    /// <summary>A table's page overwritten under a server started without the quick check: its reads meet SQLITE_CORRUPT.</summary>
    [Fact]
    public async Task ATableFoundDamagedWhileServing_Is503DatabaseDamaged_ReadyIs503_AndLaterRequestsAreRefusedAtOnce()
    {
        await using (var first = Build())
        {
            await first.StartAsync();
            await first.StopAsync();
        }

        SqliteConnection.ClearAllPools();
        var path = Path.Combine(_directory, "sovereign.db");
        var rootPages = new List<long>();
        long pageSize;
        await using (var connection = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            // The table and its indexes (an empty list is read from its primary key's index alone).
            command.CommandText = "SELECT rootpage FROM sqlite_master WHERE tbl_name = 'tenants' AND rootpage > 0";
            await using (var reader = await command.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    rootPages.Add(reader.GetInt64(0));
                }
            }

            command.CommandText = "PRAGMA page_size";
            pageSize = (long)(await command.ExecuteScalarAsync())!;
        }

        Assert.False(File.Exists(path + "-wal"), "the stop folded the WAL into the file");
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            foreach (var rootPage in rootPages)
            {
                file.Position = (rootPage - 1) * pageSize;
                await file.WriteAsync(Enumerable.Repeat((byte)0xDE, (int)pageSize).ToArray());
            }
        }

        await using var app = Build();
        await app.StartAsync();
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", (await File.ReadAllTextAsync(Path.Combine(_directory, "admin-token"))).Trim());

            using (var tenants = await client.GetAsync("/admin/v1/tenants"))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, tenants.StatusCode);
                using var body = JsonDocument.Parse(await tenants.Content.ReadAsStringAsync());
                Assert.Equal("database_damaged", body.RootElement.GetProperty("error").GetProperty("code").GetString());
                Assert.Equal(TimeSpan.FromSeconds(30), tenants.Headers.RetryAfter?.Delta);
            }

            using (var ready = await client.GetAsync("/ready"))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
                var text = await ready.Content.ReadAsStringAsync();
                Assert.Contains("database_unavailable", text, StringComparison.Ordinal);
                Assert.Contains("is damaged", text, StringComparison.Ordinal);
            }

            // A chat request is refused before it is decided: nothing reserved, nothing billed, no 500.
            using var chat = await client.PostAsync("/v1/chat/completions", new StringContent(
                """{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":4}""", System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, chat.StatusCode);
            Assert.Contains("database_damaged", await chat.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.NotNull(app.Services.GetRequiredService<DatabaseHealth>().Damaged);
        }
        finally
        {
            await app.StopAsync();
        }
    }

    private WebApplication Build() =>
        ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Threads = 1, Parallel = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Overrides = new Dictionary<string, string?> { ["Sovereign:Database:CheckAtStart"] = "false", ["Sovereign:BuiltInEmbeddings"] = "false" },
        }, []);
}
