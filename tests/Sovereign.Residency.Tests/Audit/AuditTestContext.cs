using Microsoft.Data.Sqlite;
using Sovereign.Residency.Audit;
using Sovereign.Storage;
using Sovereign.Tests;

namespace Sovereign.Residency.Tests.Audit;

/// <summary>A SQLite audit database and operator key in a per-test temporary directory.</summary>
internal sealed class AuditTestContext : IAsyncDisposable
{
    private AuditTestContext(string directory)
    {
        Directory = directory;
        DatabasePath = Path.Combine(directory, "sovereign.db");
        Database = SqlDatabase.Sqlite(DatabasePath);
        Key = OperatorSigningKey.LoadOrCreate(Path.Combine(directory, "operator.pem"));
    }

    public string Directory { get; }

    public string DatabasePath { get; }

    public SqlDatabase Database { get; }

    public OperatorSigningKey Key { get; }

    public ManualClock Time { get; } = new(DateTimeOffset.Parse("2025-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The operator key's file.</summary>
    public string KeyPath => Path.Combine(Directory, "operator.pem");

    /// <param name="keyFrom">Another context's <see cref="KeyPath"/>: this one signs with the same operator key.</param>
    public static AuditTestContext Create(string? keyFrom = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "sovereign-audit-tests", Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(directory);
        if (keyFrom is not null)
        {
            File.Copy(keyFrom, Path.Combine(directory, "operator.pem"));
        }

        return new AuditTestContext(directory);
    }

    public Task<AuditLog> OpenLogAsync(AuditLogOptions? options = null) => AuditLog.OpenAsync(Database, Key, options, Time);

    /// <summary>Appends <paramref name="count"/> inference entries round-robin over <paramref name="tenants"/>, one ms apart.</summary>
    public async Task<List<AuditEntry>> AppendManyAsync(AuditLog log, int count, params string[] tenants)
    {
        tenants = tenants.Length == 0 ? ["acme"] : tenants;
        var entries = new List<AuditEntry>(count);
        for (var i = 0; i < count; i++)
        {
            entries.Add(await log.AppendAsync(Inference(tenants[i % tenants.Length], i)));
            Time.Advance(TimeSpan.FromMilliseconds(1));
        }

        return entries;
    }

    public Task<AuditVerificationResult> VerifyAsync() => AuditVerifier.VerifyAsync(Database, Key.PublicKeyPem);

    /// <summary>Runs raw SQL against the database: how the tests play the attacker.</summary>
    public async Task<int> ExecuteAsync(string sql, params (string Name, object? Value)[] parameters)
    {
        await using var connection = await Database.OpenAsync();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            SqlDatabase.AddParameter(command, name, value);
        }

        return await command.ExecuteNonQueryAsync();
    }

    public async Task<object?> ScalarAsync(string sql)
    {
        await using var connection = await Database.OpenAsync();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync();
    }

    public static AuditRecord Inference(string tenant, int i, string model = "llama-3.1-8b") => new()
    {
        Kind = AuditKind.Inference,
        Tenant = tenant,
        KeyId = $"key-{tenant}",
        Actor = $"key-{tenant}",
        Action = i % 7 == 0 ? AuditActions.InferenceRefused : AuditActions.InferenceAllowed,
        Model = model,
        Gateway = "gw-fra-1",
        Node = i % 7 == 0 ? null : "node-fra-3",
        Jurisdiction = "DE",
        Decision = i % 7 == 0 ? AuditDecision.Refused : AuditDecision.Allowed,
        DecisionCode = i % 7 == 0 ? "jurisdiction_not_allowed" : "ok",
        Reasons = i % 7 == 0 ? ["policy eu-only", "no eligible node in DE"] : ["policy eu-only"],
        PromptTokens = 10 + i,
        CompletionTokens = i % 7 == 0 ? null : 20 + i,
    };

    public static AuditRecord Admin(string tenant, string action, IReadOnlyDictionary<string, string> details) => new()
    {
        Kind = AuditKind.Admin,
        Tenant = tenant,
        Actor = "operator:alice",
        Action = action,
        Details = details,
    };

    public async ValueTask DisposeAsync()
    {
        Key.Dispose();
        await using (var connection = await Database.OpenAsync())
        {
            // Pooled connections keep the file open; drop this database's pool so the directory can go.
            SqliteConnection.ClearPool((SqliteConnection)connection);
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory left behind is harmless.
        }
        catch (UnauthorizedAccessException)
        {
            // Same.
        }
    }
}
