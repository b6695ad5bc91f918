using System.CommandLine;
using System.Globalization;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Cli.Commands;

/// <summary>
/// <c>sovereign audit</c>: verify the hash-chained audit log in place, export a tenant's entries for an auditor,
/// verify such an export offline with the operator's public key alone, and archive old entries out of the database.
/// </summary>
internal static class AuditCommand
{
    public static Command Create()
    {
        var command = new Command("audit", "Verify and export the audit trail.");
        command.Subcommands.Add(CreateVerify());
        command.Subcommands.Add(CreateExport());
        command.Subcommands.Add(CreateArchive());
        command.Subcommands.Add(CreateVerifyExport());
        command.Subcommands.Add(CreatePublicKey());
        command.Subcommands.Add(CreateFind());
        return command;
    }

    private static Option<string?> DataDirectoryOption() => new("--data-dir") { Description = "The server's data directory (default ~/.sovereign)." };

    private static Option<string?> DatabaseOption() => new("--database")
    {
        Description = "The SQLite file, or a PostgreSQL connection string prefixed with 'postgres:' (default: the server's own setting from " +
            "Sovereign__Database__Provider=PostgreSql and Sovereign__Database__ConnectionString in the environment, else <data dir>/sovereign.db).",
    };

    private static Command CreateVerify()
    {
        var dataDir = DataDirectoryOption();
        var database = DatabaseOption();
        var publicKey = new Option<FileInfo?>("--public-key") { Description = "The operator's public key PEM (default: derived from <data dir>/operator-key.pem; on a node that joined with a token, the key its join received)." };
        var maxUncovered = new Option<int>("--max-uncovered-age")
        {
            Description = "Seconds the oldest entry no signed checkpoint covers may be old and the log still trusted (a running server signs every minute).",
            DefaultValueFactory = _ => (int)AuditVerificationOptions.DefaultMaxUncoveredAge.TotalSeconds,
        };
        maxUncovered.Validators.Add(r =>
        {
            if (Output.ParseErrors.ValueOrNull<int>(r) is < 0)
            {
                r.AddError("--max-uncovered-age must be 0 or more seconds.");
            }
        });
        var noWitness = new Option<bool>("--no-witness")
        {
            Description = "Do not compare the log with <data dir>/audit-witness.json (the last head the server signed): for a copy or backup of the database older than it.",
        };
        var json = new Option<bool>("--json")
        {
            Description = "Print the report as JSON (what POST /admin/v1/audit/verify answers), for scripts; the exit code is the same.",
        };
        var command = new Command("verify", "Check every entry and checkpoint; report any modified, inserted, deleted, reordered or truncated entry and where, and the entries no signed checkpoint covers. Exit 0 trusted, 3 tampered, 5 intact but not covered by a signed checkpoint.")
        {
            dataDir, database, publicKey, maxUncovered, noWitness, json,
        };
        command.SetAction(async (result, ct) =>
        {
            var directory = result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory;
            var db = OpenDatabase(result.GetValue(database), directory, "verify");
            if (db is null)
            {
                return 2;
            }

            var pem = await PublicKeyAsync(result.GetValue(publicKey), directory, ct);
            // A large log takes a while: say how far it got, on stderr so the verdict on stdout stays clean.
            // The server's own record of the last head it signed, kept beside the key: a rewrite the checkpoints cannot show.
            var witness = result.GetValue(noWitness) ? null : AuditWitness.Read(Path.Combine(directory, AuditWitness.FileName));
            var options = new AuditVerificationOptions { MaxUncoveredAge = TimeSpan.FromSeconds(result.GetValue(maxUncovered)), Witness = witness };
            var outcome = await AuditVerifier.VerifyAsync(db, [pem], options, new Inference.Registry.InlineProgress<long>(checkedSoFar =>
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  ... {checkedSoFar:N0} entries checked"))), ct);

            // The chain vouches for each request's usage; the ledger that invoices and budgets read must agree with it.
            outcome = Gateway.Metering.LedgerReconciliation.With(outcome, await Gateway.Metering.LedgerReconciliation.CheckAsync(db, ct));

            // Open requests: running (a server holds the database) or interrupted and not closed yet (none does).
            if (outcome.Decisions is { Open: > 0 } open)
            {
                outcome = outcome with { Decisions = open with { ServerRunning = await ServerDatabaseLock.AnyServerHoldsAsync(db, ct) } };
            }
            var exit = outcome.Verdict switch
            {
                AuditVerdict.Trusted => Output.ExitCodes.Success,
                AuditVerdict.Uncovered => Output.ExitCodes.Uncovered,
                _ => Output.ExitCodes.IntegrityFailure,
            };
            if (result.GetValue(json))
            {
                // The admin API's report, field for field, so an auditor's script reads either.
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(outcome, Gateway.OpenAI.OpenAIJson.Options));
                return exit;
            }

            Console.WriteLine($"Checked {outcome.EntriesChecked} entries, {outcome.CheckpointsVerified} signed checkpoints.");
            if (outcome.Archive is { } archive)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"Entries 1..{archive.Sequence} were archived on {Output.CliTime.FromUnixMilliseconds(archive.Timestamp)} (record signed by key {archive.KeyId}); the archive files hold them."));
            }

            foreach (var problem in outcome.Problems)
            {
                Console.WriteLine($"  {problem}");
            }

            Console.WriteLine(outcome.LastCheckpoint is { } last
                ? string.Create(CultureInfo.InvariantCulture, $"Last signed checkpoint: sequence {last.Sequence} at {Output.CliTime.FromUnixMilliseconds(last.Timestamp)} (key {last.KeyId}).")
                : "No signed checkpoint matches the log.");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Covered through {outcome.CoveredThrough}; uncovered: {outcome.Uncovered}."));
            foreach (var line in SignedByLines(outcome))
            {
                Console.WriteLine(line);
            }

            foreach (var line in ChainLines(outcome))
            {
                Console.WriteLine(line);
            }

            if (DecisionsLine(outcome.Decisions) is { } decisions)
            {
                Console.WriteLine(decisions);
            }
            if (witness is not null)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"Witness: the server last signed entry {witness.Sequence} at {Output.CliTime.FromUnixMilliseconds(witness.Timestamp)}; {(outcome.Problems.Any(p => p.Kind == AuditProblemKind.WitnessMismatch) ? "the log no longer holds it" : "the log holds it")}."));
            }
            Console.WriteLine(Residency.DisplayText.Escaped(outcome.VerdictReason)); // it names chains as the log or file has them
            Console.WriteLine(outcome.Verdict switch
            {
                AuditVerdict.Trusted => "The audit log is intact.",
                AuditVerdict.Uncovered => "The audit log is intact as far as it goes, but NOT fully trusted: entries are not covered by a signed checkpoint.",
                _ => "The audit log has been tampered with.",
            });
            return exit;
        });
        return command;
    }

    private static Command CreateExport()
    {
        var dataDir = DataDirectoryOption();
        var database = DatabaseOption();
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant's entries (others appear as hash-only lines so the chain still verifies)." };
        var from = new Option<string?>("--from") { Description = "Start time, ISO 8601 (default: the beginning)." };
        var to = new Option<string?>("--to") { Description = "End time, ISO 8601 (default: now)." };
        var output = new Option<FileInfo?>("--output", "-o") { Description = "The JSONL file to write (default: standard output); a file that exists is refused unless --force." };
        var force = new Option<bool>("--force") { Description = "Replace the --output file if it exists." };
        var command = new Command("export", "Write JSONL that an auditor can verify offline with the operator's public key.") { dataDir, database, tenant, from, to, output, force };
        command.SetAction(async (result, ct) =>
        {
            var directory = result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory;
            var db = OpenDatabase(result.GetValue(database), directory, "export");
            if (db is null || !TryTime(result.GetValue(from), "--from", DateTimeOffset.UnixEpoch, out var start) || !TryTime(result.GetValue(to), "--to", DateTimeOffset.UtcNow, out var end))
            {
                return 2;
            }

            // Before the file is created: the export's own check said it in milliseconds, naming a .NET parameter.
            if (start > end)
            {
                throw new Output.CliException(string.Create(CultureInfo.InvariantCulture,
                    $"--from ({Output.CliTime.Format(start)}) is after --to ({Output.CliTime.Format(end)}); nothing was written."), Output.ExitCodes.Usage);
            }

            var keyFile = Path.Combine(directory, ControlPlaneServices.OperatorKeyFile);
            if (!File.Exists(keyFile))
            {
                await Console.Error.WriteLineAsync($"sovereign audit export: the operator key {keyFile} was not found.");
                return 2;
            }

            if (result.GetValue(output) is { } target)
            {
                // Before the log is read. An existing file (an export already handed to an auditor) was replaced
                // without a word.
                Output.OutputFile.Check(target, result.GetValue(force), "export.jsonl");
            }

            // A misspelt or blank tenant wrote an export of nothing but other tenants' hashes, and said so with exit 0:
            // an auditor would be handed an empty export as if the tenant had done nothing.
            if (result.GetValue(tenant) is { } tenantId)
            {
                if (!ResourceIds.IsValid(tenantId, ResourceKind.Tenant))
                {
                    throw new Output.CliException($"--tenant '{tenantId}' is not a tenant id (lowercase letters, digits and '-').", Output.ExitCodes.Usage);
                }

                var holdsTenants = await HoldsTenantsAsync(db, ct);
                if (!await TenantKnownAsync(db, tenantId, holdsTenants, ct))
                {
                    throw new Output.CliException(holdsTenants
                        ? $"no tenant '{tenantId}' in this database ('sovereign tenants list' shows them); nothing was written."
                        // An audit log alone (no control plane's tables: a copy of the log's tables, a member's own
                        // database): the tenant is known by its entries. It was exit 70, "no such table: tenants".
                        : $"no entry of tenant '{tenantId}' in this database's audit log (it holds the audit log only, no tenants, so the tenant is looked for in its entries); nothing was written.");
                }
            }

            using var key = OperatorSigningKey.LoadOrCreate(keyFile);
            if (await JoinedOperatorKeyAsync(directory, ct) is { } operatorKey && !SamePem(operatorKey, key.PublicKeyPem))
            {
                // Signed with a joined node's own key, the export failed its auditor's verify-export as forged (exit 3).
                throw new Output.CliException(
                    $"{directory} is the data directory of a node that joined with a token: its {ControlPlaneServices.OperatorKeyFile} is its own, and an export signed with it would not verify with the operator's public key. Run the export on a gateway, with --data-dir holding the operator key; nothing was written.",
                    Output.ExitCodes.Usage);
            }

            var file = result.GetValue(output);
            // Never sign an export over a chain that lost the head the server last signed (a rewritten tail).
            var witness = AuditWitness.Read(Path.Combine(directory, AuditWitness.FileName));
            if (file is null)
            {
                await using var stdout = Console.OpenStandardOutput();
                await WriteExportAsync(stdout, db, key, result.GetValue(tenant), start, end, witness, "standard output", ct);
                return 0;
            }

            // Complete or not at all: a refused export (a rewritten log, exit 3) or one that failed half way left an
            // empty or partial file under the name an auditor was to be given.
            string[] report = [];
            await Output.OutputFile.WriteAsync(file.FullName, result.GetValue(force),
                async stream => report = await WriteExportAsync(stream, db, key, result.GetValue(tenant), start, end, witness, file.FullName, ct));
            foreach (var line in report)
            {
                Console.WriteLine(line);
            }

            return 0;
        });
        return command;
    }

    /// <summary>Writes the export to <paramref name="stream"/>; returns what to tell the operator once it is in <paramref name="name"/>.</summary>
    private static async Task<string[]> WriteExportAsync(Stream stream, SqlDatabase db, OperatorSigningKey key, string? tenant, DateTimeOffset start, DateTimeOffset end,
        AuditWitnessHead? witness, string name, CancellationToken ct)
    {
        if (await AuditClusterExport.HasMemberChainsAsync(db, ct))
        {
            // Members' own chains (Sovereign:Audit:MemberChains): one file holds every chain, version 3.
            var cluster = await AuditClusterExport.WriteAsync(db, key, tenant, start, end, stream, witness, ct);
            return
            [
                $"Wrote {cluster.Entries + cluster.Redacted} entries ({cluster.Entries} in full, {cluster.Redacted} of other tenants as hashes only) of {cluster.Chains.Count} chains to {name}.",
                .. cluster.Chains.Select(chain => chain.FirstSequence is { } first
                    ? string.Create(CultureInfo.InvariantCulture, $"  {AuditChainScope.Of(chain.Chain).Label}: entries {first}..{chain.LastSequence}, {chain.Uncovered} not covered by a signed checkpoint when exported")
                    : $"  {AuditChainScope.Of(chain.Chain).Label}: no entries in the period"),
            ];
        }

        var summary = await AuditExport.WriteAsync(db, key, tenant, start, end, stream, witness, ct);
        // Every entry of the file, as verify-export counts them: "Wrote 6 entries (6 of other tenants ...)" was a file of 12.
        return [$"Wrote {summary.Entries + summary.Redacted} entries ({summary.Entries} in full, {summary.Redacted} of other tenants as hashes only) to {name}."];
    }

    private static Command CreateArchive()
    {
        var dataDir = DataDirectoryOption();
        var database = DatabaseOption();
        var before = new Option<string>("--before") { Description = "Archive the entries written before this time, ISO 8601 (e.g. 2026-01-01).", Required = true };
        var output = new Option<FileInfo>("--output", "-o") { Description = "The archive file to write (JSONL, as 'audit export'); it must not exist yet.", Required = true };
        var command = new Command("archive",
            "Move the entries written before --before to an archive file and out of the database: the file (every tenant's entries, " +
            "verifiable offline with the public key) is written and verified first; only then are the entries removed, under a signed " +
            "archive record so 'audit verify' still accepts the log. Keep the file: it is the only copy of those entries.")
        {
            dataDir, database, before, output,
        };
        command.SetAction(async (result, ct) =>
        {
            var directory = result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory;
            var db = OpenDatabase(result.GetValue(database), directory, "archive");
            if (db is null || !TryTime(result.GetValue(before), "--before", DateTimeOffset.UtcNow, out var end, "archive"))
            {
                return 2;
            }

            if (end > DateTimeOffset.UtcNow)
            {
                await Console.Error.WriteLineAsync($"sovereign audit archive: --before {end:u} is in the future; archive only entries already written.");
                return 2;
            }

            var file = result.GetValue(output)!;
            if (Directory.Exists(file.FullName))
            {
                // It was "The file ... already exists." with exit 1, as if an earlier archive were there.
                await Console.Error.WriteLineAsync($"sovereign audit archive: --output {file.FullName} is a folder; give the file to write, e.g. {Path.Combine(file.FullName, "archive.jsonl")}.");
                return 2;
            }

            if (file.Exists)
            {
                // Never overwrite: the file may be an earlier archive, the only copy of entries no longer in the database.
                await Console.Error.WriteLineAsync($"sovereign audit archive: {file.FullName} already exists; choose a new file.");
                return 2;
            }

            if (file.Directory is { Exists: false } folder)
            {
                // Checked before anything is read or locked (it failed later with the runtime's "Could not find a part of the path").
                await Console.Error.WriteLineAsync($"sovereign audit archive: the folder {folder.FullName} does not exist; create it or choose another --output.");
                return 2;
            }

            var keyFile = Path.Combine(directory, ControlPlaneServices.OperatorKeyFile);
            if (!File.Exists(keyFile))
            {
                await Console.Error.WriteLineAsync($"sovereign audit archive: the operator key {keyFile} was not found.");
                return 2;
            }

            // The same path as the server's scheduled retention (Sovereign:Audit:Archive), under the same database-wide lock.
            using var key = OperatorSigningKey.LoadOrCreate(keyFile);
            if (await JoinedOperatorKeyAsync(directory, ct) is { } operatorKey && !SamePem(operatorKey, key.PublicKeyPem))
            {
                // A node that joined with a token signs nothing the cluster trusts: the archive's own check of the log
                // with its key failed, and said the cluster's log was tampered (exit 3).
                await Console.Error.WriteLineAsync(
                    $"sovereign audit archive: {directory} is the data directory of a node that joined with a token: its {ControlPlaneServices.OperatorKeyFile} is its own and signs nothing (nodes never sign the audit log). Run the archive on a gateway, with --data-dir holding the operator key; nothing was done.");
                return 2;
            }

            // The last head a server signed with this key (its witness beside the key): an archive signs too, so a log
            // rewritten since is refused (exit 3) before anything is written or removed.
            var witness = AuditWitness.Read(Path.Combine(directory, AuditWitness.FileName));
            var outcome = await AuditArchive.ArchiveToFileAsync(db, key, end, file.FullName, witness, cancellationToken: ct);
            switch (outcome.Status)
            {
                case AuditArchiveFileStatus.Busy:
                    await Console.Error.WriteLineAsync("sovereign audit archive: another archive of this database is running (a gateway's scheduled retention, or this command elsewhere); nothing was done. Try again when it has finished.");
                    return Output.ExitCodes.Failed;
                case AuditArchiveFileStatus.NothingToArchive:
                    Console.WriteLine($"No audit entries were written before {end:u} that can leave the database (the newest entry always stays): nothing to archive.");
                    return 0;
                case AuditArchiveFileStatus.NotVerified:
                    await Console.Error.WriteLineAsync($"sovereign audit archive: {file.FullName} does not verify ({outcome.Problems.FirstOrDefault()}); nothing was removed.");
                    return Output.ExitCodes.IntegrityFailure;
            }

            var summary = outcome.Summary!;
            var last = summary.LastSequence;
            var removal = outcome.Removal!;
            var digest = outcome.Sha256;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Wrote entries {summary.FirstSequence}..{last} ({summary.Entries}) to {file.FullName} (SHA-256 {digest}); it verifies with the operator's public key."));
            Console.WriteLine(removal.Record is { } record
                ? string.Create(CultureInfo.InvariantCulture, $"Removed {removal.Removed} entries ({removal.FirstRemoved}..{record.Sequence}) from the database under a signed archive record; the log now starts at {record.Sequence + 1}.")
                : "Removed nothing from the database: the newest entry always stays.");
            Console.WriteLine("Keep the file (and its SHA-256): it is the only copy of the archived entries.");
            return 0;
        });
        return command;
    }

    private static Command CreateVerifyExport()
    {
        var file = new Argument<FileInfo>("file") { Description = "The JSONL export." };
        var publicKey = new Option<FileInfo>("--public-key") { Description = "The operator's public key PEM.", Required = true };
        var previous = new Option<FileInfo?>("--previous")
        {
            Description = "The archive file before this one: this file must continue it (start at the entry after its last and link to its hash, or start again with its last entry; an export of several chains: each chain), and it must verify too.",
        };
        var earlierOption = new Option<FileInfo?>("--earlier")
        {
            Description = "An export of the same log you received before (any range): every sequence at which both files state a hash must agree, an entry it shows in full must not be hidden here, and its entries must not be gone. The operator holds the signing key, so this is what shows a history rewritten and signed again.",
        };
        var responsesOption = new Option<FileInfo?>("--responses")
        {
            Description = "Responses the client kept, one JSON object a line ({\"status\":200,\"request_id\":..,\"audit_id\":..,\"jurisdiction\":..,\"node\":..,\"id\":..,\"audit_entry\":..}, as tools/audit-verify.mjs --responses reads them): each must have its request's entries (by audit_id, or by the body's id alone), a 200 an allowed decision and an outcome that ran, a 403 a refused decision, and the jurisdiction, node, x-sovereign-audit-entry and body id its entries state.",
        };
        var command = new Command("verify-export", "Verify an export offline, with the operator's public key alone.") { file, publicKey, previous, earlierOption, responsesOption };
        command.SetAction(async (result, ct) =>
        {
            var input = result.GetValue(file)!;
            if (Directory.Exists(input.FullName))
            {
                await Console.Error.WriteLineAsync($"sovereign audit verify-export: {input.FullName} is a folder; give the export file.");
                return 2;
            }

            if (!input.Exists)
            {
                await Console.Error.WriteLineAsync($"sovereign audit verify-export: {input.FullName} does not exist.");
                return 2;
            }

            if (result.GetValue(previous) is { Exists: false } missing)
            {
                await Console.Error.WriteLineAsync($"sovereign audit verify-export: --previous {missing.FullName} does not exist.");
                return 2;
            }

            if (result.GetValue(earlierOption) is { Exists: false } missingEarlier)
            {
                await Console.Error.WriteLineAsync($"sovereign audit verify-export: --earlier {missingEarlier.FullName} does not exist.");
                return 2;
            }

            if (result.GetValue(responsesOption) is { Exists: false } missingResponses)
            {
                await Console.Error.WriteLineAsync($"sovereign audit verify-export: --responses {missingResponses.FullName} does not exist.");
                return 2;
            }

            await using var stream = input.OpenRead();
            var pem = await ReadPublicKeyAsync(result.GetValue(publicKey)!, ct);
            AuditVerificationResult outcome;
            if (result.GetValue(previous) is { } earlier)
            {
                await using var before = earlier.OpenRead();
                outcome = await AuditExport.VerifyExportAsync(stream, pem, before, ct);
            }
            else
            {
                outcome = await AuditExport.VerifyExportAsync(stream, pem, ct);
            }

            string? compared = null;
            if (result.GetValue(earlierOption) is { } older)
            {
                // The earlier file is the operator's signed word from before: it must verify, and this one agree with it.
                await using var olderStream = older.OpenRead();
                var olderCheck = await AuditExport.VerifyExportAsync(olderStream, pem, ct);
                olderStream.Position = 0;
                stream.Position = 0;
                IReadOnlyList<AuditProblem> contradictions = await AuditExportComparison.CompareAsync(stream, olderStream, ct);
                if (!olderCheck.Valid)
                {
                    contradictions = [new AuditProblem(null, AuditProblemKind.Malformed, $"The earlier export does not verify (first problem: {olderCheck.Problems.FirstOrDefault()})."), .. contradictions];
                }

                if (contradictions.Count > 0)
                {
                    outcome = outcome with { Valid = false, Verdict = AuditVerdict.Tampered, Problems = [.. outcome.Problems, .. contradictions] };
                }
                else
                {
                    compared = $"It agrees with the earlier export {older.Name} wherever both state a hash, hides none of its entries and has lost none.";
                }
            }

            string? responsesLine = null;
            if (result.GetValue(responsesOption) is { } kept)
            {
                // The responses the client kept against the entries (tools/audit-verify.mjs --responses, rule for rule).
                AuditResponseCheck.Result check;
                try
                {
                    stream.Position = 0;
                    await using var keptStream = kept.OpenRead();
                    check = await AuditResponseCheck.CheckAsync(stream, keptStream, ct);
                }
                catch (FormatException bad)
                {
                    await Console.Error.WriteLineAsync($"sovereign audit verify-export: --responses {kept.FullName}: {Residency.DisplayText.Escaped(bad.Message)}");
                    return 2;
                }

                responsesLine = $"Checked {check.ResponsesChecked} kept responses: {(check.Problems.Count == 0 ? "each agrees with its entries." : $"{check.Problems.Count} disagree with the export.")}";
                if (check.Problems.Count > 0)
                {
                    outcome = outcome with { Valid = false, Verdict = AuditVerdict.Tampered, Problems = [.. outcome.Problems, .. check.Problems] };
                }
            }

            Console.WriteLine($"Checked {outcome.EntriesChecked} entries.");
            if (responsesLine is not null)
            {
                Console.WriteLine(responsesLine);
            }

            stream.Position = 0;
            if (await ScopeLineAsync(stream, ct) is { } scope)
            {
                Console.WriteLine(scope);
            }

            if (compared is not null)
            {
                Console.WriteLine(compared);
            }

            foreach (var problem in outcome.Problems)
            {
                Console.WriteLine($"  {problem}");
            }

            foreach (var line in SignedByLines(outcome))
            {
                Console.WriteLine(line);
            }

            foreach (var line in ChainLines(outcome))
            {
                Console.WriteLine(line);
            }

            if (DecisionsLine(outcome.Decisions, export: true) is { } decisions)
            {
                Console.WriteLine(decisions);
            }

            if (!outcome.Valid)
            {
                Console.WriteLine("The export does not verify.");
                return Output.ExitCodes.IntegrityFailure;
            }

            // An export of several chains (version 3) also says what the log's own checkpoints covered when it was made.
            if (outcome.Verdict == AuditVerdict.Uncovered)
            {
                Console.WriteLine(Residency.DisplayText.Escaped(outcome.VerdictReason)); // it names chains as the log or file has them
                Console.WriteLine("The export is intact and signed by the operator, but entries in it were NOT covered by a signed checkpoint of the log when it was made.");
                return Output.ExitCodes.Uncovered;
            }

            Console.WriteLine("The export is intact and signed by the operator.");
            return 0;
        });
        return command;
    }

    /// <summary>
    /// What the file holds, from its header: whose entries, written in which time range, which sequences, and when it was
    /// made. An export verifies whatever range it was asked for, so an auditor handed an old or narrow one learns it here
    /// (before session 52 the CLI printed only the count, and a file made before the period audited read as intact).
    /// </summary>
    internal static async Task<string?> ScopeLineAsync(Stream stream, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(stream, leaveOpen: true);
        try
        {
            if (await reader.ReadLineAsync(cancellationToken) is not { } line)
            {
                return null;
            }

            using var document = System.Text.Json.JsonDocument.Parse(line);
            var root = document.RootElement;
            static string Time(System.Text.Json.JsonElement value) =>
                value.TryGetInt64(out var ms) && ms is >= 0 and <= 253402300799999
                    ? DateTimeOffset.FromUnixTimeMilliseconds(ms).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture)
                    : "?";
            var whose = root.TryGetProperty("tenant", out var tenant) && tenant.ValueKind == System.Text.Json.JsonValueKind.String
                ? $"tenant {Residency.DisplayText.Shortened(tenant.GetString()!, 256)}'s entries in full (other tenants' as hashes only)"
                : "every tenant's entries";
            var sequences = root.TryGetProperty("firstSequence", out var first) && first.ValueKind == System.Text.Json.JsonValueKind.Number
                && root.TryGetProperty("lastSequence", out var last) && last.ValueKind == System.Text.Json.JsonValueKind.Number
                ? string.Create(CultureInfo.InvariantCulture, $", sequences {first.GetInt64()}..{last.GetInt64()}")
                : root.TryGetProperty("chains", out _) ? ", every chain of the log (below)" : ", no entry";
            // An export made without --from starts at 0 (the Unix epoch): say "the log's start", not 1970.
            var from = root.GetProperty("from");
            var since = from.TryGetInt64(out var fromMs) && fromMs == 0 ? "since the log's start" : $"written from {Time(from)}";
            return $"The file holds {whose} {since} up to (not including) {Time(root.GetProperty("to"))}{sequences}; "
                + $"made {Time(root.GetProperty("createdAt"))}: a request answered after that, or outside that range, is not in it.";
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            return null; // the verification above already says what is wrong with the header
        }
    }

    /// <summary>One line per chain of a log or export with member chains (none for a single chain): its range, coverage and verdict.</summary>
    internal static IEnumerable<string> ChainLines(AuditVerificationResult outcome)
    {
        if (outcome.Chains.Count == 0)
        {
            yield break;
        }

        yield return string.Create(CultureInfo.InvariantCulture,
            $"  the shared chain: {outcome.EntriesChecked - outcome.Chains.Sum(c => c.EntriesChecked)} entries checked, last {outcome.LastSequence}, covered through {outcome.CoveredThrough}, uncovered {outcome.Uncovered}.");
        foreach (var chain in outcome.Chains)
        {
            yield return string.Create(CultureInfo.InvariantCulture,
                $"  chain {Residency.DisplayText.Shortened(chain.Chain, 256)}: {chain.EntriesChecked} entries checked, last {chain.LastSequence}, covered through {chain.CoveredThrough}, uncovered {chain.Uncovered}; {chain.Verdict.ToString().ToLowerInvariant()}.");
        }
    }

    /// <summary>
    /// How the allowed requests ended, for the auditor: a request closed as interrupted (its process was killed; tokens
    /// unknown, nothing billed) is told apart from one still open (running, or left by a process not closed yet).
    /// </summary>
    internal static string? DecisionsLine(AuditDecisionOutcomes? decisions, bool export = false)
    {
        if (decisions is not { Allowed: > 0 } d)
        {
            return null;
        }

        // An export or archive file ends where it was cut: a decision near its end whose outcome was written after it
        // is no request "still running", which is what an auditor was told of an archive's last requests.
        var open = export
            ? "open (no outcome in this file: written after the file's last entry, in the next archive or the log, or none yet when the file was made)"
            : d.ServerRunning switch
            {
                true => "open, running (no outcome yet; a server holds this database now: in a cluster, also a stopped member's not closed yet, which the gateways close after Sovereign:Cluster:InterruptedGraceSeconds)",
                false => "open, interrupted and not closed yet (no server holds this database: their process stopped before their outcome; the server's next start closes them)",
                _ => "open (no outcome yet: still running, or their process stopped and is not closed yet)",
            };
        var line = string.Create(CultureInfo.InvariantCulture,
            $"Allowed requests: {d.Allowed} (a relayed one counts at its gateway and at its node); completed: {d.Completed}; closed as interrupted (their process stopped first: tokens unknown, nothing billed): {d.Interrupted}; {open}: {d.Open}");
        return d.OpenSequences.Count == 0
            ? line + "."
            : line + string.Create(CultureInfo.InvariantCulture, $", decision entries {string.Join(", ", d.OpenSequences)}{(d.Open > d.OpenSequences.Count ? ", ..." : "")}.");
    }

    private static Command CreatePublicKey()
    {
        var dataDir = DataDirectoryOption();
        var command = new Command("public-key", "Print the operator's public key (PEM) to give to auditors; after a rotation, every key of its history, oldest first, with their marks.") { dataDir };
        command.SetAction(async (result, ct) =>
        {
            // PEM ends with a newline, so `> operator.pem` writes a well-formed file and a terminal prompt starts on its own line.
            Console.WriteLine((await PublicKeyAsync(null, result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory, ct)).TrimEnd('\n'));
            return 0;
        });
        return command;
    }

    internal static async Task<string> PublicKeyAsync(FileInfo? file, string dataDirectory, CancellationToken cancellationToken)
    {
        if (file is not null)
        {
            return await ReadPublicKeyAsync(file, cancellationToken);
        }

        // A node that joined with a token: the operator's public key came with its join. Its operator-key.pem is one
        // of its own that signs nothing, so verify called the cluster's log tampered and public-key printed that key.
        var joined = Path.Combine(dataDirectory, JoinResponse.FileName);
        if (File.Exists(joined)
            && System.Text.Json.JsonSerializer.Deserialize<JoinResponse>(await File.ReadAllTextAsync(joined, cancellationToken)) is { OperatorPublicKey: { Length: > 0 } } response)
        {
            return response.OperatorKeys.ToText();
        }

        // Never create a key here: a new key would sign nothing the server wrote. Every key of its history: a log
        // signed before a rotation verifies with the keys that signed it.
        var keyFile = Path.Combine(dataDirectory, ControlPlaneServices.OperatorKeyFile);
        if (!File.Exists(keyFile))
        {
            throw new Output.CliException($"the operator key {keyFile} was not found; pass --data-dir (the server's data directory).", Output.ExitCodes.Usage);
        }

        return OperatorKeyCommand.ReadHistory(keyFile).ToText();
    }

    /// <summary>One line per operator key that signed what was verified: its state and what it signed.</summary>
    internal static IEnumerable<string> SignedByLines(AuditVerificationResult outcome) =>
        outcome.SignedBy.Select(use => string.Create(CultureInfo.InvariantCulture,
            $"Signed by key {use.KeyId} ({use.Status}): {use.Signatures} checkpoint(s), sequences {use.FirstSequence}..{use.LastSequence}, {Output.CliTime.FromUnixMilliseconds(use.FirstTimestamp)} to {Output.CliTime.FromUnixMilliseconds(use.LastTimestamp)}."));

    /// <summary>The operator's public key a node that joined with a token received (its <see cref="JoinResponse.FileName"/>); null elsewhere.</summary>
    private static async Task<string?> JoinedOperatorKeyAsync(string dataDirectory, CancellationToken cancellationToken)
    {
        var joined = Path.Combine(dataDirectory, JoinResponse.FileName);
        return File.Exists(joined)
            && System.Text.Json.JsonSerializer.Deserialize<JoinResponse>(await File.ReadAllTextAsync(joined, cancellationToken)) is { OperatorPublicKey: { Length: > 0 } operatorPublicKey }
            ? operatorPublicKey
            : null;
    }

    private static bool SamePem(string a, string b) =>
        string.Equals(string.Concat(a.Where(c => !char.IsWhiteSpace(c))), string.Concat(b.Where(c => !char.IsWhiteSpace(c))), StringComparison.Ordinal);

    /// <summary>
    /// The PEM a <c>--public-key</c> names, checked to be an ECDSA P-256 key: a missing file was exit 1 with the
    /// runtime's "Could not find file", and a file that holds no key exit 2 with "No supported key formats were found ...
    /// (Parameter 'input')", neither naming the flag.
    /// </summary>
    private static async Task<string> ReadPublicKeyAsync(FileInfo file, CancellationToken cancellationToken)
    {
        if (Directory.Exists(file.FullName))
        {
            throw new Output.CliException($"--public-key {file.FullName} is a folder; give the PEM file 'sovereign audit public-key' wrote.", Output.ExitCodes.Usage);
        }

        if (!file.Exists)
        {
            throw new Output.CliException($"--public-key {file.FullName} does not exist.", Output.ExitCodes.Usage);
        }

        var pem = await File.ReadAllTextAsync(file.FullName, cancellationToken);
        if (pem.Split("-----BEGIN").Length > 2 || pem.Contains("# key ", StringComparison.Ordinal))
        {
            // The operator's key history ('sovereign audit public-key' after a rotation): every key, with its marks.
            try
            {
                return OperatorKeyHistory.Parse(pem).ToText();
            }
            catch (FormatException ex)
            {
                throw new Output.CliException($"--public-key {file.FullName} is not an operator key history: {ex.Message}.", Output.ExitCodes.Usage);
            }
        }

        using var key = System.Security.Cryptography.ECDsa.Create();
        try
        {
            key.ImportFromPem(pem);
        }
        catch (Exception ex) when (ex is ArgumentException or System.Security.Cryptography.CryptographicException)
        {
            throw new Output.CliException(
                $"--public-key {file.FullName} holds no PEM public key ('-----BEGIN PUBLIC KEY-----'): give the file 'sovereign audit public-key' wrote.", Output.ExitCodes.Usage);
        }

        return key.KeySize == 256
            ? pem
            : throw new Output.CliException($"--public-key {file.FullName} is not an ECDSA P-256 key, as the operator's key is.", Output.ExitCodes.Usage);
    }

    /// <summary>
    /// Whether <paramref name="tenant"/> is one this database knows: a tenant of its control plane, or, in a database
    /// holding the audit log only (no <c>tenants</c> table), a tenant some entry of its log names.
    /// </summary>
    private static async Task<bool> TenantKnownAsync(SqlDatabase database, string tenant, bool holdsTenants, CancellationToken cancellationToken)
    {
        if (holdsTenants)
        {
            return await new Residency.ControlPlane.ControlPlaneStore(database).GetTenantAsync(tenant, cancellationToken) is not null;
        }

        await using var connection = await database.OpenAsync(cancellationToken);
        foreach (var table in new[] { "audit_entries", "audit_chain_entries" })
        {
            if (!await SqlDatabase.TableExistsAsync(connection, table, cancellationToken: cancellationToken))
            {
                continue;
            }

            await using var command = connection.CreateCommand();
            command.CommandText = $"SELECT 1 FROM {table} WHERE tenant = @tenant LIMIT 1";
            SqlDatabase.AddParameter(command, "@tenant", tenant);
            if (await command.ExecuteScalarAsync(cancellationToken) is not null)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether the database holds the control plane's tenants (asked, not tried: a failed statement ends a PostgreSQL snapshot).</summary>
    private static async Task<bool> HoldsTenantsAsync(SqlDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await SqlDatabase.TableExistsAsync(connection, "tenants", cancellationToken: cancellationToken);
    }

    /// <remarks>Its lines name the command (<paramref name="verb"/>), as every other error line does; they said "sovereign audit:".</remarks>
    private static SqlDatabase? OpenDatabase(string? database, string dataDirectory, string verb)
    {
        if (database is not null && database.StartsWith("postgres:", StringComparison.Ordinal))
        {
            return SqlDatabase.PostgreSql(database["postgres:".Length..]);
        }

        // On a cluster member the server's environment (a systemd EnvironmentFile, a container's env) names the shared
        // PostgreSQL database: the same variables let one command verify the whole cluster's chain.
        if (database is null && string.Equals(Environment.GetEnvironmentVariable("Sovereign__Database__Provider"), "PostgreSql", StringComparison.OrdinalIgnoreCase))
        {
            var connectionString = Environment.GetEnvironmentVariable("Sovereign__Database__ConnectionString");
            if (string.IsNullOrWhiteSpace(connectionString))
            {
                Console.Error.WriteLine($"sovereign audit {verb}: Sovereign__Database__Provider is PostgreSql but Sovereign__Database__ConnectionString is not set.");
                return null;
            }

            return SqlDatabase.PostgreSql(connectionString);
        }

        var path = database ?? Path.Combine(dataDirectory, ControlPlaneServices.DatabaseFile);
        if (!File.Exists(path))
        {
            Console.Error.WriteLine($"sovereign audit {verb}: the database {path} does not exist.");
            return null;
        }

        // The default file of a data directory whose state moved to PostgreSQL: its log ends at the copy, so verify called
        // it tampered (the witness had moved on). Named explicitly with --database, it is read as asked.
        if (database is null && DatabaseMoved.Read(path) is { } moved)
        {
            Console.Error.WriteLine($"sovereign audit {verb}: " + moved.Explain(Path.GetFullPath(path),
                "Name the PostgreSQL database with --database \"postgres:...\" (or Sovereign__Database__Provider and __ConnectionString); to read the old file itself, --database " + path + (verb == "verify" ? " --no-witness." : ".")));
            return null;
        }

        return SqlDatabase.Sqlite(path);
    }

    /// <summary>
    /// <c>sovereign audit find ID</c>: the entries of the request a response's body id or a request id names
    /// (<see cref="AuditRequestLookup"/>), each re-hashed here; what an auditor handed a client's response asks first.
    /// </summary>
    private static Command CreateFind()
    {
        var dataDir = DataDirectoryOption();
        var database = DatabaseOption();
        var id = new Argument<string>("id")
        {
            Description = "The response's body id (chatcmpl-..., cmpl-..., resp_..., or the engine's) or its x-sovereign-audit-id / x-request-id (req_...).",
        };
        var from = new Option<string?>("--from")
        {
            Description = "Search for a response id from this time on, ISO 8601 (the response's 'created', less a margin), and list every request that carried it since; default: the log newest first, stopping at the first window (a day, then two, four, ...) that holds it.",
        };
        var json = new Option<bool>("--json") { Description = "Print the entries as GET /admin/v1/audit?id= lists them (data), for scripts." };
        var command = new Command("find",
            "Find the audit entries of one request from its response's id or its audit id: where it was decided and ran (node, jurisdiction), its outcome. " +
            "Exit 0 found, 1 none found, 3 an entry found does not re-hash.")
        {
            id, dataDir, database, from, json,
        };
        command.SetAction(async (result, ct) =>
        {
            var wanted = result.GetValue(id)!;
            if (!AuditRequestLookup.IsValidId(wanted))
            {
                Console.Error.WriteLine($"sovereign audit find: '{Residency.DisplayText.Escaped(wanted)}' is not a response or request id: 1 to 128 ASCII letters, digits, '-', '_', '.' or ':'.");
                return 2;
            }

            if (!TryTime(result.GetValue(from), "--from", DateTimeOffset.UnixEpoch, out var since, "find"))
            {
                return 2;
            }

            var directory = result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory;
            var db = OpenDatabase(result.GetValue(database), directory, "find");
            if (db is null)
            {
                return 2;
            }

            var entries = await AuditRequestLookup.FindAsync(db, wanted, since == DateTimeOffset.UnixEpoch ? null : since, cancellationToken: ct);
            if (result.GetValue(json))
            {
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new { data = entries.Select(AdminApi.AuditJson) }, Gateway.OpenAI.OpenAIJson.Options));
                return entries.Count > 0 ? Output.ExitCodes.Success : Output.ExitCodes.Failed;
            }

            if (entries.Count == 0)
            {
                Console.WriteLine($"No audit entry names '{wanted}' (as a response's id, a request's id or a relayed request's).");
                return Output.ExitCodes.Failed;
            }

            foreach (var e in entries)
            {
                // Each entry re-hashed: what it says is what the chain holds (run 'audit verify' for the chain around it).
                var intact = AuditCanonical.EntryHash(e) == e.Hash;
                var where = e.Chain is { } chain ? $"{chain}:{e.Sequence}" : e.Sequence.ToString(CultureInfo.InvariantCulture);
                var fields = new List<string>
                {
                    $"{where}  {Output.CliTime.FromUnixMilliseconds(e.Timestamp)}  {e.Action}",
                    $"tenant {e.Tenant ?? "-"}", $"model {e.Model ?? "-"}", $"gateway {e.Gateway ?? "-"}", $"node {e.Node ?? "-"}", $"jurisdiction {e.Jurisdiction ?? "-"}",
                };
                if (e.Decision is not null)
                {
                    fields.Add($"decision {e.Decision.Value.ToString().ToLowerInvariant()}{(e.DecisionCode is { } code ? $" ({code})" : "")}");
                }

                foreach (var detail in (string[])["request_id", "response_id", AuditRequestLookup.RelayOfDetail, "outcome", "refusal_code", "cost", "currency"])
                {
                    if (e.Details.TryGetValue(detail, out var value))
                    {
                        fields.Add($"{detail} {value}");
                    }
                }

                if (e.PromptTokens is not null || e.CompletionTokens is not null)
                {
                    fields.Add(string.Create(CultureInfo.InvariantCulture, $"tokens {e.PromptTokens}+{e.CompletionTokens}"));
                }

                fields.Add($"hash {e.Hash} ({(intact ? "re-hashes" : "DOES NOT RE-HASH: modified")})");
                Console.WriteLine(Residency.DisplayText.Escaped(string.Join(", ", fields)));
            }

            Console.WriteLine("Each entry re-hashed on its own; 'sovereign audit verify' checks the chain they are in, and an export of their time verifies offline.");
            return entries.Any(e => AuditCanonical.EntryHash(e) != e.Hash) ? Output.ExitCodes.IntegrityFailure : Output.ExitCodes.Success;
        });
        return command;
    }

    private static bool TryTime(string? value, string option, DateTimeOffset fallback, out DateTimeOffset time, string verb = "export")
    {
        time = fallback;
        if (value is null)
        {
            return true;
        }

        if (Sovereign.Gateway.ControlPlane.IsoTime.TryParse(value, out time))
        {
            return true;
        }

        Console.Error.WriteLine($"sovereign audit {verb}: {option} '{value}' is not a time: give {Sovereign.Gateway.ControlPlane.IsoTime.Expected}.");
        return false;
    }
}

