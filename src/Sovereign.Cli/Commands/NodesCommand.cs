using System.CommandLine;
using Sovereign.Cli.Output;
using Spectre.Console;

namespace Sovereign.Cli.Commands;

/// <summary><c>sovereign nodes</c>: register external engines (vLLM, llama-server, Ollama, …) with their jurisdiction.</summary>
internal static class NodesCommand
{
    /// <summary>
    /// The node's models for the list: each served one (embedding ones marked), then those its load report names as
    /// not loaded (a fronted engine that does not answer, a registry model not loaded), so a model that stopped taking
    /// requests shows why rather than vanishing from the list.
    /// </summary>
    internal static string ModelsCell(System.Text.Json.JsonElement node)
    {
        // A chat model's declared languages follow it in brackets: the auto alias routes by them.
        var served = node.GetProperty("models").EnumerateArray().Select(m => (
            Id: m.GetProperty("id").GetString() ?? "",
            Text: m.TryGetProperty("kind", out var kind) && kind.GetString() == "embedding"
                ? m.GetProperty("id").GetString() + " (embedding)"
                : m.GetProperty("id").GetString() + LanguagesOf(m))).ToList();
        var notLoaded = node.TryGetProperty("load", out var load) && load.ValueKind == System.Text.Json.JsonValueKind.Object
            && load.TryGetProperty("available", out var available) && available.ValueKind == System.Text.Json.JsonValueKind.Array
            ? available.EnumerateArray().Select(a => a.GetString() ?? "").Where(id => id.Length > 0 && served.All(m => m.Id != id)).Select(id => id + " (not loaded)")
            : [];
        return string.Join(", ", served.Select(m => m.Text).Concat(notLoaded));
    }

    private static string LanguagesOf(System.Text.Json.JsonElement model) =>
        model.TryGetProperty("languages", out var languages) && languages.ValueKind == System.Text.Json.JsonValueKind.Array && languages.GetArrayLength() > 0
            ? " [" + string.Join(" ", languages.EnumerateArray().Select(l => l.GetString())) + "]"
            : "";

    /// <summary>
    /// Each value is ID or ID=UPSTREAM_NAME with neither side empty: <c>--model '=X'</c> was sent as a model without
    /// an id, and the server's answer ("models[0].id is required") named neither the flag nor the value.
    /// </summary>
    private static void RequireModelForms(Option<string[]> option)
    {
        ModelIdRule.Refuse(option);
        RequireIdAndUpstream(option);
    }

    private static void RequireIdAndUpstream(Option<string[]> option) => option.Validators.Add(r =>
    {
        foreach (var value in r.Tokens.Select(t => t.Value))
        {
            var parts = value.Split('=', 2);
            if (parts[0].Length == 0 || (parts.Length > 1 && parts[1].Length == 0))
            {
                r.AddError($"{option.Name} '{value}' is not ID or ID=UPSTREAM_NAME: {(parts[0].Length == 0 ? "the id before '=' is empty" : "the upstream name after '=' is empty")}.");
            }
        }
    });

    public static Command Create()
    {
        var command = new Command("nodes", "Register, list and take out of rotation the nodes that serve models.");

        var add = new AdminConnection();
        var id = new Argument<string>("id") { Description = "Node id." };
        var jurisdiction = new Option<string>("--jurisdiction", "-j") { Description = "ISO 3166-1 alpha-2 country the node runs in.", Required = true };
        var url = new Option<string>("--base-url") { Description = "The engine's OpenAI-compatible base URL, without /v1 (the gateway adds it), e.g. http://10.1.2.3:8000.", Required = true };
        var models = new Option<string[]>("--model") { Description = "A chat model it serves, as ID or ID=UPSTREAM_NAME; repeatable." };
        var embeddingModels = new Option<string[]>("--embedding-model") { Description = "An embedding model it serves (POST /v1/embeddings), as ID or ID=UPSTREAM_NAME; repeatable." };
        var capacity = new Option<int?>("--capacity") { Description = "Concurrent requests per model (default 16)." };
        var apiKey = new Option<string?>("--api-key") { Description = "Bearer key the engine needs, if any." };
        var addPool = new Option<string?>("--pool") { Description = "The pool it is in (prices and reservations are per pool; default <jurisdiction>-default)." };
        var deviceClass = new Option<string?>("--device-class") { Description = "Its device class for prices, e.g. h100 (default unknown)." };
        var languages = new Option<string[]>("--language") { Description = "A language (ISO 639-1, e.g. th) its chat models serve well; repeatable. The auto alias routes requests in it there." };
        var promptCache = new Option<string?>("--prompt-cache")
        {
            Description = "How the engine's prompt cache is kept apart between tenants: shared (default; Ollama), salt (vLLM: a cache_salt per tenant) or off (llama-server: cache_prompt false).",
        };
        promptCache.AcceptOnlyFromAmong("shared", "salt", "off");
        RequireModelForms(models);
        RequireModelForms(embeddingModels);
        var addCommand = new Command("add", "Register an external OpenAI-compatible engine as a node; the operator key signs its jurisdiction, pool and device class.") { id, jurisdiction, url, models, embeddingModels, capacity, apiKey, addPool, deviceClass, languages, promptCache };
        addCommand.Validators.Add(result =>
        {
            if ((result.GetValue(models) ?? []).Length == 0 && (result.GetValue(embeddingModels) ?? []).Length == 0)
            {
                result.AddError("Name at least one model the engine serves: --model (chat) or --embedding-model.");
            }
        });
        add.AddTo(addCommand);
        addCommand.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var list = (result.GetValue(models) ?? []).Select(m => (Model: m, Kind: "chat"))
                .Concat((result.GetValue(embeddingModels) ?? []).Select(m => (Model: m, Kind: "embedding")))
                .Select(m => (Parts: m.Model.Split('=', 2), m.Kind))
                .Select(m => new
                {
                    id = m.Parts[0], upstream = m.Parts.Length > 1 ? m.Parts[1] : m.Parts[0], capacity = result.GetValue(capacity), kind = m.Kind,
                    languages = m.Kind == "chat" ? result.GetValue(languages) : null,
                }).ToArray();
            var json = await add.SendAsync(result, HttpMethod.Post, "/admin/v1/nodes",
                new { id = result.GetValue(id), jurisdiction = result.GetValue(jurisdiction), base_url = result.GetValue(url), models = list, api_key = result.GetValue(apiKey), pool = result.GetValue(addPool), device_class = result.GetValue(deviceClass), prompt_cache = result.GetValue(promptCache) }, ct);
            if (!add.PrintJson(result, json))
            {
                Console.WriteLine($"Node {json.GetProperty("id").GetString()} registered in {json.GetProperty("jurisdiction").GetString()}.");
            }
        }));

        var listConnection = new AdminConnection();
        var listCommand = new Command("list", "List nodes with their jurisdiction, state, health and models.");
        listConnection.AddTo(listCommand);
        listCommand.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await listConnection.SendAsync(result, HttpMethod.Get, "/admin/v1/nodes", null, ct);
            if (!listConnection.PrintJson(result, json))
            {
                // State is what the operator set; health is whether it takes requests now (a killed node stays active, but stale).
                var table = new Table().AddColumns("id", "jurisdiction", "pool", "device", "kind", "state", "health", "url", "models");
                foreach (var n in json.GetProperty("data").EnumerateArray())
                {
                    table.AddRow(TenantsCommand.Text(n, "id"), TenantsCommand.Text(n, "jurisdiction"), TenantsCommand.Text(n, "pool"), TenantsCommand.Text(n, "device_class"),
                        TenantsCommand.Text(n, "kind"), TenantsCommand.Text(n, "state"), TenantsCommand.Text(n, "health"),
                        TenantsCommand.Text(n, "base_url"), TerminalText.Markup(ModelsCell(n)));
                }

                AnsiConsole.Write(table);
            }
        }));

        var stateConnection = new AdminConnection();
        var stateId = new Argument<string>("id") { Description = "Node id." };
        var state = new Argument<string>("state") { Description = "active, draining or down." };
        state.AcceptOnlyFromAmong("active", "draining", "down");
        var stateCommand = new Command("state", "Put a node in or out of rotation (requests are never moved across borders).") { stateId, state };
        stateConnection.AddTo(stateCommand);
        stateCommand.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await stateConnection.SendAsync(result, HttpMethod.Put, $"/admin/v1/nodes/{AdminConnection.Segment(result.GetValue(stateId))}/state", new { state = result.GetValue(state) }, ct);
            stateConnection.Print(result, json, () => Console.WriteLine($"Node {result.GetValue(stateId)} is {result.GetValue(state)}."));
        }));

        var drainConnection = new AdminConnection();
        var drainId = new Argument<string>("id") { Description = "Node id." };
        var wait = new Option<bool>("--wait") { Description = "Wait until the node has no request running or queued (then it can be stopped or removed)." };
        var drainTimeout = new Option<int>("--timeout") { Description = "Seconds to wait with --wait (default 600).", DefaultValueFactory = _ => 600 };
        drainTimeout.Validators.Add(r =>
        {
            // A zero or negative --timeout was taken as 1 s, after which the CLI said the server did not answer (exit 4).
            if (Output.ParseErrors.ValueOrNull<int>(r) is < 1)
            {
                r.AddError("--timeout must be at least 1 second.");
            }
        });
        var drainCommand = new Command("drain", "Take a node out of rotation without failing a request: it finishes what it has and gets nothing new.") { drainId, wait, drainTimeout };
        drainConnection.AddTo(drainCommand);
        drainCommand.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var node = result.GetValue(drainId)!;
            var json = await drainConnection.SendAsync(result, HttpMethod.Put, $"/admin/v1/nodes/{AdminConnection.Segment(node)}/state", new { state = "draining" }, ct);
            if (!result.GetValue(wait))
            {
                drainConnection.Print(result, json, () => Console.WriteLine($"Node {node} is draining."));
                return;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(result.GetValue(drainTimeout)));

            // Gateways re-read the registry every second, so one may still send a request just after the drain: idle
            // counts only in a node report made at least SettleMilliseconds after the first one seen (node clock).
            long? settledAfter = null;
            var started = DateTimeOffset.UtcNow;
            try
            {
                while (true)
                {
                    var nodes = await drainConnection.SendAsync(result, HttpMethod.Get, "/admin/v1/nodes", null, timeout.Token);
                    var view = nodes.GetProperty("data").EnumerateArray().FirstOrDefault(n => n.GetProperty("id").GetString() == node);
                    if (view.ValueKind == System.Text.Json.JsonValueKind.Undefined)
                    {
                        break;
                    }

                    var reportedAt = ReportedAt(view);
                    var dead = view.TryGetProperty("member", out var member) && member.ValueKind == System.Text.Json.JsonValueKind.String && member.GetString() == "dead";
                    if (dead || (view.TryGetProperty("reporting", out var reporting) && reporting.ValueKind == System.Text.Json.JsonValueKind.False))
                    {
                        // Gone (stopped, dead in membership, or cut off from the registry): no report will ever say it is
                        // idle, and the wait went on for the whole --timeout.
                        throw new Output.CliException(
                            $"node {node} is draining but {(dead ? "is dead in the cluster's membership" : "stopped reporting its load")} "
                            + $"({(reportedAt is { } last ? "last report " + CliTime.FromUnixMilliseconds(last) : "no report yet")}): it has stopped or is cut off from the cluster, "
                            + $"so there is nothing to wait for; what it ran ended with it. Once it is stopped, remove it with 'sovereign nodes rm {node}'.",
                            Output.ExitCodes.NodeGone);
                    }

                    settledAfter ??= reportedAt + SettleMilliseconds;
                    var settled = reportedAt is null ? DateTimeOffset.UtcNow - started >= TimeSpan.FromMilliseconds(SettleMilliseconds) : reportedAt >= settledAfter;
                    if (settled && IsIdle(view))
                    {
                        break;
                    }

                    await Task.Delay(TimeSpan.FromMilliseconds(500), timeout.Token);
                }
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                // The server answered all along: the node still had work. It said "the server did not answer in time", exit 4.
                throw new Output.CliException(
                    $"node {node} is draining but was not idle within --timeout {result.GetValue(drainTimeout)} s; run 'sovereign nodes drain {node} --wait' again, or with a longer --timeout.");
            }

            drainConnection.Print(result, json, () => Console.WriteLine($"Node {node} is drained: nothing running or queued."));
        }));

        var tokenConnection = new AdminConnection();
        var tokenJurisdiction = new Option<string>("--jurisdiction", "-j") { Description = "ISO 3166-1 alpha-2 country the node will run in.", Required = true };
        var pool = new Option<string?>("--pool") { Description = "The pool the node joins (e.g. th-h100)." };
        var ttl = new Option<long?>("--ttl") { Description = "Seconds the token stays valid (default 3600, at most 7 days)." };
        ttl.Validators.Add(r =>
        {
            // The server's 400 named its field, ttl_seconds, not the flag the operator typed.
            if (Output.ParseErrors.ValueOrNull<long>(r) is < 1 or > 7 * 24 * 3600)
            {
                r.AddError("--ttl must be between 1 and 604800 seconds (7 days).");
            }
        });
        var tokenDeviceClass = new Option<string?>("--device-class") { Description = "The node's device class for prices (e.g. h100), signed into its credential; default: what the node reports." };
        var tokenCommand = new Command("join-token", "Issue a one-time token for a new node: start it with sovereign serve --role node --join-token TOKEN --join-url GATEWAY.") { tokenJurisdiction, pool, tokenDeviceClass, ttl };
        tokenConnection.AddTo(tokenCommand);
        tokenCommand.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await tokenConnection.SendAsync(result, HttpMethod.Post, "/admin/v1/nodes/join-tokens",
                new { jurisdiction = result.GetValue(tokenJurisdiction), pool = result.GetValue(pool), device_class = result.GetValue(tokenDeviceClass), ttl_seconds = result.GetValue(ttl) }, ct);
            tokenConnection.Print(result, json, () =>
            {
                Console.WriteLine(json.GetProperty("token").GetString());
                Console.Error.WriteLine($"One-time join token {json.GetProperty("id").GetString()} for a node in {json.GetProperty("jurisdiction").GetString()}; shown once, valid until {CliTime.FromUnixMilliseconds(json.GetProperty("expires_at").GetInt64())} (withdraw it with 'sovereign nodes withdraw-join-token {json.GetProperty("id").GetString()}').");
            });
        }));

        // A token issued by mistake, or shown where it should not have been: refused by every gateway from then on.
        var withdrawConnection = new AdminConnection();
        var withdrawId = new Argument<string>("id") { Description = "The token's id (jt_..., printed by 'nodes join-token'), not its secret." };
        var withdrawCommand = new Command("withdraw-join-token", "Withdraw a join token not used yet: no gateway admits a node with it from then on.") { withdrawId };
        withdrawConnection.AddTo(withdrawCommand);
        withdrawCommand.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await withdrawConnection.SendAsync(result, HttpMethod.Delete, $"/admin/v1/nodes/join-tokens/{AdminConnection.Segment(result.GetValue(withdrawId))}", null, ct);
            withdrawConnection.Print(result, json, () => Console.WriteLine(
                $"Join token {result.GetValue(withdrawId)} withdrawn {CliTime.FromUnixMilliseconds(json.GetProperty("withdrawn_at").GetInt64())}: no gateway admits a node with it."));
        }));

        var rmConnection = new AdminConnection();
        var rmId = new Argument<string>("id") { Description = "Node id." };
        var rmCommand = new Command("rm", "Remove a node from the registry; one still running is refused: drain and stop it first.") { rmId };
        rmConnection.AddTo(rmCommand);
        rmCommand.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await rmConnection.SendAsync(result, HttpMethod.Delete, $"/admin/v1/nodes/{AdminConnection.Segment(result.GetValue(rmId))}", null, ct);
            rmConnection.Print(result, json, () => Console.WriteLine($"Node {result.GetValue(rmId)} removed."));
        }));

        command.Subcommands.Add(addCommand);
        command.Subcommands.Add(listCommand);
        command.Subcommands.Add(stateCommand);
        command.Subcommands.Add(drainCommand);
        command.Subcommands.Add(tokenCommand);
        command.Subcommands.Add(withdrawCommand);
        command.Subcommands.Add(rmCommand);
        return command;
    }

    private const long SettleMilliseconds = 2_000;

    private static long? ReportedAt(System.Text.Json.JsonElement node) =>
        node.TryGetProperty("load", out var load) && load.ValueKind == System.Text.Json.JsonValueKind.Object ? load.GetProperty("reported_at").GetInt64() : null;

    /// <summary>
    /// Nothing in flight from this gateway and, for a cluster node, a load report with nothing running or queued;
    /// an external engine (no reports) is idle once the gateway has nothing in flight to it.
    /// </summary>
    private static bool IsIdle(System.Text.Json.JsonElement node)
    {
        if (node.TryGetProperty("in_flight", out var inFlight) && inFlight.GetInt32() > 0)
        {
            return false;
        }

        return !node.TryGetProperty("load", out var load) || load.ValueKind != System.Text.Json.JsonValueKind.Object
            || load.GetProperty("models").EnumerateArray().All(m => m.GetProperty("running").GetInt32() == 0 && m.GetProperty("queue_depth").GetInt32() == 0);
    }
}
