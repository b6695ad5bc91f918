using Sovereign.Residency.Audit;

namespace Sovereign.Residency.Tests.Audit;

/// <summary>
/// <see cref="AuditRequestLookup"/> finds a response id without a start by scanning the log newest first, in windows
/// that double from <see cref="AuditRequestLookup.FirstWindow"/>, and stops at the first window that holds it: it
/// scanned the whole log on every search before. A start (<c>--from</c>, <c>?from=</c>) still scans everything since.
/// </summary>
public sealed class AuditRequestLookupTests
{
    private static AuditRecord Outcome(string requestId, string responseId, string tenant = "acme") => new()
    {
        Kind = AuditKind.Inference,
        Tenant = tenant,
        Actor = $"key-{tenant}",
        Action = AuditActions.InferenceCompleted,
        Model = "m",
        Gateway = "gw-1",
        Node = "gw-1",
        Jurisdiction = "DE",
        Decision = AuditDecision.Allowed,
        PromptTokens = 3,
        CompletionTokens = 2,
        Details = new Dictionary<string, string> { ["request_id"] = requestId, ["outcome"] = "completed", ["response_id"] = responseId },
    };

    [Fact]
    public async Task AResponseId_IsFoundInTheNewestWindowHoldingIt_AndAStartFindsEveryOneSince()
    {
        await using var context = AuditTestContext.Create();
        var start = context.Time.GetUtcNow();
        await using (var log = await context.OpenLogAsync())
        {
            // An engine that repeats its ids: the same one 40 days apart, and one id only in the oldest entries.
            await log.AppendAsync(Outcome("req-old", "chatcmpl-same"));
            await log.AppendAsync(Outcome("req-oldest-only", "chatcmpl-old-only"));
            context.Time.Advance(TimeSpan.FromDays(40));
            await log.AppendAsync(Outcome("req-new", "chatcmpl-same"));
            await context.AppendManyAsync(log, 5);
        }

        // The newest window that holds it: the recent request only (the whole log was read before, and both named).
        var newest = await AuditRequestLookup.FindAsync(context.Database, "chatcmpl-same");
        Assert.Equal(["req-new"], newest.Select(e => e.Details["request_id"]));

        // With a start, every one since.
        var since = await AuditRequestLookup.FindAsync(context.Database, "chatcmpl-same", from: start.AddMinutes(-1));
        Assert.Equal(["req-old", "req-new"], since.Select(e => e.Details["request_id"]));

        // An id only in an old window is still found, the windows walking back to the log's start; one nowhere is not.
        var old = await AuditRequestLookup.FindAsync(context.Database, "chatcmpl-old-only");
        Assert.Equal(["req-oldest-only"], old.Select(e => e.Details["request_id"]));
        Assert.Empty(await AuditRequestLookup.FindAsync(context.Database, "chatcmpl-nowhere"));

        // A tenant's search reads its own entries, by the same windows.
        Assert.Equal(["req-new"], (await AuditRequestLookup.FindAsync(context.Database, "chatcmpl-same", tenant: "acme")).Select(e => e.Details["request_id"]));
        Assert.Empty(await AuditRequestLookup.FindAsync(context.Database, "chatcmpl-same", tenant: "other"));
    }

    [Fact]
    public async Task OnMemberChains_TheWindowsStartAtTheNewestEntryOfAnyChain()
    {
        await using var context = AuditTestContext.Create();
        await using (var gateway = await context.OpenLogAsync(new AuditLogOptions { Chain = "gw-1" }))
        {
            await gateway.AppendAsync(Outcome("req-member-old", "resp_member"));
            context.Time.Advance(TimeSpan.FromDays(3));
            await gateway.AppendAsync(Outcome("req-member-only", "resp_member-only"));
            context.Time.Advance(TimeSpan.FromDays(100));
            await gateway.AppendAsync(Outcome("req-member-new", "resp_member"));
        }

        var found = await AuditRequestLookup.FindAsync(context.Database, "resp_member");
        var entry = Assert.Single(found);
        Assert.Equal(("req-member-new", "gw-1"), (entry.Details["request_id"], entry.Chain));
        Assert.Equal("req-member-only", Assert.Single(await AuditRequestLookup.FindAsync(context.Database, "resp_member-only")).Details["request_id"]);
    }
}
