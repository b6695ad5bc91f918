using System.CommandLine;
using System.Text.Json;
using Sovereign.Cli.Output;
using Spectre.Console;

namespace Sovereign.Cli.Commands;

/// <summary>
/// <c>sovereign cluster status</c>: members, capacity per jurisdiction and each node's health, from any gateway; and the
/// cluster's certificates (<c>sovereign cluster ca init</c>, <c>sovereign cluster cert issue</c>).
/// </summary>
internal static class ClusterCommand
{
    public static Command Create()
    {
        var command = new Command("cluster", "See the whole pool: gateways and nodes, their health and capacity.");
        var connection = new AdminConnection();
        var status = new Command("status", "Members, capacity per jurisdiction and node health, as this gateway sees them.");
        connection.AddTo(status);
        status.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await connection.SendAsync(result, HttpMethod.Get, "/admin/v1/cluster", null, ct);
            if (connection.PrintJson(result, json))
            {
                return;
            }

            var id = json.GetProperty("cluster_id") is { ValueKind: JsonValueKind.String } c ? c.GetString() : "(one machine)";
            AnsiConsole.MarkupLine($"Cluster [bold]{TerminalText.Markup(id ?? "")}[/], seen from {TerminalText.Markup(json.GetProperty("gateway").GetString() ?? "")}");

            if (json.TryGetProperty("membership_error", out var membershipError) && membershipError.ValueKind == JsonValueKind.String)
            {
                AnsiConsole.MarkupLine($"[yellow]warning:[/] {TerminalText.Markup(membershipError.GetString() ?? "")}");
            }

            // When this gateway's certificate expires: an expired one is refused by every peer, and nothing said so before.
            if (json.TryGetProperty("certificate", out var own) && own.ValueKind == JsonValueKind.Object)
            {
                var expiring = own.GetProperty("expiring").GetBoolean();
                // Asked of a node (its admin API answers too), this said "This gateway's cluster certificate (node/...)".
                var whose = json.TryGetProperty("role", out var role) && role.ValueKind == JsonValueKind.String
                    ? role.GetString() switch { "node" => "This node's", "gateway" => "This gateway's", _ => "This server's" }
                    : "This gateway's";
                AnsiConsole.MarkupLine($"{(expiring ? "[yellow]warning:[/] " : "")}{whose} cluster certificate ({TerminalText.Markup(own.GetProperty("member").GetString() ?? "")}) expires {CliTime.FromUnixMilliseconds(own.GetProperty("expires_at").GetInt64())}, "
                    + $"{Left(own.GetProperty("expires_in_seconds").GetInt64())}{(expiring ? "; issue a new one with 'sovereign cluster cert issue'" : "")}.");

                // Its CA: no member certificate outlives it, so near its end only a new CA helps.
                if (own.TryGetProperty("ca_expires_at", out var caEnd) && caEnd.ValueKind == JsonValueKind.Number && own.GetProperty("ca_expiring").GetBoolean())
                {
                    AnsiConsole.MarkupLine($"[yellow]warning:[/] The cluster CA that issued it expires {CliTime.FromUnixMilliseconds(caEnd.GetInt64())}; every certificate it signed ends then. Replace the CA (operator guide, 'Replace the CA').");
                }
            }

            // The members that run: a silo declared dead is a process that stopped (the previous process of a member
            // restarted under its name, or one gone for good), which Orleans keeps in its table for a while. Listed among
            // the members, an operator read a restarted gateway twice, once dead; they are counted apart, by name.
            var members = new Table().AddColumns("member", "status", "address", "host", "certificate expires");
            var all = json.GetProperty("members").EnumerateArray().ToList();
            var live = all.Where(m => TenantsCommand.Text(m, "status") != "dead").ToList();
            var departed = all.Where(m => TenantsCommand.Text(m, "status") == "dead").ToList();
            foreach (var m in live)
            {
                var expires = m.TryGetProperty("certificate_expires_at", out var at) && at.ValueKind == JsonValueKind.Number
                    ? CliTime.FromUnixMilliseconds(at.GetInt64()) + (m.GetProperty("certificate_expiring").GetBoolean() ? " (soon)" : "")
                    : "";
                members.AddRow(TenantsCommand.Text(m, "name"), TenantsCommand.Text(m, "status"), TenantsCommand.Text(m, "address"), TenantsCommand.Text(m, "host"), TerminalText.Markup(expires));
            }

            AnsiConsole.Write(members);
            if (departed.Count > 0)
            {
                var running = live.Select(m => TenantsCommand.Text(m, "name")).ToHashSet(StringComparer.Ordinal);
                var restarted = departed.Count(m => running.Contains(TenantsCommand.Text(m, "name")));
                var gone = departed.Where(m => !running.Contains(TenantsCommand.Text(m, "name"))).Select(m => TenantsCommand.Text(m, "name")).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
                AnsiConsole.MarkupLine($"Stopped processes declared dead in the last 10 minutes, not members: {restarted} of members that run again"
                    + (gone.Count > 0 ? $"; {gone.Count} of members not running: {string.Join(", ", gone)}" : "") + " ('--json' lists them).");
            }

            var capacity = new Table().AddColumns("jurisdiction", "nodes up", "free slots", "running", "queued");
            foreach (var j in json.GetProperty("jurisdictions").EnumerateArray())
            {
                capacity.AddRow(TenantsCommand.Text(j, "jurisdiction"), $"{j.GetProperty("nodes_up").GetInt32()}/{j.GetProperty("nodes").GetInt32()}",
                    j.GetProperty("free_slots").ToString(), j.GetProperty("running").ToString(), j.GetProperty("queued").ToString());
            }

            AnsiConsole.Write(capacity);

            if (json.GetProperty("pools").GetArrayLength() > 0)
            {
                var pools = new Table().AddColumns("pool", "jurisdictions", "nodes up", "free slots", "reserved", "device classes", "accelerators");
                foreach (var p in json.GetProperty("pools").EnumerateArray())
                {
                    pools.AddRow(TenantsCommand.Text(p, "pool"), TerminalText.Markup(string.Join(", ", p.GetProperty("jurisdictions").EnumerateArray().Select(j => j.GetString()))),
                        $"{p.GetProperty("nodes_up").GetInt32()}/{p.GetProperty("nodes").GetInt32()}", p.GetProperty("free_slots").ToString(),
                        p.TryGetProperty("reserved_slots", out var reserved) ? reserved.ToString() : "",
                        TerminalText.Markup(string.Join(", ", p.TryGetProperty("device_classes", out var classes) ? classes.EnumerateArray().Select(c => c.GetString()) : [])),
                        TerminalText.Markup(string.Join(", ", p.GetProperty("accelerators").EnumerateArray().Select(a => a.GetString()))));
                }

                AnsiConsole.Write(pools);
            }

            var nodes = new Table().AddColumns("node", "jurisdiction", "pool", "state", "health", "models", "accelerators");
            foreach (var n in json.GetProperty("nodes").EnumerateArray())
            {
                var models = string.Join(", ", n.GetProperty("models").EnumerateArray().Select(m =>
                    $"{m.GetProperty("id").GetString()} ({m.GetProperty("running").GetInt32()} running, {m.GetProperty("free_slots").GetInt32()} free, {m.GetProperty("queue_depth").GetInt32()} queued)"));
                var accelerators = string.Join(", ", n.GetProperty("accelerators").EnumerateArray().Select(a => a.GetProperty("name").GetString()));
                nodes.AddRow(TenantsCommand.Text(n, "id"), TenantsCommand.Text(n, "jurisdiction"), TenantsCommand.Text(n, "pool"), TenantsCommand.Text(n, "state"), TenantsCommand.Text(n, "health"),
                    TerminalText.Markup(models), TerminalText.Markup(accelerators));
            }

            AnsiConsole.Write(nodes);
        }));

        command.Subcommands.Add(status);
        command.Subcommands.Add(ClusterCertificateCommands.CreateAuthority());
        command.Subcommands.Add(ClusterCertificateCommands.CreateCertificate());
        return command;
    }

    /// <summary>The time left, in whole days (hours under two days), or that there is none.</summary>
    private static string Left(long seconds) =>
        seconds < 0 ? "(it has expired: peers refuse it)"
        : seconds < 2 * 86400 ? $"in {seconds / 3600} hours"
        : $"in {seconds / 86400} days";
}
