using System.CommandLine;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Sovereign.Cli.Output;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Cli.Commands;

/// <summary>
/// <c>sovereign database restore --from FILE</c>: puts a backup (<c>sovereign database backup</c>) in place as a stopped
/// single machine's database. The guide's way was by hand: move the files aside, copy the backup in, move the audit
/// witness aside. Tried (explorer32): a key revoked after the backup worked again once restored, the log restarted
/// from the backup's head with nothing in it saying that entries signed before (the witness's) were rolled back (the
/// server then signed a second, different entry at those sequences: a fork nobody could explain), and the spend
/// recorded after the backup was gone without a word. This command checks the backup (SQLite's integrity check, the
/// audit chain with the operator key) before anything changes; refuses to roll the log back behind the head this
/// server last signed unless told (<c>--accept-rollback</c>); carries every key and admin key revoked in the database it
/// replaces into the restored one; records the restore in the restored log (<c>database.restore</c>: the backup's
/// digest and head, the head rolled back from) and signs it; and keeps the replaced database and witness beside it.
/// </summary>
internal static class DatabaseRestore
{
    /// <summary>The audit action of a restore, recorded in the restored log.</summary>
    public const string Action = "database.restore";

    public static Command Create()
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "The stopped server's data directory (default ~/.sovereign), holding its operator-key.pem." };
        var from = new Option<FileInfo>("--from") { Description = "The backup to restore (a file 'sovereign database backup' wrote).", Required = true };
        var acceptRollback = new Option<bool>("--accept-rollback")
        {
            Description = "Restore even though the backup ends before the audit entry this server last signed (its audit-witness.json): entries, spend and changes since the backup are rolled back.",
        };
        var command = new Command("restore",
            "Restore a backup into a stopped single machine's data directory: checks the backup first, keeps the database it replaces beside it, carries keys revoked since the backup into it, " +
            "and records the restore (and any rollback of the audit log) as a signed entry of the restored log. " +
            "Exit 0 restored, 1 refused (a server runs, or it would roll the log back without --accept-rollback), 2 bad usage, 3 the backup does not verify. Nothing changes unless it exits 0.")
        {
            dataDir, from, acceptRollback,
        };
        command.SetAction(async (result, ct) => await RunAsync(
            Path.GetFullPath(result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory), result.GetValue(from)!.FullName, result.GetValue(acceptRollback), TimeProvider.System, ct));
        return command;
    }

    private static async Task<int> RunAsync(string directory, string backupPath, bool acceptRollback, TimeProvider time, CancellationToken ct)
    {
        if (string.Equals(Environment.GetEnvironmentVariable("Sovereign__Database__Provider"), "PostgreSql", StringComparison.OrdinalIgnoreCase))
        {
            throw new CliException("this server's database is PostgreSQL (Sovereign__Database__Provider): restore it with pg_restore (see the operator guide's Backup and restore).", ExitCodes.Usage);
        }

        if (!File.Exists(backupPath))
        {
            throw new CliException($"--from {backupPath} does not exist.", ExitCodes.Usage);
        }

        if (!Directory.Exists(directory))
        {
            throw new CliException($"the data directory {directory} does not exist: create it and put the operator key ({ControlPlaneServices.OperatorKeyFile}) from your offline copy in it first.", ExitCodes.Usage);
        }

        var keyFile = Path.Combine(directory, ControlPlaneServices.OperatorKeyFile);
        if (!File.Exists(keyFile))
        {
            throw new CliException($"the operator key {keyFile} was not found: put the one from your offline copy there first (the backup's checkpoints are checked with it, and the restore is signed with it); nothing was changed.", ExitCodes.Usage);
        }

        var livePath = Path.Combine(directory, ControlPlaneServices.DatabaseFile);
        if (string.Equals(Path.GetFullPath(backupPath), livePath, StringComparison.Ordinal))
        {
            throw new CliException($"--from {backupPath} is the database it would replace; give a backup file.", ExitCodes.Usage);
        }

        if (DatabaseMoved.Read(livePath) is { } moved)
        {
            throw new CliException(moved.Explain(livePath, "Restore the PostgreSQL database with pg_restore instead; nothing was changed."));
        }

        var hadLive = File.Exists(livePath) && new FileInfo(livePath).Length > 0;
        // The server's own lock: no server may run on the database while it is replaced (its writes would go to the old file).
        await using var held = await ServerDatabaseLock.TryTakeSqliteAsync(SqlDatabase.Sqlite(livePath), time, ct)
            ?? throw new CliException($"a sovereign server is using {livePath}: stop it first; nothing was changed.");

        var stamp = time.GetUtcNow().ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        var staging = OutputFile.TemporaryBeside(livePath);
        var witnessPath = Path.Combine(directory, AuditWitness.FileName);
        var witnessAside = witnessPath + ".replaced-" + stamp;
        var witnessMoved = false;
        try
        {
            await CopyOwnerOnlyAsync(backupPath, staging, ct);
            var digest = Convert.ToHexStringLower(await HashAsync(staging, ct));
            var backup = await CheckAsync(staging, backupPath, directory, ct);

            // Rolled back? The witness names the last head this server signed; a backup taken before it does not hold it.
            var witness = AuditWitness.Read(witnessPath);
            string? rollback = null;
            if (witness is not null)
            {
                await using var connection = await SqlDatabase.Sqlite(staging).OpenAsync(ct);
                rollback = await AuditWitness.CheckAsync(connection, null, witness, ct);
            }

            if (rollback is not null && !acceptRollback)
            {
                throw new CliException(string.Create(CultureInfo.InvariantCulture,
                    $"the backup's audit log ends at entry {backup.LastSequence}, but this server signed entry {witness!.Sequence} at {CliTime.FromUnixMilliseconds(witness.Timestamp)} ({AuditWitness.FileName}): restoring it rolls the log back, and with it every request, spend, usage record, key and tenant change recorded since the backup. Restore a newer backup if there is one, or pass --accept-rollback to restore this one (the rollback is recorded in the restored log); nothing was changed."));
            }

            // What the replaced database holds that the backup does not: revocations (carried: a revoked key must stay
            // revoked) and spend (reported: its usage records are gone with the rollback, so it cannot be carried whole).
            var carried = new List<string>();
            var lostSpend = new List<string>();
            string? unreadable = null;
            if (hadLive)
            {
                try
                {
                    carried = await CarryRevocationsAsync(livePath, staging, ct);
                    lostSpend = await LostSpendAsync(livePath, staging, ct);
                }
                catch (SqliteException ex)
                {
                    unreadable = ex.Message.TrimEnd('.');
                }
            }

            // The restore, in the restored log, signed: an auditor holding an export of the entries rolled back sees why
            // the same sequences now hold others.
            if (File.Exists(witnessPath))
            {
                File.Move(witnessPath, witnessAside);
                witnessMoved = true;
            }

            var details = new Dictionary<string, string>
            {
                ["backup_sha256"] = digest,
                ["backup_last_sequence"] = backup.LastSequence.ToString(CultureInfo.InvariantCulture),
                ["backup_last_hash"] = backup.LastHash,
                ["replaced_database"] = hadLive ? Path.GetFileName(livePath) + ".replaced-" + stamp : "none",
            };
            if (rollback is not null)
            {
                details["rolled_back_from_sequence"] = witness!.Sequence.ToString(CultureInfo.InvariantCulture);
                details["rolled_back_from_hash"] = witness.Hash;
                details["rolled_back_from_signed_at"] = DateTimeOffset.FromUnixTimeMilliseconds(witness.Timestamp).ToString("O", CultureInfo.InvariantCulture);
                details["rolled_back_from_key_id"] = witness.KeyId;
            }

            if (carried.Count > 0)
            {
                details["revocations_carried"] = string.Join(", ", carried);
            }

            var stagedDatabase = SqlDatabase.Sqlite(staging);
            await stagedDatabase.MigrateAsync(ControlPlaneServices.Migrations, ct);
            using (var key = OperatorSigningKey.LoadOrCreate(keyFile))
            await using (var log = await AuditLog.OpenAsync(stagedDatabase, key, new AuditLogOptions { WitnessPath = witnessPath }, time, ct))
            {
                await log.AppendAsync(new AuditRecord { Kind = AuditKind.Admin, Actor = "sovereign database restore", Action = Action, Details = details }, ct);
                await log.CheckpointAsync(ct);
            }

            SqliteConnection.ClearAllPools();
            await using (var connection = new SqliteConnection($"Data Source={staging};Pooling=False"))
            {
                // One file again, before it is moved into place.
                await connection.OpenAsync(ct);
                await using var single = connection.CreateCommand();
                single.CommandText = "PRAGMA journal_mode=DELETE";
                await single.ExecuteNonQueryAsync(ct);
            }

            string? replacedAs = null;
            if (hadLive)
            {
                replacedAs = livePath + ".replaced-" + stamp;
                foreach (var suffix in new[] { "", "-wal", "-shm" })
                {
                    if (File.Exists(livePath + suffix))
                    {
                        File.Move(livePath + suffix, replacedAs + suffix);
                    }
                }
            }

            File.Move(staging, livePath, overwrite: true);
            foreach (var line in Report(backupPath, digest, backup, witness, rollback, replacedAs, witnessMoved ? witnessAside : null, carried, lostSpend, unreadable, directory))
            {
                Console.WriteLine(line);
            }

            return ExitCodes.Success;
        }
        catch
        {
            SqliteConnection.ClearAllPools();
            foreach (var file in new[] { staging, staging + "-journal", staging + "-wal", staging + "-shm" })
            {
                OutputFile.TryDelete(file);
            }

            var replacedPath = livePath + ".replaced-" + stamp;
            if (File.Exists(replacedPath) && !File.Exists(livePath))
            {
                // Failed between the two renames: the old database goes back in place.
                foreach (var suffix in new[] { "", "-wal", "-shm" })
                {
                    if (File.Exists(replacedPath + suffix))
                    {
                        File.Move(replacedPath + suffix, livePath + suffix);
                    }
                }
            }

            if (witnessMoved && !File.Exists(replacedPath))
            {
                // The live database is still the old one: so is its witness.
                File.Move(witnessAside, witnessPath, overwrite: true);
            }

            throw;
        }
    }

    private static IEnumerable<string> Report(string backupPath, string digest, AuditVerificationResult backup, AuditWitnessHead? witness, string? rollback,
        string? replacedAs, string? witnessAside, List<string> carried, List<string> lostSpend, string? unreadable, string directory)
    {
        yield return string.Create(CultureInfo.InvariantCulture,
            $"Restored {backupPath} (SHA-256 {digest}): its audit log verifies, {backup.EntriesChecked} entries through {backup.LastSequence}; the restore is recorded in it ({Action}) and signed.");
        if (rollback is not null)
        {
            yield return string.Create(CultureInfo.InvariantCulture,
                $"Rolled back: this server had signed entry {witness!.Sequence} at {CliTime.FromUnixMilliseconds(witness.Timestamp)}; the log now goes on from entry {backup.LastSequence}. Requests, usage and changes recorded after the backup are gone: an auditor's earlier export of those entries is explained by the {Action} entry.");
        }

        if (replacedAs is not null)
        {
            yield return $"The database it replaced is kept as {replacedAs}{(witnessAside is null ? "" : $", its witness as {witnessAside}")}.";
        }

        if (unreadable is not null)
        {
            yield return $"Warning: the database it replaced could not be read ({unreadable}): keys revoked and spend recorded since the backup could not be carried. Revoke again every key revoked since the backup.";
        }
        else if (replacedAs is null)
        {
            yield return "Warning: there was no database to compare with: keys revoked since the backup are active again. Revoke them again (sovereign keys revoke, sovereign admin-keys revoke).";
        }

        if (carried.Count > 0)
        {
            yield return $"Revocations carried from the replaced database (revoked or disabled there, active in the backup): {string.Join(", ", carried.Select(c => Residency.DisplayText.Shortened(c, 200)))}.";
        }

        foreach (var spend in lostSpend)
        {
            yield return $"Spend recorded after the backup, no longer counted against budgets: {spend}. Lower those tenants' budgets by it if they must not spend it again.";
        }

        yield return $"Check it with 'sovereign audit verify --data-dir {directory}', then start the server.";
    }

    private static async Task CopyOwnerOnlyAsync(string from, string to, CancellationToken ct)
    {
        var create = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            create.UnixCreateMode = SqlDatabase.OwnerOnly;
        }

        try
        {
            await using var source = File.OpenRead(from);
            await using var target = new FileStream(to, create);
            await source.CopyToAsync(target, ct);
            target.Flush(flushToDisk: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"the backup could not be copied into {Path.GetDirectoryName(to)} ({ex.Message.TrimEnd('.')}); nothing was changed.");
        }
    }

    private static async Task<byte[]> HashAsync(string path, CancellationToken ct)
    {
        await using var stream = File.OpenRead(path);
        return await System.Security.Cryptography.SHA256.HashDataAsync(stream, ct);
    }

    /// <summary>SQLite's integrity check and the audit chain with the data directory's operator keys, as the backup checked its copy.</summary>
    private static async Task<AuditVerificationResult> CheckAsync(string staging, string backupPath, string directory, CancellationToken ct)
    {
        try
        {
            await using (var connection = new SqliteConnection($"Data Source={staging};Mode=ReadOnly;Pooling=False"))
            {
                await connection.OpenAsync(ct);
                await using var check = connection.CreateCommand();
                check.CommandText = "PRAGMA integrity_check";
                if (await check.ExecuteScalarAsync(ct) is not "ok" and var found)
                {
                    throw new CliException($"the backup {backupPath} fails SQLite's integrity check ({Residency.DisplayText.Shortened(Convert.ToString(found, CultureInfo.InvariantCulture) ?? "", 300)}); nothing was changed.", ExitCodes.IntegrityFailure);
                }
            }

            var pem = await AuditCommand.PublicKeyAsync(null, directory, ct);
            var outcome = await AuditVerifier.VerifyAsync(SqlDatabase.Sqlite(staging), [pem], new AuditVerificationOptions(), null, ct);
            if (outcome.Verdict == AuditVerdict.Tampered)
            {
                throw new CliException(
                    $"the backup's audit log does not verify with {Path.Combine(directory, ControlPlaneServices.OperatorKeyFile)} ({string.Join("; ", outcome.Problems.Take(3))}): a backup of another server, or altered; nothing was changed.",
                    ExitCodes.IntegrityFailure);
            }

            return outcome;
        }
        catch (SqliteException ex) when (SqliteFailures.Explain(ex, "the backup " + backupPath) is { } explained)
        {
            throw new CliException(explained + "; nothing was changed.", ExitCodes.IntegrityFailure);
        }
    }

    /// <summary>
    /// Every tenant key and admin key revoked in the replaced database but active in the restored one, revoked there too
    /// (at the same time, by the same hand): a revocation must outlive any copy of the database. So are tenants disabled,
    /// join tokens used or withdrawn and cluster certificates revoked there.
    /// </summary>
    private static async Task<List<string>> CarryRevocationsAsync(string livePath, string staging, CancellationToken ct)
    {
        var revokedKeys = new List<(string Id, long At)>();
        var revokedAdmin = new List<(string Id, long At, string? By)>();
        var disabledTenants = new List<string>();
        var closedTokens = new List<(string Id, long? UsedAt, string? UsedBy, long? WithdrawnAt)>();
        var certificates = new List<(string Kind, string Value, long At, string? Reason)>();
        await using (var live = new SqliteConnection($"Data Source={livePath};Mode=ReadOnly;Pooling=False"))
        {
            await live.OpenAsync(ct);
            await using var keys = live.CreateCommand();
            keys.CommandText = "SELECT id, revoked_at FROM api_keys WHERE revoked_at IS NOT NULL";
            await using (var reader = await keys.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct))
                {
                    revokedKeys.Add((reader.GetString(0), reader.GetInt64(1)));
                }
            }

            if (await SqlDatabase.TableExistsAsync(live, "operator_keys", cancellationToken: ct))
            {
                keys.CommandText = "SELECT id, revoked_at, revoked_by FROM operator_keys WHERE revoked_at IS NOT NULL";
                await using var reader = await keys.ExecuteReaderAsync(ct);
                while (await reader.ReadAsync(ct))
                {
                    revokedAdmin.Add((reader.GetString(0), reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetString(2)));
                }
            }

            keys.CommandText = "SELECT id FROM tenants WHERE disabled <> 0";
            await using (var reader = await keys.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct))
                {
                    disabledTenants.Add(reader.GetString(0));
                }
            }

            keys.CommandText = "SELECT id, used_at, used_by, withdrawn_at FROM node_join_tokens WHERE used_at IS NOT NULL OR withdrawn_at IS NOT NULL";
            await using (var reader = await keys.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct))
                {
                    closedTokens.Add((reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetInt64(3)));
                }
            }

            keys.CommandText = "SELECT kind, value, revoked_at, reason FROM cluster_certificate_revocations";
            await using (var reader = await keys.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct))
                {
                    certificates.Add((reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.IsDBNull(3) ? null : reader.GetString(3)));
                }
            }
        }

        var carried = new List<string>();
        await using var restored = new SqliteConnection($"Data Source={staging};Pooling=False");
        await restored.OpenAsync(ct);
        await using var transaction = await restored.BeginTransactionAsync(ct);
        await using var update = restored.CreateCommand();
        update.Transaction = (SqliteTransaction)transaction;
        foreach (var (id, at) in revokedKeys)
        {
            update.Parameters.Clear();
            update.CommandText = "UPDATE api_keys SET revoked_at = @at WHERE id = @id AND revoked_at IS NULL";
            update.Parameters.AddWithValue("@at", at);
            update.Parameters.AddWithValue("@id", id);
            if (await update.ExecuteNonQueryAsync(ct) > 0)
            {
                carried.Add(id);
            }
        }

        if (revokedAdmin.Count > 0 && await SqlDatabase.TableExistsAsync(restored, "operator_keys", (SqliteTransaction)transaction, ct))
        {
            foreach (var (id, at, by) in revokedAdmin)
            {
                update.Parameters.Clear();
                update.CommandText = "UPDATE operator_keys SET revoked_at = @at, revoked_by = @by WHERE id = @id AND revoked_at IS NULL";
                update.Parameters.AddWithValue("@at", at);
                update.Parameters.AddWithValue("@by", (object?)by ?? DBNull.Value);
                update.Parameters.AddWithValue("@id", id);
                if (await update.ExecuteNonQueryAsync(ct) > 0)
                {
                    carried.Add(id);
                }
            }
        }

        // A tenant disabled, a join token used or withdrawn, a cluster certificate revoked: each a door closed since
        // the backup, kept closed (a tenant enabled since stays as the backup has it: disabled, until enabled again).
        foreach (var id in disabledTenants)
        {
            update.Parameters.Clear();
            update.CommandText = "UPDATE tenants SET disabled = 1 WHERE id = @id AND disabled = 0";
            update.Parameters.AddWithValue("@id", id);
            if (await update.ExecuteNonQueryAsync(ct) > 0)
            {
                carried.Add("tenant " + id);
            }
        }

        foreach (var (id, usedAt, usedBy, withdrawnAt) in closedTokens)
        {
            update.Parameters.Clear();
            update.CommandText = "UPDATE node_join_tokens SET used_at = @used, used_by = @by, withdrawn_at = @withdrawn WHERE id = @id AND used_at IS NULL AND withdrawn_at IS NULL";
            update.Parameters.AddWithValue("@used", (object?)usedAt ?? DBNull.Value);
            update.Parameters.AddWithValue("@by", (object?)usedBy ?? DBNull.Value);
            update.Parameters.AddWithValue("@withdrawn", (object?)withdrawnAt ?? DBNull.Value);
            update.Parameters.AddWithValue("@id", id);
            if (await update.ExecuteNonQueryAsync(ct) > 0)
            {
                carried.Add("join token " + id);
            }
        }

        foreach (var (kind, value, at, reason) in certificates)
        {
            update.Parameters.Clear();
            update.CommandText = "INSERT INTO cluster_certificate_revocations (kind, value, revoked_at, reason) VALUES (@kind, @value, @at, @reason) ON CONFLICT DO NOTHING";
            update.Parameters.AddWithValue("@kind", kind);
            update.Parameters.AddWithValue("@value", value);
            update.Parameters.AddWithValue("@at", at);
            update.Parameters.AddWithValue("@reason", (object?)reason ?? DBNull.Value);
            if (await update.ExecuteNonQueryAsync(ct) > 0)
            {
                carried.Add($"certificate {kind} {value}");
            }
        }

        await transaction.CommitAsync(ct);
        return carried;
    }

    /// <summary>Per tenant and currency, the all-time spend the replaced database recorded beyond the backup's.</summary>
    private static async Task<List<string>> LostSpendAsync(string livePath, string staging, CancellationToken ct)
    {
        // The stored totals and the records not folded into them yet (none in a file from before the fold), one snapshot.
        var query = "SELECT tenant, currency, SUM(cost_micros), SUM(requests) FROM (SELECT tenant, currency, cost_micros, requests FROM metering_tenant_periods WHERE period = 'total' " +
            $"UNION ALL SELECT tenant, currency, cost_micros, 1 FROM metering_usage WHERE {Sovereign.Metering.Ledger.LedgerSchema.Unfolded(sqlite: true)}) spend GROUP BY tenant, currency";
        var live = await ReadAsync(livePath);
        var restored = await ReadAsync(staging);
        var lost = new List<string>();
        foreach (var ((tenant, currency), (micros, requests)) in live.OrderBy(l => l.Key.Tenant, StringComparer.Ordinal))
        {
            var (backupMicros, backupRequests) = restored.GetValueOrDefault((tenant, currency));
            if (micros > backupMicros)
            {
                lost.Add(string.Create(CultureInfo.InvariantCulture,
                    $"tenant {Residency.DisplayText.Shortened(tenant, 128)} {currency} {(micros - backupMicros) / 1_000_000m:0.######} over {requests - backupRequests} request(s)"));
            }
        }

        return lost;

        async Task<Dictionary<(string Tenant, string Currency), (long Micros, long Requests)>> ReadAsync(string path)
        {
            var totals = new Dictionary<(string, string), (long, long)>();
            await using var connection = new SqliteConnection($"Data Source={path};Mode=ReadOnly;Pooling=False");
            await connection.OpenAsync(ct);
            if (!await SqlDatabase.TableExistsAsync(connection, "metering_tenant_periods", cancellationToken: ct))
            {
                return totals;
            }

            await using var command = connection.CreateCommand();
            command.CommandText = query;
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                totals[(reader.GetString(0), reader.GetString(1))] = (reader.GetInt64(2), reader.GetInt64(3));
            }

            return totals;
        }
    }
}
