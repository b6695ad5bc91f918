using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Routing;
using Sovereign.Metering.Budgets;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Metering.RateLimiting;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Gateway.Metering;

internal sealed class PlanRequest
{
    public string? Currency { get; set; }
    public int? Weight { get; set; }
    public string? Priority { get; set; }
    public List<ReservationRequest?>? Reservations { get; set; }
}

internal sealed class ReservationRequest
{
    public string? Pool { get; set; }
    public int? Slots { get; set; }
}

internal sealed class ComputePriceRequest
{
    public string? Pool { get; set; }
    public string? DeviceClass { get; set; }
    public string? Model { get; set; }
    public decimal? PerComputeSecond { get; set; }
    [System.Text.Json.Serialization.JsonConverter(typeof(UtcTimeConverter))]
    public DateTimeOffset? EffectiveFrom { get; set; }
}

internal sealed class PriceRequest
{
    public string? Model { get; set; }
    public decimal? InputPerMillion { get; set; }
    public decimal? CachedInputPerMillion { get; set; }
    public decimal? OutputPerMillion { get; set; }
    public decimal? PerComputeSecond { get; set; }
    [System.Text.Json.Serialization.JsonConverter(typeof(UtcTimeConverter))]
    public DateTimeOffset? EffectiveFrom { get; set; }
}

/// <summary>
/// An ISO 8601 time in a request body, UTC unless it states an offset, and kept in UTC. System.Text.Json reads a time
/// without an offset in the server's time zone: on a machine set to Bangkok time, a price sent to start on
/// "2031-01-01T00:00:00" started at 2030-12-31T17:00:00Z (invoices count UTC days), listed and audited as "+07:00".
/// </summary>
internal sealed class UtcTimeConverter : System.Text.Json.Serialization.JsonConverter<DateTimeOffset?>
{
    public override DateTimeOffset? Read(ref System.Text.Json.Utf8JsonReader reader, Type typeToConvert, System.Text.Json.JsonSerializerOptions options)
    {
        // The reader's own ISO 8601 rules; a DateTime of unspecified kind is one the text gave no offset.
        if (reader.TokenType != System.Text.Json.JsonTokenType.String || !reader.TryGetDateTimeOffset(out var time) || !reader.TryGetDateTime(out var written))
        {
            throw new System.Text.Json.JsonException();
        }

        return written.Kind == DateTimeKind.Unspecified ? new DateTimeOffset(written.Ticks, TimeSpan.Zero) : time.ToUniversalTime();
    }

    public override void Write(System.Text.Json.Utf8JsonWriter writer, DateTimeOffset? value, System.Text.Json.JsonSerializerOptions options)
    {
        if (value is { } time)
        {
            writer.WriteStringValue(time.ToUniversalTime());
        }
        else
        {
            writer.WriteNullValue();
        }
    }
}

/// <summary>
/// <c>PUT /admin/v1/tenants/{id}/limits</c>: <c>budgets</c> and <c>rate_limits</c>, or the whole document
/// <c>GET</c> answered, edited: the settings under <c>limits</c> (with its read-only <c>currency</c>) and the budgets'
/// read-only status beside it, which is ignored, as Kubernetes ignores <c>status</c> on a PUT.
/// </summary>
internal sealed class LimitsRequest
{
    public List<BudgetRequest?>? Budgets { get; set; }
    public List<RateLimitRequest?>? RateLimits { get; set; }

    /// <summary>Read-only: the plan's currency. Accepted when it is the tenant's; it cannot be changed here.</summary>
    public string? Currency { get; set; }

    /// <summary>The settings as GET shows them; with it, the top-level <c>budgets</c> are GET's read-only status.</summary>
    public LimitsRequest? Limits { get; set; }
}

internal sealed class BudgetRequest
{
    public string? KeyId { get; set; }
    public string? Period { get; set; }
    public decimal? Amount { get; set; }

    /// <summary>Read-only status, as GET shows it; ignored.</summary>
    public decimal? Limit { get; set; }

    /// <summary>Read-only status, as GET shows it; ignored.</summary>
    public decimal? Settled { get; set; }

    /// <summary>Read-only status, as GET shows it; ignored.</summary>
    public decimal? Reserved { get; set; }

    /// <summary>Read-only status, as GET shows it; ignored.</summary>
    public decimal? Leased { get; set; }

    /// <summary>Read-only status, as GET shows it; ignored.</summary>
    public decimal? Remaining { get; set; }

    /// <summary>Read-only status, as GET shows it; ignored.</summary>
    public string? Currency { get; set; }
}

internal sealed class RateLimitRequest
{
    public string? KeyId { get; set; }
    public long? RequestsPerMinute { get; set; }
    public long? TokensPerMinute { get; set; }
}

/// <summary>
/// Pay-per-use administration (<c>/admin/v1</c>): plans and prices (changes take effect at a stated time and are
/// audited), budgets and rate limits per tenant and key, usage by tenant/model/day/jurisdiction, and invoices that
/// reconcile exactly with the ledger. Tenants read their own usage at <c>/v1/usage</c>.
/// </summary>
public static class MeteringApi
{
    /// <summary>Adds the metering endpoints to the admin and /v1 groups.</summary>
    public static void MapMeteringApi(this RouteGroupBuilder admin, RouteGroupBuilder v1)
    {
        admin.MapGet("/plans", ListPlans);
        admin.MapPut("/plans/{name}", PutPlan);
        admin.MapPost("/plans/{name}/prices", AddPrice);
        admin.MapPost("/plans/{name}/compute-prices", AddComputePrice);
        admin.MapDelete("/plans/{name}/prices", WithdrawPrice).Takes("model", "effective_from");
        admin.MapDelete("/plans/{name}/compute-prices", WithdrawComputePrice).Takes("pool", "device_class", "model", "effective_from");
        admin.MapGet("/tenants/{id}/limits", GetLimits);
        admin.MapPut("/tenants/{id}/limits", PutLimits);
        admin.MapGet("/usage", AdminUsage).Takes(["tenant", .. UsageParameters]);
        admin.MapGet("/usage/{request_id}", AdminUsageRecord);
        admin.MapGet("/tenants/{id}/invoice", Invoice).Takes("format", "from", "to", "currency");
        v1.MapGet("/usage", TenantUsage).Takes(UsageParameters);
        v1.MapGet("/usage/{request_id}", TenantUsageRecord);
    }

    private static readonly string[] UsageParameters = ["from", "to", "group_by", "model", "jurisdiction", "pool", "key_id", "limit", "after"];

    /// <summary>The most rows one page of usage holds, and its size when no limit is asked.</summary>
    internal const int MaxUsagePage = 10_000;

    private static IResult ListPlans(PriceBookProvider prices)
    {
        // One read of the book: the version names exactly the plans listed (every gateway of a cluster reaches it).
        var book = prices.Current;
        return Json(new { data = book.Plans.Select(PlanJson), version = book.Version });
    }

    private static async Task<IResult> PutPlan(string name, HttpContext context, PriceBookProvider prices, AuditLog audit, TimeProvider time, ControlPlaneStore store, IGrainFactory grains, Pipeline.PoolAdmission pools)
    {
        var request = await RequestReader.ReadAsync<PlanRequest>(context);
        // Left out, it stays as it is, as every other field does (it was set back to interactive).
        PriorityClass? priority = request.Priority?.ToLowerInvariant() switch
        {
            null => null,
            "interactive" => PriorityClass.Interactive,
            "batch" => PriorityClass.Batch,
            _ => throw OpenAIException.BadRequest("priority must be 'interactive' or 'batch'.", "priority", "invalid_value"),
        };
        var existing = prices.Current.FindPlan(name);
        var currency = request.Currency?.ToUpperInvariant() ?? existing?.Currency ?? throw OpenAIException.BadRequest("currency is required (ISO 4217).", "currency", "missing_required_parameter");
        var reservations = request.Reservations is null ? null : ReadReservations(request.Reservations);
        Plan Merged(Plan? current) => new()
        {
            // Plans are found whatever the case: PUT /plans/Standard renamed 'standard', which moved to the book's end.
            Name = current?.Name ?? name,
            Currency = request.Currency?.ToUpperInvariant() ?? current?.Currency ?? currency,
            Weight = request.Weight ?? current?.Weight ?? 1,
            Priority = priority ?? current?.Priority ?? PriorityClass.Interactive,
            Prices = current?.Prices ?? [],
            ComputePrices = current?.ComputePrices ?? [],
            Reservations = reservations ?? current?.Reservations ?? [],
        };

        var plan = Merged(existing);
        await CheckReservationsFitAsync(prices.Current, plan, pools);
        if (existing is not null && !string.Equals(existing.Currency, plan.Currency, StringComparison.Ordinal))
        {
            await RefuseCurrencyChangeUnderBudgetsAsync(existing, plan.Currency, store, grains);
        }

        var now = DateTimeOffset.FromUnixTimeMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds());
        // Merged into the book as the write transaction reads it: the prices were copied from this gateway's book
        // before, so a price added meanwhile (here, or at another gateway not yet heard from) was answered 201,
        // audited, and then written over.
        // The plan as that transaction found it, for the audit entry's values before the change.
        Plan? replaced = null;
        await UpdateAsync(prices, book =>
        {
            replaced = book.FindPlan(name);
            return book.WithPlan(Merged(replaced), now);
        }, now);
        var details = new Dictionary<string, string> { ["request_id"] = RequestIds.Of(context), ["plan"] = name };
        AddPlanSettings(details, "", Merged(replaced));
        if (replaced is not null)
        {
            // The entry stated only the new settings: an auditor could not see which currency a plan was moved off.
            AddPlanSettings(details, "old_", replaced);
        }

        await audit.AppendAsync(new AuditRecord { Kind = AuditKind.Admin, Actor = ControlPlane.AdminToken.ActorOf(context), Action = "plan.update", Details = details });
        return Json(PlanJson(prices.Current.FindPlan(name)!));
    }

    private static void AddPlanSettings(Dictionary<string, string> details, string prefix, Plan plan)
    {
        details[prefix + "currency"] = plan.Currency;
        details[prefix + "weight"] = plan.Weight.ToString(CultureInfo.InvariantCulture);
        details[prefix + "priority"] = plan.Priority.ToString();
        details[prefix + "reservations"] = string.Join(",", plan.Reservations.Select(r => $"{r.Pool}={r.Slots}"));
    }

    /// <summary>
    /// A plan's currency may change only while none of its tenants has budgets: a budget's amount is in the currency
    /// it was set in, and spend in two currencies is never summed or converted.
    /// </summary>
    private static async Task RefuseCurrencyChangeUnderBudgetsAsync(Plan existing, string currency, ControlPlaneStore store, IGrainFactory grains)
    {
        foreach (var tenant in await store.ListTenantsAsync())
        {
            if (string.Equals(tenant.Plan, existing.Name, StringComparison.OrdinalIgnoreCase)
                && (await grains.GetGrain<ITenantGrain>(tenant.Id).GetLimitsAsync()).Budgets.Count > 0)
            {
                throw new OpenAIException(StatusCodes.Status409Conflict,
                    $"Plan '{existing.Name}' cannot change from {existing.Currency} to {currency}: tenant '{tenant.Id}' has budgets in {existing.Currency}, and a budget never mixes currencies. Clear those budgets first.",
                    "invalid_request_error", "currency", "budget_currency_conflict");
            }
        }
    }

    private static async Task<IResult> AddPrice(string name, HttpContext context, PriceBookProvider prices, AuditLog audit, TimeProvider time)
    {
        var request = await RequestReader.ReadAsync<PriceRequest>(context);
        if (prices.Current.FindPlan(name) is null)
        {
            throw new OpenAIException(StatusCodes.Status404NotFound, $"No plan '{name}'.", "invalid_request_error", null, "plan_not_found");
        }

        if (string.IsNullOrWhiteSpace(request.Model))
        {
            throw OpenAIException.BadRequest("model is required.", "model", "missing_required_parameter");
        }

        if (RequestReader.FirstInvisible(request.Model) is { } invisible)
        {
            // A price for "m\u200B" looked like one for "m" in every list, and billed nothing: no request names it.
            throw RequestReader.InvisibleInModelId(request.Model, invisible, "model");
        }

        // Cached prompt tokens are a discount on input tokens: a cached rate above the input rate (5 typed for 0.5) was
        // stored and billed. Checked here, on the new price only: the book's validator reads prices already in force too.
        if (request.CachedInputPerMillion > request.InputPerMillion)
        {
            throw OpenAIException.BadRequest(
                $"cached_input_per_million ({request.CachedInputPerMillion.Value.ToString(CultureInfo.InvariantCulture)}) must not exceed input_per_million ({request.InputPerMillion!.Value.ToString(CultureInfo.InvariantCulture)}): cached prompt tokens are a discount on input tokens.",
                "cached_input_per_million", "invalid_price");
        }

        RequireBillableComputeRate(request.PerComputeSecond);

        // Prices are stored to the millisecond; a price without a start time applies from now.
        var now = DateTimeOffset.FromUnixTimeMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds());
        var price = new ModelPrice
        {
            Model = request.Model,
            EffectiveFrom = request.EffectiveFrom ?? now,
            InputPerMillion = request.InputPerMillion,
            CachedInputPerMillion = request.CachedInputPerMillion,
            OutputPerMillion = request.OutputPerMillion,
            PerComputeSecond = request.PerComputeSecond,
        };
        await UpdateAsync(prices, book => book.WithPrice(name, price, now), now);
        await audit.AppendAsync(new AuditRecord
        {
            Kind = AuditKind.Admin,
            Actor = ControlPlane.AdminToken.ActorOf(context),
            Action = "price.add",
            Details = new Dictionary<string, string>
            {
                ["request_id"] = RequestIds.Of(context),
                ["plan"] = name,
                ["model"] = price.Model,
                ["effective_from"] = price.EffectiveFrom.ToString("O", CultureInfo.InvariantCulture),
                ["input_per_million"] = price.InputPerMillion?.ToString(CultureInfo.InvariantCulture) ?? "",
                ["cached_input_per_million"] = price.CachedInputPerMillion?.ToString(CultureInfo.InvariantCulture) ?? "",
                ["output_per_million"] = price.OutputPerMillion?.ToString(CultureInfo.InvariantCulture) ?? "",
                ["per_compute_second"] = price.PerComputeSecond?.ToString(CultureInfo.InvariantCulture) ?? "",
            },
        });
        return Results.Json(PlanJson(prices.Current.FindPlan(name)!), OpenAIJson.Options, statusCode: StatusCodes.Status201Created);
    }

    /// <summary>
    /// A compute rate at which the compute a request reserves (<see cref="RequestMetering.MaxComputeSecondsPerRequest"/>)
    /// costs more than one request may be billed would refuse every request it prices; checked on the new price only.
    /// </summary>
    private static void RequireBillableComputeRate(decimal? perComputeSecond)
    {
        var max = CostCalculator.MaxRequestCost / RequestMetering.MaxComputeSecondsPerRequest;
        if (perComputeSecond > max)
        {
            throw OpenAIException.BadRequest(
                string.Create(CultureInfo.InvariantCulture,
                    $"per_compute_second may be at most {max}: a request reserves {RequestMetering.MaxComputeSecondsPerRequest} compute seconds, and one request may cost at most {CostCalculator.MaxRequestCost}."),
                "per_compute_second", "invalid_price");
        }
    }

    private static List<PoolReservation> ReadReservations(List<ReservationRequest?> requested)
    {
        var reservations = new List<PoolReservation>();
        for (var i = 0; i < requested.Count; i++)
        {
            var r = requested[i] ?? throw OpenAIException.BadRequest($"reservations[{i}] must be an object.", $"reservations[{i}]", "invalid_type");
            if (r.Pool is null)
            {
                throw OpenAIException.BadRequest($"reservations[{i}].pool is required.", $"reservations[{i}].pool", "missing_required_parameter");
            }

            if (r.Slots is null)
            {
                throw OpenAIException.BadRequest($"reservations[{i}].slots is required.", $"reservations[{i}].slots", "missing_required_parameter");
            }

            reservations.Add(new PoolReservation(r.Pool, r.Slots.Value));
        }

        return reservations;
    }

    /// <summary>
    /// Reservations must fit the pools they are in, where the pool's size is known: for every model a pool serves now,
    /// all plans' reserved slots there together at most its slots (a pool with no node up yet is not checked).
    /// </summary>
    private static async Task CheckReservationsFitAsync(PriceBook book, Plan plan, Pipeline.PoolAdmission pools)
    {
        var errors = PriceValidator.Validate([plan]);
        if (errors.Count > 0)
        {
            throw OpenAIException.BadRequest(string.Join(" ", errors.Select(e => $"{e.Field}: {e.Message}")), errors[0].Field, CodeOf(errors[0]));
        }

        for (var i = 0; i < plan.Reservations.Count; i++)
        {
            var pool = plan.Reservations[i].Pool;
            var reserved = book.Plans.Where(p => !string.Equals(p.Name, plan.Name, StringComparison.OrdinalIgnoreCase)).Sum(p => p.ReservedSlotsIn(pool)) + plan.Reservations[i].Slots;
            foreach (var (model, slots) in await pools.CapacityByModelAsync(pool))
            {
                if (reserved > slots)
                {
                    throw OpenAIException.BadRequest(
                        string.Create(CultureInfo.InvariantCulture,
                            $"reservations[{i}].slots: pool '{pool}' has {slots} slot(s) for '{model}', and plans would reserve {reserved} there with this change; reserve at most {slots - (reserved - plan.Reservations[i].Slots)}."),
                        $"reservations[{i}].slots", "reservation_exceeds_capacity");
                }
            }
        }
    }

    private static async Task<IResult> AddComputePrice(string name, HttpContext context, PriceBookProvider prices, AuditLog audit, TimeProvider time)
    {
        var request = await RequestReader.ReadAsync<ComputePriceRequest>(context);
        if (prices.Current.FindPlan(name) is null)
        {
            throw new OpenAIException(StatusCodes.Status404NotFound, $"No plan '{name}'.", "invalid_request_error", null, "plan_not_found");
        }

        if ((request.Pool is null) == (request.DeviceClass is null))
        {
            throw OpenAIException.BadRequest("Set exactly one of pool and device_class: a compute price is for a pool or for a device class.", request.Pool is null ? "pool" : "device_class", "invalid_value");
        }

        if (request.PerComputeSecond is null)
        {
            throw OpenAIException.BadRequest("per_compute_second is required.", "per_compute_second", "missing_required_parameter");
        }

        RequireBillableComputeRate(request.PerComputeSecond);

        var now = DateTimeOffset.FromUnixTimeMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds());
        var price = new ComputePrice
        {
            Pool = request.Pool,
            DeviceClass = DeviceClasses.Canonical(request.DeviceClass),
            Model = request.Model,
            EffectiveFrom = request.EffectiveFrom ?? now,
            PerComputeSecond = request.PerComputeSecond.Value,
        };
        await UpdateAsync(prices, book => book.WithComputePrice(name, price, now), now);
        await audit.AppendAsync(new AuditRecord
        {
            Kind = AuditKind.Admin,
            Actor = ControlPlane.AdminToken.ActorOf(context),
            Action = "compute_price.add",
            Details = new Dictionary<string, string>
            {
                ["request_id"] = RequestIds.Of(context),
                ["plan"] = name,
                ["scope"] = price.Scope,
                ["effective_from"] = price.EffectiveFrom.ToString("O", CultureInfo.InvariantCulture),
                ["per_compute_second"] = price.PerComputeSecond.ToString(CultureInfo.InvariantCulture),
            },
        });
        return Results.Json(PlanJson(prices.Current.FindPlan(name)!), OpenAIJson.Options, statusCode: StatusCodes.Status201Created);
    }

    /// <summary>
    /// Withdraws a price that is not in force yet (one scheduled by mistake: a wrong rate, a year mistyped): it was
    /// there to stay, and took effect at its time. A price in force is history the ledger cites: 409, add a new one.
    /// </summary>
    private static async Task<IResult> WithdrawPrice(string name, HttpContext context, PriceBookProvider prices, AuditLog audit, TimeProvider time)
    {
        var query = context.Request.Query;
        var model = query["model"].ToString() is { Length: > 0 } m ? m : throw OpenAIException.BadRequest("model is required: the model of the price to withdraw.", "model", "missing_required_parameter");
        var from = RequiredTime(query["effective_from"].ToString());
        ModelPrice? withdrawn = null;
        var now = DateTimeOffset.FromUnixTimeMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds());
        await UpdateAsync(prices, book =>
        {
            var plan = PlanOrNotFound(book, name);
            withdrawn = plan.Prices.FirstOrDefault(p => p.Model == model && p.EffectiveFrom == from)
                ?? throw new OpenAIException(StatusCodes.Status404NotFound, $"Plan '{name}' has no price for '{RequestReader.Shorten(model)}' from {PriceValidator.Format(from)}.", "invalid_request_error", "effective_from", "price_not_found");
            RefuseInForce(withdrawn.EffectiveFrom, now);
            return book.WithPlan(plan with { Prices = [.. plan.Prices.Where(p => !ReferenceEquals(p, withdrawn))] }, now);
        }, now);
        await audit.AppendAsync(new AuditRecord
        {
            Kind = AuditKind.Admin,
            Actor = ControlPlane.AdminToken.ActorOf(context),
            Action = "price.withdraw",
            // The rates withdrawn too: the entry named the price only by its model and start.
            Details = new Dictionary<string, string>
            {
                ["request_id"] = RequestIds.Of(context),
                ["plan"] = name,
                ["model"] = model,
                ["effective_from"] = withdrawn!.EffectiveFrom.ToString("O", CultureInfo.InvariantCulture),
                ["old_input_per_million"] = withdrawn.InputPerMillion?.ToString(CultureInfo.InvariantCulture) ?? "",
                ["old_cached_input_per_million"] = withdrawn.CachedInputPerMillion?.ToString(CultureInfo.InvariantCulture) ?? "",
                ["old_output_per_million"] = withdrawn.OutputPerMillion?.ToString(CultureInfo.InvariantCulture) ?? "",
                ["old_per_compute_second"] = withdrawn.PerComputeSecond?.ToString(CultureInfo.InvariantCulture) ?? "",
            },
        });
        return Json(PlanJson(prices.Current.FindPlan(name)!));
    }

    /// <summary>Withdraws a compute price that is not in force yet, as <see cref="WithdrawPrice"/> does a model price.</summary>
    private static async Task<IResult> WithdrawComputePrice(string name, HttpContext context, PriceBookProvider prices, AuditLog audit, TimeProvider time)
    {
        var query = context.Request.Query;
        var pool = query["pool"].ToString() is { Length: > 0 } p ? p : null;
        var deviceClass = query["device_class"].ToString() is { Length: > 0 } d ? d : null;
        var model = query["model"].ToString() is { Length: > 0 } m ? m : null;
        if ((pool is null) == (deviceClass is null))
        {
            throw OpenAIException.BadRequest("Set exactly one of pool and device_class: the scope of the compute price to withdraw.", pool is null ? "pool" : "device_class", "invalid_value");
        }

        var from = RequiredTime(query["effective_from"].ToString());
        var asked = new ComputePrice { Pool = pool, DeviceClass = deviceClass, Model = model, EffectiveFrom = from, PerComputeSecond = 0 };
        var scope = asked.Scope;
        ComputePrice? withdrawn = null;
        var now = DateTimeOffset.FromUnixTimeMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds());
        await UpdateAsync(prices, book =>
        {
            var plan = PlanOrNotFound(book, name);
            withdrawn = plan.ComputePrices.FirstOrDefault(c => c.HasScopeOf(asked) && c.EffectiveFrom == from)
                ?? throw new OpenAIException(StatusCodes.Status404NotFound, $"Plan '{name}' has no compute price for {RequestReader.Shorten(scope)} from {PriceValidator.Format(from)}.", "invalid_request_error", "effective_from", "price_not_found");
            RefuseInForce(withdrawn.EffectiveFrom, now);
            return book.WithPlan(plan with { ComputePrices = [.. plan.ComputePrices.Where(c => !ReferenceEquals(c, withdrawn))] }, now);
        }, now);
        await audit.AppendAsync(new AuditRecord
        {
            Kind = AuditKind.Admin,
            Actor = ControlPlane.AdminToken.ActorOf(context),
            Action = "compute_price.withdraw",
            Details = new Dictionary<string, string>
            {
                ["request_id"] = RequestIds.Of(context),
                ["plan"] = name,
                ["scope"] = withdrawn!.Scope,
                ["effective_from"] = withdrawn.EffectiveFrom.ToString("O", CultureInfo.InvariantCulture),
                ["old_per_compute_second"] = withdrawn.PerComputeSecond.ToString(CultureInfo.InvariantCulture),
            },
        });
        return Json(PlanJson(prices.Current.FindPlan(name)!));
    }

    private static DateTimeOffset RequiredTime(string value) =>
        ControlPlane.AdminApi.ParseTime(value, "effective_from")
            ?? throw OpenAIException.BadRequest("effective_from is required: the start of the price to withdraw, as plans list shows it.", "effective_from", "missing_required_parameter");

    private static Plan PlanOrNotFound(PriceBook book, string name) =>
        book.FindPlan(name) ?? throw new OpenAIException(StatusCodes.Status404NotFound, $"No plan '{name}'.", "invalid_request_error", null, "plan_not_found");

    private static void RefuseInForce(DateTimeOffset effectiveFrom, DateTimeOffset now)
    {
        if (effectiveFrom <= now)
        {
            throw new OpenAIException(StatusCodes.Status409Conflict,
                $"The price from {PriceValidator.Format(effectiveFrom)} is in force: usage was priced with it, so it stays; add a new price to change it from a later time.",
                "invalid_request_error", "effective_from", "price_in_force");
        }
    }

    private static async Task<IResult> GetLimits(string id, HttpContext context, IGrainFactory grains, RequestMetering metering)
    {
        var grain = grains.GetGrain<ITenantGrain>(id);
        _ = await grain.GetAsync() ?? throw NotFound(id);
        var limits = await grain.GetLimitsAsync();

        // The version of the settings (not of the budgets' spend beside them): a PUT of an edit of them sends it as If-Match.
        EditVersions.SetETag(context, TenantVersions.Of(limits));
        var budgets = await grain.GetBudgetsAsync();
        metering.NoteBudgets(id, budgets);
        return Json(new { limits = LimitsJson(limits), budgets = budgets.Select(BudgetJson) });
    }

    /// <summary>
    /// The settings a PUT sends, and the prefix its refusals name them with: the body itself, or, for the whole
    /// document GET answered, its <c>limits</c> (the budgets beside it are GET's read-only status and are ignored).
    /// </summary>
    private static (LimitsRequest Settings, string At) SettingsOf(LimitsRequest document)
    {
        if (document.Limits is not { } settings)
        {
            return (document, "");
        }

        if (document.RateLimits is not null || document.Currency is not null)
        {
            throw OpenAIException.BadRequest("Send the settings either under 'limits' (as GET shows them) or at the top level, not both.", "limits", "invalid_value");
        }

        for (var i = 0; i < (document.Budgets?.Count ?? 0); i++)
        {
            if (document.Budgets![i] is { Amount: not null })
            {
                throw OpenAIException.BadRequest(
                    $"budgets[{i}] beside 'limits' is GET's read-only status; put the budgets to set under 'limits.budgets'.", $"budgets[{i}].amount", "invalid_value");
            }
        }

        if (settings.Limits is not null)
        {
            throw OpenAIException.BadRequest("limits.limits is not a field; 'limits' holds budgets, rate_limits and currency.", "limits.limits", "unknown_parameter");
        }

        return (settings, "limits.");
    }

    private static async Task<IResult> PutLimits(string id, HttpContext context, IGrainFactory grains, AuditLog audit, PriceBookProvider prices, RequestMetering metering)
    {
        var grain = grains.GetGrain<ITenantGrain>(id);
        var tenant = await grain.GetAsync() ?? throw NotFound(id);
        var ifVersion = EditVersions.IfMatch(context, "tenant's limits");
        var document = await RequestReader.ReadAsync<LimitsRequest>(context);
        var (request, at) = SettingsOf(document);
        var current = await grain.GetLimitsAsync();

        // The currency the budgets are counted in: recorded with the budgets, else the plan's. A tenant without budgets
        // has none recorded, and a 'currency' other than its plan's was accepted there and the amounts taken in the
        // plan's currency (a budget sent as 5 USD became 5 EUR).
        var tenantCurrency = current.Currency ?? prices.Current.FindPlan(tenant.Plan)?.Currency;
        // A 'currency' (the body's, or a budget's: GET's read-only status) is accepted when it is the tenant's, never a conversion.
        void RequireTenantCurrency(string? given, string field)
        {
            if (given is not null && tenantCurrency is not null && !given.Equals(tenantCurrency, StringComparison.OrdinalIgnoreCase))
            {
                throw OpenAIException.BadRequest(
                    $"{field} is the tenant's plan's ({tenantCurrency}) and cannot be set here; move the tenant to a plan in {RequestReader.Shorten(given)} instead.", field, "invalid_value");
            }
        }

        RequireTenantCurrency(request.Currency, $"{at}currency");

        var keys = (await grain.ListKeysAsync()).Select(k => k.Id).ToHashSet(StringComparer.Ordinal);
        var budgets = new List<BudgetSetting>();
        for (var i = 0; i < (request.Budgets?.Count ?? 0); i++)
        {
            var b = request.Budgets![i] ?? throw OpenAIException.BadRequest($"{at}budgets[{i}] must be an object.", $"{at}budgets[{i}]", "invalid_type");
            if (!Enum.TryParse<BudgetPeriod>(b.Period, ignoreCase: true, out var period) || int.TryParse(b.Period, out _))
            {
                throw OpenAIException.BadRequest($"{at}budgets[{i}].period must be 'day', 'month' or 'total'; got '{RequestReader.Shorten(b.Period ?? "")}'.", $"{at}budgets[{i}].period", "invalid_value");
            }

            if (b.Amount is not > 0 || b.Amount > BudgetLimit.MaxAmount)
            {
                throw OpenAIException.BadRequest(
                    $"{at}budgets[{i}].amount must be a positive amount in the plan's currency, at most {BudgetLimit.MaxAmount.ToString(CultureInfo.InvariantCulture)}.",
                    $"{at}budgets[{i}].amount", "invalid_value");
            }

            if (decimal.Round(b.Amount.Value, BudgetLimit.Decimals) != b.Amount.Value)
            {
                // Spend is counted in millionths: a budget between two of them would be shown and compared as it is not.
                throw OpenAIException.BadRequest(
                    $"{at}budgets[{i}].amount has more than {BudgetLimit.Decimals} decimals; spend is counted in millionths of the currency (got {b.Amount.Value.ToString(CultureInfo.InvariantCulture)}).",
                    $"{at}budgets[{i}].amount", "invalid_value");
            }

            RequireTenantCurrency(b.Currency, $"{at}budgets[{i}].currency");

            RequireKeyOf(id, keys, b.KeyId, $"{at}budgets[{i}].key_id");

            if (budgets.Any(x => x.KeyId == b.KeyId && x.Period == period.ToString()))
            {
                throw OpenAIException.BadRequest($"{at}budgets[{i}] repeats a budget for the same key and period.", $"{at}budgets[{i}]", "invalid_value");
            }

            budgets.Add(new BudgetSetting(b.KeyId, period.ToString(), b.Amount.Value));
        }

        var rates = new List<RateLimitSetting>();
        for (var i = 0; i < (request.RateLimits?.Count ?? 0); i++)
        {
            var r = request.RateLimits![i] ?? throw OpenAIException.BadRequest($"{at}rate_limits[{i}] must be an object.", $"{at}rate_limits[{i}]", "invalid_type");
            if (r.RequestsPerMinute is < 1 || r.TokensPerMinute is < 1 || (r.RequestsPerMinute is null && r.TokensPerMinute is null))
            {
                throw OpenAIException.BadRequest($"{at}rate_limits[{i}] needs requests_per_minute and/or tokens_per_minute, each at least 1.", $"{at}rate_limits[{i}].requests_per_minute", "invalid_value");
            }

            // Above this the token bucket cannot count, and every request of the tenant failed with a 500.
            foreach (var (value, field) in new[] { (r.RequestsPerMinute, "requests_per_minute"), (r.TokensPerMinute, "tokens_per_minute") })
            {
                if (value > RateLimitPolicy.MaxPerMinute)
                {
                    throw OpenAIException.BadRequest(
                        $"{at}rate_limits[{i}].{field} may be at most {RateLimitPolicy.MaxPerMinute.ToString(CultureInfo.InvariantCulture)}; leave it out for no limit.",
                        $"{at}rate_limits[{i}].{field}", "invalid_value");
                }
            }

            RequireKeyOf(id, keys, r.KeyId, $"{at}rate_limits[{i}].key_id");

            // The limiter takes one entry per key: a second one was stored, then the limiter could not be built from
            // it (a 500 for the change, and for every request of the tenant once its grain was activated again).
            if (rates.Any(x => x.KeyId == r.KeyId))
            {
                throw OpenAIException.BadRequest(
                    $"{at}rate_limits[{i}] repeats a rate limit for {(r.KeyId is null ? "the tenant" : $"key '{r.KeyId}'")}; give one entry per key (and one without key_id for the tenant), with requests_per_minute and tokens_per_minute together.",
                    $"{at}rate_limits[{i}]", "invalid_value");
            }

            rates.Add(new RateLimitSetting(r.KeyId, r.RequestsPerMinute, r.TokensPerMinute));
        }

        var limits = new TenantLimits(budgets, rates);
        // The settings are replaced whole, so an edit of settings read before sends If-Match: checked in the same turn as the write.
        var change = await grain.SetLimitsIfVersionAsync(limits, ifVersion);
        switch (change.Refusal)
        {
            case TenantChangeRefusal.TenantNotFound:
                throw NotFound(id);
            case TenantChangeRefusal.VersionChanged:
                throw EditVersions.Stale("tenant's limits");
            case TenantChangeRefusal.PlanWithoutCurrency:
                throw OpenAIException.BadRequest(
                    $"Budgets are in the currency of the tenant's plan, and the plan '{(await grain.GetAsync())?.Plan}' is not in the price book. Create the plan (PUT /admin/v1/plans/{{name}}) or move the tenant to one first.",
                    "budgets", "plan_without_currency");
            case not TenantChangeRefusal.None:
                throw new OpenAIException(StatusCodes.Status409Conflict, $"The limits were not changed ({change.Refusal}).", "invalid_request_error", "budgets", "limits_refused");
        }

        limits = await grain.GetLimitsAsync();
        if (change.Unchanged)
        {
            // The same limits again change nothing, so nothing is audited (as a tenant PATCH that changes nothing):
            // each such PUT wrote a limits.update entry. The grain decides (its stored currency included): this
            // compared budgets and rate limits only, so budgets moved to another currency went unaudited.
            return await LimitsAnswerAsync(context, id, grain, limits, metering);
        }

        var details = new Dictionary<string, string>
        {
            ["request_id"] = RequestIds.Of(context),
            ["limits"] = System.Text.Json.JsonSerializer.Serialize(LimitsJson(limits), OpenAIJson.Options),
        };
        // The limits replaced, whole, beside the new ones: the entry stated only the new limits, so an auditor could not
        // see what a budget was raised from. A silo older than PreviousLimits states none, and the entry then has none
        // rather than limits read before the write, which another change may have replaced in between.
        if (change.PreviousLimits is { } previous)
        {
            details["old_limits"] = System.Text.Json.JsonSerializer.Serialize(LimitsJson(previous), OpenAIJson.Options);
        }

        await audit.AppendAsync(new AuditRecord { Kind = AuditKind.Admin, Actor = ControlPlane.AdminToken.ActorOf(context), Action = "limits.update", Tenant = id, Details = details });
        return await LimitsAnswerAsync(context, id, grain, limits, metering);
    }

    private static async Task<IResult> LimitsAnswerAsync(HttpContext context, string id, ITenantGrain grain, TenantLimits limits, RequestMetering metering)
    {
        EditVersions.SetETag(context, TenantVersions.Of(limits));
        var status = await grain.GetBudgetsAsync();
        metering.NoteBudgets(id, status);
        return Json(new { limits = LimitsJson(limits), budgets = status.Select(BudgetJson) });
    }

    private static async Task<IResult> AdminUsage(HttpContext context, UsageLedger ledger, IGrainFactory grains) =>
        Json(await UsagePageAsync(context, ledger, ParseQuery(context, await AdminApi.TenantFilterAsync(context, grains))));

    private static async Task<IResult> TenantUsage(HttpContext context, UsageLedger ledger, ControlPlane.TenantReadLimits reads)
    {
        var caller = await reads.TenantAsync(context, "Usage");

        return Json(await UsagePageAsync(context, ledger, ParseQuery(context, caller.TenantId)));
    }

    /// <summary>
    /// One page of usage rows in the answer's order, as OpenAI pages its lists: <c>limit</c> (1 to 10,000; default the
    /// most) and <c>after</c> (the previous page's <c>last_id</c>, with the same filters and <c>group_by</c>);
    /// <c>has_more</c> says whether another page follows. It answered every row at once: the default grouping (tenant,
    /// model, day) over a year of 100,000 tenants is a row per tenant and day it was used, built whole in memory.
    /// </summary>
    private static async Task<object> UsagePageAsync(HttpContext context, UsageLedger ledger, UsageQuery query)
    {
        var limit = ListPaging.Limit(context.Request.Query, MaxUsagePage, MaxUsagePage);
        IReadOnlyList<UsageRow> rows;
        try
        {
            rows = await ledger.QueryUsageAsync(query with { Limit = limit + 1, After = context.Request.Query["after"].ToString() is { Length: > 0 } after ? after : null }, context.RequestAborted);
        }
        catch (ArgumentException cursor) when (context.Request.Query["after"].Count > 0)
        {
            throw OpenAIException.BadRequest($"after: {cursor.Message.Split(" (Parameter", 2)[0]}.", "after", "invalid_value");
        }

        var page = rows.Count > limit ? rows.Take(limit).ToList() : rows;
        return new
        {
            @object = "list",
            data = page.Select(UsageJson),
            last_id = page.Count > 0 ? UsageLedger.CursorOf(page[^1], query.GroupBy) : null,
            has_more = rows.Count > limit,
        };
    }

    /// <summary>One request's usage record, with the basis it was billed on (the operator's view: any tenant's).</summary>
    private static async Task<IResult> AdminUsageRecord([Microsoft.AspNetCore.Mvc.FromRoute(Name = "request_id")] string requestId, HttpContext context, UsageLedger ledger) =>
        Json(UsageRecordJson(await ledger.GetAsync(requestId, context.RequestAborted) ?? throw RecordNotFound(requestId)));

    /// <summary>
    /// One of the caller's own requests, by the id its answer carried (<c>x-sovereign-audit-id</c>): what was counted,
    /// what was billed and why. Another tenant's request is a 404, as a missing one is (no probing of ids).
    /// </summary>
    private static async Task<IResult> TenantUsageRecord([Microsoft.AspNetCore.Mvc.FromRoute(Name = "request_id")] string requestId, HttpContext context, UsageLedger ledger, ControlPlane.TenantReadLimits reads)
    {
        var caller = await reads.TenantAsync(context, "Usage");

        var record = await ledger.GetAsync(requestId, context.RequestAborted);
        return record is not null && string.Equals(record.Tenant, caller.TenantId, StringComparison.Ordinal)
            ? Json(UsageRecordJson(record))
            : throw RecordNotFound(requestId);
    }

    private static OpenAIException RecordNotFound(string requestId) => new(StatusCodes.Status404NotFound,
        $"No usage record for request '{RequestReader.Shorten(requestId)}' (records older than the ledger's retention are purged; usage totals keep them).",
        "invalid_request_error", "request_id", "usage_record_not_found");

    private static async Task<IResult> Invoice(string id, HttpContext context, UsageLedger ledger, IGrainFactory grains, PriceBookProvider prices)
    {
        var tenant = await grains.GetGrain<ITenantGrain>(id).GetAsync() ?? throw NotFound(id);
        var format = context.Request.Query["format"].ToString() is { Length: > 0 } f ? f.ToLowerInvariant() : "json";
        if (format is not ("json" or "csv"))
        {
            throw OpenAIException.BadRequest("format must be 'json' or 'csv'.", "format", "invalid_value");
        }

        // Invoices cover whole UTC days: from and to are dates (YYYY-MM-DD), to the day after the last; to defaults to
        // the end of today, from to the tenant's first day of usage (the day it was created when it has none): it was
        // 1970-01-01, which an invoice then stated as its period.
        var query = context.Request.Query;
        var periodTo = query["to"].Count == 0 ? new DateTimeOffset(DateTime.UtcNow.Date.AddDays(1), TimeSpan.Zero) : Date(query["to"].ToString(), "to");
        var periodFrom = query["from"].Count > 0
            ? Date(query["from"].ToString(), "from")
            : await ledger.GetFirstUsageDayAsync(id, context.RequestAborted)
                ?? new DateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(tenant.CreatedAt).UtcDateTime.Date, TimeSpan.Zero);
        if (periodTo == periodFrom && query["from"].Count > 0)
        {
            // An operator asking for one day sends it twice; to is exclusive, so that period is empty.
            throw OneDayPeriod(periodFrom, "to is the day after the last day invoiced");
        }

        if (periodTo <= periodFrom)
        {
            throw OpenAIException.BadRequest(query["from"].Count > 0
                    ? "to must be after from (to is the day after the last day invoiced)."
                    : string.Create(CultureInfo.InvariantCulture, $"to must be after the tenant's first day of usage, {periodFrom:yyyy-MM-dd} (to is the day after the last day invoiced)."),
                "to", "invalid_value");
        }

        Invoice invoice;
        try
        {
            var currency = query["currency"].ToString() is { Length: > 0 } c ? c.ToUpperInvariant() : null;
            if (currency is not null && !Sovereign.Metering.Pricing.Iso4217.IsKnown(currency))
            {
                // Else an empty invoice in a made-up currency ("XYZ", "EURO") looks like "nothing to bill".
                var shown = currency.Length <= 8 && currency.All(char.IsAsciiLetterOrDigit) ? $"'{currency}'" : "a value";
                throw OpenAIException.BadRequest($"currency must be an ISO 4217 currency code (e.g. EUR, USD, THB); got {shown}.", "currency", "invalid_value");
            }

            var planCurrency = prices.Current.FindPlan(tenant.Plan)?.Currency;
            if (currency is not null && planCurrency is not null && currency != planCurrency
                && !(await ledger.GetUsageCurrenciesAsync(id, context.RequestAborted)).Contains(currency, StringComparer.Ordinal))
            {
                // The plan fixes the currency: one the tenant was never billed in answered an empty invoice (200), which
                // reads as "nothing to pay" while the usage sits on the invoice in the plan's currency.
                throw OpenAIException.BadRequest(
                    $"Tenant '{id}' is billed in {planCurrency} (its plan '{tenant.Plan}') and has no usage in {currency}: ask for currency={planCurrency}, or leave currency out.",
                    "currency", "currency_not_billed");
            }

            // A period with nothing charged is invoiced in the currency of the tenant's plan, not in "XXX", and unpriced
            // usage (XXX, or USD as recorded before XXX) is free lines of the invoice, not a second currency.
            invoice = await new InvoiceBuilder(ledger).BuildAsync(id, periodFrom, periodTo, currency, planCurrency, context.RequestAborted);
        }
        catch (InvalidOperationException ex)
        {
            throw OpenAIException.BadRequest(ex.Message + " Pass currency=... (sovereign invoice --currency ...) to choose one.", "currency", "several_currencies");
        }

        return format == "csv"
            ? Results.Text(InvoiceFormatter.ToCsv(invoice), "text/csv; charset=utf-8")
            : Results.Text(InvoiceFormatter.ToJson(invoice), OpenAIJson.ContentType);
    }

    /// <summary>
    /// The 400 for from and to on one day (<paramref name="day"/>, a UTC midnight): an empty period, with the to to pass.
    /// The last day a date names has no day after it to suggest (adding one threw: a 500).
    /// </summary>
    private static OpenAIException OneDayPeriod(DateTimeOffset day, string toMeans)
    {
        var suggestion = day.UtcDateTime.Date < DateTime.MaxValue.Date
            ? string.Create(CultureInfo.InvariantCulture, $"for the one day {day.UtcDateTime:yyyy-MM-dd} pass to={day.UtcDateTime.AddDays(1):yyyy-MM-dd}")
            : string.Create(CultureInfo.InvariantCulture, $"{day.UtcDateTime:yyyy-MM-dd} is the last day a date can name, so no period starts on it");
        return OpenAIException.BadRequest($"{toMeans}, so from and to on one day make an empty period: {suggestion}.", "to", "invalid_value");
    }

    private static DateTimeOffset Date(string value, string field) =>
        DateOnly.TryParseExact(value, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date)
            ? new DateTimeOffset(date.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero)
            : throw OpenAIException.BadRequest($"{field} must be a date, YYYY-MM-DD (invoices cover whole UTC days); got '{RequestReader.Shorten(value)}'.", field, "invalid_value");

    private static UsageQuery ParseQuery(HttpContext context, string? tenant)
    {
        var query = context.Request.Query;
        var (from, to) = AdminApi.AuditRange(query["from"], query["to"]);
        RequireDayStart(query["from"], from, "from");
        RequireDayStart(query["to"], to, "to");
        if (query["from"].Count > 0 && query["to"].Count > 0 && from == to)
        {
            // An operator asking for one day sends it twice; to is exclusive, so that period is empty, and its empty
            // list read as "no usage that day" (explorer23). The invoice and the CLI's usage refuse it the same way.
            throw OneDayPeriod(from, "to is the end of the period, exclusive (the day after the last day counted)");
        }

        var groupBy = UsageGroupBy.None;
        foreach (var part in query["group_by"].ToString().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            groupBy |= Enum.TryParse<UsageGroupBy>(part.Replace("_", "", StringComparison.Ordinal), ignoreCase: true, out var g) && !int.TryParse(part, out _)
                ? g
                : throw OpenAIException.BadRequest($"group_by takes day, model, jurisdiction, tenant, pool, device_class and key; got '{RequestReader.Shorten(part)}'.", "group_by", "invalid_value");
        }

        return new UsageQuery
        {
            Tenant = string.IsNullOrEmpty(tenant) ? null : tenant,

            // A node in a cluster records the work gateways relay to it under this caller, in the shared database; the
            // gateway records the same request under its tenant. Counted in totals, every relayed request was there twice.
            ExcludedTenant = ControlPlane.ClusterRelay.RelayTenant,
            Model = query["model"].ToString() is { Length: > 0 } m ? m : null,
            Jurisdiction = query["jurisdiction"].ToString() is { Length: > 0 } j ? j.ToUpperInvariant() : null,
            Pool = query["pool"].ToString() is { Length: > 0 } p ? p : null,
            KeyId = query["key_id"].ToString() is { Length: > 0 } k ? k : null,
            From = from,
            To = to > DateTimeOffset.UtcNow.AddYears(100) ? DateTimeOffset.UtcNow.AddDays(1) : to,
            GroupBy = groupBy == UsageGroupBy.None ? UsageGroupBy.Tenant | UsageGroupBy.Model | UsageGroupBy.Day : groupBy,
        };
    }

    /// <summary>
    /// Usage is kept per UTC day (the daily aggregates), so a period is whole days: a time inside a day was widened to
    /// the whole day without a word (from 23:00 answered all of that day's requests and cost).
    /// </summary>
    private static void RequireDayStart(Microsoft.Extensions.Primitives.StringValues given, DateTimeOffset time, string field)
    {
        if (given.Count > 0 && time.UtcTicks % TimeSpan.TicksPerDay != 0)
        {
            throw OpenAIException.BadRequest(
                $"{field} must be the start of a UTC day (usage is kept per UTC day), e.g. 2026-12-05 or 2026-12-05T00:00:00Z; got '{RequestReader.Shorten(given.ToString())}'.",
                field, "invalid_value");
        }
    }

    /// <summary>
    /// A key's budget or rate limit names one of the tenant's keys: a misspelt or foreign key id used to be stored,
    /// capping nothing, while the key the operator meant stayed unlimited.
    /// </summary>
    private static void RequireKeyOf(string tenant, HashSet<string> keys, string? keyId, string field)
    {
        if (keyId is not null && !keys.Contains(keyId))
        {
            throw OpenAIException.BadRequest($"{field}: the tenant '{tenant}' has no key '{RequestReader.Shorten(keyId)}' (leave key_id out for the tenant's own limit).", field, "key_not_found");
        }
    }

    private static async Task UpdateAsync(PriceBookProvider prices, Func<PriceBook, PriceBook> change, DateTimeOffset now)
    {
        try
        {
            await prices.UpdateAsync(change, now);
        }
        catch (PriceValidationException ex)
        {
            var first = ex.Errors[0];
            throw OpenAIException.BadRequest(string.Join(" ", ex.Errors.Select(e => $"{e.Field}: {e.Message}")), first.Field, CodeOf(first));
        }
    }

    /// <summary>A price's error is <c>invalid_price</c>; the plan's own (weight, priority, currency, reservations) <c>invalid_plan</c>.</summary>
    private static string CodeOf(PriceValidationError error) =>
        error.Target.Contains(" price '", StringComparison.Ordinal) ? "invalid_price" : "invalid_plan";

    private static OpenAIException NotFound(string id) => new(StatusCodes.Status404NotFound, $"No tenant '{id}'.", "invalid_request_error", null, "tenant_not_found");

    private static IResult Json(object value) => Results.Json(value, OpenAIJson.Options);

    private static object PlanJson(Plan p) => new
    {
        name = p.Name,
        currency = p.Currency,
        weight = p.Weight,
        priority = p.Priority.ToString().ToLowerInvariant(),
        prices = p.Prices.Select(x => new
        {
            model = x.Model,
            effective_from = x.EffectiveFrom,
            input_per_million = x.InputPerMillion,
            cached_input_per_million = x.EffectiveCachedInputPerMillion,
            output_per_million = x.OutputPerMillion,
            per_compute_second = x.PerComputeSecond,
        }),
        compute_prices = p.ComputePrices.Select(x => new
        {
            pool = x.Pool,
            device_class = x.DeviceClass,
            model = x.Model,
            effective_from = x.EffectiveFrom,
            per_compute_second = x.PerComputeSecond,
        }),
        reservations = p.Reservations.Select(r => new { pool = r.Pool, slots = r.Slots }),
    };

    internal static object LimitsJson(TenantLimits l) => new
    {
        currency = l.Currency,
        budgets = l.Budgets.Select(b => new { key_id = b.KeyId, period = b.Period.ToLowerInvariant(), amount = b.Amount }),
        rate_limits = l.RateLimits.Select(r => new { key_id = r.KeyId, requests_per_minute = r.RequestsPerMinute, tokens_per_minute = r.TokensPerMinute }),
    };

    /// <summary>
    /// One budget as the limits answers show it, in four parts that do not overlap: <c>settled</c> (spent),
    /// <c>reserved</c> (requests in flight), <c>leased</c> (gateways' budget leases hold it and have not admitted it yet)
    /// and <c>remaining</c> (held by nothing), so <c>settled + reserved + leased + remaining = limit</c> while the budget is
    /// not overspent. The tenant can still spend <c>leased + remaining</c> (a lease's unspent part returns when it closes,
    /// and a request the leases would refuse closes them), which <see cref="BudgetStatusView.Remaining"/> is and
    /// <c>sovereign_budget_remaining</c> reports. <c>remaining</c> counted the leased money too, with no field naming it:
    /// an operator adding the columns counted it twice, and could not tell a lease from money nobody held.
    /// </summary>
    internal static object BudgetJson(BudgetStatusView b) => new
    {
        key_id = b.KeyId, period = b.Period, limit = b.Limit, settled = b.Settled, reserved = b.Reserved, leased = b.Leased,
        remaining = Math.Max(0m, b.Remaining - b.Leased), currency = b.Currency,
    };

    private static object UsageJson(UsageRow r) => new
    {
        day = r.Day?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        tenant = r.Tenant,
        model = r.Model,
        jurisdiction = r.Jurisdiction,
        pool = r.Pool,
        device_class = r.DeviceClass,
        key_id = r.KeyId,
        currency = r.Currency,
        requests = r.Requests,
        completed = r.Completed,
        refused = r.Refused,
        cancelled = r.Cancelled,
        failed = r.Failed,
        prompt_tokens = r.PromptTokens,
        cached_tokens = r.CachedTokens,
        completion_tokens = r.CompletionTokens,
        compute_seconds = r.ComputeSeconds,
        cost = r.Cost,
        waived_requests = r.WaivedRequests,
        waived_prompt_tokens = r.WaivedPromptTokens,
        waived_completion_tokens = r.WaivedCompletionTokens,
        billed_prompt_tokens = r.PromptTokens - r.WaivedPromptTokens,
        billed_completion_tokens = r.CompletionTokens - r.WaivedCompletionTokens,
    };

    /// <summary>
    /// A usage record as the API shows it: counted and billed tokens, and the basis of a bill per character-equivalent
    /// (null: billed per token as counted), from which the billed tokens are recomputed:
    /// <c>ceil(tokens / (1 + language_letters/letters × (ratio_to_english − 1)))</c>, prompt and completion each on its own letters.
    /// </summary>
    internal static object UsageRecordJson(UsageRecord r) => new
    {
        @object = "usage.record",
        request_id = r.RequestId,
        created_at = r.Timestamp.ToUnixTimeSeconds(),
        tenant = r.Tenant,
        key_id = r.KeyId,
        model = r.Model,
        node = r.Node,
        jurisdiction = r.Jurisdiction,
        pool = r.Pool,
        device_class = r.DeviceClass,
        language = r.Language,
        outcome = r.Outcome.ToString().ToLowerInvariant(),
        refusal_code = r.RefusalCode,
        prompt_tokens = r.PromptTokens,
        cached_tokens = r.CachedTokens,
        completion_tokens = r.CompletionTokens,
        billed_prompt_tokens = r.PromptTokens - r.WaivedPromptTokens,
        billed_completion_tokens = r.CompletionTokens - r.WaivedCompletionTokens,
        waived_prompt_tokens = r.WaivedPromptTokens,
        waived_completion_tokens = r.WaivedCompletionTokens,
        character_equivalent = r.CharacterEquivalent is { } b ? new
        {
            language = b.Language,
            ratio_to_english = b.RatioToEnglish,
            basis = b.Method,
            prompt = new { language_letters = b.LanguageLetters, letters = b.PromptLetters, share = Math.Round(b.Share, 4), effective_ratio = b.EffectiveRatio },
            completion = new { language_letters = b.CompletionLanguageLetters, letters = b.CompletionLetters, share = Math.Round(b.CompletionShare, 4), effective_ratio = b.CompletionEffectiveRatio },
        } : null,
        compute_seconds = r.ComputeSeconds,
        cost = r.Cost,
        currency = r.Currency,
        price_version = r.PriceVersion,
    };
}
