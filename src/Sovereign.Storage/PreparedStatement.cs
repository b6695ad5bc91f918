using System.Data.Common;
using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Sovereign.Storage;

/// <summary>
/// One prepared statement of a hot writer (the usage ledger, the audit log), reused for every row. Parameters are set
/// by position: the order in which their @names first appear in the SQL. On SQLite the statement is driven through
/// SQLitePCL directly (bound by index, no per-execution name lookups or binder objects: several times cheaper per row
/// than SqliteCommand); elsewhere it is an ordinary ADO.NET command. Both run the same portable SQL text, inside the
/// connection's open transaction.
/// </summary>
public abstract class PreparedStatement : IDisposable
{
    public static PreparedStatement Create(DbConnection connection, string sql, bool portable = false) =>
        !portable && connection is SqliteConnection { Handle: { } handle } ? new SqliteStatement(handle, sql) : new CommandStatement(connection, sql);

    public abstract void Set(int position, string? value);

    /// <summary>Sets a text parameter from its UTF-8 bytes (already valid UTF-8), without a string in between.</summary>
    public abstract void SetUtf8(int position, ReadOnlySpan<byte> utf8);

    public abstract void Set(int position, long value);

    public abstract void Set(int position, double value);

    public void Set(int position, double? value)
    {
        if (value is { } v)
        {
            Set(position, v);
        }
        else
        {
            Set(position, (string?)null);
        }
    }

    public void Set(int position, long? value)
    {
        if (value is { } v)
        {
            Set(position, v);
        }
        else
        {
            Set(position, (string?)null);
        }
    }

    /// <summary>
    /// Runs the statement in <paramref name="transaction"/>; with none, in the connection's transaction begun by SQL
    /// (as <see cref="PreparedTransaction"/> begins it) or, outside one, as its own transaction (committed when this
    /// returns); returns the rows it changed. <paramref name="cancellationToken"/> stops a statement the server does not
    /// answer (PostgreSQL; a SQLite statement runs on the caller's thread and is not stopped).
    /// </summary>
    public abstract ValueTask<int> ExecuteAsync(DbTransaction? transaction, CancellationToken cancellationToken = default);

    public abstract void Dispose();

    /// <summary>The distinct @names of <paramref name="sql"/>, in order of first use.</summary>
    public static List<string> ParameterNames(string sql)
    {
        var names = new List<string>();
        for (var i = 0; i < sql.Length; i++)
        {
            if (sql[i] != '@')
            {
                continue;
            }

            var end = i + 1;
            while (end < sql.Length && (char.IsAsciiLetterOrDigit(sql[end]) || sql[end] == '_'))
            {
                end++;
            }

            var name = sql[i..end];
            if (!names.Contains(name, StringComparer.Ordinal))
            {
                names.Add(name);
            }

            i = end - 1;
        }

        return names;
    }

    private sealed class SqliteStatement : PreparedStatement
    {
        private readonly sqlite3 _db;
        private readonly sqlite3_stmt _statement;
        private readonly int[] _indexes;
        private byte[] _utf8 = new byte[256];

        public SqliteStatement(sqlite3 db, string sql)
        {
            _db = db;
            var rc = raw.sqlite3_prepare_v3(db, sql, raw.SQLITE_PREPARE_PERSISTENT, out _statement);
            SqliteException.ThrowExceptionForRC(rc, db);
            _indexes = [.. ParameterNames(sql).Select(name => raw.sqlite3_bind_parameter_index(_statement, name))];
        }

        public override void Set(int position, string? value)
        {
            if (value is null)
            {
                SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_null(_statement, _indexes[position]), _db);
                return;
            }

            // Encode into a reused buffer (SQLite copies it: SQLITE_TRANSIENT) instead of allocating per string.
            var length = Encoding.UTF8.GetMaxByteCount(value.Length);
            if (length > _utf8.Length)
            {
                _utf8 = new byte[Math.Max(length, _utf8.Length * 2)];
            }

            var written = Encoding.UTF8.GetBytes(value, _utf8);
            SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_text(_statement, _indexes[position], _utf8.AsSpan(0, written)), _db);
        }

        public override void SetUtf8(int position, ReadOnlySpan<byte> utf8) =>
            SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_text(_statement, _indexes[position], utf8), _db);

        public override void Set(int position, long value) =>
            SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_int64(_statement, _indexes[position], value), _db);

        public override void Set(int position, double value) =>
            SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_double(_statement, _indexes[position], value), _db);

        public override ValueTask<int> ExecuteAsync(DbTransaction? transaction, CancellationToken cancellationToken = default)
        {
            var rc = raw.sqlite3_step(_statement);
            raw.sqlite3_reset(_statement);
            if (rc != raw.SQLITE_DONE)
            {
                SqliteException.ThrowExceptionForRC(rc, _db);
            }

            return new ValueTask<int>(raw.sqlite3_changes(_db));
        }

        public override void Dispose() => _statement.Dispose();
    }

    private sealed class CommandStatement : PreparedStatement
    {
        private readonly DbCommand _command;

        public CommandStatement(DbConnection connection, string sql)
        {
            _command = connection.CreateCommand();
            _command.CommandText = sql;
            foreach (var name in ParameterNames(sql))
            {
                SqlDatabase.AddParameter(_command, name, null);
            }
        }

        public override void Set(int position, string? value) => _command.Parameters[position].Value = (object?)value ?? DBNull.Value;

        public override void SetUtf8(int position, ReadOnlySpan<byte> utf8) => _command.Parameters[position].Value = Encoding.UTF8.GetString(utf8);

        public override void Set(int position, long value) => _command.Parameters[position].Value = value;

        public override void Set(int position, double value) => _command.Parameters[position].Value = value;

        public override async ValueTask<int> ExecuteAsync(DbTransaction? transaction, CancellationToken cancellationToken = default)
        {
            _command.Transaction = transaction;
            return await _command.ExecuteNonQueryAsync(cancellationToken);
        }

        public override void Dispose() => _command.Dispose();
    }
}
