using Npgsql;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// <c>sovereign audit verify --database postgres:...</c>, as an auditor runs it against a cluster's database, when that
/// database cannot be used: found verifying a cluster by hand, a database name mistyped was "unexpected
/// PostgresException ... This is a defect in sovereign" (exit 70), and PostgreSQL not listening was "cannot reach the
/// server ... Is `sovereign serve` running? Point to it with --url", an option the command does not have.
/// </summary>
public sealed class AuditCliPostgreSqlTests(PostgreSqlFixture postgres) : IClassFixture<PostgreSqlFixture>, IDisposable
{
    private readonly string _directory = CreateDataDirectory();

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>A gateway's data directory as far as verify needs it: the operator key.</summary>
    private static string CreateDataDirectory()
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-audit-pg-").FullName;
        using (Residency.Audit.OperatorSigningKey.LoadOrCreate(Path.Combine(directory, "operator-key.pem")))
        {
        }

        return directory;
    }

    [Fact]
    public async Task Verify_OfADatabaseThatDoesNotExist_SaysSo_WithExit1()
    {
        var missing = new NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = "no_such_sovereign" };

        var (exit, _, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory, "--database", "postgres:" + missing.ConnectionString);

        Assert.True(exit == 1, stderr);
        Assert.Contains("database \"no_such_sovereign\" does not exist", stderr, StringComparison.Ordinal);
        Assert.Contains("--database", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("defect", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_OfAPostgreSqlNobodyListensAt_NamesTheDatabase_NotTheServersUrl()
    {
        var closed = new NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Port = 1 };

        var (exit, _, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _directory, "--database", "postgres:" + closed.ConnectionString);

        Assert.True(exit == 4, stderr);
        Assert.Contains("cannot reach PostgreSQL (connection refused)", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("--url", stderr, StringComparison.Ordinal);
    }
}
