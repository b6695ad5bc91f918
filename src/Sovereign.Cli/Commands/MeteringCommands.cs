using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Sovereign.Cli.Output;
using Spectre.Console;

namespace Sovereign.Cli.Commands;

/// <summary><c>sovereign usage</c>, <c>invoice</c>, <c>plans</c> and <c>limits</c>: pay-per-use from the terminal.</summary>
internal static class MeteringCommands
{
    public static IEnumerable<Command> Create() => [Usage(), Invoice(), Plans(), Limits()];

    private static Command Usage()
    {
        var connection = new AdminConnection();
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant." };
        var model = new Option<string?>("--model") { Description = "Only this model." };
        var from = new Option<string?>("--from") { Description = "First day, a UTC day start (YYYY-MM-DD; ISO 8601 or unix seconds at 00:00 UTC): usage is kept per day." };
        var to = new Option<string?>("--to") { Description = "Day after the last, a UTC day start like --from." };
        var pool = new Option<string?>("--pool") { Description = "Only usage served in this pool." };
        var key = new Option<string?>("--key") { Description = "Only usage of this API key id (as 'keys list' shows it)." };
        var groupBy = new Option<string>("--group-by") { Description = "Comma-separated: day, model, jurisdiction, tenant, pool, device_class, key.", DefaultValueFactory = _ => "tenant,model,day,jurisdiction,pool,device_class" };
        var request = new Option<string?>("--request") { Description = "One request's usage record, by its id (x-sovereign-audit-id): tokens counted and billed, and why." };
        var limit = new Option<int?>("--limit") { Description = "Most rows to show (default: all, read from the server 10,000 at a time)." };
        limit.Validators.Add(r =>
        {
            if (ParseErrors.ValueOrNull<int>(r) is < 1)
            {
                r.AddError("--limit must be 1 or more.");
            }
        });
        var command = new Command("usage", "Show usage and cost by tenant, model, day, jurisdiction, pool, device class and API key.") { tenant, model, pool, key, from, to, groupBy, request, limit };
        // Said before the server is asked: its 400 came back as exit 1, naming its query field (from, group_by), not the flag.
        UsageDayFlag(from);
        UsageDayFlag(to);
        groupBy.Validators.Add(r =>
        {
            var value = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";
            foreach (var part in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (!Groupings.Any(g => string.Equals(g.Replace("_", "", StringComparison.Ordinal), part.Replace("_", "", StringComparison.Ordinal), StringComparison.OrdinalIgnoreCase)))
                {
                    r.AddError($"--group-by: '{part}' is not one of {string.Join(", ", Groupings)}.");
                    return;
                }
            }
        });
        command.Validators.Add(r =>
        {
            if (UsageDay(r.GetValue(from)) is { Error: null, Day: { } first } && UsageDay(r.GetValue(to)) is { Error: null, Day: { } end })
            {
                PeriodError(r, first, end, "shown");
            }
        });
        connection.AddTo(command);
        command.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            if (result.GetValue(request) is { } requestId)
            {
                var record = await connection.SendAsync(result, HttpMethod.Get, "/admin/v1/usage/" + AdminConnection.Segment(requestId), null, ct);
                if (!connection.PrintJson(result, record))
                {
                    PrintRecord(record);
                }

                return;
            }

            var query = new List<string> { "group_by=" + Uri.EscapeDataString(result.GetValue(groupBy)!) };
            Add(query, "tenant", result.GetValue(tenant));
            Add(query, "model", result.GetValue(model));
            Add(query, "pool", result.GetValue(pool));
            Add(query, "key_id", result.GetValue(key));
            Add(query, "from", result.GetValue(from));
            Add(query, "to", result.GetValue(to));
            // The server answers at most 10,000 rows a page: the pages are walked here, each row read once.
            var wanted = result.GetValue(limit) ?? int.MaxValue;
            var rows = new List<JsonElement>();
            string? cursor = null;
            var more = true;
            while (more && rows.Count < wanted)
            {
                var size = Math.Min(UsagePage, wanted - rows.Count);
                var page = await connection.SendAsync(result, HttpMethod.Get,
                    $"/admin/v1/usage?{string.Join('&', query)}&limit={size}" + (cursor is null ? "" : "&after=" + Uri.EscapeDataString(cursor)), null, ct);
                var data = page.GetProperty("data").EnumerateArray().ToList();
                rows.AddRange(data);
                more = page.TryGetProperty("has_more", out var hasMore) && hasMore.ValueKind == JsonValueKind.True && data.Count > 0;
                cursor = page.TryGetProperty("last_id", out var last) && last.ValueKind == JsonValueKind.String ? last.GetString() : null;
                more &= cursor is not null;
            }

            if (result.GetValue(connection.Json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new { @object = "list", data = rows, last_id = cursor, has_more = more }, new JsonSerializerOptions { WriteIndented = true }));
                return;
            }

            // "waived": tokens counted but not billed (the language tax waived), prompt/completion; billed = counted less these.
            // Only the columns grouped by: one not grouped is empty in every row, which read as requests that ran
            // nowhere (the server groups by tenant, model and day when given none).
            var grouped = result.GetValue(groupBy)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(g => g.Replace("_", "", StringComparison.Ordinal)).ToArray();
            grouped = grouped.Length > 0 ? grouped : ["tenant", "model", "day"];
            var dimensions = Dimensions.Where(d => grouped.Contains(d.Group.Replace("_", "", StringComparison.Ordinal), StringComparer.OrdinalIgnoreCase)).ToList();
            var table = new Table().AddColumns([.. dimensions.Select(d => d.Column), "requests", "refused", "prompt", "completion", "waived", "compute s", "cost"]);
            foreach (var row in rows)
            {
                table.AddRow([
                    .. dimensions.Select(d => TenantsCommand.Text(row, d.Field)),
                    TenantsCommand.Text(row, "requests"), TenantsCommand.Text(row, "refused"), TenantsCommand.Text(row, "prompt_tokens"), TenantsCommand.Text(row, "completion_tokens"),
                    TenantsCommand.Text(row, "waived_prompt_tokens") + "/" + TenantsCommand.Text(row, "waived_completion_tokens"),
                    Number(row, "compute_seconds"), Money(row)]);
            }

            AnsiConsole.Write(table);
            if (more)
            {
                Console.Error.WriteLine($"{rows.Count} rows shown; there are more (a larger --limit, or none, shows them).");
            }
        }));
        return command;
    }

    /// <summary>The usage rows asked of the server at a time (its most, <c>MeteringApi.MaxUsagePage</c>).</summary>
    private const int UsagePage = 10_000;

    /// <summary>What usage can be grouped by, in the order the server's message lists them.</summary>
    private static readonly string[] Groupings = ["day", "model", "jurisdiction", "tenant", "pool", "device_class", "key"];

    private static void UsageDayFlag(Option<string?> option) => option.Validators.Add(r =>
    {
        var value = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";
        if (UsageDay(value) is { Error: { } error })
        {
            r.AddError($"{option.Name}: '{value}' {error}");
        }
    });

    /// <summary>
    /// A bound of a usage period, read by the server's own parser (<c>AdminApi.ParseTime</c>: unix seconds, or ISO 8601,
    /// UTC unless it states an offset), which must be the start of a UTC day: usage is kept per UTC day. Null for no value.
    /// </summary>
    private static (DateOnly? Day, string? Error)? UsageDay(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        DateTimeOffset time;
        try
        {
            time = Sovereign.Gateway.ControlPlane.AdminApi.ParseTime(value, "from")!.Value;
        }
        catch (Sovereign.Gateway.OpenAI.OpenAIException)
        {
            return (null, "is not a day: give YYYY-MM-DD (or the start of a UTC day as ISO 8601, or as unix seconds).");
        }

        var day = DateOnly.FromDateTime(time.UtcDateTime);
        if (time.UtcTicks % TimeSpan.TicksPerDay == 0)
        {
            return (day, null);
        }

        // A time with an offset (a local midnight) is another UTC time: say which, and the UTC days around it.
        var utc = time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        var days = day < DateOnly.MaxValue ? $"{Day(day)} or {Day(day.AddDays(1))}" : Day(day);
        return (null, $"is {utc}, not the start of a UTC day (usage is kept per UTC day): give {days}.");
    }

    private static void InvoiceDayFlag(Option<string?> option) => option.Validators.Add(r =>
    {
        var value = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";
        if (InvoiceDay(value) is null)
        {
            r.AddError($"{option.Name}: '{value}' is not a date: give YYYY-MM-DD (invoices cover whole UTC days).");
        }
    });

    private static DateOnly? InvoiceDay(string? value) =>
        DateOnly.TryParseExact(value, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day) ? day : null;

    /// <summary>Refuses a period that ends before it starts, or (usage) on the day it starts: an empty table read as "no usage".</summary>
    private static void PeriodError(System.CommandLine.Parsing.CommandResult r, DateOnly first, DateOnly end, string what)
    {
        if (end < first)
        {
            r.AddError($"--to ({Day(end)}) is before --from ({Day(first)}).");
        }
        else if (end == first)
        {
            r.AddError(OneDayPeriod(first, what));
        }
    }

    /// <summary>
    /// Why --from and --to on one day are refused (an empty period), with the --to to pass. The last day a date names has
    /// no day after it (adding one threw the runtime's "Value to add was out of range").
    /// </summary>
    private static string OneDayPeriod(DateOnly day, string what)
    {
        var suggestion = day < DateOnly.MaxValue
            ? $"for the one day {Day(day)} pass --to {Day(day.AddDays(1))}"
            : $"{Day(day)} is the last day a date can name, so no period starts on it";
        return $"--to is the day after the last day {what}, so --from and --to on one day make an empty period: {suggestion}.";
    }

    private static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    /// <summary>The usage table's grouping columns, in their order: the group_by name, the heading, the answer's field.</summary>
    private static readonly (string Group, string Column, string Field)[] Dimensions =
    [
        ("day", "day", "day"), ("tenant", "tenant", "tenant"), ("key", "key", "key_id"), ("model", "model", "model"),
        ("jurisdiction", "jurisdiction", "jurisdiction"), ("pool", "pool", "pool"), ("device_class", "device", "device_class"),
    ];

    /// <summary>One usage record: what was counted, what was billed, and the basis of a waiver (or that there was none).</summary>
    private static void PrintRecord(JsonElement record)
    {
        var table = new Table().AddColumns("field", "value");
        foreach (var name in (string[])["request_id", "tenant", "key_id", "model", "node", "jurisdiction", "pool", "language", "outcome", "refusal_code"])
        {
            table.AddRow(name, TenantsCommand.Text(record, name));
        }

        table.AddRow("prompt tokens", $"{TenantsCommand.Text(record, "prompt_tokens")} counted, {TenantsCommand.Text(record, "billed_prompt_tokens")} billed");
        table.AddRow("completion tokens", $"{TenantsCommand.Text(record, "completion_tokens")} counted, {TenantsCommand.Text(record, "billed_completion_tokens")} billed");
        if (record.GetProperty("character_equivalent") is { ValueKind: JsonValueKind.Object } basis)
        {
            string Letters(string part) =>
                $"{TenantsCommand.Text(basis.GetProperty(part), "language_letters")}/{TenantsCommand.Text(basis.GetProperty(part), "letters")} letters in the language";
            table.AddRow("billed as",
                $"character-equivalent: {TenantsCommand.Text(basis, "language")} at ratio {TenantsCommand.Text(basis, "ratio_to_english")} to English ({TenantsCommand.Text(basis, "basis")})");
            table.AddRow("prompt basis", Letters("prompt"));
            table.AddRow("completion basis", Letters("completion"));
        }
        else
        {
            table.AddRow("billed as", "per token, as counted");
        }

        table.AddRow("compute s", Number(record, "compute_seconds"));
        table.AddRow("cost", Money(record) + (TenantsCommand.Text(record, "price_version") is { Length: > 0 } version ? " (" + version + ")" : " (no price)"));
        AnsiConsole.Write(table);
    }

    private static Command Invoice()
    {
        var connection = new AdminConnection();
        var tenant = new Argument<string>("tenant") { Description = "Tenant id." };
        var from = new Option<string?>("--from") { Description = "First day, YYYY-MM-DD (default: the tenant's first day of usage)." };
        var to = new Option<string?>("--to") { Description = "Day after the last, YYYY-MM-DD (default: end of today); one day D is --from D --to D+1." };
        var format = new Option<string>("--format") { Description = "csv or json.", DefaultValueFactory = _ => "csv" };
        format.AcceptOnlyFromAmong("csv", "json");
        var currency = new Option<string?>("--currency") { Description = "Invoice only the usage in this ISO 4217 currency (needed when the period has several)." };
        var output = new Option<FileInfo?>("--output", "-o") { Description = "Write to this file (default: standard output); a file that exists is refused unless --force." };
        var force = new Option<bool>("--force") { Description = "Replace the --output file if it exists." };
        var command = new Command("invoice", "Export a tenant's invoice for a period; its totals reconcile with the usage records.") { tenant, from, to, format, currency, output, force };
        // Said before the server is asked: its 400 came back as exit 1, naming its query field (from, currency), not the flag.
        InvoiceDayFlag(from);
        InvoiceDayFlag(to);
        currency.Validators.Add(r =>
        {
            var value = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";
            if (!Sovereign.Metering.Pricing.Iso4217.IsKnown(value.ToUpperInvariant()))
            {
                r.AddError($"--currency: '{value}' is not an ISO 4217 currency code (e.g. EUR, USD, THB).");
            }
        });
        command.Validators.Add(r =>
        {
            // The same day twice is refused with the day to pass, below.
            if (InvoiceDay(r.GetValue(from)) is { } first && InvoiceDay(r.GetValue(to)) is { } end && end < first)
            {
                PeriodError(r, first, end, "invoiced");
            }
        });
        connection.AddTo(command);
        command.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            if (result.GetValue(output) is { } target)
            {
                // Said before the server is asked. An existing file was replaced without a word (explorer23): last
                // month's invoice, kept for the accountant, gone with one mistyped name.
                OutputFile.Check(target, result.GetValue(force), "invoice.csv");
            }

            if (result.GetValue(from) is { } first && first == result.GetValue(to)
                && DateOnly.TryParseExact(first, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day))
            {
                // An operator asking for one day names it twice; --to is exclusive, so that period is empty.
                throw new CliException(OneDayPeriod(day, "invoiced"), ExitCodes.Usage);
            }

            // --json (offered by every admin command) asks for the JSON invoice, like --format json.
            var query = new List<string> { "format=" + (result.GetValue(connection.Json) ? "json" : result.GetValue(format)) };
            Add(query, "from", result.GetValue(from));
            Add(query, "to", result.GetValue(to));
            Add(query, "currency", result.GetValue(currency)?.ToUpperInvariant());
            var text = await connection.SendTextAsync(result, $"/admin/v1/tenants/{AdminConnection.Segment(result.GetValue(tenant))}/invoice?" + string.Join('&', query), ct);
            if (result.GetValue(output) is { } file)
            {
                // Complete or not at all: a temporary file beside it, renamed into place (a file made meanwhile is not
                // replaced without --force either).
                await OutputFile.WriteAsync(file.FullName, result.GetValue(force), async stream =>
                {
                    await using var writer = new StreamWriter(stream, leaveOpen: true);
                    await writer.WriteAsync(text.AsMemory(), ct);
                });
                Console.WriteLine($"Wrote {file.FullName}.");
            }
            else
            {
                Console.Write(text);
            }
        }));
        return command;
    }

    private static Command Plans()
    {
        var command = new Command("plans", "Price plans: currency, fair-share weight, priority and per-model prices.");

        var list = new AdminConnection();
        var listCommand = new Command("list", "List plans and their prices.");
        list.AddTo(listCommand);
        listCommand.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await list.SendAsync(result, HttpMethod.Get, "/admin/v1/plans", null, ct);
            if (list.PrintJson(result, json))
            {
                return;
            }

            var table = new Table().AddColumns("plan", "currency", "weight", "priority", "model", "from", "input/1M", "cached input/1M", "output/1M", "per compute s");
            foreach (var plan in json.GetProperty("data").EnumerateArray())
            {
                var prices = plan.GetProperty("prices").EnumerateArray().ToList();
                if (prices.Count == 0)
                {
                    table.AddRow(TenantsCommand.Text(plan, "name"), TenantsCommand.Text(plan, "currency"), TenantsCommand.Text(plan, "weight"), TenantsCommand.Text(plan, "priority"), "", "", "", "", "", "");
                }

                foreach (var price in prices)
                {
                    table.AddRow(TenantsCommand.Text(plan, "name"), TenantsCommand.Text(plan, "currency"), TenantsCommand.Text(plan, "weight"), TenantsCommand.Text(plan, "priority"),
                        TenantsCommand.Text(price, "model"), CliTime.Of(price, "effective_from"), TenantsCommand.Text(price, "input_per_million"),
                        TenantsCommand.Text(price, "cached_input_per_million"), TenantsCommand.Text(price, "output_per_million"), TenantsCommand.Text(price, "per_compute_second"));
                }
            }

            AnsiConsole.Write(table);
            var compute = new Table().AddColumns("plan", "pool", "device class", "model", "from", "per compute s");
            var reservations = new Table().AddColumns("plan", "pool", "reserved slots");
            foreach (var plan in json.GetProperty("data").EnumerateArray())
            {
                foreach (var rate in plan.TryGetProperty("compute_prices", out var rates) ? rates.EnumerateArray() : default)
                {
                    compute.AddRow(TenantsCommand.Text(plan, "name"), TenantsCommand.Text(rate, "pool"), TenantsCommand.Text(rate, "device_class"),
                        TenantsCommand.Text(rate, "model") is { Length: > 0 } m ? m : "(all)", CliTime.Of(rate, "effective_from"), TenantsCommand.Text(rate, "per_compute_second"));
                }

                foreach (var reservation in plan.TryGetProperty("reservations", out var reserved) ? reserved.EnumerateArray() : default)
                {
                    reservations.AddRow(TenantsCommand.Text(plan, "name"), TenantsCommand.Text(reservation, "pool"), TenantsCommand.Text(reservation, "slots"));
                }
            }

            if (compute.Rows.Count > 0)
            {
                Console.WriteLine("Compute prices by pool or device class (precedence: model+pool, pool, model+device class, device class, model price):");
                AnsiConsole.Write(compute);
            }

            if (reservations.Rows.Count > 0)
            {
                Console.WriteLine("Reserved capacity:");
                AnsiConsole.Write(reservations);
            }
        }));

        var set = new AdminConnection();
        var name = new Argument<string>("name") { Description = "Plan name." };
        var currency = new Option<string?>("--currency") { Description = "ISO 4217 currency (required for a new plan)." };
        var weight = new Option<int?>("--weight") { Description = "Fair-share weight (default 1)." };
        var priority = new Option<string?>("--priority") { Description = "interactive or batch (a new plan: interactive; an existing one keeps its own)." };
        var reserve = new Option<string[]>("--reserve") { Description = "POOL=SLOTS: slots of the pool reserved for this plan's requests (per model); repeatable, replaces the plan's reservations; 'none' clears them." };
        var setCommand = new Command("set", "Create or update a plan.") { name, currency, weight, priority, reserve };
        set.AddTo(setCommand);
        setCommand.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await set.SendAsync(result, HttpMethod.Put, $"/admin/v1/plans/{AdminConnection.Segment(result.GetValue(name))}",
                new { currency = result.GetValue(currency), weight = result.GetValue(weight), priority = result.GetValue(priority), reservations = Reservations(result.GetValue(reserve)) }, ct);
            set.Print(result, json, () => Console.WriteLine($"Plan {json.GetProperty("name").GetString()} saved: {json.GetProperty("currency").GetString()}, weight {json.GetProperty("weight")}, {json.GetProperty("priority").GetString()}."));
        }));

        var price = new AdminConnection();
        var planName = new Argument<string>("plan") { Description = "Plan name." };
        var model = new Option<string>("--model") { Description = "Model id.", Required = true };
        ModelIdRule.Refuse(model);
        var input = Amount("--input-per-million", "Price per 1M input tokens.");
        var cachedInput = Amount("--cached-input-per-million", "Price per 1M prompt tokens served from the prefix cache (default: the input price).");
        var outputPrice = Amount("--output-per-million", "Price per 1M output tokens.");
        var compute = Amount("--per-compute-second", "Price per compute-second.");
        var effective = UtcTime("--effective-from", "When it takes effect (default: now), UTC unless it states an offset; never in the past.");
        var priceCommand = new Command("price", "Add a price for a model; it takes effect at the stated time and is audited.") { planName, model, input, cachedInput, outputPrice, compute, effective };
        price.AddTo(priceCommand);
        priceCommand.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await price.SendAsync(result, HttpMethod.Post, $"/admin/v1/plans/{AdminConnection.Segment(result.GetValue(planName))}/prices", new
            {
                model = result.GetValue(model),
                input_per_million = result.GetValue(input),
                cached_input_per_million = result.GetValue(cachedInput),
                output_per_million = result.GetValue(outputPrice),
                per_compute_second = result.GetValue(compute),
                effective_from = result.GetValue(effective),
            }, ct);
            price.Print(result, json, () => Console.WriteLine($"Price for {result.GetValue(model)} added to {result.GetValue(planName)}."));
        }));

        var computePrice = new AdminConnection();
        var computePlan = new Argument<string>("plan") { Description = "Plan name." };
        var pool = new Option<string?>("--pool") { Description = "The pool this compute price applies to (or --device-class)." };
        var deviceClass = new Option<string?>("--device-class") { Description = "The device class this compute price applies to, e.g. h100 or cpu (or --pool)." };
        var computeModel = new Option<string?>("--model") { Description = "Only this model (default: every model)." };
        var rate = Amount("--per-compute-second", "Price per compute-second.");
        rate.Required = true;
        var computeEffective = UtcTime("--effective-from", "When it takes effect (default: now), UTC unless it states an offset; never in the past.");
        var computeCommand = new Command("compute-price",
            "Add a compute-second price for a pool or a device class; it replaces the model price's compute rate (precedence: model+pool, pool, model+device class, device class).")
            { computePlan, pool, deviceClass, computeModel, rate, computeEffective };
        computeCommand.Validators.Add(result =>
        {
            // The server's 400 named its fields (pool, device_class), not the flags.
            if ((result.GetValue(pool) is null) == (result.GetValue(deviceClass) is null))
            {
                result.AddError("Name exactly one of --pool and --device-class: a compute price is for a pool or for a device class.");
            }
        });
        computePrice.AddTo(computeCommand);
        computeCommand.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await computePrice.SendAsync(result, HttpMethod.Post, $"/admin/v1/plans/{AdminConnection.Segment(result.GetValue(computePlan))}/compute-prices", new
            {
                pool = result.GetValue(pool),
                device_class = result.GetValue(deviceClass),
                model = result.GetValue(computeModel),
                per_compute_second = result.GetValue(rate),
                effective_from = result.GetValue(computeEffective),
            }, ct);
            computePrice.Print(result, json, () => Console.WriteLine($"Compute price for {(result.GetValue(pool) is { } p ? "pool " + p : "device class " + result.GetValue(deviceClass))} added to {result.GetValue(computePlan)}."));
        }));

        var withdraw = new AdminConnection();
        var withdrawPlan = new Argument<string>("plan") { Description = "Plan name." };
        var withdrawModel = new Option<string?>("--model") { Description = "The model of the price (with --pool or --device-class: of the compute price, if it names one)." };
        var withdrawPool = new Option<string?>("--pool") { Description = "Withdraw the compute price of this pool." };
        var withdrawDeviceClass = new Option<string?>("--device-class") { Description = "Withdraw the compute price of this device class." };
        var withdrawFrom = UtcTime("--effective-from", "The start of the price to withdraw, as plans list shows it (UTC unless it states an offset).");
        withdrawFrom.Required = true;
        var withdrawCommand = new Command("withdraw",
            "Withdraw a price (or, with --pool or --device-class, a compute price) that is not in force yet; audited. One in force stays: add a new price instead.")
            { withdrawPlan, withdrawModel, withdrawPool, withdrawDeviceClass, withdrawFrom };
        withdraw.AddTo(withdrawCommand);
        withdrawCommand.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var (poolName, deviceName, modelName) = (result.GetValue(withdrawPool), result.GetValue(withdrawDeviceClass), result.GetValue(withdrawModel));
            if (poolName is not null && deviceName is not null)
            {
                throw new CliException("--pool and --device-class: name one scope of a compute price, not both.", ExitCodes.Usage);
            }

            var compute = poolName is not null || deviceName is not null;
            if (!compute && modelName is null)
            {
                throw new CliException("withdraw needs --model (a model price) or --pool/--device-class (a compute price).", ExitCodes.Usage);
            }

            var query = new List<string>();
            foreach (var (key, value) in new[] { ("pool", poolName), ("device_class", deviceName), ("model", modelName) })
            {
                if (value is not null)
                {
                    query.Add($"{key}={Uri.EscapeDataString(value)}");
                }
            }

            query.Add("effective_from=" + Uri.EscapeDataString(result.GetValue(withdrawFrom)!.Value.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture)));
            var json = await withdraw.SendAsync(result, HttpMethod.Delete,
                $"/admin/v1/plans/{AdminConnection.Segment(result.GetValue(withdrawPlan))}/{(compute ? "compute-prices" : "prices")}?{string.Join('&', query)}", null, ct);
            withdraw.Print(result, json, () => Console.WriteLine($"{(compute ? "Compute price" : "Price")} from {CliTime.Format(result.GetValue(withdrawFrom)!.Value)} withdrawn from {result.GetValue(withdrawPlan)}."));
        }));

        command.Subcommands.Add(listCommand);
        command.Subcommands.Add(setCommand);
        command.Subcommands.Add(priceCommand);
        command.Subcommands.Add(computeCommand);
        command.Subcommands.Add(withdrawCommand);
        return command;
    }

    /// <summary>The plan's reservations from <c>--reserve POOL=SLOTS</c> values: null (unchanged) when none, empty for <c>none</c>.</summary>
    private static object[]? Reservations(string[]? values)
    {
        if (values is not { Length: > 0 })
        {
            return null;
        }

        if (values is ["none"])
        {
            return [];
        }

        return [.. values.Select(v => v.Split('=', 2) is [var pool, var slots] && int.TryParse(slots, NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            ? new { pool, slots = n }
            : throw new CliException($"--reserve takes POOL=SLOTS (e.g. th-h100=2) or none; got '{v}'.", ExitCodes.Usage))];
    }

    private static Command Limits()
    {
        var connection = new AdminConnection();
        var tenant = new Argument<string>("tenant") { Description = "Tenant id." };
        var budget = new Option<string[]>("--budget") { Description = "PERIOD=AMOUNT[@KEY_ID], period day, month or total; repeatable; replaces the budgets of the tenant itself or of the key it names, keeping the others ('none@KEY_ID' clears that key's, 'none' alone clears them all)." };
        var rpm = new Option<long?>("--requests-per-minute") { Description = "Requests per minute, tenant-wide or of the --key (0: no limit)." };
        var tpm = new Option<long?>("--tokens-per-minute") { Description = "Tokens per minute, tenant-wide or of the --key (0: no limit)." };
        var key = new Option<string?>("--key") { Description = "Set --requests-per-minute and --tokens-per-minute of this key (key_…, as 'keys list' shows it) instead of the tenant's." };
        // A negative rate went to the server, whose 400 named 'rate_limits[0]', not the flag, with exit 1.
        NotNegative(rpm, "requests");
        NotNegative(tpm, "tokens");
        var command = new Command("limits", "Set a tenant's budgets or rate limits (tenant-wide or a key's), keeping what is not named; without options, show them.") { tenant, budget, rpm, tpm, key };
        connection.AddTo(command);
        command.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var path = $"/admin/v1/tenants/{AdminConnection.Segment(result.GetValue(tenant))}/limits";
            var budgets = result.GetValue(budget) ?? [];
            JsonElement json;
            var rateKey = result.GetValue(key);
            if (rateKey is not null && result.GetValue(rpm) is null && result.GetValue(tpm) is null)
            {
                throw new CliException("--key names the key whose --requests-per-minute or --tokens-per-minute to set; give one of them (a key's budget is --budget PERIOD=AMOUNT@KEY_ID).", ExitCodes.Usage);
            }

            if (budgets.Length == 0 && result.GetValue(rpm) is null && result.GetValue(tpm) is null)
            {
                json = await connection.SendAsync(result, HttpMethod.Get, path, null, ct);
            }
            else
            {
                var parsed = budgets is ["none"] ? null : budgets.Select(ParseBudget).ToArray();

                // What is not named is kept. Every call replaced all limits: setting a rate limit removed the tenant's
                // budgets (its spend was then uncapped), setting a budget its rate limits, and either every key's rate
                // limit. Budgets are replaced per scope, the tenant's own or one key's: '--budget total=10@key_b' used
                // to replace every budget, so a migration setting one key's budget at a time (LiteLLM's max_budget per
                // key) left only the last key capped, and removed the tenant's own budget too, without a word. The edit
                // is written only if no other change came between the read and the write (else read and made again):
                // two at once each kept only their own flag.
                json = await connection.EditAsync(result, path, HttpMethod.Put, path, document =>
                {
                    var current = document.GetProperty("limits");
                    var scope = rateKey ?? "";
                    var rates = current.GetProperty("rate_limits").EnumerateArray().Where(r => TenantsCommand.Text(r, "key_id") != scope).Cast<object>().ToList();
                    var inForce = current.GetProperty("rate_limits").EnumerateArray().FirstOrDefault(r => TenantsCommand.Text(r, "key_id") == scope);
                    var requestsPerMinute = PerMinute(result.GetValue(rpm), inForce, "requests_per_minute");
                    var tokensPerMinute = PerMinute(result.GetValue(tpm), inForce, "tokens_per_minute");
                    if (requestsPerMinute is not null || tokensPerMinute is not null)
                    {
                        rates.Add(new { key_id = rateKey, requests_per_minute = requestsPerMinute, tokens_per_minute = tokensPerMinute });
                    }

                    object newBudgets = budgets.Length == 0 ? current.GetProperty("budgets")
                        : parsed is null ? Array.Empty<object>()
                        : current.GetProperty("budgets").EnumerateArray()
                            .Where(b => !parsed.Any(p => p.KeyId == (TenantsCommand.Text(b, "key_id") is { Length: > 0 } id ? id : null)))
                            .Cast<object>()
                            .Concat(parsed.Where(p => p.Period is not null).Select(p => new { period = p.Period, amount = p.Amount, key_id = p.KeyId }))
                            .ToList();
                    return new { budgets = newBudgets, rate_limits = rates };
                }, ct);
            }

            if (!connection.PrintJson(result, json))
            {
                // leased: what gateways' budget leases hold and have not admitted, apart from remaining (the four add up to the limit).
                var table = new Table().AddColumns("key", "period", "limit", "settled", "reserved", "leased", "remaining");
                foreach (var b in json.GetProperty("budgets").EnumerateArray())
                {
                    table.AddRow(TenantsCommand.Text(b, "key_id") is { Length: > 0 } k ? k : "(tenant)", TenantsCommand.Text(b, "period"),
                        Number(b, "limit") + " " + TenantsCommand.Text(b, "currency"), Number(b, "settled"), Number(b, "reserved"), Number(b, "leased"), Number(b, "remaining"));
                }

                AnsiConsole.Write(table);
                var rates = new Table().AddColumns("key", "requests / minute", "tokens / minute");
                foreach (var r in json.GetProperty("limits").GetProperty("rate_limits").EnumerateArray())
                {
                    rates.AddRow(TenantsCommand.Text(r, "key_id") is { Length: > 0 } k ? k : "(tenant)", Unlimited(r, "requests_per_minute"), Unlimited(r, "tokens_per_minute"));
                }

                if (rates.Rows.Count == 0)
                {
                    rates.AddRow("(tenant)", "unlimited", "unlimited");
                }

                AnsiConsole.Write(rates);
            }
        }));
        return command;
    }

    private static void NotNegative(Option<long?> option, string unit) => option.Validators.Add(r =>
    {
        if (ParseErrors.ValueOrNull<long>(r) is < 0)
        {
            r.AddError($"{option.Name} must be a number of {unit}, 0 (no limit) or more.");
        }
    });

    /// <summary>The tenant-wide limit to set: the flag's (0: none), else the one in force.</summary>
    private static long? PerMinute(long? given, JsonElement current, string name) => given switch
    {
        0 => null,
        { } value => value,
        null => current.ValueKind == JsonValueKind.Object && current.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null,
    };

    private static string Unlimited(JsonElement e, string name) => TenantsCommand.Text(e, name) is { Length: > 0 } value ? value : "unlimited";

    /// <summary>One <c>--budget</c>: a budget of the tenant (<see cref="KeyId"/> null) or of a key; <see cref="Period"/> null clears that key's (<c>none@KEY_ID</c>).</summary>
    private sealed record BudgetArgument(string? Period, decimal Amount, string? KeyId);

    private static BudgetArgument ParseBudget(string value)
    {
        var at = value.Split('@', 2);
        if (at is [_, ""])
        {
            // It was sent, and the server's 400 said the tenant has no key '' (exit 1).
            throw new CliException($"--budget '{value}': the key id after '@' is empty; name one of the tenant's keys (keys list) or leave '@' out for the tenant's own budget.", ExitCodes.Usage);
        }

        if (at[0] == "none")
        {
            return at.Length > 1
                ? new BudgetArgument(null, 0, at[1])
                : throw new CliException($"--budget none clears every budget and stands alone; 'none@KEY_ID' clears one key's.", ExitCodes.Usage);
        }

        var parts = at[0].Split('=', 2);
        return parts.Length == 2 && parts[0].Length > 0 && TryParseAmount(parts[1], out var amount)
            ? new BudgetArgument(parts[0], amount, at.Length > 1 ? at[1] : null)
            : throw new CliException($"--budget '{value}': expected PERIOD=AMOUNT[@KEY_ID] with a decimal point and no thousands separators, e.g. month=500 or day=1.5.", ExitCodes.Usage);
    }

    /// <summary>
    /// An amount of money (a price, a budget): digits with at most one decimal point, whatever the machine's culture.
    /// The parser took "0,20" as 20 (a thousands separator, anywhere), or "0.20" as 20 on a machine in a culture that
    /// writes decimal commas: a price in force can never be changed, so every request was billed 100 times over.
    /// </summary>
    private static bool TryParseAmount(string text, out decimal amount) =>
        decimal.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out amount);

    /// <summary>
    /// A time, UTC unless it states an offset, as every other time the CLI and the API take. The parser read
    /// <c>--effective-from 2031-01-01</c> in the machine's time zone: on one set to Bangkok, a price meant from the first
    /// of the month (invoices count UTC days) started at 17:00 UTC the day before.
    /// </summary>
    private static Option<DateTimeOffset?> UtcTime(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
            if (Sovereign.Gateway.ControlPlane.IsoTime.TryParse(text, out var time))
            {
                return time;
            }

            result.AddError($"{name}: '{text}' is not a time: give {Sovereign.Gateway.ControlPlane.IsoTime.Expected}, e.g. 2026-12-31T00:00:00Z.");
            return null;
        },
    };

    private static Option<decimal?> Amount(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
            if (TryParseAmount(text, out var amount))
            {
                return amount;
            }

            result.AddError($"{name}: '{text}' is not a decimal number (e.g. 0.25): write a decimal point and no thousands separators.");
            return null;
        },
    };

    private static void Add(List<string> query, string name, string? value)
    {
        if (!string.IsNullOrEmpty(value))
        {
            query.Add(name + "=" + Uri.EscapeDataString(value));
        }
    }

    /// <summary>
    /// A cost with its currency; usage no plan prices is in XXX (ISO 4217's "no currency"), shown as the amount alone
    /// (it read "0 USD" of a tenant that has no currency).
    /// </summary>
    private static string Money(JsonElement e) =>
        TenantsCommand.Text(e, "currency") is { Length: > 0 } currency and not NoCurrency ? Number(e, "cost") + " " + currency : Number(e, "cost");

    /// <summary>ISO 4217's "no currency": the currency of unpriced usage and of an empty invoice with no plan.</summary>
    private const string NoCurrency = "XXX";

    private static string Number(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDecimal().ToString("0.######", CultureInfo.InvariantCulture) : "";
}
