using System.CommandLine;
using System.Text.Json;
using Sovereign.Cli.Output;
using Spectre.Console;

namespace Sovereign.Cli.Commands;

/// <summary><c>sovereign tenants</c> and <c>sovereign keys</c>: the operator's view of customers.</summary>
internal static class TenantsCommand
{
    public static Command Create()
    {
        var command = new Command("tenants", "Create, list, show and update tenants and their residency policies.");
        command.Subcommands.Add(CreateCreate());
        command.Subcommands.Add(CreateList());
        command.Subcommands.Add(CreateShow());
        command.Subcommands.Add(CreateUpdate());
        return command;
    }

    public static Command CreateKeys()
    {
        var command = new Command("keys", "Issue, list, rotate and revoke tenant API keys.");
        var connection = new AdminConnection();
        var tenant = new Argument<string>("tenant") { Description = "Tenant id." };
        var name = new Option<string?>("--name") { Description = "A label for the key." };
        var jurisdictions = new Option<string[]>("--jurisdiction") { Description = "Narrow the key to these jurisdictions (within the tenant's)." };
        var models = new Option<string[]>("--model") { Description = "Narrow the key to these model ids (within the tenant's); repeatable." };
        ModelIdRule.Refuse(models);
        var expiresIn = new Option<string?>("--expires-in") { Description = "The key stops working after this long: 90m, 12h, 30d (at most 10 years)." };
        var expiresAt = new Option<string?>("--expires-at") { Description = "The key stops working at this time: ISO 8601 (2027-01-01T00:00:00Z) or unix seconds (1798761600)." };
        var create = new Command("create", "Issue a key; its secret is printed once.") { tenant, name, jurisdictions, models, expiresIn, expiresAt };
        connection.AddTo(create);
        create.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            // A key narrowed to some models (LiteLLM's key 'models') needed the API: the CLI could narrow jurisdictions only.
            var allowedJurisdictions = result.GetValue(jurisdictions) is { Length: > 0 } list ? list : null;
            var allowedModels = result.GetValue(models) is { Length: > 0 } modelList ? modelList : null;
            var narrowing = allowedJurisdictions is not null || allowedModels is not null
                ? new { allowed_jurisdictions = allowedJurisdictions, allowed_models = allowedModels }
                : null;
            var expiresInSeconds = result.GetValue(expiresIn) is { } duration ? DurationSeconds(duration, "--expires-in") : (long?)null;
            var body = new { name = result.GetValue(name), policy = narrowing, expires_in = expiresInSeconds, expires_at = ExpiresAtValue(result.GetValue(expiresAt)) };
            var json = await connection.SendAsync(result, HttpMethod.Post, $"/admin/v1/tenants/{AdminConnection.Segment(result.GetValue(tenant))}/keys", body, ct);
            if (!connection.PrintJson(result, json))
            {
                var expiry = Time(json.GetProperty("key"), "expires_at") is { Length: > 0 } until ? $", valid until {until}" : "";
                Console.WriteLine($"Key {json.GetProperty("key").GetProperty("id").GetString()} for tenant {result.GetValue(tenant)}{expiry}. Its secret, shown only now:");
                Console.WriteLine(json.GetProperty("secret").GetString());
            }
        }));

        var listConnection = new AdminConnection();
        var listTenant = new Argument<string>("tenant") { Description = "Tenant id." };
        var list = new Command("list", "List a tenant's keys (never their secrets).") { listTenant };
        listConnection.AddTo(list);
        list.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await listConnection.SendAsync(result, HttpMethod.Get, $"/admin/v1/tenants/{AdminConnection.Segment(result.GetValue(listTenant))}/keys", null, ct);
            if (!listConnection.PrintJson(result, json))
            {
                var table = new Table().AddColumns("id", "prefix", "name", "models", "created", "expires", "revoked");
                foreach (var key in json.GetProperty("data").EnumerateArray())
                {
                    var models = key.TryGetProperty("policy", out var policy) && policy.ValueKind == JsonValueKind.Object ? List(policy, "allowed_models", "tenant's") : "tenant's";
                    table.AddRow(Text(key, "id"), Text(key, "prefix") + "…", Text(key, "name"), TerminalText.Markup(models), Time(key, "created_at"), Time(key, "expires_at"), Time(key, "revoked_at"));
                }

                AnsiConsole.Write(table);
            }
        }));

        var revokeConnection = new AdminConnection();
        var revokeTenant = new Argument<string>("tenant") { Description = "Tenant id." };
        var keyId = new Argument<string>("key-id") { Description = "The key id (key_…)." };
        var revoke = new Command("revoke", "Revoke a key; it is refused from the next request on.") { revokeTenant, keyId };
        revokeConnection.AddTo(revoke);
        revoke.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await revokeConnection.SendAsync(result, HttpMethod.Delete, $"/admin/v1/tenants/{AdminConnection.Segment(result.GetValue(revokeTenant))}/keys/{AdminConnection.Segment(result.GetValue(keyId))}", null, ct);
            revokeConnection.Print(result, json, () => Console.WriteLine($"Revoked {result.GetValue(keyId)}."));
        }));

        var rotateConnection = new AdminConnection();
        var rotateTenant = new Argument<string>("tenant") { Description = "Tenant id." };
        var rotateKeyId = new Argument<string>("key-id") { Description = "The key to replace (key_…)." };
        var rotateExpiresIn = new Option<string?>("--expires-in") { Description = "The new key stops working after this long: 90m, 12h, 30d (at most 10 years)." };
        var rotateExpiresAt = new Option<string?>("--expires-at") { Description = "The new key stops working at this time: ISO 8601 or unix seconds." };
        var rotate = new Command("rotate", "Issue a replacement with the key's name and policy (its secret printed once); the old key works until you revoke it.")
        {
            rotateTenant, rotateKeyId, rotateExpiresIn, rotateExpiresAt,
        };
        rotateConnection.AddTo(rotate);
        rotate.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var expiresInSeconds = result.GetValue(rotateExpiresIn) is { } duration ? DurationSeconds(duration, "--expires-in") : (long?)null;
            var body = new { expires_in = expiresInSeconds, expires_at = ExpiresAtValue(result.GetValue(rotateExpiresAt)) };
            var tenantId = result.GetValue(rotateTenant);
            var oldId = result.GetValue(rotateKeyId);
            var json = await rotateConnection.SendAsync(result, HttpMethod.Post, $"/admin/v1/tenants/{AdminConnection.Segment(tenantId)}/keys/{AdminConnection.Segment(oldId)}/rotate", body, ct);
            if (!rotateConnection.PrintJson(result, json))
            {
                var expiry = Time(json.GetProperty("key"), "expires_at") is { Length: > 0 } until ? $", valid until {until}" : "";
                if (json.TryGetProperty("limits", out var carried) && carried.ValueKind == JsonValueKind.Object)
                {
                    Console.WriteLine($"The budgets and rate limit of {oldId} were carried over to the new key (a total budget at what {oldId} had left): see `sovereign limits {tenantId}`.");
                }

                Console.WriteLine($"Key {json.GetProperty("key").GetProperty("id").GetString()} replaces {oldId} for tenant {tenantId}{expiry}; {oldId} works until `sovereign keys revoke {tenantId} {oldId}`. Its secret, shown only now:");
                Console.WriteLine(json.GetProperty("secret").GetString());
            }
        }));

        command.Subcommands.Add(create);
        command.Subcommands.Add(list);
        command.Subcommands.Add(revoke);
        command.Subcommands.Add(rotate);
        return command;
    }

    private static Command CreateCreate()
    {
        var connection = new AdminConnection();
        var id = new Argument<string>("id") { Description = "Tenant id: lowercase letters, digits and '-'." };
        var policy = new PolicyOptions();
        var name = new Option<string?>("--name") { Description = "Display name." };
        var plan = new Option<string?>("--plan") { Description = "Pricing plan (default: default)." };
        var command = new Command("create", "Create a tenant with its residency policy.") { id, name, plan };
        policy.AddTo(command);
        connection.AddTo(command);
        command.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await connection.SendAsync(result, HttpMethod.Post, "/admin/v1/tenants",
                new { id = result.GetValue(id), name = result.GetValue(name), plan = result.GetValue(plan), policy = policy.ToBody(result, required: true) }, ct);
            if (!connection.PrintJson(result, json))
            {
                PrintTenant(json);
            }
        }));
        return command;
    }

    private static Command CreateUpdate()
    {
        var connection = new AdminConnection();
        var id = new Argument<string>("id") { Description = "Tenant id." };
        var policy = new PolicyOptions();
        var plan = new Option<string?>("--plan") { Description = "New pricing plan." };
        var disable = new Option<bool?>("--disabled") { Description = "Disable (true) or enable (false) the tenant." };
        var command = new Command("update", "Change a tenant's policy, plan or state; the change is audited.") { id, plan, disable };
        policy.AddTo(command);
        connection.AddTo(command);
        command.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            // Without a flag it sent an empty change, audited as an update, with exit 0.
            if (!policy.AnyGiven(result) && result.GetResult(plan) is null && result.GetResult(disable) is null)
            {
                throw new CliException("nothing to change: give --plan, --disabled or a policy flag (--jurisdiction, --model, --license, --origin, --allow-external, --retain-days).", ExitCodes.Usage);
            }

            // The API replaces a policy whole; the flags change only what they name, so the rest is read first, and the
            // edit is written only if no other change came between (else read and made again). Plan and state alone
            // are merged by the server.
            var path = $"/admin/v1/tenants/{AdminConnection.Segment(result.GetValue(id))}";
            var json = policy.AnyGiven(result)
                ? await connection.EditAsync(result, path, HttpMethod.Patch, path,
                    current => new { plan = result.GetValue(plan), disabled = result.GetValue(disable), policy = policy.Merge(result, current.GetProperty("policy")) }, ct)
                : await connection.SendAsync(result, HttpMethod.Patch, path, new { plan = result.GetValue(plan), disabled = result.GetValue(disable), policy = (object?)null }, ct);
            if (!connection.PrintJson(result, json))
            {
                PrintTenant(json);
            }
        }));
        return command;
    }

    private static Command CreateList()
    {
        var connection = new AdminConnection();
        var limit = new Option<int?>("--limit") { Description = "Most tenants to list (default: all, read from the server 1,000 at a time)." };
        limit.Validators.Add(r =>
        {
            if (ParseErrors.ValueOrNull<int>(r) is < 1)
            {
                r.AddError("--limit must be 1 or more.");
            }
        });
        var after = new Option<string?>("--after") { Description = "List the tenants after this id (by id), e.g. the last one an earlier --limit listed." };
        var command = new Command("list", "List tenants, by id.") { limit, after };
        connection.AddTo(command);
        command.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            // The server answers at most 1,000 tenants a page: the pages are walked here, each one read once, so the
            // list holds every tenant however many there are (it read one answer of all of them).
            var wanted = result.GetValue(limit) ?? int.MaxValue;
            var cursor = result.GetValue(after);
            var tenants = new List<JsonElement>();
            var more = true;
            long? total = null;
            while (more && tenants.Count < wanted)
            {
                var size = Math.Min(TenantPage, wanted - tenants.Count);
                var query = cursor is null ? $"?limit={size}" : $"?limit={size}&after={Uri.EscapeDataString(cursor)}";
                var page = await connection.SendAsync(result, HttpMethod.Get, "/admin/v1/tenants" + query, null, ct);
                var data = page.GetProperty("data").EnumerateArray().ToList();
                tenants.AddRange(data);
                total ??= page.TryGetProperty("total", out var count) && count.ValueKind == JsonValueKind.Number ? count.GetInt64() : null;
                more = page.TryGetProperty("has_more", out var hasMore) && hasMore.ValueKind == JsonValueKind.True && data.Count > 0;
                cursor = data.Count > 0 ? data[^1].GetProperty("id").GetString() : cursor;
            }

            if (result.GetValue(connection.Json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    @object = "list",
                    data = tenants,
                    first_id = tenants.Count > 0 ? tenants[0].GetProperty("id").GetString() : null,
                    last_id = tenants.Count > 0 ? tenants[^1].GetProperty("id").GetString() : null,
                    has_more = more,
                    total,
                }, new JsonSerializerOptions { WriteIndented = true }));
                return;
            }

            var table = new Table().AddColumns("id", "name", "plan", "jurisdictions", "external", "disabled");
            foreach (var t in tenants)
            {
                var p = t.GetProperty("policy");
                table.AddRow(Text(t, "id"), Text(t, "name"), Text(t, "plan"), TerminalText.Markup(List(p, "allowed_jurisdictions")),
                    p.TryGetProperty("allow_external_providers", out var e) && e.ValueKind == JsonValueKind.True ? "yes" : "no",
                    t.GetProperty("disabled").GetBoolean() ? "yes" : "no");
            }

            AnsiConsole.Write(table);
            if (more)
            {
                Console.Error.WriteLine($"{tenants.Count} of {total?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "more"} tenants; the next ones: --after {cursor}");
            }
        }));
        return command;
    }

    /// <summary>The tenants asked of the server at a time (its most, <c>AdminApi.MaxTenantPage</c>).</summary>
    private const int TenantPage = 1_000;

    private static Command CreateShow()
    {
        var connection = new AdminConnection();
        var id = new Argument<string>("id") { Description = "Tenant id." };
        var command = new Command("show", "Show a tenant and its policy.") { id };
        connection.AddTo(command);
        command.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await connection.SendAsync(result, HttpMethod.Get, $"/admin/v1/tenants/{AdminConnection.Segment(result.GetValue(id))}", null, ct);
            if (!connection.PrintJson(result, json))
            {
                PrintTenant(json);
            }
        }));
        return command;
    }

    private static void PrintTenant(JsonElement t)
    {
        var p = t.GetProperty("policy");
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("id", Text(t, "id"));
        grid.AddRow("name", Text(t, "name"));
        grid.AddRow("plan", Text(t, "plan"));
        grid.AddRow("disabled", t.GetProperty("disabled").GetBoolean() ? "yes" : "no");
        grid.AddRow("jurisdictions", TerminalText.Markup(List(p, "allowed_jurisdictions")));
        grid.AddRow("models", TerminalText.Markup(List(p, "allowed_models", "any")));
        grid.AddRow("licences", TerminalText.Markup(List(p, "allowed_licenses", "any")));
        grid.AddRow("origins", TerminalText.Markup(List(p, "allowed_origins", "any")));
        grid.AddRow("external providers", p.TryGetProperty("allow_external_providers", out var e) && e.ValueKind == JsonValueKind.True ? "allowed" : "not allowed");
        // Whether the tenant's prompts and completions may be kept: 'create --retain-days 30' was shown nowhere but --json.
        grid.AddRow("content retention", Retention(p));
        AnsiConsole.Write(grid);
    }

    private static string Retention(JsonElement policy) =>
        policy.TryGetProperty("retention", out var r) && r.ValueKind == JsonValueKind.Object
            && r.TryGetProperty("mode", out var mode) && mode.ValueKind == JsonValueKind.String && mode.GetString() == "store"
            && r.TryGetProperty("days", out var days) && days.ValueKind == JsonValueKind.Number
            ? $"stored {days.GetInt32()} days"
            : "never stored";

    /// <summary>A table cell from a server's answer (<see cref="TerminalText.Markup"/>).</summary>
    internal static string Text(JsonElement e, string name) =>
        TerminalText.Markup(e.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v.ToString() : "");

    /// <summary>A duration such as <c>90m</c>, <c>12h</c>, <c>30d</c> or <c>3600s</c>, in seconds; else a usage error naming <paramref name="option"/>.</summary>
    internal static long DurationSeconds(string value, string option)
    {
        var unit = value.Length > 1 ? char.ToLowerInvariant(value[^1]) : ' ';
        var perUnit = unit switch { 's' => 1L, 'm' => 60L, 'h' => 3600L, 'd' => 86400L, _ => 0L };
        return perUnit > 0 && long.TryParse(value.AsSpan(0, value.Length - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var count)
            && count is > 0 and < 1_000_000_000
            ? count * perUnit
            : throw new CliException($"{option} takes a positive number with a unit: s, m, h or d (e.g. 30d); got '{value}'.", ExitCodes.Usage);
    }

    /// <summary>
    /// <c>--expires-at</c> as the API takes it: digits are unix seconds, sent as a number (the server names a value out of
    /// range); anything else goes as the time text it is.
    /// </summary>
    internal static object? ExpiresAtValue(string? value) =>
        long.TryParse(value, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var seconds) ? seconds : value;

    internal static string Time(JsonElement e, string name) => CliTime.Of(e, name);

    private static string List(JsonElement e, string name, string empty = "") =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array && v.GetArrayLength() > 0
            ? string.Join(", ", v.EnumerateArray().Select(x => x.GetString()))
            : empty;

    /// <summary>The policy flags shared by create and update.</summary>
    private sealed class PolicyOptions
    {
        private readonly Option<string[]> _jurisdictions = new("--jurisdiction", "-j") { Description = "Allowed processing jurisdiction: a country code (TH) or group (EU, EEA, ASEAN); repeatable." };
        private readonly Option<string[]> _models = new("--model") { Description = "Allowed model id; repeatable (default: any; 'any' clears the list)." };
        private readonly Option<string[]> _licenses = new("--license") { Description = "Allowed model licence (SPDX id); repeatable (default: any; 'any' clears the list)." };
        private readonly Option<string[]> _origins = new("--origin") { Description = "Allowed model origin country; repeatable (default: any; 'any' clears the list)." };
        private readonly Option<bool> _external = new("--allow-external") { Description = "Allow external providers (registered remote engines) within the jurisdictions (--allow-external false: not)." };
        private readonly Option<int?> _retain = new("--retain-days") { Description = "Allow storing prompt/completion content for this many days (default and 0: never stored)." };

        public PolicyOptions()
        {
            ModelIdRule.Refuse(_models);
            // A negative count was sent as no retention at all: 'create --retain-days -5' stored nothing, and 'update
            // --retain-days -5' cleared a retention the tenant had.
            _retain.Validators.Add(r =>
            {
                if (ParseErrors.ValueOrNull<int>(r) is < 0)
                {
                    r.AddError("--retain-days must be a number of days, 0 (never stored) or more.");
                }
            });
        }

        public void AddTo(Command command)
        {
            command.Options.Add(_jurisdictions);
            command.Options.Add(_models);
            command.Options.Add(_licenses);
            command.Options.Add(_origins);
            command.Options.Add(_external);
            command.Options.Add(_retain);
        }

        public object? ToBody(ParseResult result, bool required)
        {
            var jurisdictions = result.GetValue(_jurisdictions) ?? [];
            if (!required && jurisdictions.Length == 0)
            {
                return null;
            }

            if (jurisdictions.Length == 0)
            {
                // A usage error, said before the server is asked (it answered 400 about 'policy.allowed_jurisdictions', exit 1).
                throw new CliException("--jurisdiction is required: where the tenant's requests may run, a country code or group (e.g. --jurisdiction TH); repeatable.", ExitCodes.Usage);
            }

            return new
            {
                allowed_jurisdictions = jurisdictions,
                allowed_models = AnyClears(result.GetValue(_models)),
                allowed_licenses = AnyClears(result.GetValue(_licenses)),
                allowed_origins = AnyClears(result.GetValue(_origins)),
                allow_external_providers = result.GetValue(_external),
                retention = Retention(result.GetValue(_retain)),
            };
        }

        /// <summary>Whether any policy flag was given (an update without one leaves the policy as it is).</summary>
        public bool AnyGiven(ParseResult result) =>
            new Option[] { _jurisdictions, _models, _licenses, _origins, _external, _retain }.Any(o => Given(result, o));

        /// <summary>The <paramref name="current"/> policy with only what the given flags name changed.</summary>
        public object Merge(ParseResult result, JsonElement current)
        {
            string[]? List(Option<string[]> option, string field) => Given(result, option)
                ? AnyClears(result.GetValue(option))
                : current.TryGetProperty(field, out var list) && list.ValueKind == JsonValueKind.Array ? [.. list.EnumerateArray().Select(e => e.GetString()!)] : null;

            return new
            {
                allowed_jurisdictions = List(_jurisdictions, "allowed_jurisdictions"),
                allowed_models = List(_models, "allowed_models"),
                allowed_licenses = List(_licenses, "allowed_licenses"),
                allowed_origins = List(_origins, "allowed_origins"),
                allow_external_providers = Given(result, _external)
                    ? result.GetValue(_external)
                    : current.TryGetProperty("allow_external_providers", out var external) && external.ValueKind == JsonValueKind.True,
                retention = Given(result, _retain)
                    ? Retention(result.GetValue(_retain))
                    : current.TryGetProperty("retention", out var retention) && retention.ValueKind == JsonValueKind.Object ? (object)retention.Clone() : null,
            };
        }

        /// <summary>Typed on the command line (not a default the parser filled in).</summary>
        private static bool Given(ParseResult result, Option option) => result.GetResult(option) is { Implicit: false };

        private static string[]? AnyClears(string[]? values) => values is ["any"] ? [] : values;

        private static object? Retention(int? days) => days is > 0 ? new { mode = "store", days } : null;
    }
}
