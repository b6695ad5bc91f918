using System.Buffers.Binary;
using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;

namespace Sovereign.Storage;

/// <summary>One table as copied: its rows, and whether the rows read back from the target are the rows read from the source.</summary>
/// <param name="Table">The table's name.</param>
/// <param name="Rows">Rows copied.</param>
public sealed record CopiedTable(string Table, long Rows);

/// <summary>The target database already holds state of its own: the copy would mix two installations' tenants, money and chains.</summary>
public sealed class DatabaseNotEmptyException(string message) : InvalidOperationException(message);

/// <summary>The rows read back from the target are not the rows read from the source: nothing was committed.</summary>
public sealed class DatabaseCopyMismatchException(string message) : InvalidOperationException(message);

/// <summary>
/// Copies a SQLite database into an empty PostgreSQL one, table for table, in one PostgreSQL transaction: the way a
/// single machine's state (tenants, keys, prices, the usage ledger and budgets' spend, the audit chain and its
/// checkpoints) moves to the database a cluster shares. Both are migrated to this version's schema first, so they have
/// the same tables and columns. Before it commits, every table is read back inside the transaction and compared with
/// what was read from the source (row count and a digest of the rows' values, order-independent): a value the target
/// could not hold as it was (a type, a range) fails the copy and nothing is committed. The source is only read.
/// </summary>
public static class DatabaseCopy
{
    // Runtime bookkeeping of the servers that hold the database, never state to carry over.
    private static readonly HashSet<string> NotCopied = new(StringComparer.Ordinal) { "schema_migrations", "sovereign_servers", "sovereign_database_identity" };

    /// <summary>
    /// Copies <paramref name="source"/> into <paramref name="target"/> after applying <paramref name="migrations"/> to
    /// both. Throws <see cref="DatabaseNotEmptyException"/> (naming the table) when the target holds anything beyond
    /// what the migrations themselves write, and <see cref="DatabaseCopyMismatchException"/> when a table read back
    /// differs; either way the target is left as it was.
    /// </summary>
    public static async Task<IReadOnlyList<CopiedTable>> CopyAsync(SqlDatabase source, SqlDatabase target, IEnumerable<SqlMigration> migrations, CancellationToken cancellationToken = default) =>
        await CopyAsync(source, target, migrations, [], cancellationToken);

    /// <summary>
    /// As <see cref="CopyAsync(SqlDatabase, SqlDatabase, IEnumerable{SqlMigration}, CancellationToken)"/>, then runs
    /// <paramref name="beforeCommit"/> on the target in the copy's transaction, after every table was read back: what
    /// renumbers a copied state to the target's own numbering (the usage ledger's fold watermark).
    /// </summary>
    public static async Task<IReadOnlyList<CopiedTable>> CopyAsync(SqlDatabase source, SqlDatabase target, IEnumerable<SqlMigration> migrations, IReadOnlyList<string> beforeCommit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(beforeCommit);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        if (source.Provider != SqlProvider.Sqlite || target.Provider != SqlProvider.PostgreSql)
        {
            throw new ArgumentException("The copy goes from a SQLite database to a PostgreSQL one.");
        }

        var all = migrations.ToList();
        await source.MigrateAsync(all, cancellationToken);
        await target.MigrateAsync(all, cancellationToken);

        // What an empty database of this schema holds (the rows migrations insert: the audit head at genesis, the
        // price book's version 0), so "empty" is judged against the schema, not a list kept by hand.
        var seedPath = Path.Combine(Path.GetTempPath(), "sovereign-copy-seed-" + Guid.NewGuid().ToString("N") + ".db");
        try
        {
            var seed = SqlDatabase.Sqlite(seedPath);
            await seed.MigrateAsync(all, cancellationToken);

            await using var connection = (NpgsqlConnection)await target.OpenAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var tables = await TablesAsync(connection, transaction, cancellationToken);

            await using (var seedConnection = await seed.OpenAsync(cancellationToken))
            {
                foreach (var table in tables)
                {
                    var present = await DigestAsync(connection, transaction, table, cancellationToken);
                    var empty = await DigestAsync(seedConnection, null, table, cancellationToken);
                    if (present != empty)
                    {
                        throw new DatabaseNotEmptyException(
                            $"{target.Location} is not empty: its table {table.Name} holds {present.Rows} row(s) (a server or an earlier copy wrote to it). " +
                            "The copy goes into a database no server has used (createdb a new one); nothing was changed.");
                    }
                }
            }

            SqliteConnection.ClearAllPools();
            File.Delete(seedPath);

            await using var reader = (SqliteConnection)await source.OpenAsync(cancellationToken);
            // One read transaction: every table is read from the same snapshot of the file.
            await using var snapshot = await reader.BeginTransactionAsync(cancellationToken);
            await CheckSourceTablesAsync(reader, snapshot, tables, source.Location, cancellationToken);

            // Children first out, parents first in (api_keys refers to tenants).
            foreach (var table in Enumerable.Reverse(tables))
            {
                await ExecuteAsync(connection, transaction, $"DELETE FROM {table.Name}", cancellationToken);
            }

            var copied = new List<CopiedTable>();
            foreach (var table in tables)
            {
                var written = await CopyTableAsync(reader, snapshot, connection, table, source.Location, cancellationToken);
                var readBack = await DigestAsync(connection, transaction, table, cancellationToken);
                if (readBack != written)
                {
                    throw new DatabaseCopyMismatchException(
                        $"the table {table.Name} read back from {target.Location} ({readBack.Rows} rows) is not what was read from {source.Location} " +
                        $"({written.Rows} rows): nothing was committed.");
                }

                copied.Add(new CopiedTable(table.Name, written.Rows));
            }

            foreach (var statement in beforeCommit)
            {
                await ExecuteAsync(connection, transaction, statement, cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            return copied;
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (var file in new[] { seedPath, seedPath + "-wal", seedPath + "-shm" })
            {
                File.Delete(file);
            }
        }
    }

    private sealed record Column(string Name, string Type);

    private sealed record Table(string Name, IReadOnlyList<Column> Columns)
    {
        public string ColumnList => string.Join(", ", Columns.Select(c => c.Name));
    }

    /// <summary>The schema's tables in PostgreSQL, ordered so that a table comes after every table it refers to.</summary>
    private static async Task<List<Table>> TablesAsync(NpgsqlConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        var columns = new Dictionary<string, List<Column>>(StringComparer.Ordinal);
        await using (var command = new NpgsqlCommand(
            // An identity column is the target's own numbering (the usage ledger's sequence: SQLite's rowid has no
            // column), given in the order the rows are copied in; never copied.
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND is_identity = 'NO' " +
            "ORDER BY table_name, ordinal_position",
            connection, (NpgsqlTransaction)transaction))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var table = reader.GetString(0);
                if (!NotCopied.Contains(table))
                {
                    (columns.TryGetValue(table, out var list) ? list : columns[table] = []).Add(new Column(reader.GetString(1), reader.GetString(2)));
                }
            }
        }

        var references = new List<(string Child, string Parent)>();
        await using (var command = new NpgsqlCommand(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint WHERE contype = 'f' AND connamespace = current_schema()::regnamespace",
            connection, (NpgsqlTransaction)transaction))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                references.Add((reader.GetString(0), reader.GetString(1)));
            }
        }

        var ordered = new List<Table>();
        var placed = new HashSet<string>(StringComparer.Ordinal);
        void Place(string name, int depth)
        {
            if (placed.Contains(name) || depth > columns.Count)
            {
                return;
            }

            foreach (var (_, parent) in references.Where(r => r.Child == name && r.Parent != name && columns.ContainsKey(r.Parent)))
            {
                Place(parent, depth + 1);
            }

            placed.Add(name);
            ordered.Add(new Table(name, columns[name]));
        }

        foreach (var name in columns.Keys.Order(StringComparer.Ordinal))
        {
            Place(name, 0);
        }

        return ordered;
    }

    /// <summary>The source has the same tables and columns (both were migrated by this version): anything else is no Sovereign database of it.</summary>
    private static async Task CheckSourceTablesAsync(SqliteConnection connection, DbTransaction transaction, IReadOnlyList<Table> tables, string location, CancellationToken cancellationToken)
    {
        foreach (var table in tables)
        {
            var present = new HashSet<string>(StringComparer.Ordinal);
            await using var command = connection.CreateCommand();
            command.Transaction = (SqliteTransaction)transaction;
            command.CommandText = $"SELECT name FROM pragma_table_info('{table.Name}')";
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                present.Add(reader.GetString(0));
            }

            if (table.Columns.FirstOrDefault(c => !present.Contains(c.Name)) is { } missing)
            {
                throw new DatabaseCopyMismatchException($"{location} has no column {table.Name}.{missing.Name}: it is not a Sovereign database this version can copy; nothing was committed.");
            }
        }
    }

    private static async Task<Digest> CopyTableAsync(SqliteConnection source, DbTransaction snapshot, NpgsqlConnection target, Table table, string location, CancellationToken cancellationToken)
    {
        var digest = new Digest();
        await using var command = source.CreateCommand();
        command.Transaction = (SqliteTransaction)snapshot;
        command.CommandText = $"SELECT {table.ColumnList} FROM {table.Name}";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await using var import = await target.BeginBinaryImportAsync($"COPY {table.Name} ({table.ColumnList}) FROM STDIN (FORMAT BINARY)", cancellationToken);
        var row = new object?[table.Columns.Count];
        while (await reader.ReadAsync(cancellationToken))
        {
            for (var i = 0; i < row.Length; i++)
            {
                row[i] = Normalize(reader.GetValue(i), table.Columns[i], table.Name, location);
            }

            digest.Add(row);
            await import.StartRowAsync(cancellationToken);
            for (var i = 0; i < row.Length; i++)
            {
                if (row[i] is null)
                {
                    await import.WriteNullAsync(cancellationToken);
                    continue;
                }

                switch (table.Columns[i].Type)
                {
                    case "bigint":
                        await import.WriteAsync((long)row[i]!, NpgsqlDbType.Bigint, cancellationToken);
                        break;
                    case "integer":
                        await import.WriteAsync(checked((int)(long)row[i]!), NpgsqlDbType.Integer, cancellationToken);
                        break;
                    case "smallint":
                        await import.WriteAsync(checked((short)(long)row[i]!), NpgsqlDbType.Smallint, cancellationToken);
                        break;
                    case "double precision":
                        await import.WriteAsync((double)row[i]!, NpgsqlDbType.Double, cancellationToken);
                        break;
                    default:
                        await import.WriteAsync((string)row[i]!, NpgsqlDbType.Text, cancellationToken);
                        break;
                }
            }
        }

        await import.CompleteAsync(cancellationToken);
        return digest;
    }

    /// <summary>
    /// A value as the target column holds it: integers as long (SQLite gives long, PostgreSQL int or long), reals as
    /// double, text as string. A value of another kind (text in an integer column, a BLOB: only a hand-edited file has
    /// one) is refused, naming where it is, rather than converted into something else.
    /// </summary>
    private static object? Normalize(object value, Column column, string table, string location)
    {
        if (value is DBNull)
        {
            return null;
        }

        object? normalized = (column.Type, value) switch
        {
            ("bigint" or "integer" or "smallint", long or int or short) => Convert.ToInt64(value, CultureInfo.InvariantCulture),
            ("integer", _) or ("bigint", _) or ("smallint", _) => null,
            ("double precision" or "real", double or float or long or int) => Convert.ToDouble(value, CultureInfo.InvariantCulture),
            ("double precision" or "real", _) => null,
            ("text", string text) => text,
            _ => null,
        };
        if (normalized is null)
        {
            throw new DatabaseCopyMismatchException(
                $"{location}: {table}.{column.Name} holds a {value.GetType().Name} where the schema has {column.Type}; it cannot be copied as it is (nothing was committed).");
        }

        if (column.Type == "integer" && normalized is long wide && wide is < int.MinValue or > int.MaxValue)
        {
            throw new DatabaseCopyMismatchException($"{location}: {table}.{column.Name} holds {wide}, beyond PostgreSQL's integer; nothing was committed.");
        }

        return normalized;
    }

    private static async Task<Digest> DigestAsync(DbConnection connection, DbTransaction? transaction, Table table, CancellationToken cancellationToken)
    {
        var digest = new Digest();
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT {table.ColumnList} FROM {table.Name}";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var row = new object?[table.Columns.Count];
        while (await reader.ReadAsync(cancellationToken))
        {
            for (var i = 0; i < row.Length; i++)
            {
                row[i] = Normalize(reader.GetValue(i), table.Columns[i], table.Name, "the database");
            }

            digest.Add(row);
        }

        return digest;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// The rows of a table as a multiset: their count and the sum (mod 2^128) of each row's SHA-256, so the order the
    /// engines return rows in (collations differ) does not matter, and a row lost, added, repeated or changed does.
    /// </summary>
    private record struct Digest(long Rows, UInt128 Sum)
    {
        public void Add(object?[] row)
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            Span<byte> scratch = stackalloc byte[9];
            foreach (var value in row)
            {
                switch (value)
                {
                    case null:
                        scratch[0] = 0;
                        hash.AppendData(scratch[..1]);
                        break;
                    case long number:
                        scratch[0] = 1;
                        BinaryPrimitives.WriteInt64BigEndian(scratch[1..], number);
                        hash.AppendData(scratch);
                        break;
                    case double real:
                        scratch[0] = 2;
                        BinaryPrimitives.WriteInt64BigEndian(scratch[1..], BitConverter.DoubleToInt64Bits(real));
                        hash.AppendData(scratch);
                        break;
                    case string text:
                        var bytes = Encoding.UTF8.GetBytes(text);
                        scratch[0] = 3;
                        BinaryPrimitives.WriteInt64BigEndian(scratch[1..], bytes.Length);
                        hash.AppendData(scratch);
                        hash.AppendData(bytes);
                        break;
                }
            }

            Span<byte> digest = stackalloc byte[32];
            hash.GetHashAndReset(digest);
            Rows++;
            Sum += BinaryPrimitives.ReadUInt128BigEndian(digest);
        }
    }
}
