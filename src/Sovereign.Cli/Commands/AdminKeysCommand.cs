using System.CommandLine;
using Spectre.Console;

namespace Sovereign.Cli.Commands;

/// <summary>
/// <c>sovereign admin-keys</c>: rotate the operator's admin API credential (<c>/admin/v1/operator-keys</c>). Issue a
/// new key while the old one still works, move the CLI, console and scrapers to it, then revoke the old one.
/// </summary>
/// <remarks>
/// It was <c>operator-keys</c>, one letter from <c>operator-key</c> (the audit signing key, a file on disk): an 's'
/// too many or too few ran the other command's tree. The old spelling still runs,
/// hidden from help and suggestions (<see cref="LegacyName"/>).
/// </remarks>
internal static class AdminKeysCommand
{
    /// <summary>The command's name.</summary>
    public const string Name = "admin-keys";

    /// <summary>The name it had, which scripts and older notes use: still accepted, never shown.</summary>
    public const string LegacyName = "operator-keys";

    /// <summary>The command under <see cref="Name"/>, or, hidden, under <see cref="LegacyName"/>.</summary>
    public static Command Create(bool legacy = false)
    {
        var command = new Command(legacy ? LegacyName : Name,
            "Issue, list and revoke admin API keys (the operator's credentials for /admin/v1): rotate them without a restart. Not the audit signing key: that is 'operator-key'.")
        {
            Hidden = legacy,
        };

        var connection = new AdminConnection();
        var name = new Option<string>("--name") { Description = "Who or what uses the key (the audit log names it).", Required = true };
        var expiresIn = new Option<string?>("--expires-in") { Description = "The key stops working after this long: 90m, 12h, 30d (at most 10 years)." };
        var expiresAt = new Option<string?>("--expires-at") { Description = "The key stops working at this time: ISO 8601 (2027-01-01T00:00:00Z) or unix seconds (1798761600)." };
        var create = new Command("create", "Issue an admin API key; its secret is printed once, on the last line.") { name, expiresIn, expiresAt };
        connection.AddTo(create);
        create.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var expiresInSeconds = result.GetValue(expiresIn) is { } duration ? TenantsCommand.DurationSeconds(duration, "--expires-in") : (long?)null;
            var body = new { name = result.GetValue(name), expires_in = expiresInSeconds, expires_at = TenantsCommand.ExpiresAtValue(result.GetValue(expiresAt)) };
            var json = await connection.SendAsync(result, HttpMethod.Post, "/admin/v1/operator-keys", body, ct);
            if (!connection.PrintJson(result, json))
            {
                var key = json.GetProperty("key");
                var expiry = TenantsCommand.Time(key, "expires_at") is { Length: > 0 } until ? $", valid until {until}" : "";
                Console.WriteLine($"Operator key {key.GetProperty("id").GetString()} ({key.GetProperty("name").GetString()}){expiry}. Its secret, shown only now:");
                Console.WriteLine(json.GetProperty("secret").GetString());
            }
        }));

        var listConnection = new AdminConnection();
        var list = new Command("list", "List admin API keys and this server's configured tokens (never their secrets).");
        listConnection.AddTo(list);
        list.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await listConnection.SendAsync(result, HttpMethod.Get, "/admin/v1/operator-keys", null, ct);
            if (!listConnection.PrintJson(result, json))
            {
                var table = new Table().AddColumns("id", "kind", "name", "prefix", "state", "created", "expires", "revoked", "by");
                foreach (var key in json.GetProperty("data").EnumerateArray())
                {
                    var current = key.TryGetProperty("current", out var c) && c.ValueKind == System.Text.Json.JsonValueKind.True ? " (this one)" : "";
                    table.AddRow(TenantsCommand.Text(key, "id") + current, TenantsCommand.Text(key, "kind"), TenantsCommand.Text(key, "name"),
                        TenantsCommand.Text(key, "prefix") is { Length: > 0 } prefix ? prefix + "…" : "",
                        TenantsCommand.Text(key, "state"), TenantsCommand.Time(key, "created_at"), TenantsCommand.Time(key, "expires_at"), TenantsCommand.Time(key, "revoked_at"),
                        TenantsCommand.Text(key, "revoked_by"));
                }

                AnsiConsole.Write(table);
            }
        }));

        var revokeConnection = new AdminConnection();
        var keyId = new Argument<string>("key-id") { Description = "The key id (opk_…), or a configured token: operator, operator:NAME." };
        var revoke = new Command("revoke", "Revoke an admin API key or configured token: every gateway refuses it from the next request on. Use another credential than the one revoked.") { keyId };
        revokeConnection.AddTo(revoke);
        revoke.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await revokeConnection.SendAsync(result, HttpMethod.Delete, $"/admin/v1/operator-keys/{AdminConnection.Segment(result.GetValue(keyId))}", null, ct);
            revokeConnection.Print(result, json, () => Console.WriteLine($"Revoked {result.GetValue(keyId)}."));
        }));

        command.Subcommands.Add(create);
        command.Subcommands.Add(list);
        command.Subcommands.Add(revoke);
        return command;
    }
}
