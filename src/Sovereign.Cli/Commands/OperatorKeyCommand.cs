using System.CommandLine;
using System.Globalization;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Residency.Audit;

namespace Sovereign.Cli.Commands;

/// <summary>
/// <c>sovereign operator-key</c>: the operator's signing key (<c>operator-key.pem</c>, which signs audit checkpoints and
/// node credentials) and its history: <c>rotate</c>, <c>compromised</c>, <c>list</c>. Files only, in the data
/// directory; a running server takes the new key at its next start (no other change is needed: the old key stays
/// trusted for what it signed). Not <c>admin-keys</c> (once <c>operator-keys</c>), which are the admin API's credentials.
/// </summary>
internal static class OperatorKeyCommand
{
    public static Command Create()
    {
        var command = new Command("operator-key",
            "The operator's signing key (operator-key.pem: signs audit checkpoints and node credentials) and its history. " +
            "Not 'admin-keys', the admin API's credentials.");
        command.Subcommands.Add(CreateRotate());
        command.Subcommands.Add(CreateCompromised());
        command.Subcommands.Add(CreateList());
        return command;
    }

    private static Option<string?> DataDirectoryOption() => new("--data-dir") { Description = "The data directory holding operator-key.pem (default ~/.sovereign)." };

    private static Command CreateRotate()
    {
        var dataDir = DataDirectoryOption();
        var compromisedFrom = new Option<string?>("--compromised-from")
        {
            Description = "Also mark the key being retired compromised from this time (ISO 8601, or 'now'): what it signed from then on, and every node credential it signed, is refused.",
        };
        var command = new Command("rotate",
            "Make a new signing key: operator-key.pem is replaced, the old public half is kept in operator-key-history.pem (retired: what it signed still verifies). " +
            "Restart the server (each member, one at a time) to sign with the new key.")
        {
            dataDir, compromisedFrom,
        };
        command.SetAction((result, _) =>
        {
            // The time is read before the files are looked for: a mistyped one is named as such, wherever the key is.
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            long? from = result.GetValue(compromisedFrom) is { } text ? ParseTime(text, "--compromised-from", now) : null;
            var directory = result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory;
            var keyFile = KeyFile(directory);
            OperatorKeyRotated rotated;
            try
            {
                rotated = OperatorKeyRotation.Rotate(keyFile, now, from);
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or System.Security.Cryptography.CryptographicException)
            {
                // A bad argument, an unreadable history, a key file that holds no P-256 private key: nothing was changed.
                throw new Output.CliException($"{Sentence(ex)} Nothing was changed.", Output.ExitCodes.Usage);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new Output.CliException($"{ex.Message} Nothing was changed.", Output.ExitCodes.Failed);
            }

            Console.WriteLine($"Retired key {rotated.Retired.KeyId}{(rotated.Retired.CompromisedFrom is { } c ? $", compromised from {OperatorKeyHistory.FormatTime(c)}" : "")}.");
            Console.WriteLine($"New key {rotated.Current.KeyId} in {keyFile}; history in {OperatorKeyRotation.HistoryPath(keyFile)} ({rotated.History.Keys.Count} keys).");
            Console.WriteLine("Next: copy both files to every member that holds the operator key (the history first), restart each in turn, and give auditors 'sovereign audit public-key'.");
            if (rotated.Retired.CompromisedFrom is not null)
            {
                Console.WriteLine("Nodes whose credential the compromised key signed are no longer trusted: join them again (a new join token) or register them again ('nodes add'); members holding the key re-sign their own at restart.");
            }

            return Task.FromResult(0);
        });
        return command;
    }

    private static Command CreateCompromised()
    {
        var dataDir = DataDirectoryOption();
        var keyId = new Argument<string>("key-id") { Description = "The retired key's id ('sovereign operator-key list')." };
        var from = new Option<string>("--from") { Description = "From when it is compromised (ISO 8601, or 'now'): its signatures from then on are refused, and every node credential it signed.", Required = true };
        var command = new Command("compromised", "Mark a retired signing key compromised in operator-key-history.pem (the current key: 'rotate --compromised-from').") { keyId, dataDir, from };
        command.SetAction((result, _) =>
        {
            var directory = result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory;
            var keyFile = KeyFile(directory);
            var at = ParseTime(result.GetValue(from)!, "--from", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            try
            {
                var history = OperatorKeyRotation.MarkCompromised(keyFile, result.GetValue(keyId)!.Trim(), at);
                var key = history.Find(result.GetValue(keyId)!.Trim())!;
                Console.WriteLine($"Key {key.KeyId} is marked compromised from {OperatorKeyHistory.FormatTime(key.CompromisedFrom!.Value)} in {OperatorKeyRotation.HistoryPath(keyFile)}.");
                Console.WriteLine("Next: copy the history to every member that holds the operator key and restart each in turn; join again or register again the nodes whose credential it signed.");
                return Task.FromResult(0);
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or System.Security.Cryptography.CryptographicException)
            {
                // A bad argument, an unreadable history, a key file that holds no P-256 private key: nothing was changed.
                throw new Output.CliException($"{Sentence(ex)} Nothing was changed.", Output.ExitCodes.Usage);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new Output.CliException($"{ex.Message} Nothing was changed.", Output.ExitCodes.Failed);
            }
        });
        return command;
    }

    private static Command CreateList()
    {
        var dataDir = DataDirectoryOption();
        var command = new Command("list", "List the signing keys of the history, oldest first: id, created, retired, compromised from.") { dataDir };
        command.SetAction((result, _) =>
        {
            var directory = result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory;
            var history = ReadHistory(KeyFile(directory));
            Console.WriteLine("KEY ID            STATE        CREATED                   RETIRED                   COMPROMISED FROM");
            foreach (var known in history.Keys)
            {
                var state = known.CompromisedFrom is not null ? "compromised" : ReferenceEquals(known, history.Current) ? "current" : "retired";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{known.KeyId,-17} {state,-12} {Time(known.CreatedAt),-25} {Time(known.RetiredAt),-25} {Time(known.CompromisedFrom)}"));
            }

            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>
    /// The key history of the key at <paramref name="keyFile"/> (the key alone without a history file), read without
    /// refusing a current key marked compromised: reading and verifying need no signature.
    /// </summary>
    internal static OperatorKeyHistory ReadHistory(string keyFile)
    {
        try
        {
            using var key = OperatorSigningKey.FromPem(File.ReadAllText(keyFile));
            return (OperatorKeyHistory.ReadFile(OperatorKeyRotation.HistoryPath(keyFile)) ?? OperatorKeyHistory.Of(key.PublicKeyPem)).WithCurrent(key.PublicKeyPem);
        }
        catch (FormatException ex)
        {
            throw new Output.CliException($"the operator key history cannot be read: {ex.Message}.", Output.ExitCodes.Usage);
        }
        catch (Exception ex) when (ex is ArgumentException or System.Security.Cryptography.CryptographicException)
        {
            throw new Output.CliException($"{keyFile} holds no ECDSA P-256 private key ({ex.Message}).", Output.ExitCodes.Usage);
        }
    }

    /// <summary>An exception's message without the " (Parameter 'x')" an <see cref="ArgumentException"/> appends.</summary>
    private static string Sentence(Exception ex) =>
        ex is ArgumentException { ParamName: { } name } ? ex.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : ex.Message;

    private static string Time(long? at) => at is { } t ? OperatorKeyHistory.FormatTime(t) : "-";

    private static string KeyFile(string directory)
    {
        var keyFile = Path.Combine(directory, ControlPlaneServices.OperatorKeyFile);
        return File.Exists(keyFile)
            ? keyFile
            : throw new Output.CliException($"the operator key {keyFile} was not found; pass --data-dir (the data directory holding it).", Output.ExitCodes.Usage);
    }

    private static long ParseTime(string text, string option, long now)
    {
        if (string.Equals(text.Trim(), "now", StringComparison.OrdinalIgnoreCase))
        {
            return now;
        }

        if (!Sovereign.Gateway.ControlPlane.IsoTime.TryParse(text, out var time))
        {
            throw new Output.CliException($"{option} '{text}' is not a time: give {Sovereign.Gateway.ControlPlane.IsoTime.Expected} (or 'now').", Output.ExitCodes.Usage);
        }

        var at = time.ToUnixTimeMilliseconds();
        return at <= now ? at : throw new Output.CliException($"{option} {OperatorKeyHistory.FormatTime(at)} is in the future; a key is compromised from a time already past.", Output.ExitCodes.Usage);
    }
}
