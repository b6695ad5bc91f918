using System.Globalization;
using System.Text.Json;

namespace Sovereign.Gateway.Console;

/// <summary>The operator's pages; each reads /admin/v1 with the operator token, as the CLI does.</summary>
internal static class OperatorPages
{
    private static readonly string[] Groupings = ["tenant", "model", "jurisdiction", "day"];

    public static async Task<IResult> Pool(HttpContext context, ConsoleSession session)
    {
        var api = new ConsoleApiClient(context, session.Credential);
        var nodes = await api.GetAsync("/admin/v1/nodes", context.RequestAborted);
        var models = await api.GetAsync("/admin/v1/models", context.RequestAborted);
        // Only the count: the list answers how many tenants exist beside its first page (it read every tenant to count them).
        var tenants = await api.GetAsync("/admin/v1/tenants?limit=1", context.RequestAborted);
        var page = new ConsolePage("Pool", session);
        Fail(page, nodes, models, tenants);
        var byJurisdiction = nodes.Data.GroupBy(n => ConsolePage.Text(n, "jurisdiction")).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
        page.Paragraph(string.Create(CultureInfo.InvariantCulture,
            $"{nodes.Data.Count()} nodes in {byJurisdiction.Count} jurisdictions ({string.Join(", ", byJurisdiction.Select(g => $"{g.Key}: {g.Count()}"))}); {TenantCount(tenants)} tenants."));
        page.Table("Nodes by jurisdiction", ["jurisdiction", "node", "kind", "state", "in flight", "models", "base URL"],
            byJurisdiction.SelectMany(g => g.Select(n => (IReadOnlyList<string>)
            [
                g.Key, ConsolePage.Text(n, "id"), ConsolePage.Text(n, "kind"), ConsolePage.Text(n, "state"), ConsolePage.Text(n, "in_flight"),
                string.Join(", ", n.TryGetProperty("models", out var m) ? m.EnumerateArray().Select(x => ConsolePage.Text(x, "id")) : []),
                ConsolePage.Text(n, "base_url"),
            ])), id: "nodes");
        var loaded = models.Json.ValueKind == JsonValueKind.Object && models.Json.TryGetProperty("loaded_from_configuration", out var c) ? c.EnumerateArray().Select(x => x.GetString() ?? "").ToList() : [];
        page.Table("Models on this gateway", ["model", "source", "loaded", "licence", "languages"],
            models.Data.Select(m => (IReadOnlyList<string>)[ConsolePage.Text(m, "id"), "registry", ConsolePage.Text(m, "loaded") == "True" ? "yes" : "no", ConsolePage.Text(m, "license"), ConsolePage.List(m, "languages")])
                .Concat(loaded.Select(id => (IReadOnlyList<string>)[id, "configuration", "yes", "", ""])), id: "models");
        return ConsoleEndpoints.Html(page);
    }

    public static async Task<IResult> Tenants(HttpContext context)
    {
        var (session, refusal) = await ConsoleEndpoints.RequireOperatorAsync(context);
        if (refusal is not null)
        {
            return refusal;
        }

        // A page at a time (ConsoleTenantPage, by id): with 100,000 tenants the page listed every one of them.
        var after = context.Request.Query["after"].ToString();
        var tenants = await new ConsoleApiClient(context, session!.Credential).GetAsync(
            $"/admin/v1/tenants?limit={ConsoleTenantPage}" + (after.Length > 0 ? "&after=" + Uri.EscapeDataString(after) : ""), context.RequestAborted);
        var page = new ConsolePage("Tenants", session);
        Fail(page, tenants);
        var shown = tenants.Data.Count();
        page.Paragraph(string.Create(CultureInfo.InvariantCulture, $"{TenantCount(tenants)} tenants; {shown} shown here, by id{(after.Length > 0 ? $", after {after}" : "")}."));
        page.Table("Tenants", ["tenant", "name", "plan", "jurisdictions", "external providers", "disabled"], tenants.Data.Select(t =>
        {
            var policy = t.GetProperty("policy");
            var id = ConsolePage.Text(t, "id");
            return (IReadOnlyList<string>)
            [
                $"<a href=\"/console/tenants/{Uri.EscapeDataString(id)}\">{ConsolePage.E(id)}</a>", ConsolePage.E(ConsolePage.Text(t, "name")), ConsolePage.E(ConsolePage.Text(t, "plan")),
                ConsolePage.E(ConsolePage.List(policy, "allowed_jurisdictions")), ConsolePage.Text(policy, "allow_external_providers") == "True" ? "allowed" : "no",
                ConsolePage.Text(t, "disabled") == "True" ? "yes" : "no",
            ];
        }), id: "tenants", rawCells: true);
        if (tenants.Json.ValueKind == JsonValueKind.Object && tenants.Json.TryGetProperty("has_more", out var more) && more.ValueKind == JsonValueKind.True
            && tenants.Json.TryGetProperty("last_id", out var last) && last.GetString() is { } lastId)
        {
            page.Raw($"<p><a id=\"tenants-next\" href=\"/console/tenants?after={ConsolePage.E(Uri.EscapeDataString(lastId))}\">Next {ConsoleTenantPage} tenants</a></p>");
        }

        return ConsoleEndpoints.Html(page);
    }

    /// <summary>The tenants one console page lists.</summary>
    internal const int ConsoleTenantPage = 100;

    private static string TenantCount(ApiAnswer tenants) =>
        tenants.Json.ValueKind == JsonValueKind.Object && tenants.Json.TryGetProperty("total", out var total) && total.ValueKind == JsonValueKind.Number
            ? total.GetInt64().ToString("N0", CultureInfo.InvariantCulture)
            : tenants.Data.Count().ToString(CultureInfo.InvariantCulture);

    public static async Task<IResult> Tenant(string id, HttpContext context) => await TenantPage(id, context, null, null);

    private static async Task<IResult> TenantPage(string id, HttpContext context, string? message, string? error, IFormCollection? form = null)
    {
        var (session, refusal) = await ConsoleEndpoints.RequireOperatorAsync(context);
        if (refusal is not null)
        {
            return refusal;
        }

        var api = new ConsoleApiClient(context, session!.Credential);
        var escaped = Uri.EscapeDataString(id);
        var tenant = await api.GetAsync($"/admin/v1/tenants/{escaped}", context.RequestAborted);
        if (!tenant.Ok)
        {
            return ConsoleEndpoints.Html(new ConsolePage("Tenant " + id, session).Notice(tenant.ErrorMessage, error: true), tenant.Status);
        }

        var keys = await api.GetAsync($"/admin/v1/tenants/{escaped}/keys", context.RequestAborted);
        var keysFrom = DateTimeOffset.UtcNow.Date.AddDays(-29).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        var byKey = await api.GetAsync($"/admin/v1/usage?tenant={escaped}&group_by=key&from={keysFrom}", context.RequestAborted);
        var limits = await api.GetAsync($"/admin/v1/tenants/{escaped}/limits", context.RequestAborted);
        var audit = await api.GetAsync($"/admin/v1/audit?tenant={escaped}&order=desc&limit=50", context.RequestAborted);
        var page = new ConsolePage("Tenant " + id, session);
        if (message is not null)
        {
            page.Notice(message);
        }

        if (error is not null)
        {
            page.Notice(error, error: true);
        }

        // A table whose read failed says so, rather than showing a key as having spent nothing.
        Fail(page, keys, byKey, limits, audit);
        var t = tenant.Json;
        var policy = t.GetProperty("policy");
        string Field(string name, string current) => form is null ? current : form[name].ToString();
        var external = form is null ? ConsolePage.Text(policy, "allow_external_providers") == "True" : form["allow_external"] == "on";
        var disabled = form is null ? ConsolePage.Text(t, "disabled") == "True" : form["disabled"] == "on";
        page.Heading("Residency policy and plan").Raw($"""
            <form method="post" action="/console/tenants/{ConsolePage.E(escaped)}/policy" class="stack" id="policy-form">
            <input type="hidden" name="version" value="{ConsolePage.E(Field("version", tenant.ETag ?? ""))}">
            <label for="jurisdictions">Allowed jurisdictions <span class="hint">(country codes or groups: TH, EU, ASEAN; comma-separated; required)</span></label>
            <input id="jurisdictions" name="jurisdictions" required value="{ConsolePage.E(Field("jurisdictions", ConsolePage.List(policy, "allowed_jurisdictions")))}">
            <label for="models">Allowed models <span class="hint">(empty: any)</span></label>
            <input id="models" name="models" value="{ConsolePage.E(Field("models", ConsolePage.List(policy, "allowed_models")))}">
            <label for="licenses">Allowed licences <span class="hint">(SPDX ids; empty: any)</span></label>
            <input id="licenses" name="licenses" value="{ConsolePage.E(Field("licenses", ConsolePage.List(policy, "allowed_licenses")))}">
            <label for="origins">Allowed model origins <span class="hint">(countries; empty: any)</span></label>
            <input id="origins" name="origins" value="{ConsolePage.E(Field("origins", ConsolePage.List(policy, "allowed_origins")))}">
            <label for="plan">Plan</label>
            <input id="plan" name="plan" required value="{ConsolePage.E(Field("plan", ConsolePage.Text(t, "plan")))}">
            <div class="check"><input type="checkbox" id="allow_external" name="allow_external"{(external ? " checked" : "")}><label for="allow_external">Allow external providers (registered engines) within these jurisdictions</label></div>
            <div class="check"><input type="checkbox" id="disabled" name="disabled"{(disabled ? " checked" : "")}><label for="disabled">Disabled (every request refused)</label></div>
            <button type="submit">Save policy</button>
            </form>
            """);
        KeysTable(page, "Keys", keys.Data, byKey.Data);
        BudgetTables(page, limits.Json);
        var month = DateTime.UtcNow;
        var from = new DateOnly(month.Year, month.Month, 1);
        var thisMonth = await InvoiceCurrenciesAsync(api, escaped, $"from={from:yyyy-MM-dd}", context.RequestAborted);
        var lastMonth = await InvoiceCurrenciesAsync(api, escaped, $"from={from.AddMonths(-1):yyyy-MM-dd}&to={from:yyyy-MM-dd}", context.RequestAborted);
        page.Heading("Invoices").Raw($"""
            <p>This month so far: {InvoiceLinks(escaped, $"from={from:yyyy-MM-dd}", thisMonth, json: true)}.
            Last month: {InvoiceLinks(escaped, $"from={from.AddMonths(-1):yyyy-MM-dd}&to={from:yyyy-MM-dd}", lastMonth, json: false)}.</p>
            """);
        AuditTable(page, audit.Data, "Latest audit entries");
        return ConsoleEndpoints.Html(page, error is null ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);
    }

    /// <summary>
    /// The currencies a tenant was charged in during an invoice period. A tenant moved to a plan in another currency has
    /// one invoice per currency: a link that named none led to the API's "several currencies" error. Usage at no cost
    /// (XXX, before a priced plan) is no currency of its own: the API puts it on the invoice of the currency charged,
    /// and a link for it led to the error page "currency must be an ISO 4217 currency code".
    /// </summary>
    private static async Task<IReadOnlyList<string>> InvoiceCurrenciesAsync(ConsoleApiClient api, string escaped, string period, CancellationToken cancellationToken)
    {
        var usage = await api.GetAsync($"/admin/v1/usage?tenant={escaped}&group_by=tenant&{period}", cancellationToken);
        var currencies = usage.Data.Where(row => ConsoleEndpoints.Decimal(row, "cost") != 0).Select(row => ConsolePage.Text(row, "currency"))
            .Where(c => c.Length > 0).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        return currencies.Count > 1 ? currencies : [];
    }

    /// <summary>Download links of one invoice period: one set per currency when there are several, else one.</summary>
    private static string InvoiceLinks(string escaped, string period, IReadOnlyList<string> currencies, bool json)
    {
        string Link(string format, string? currency) =>
            $"""<a href="/console/tenants/{ConsolePage.E(escaped)}/invoice?format={format}&amp;{ConsolePage.E(period)}{(currency is null ? "" : "&amp;currency=" + currency)}" download>{format.ToUpperInvariant()}</a>""";
        string Set(string? currency) => (currency is null ? "" : currency + " ") + Link("csv", currency) + (json ? " · " + Link("json", currency) : "");
        return currencies.Count == 0 ? Set(null) : string.Join("; ", currencies.Select(c => Set(c)));
    }

    /// <summary>Saves the policy form through PATCH /admin/v1/tenants/{id}: the API validates and audits it.</summary>
    public static async Task<IResult> SavePolicy(string id, HttpContext context)
    {
        var (session, refusal) = await ConsoleEndpoints.RequireOperatorAsync(context);
        if (refusal is not null)
        {
            return refusal;
        }

        var form = await ConsoleEndpoints.ReadFormAsync(context);
        var api = new ConsoleApiClient(context, session!.Credential);
        var current = await api.GetAsync($"/admin/v1/tenants/{Uri.EscapeDataString(id)}", context.RequestAborted);
        if (!current.Ok)
        {
            return await TenantPage(id, context, null, current.ErrorMessage);
        }

        static string[]? Split(string value) =>
            value.Split([',', ' ', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) is { Length: > 0 } parts ? parts : null;
        var policy = new Dictionary<string, object?>
        {
            ["allowed_jurisdictions"] = Split(form["jurisdictions"].ToString()) ?? [],
            ["allowed_models"] = Split(form["models"].ToString()),
            ["allowed_licenses"] = Split(form["licenses"].ToString()),
            ["allowed_origins"] = Split(form["origins"].ToString()),
            ["allow_external_providers"] = form["allow_external"] == "on",
        };
        if (current.Json.GetProperty("policy").TryGetProperty("retention", out var retention) && retention.ValueKind == JsonValueKind.Object)
        {
            policy["retention"] = retention;
        }

        // The form holds every field, as read when the page was opened: saved only if the tenant is still as read then
        // (the ETag the page carried), or a change made meanwhile (a CLI edit, another operator's page) was written back over.
        // A version that is no entity tag in visible ASCII cannot be that ETag: as If-Match it made the console's own call
        // throw (a non-ASCII letter: a 500) or reach the API as a malformed request (a line break).
        var version = form["version"].ToString();
        if (version.Length > 0 && !(version.All(c => c is > ' ' and <= '~') && Microsoft.Net.Http.Headers.EntityTagHeaderValue.TryParse(version, out _)))
        {
            return await TenantPage(id, context, null, "Not saved: the form's version is not the ETag this console gave it; open the tenant's page again and make your change there.", form);
        }

        var answer = await api.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{Uri.EscapeDataString(id)}",
            new { plan = form["plan"].ToString().Trim(), disabled = form["disabled"] == "on", policy }, context.RequestAborted,
            ifMatch: version.Length > 0 ? version : null);
        return answer.Ok ? await TenantPage(id, context, "Saved. The new policy applies from the next request, and the change is in the audit log.", null)
            : answer.Status == StatusCodes.Status412PreconditionFailed
                ? await TenantPage(id, context, null, "Not saved: the tenant was changed after this page was opened. It is shown as it is now; make your change again.")
                : await TenantPage(id, context, null, "Not saved: " + answer.ErrorMessage, form);
    }

    public static async Task<IResult> Invoice(string id, HttpContext context)
    {
        var (session, refusal) = await ConsoleEndpoints.RequireOperatorAsync(context);
        if (refusal is not null)
        {
            return refusal;
        }

        var query = context.Request.QueryString.Value ?? "";
        var answer = await new ConsoleApiClient(context, session!.Credential).GetAsync($"/admin/v1/tenants/{Uri.EscapeDataString(id)}/invoice{query}", context.RequestAborted);
        if (!answer.Ok)
        {
            return ConsoleEndpoints.Html(new ConsolePage("Invoice", session).Notice(answer.ErrorMessage, error: true), answer.Status);
        }

        var csv = answer.ContentType.Contains("csv", StringComparison.OrdinalIgnoreCase);
        // A tenant with usage in several currencies has one invoice per currency: their files are named apart.
        var currency = context.Request.Query["currency"].ToString() is { Length: > 0 } c && c.All(char.IsAsciiLetter) ? "-" + c.ToUpperInvariant() : "";
        context.Response.Headers.ContentDisposition = $"attachment; filename=\"invoice-{id}{currency}.{(csv ? "csv" : "json")}\"";
        return Results.Text(answer.Text, answer.ContentType);
    }

    public static async Task<IResult> Usage(HttpContext context)
    {
        var (session, refusal) = await ConsoleEndpoints.RequireOperatorAsync(context);
        if (refusal is not null)
        {
            return refusal;
        }

        var by = context.Request.Query["by"].ToString() is var b && Groupings.Contains(b) ? b : "tenant";
        var days = int.TryParse(context.Request.Query["days"], out var d) && d is >= 1 and <= 366 ? d : 30;
        var from = DateTimeOffset.UtcNow.Date.AddDays(-(days - 1)).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var api = new ConsoleApiClient(context, session!.Credential);
        var usage = await api.GetAsync($"/admin/v1/usage?group_by={by}&from={from}", context.RequestAborted);
        var page = new ConsolePage("Usage", session);
        Fail(page, usage);
        page.Raw($"""
            <form method="get" action="/console/usage" class="inline">
            <label for="by">Group by</label>
            <select id="by" name="by">{string.Join("", Groupings.Select(g => $"<option value=\"{g}\"{(g == by ? " selected" : "")}>{g}</option>"))}</select>
            <label for="days">Days</label>
            <input id="days" name="days" type="number" min="1" max="366" value="{days}">
            <button type="submit">Show</button>
            </form>
            """);
        var rows = usage.Data.ToList();
        if (usage.Json.ValueKind == JsonValueKind.Object && usage.Json.TryGetProperty("has_more", out var more) && more.ValueKind == JsonValueKind.True)
        {
            // The API answers at most 10,000 rows a page: this page shows the first page, the CLI and the API walk the rest.
            page.Paragraph(string.Create(CultureInfo.InvariantCulture, $"The first {rows.Count:N0} rows by {by}; there are more (sovereign usage --group-by {by} --from {from} lists them all)."));
        }

        var requests = rows.Select(r => (Label: ConsolePage.Text(r, by), Value: ConsoleEndpoints.Decimal(r, "requests"))).ToList();
        page.Raw(SvgChart.Bars($"Requests by {by}, last {days} days", requests, "requests"));
        // Unpriced usage (XXX, no currency) costs nothing: no chart of zeros for it.
        foreach (var currency in rows.GroupBy(r => ConsolePage.Text(r, "currency")).Where(g => g.Key.Length > 0 && g.Key != Sovereign.Metering.Ledger.InvoiceBuilder.NoCurrency))
        {
            page.Raw(SvgChart.Bars($"Cost in {currency.Key} by {by}, last {days} days",
                currency.Select(r => (ConsolePage.Text(r, by), ConsoleEndpoints.Decimal(r, "cost"))).ToList(), currency.Key));
        }

        page.Table($"Usage by {by}", [by, "requests", "refused", "prompt tokens", "completion tokens", "compute s", "cost"], rows.Select(r => (IReadOnlyList<string>)
        [
            ConsolePage.Text(r, by), ConsolePage.Text(r, "requests"), ConsolePage.Text(r, "refused"), ConsolePage.Text(r, "prompt_tokens"), ConsolePage.Text(r, "completion_tokens"),
            ConsolePage.Number(r, "compute_seconds"), ConsolePage.Cost(r),
        ]), id: "usage");
        return ConsoleEndpoints.Html(page);
    }

    public static async Task<IResult> Plans(HttpContext context)
    {
        var (session, refusal) = await ConsoleEndpoints.RequireOperatorAsync(context);
        if (refusal is not null)
        {
            return refusal;
        }

        var plans = await new ConsoleApiClient(context, session!.Credential).GetAsync("/admin/v1/plans", context.RequestAborted);
        var page = new ConsolePage("Plans and prices", session);
        Fail(page, plans);
        page.Table("Plans", ["plan", "currency", "weight", "priority", "model", "from", "input / 1M", "cached input / 1M", "output / 1M", "per compute s"], plans.Data.SelectMany(p =>
        {
            var prices = p.GetProperty("prices").EnumerateArray().ToList();
            IReadOnlyList<string> Head() => [ConsolePage.Text(p, "name"), ConsolePage.Text(p, "currency"), ConsolePage.Text(p, "weight"), ConsolePage.Text(p, "priority")];
            return prices.Count == 0
                ? [[.. Head(), "", "", "", "", "", ""]]
                : prices.Select(x => (IReadOnlyList<string>)[.. Head(), ConsolePage.Text(x, "model"), ConsolePage.Time(x, "effective_from"),
                    ConsolePage.Number(x, "input_per_million"), ConsolePage.Number(x, "cached_input_per_million"), ConsolePage.Number(x, "output_per_million"), ConsolePage.Number(x, "per_compute_second")]);
        }), id: "plans");
        return ConsoleEndpoints.Html(page);
    }

    public static async Task<IResult> Models(HttpContext context)
    {
        var (session, refusal) = await ConsoleEndpoints.RequireOperatorAsync(context);
        if (refusal is not null)
        {
            return refusal;
        }

        var api = new ConsoleApiClient(context, session!.Credential);
        var models = await api.GetAsync("/admin/v1/models", context.RequestAborted);
        var page = new ConsolePage("Models", session);
        Fail(page, models);
        var configured = models.Json.ValueKind == JsonValueKind.Object && models.Json.TryGetProperty("loaded_from_configuration", out var c) ? c.EnumerateArray().Select(x => x.GetString() ?? "").ToList() : [];
        static string Tax(string id) => $"<a href=\"/console/models/{Uri.EscapeDataString(id)}/languages\">language tax</a>";
        page.Table("Registered models", ["model", "loaded", "architecture", "parameters", "quantization", "licence", "languages", ""], models.Data.Select(m => (IReadOnlyList<string>)
        [
            ConsolePage.E(ConsolePage.Text(m, "id")), ConsolePage.Text(m, "loaded") == "True" ? "yes" : "no", ConsolePage.E(ConsolePage.Text(m, "architecture")),
            ConsolePage.E(ConsolePage.Text(m, "parameters")), ConsolePage.E(ConsolePage.Text(m, "quantization")), ConsolePage.E(ConsolePage.Text(m, "license")),
            ConsolePage.E(ConsolePage.List(m, "languages")), ConsolePage.Text(m, "loaded") == "True" ? Tax(ConsolePage.Text(m, "id")) : "",
        ]), id: "registered", rawCells: true);
        page.Table("Loaded from the configuration", ["model", ""], configured.Select(id => (IReadOnlyList<string>)[ConsolePage.E(id), Tax(id)]), id: "configured", rawCells: true);
        return ConsoleEndpoints.Html(page);
    }

    public static async Task<IResult> LanguageTax(string id, HttpContext context)
    {
        var (session, refusal) = await ConsoleEndpoints.RequireOperatorAsync(context);
        if (refusal is not null)
        {
            return refusal;
        }

        id = ControlPlane.AdminApi.ModelIdOf(id);
        var report = await new ConsoleApiClient(context, session!.Credential).GetAsync($"/admin/v1/models/{Uri.EscapeDataString(id)}/languages", context.RequestAborted);
        var page = new ConsolePage($"Language tax of {id}", session);
        if (!report.Ok)
        {
            return ConsoleEndpoints.Html(page.Notice(report.ErrorMessage, error: true), report.Status);
        }

        var rows = report.Json.GetProperty("languages").EnumerateArray().ToList();
        page.Paragraph("Tokens a language needs for the same text, as a ratio to English: what a speaker pays more, per character, on this model.");
        page.Raw(SvgChart.Bars("Ratio to English (same document)", rows.Select(r => (ConsolePage.Text(r, "name"), ConsoleEndpoints.Decimal(r, "document_ratio_to_english"))).ToList(), "×"));
        page.Table("Language tax", ["language", "name", "tokens / 1,000 chars", "ratio to English", "same document vs English"], rows.Select(r => (IReadOnlyList<string>)
        [
            ConsolePage.Text(r, "language"), ConsolePage.Text(r, "name"), ConsolePage.Text(r, "tokens_per_1000_characters"), ConsolePage.Text(r, "ratio_to_english"), ConsolePage.Text(r, "document_ratio_to_english"),
        ]), id: "languages");
        page.Paragraph("Reference texts: " + ConsolePage.Text(report.Json, "source"), "hint");
        return ConsoleEndpoints.Html(page);
    }

    public static async Task<IResult> Audit(HttpContext context)
    {
        var (session, refusal) = await ConsoleEndpoints.RequireOperatorAsync(context);
        if (refusal is not null)
        {
            return refusal;
        }

        var api = new ConsoleApiClient(context, session!.Credential);
        var audit = await api.GetAsync("/admin/v1/audit?order=desc&limit=100", context.RequestAborted);
        // An auditor handed a client's response: the entries of the request its body id (or audit id) names.
        var id = context.Request.Query["id"].ToString();
        (string Id, ApiAnswer Answer)? found = id.Length == 0 ? null : (id, await api.GetAsync("/admin/v1/audit?id=" + Uri.EscapeDataString(id), context.RequestAborted));
        return ConsoleEndpoints.Html(AuditPage(session, audit, null, found));
    }

    public static async Task<IResult> VerifyAudit(HttpContext context)
    {
        var (session, refusal) = await ConsoleEndpoints.RequireOperatorAsync(context);
        if (refusal is not null)
        {
            return refusal;
        }

        var api = new ConsoleApiClient(context, session!.Credential);
        // The CLI's --max-uncovered-age: how old the oldest entry no signed checkpoint covers may be (the API checks the number).
        var form = context.Request.HasFormContentType ? await context.Request.ReadFormAsync(context.RequestAborted) : null;
        var maxUncovered = form?["max_uncovered_seconds"].ToString() is { Length: > 0 } seconds ? "?max_uncovered_seconds=" + Uri.EscapeDataString(seconds) : "";
        var result = await api.SendAsync(HttpMethod.Post, "/admin/v1/audit/verify" + maxUncovered, null, context.RequestAborted);
        var audit = await api.GetAsync("/admin/v1/audit?order=desc&limit=100", context.RequestAborted);
        return ConsoleEndpoints.Html(AuditPage(session, audit, result));
    }

    private static ConsolePage AuditPage(ConsoleSession session, ApiAnswer audit, ApiAnswer? verification, (string Id, ApiAnswer Answer)? found = null)
    {
        var page = new ConsolePage("Audit log", session);
        if (found is { } f)
        {
            if (!f.Answer.Ok)
            {
                page.Notice("Cannot look it up: " + f.Answer.ErrorMessage, error: true);
            }
            else if (!f.Answer.Data.Any())
            {
                page.Notice($"No audit entry names '{f.Id}' (as a response's id, a request's id or a relayed request's).", error: true);
            }
            else
            {
                static string Detail(JsonElement e, string key) =>
                    e.TryGetProperty("details", out var d) && d.ValueKind == JsonValueKind.Object && d.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
                page.Table($"Entries of {f.Id}", ["seq", "time", "action", "tenant", "model", "gateway", "node", "jurisdiction", "decision", "request", "response", "outcome", "hash"],
                    f.Answer.Data.Select(e => (IReadOnlyList<string>)
                    [
                        ConsolePage.Text(e, "chain") is { Length: > 0 } chain ? $"{chain}:{ConsolePage.Text(e, "sequence")}" : ConsolePage.Text(e, "sequence"), ConsolePage.Time(e, "timestamp"),
                        ConsolePage.Text(e, "action"), ConsolePage.Text(e, "tenant"), ConsolePage.Text(e, "model"), ConsolePage.Text(e, "gateway"), ConsolePage.Text(e, "node"),
                        ConsolePage.Text(e, "jurisdiction"), ConsolePage.Text(e, "decision"), Detail(e, "request_id"), Detail(e, "response_id"), Detail(e, "outcome"), ConsolePage.Text(e, "hash"),
                    ]), id: "found");
            }
        }

        if (verification is { } v)
        {
            if (!v.Ok)
            {
                page.Notice("Verification failed to run: " + v.ErrorMessage, error: true);
            }
            else
            {
                var verdict = ConsolePage.Text(v.Json, "verdict");
                var summary = verdict switch
                {
                    "trusted" => "the audit log is intact.",
                    "uncovered" => "the audit log is intact as far as it goes, but not fully trusted: entries are not covered by a signed checkpoint.",
                    _ => "the audit log has been tampered with.",
                };
                page.Notice($"Checked {ConsolePage.Text(v.Json, "entries_checked")} entries: {summary} {ConsolePage.Text(v.Json, "verdict_reason")}", error: verdict != "trusted");
                // Member chains (Sovereign:Audit:MemberChains): each chain's head, what signed checkpoints cover of it, and its own verdict.
                if (v.Json.TryGetProperty("chains", out var chains) && chains.ValueKind == JsonValueKind.Array && chains.GetArrayLength() > 0)
                {
                    IReadOnlyList<string> Row(JsonElement c, string name, string verdict) =>
                    [
                        name, ConsolePage.Text(c, "entries_checked"), ConsolePage.Text(c, "last_sequence"), Short(ConsolePage.Text(c, "last_hash")),
                        ConsolePage.Text(c, "covered_through"), ConsolePage.Text(c, "uncovered"), ConsolePage.Time(c, "uncovered_since"), verdict,
                    ];
                    // The report's top-level fields are the shared chain's, its entries the whole log's.
                    var shared = Row(v.Json, "(shared chain)", ConsolePage.Text(v.Json, "shared_verdict")).ToArray();
                    shared[1] = (ConsoleEndpoints.Decimal(v.Json, "entries_checked") - chains.EnumerateArray().Sum(c => ConsoleEndpoints.Decimal(c, "entries_checked")))
                        .ToString(System.Globalization.CultureInfo.InvariantCulture);
                    page.Table("Chains", ["chain", "entries", "head", "head hash", "covered through", "uncovered", "oldest uncovered", "verdict"],
                        chains.EnumerateArray().Select(c => Row(c, ConsolePage.Text(c, "chain"), ConsolePage.Text(c, "verdict"))).Prepend(shared), id: "chains");
                }

                if (v.Json.TryGetProperty("problems", out var problems))
                {
                    page.Table("Problems found", ["chain", "sequence", "kind", "what"], problems.EnumerateArray().Select(p => (IReadOnlyList<string>)
                        [ConsolePage.Text(p, "chain"), ConsolePage.Text(p, "sequence"), ConsolePage.Text(p, "kind"), ConsolePage.Text(p, "message")]), id: "problems");
                }
            }
        }

        page.Raw($$"""
            <form method="get" action="/console/audit" class="stack" id="find-form"><label>Response or request id <input name="id" required maxlength="128" placeholder="chatcmpl-…, resp_…, req_…" value="{{ConsolePage.E(found?.Id)}}"></label><button type="submit">Find its entries</button></form>
            <form method="post" action="/console/audit/verify" class="stack"><label>Uncovered entries may be this old (seconds) <input name="max_uncovered_seconds" type="number" min="0" placeholder="600"></label><button type="submit">Verify the whole audit log</button></form>
            <p>For an auditor: <code>sovereign audit export --tenant ID -o export.jsonl</code> and <code>sovereign audit public-key</code>, then <a href="/console/verify">verify the export in a browser</a>.</p>
            """);
        AuditTable(page, audit.Data, "Latest audit entries");
        return page;
    }

    /// <summary>A tenant's keys with what each spent over the last 30 days (from usage grouped by key).</summary>
    internal static void KeysTable(ConsolePage page, string caption, IEnumerable<JsonElement> keys, IEnumerable<JsonElement> usageByKey)
    {
        var spent = usageByKey.GroupBy(r => ConsolePage.Text(r, "key_id")).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        string Requests(string key) => spent.TryGetValue(key, out var rows) ? rows.Sum(r => ConsoleEndpoints.Decimal(r, "requests")).ToString(System.Globalization.CultureInfo.InvariantCulture) : "0";
        string Cost(string key) => spent.TryGetValue(key, out var rows)
            ? string.Join(", ", rows.Select(r => ConsolePage.Cost(r)))
            : "";
        page.Table(caption, ["key", "prefix", "name", "created", "expires", "revoked", "requests (30 days)", "cost (30 days)"], keys.Select(k => (IReadOnlyList<string>)
            [ConsolePage.Text(k, "id"), ConsolePage.Text(k, "prefix") + "…", ConsolePage.Text(k, "name"), ConsolePage.Time(k, "created_at"), ConsolePage.Time(k, "expires_at"),
                ConsolePage.Time(k, "revoked_at"), Requests(ConsolePage.Text(k, "id")), Cost(ConsolePage.Text(k, "id"))]), id: "keys");
    }

    /// <summary>The first 12 hex digits of a hash, enough to compare by eye.</summary>
    private static string Short(string hash) => hash.Length > 12 ? hash[..12] + "…" : hash;

    // An entry of a member chain is named CHAIN:SEQUENCE, as the API's cursor names it; the shared chain's by its sequence.
    internal static void AuditTable(ConsolePage page, IEnumerable<JsonElement> entries, string caption) =>
        page.Table(caption, ["seq", "time", "kind", "action", "tenant", "model", "node", "jurisdiction", "decision", "code"], entries.Select(e => (IReadOnlyList<string>)
        [
            ConsolePage.Text(e, "chain") is { Length: > 0 } chain ? $"{chain}:{ConsolePage.Text(e, "sequence")}" : ConsolePage.Text(e, "sequence"), ConsolePage.Time(e, "timestamp"), ConsolePage.Text(e, "kind"), ConsolePage.Text(e, "action"), ConsolePage.Text(e, "tenant"),
            ConsolePage.Text(e, "model"), ConsolePage.Text(e, "node"), ConsolePage.Text(e, "jurisdiction"), ConsolePage.Text(e, "decision"), ConsolePage.Text(e, "code"),
        ]), id: "audit");

    internal static void BudgetTables(ConsolePage page, JsonElement limits)
    {
        var budgets = limits.ValueKind == JsonValueKind.Object && limits.TryGetProperty("budgets", out var b) ? b.EnumerateArray().ToList() : [];
        page.Table("Budgets", ["key", "period", "limit", "spent", "reserved", "leased", "remaining"], budgets.Select(x => (IReadOnlyList<string>)
        [
            ConsolePage.Text(x, "key_id") is { Length: > 0 } k ? k : "(tenant)", ConsolePage.Text(x, "period"), $"{ConsolePage.Number(x, "limit")} {ConsolePage.Text(x, "currency")}",
            ConsolePage.Number(x, "settled"), ConsolePage.Number(x, "reserved"), ConsolePage.Number(x, "leased"), ConsolePage.Number(x, "remaining"),
        ]), id: "budgets");
        foreach (var x in budgets.Where(x => ConsoleEndpoints.Decimal(x, "limit") > 0))
        {
            var used = ConsoleEndpoints.Decimal(x, "settled") + ConsoleEndpoints.Decimal(x, "reserved");
            var limit = ConsoleEndpoints.Decimal(x, "limit");
            page.Raw($"""<p><label>{ConsolePage.E(ConsolePage.Text(x, "period"))} budget: {ConsolePage.E(ConsoleEndpoints.Money(used))} of {ConsolePage.E(ConsoleEndpoints.Money(limit))} {ConsolePage.E(ConsolePage.Text(x, "currency"))} <meter min="0" max="{limit.ToString(CultureInfo.InvariantCulture)}" value="{Math.Min(used, limit).ToString(CultureInfo.InvariantCulture)}"></meter></label></p>""");
        }

        var rates = limits.ValueKind == JsonValueKind.Object && limits.TryGetProperty("limits", out var l) && l.TryGetProperty("rate_limits", out var r) ? r.EnumerateArray().ToList() : [];
        page.Table("Rate limits", ["key", "requests / minute", "tokens / minute"], rates.Select(x => (IReadOnlyList<string>)
        [
            ConsolePage.Text(x, "key_id") is { Length: > 0 } k ? k : "(tenant)",
            ConsolePage.Text(x, "requests_per_minute") is { Length: > 0 } rpm ? rpm : "unlimited",
            ConsolePage.Text(x, "tokens_per_minute") is { Length: > 0 } tpm ? tpm : "unlimited",
        ]), id: "rate-limits");
    }

    private static void Fail(ConsolePage page, params ApiAnswer[] answers)
    {
        foreach (var answer in answers.Where(a => !a.Ok))
        {
            page.Notice(answer.ErrorMessage, error: true);
        }
    }
}
