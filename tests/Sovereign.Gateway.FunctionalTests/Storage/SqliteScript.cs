using Microsoft.Data.Sqlite;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>Runs SQL on a server's SQLite file from outside it, as an operator's tool or a failing disk would (triggers).</summary>
internal static class SqliteScript
{
    /// <summary>Runs <paramref name="sql"/> on <c>sovereign.db</c> in <paramref name="dataDirectory"/>, waiting out the server's writers.</summary>
    public static async Task ExecuteAsync(string dataDirectory, string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDirectory, "sovereign.db")};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA busy_timeout=10000; " + sql;
        await command.ExecuteNonQueryAsync();
    }
}
