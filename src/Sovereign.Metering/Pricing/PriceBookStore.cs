using System.Data.Common;
using System.Globalization;
using Sovereign.Storage;

namespace Sovereign.Metering.Pricing;

/// <summary>
/// Persists the price book in two tables. Rates are stored as invariant decimal strings (TEXT), so any precision a
/// rate has survives exactly on both engines; effective times are unix milliseconds (BIGINT).
/// Saving replaces the whole book in one transaction after checking the change against the stored book, so a
/// published price in force can never be rewritten, even by two admins saving at once.
/// </summary>
public sealed class PriceBookStore
{
    private readonly SqlDatabase _database;

    /// <summary>Creates a store over <paramref name="database"/>; call <see cref="MigrateAsync"/> once at start.</summary>
    public PriceBookStore(SqlDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _database = database;
    }

    /// <summary>The schema: <c>metering_plans</c> and <c>metering_prices</c>.</summary>
    public static IReadOnlyList<SqlMigration> Migrations { get; } =
    [
        new("metering-pricing-001-plans-prices",
        [
            """
            CREATE TABLE metering_plans (
                name TEXT NOT NULL PRIMARY KEY,
                position INTEGER NOT NULL,
                currency TEXT NOT NULL,
                weight INTEGER NOT NULL,
                priority TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE metering_prices (
                plan_name TEXT NOT NULL,
                model TEXT NOT NULL,
                effective_from BIGINT NOT NULL,
                input_per_million TEXT NULL,
                output_per_million TEXT NULL,
                per_compute_second TEXT NULL,
                PRIMARY KEY (plan_name, model, effective_from)
            )
            """,
        ]),

        // Additive: books saved before it read back with no cached rate, i.e. cached tokens at the input rate.
        new("metering-pricing-002-cached-input", ["ALTER TABLE metering_prices ADD COLUMN cached_input_per_million TEXT NULL"]),

        // Additive: compute rates per pool or device class ('' where a scope part is unset, so it can be in the key),
        // and slots a plan reserves per pool. Books saved before read back with neither.
        new("metering-pricing-003-pools",
        [
            """
            CREATE TABLE metering_compute_prices (
                plan_name TEXT NOT NULL,
                pool TEXT NOT NULL,
                device_class TEXT NOT NULL,
                model TEXT NOT NULL,
                effective_from BIGINT NOT NULL,
                per_compute_second TEXT NOT NULL,
                PRIMARY KEY (plan_name, pool, device_class, model, effective_from)
            )
            """,
            """
            CREATE TABLE metering_plan_reservations (
                plan_name TEXT NOT NULL,
                pool TEXT NOT NULL,
                slots INTEGER NOT NULL,
                PRIMARY KEY (plan_name, pool)
            )
            """,
        ]),

        // One row counting saved changes, so every process can tell whether its book is current; it is also the row a
        // change locks, so changes made at two gateways at once apply one after the other.
        new("metering-pricing-004-version",
        [
            "CREATE TABLE metering_price_book_version (id INTEGER NOT NULL PRIMARY KEY, version BIGINT NOT NULL)",
            "INSERT INTO metering_price_book_version (id, version) VALUES (1, 0)",
        ]),
    ];

    /// <summary>Applies <see cref="Migrations"/> (idempotent).</summary>
    public Task MigrateAsync(CancellationToken cancellationToken = default) => _database.MigrateAsync(Migrations, cancellationToken);

    /// <summary>The stored book, with its <see cref="PriceBook.Version"/> (no plans when nothing was saved).</summary>
    public async Task<PriceBook> LoadAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await _database.OpenAsync(cancellationToken);
        return await LoadAsync(connection, null, cancellationToken);
    }

    /// <summary>The stored book's version: one cheap read, to learn whether a book in memory is current.</summary>
    public async Task<long> ReadVersionAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = Command(connection, null, "SELECT version FROM metering_price_book_version WHERE id = 1");
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken) ?? 0L, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Saves <paramref name="book"/> as the published book. Throws <see cref="PriceValidationException"/> when,
    /// compared with the stored book at <paramref name="now"/>, the change would be retroactive
    /// (<see cref="PriceValidator.ValidateChange"/>); nothing is written then.
    /// </summary>
    public Task<PriceBook> SaveAsync(PriceBook book, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(book);
        return UpdateAsync(_ => book, now, cancellationToken);
    }

    /// <summary>
    /// Applies <paramref name="change"/> to the stored book (not to a copy some process holds, which another process may
    /// have changed since) and saves the result as the next version, in one transaction that changes made elsewhere
    /// at the same time wait for. Throws <see cref="PriceValidationException"/> when the change would be retroactive
    /// (<see cref="PriceValidator.ValidateChange"/>); nothing is written then. Returns the saved book.
    /// </summary>
    public async Task<PriceBook> UpdateAsync(Func<PriceBook, PriceBook> change, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var turn = await _database.EnterWriteAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        // SQLite's write transaction is exclusive from its start; PostgreSQL locks the version row.
        var lockVersion = _database.Provider == SqlProvider.PostgreSql ? " FOR UPDATE" : "";
        long version;
        using (var read = Command(connection, transaction, "SELECT version FROM metering_price_book_version WHERE id = 1" + lockVersion))
        {
            version = Convert.ToInt64(await read.ExecuteScalarAsync(cancellationToken) ?? 0L, CultureInfo.InvariantCulture);
        }

        // Read inside the write transaction so the change, the check and the write see the same published book.
        var published = await LoadAsync(connection, transaction, cancellationToken);
        var book = change(published);
        var errors = PriceValidator.ValidateChange(published, book.Plans, now);
        if (errors.Count > 0)
        {
            throw new PriceValidationException(errors);
        }

        await ExecuteAsync(connection, transaction, "DELETE FROM metering_prices", cancellationToken);
        await ExecuteAsync(connection, transaction, "DELETE FROM metering_compute_prices", cancellationToken);
        await ExecuteAsync(connection, transaction, "DELETE FROM metering_plan_reservations", cancellationToken);
        await ExecuteAsync(connection, transaction, "DELETE FROM metering_plans", cancellationToken);
        await ExecuteAsync(connection, transaction, "UPDATE metering_price_book_version SET version = version + 1 WHERE id = 1", cancellationToken);
        using var insertPlan = Command(connection, transaction, "INSERT INTO metering_plans (name, position, currency, weight, priority) VALUES (@name, @position, @currency, @weight, @priority)");
        using var insertPrice = Command(connection, transaction,
            "INSERT INTO metering_prices (plan_name, model, effective_from, input_per_million, output_per_million, per_compute_second, cached_input_per_million) " +
            "VALUES (@plan, @model, @from, @input, @output, @compute, @cached)");
        using var insertCompute = Command(connection, transaction,
            "INSERT INTO metering_compute_prices (plan_name, pool, device_class, model, effective_from, per_compute_second) VALUES (@plan, @pool, @class, @model, @from, @rate)");
        using var insertReservation = Command(connection, transaction, "INSERT INTO metering_plan_reservations (plan_name, pool, slots) VALUES (@plan, @pool, @slots)");
        for (var position = 0; position < book.Plans.Count; position++)
        {
            var plan = book.Plans[position];
            SetParameters(insertPlan, plan.Name, position, plan.Currency, plan.Weight, plan.Priority.ToString());
            await insertPlan.ExecuteNonQueryAsync(cancellationToken);
            foreach (var price in plan.Prices)
            {
                SetParameters(insertPrice, plan.Name, price.Model, price.EffectiveFrom.ToUnixTimeMilliseconds(), Text(price.InputPerMillion), Text(price.OutputPerMillion), Text(price.PerComputeSecond), Text(price.CachedInputPerMillion));
                await insertPrice.ExecuteNonQueryAsync(cancellationToken);
            }

            foreach (var rate in plan.ComputePrices)
            {
                SetParameters(insertCompute, plan.Name, rate.Pool ?? "", rate.DeviceClass ?? "", rate.Model ?? "", rate.EffectiveFrom.ToUnixTimeMilliseconds(), Text(rate.PerComputeSecond));
                await insertCompute.ExecuteNonQueryAsync(cancellationToken);
            }

            foreach (var reservation in plan.Reservations)
            {
                SetParameters(insertReservation, plan.Name, reservation.Pool, reservation.Slots);
                await insertReservation.ExecuteNonQueryAsync(cancellationToken);
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return new PriceBook(book.Plans) { Version = version + 1 };
    }

    private static async Task<PriceBook> LoadAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken)
    {
        long version;
        using (var command = Command(connection, transaction, "SELECT version FROM metering_price_book_version WHERE id = 1"))
        {
            version = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken) ?? 0L, CultureInfo.InvariantCulture);
        }

        var prices = new Dictionary<string, List<ModelPrice>>(StringComparer.Ordinal);
        using (var command = Command(connection, transaction, "SELECT plan_name, model, effective_from, input_per_million, output_per_million, per_compute_second, cached_input_per_million FROM metering_prices ORDER BY plan_name, model, effective_from"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var plan = reader.GetString(0);
                if (!prices.TryGetValue(plan, out var list))
                {
                    prices[plan] = list = [];
                }

                list.Add(new ModelPrice
                {
                    Model = reader.GetString(1),
                    EffectiveFrom = DateTimeOffset.FromUnixTimeMilliseconds(Convert.ToInt64(reader.GetValue(2), CultureInfo.InvariantCulture)),
                    InputPerMillion = Rate(reader, 3),
                    OutputPerMillion = Rate(reader, 4),
                    PerComputeSecond = Rate(reader, 5),
                    CachedInputPerMillion = Rate(reader, 6),
                });
            }
        }

        var compute = new Dictionary<string, List<ComputePrice>>(StringComparer.Ordinal);
        using (var command = Command(connection, transaction, "SELECT plan_name, pool, device_class, model, effective_from, per_compute_second FROM metering_compute_prices ORDER BY plan_name, pool, device_class, model, effective_from"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                Add(compute, reader.GetString(0), new ComputePrice
                {
                    Pool = NullIfEmpty(reader.GetString(1)),
                    DeviceClass = NullIfEmpty(reader.GetString(2)),
                    Model = NullIfEmpty(reader.GetString(3)),
                    EffectiveFrom = DateTimeOffset.FromUnixTimeMilliseconds(Convert.ToInt64(reader.GetValue(4), CultureInfo.InvariantCulture)),
                    PerComputeSecond = Rate(reader, 5) ?? 0m,
                });
            }
        }

        var reservations = new Dictionary<string, List<PoolReservation>>(StringComparer.Ordinal);
        using (var command = Command(connection, transaction, "SELECT plan_name, pool, slots FROM metering_plan_reservations ORDER BY plan_name, pool"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                Add(reservations, reader.GetString(0), new PoolReservation(reader.GetString(1), Convert.ToInt32(reader.GetValue(2), CultureInfo.InvariantCulture)));
            }
        }

        var plans = new List<Plan>();
        using (var command = Command(connection, transaction, "SELECT name, currency, weight, priority FROM metering_plans ORDER BY position, name"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var name = reader.GetString(0);
                plans.Add(new Plan
                {
                    Name = name,
                    Currency = reader.GetString(1),
                    Weight = Convert.ToInt32(reader.GetValue(2), CultureInfo.InvariantCulture),
                    Priority = Enum.Parse<PriorityClass>(reader.GetString(3)),
                    Prices = prices.TryGetValue(name, out var list) ? list : [],
                    ComputePrices = compute.TryGetValue(name, out var rates) ? rates : [],
                    Reservations = reservations.TryGetValue(name, out var reserved) ? reserved : [],
                });
            }
        }

        return new PriceBook(plans) { Version = version };
    }

    private static void Add<T>(Dictionary<string, List<T>> map, string plan, T item)
    {
        if (!map.TryGetValue(plan, out var list))
        {
            map[plan] = list = [];
        }

        list.Add(item);
    }

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;

    private static decimal? Rate(DbDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : decimal.Parse(reader.GetString(ordinal), NumberStyles.Number, CultureInfo.InvariantCulture);

    private static string? Text(decimal? rate) => rate?.ToString(CultureInfo.InvariantCulture);

    private static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }

    private static void SetParameters(DbCommand command, params object?[] values)
    {
        // Parameters are bound by position of first use: names come from the SQL's @tokens in order.
        if (command.Parameters.Count == 0)
        {
            foreach (var name in PreparedStatement.ParameterNames(command.CommandText))
            {
                SqlDatabase.AddParameter(command, name, null);
            }
        }

        for (var i = 0; i < values.Length; i++)
        {
            command.Parameters[i].Value = values[i] ?? DBNull.Value;
        }
    }

    private static async Task ExecuteAsync(DbConnection connection, DbTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        using var command = Command(connection, transaction, sql);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
