using System.Globalization;

namespace Sovereign.Gateway.Console;

/// <summary>The tenant's page: read with its own key from /v1 (usage, limits, keys, audit), so it can show nothing else.</summary>
internal static class TenantPages
{
    public static async Task<IResult> Overview(HttpContext context, ConsoleSession session)
    {
        var api = new ConsoleApiClient(context, session.Credential);

        // Asked first: a key revoked or expired since the sign-in (or its tenant disabled, which signing in refuses
        // too) kept its session, and the page said so six times over an empty one ("Plan .", no usage, no keys)
        // until the session's 8 hours ran out.
        var keys = await api.GetAsync("/v1/keys", context.RequestAborted);
        if (keys.Status is StatusCodes.Status401Unauthorized or StatusCodes.Status403Forbidden)
        {
            return ConsoleEndpoints.SignOut(context, $"Your key is no longer accepted: {keys.ErrorMessage}");
        }

        var from = DateTimeOffset.UtcNow.Date.AddDays(-29).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var usage = await api.GetAsync($"/v1/usage?group_by=day,model&from={from}", context.RequestAborted);
        var byJurisdiction = await api.GetAsync($"/v1/usage?group_by=jurisdiction&from={from}", context.RequestAborted);
        var limits = await api.GetAsync("/v1/limits", context.RequestAborted);
        var byKey = await api.GetAsync($"/v1/usage?group_by=key&from={from}", context.RequestAborted);
        var audit = await api.GetAsync("/v1/audit?order=desc&limit=50", context.RequestAborted);
        var page = new ConsolePage("Tenant " + session.Tenant, session);
        foreach (var failed in new[] { usage, byJurisdiction, limits, keys, byKey, audit }.Where(a => !a.Ok))
        {
            page.Notice(failed.ErrorMessage, error: true);
        }

        page.Paragraph($"Plan {ConsolePage.Text(limits.Json, "plan")}. Your usage and spend over the last 30 days, your budgets, keys and audit entries.");
        var rows = usage.Data.ToList();
        page.Raw(SvgChart.Bars("Requests per day, last 30 days",
            rows.GroupBy(r => ConsolePage.Text(r, "day")).Select(g => (g.Key, g.Sum(r => ConsoleEndpoints.Decimal(r, "requests")))).OrderBy(x => x.Key, StringComparer.Ordinal).ToList(), "requests"));
        page.Raw(SvgChart.Bars("Where your requests ran (by jurisdiction)",
            byJurisdiction.Data.Select(r => (ConsolePage.Text(r, "jurisdiction"), ConsoleEndpoints.Decimal(r, "requests"))).ToList(), "requests"));
        page.Table("Usage by day and model", ["day", "model", "requests", "refused", "prompt tokens", "completion tokens", "cost"], rows.Select(r => (IReadOnlyList<string>)
        [
            ConsolePage.Text(r, "day"), ConsolePage.Text(r, "model"), ConsolePage.Text(r, "requests"), ConsolePage.Text(r, "refused"),
            ConsolePage.Text(r, "prompt_tokens"), ConsolePage.Text(r, "completion_tokens"), ConsolePage.Cost(r),
        ]), id: "usage");
        OperatorPages.BudgetTables(page, limits.Json);
        OperatorPages.KeysTable(page, "Your keys", keys.Data, byKey.Data);
        OperatorPages.AuditTable(page, audit.Data, "Your latest audit entries: where each request ran");
        return ConsoleEndpoints.Html(page);
    }
}
