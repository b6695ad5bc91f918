using Sovereign.Metering.Ledger;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

/// <summary>
/// The correction of a record billed for a request that was answered as refused (its outcome's commit landed late):
/// the record becomes a refusal at no cost and every total it was folded into moves by the difference, in one commit,
/// so usage, invoices and budgets' spend agree with the record. SQLite, by the ledger's own commit (the path a ledger
/// that commits on its own takes; the carried path is AuditCommitInDoubtTests' on PostgreSQL).
/// </summary>
public sealed class LedgerVoidTests
{
    [Fact]
    public async Task VoidAsync_ABilledRecord_BecomesARefusalAtNoCost_AndEveryTotalMovesByTheDifference()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        Assert.True(await ledger.AppendAsync(Record("billed", cost: 0.25m, prompt: 100, completion: 50)));
        Assert.True(await ledger.AppendAsync(Record("kept", Day0.AddHours(11), cost: 0.5m, prompt: 10, completion: 5)));

        var voided = await ledger.VoidAsync("billed", "audit_unavailable");

        Assert.NotNull(voided);
        Assert.Equal((UsageOutcome.Completed, 0.25m, 100, 50), (voided.Outcome, voided.Cost, voided.PromptTokens, voided.CompletionTokens));
        var record = await ledger.GetAsync("billed");
        Assert.NotNull(record);
        Assert.Equal((UsageOutcome.Refused, "audit_unavailable", 0, 0, 0, 0m, 0m), (record.Outcome, record.RefusalCode, record.PromptTokens, record.CompletionTokens, record.CachedTokens, record.ComputeSeconds, record.Cost));
        Assert.Equal(0.5m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Total, Day0.AddHours(12), "EUR"));
        Assert.Equal(0.5m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Month, Day0.AddHours(12), "EUR"));
        Assert.Equal(0.5m, await ledger.GetSpendAsync("acme", "key-1", UsagePeriod.Day, Day0.AddHours(12), "EUR"));
        var day = Assert.Single(await ledger.QueryUsageAsync(new UsageQuery { Tenant = "acme", From = Day0, To = Day0.AddDays(1) }));
        Assert.Equal((2L, 1L, 1L, 10L, 5L, 0.25m, 0.5m), (day.Requests, day.Completed, day.Refused, day.PromptTokens, day.CompletionTokens, day.ComputeSeconds, day.Cost));
        var invoice = await new InvoiceBuilder(ledger).BuildAsync("acme", Day0, Day0.AddDays(1));
        Assert.Equal(0.5m, invoice.Total);

        // Once is enough: a second correction finds the refusal and writes nothing.
        Assert.Null(await ledger.VoidAsync("billed", "audit_unavailable"));
        Assert.Null(await ledger.VoidAsync("never-stored", "audit_unavailable"));
        Assert.Equal(0.5m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Total, Day0.AddHours(12), "EUR"));
    }
}
