using Microsoft.Data.Sqlite;
using Npgsql;
using Sovereign.Cli.Output;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// <c>database copy</c>'s check of tenants' stored responses (content at rest, never copied across a border) asked
/// whether their table exists with a query of its own on SQLite's catalog: on a PostgreSQL database it failed with
/// "relation sqlite_master does not exist" instead of answering. It asks <see cref="SqlDatabase.TableExistsAsync"/>,
/// which reads both engines; the check is run here on each.
/// </summary>
public sealed class StoredContentCheckTests(PostgreSqlFixture postgres) : IClassFixture<PostgreSqlFixture>, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-content-check-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task OnSqlite_ContentInAnotherJurisdictionIsRefused_NoTableOrTheSameJurisdictionPasses() =>
        await CheckAsync(SqlDatabase.Sqlite(Path.Combine(_directory, "sovereign.db")));

    [Fact]
    public async Task OnPostgreSql_ContentInAnotherJurisdictionIsRefused_NoTableOrTheSameJurisdictionPasses() =>
        await CheckAsync(SqlDatabase.PostgreSql(await OwnDatabaseAsync()));

    private static async Task CheckAsync(SqlDatabase database)
    {
        // No table yet (a database from before stored responses): nothing to check.
        await DatabaseCommand.CheckStoredContentAsync(database, null, CancellationToken.None);

        await database.MigrateAsync(ControlPlaneServices.Migrations);
        await DatabaseCommand.CheckStoredContentAsync(database, null, CancellationToken.None);
        await using (var connection = await database.OpenAsync())
        {
            await using var insert = connection.CreateCommand();
            insert.CommandText = "INSERT INTO stored_responses VALUES ('resp_1', 'th-hospital', 'TH', 'laptop', 1, 9999999999999, '{}', '[]')";
            await insert.ExecuteNonQueryAsync();
        }

        var undeclared = await Assert.ThrowsAsync<CliException>(() => DatabaseCommand.CheckStoredContentAsync(database, null, CancellationToken.None));
        Assert.Contains("--content-jurisdiction", undeclared.Message, StringComparison.Ordinal);
        var abroad = await Assert.ThrowsAsync<CliException>(() => DatabaseCommand.CheckStoredContentAsync(database, "SG", CancellationToken.None));
        Assert.Contains("1 in TH", abroad.Message, StringComparison.Ordinal);
        Assert.Contains("across a border", abroad.Message, StringComparison.Ordinal);
        await DatabaseCommand.CheckStoredContentAsync(database, "th", CancellationToken.None);
    }

    private async Task<string> OwnDatabaseAsync()
    {
        var name = "content_" + Guid.NewGuid().ToString("N")[..8];
        await using (var admin = new NpgsqlConnection(postgres.ConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = name }.ConnectionString;
    }
}
