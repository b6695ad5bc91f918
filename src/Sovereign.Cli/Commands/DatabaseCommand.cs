using System.CommandLine;
using System.Globalization;
using Sovereign.Cli.Output;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Cli.Commands;

/// <summary>
/// <c>sovereign database copy</c>: moves a single machine's SQLite state into the PostgreSQL database a cluster shares,
/// so the laptop that grew into the cluster's first gateway keeps its tenants, keys, prices, budgets' spend, usage,
/// invoices and its audit chain. Before it, the operator guide said nothing and a gateway started on PostgreSQL began
/// from nothing: every key 401, every budget full again, and a second audit chain beside the one auditors had seen.
/// </summary>
internal static class DatabaseCommand
{
    public static Command Create()
    {
        var command = new Command("database", "Back up a single machine's state (SQLite) while it runs, restore a backup, or move it into the PostgreSQL database a cluster shares.");
        command.Subcommands.Add(CreateCopy());
        command.Subcommands.Add(CreateBackup());
        command.Subcommands.Add(DatabaseRestore.Create());
        return command;
    }

    /// <summary>
    /// <c>sovereign database backup -o FILE</c>: a running single machine's database, copied with SQLite's online backup
    /// (one consistent snapshot, the server keeps writing), to a new file readable by its owner only, then checked: SQLite's
    /// integrity check and the audit chain against the operator key. The way the guide gave, <c>sqlite3 ... ".backup"</c>,
    /// needs the sqlite3 program (the image has none), wrote a world-readable copy of key hashes, the ledger and the audit
    /// log (mode 644 under the usual umask), and checked nothing.
    /// </summary>
    private static Command CreateBackup()
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "The server's data directory (default ~/.sovereign): its sovereign.db and operator key." };
        var output = new Option<FileInfo>("--output", "-o") { Description = "The backup file to write, in a folder that exists; it must not exist yet.", Required = true };
        var command = new Command("backup",
            "Back up a single machine's SQLite database while its server runs (SQLite's online backup: one consistent snapshot) to a new file readable by you only, " +
            "then check the copy (SQLite's integrity check, the audit chain with the operator key) and print its SHA-256. " +
            "Exit 0 written and verified, 1 not written, 2 bad usage, 3 the copy does not verify (kept for inspection).")
        {
            dataDir, output,
        };
        command.SetAction(async (result, ct) =>
        {
            var directory = Path.GetFullPath(result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory);
            var sourcePath = Path.Combine(directory, ControlPlaneServices.DatabaseFile);
            var targetPath = result.GetValue(output)!.FullName;
            if (string.Equals(Environment.GetEnvironmentVariable("Sovereign__Database__Provider"), "PostgreSql", StringComparison.OrdinalIgnoreCase))
            {
                throw new CliException("this server's database is PostgreSQL (Sovereign__Database__Provider): back it up with pg_dump -Fc (see the operator guide's Backup and restore).", ExitCodes.Usage);
            }

            if (!File.Exists(sourcePath))
            {
                throw new CliException($"the database {sourcePath} does not exist; pass --data-dir (the server's data directory).", ExitCodes.Usage);
            }

            if (DatabaseMoved.Read(sourcePath) is { } moved)
            {
                throw new CliException(moved.Explain(sourcePath, "Back up the PostgreSQL database with pg_dump instead; nothing was written."));
            }

            if (Path.GetDirectoryName(targetPath) is { } folder && !Directory.Exists(folder))
            {
                throw new CliException($"--output {targetPath}: the folder {folder} does not exist.", ExitCodes.Usage);
            }

            if (Directory.Exists(targetPath))
            {
                throw new CliException($"--output {targetPath} is a folder; give the file to write, e.g. {Path.Combine(targetPath, "sovereign-backup.db")}.", ExitCodes.Usage);
            }

            if (File.Exists(targetPath))
            {
                // Never over an existing file (an older backup stays), and said before anything is copied.
                throw new CliException($"--output {targetPath} exists already; a backup never replaces a file: choose another file.", ExitCodes.Usage);
            }

            // The copy is made and checked in a temporary file beside the target, created owner-only before a byte is
            // written, and renamed into place once complete: a copy that failed or was interrupted half way was left
            // under the backup's name, a file that looked like a backup and was not one.
            var staging = OutputFile.TemporaryBeside(targetPath);
            (int Exit, string Line) problem;
            string digest;
            try
            {
                try
                {
                    var create = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
                    if (!OperatingSystem.IsWindows())
                    {
                        create.UnixCreateMode = SqlDatabase.OwnerOnly;
                    }

                    using var created = new FileStream(staging, create);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw new CliException($"--output {targetPath} cannot be written: {ex.Message.TrimEnd('.')}.");
                }

                try
                {
                    await using (var source = (Microsoft.Data.Sqlite.SqliteConnection)await SqlDatabase.Sqlite(sourcePath).OpenAsync(ct))
                    await using (var target = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={staging};Pooling=False"))
                    {
                        await target.OpenAsync(ct);
                        // One snapshot of the whole file, however much the server writes meanwhile (SQLite restarts the copy
                        // of a page another connection changed; in one process-local step here, so it finishes).
                        source.BackupDatabase(target);
                        await using var single = target.CreateCommand();
                        // One self-contained file: the live database's WAL mode would leave the copy needing -wal and -shm files.
                        single.CommandText = "PRAGMA journal_mode=DELETE";
                        await single.ExecuteNonQueryAsync(ct);
                    }
                }
                catch (Microsoft.Data.Sqlite.SqliteException ex) when (SqliteFailures.Explain(ex, "the backup " + targetPath) is { } explained)
                {
                    throw new CliException(explained + "; nothing was kept.");
                }

                problem = await CheckBackupAsync(staging, directory, ct);
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                await using (var written = File.OpenRead(staging))
                {
                    digest = Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(written, ct));
                }

                // Complete (a copy that does not verify too: it is kept for inspection). Never over a file made meanwhile.
                OutputFile.MoveIntoPlace(staging, targetPath, force: false, canForce: false);
            }
            catch
            {
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                foreach (var file in new[] { staging, staging + "-journal", staging + "-wal", staging + "-shm" })
                {
                    OutputFile.TryDelete(file);
                }

                throw;
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Backed up {sourcePath} to {targetPath} ({new FileInfo(targetPath).Length} bytes, SHA-256 {digest})."));
            Console.WriteLine(problem.Line);
            if (problem.Exit != ExitCodes.Success)
            {
                return problem.Exit;
            }

            Console.WriteLine($"Keep {Path.Combine(directory, "operator-key.pem")} apart from it (offline, encrypted): the backup's checkpoints verify with its public half. " +
                $"To restore it: stop the server, then sovereign database restore --data-dir {directory} --from {targetPath}.");
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>SQLite's integrity check, then the audit chain and the ledger against it, as <c>audit verify --no-witness</c> does.</summary>
    private static async Task<(int Exit, string Line)> CheckBackupAsync(string path, string dataDirectory, CancellationToken cancellationToken)
    {
        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Mode=ReadOnly;Pooling=False"))
        {
            await connection.OpenAsync(cancellationToken);
            await using var check = connection.CreateCommand();
            check.CommandText = "PRAGMA integrity_check";
            if (await check.ExecuteScalarAsync(cancellationToken) is not "ok" and var found)
            {
                return (ExitCodes.IntegrityFailure, $"The copy fails SQLite's integrity check ({found}); it is kept for inspection. Back up again.");
            }
        }

        var pem = await AuditCommand.PublicKeyAsync(null, dataDirectory, cancellationToken);
        var copy = SqlDatabase.Sqlite(path);
        var outcome = await AuditVerifier.VerifyAsync(copy, [pem], new AuditVerificationOptions(), null, cancellationToken);
        outcome = Gateway.Metering.LedgerReconciliation.With(outcome, await Gateway.Metering.LedgerReconciliation.CheckAsync(copy, cancellationToken));
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False"))
        {
            // Reading it through the server's own settings turned it to WAL: back to one file.
            await connection.OpenAsync(cancellationToken);
            await using var single = connection.CreateCommand();
            single.CommandText = "PRAGMA journal_mode=DELETE";
            await single.ExecuteNonQueryAsync(cancellationToken);
        }

        return outcome.Verdict == AuditVerdict.Tampered
            ? (ExitCodes.IntegrityFailure, $"The copy's audit log does not verify ({string.Join("; ", outcome.Problems.Take(3))}); it is kept for inspection. Run sovereign audit verify on the server's database.")
            : (ExitCodes.Success, string.Create(CultureInfo.InvariantCulture,
                $"The copy verifies: {outcome.EntriesChecked} audit entries, {outcome.CheckpointsVerified} signed checkpoints, the ledger agrees with them. {outcome.VerdictReason}"));
    }

    private static Command CreateCopy()
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "The single machine's data directory (default ~/.sovereign): its sovereign.db, operator key and audit witness." };
        var from = new Option<string?>("--from") { Description = "The SQLite file to copy (default <data dir>/sovereign.db)." };
        var to = new Option<string>("--to")
        {
            Description = "The PostgreSQL database to copy into, as 'postgres:<Npgsql connection string>': a new, empty database (createdb).",
            Required = true,
        };
        var contentJurisdiction = new Option<string?>("--content-jurisdiction")
        {
            Description = "Where the PostgreSQL database runs (ISO country code, as Sovereign:Database:Jurisdiction): needed when tenants' stored responses are to be copied, which move only within their jurisdiction.",
        };
        var command = new Command("copy",
            "Copy every tenant, key, price, usage record, budget spend and the audit chain from a stopped single machine's SQLite file into an empty PostgreSQL database, " +
            "verified table by table and by re-verifying the audit chain there. The SQLite file is only read. Exit 0 copied, 1 refused (target not empty, a server running), 2 bad usage, 3 an integrity check failed.")
        {
            dataDir, from, to, contentJurisdiction,
        };
        command.SetAction(async (result, ct) =>
        {
            var directory = Path.GetFullPath(result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory);
            var sourcePath = Path.GetFullPath(result.GetValue(from) ?? Path.Combine(directory, ControlPlaneServices.DatabaseFile));
            var targetSetting = result.GetValue(to)!;
            if (!targetSetting.StartsWith("postgres:", StringComparison.Ordinal) || targetSetting.Length == "postgres:".Length)
            {
                throw new CliException("--to must be a PostgreSQL connection string prefixed with 'postgres:', e.g. 'postgres:Host=db;Database=sovereign;Username=sovereign;Password=...'.", ExitCodes.Usage);
            }

            if (!File.Exists(sourcePath))
            {
                throw new CliException($"the database {sourcePath} does not exist; pass --data-dir (the single machine's data directory) or --from.", ExitCodes.Usage);
            }

            var jurisdiction = result.GetValue(contentJurisdiction) is { } code ? code.Trim().ToUpperInvariant() : null;
            if (jurisdiction is not null && (jurisdiction.Length != 2 || !jurisdiction.All(char.IsAsciiLetterUpper)))
            {
                throw new CliException($"--content-jurisdiction '{result.GetValue(contentJurisdiction)}' is not an ISO 3166-1 country code (e.g. TH).", ExitCodes.Usage);
            }

            SqlDatabase target;
            try
            {
                target = SqlDatabase.PostgreSql(targetSetting["postgres:".Length..]);
            }
            catch (ArgumentException ex)
            {
                throw new CliException($"--to is not a valid connection string: {ex.Message}", ExitCodes.Usage);
            }

            // Copied already: a second copy would make two installations of one set of tenants, each spending their budgets.
            if (DatabaseMoved.Read(sourcePath) is { } moved)
            {
                throw new CliException(moved.Explain(sourcePath, "Nothing was copied."));
            }

            var source = SqlDatabase.Sqlite(sourcePath);

            // A server still running on the file would keep writing (requests, checkpoints) after the copy was read:
            // spend and audit entries that the cluster would never see.
            await using var sourceLock = await LockSourceAsync(source, sourcePath, TimeProvider.System, ct);

            // As the server's start would: an older file gets this version's schema (each migration whole or not at all).
            await source.MigrateAsync(ControlPlaneServices.Migrations, ct);
            var pem = await AuditCommand.PublicKeyAsync(null, directory, ct);
            var witness = AuditWitness.Read(Path.Combine(directory, AuditWitness.FileName));
            var options = new AuditVerificationOptions { Witness = witness };
            var before = await AuditVerifier.VerifyAsync(source, [pem], options, null, ct);
            if (before.Verdict == AuditVerdict.Tampered)
            {
                throw new CliException(
                    $"the audit log in {sourcePath} does not verify ({before.VerdictReason}); a copy would carry the damage into the cluster. Run 'sovereign audit verify --data-dir {directory}' for where; nothing was copied.",
                    ExitCodes.IntegrityFailure);
            }

            // A machine killed mid-request left decisions without an outcome; its own next start closes them (it holds
            // the file alone), but in a cluster only the open decisions of cluster processes are closed: copied as they
            // are, they would stay open in the log for ever.
            if (before.Decisions is { Open: > 0 } open)
            {
                throw new CliException(string.Create(CultureInfo.InvariantCulture,
                    $"{open.Open} request(s) it allowed have no outcome in its audit log (decision entries {string.Join(", ", open.OpenSequences)}): it was stopped mid-request (killed, crashed). " +
                    $"Start it once on this data directory and stop it: its start closes them as interrupted (nothing billed). Then copy; nothing was copied."));
            }

            await CheckStoredContentAsync(source, jurisdiction, ct);

            // Every usage record into the aggregates first (the file is locked: no server adds one meanwhile): the
            // copied aggregates are then complete, and the target's watermark is set to its own last sequence below.
            await Sovereign.Metering.Ledger.UsageLedger.FoldAllAsync(source, ct);

            // Held for the whole copy: a server starting on the target meanwhile is refused, as one of another cluster is.
            var host = System.Net.Dns.GetHostName();
            SharedDatabaseClaim claim;
            try
            {
                claim = await SharedDatabaseClaim.TakeAsync(target, $"copy:{host}:{Environment.ProcessId}:{Guid.NewGuid():N}",
                    $"'sovereign database copy' (host {host}, process {Environment.ProcessId})", cancellationToken: ct);
            }
            catch (DatabaseClaimedException ex)
            {
                throw new CliException(ex.Message.Split(" Servers that share", 2)[0] + ": a server uses it, so it is no empty database to copy into; nothing was copied.");
            }

            await using var held = claim;

            IReadOnlyList<CopiedTable> tables;
            try
            {
                tables = await DatabaseCopy.CopyAsync(source, target, ControlPlaneServices.Migrations, [Sovereign.Metering.Ledger.LedgerSchema.FoldedThroughAll], ct);
            }
            catch (DatabaseNotEmptyException ex)
            {
                throw new CliException(ex.Message);
            }
            catch (DatabaseCopyMismatchException ex)
            {
                throw new CliException(ex.Message, ExitCodes.IntegrityFailure);
            }

            // The chain as the cluster will read it: the same entries, head and checkpoints, under the same key.
            var after = await AuditVerifier.VerifyAsync(target, [pem], options, null, ct);
            if (after.Verdict != before.Verdict || after.LastSequence != before.LastSequence || after.LastHash != before.LastHash
                || after.EntriesChecked != before.EntriesChecked || after.CheckpointsVerified != before.CheckpointsVerified)
            {
                throw new CliException(
                    string.Create(CultureInfo.InvariantCulture,
                        $"the audit log in {target.Location} does not verify as the source did (source: {before.EntriesChecked} entries through {before.LastSequence}, {before.Verdict}; copy: {after.EntriesChecked} through {after.LastSequence}, {after.Verdict}: {after.VerdictReason}). Drop that database before trying again."),
                    ExitCodes.IntegrityFailure);
            }

            var spendBefore = await SpendAsync(source, ct);
            var spendAfter = await SpendAsync(target, ct);
            if (!spendBefore.SequenceEqual(spendAfter))
            {
                throw new CliException($"the spend in {target.Location} is not the source's; drop that database before trying again.", ExitCodes.IntegrityFailure);
            }

            // From now on the file is the past: serve and the audit commands refuse it unless told otherwise.
            new DatabaseMoved(target.Location, DateTimeOffset.UtcNow, after.LastSequence).Write(sourcePath);
            Console.WriteLine($"Copied {source.Location} into {target.Location}:");
            foreach (var table in tables.Where(t => t.Rows > 0))
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {table.Table}: {table.Rows} rows"));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Audit log: {after.EntriesChecked} entries through sequence {after.LastSequence}, {after.CheckpointsVerified} signed checkpoints; verified in both: {after.Verdict.ToString().ToLowerInvariant()}."));
            Console.WriteLine(spendAfter.Count == 0
                ? "Spend: none recorded."
                : "Spend (all time): " + string.Join(", ", spendAfter.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Currency} {s.Micros / 1_000_000m:0.######} over {s.Requests} requests"))) + ".");
            Console.WriteLine("Every table was read back and compared. Start the gateway on it with Sovereign__Database__Provider=PostgreSql and "
                + "Sovereign__Database__ConnectionString, with this data directory (its operator key and audit witness). "
                + $"{sourcePath} stays as it was, marked as moved ({DatabaseMoved.PathFor(sourcePath)}): a server or audit command refuses it from now on; delete the mark to go back to it.");
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>
    /// The server's lock on the file to copy, tried as a server's start tries it (<see cref="ServerDatabaseLock.TryTakeSqliteAsync"/>):
    /// <c>audit verify</c> holds it for an instant to tell whether a server runs, and a copy in that instant refused as
    /// if one did. A server holds it until it stops, so a copy under a running server is still refused.
    /// </summary>
    internal static async Task<IAsyncDisposable> LockSourceAsync(SqlDatabase source, string sourcePath, TimeProvider time, CancellationToken cancellationToken) =>
        await ServerDatabaseLock.TryTakeSqliteAsync(source, time, cancellationToken)
            ?? throw new CliException($"a sovereign server is using {sourcePath}: stop it first (its last requests, outcomes and checkpoint must be in the copy); nothing was copied.");

    /// <summary>
    /// Tenants' stored responses are content at rest where the SQLite file is: copied only into a database declared in
    /// the same jurisdiction, never across a border, and never into one whose jurisdiction is not said. The table is
    /// asked for with <see cref="SqlDatabase.TableExistsAsync"/>, so the check reads either engine (it asked SQLite's
    /// catalog itself, which a PostgreSQL source would have answered with an error).
    /// </summary>
    internal static async Task CheckStoredContentAsync(SqlDatabase source, string? jurisdiction, CancellationToken cancellationToken)
    {
        await using var connection = await source.OpenAsync(cancellationToken);
        if (!await SqlDatabase.TableExistsAsync(connection, "stored_responses", cancellationToken: cancellationToken))
        {
            return;
        }

        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT jurisdiction, COUNT(*) FROM stored_responses GROUP BY jurisdiction ORDER BY jurisdiction";
        var stored = new List<(string Jurisdiction, long Count)>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                stored.Add((reader.GetString(0), reader.GetInt64(1)));
            }
        }

        if (stored.Count == 0)
        {
            return;
        }

        var described = string.Join(", ", stored.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Count} in {s.Jurisdiction}")));
        if (jurisdiction is null)
        {
            throw new CliException($"the database holds tenants' stored responses ({described}): say where the PostgreSQL database runs with --content-jurisdiction (as Sovereign:Database:Jurisdiction); nothing was copied.", ExitCodes.Usage);
        }

        if (stored.Any(s => !string.Equals(s.Jurisdiction, jurisdiction, StringComparison.OrdinalIgnoreCase)))
        {
            throw new CliException(
                $"the database holds tenants' stored responses ({described}) and the PostgreSQL database is in {jurisdiction}: copying them would move tenants' content across a border. " +
                "Keep the database in their jurisdiction, or let their tenants delete them (DELETE /v1/responses/{id}) or let them expire first; nothing was copied.");
        }
    }

    /// <summary>All-time spend per currency from the ledger's durable totals, which budgets are rebuilt from.</summary>
    private static async Task<List<(string Currency, long Micros, long Requests)>> SpendAsync(SqlDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        // The stored totals and the records not folded into them yet, in one statement (one snapshot).
        command.CommandText = "SELECT currency, SUM(cost_micros), SUM(requests) FROM (SELECT currency, cost_micros, requests FROM metering_tenant_periods WHERE period = 'total' " +
            $"UNION ALL SELECT currency, cost_micros, 1 FROM metering_usage WHERE {Sovereign.Metering.Ledger.LedgerSchema.Unfolded(database.Provider == SqlProvider.Sqlite)}) spend " +
            "GROUP BY currency ORDER BY currency";
        var spend = new List<(string, long, long)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            spend.Add((reader.GetString(0), Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture), Convert.ToInt64(reader.GetValue(2), CultureInfo.InvariantCulture)));
        }

        return spend;
    }
}
