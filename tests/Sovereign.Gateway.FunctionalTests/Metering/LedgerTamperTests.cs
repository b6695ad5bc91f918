using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Sovereign.Inference.Engine;
using Sovereign.Residency.Audit;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>A priced server of its own, whose database the tests edit behind its back as an intruder would.</summary>
public sealed class LedgerTamperFixture() : AdminServerFixture("ledger-tamper-admin-token", "sovereign-ledger-tamper-")
{
    protected override IReadOnlyList<ModelOptions> Models =>
        [new ModelOptions { Id = MeteringFixture.Model, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 4, Threads = 1 }];

    protected override IDictionary<string, string?> Overrides => new Dictionary<string, string?>
    {
        ["Sovereign:Jurisdiction"] = "DE",
        ["Sovereign:BuiltInEmbeddings"] = "false",
    };

    protected override async Task SetUpAsync()
    {
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/standard", new { currency = "EUR", weight = 1 }, 200);
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/standard/prices",
            new { model = MeteringFixture.Model, input_per_million = MeteringFixture.InputPerMillion, output_per_million = MeteringFixture.OutputPerMillion }, 201);
    }
}

/// <summary>
/// The usage ledger is checked against the audit chain by <c>audit verify</c>. The ledger is plain rows: a usage
/// record's cost raised in the database (its daily and period totals with it, so they still add up) changed the
/// tenant's invoice while <c>audit verify</c> called the log intact (found by explorer13, editing the SQLite file).
/// </summary>
public sealed class LedgerTamperTests(LedgerTamperFixture fixture) : IClassFixture<LedgerTamperFixture>
{
    private const string Tenant = "ledger-tamper";

    [Fact]
    public async Task AuditVerify_NamesAUsageRecordChangedOrAddedInTheDatabase()
    {
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = Tenant, plan = "standard", policy = new { allowed_jurisdictions = new[] { "EU" } } }, 201);
        var key = (await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{Tenant}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        using var client = fixture.TenantClient(key);
        var requestIds = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await client.PostAsync("/v1/chat/completions",
                new StringContent("""{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4}""", Encoding.UTF8, "application/json"));
            Assert.Equal(200, (int)response.StatusCode);
            requestIds.Add(response.Headers.GetValues("x-request-id").Single());
        }

        // Each record commits with its outcome entry, which may follow the answer: wait until the three are in.
        while (Long($"SELECT count(*) FROM metering_usage WHERE tenant = '{Tenant}'") < 3)
        {
            await Task.Delay(20);
        }

        // The ledger folds its records into the daily and period totals behind a watermark (session 55), in the
        // background: the edit below is of a settled ledger (a DBA's), so wait until these three are folded.
        while (Long($"SELECT count(*) FROM metering_usage WHERE tenant = '{Tenant}' AND rowid > (SELECT state_value FROM metering_ledger_state WHERE state_key = 'aggregated_through')") > 0)
        {
            await Task.Delay(20);
        }

        // The untouched ledger agrees with the log.
        var intact = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/audit/verify", null, 200);
        Assert.NotEqual("tampered", intact.GetProperty("verdict").GetString());
        Assert.Empty(intact.GetProperty("problems").EnumerateArray());

        // One request billed a euro more, every total raised with it: the invoice shows it, nothing else disagrees.
        var raised = requestIds[1];
        var outcomeEntry = Long($"SELECT seq FROM audit_entries WHERE action = 'inference.completed' AND details LIKE '%{raised}%'");
        Execute($"""
            UPDATE metering_usage SET cost_micros = cost_micros + 1000000 WHERE request_id = '{raised}';
            UPDATE metering_usage_daily SET cost_micros = cost_micros + 1000000 WHERE tenant = '{Tenant}';
            UPDATE metering_tenant_periods SET cost_micros = cost_micros + 1000000 WHERE tenant = '{Tenant}';
            """);
        var invoice = JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/tenants/{Tenant}/invoice")).RootElement;
        Assert.True(decimal.Parse(invoice.GetProperty("total").GetString()!, CultureInfo.InvariantCulture) > 1m);

        var report = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/audit/verify", null, 200);
        Assert.Equal("tampered", report.GetProperty("verdict").GetString());
        var problem = Assert.Single(report.GetProperty("problems").EnumerateArray());
        // By name, as the CLI and the console show it (it was the enum's number, 13, which no script could read without our source).
        Assert.Equal(nameof(AuditProblemKind.LedgerMismatch), problem.GetProperty("kind").GetString());
        Assert.Equal(outcomeEntry, problem.GetProperty("sequence").GetInt64());
        Assert.Contains($"usage record {raised} disagrees with its audit entry: cost ", problem.GetProperty("message").GetString(), StringComparison.Ordinal);

        // A record added outside the server (a charge no request made), with its daily total: it has no entry.
        Execute($"""
            INSERT INTO metering_usage (request_id, ts, tenant, key_id, model, node, jurisdiction, prompt_tokens, completion_tokens, cached_tokens,
                queue_ms, duration_ms, compute_us, outcome, cost_micros, currency)
            SELECT 'req_forged', ts, tenant, key_id, model, node, jurisdiction, 1, 1, 0, 0, 0, 0, 0, 5000000, currency FROM metering_usage WHERE request_id = '{raised}';
            UPDATE metering_usage_daily SET requests = requests + 1, prompt_tokens = prompt_tokens + 1, completion_tokens = completion_tokens + 1, cost_micros = cost_micros + 5000000 WHERE tenant = '{Tenant}';
            """);
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", fixture.DataDirectory);
        Assert.True(exit == 3, $"{exit}: {stdout}{stderr}");
        Assert.Contains($"seq {outcomeEntry}: LedgerMismatch: usage record {raised} disagrees with its audit entry: cost ", stdout, StringComparison.Ordinal);
        Assert.Contains("LedgerMismatch: usage record req_forged (tenant 'ledger-tamper', 5.000000 EUR) has no audit entry", stdout, StringComparison.Ordinal);
        Assert.Contains("The audit log has been tampered with.", stdout, StringComparison.Ordinal);

        // --json is the API's report, kinds by name too.
        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--json", "--data-dir", fixture.DataDirectory);
        Assert.True(exit == 3, $"{exit}: {stdout}{stderr}");
        var kinds = JsonDocument.Parse(stdout).RootElement.GetProperty("problems").EnumerateArray().Select(p => p.GetProperty("kind")).ToList();
        Assert.NotEmpty(kinds);
        Assert.All(kinds, kind => Assert.Equal(nameof(AuditProblemKind.LedgerMismatch), kind.ValueKind == JsonValueKind.String ? kind.GetString() : kind.GetRawText()));
    }

    private SqliteConnection Open()
    {
        var connection = new SqliteConnection($"Data Source={Path.Combine(fixture.DataDirectory, "sovereign.db")};Pooling=False");
        connection.Open();
        return connection;
    }

    private void Execute(string sql)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private long Long(string sql)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }
}
