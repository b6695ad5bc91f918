using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.FunctionalTests.Metering;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// Fail closed on the evidence: when the audit log's storage refuses to commit, a request whose decision cannot be
/// recorded does not run (503 naming the rule, Retry-After), is billed nothing and holds no money; once the storage
/// is back, requests run again and the chain still verifies. A server of its own: its audit storage is broken on purpose.
/// </summary>
public sealed class AuditUnavailableTests(MeteringFixture fixture) : IClassFixture<MeteringFixture>
{
    [Fact]
    public async Task AuditStorageDown_RequestsAre503AuditUnavailable_BilledNothing_AndServedAgainOnceItIsBack()
    {
        var (tenant, key) = await fixture.NewTenantAsync(new { budgets = new[] { new { period = "total", amount = 10m } } });
        using var client = fixture.TenantClient(key);
        using (var served = await client.PostAsync("/v1/chat/completions", Chat(stream: false)))
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }

        var firstCost = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200)).GetProperty("budgets")[0].GetProperty("settled").GetDecimal();
        Assert.True(firstCost > 0m);

        // The storage refuses every new audit entry, as a full or failing disk would.
        await ExecuteAsync("CREATE TRIGGER audit_storage_down BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;");
        var refusedIds = new List<string>();
        foreach (var stream in new[] { false, true })
        {
            using var refused = await client.PostAsync("/v1/chat/completions", Chat(stream));
            var text = await refused.Content.ReadAsStringAsync();
            Assert.True(refused.StatusCode == HttpStatusCode.ServiceUnavailable, text);
            Assert.Equal("application/json; charset=utf-8", refused.Content.Headers.ContentType?.ToString());
            var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal("audit_unavailable", error.GetProperty("code").GetString());
            Assert.Equal("server_error", error.GetProperty("type").GetString());
            Assert.NotNull(refused.Headers.RetryAfter);
            refusedIds.Add(refused.Headers.GetValues("x-sovereign-audit-id").Single());
        }

        await ExecuteAsync("DROP TRIGGER audit_storage_down;");

        // Refused after admission: recorded with the rule, at no cost, and the reservations were released.
        var ledger = fixture.App.Services.GetRequiredService<UsageLedger>();
        foreach (var id in refusedIds)
        {
            var record = await ledger.GetAsync(id);
            Assert.NotNull(record);
            Assert.Equal(UsageOutcome.Refused, record.Outcome);
            Assert.Equal("audit_unavailable", record.RefusalCode);
            Assert.Equal(0, record.CompletionTokens);
            Assert.Equal(0m, record.Cost);
        }

        var budget = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200)).GetProperty("budgets")[0];
        Assert.Equal(firstCost, budget.GetProperty("settled").GetDecimal());
        Assert.Equal(10m - firstCost, budget.GetProperty("remaining").GetDecimal());

        // The storage is back: served again, and the whole chain verifies.
        using (var again = await client.PostAsync("/v1/chat/completions", Chat(stream: false)))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        }

        var verified = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/audit/verify", null, 200);
        Assert.True(verified.GetProperty("valid").GetBoolean(), verified.ToString());
    }

    [Fact]
    public async Task OutcomeEntryRefused_AnAnswerNotYetSentIs503AndBilledNothing_AStreamUnderWayIsBilledWhatItReceived()
    {
        var (tenant, key) = await fixture.NewTenantAsync(new { budgets = new[] { new { period = "total", amount = 10m } } });
        using var client = fixture.TenantClient(key);

        // Decisions still commit; only the entries that close a request fail, as a disk filling up mid-request would.
        await ExecuteAsync("CREATE TRIGGER audit_outcomes_down BEFORE INSERT ON audit_entries WHEN NEW.action = 'inference.completed' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;");
        string heldId, streamedId;
        string streamedText;
        try
        {
            using (var held = await client.PostAsync("/v1/chat/completions", Chat(stream: false)))
            {
                var text = await held.Content.ReadAsStringAsync();
                Assert.True(held.StatusCode == HttpStatusCode.ServiceUnavailable, text);
                Assert.Equal("audit_unavailable", JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("code").GetString());
                heldId = held.Headers.GetValues("x-sovereign-audit-id").Single();
            }

            using var streamed = await client.PostAsync("/v1/chat/completions", Chat(stream: true));
            Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
            streamedText = await streamed.Content.ReadAsStringAsync();
            streamedId = streamed.Headers.GetValues("x-sovereign-audit-id").Single();
        }
        finally
        {
            await ExecuteAsync("DROP TRIGGER audit_outcomes_down;");
        }

        // The answer never sent: nothing billed, and the ledger says why.
        var ledger = fixture.App.Services.GetRequiredService<UsageLedger>();
        var heldRecord = await ledger.GetAsync(heldId);
        Assert.NotNull(heldRecord);
        Assert.Equal(UsageOutcome.Refused, heldRecord.Outcome);
        Assert.Equal("audit_unavailable", heldRecord.RefusalCode);
        Assert.Equal(0m, heldRecord.Cost);

        // The stream's tokens reached the client: they are billed, and the stream did not end as a success.
        Assert.Contains("\"content\"", streamedText);
        Assert.DoesNotContain("[DONE]", streamedText);
        var streamedRecord = await ledger.GetAsync(streamedId);
        Assert.NotNull(streamedRecord);
        Assert.True(streamedRecord.CompletionTokens > 0);
        Assert.True(streamedRecord.Cost > 0m);

        // The budget holds exactly the streamed request's cost: nothing is left reserved.
        var budget = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200)).GetProperty("budgets")[0];
        Assert.Equal(streamedRecord.Cost, budget.GetProperty("settled").GetDecimal());
        Assert.Equal(10m - streamedRecord.Cost, budget.GetProperty("remaining").GetDecimal());

        var verified = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/audit/verify", null, 200);
        Assert.True(verified.GetProperty("valid").GetBoolean(), verified.ToString());
    }

    /// <summary>
    /// A full disk fails the usage ledger as well as the audit log: the refusal cannot be recorded either. Found by
    /// filling a small tmpfs under a server: each 503 kept its budget reservation until it expired (30 minutes), so
    /// once the disk had room again the tenant was refused 429 budget_exceeded for money it never spent.
    /// </summary>
    [Fact]
    public async Task AuditAndLedgerBothDown_TheRefusedRequestsReservationIsGivenBack()
    {
        var (tenant, key) = await fixture.NewTenantAsync(new { budgets = new[] { new { period = "total", amount = 10m } } });
        using var client = fixture.TenantClient(key);
        await ExecuteAsync("CREATE TRIGGER audit_down_too BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;" +
            "CREATE TRIGGER ledger_down_too BEFORE INSERT ON metering_usage BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;");
        try
        {
            using var refused = await client.PostAsync("/v1/chat/completions", Chat(stream: false));
            var text = await refused.Content.ReadAsStringAsync();
            Assert.True(refused.StatusCode == HttpStatusCode.ServiceUnavailable, text);
            Assert.Equal("audit_unavailable", JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("code").GetString());
        }
        finally
        {
            await ExecuteAsync("DROP TRIGGER audit_down_too; DROP TRIGGER ledger_down_too;");
        }

        var budget = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200)).GetProperty("budgets")[0];
        Assert.Equal(0m, budget.GetProperty("reserved").GetDecimal());
        Assert.Equal(0m, budget.GetProperty("settled").GetDecimal());
        Assert.Equal(10m, budget.GetProperty("remaining").GetDecimal());
    }

    private static StringContent Chat(bool stream) => new(
        JsonSerializer.Serialize(new { model = MeteringFixture.Model, messages = new[] { new { role = "user", content = "Once upon a time" } }, max_tokens = 4, temperature = 0, stream }),
        Encoding.UTF8, "application/json");

    private Task ExecuteAsync(string sql) => Storage.SqliteScript.ExecuteAsync(fixture.DataDirectory, sql);
}
