using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.Models;
using Sovereign.Gateway.Pipeline;
using Sovereign.Inference.Engine;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// One server in jurisdiction TH, so its node is in pool <c>th-local</c>, with its device class named <c>EPYC</c> (one
/// class in any case: usage, invoices and the node list show it as <c>epyc</c>, the price's spelling), and
/// a chat model with 2 sequence slots. The "pooled" plan has token prices plus a compute rate for the pool; the
/// "classed" plan a compute rate for the device class; "gold" reserves 1 slot of the pool. Its own server: a
/// reservation gates every request of the pool.
/// </summary>
public sealed class PoolsFixture() : AdminServerFixture(AdminToken, "sovereign-pools-")
{
    public const string AdminToken = "pools-admin-token";
    public const string Model = "stories";
    public const string Pool = "th-local";
    public const decimal InputPerMillion = 1000m;
    public const decimal OutputPerMillion = 2000m;
    public const decimal ModelPerComputeSecond = 0.001m;
    public const decimal PoolPerComputeSecond = 250m;
    public const decimal ClassPerComputeSecond = 40m;

    private int _tenants;

    protected override IReadOnlyList<ModelOptions> Models =>
        [new ModelOptions { Id = Model, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 2, MaxQueue = 64, Threads = 1 }];

    protected override IDictionary<string, string?> Overrides => new Dictionary<string, string?>
    {
        ["Sovereign:Jurisdiction"] = "TH",
        ["Sovereign:BuiltInEmbeddings"] = "false",
        ["Sovereign:Cluster:DeviceClass"] = "EPYC",
    };

    protected override async Task SetUpAsync()
    {
        foreach (var plan in new[] { "pooled", "classed", "gold", "free" })
        {
            await SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}", new { currency = "THB" }, 200);
            await SendAsync(HttpMethod.Post, $"/admin/v1/plans/{plan}/prices",
                new { model = Model, input_per_million = InputPerMillion, output_per_million = OutputPerMillion, per_compute_second = ModelPerComputeSecond }, 201);
        }

        await SendAsync(HttpMethod.Post, "/admin/v1/plans/pooled/compute-prices", new { pool = Pool, per_compute_second = PoolPerComputeSecond }, 201);
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/pooled/compute-prices", new { device_class = "epyc", per_compute_second = ClassPerComputeSecond }, 201);
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/classed/compute-prices", new { device_class = "epyc", per_compute_second = ClassPerComputeSecond }, 201);
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/gold", new { reservations = new[] { new { pool = Pool, slots = 1 } } }, 200);
    }

    public async Task<(string Tenant, HttpClient Client)> NewTenantAsync(string plan)
    {
        var id = "p" + Interlocked.Increment(ref _tenants);
        await SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan, policy = new { allowed_jurisdictions = new[] { "TH" } } }, 201);
        var key = (await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        return (id, TenantClient(key));
    }
}

/// <summary>Pools through HTTP: the pool's price on the record and the invoice, validation, and reserved capacity.</summary>
public sealed class PoolsTests(PoolsFixture fixture) : IClassFixture<PoolsFixture>
{
    private static StringContent Chat(int maxTokens) =>
        new($$"""{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":{{maxTokens}},"temperature":0}""", Encoding.UTF8, "application/json");

    [Theory]
    [InlineData("pooled", "pool=th-local")]
    [InlineData("classed", "device_class=epyc")]
    public async Task APoolOrDeviceClassPrice_PricesTheRecord_AndUsageAndInvoiceNameThePoolAndDeviceClass(string plan, string scope)
    {
        // "pooled" has both a pool and a device-class rate: the pool's wins.
        var perSecond = plan == "pooled" ? PoolsFixture.PoolPerComputeSecond : PoolsFixture.ClassPerComputeSecond;
        var (tenant, client) = await fixture.NewTenantAsync(plan);
        using var _ = client;
        using var response = await client.PostAsync("/v1/chat/completions", Chat(8));
        Assert.Equal(200, (int)response.StatusCode);
        var requestId = response.Headers.GetValues("x-sovereign-audit-id").Single();

        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(requestId)
            ?? throw new Xunit.Sdk.XunitException($"no usage record for {requestId}");
        Assert.Equal(("th-local", "epyc"), (record.Pool, record.DeviceClass));
        Assert.True(record.ComputeSeconds > 0m);
        var expected = Math.Round((record.PromptTokens * PoolsFixture.InputPerMillion + record.CompletionTokens * PoolsFixture.OutputPerMillion) / 1_000_000m
            + record.ComputeSeconds * perSecond, 6, MidpointRounding.ToEven);
        Assert.Equal(expected, record.Cost);
        var version = record.PriceVersion ?? "";
        Assert.Contains(";" + plan + ":" + scope + "@", version, StringComparison.Ordinal);

        var usage = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?tenant={tenant}&group_by=pool,device_class", null, 200);
        var row = Assert.Single(usage.GetProperty("data").EnumerateArray());
        Assert.Equal(("th-local", "epyc"), (row.GetProperty("pool").GetString(), row.GetProperty("device_class").GetString()));
        Assert.Equal(expected, row.GetProperty("cost").GetDecimal());

        var invoice = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/invoice", null, 200);
        var line = Assert.Single(invoice.GetProperty("lines").EnumerateArray());
        Assert.Equal(("th-local", "epyc"), (line.GetProperty("pool").GetString(), line.GetProperty("device_class").GetString()));
        Assert.Equal(expected, decimal.Parse(invoice.GetProperty("total").GetString()!, CultureInfo.InvariantCulture));
        var csv = await fixture.Admin.GetStringAsync($"/admin/v1/tenants/{tenant}/invoice?format=csv");
        // The waived tokens follow the pool and device class (none here: the standard plans waive nothing).
        Assert.Contains(",th-local,epyc,0,0,,line,,\r\n", csv, StringComparison.Ordinal);

        var tenantView = JsonDocument.Parse(await client.GetStringAsync("/v1/usage?group_by=pool")).RootElement.GetProperty("data");
        Assert.Equal("th-local", Assert.Single(tenantView.EnumerateArray()).GetProperty("pool").GetString());
    }

    [Fact]
    public async Task PlansClusterStatusAndNodes_ShowPricesReservationsPoolAndDeviceClass()
    {
        var plans = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/plans", null, 200)).GetProperty("data").EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!);

        var pooled = plans["pooled"].GetProperty("compute_prices").EnumerateArray().ToList();
        Assert.Contains(pooled, r => r.GetProperty("pool").GetString() == "th-local" && r.GetProperty("per_compute_second").GetDecimal() == PoolsFixture.PoolPerComputeSecond);
        Assert.Contains(pooled, r => r.GetProperty("device_class").GetString() == "epyc");
        var reservation = Assert.Single(plans["gold"].GetProperty("reservations").EnumerateArray());
        Assert.Equal(("th-local", 1), (reservation.GetProperty("pool").GetString(), reservation.GetProperty("slots").GetInt32()));

        // The cluster's status and the node list place this process in its pool, with its device class and reservations.
        var status = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/cluster", null, 200);
        var pool = Assert.Single(status.GetProperty("pools").EnumerateArray());
        Assert.Equal(("th-local", 1), (pool.GetProperty("pool").GetString(), pool.GetProperty("reserved_slots").GetInt32()));
        Assert.Equal(["epyc"], pool.GetProperty("device_classes").EnumerateArray().Select(c => c.GetString()));
        var node = Assert.Single((await fixture.SendAsync(HttpMethod.Get, "/admin/v1/nodes", null, 200)).GetProperty("data").EnumerateArray());
        Assert.Equal(("th-local", "epyc"), (node.GetProperty("pool").GetString(), node.GetProperty("device_class").GetString()));
    }

    [Theory]
    [InlineData("""{"pool":"th-local","device_class":"epyc","per_compute_second":1}""", "device_class")]
    [InlineData("""{"per_compute_second":1}""", "pool")]
    [InlineData("""{"pool":"TH LOCAL","per_compute_second":1}""", "pool")]
    [InlineData("""{"pool":"th-local","per_compute_second":-1}""", "per_compute_second")]
    [InlineData("""{"pool":"th-local","per_compute_second":15000001}""", "per_compute_second")]
    [InlineData("""{"pool":"th-local"}""", "per_compute_second")]
    [InlineData("""{"pool":"th-local","per_compute_second":1,"effective_from":"2001-01-01T00:00:00Z"}""", "effective_from")]
    public async Task ABadComputePrice_Is400NamingTheField(string body, string param)
    {
        using var response = await fixture.Admin.PostAsync("/admin/v1/plans/free/compute-prices", new StringContent(body, Encoding.UTF8, "application/json"));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal(param, error.GetProperty("param").GetString());
    }

    /// <summary>
    /// A price scheduled by mistake (a year mistyped, a wrong rate) could not be taken back: it stayed in the book and
    /// took effect at its time. Now one not in force yet is withdrawn, audited; one in force stays (409).
    /// </summary>
    [Fact]
    public async Task APriceNotInForceYet_CanBeWithdrawn_Audited_ButOneInForceCannot()
    {
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/free/prices", new { model = "typo", input_per_million = 500m, effective_from = "2206-01-01T00:00:00Z" }, 201);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/free/compute-prices", new { pool = "far", per_compute_second = 9m, effective_from = "2206-01-01T00:00:00Z" }, 201);

        var plan = await fixture.SendAsync(HttpMethod.Delete, "/admin/v1/plans/free/prices?model=typo&effective_from=2206-01-01T00:00:00Z", null, 200);
        Assert.DoesNotContain(plan.GetProperty("prices").EnumerateArray(), p => p.GetProperty("model").GetString() == "typo");
        var (exit, _, stderr) = await CliProcess.RunAsync("plans", "withdraw", "free", "--pool", "far", "--effective-from", "2206-01-01T00:00:00Z",
            "--url", fixture.Address.ToString(), "--admin-token", PoolsFixture.AdminToken);
        Assert.True(exit == 0, stderr);
        var free = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/plans", null, 200)).GetProperty("data").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "free");
        Assert.DoesNotContain(free.GetProperty("compute_prices").EnumerateArray(), c => c.TryGetProperty("pool", out var pool) && pool.GetString() == "far");

        var audit = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/audit", null, 200)).GetProperty("data").EnumerateArray().Select(e => e.GetProperty("action").GetString()).ToList();
        Assert.Contains("price.withdraw", audit);
        Assert.Contains("compute_price.withdraw", audit);

        // The model's price from the fixture's start is in force: usage was priced with it.
        var inForce = free.GetProperty("prices").EnumerateArray().First(p => p.GetProperty("model").GetString() == PoolsFixture.Model).GetProperty("effective_from").GetDateTimeOffset();
        var refused = await fixture.SendAsync(HttpMethod.Delete,
            $"/admin/v1/plans/free/prices?model={PoolsFixture.Model}&effective_from={Uri.EscapeDataString(inForce.ToString("O", CultureInfo.InvariantCulture))}", null, 409);
        Assert.Equal(("price_in_force", "effective_from"), (refused.GetProperty("error").GetProperty("code").GetString(), refused.GetProperty("error").GetProperty("param").GetString()));
        await fixture.SendAsync(HttpMethod.Delete, "/admin/v1/plans/free/prices?model=typo&effective_from=2206-01-01T00:00:00Z", null, 404);
    }

    /// <summary>
    /// Prices match device classes in any case, but a withdrawal matched the scope as written: <c>A100</c> added and
    /// <c>a100</c> withdrawn was a 404 "no compute price", and the rate stayed. Classes are stored in lower case now and
    /// withdrawn in any case; the audit entry names the scope withdrawn.
    /// </summary>
    [Fact]
    public async Task AComputePriceOfADeviceClass_IsWithdrawnInAnyCase()
    {
        const string From = "2207-01-01T00:00:00Z";
        var added = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/free/compute-prices", new { device_class = "A100", per_compute_second = 7m, effective_from = From }, 201);
        Assert.Contains(added.GetProperty("compute_prices").EnumerateArray(), c => c.TryGetProperty("device_class", out var d) && d.GetString() == "a100");

        var plan = await fixture.SendAsync(HttpMethod.Delete, $"/admin/v1/plans/free/compute-prices?device_class=a100&effective_from={From}", null, 200);

        Assert.DoesNotContain(plan.GetProperty("compute_prices").EnumerateArray(), c => c.TryGetProperty("device_class", out var d) && string.Equals(d.GetString(), "a100", StringComparison.OrdinalIgnoreCase));
        var entry = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/audit?order=desc&limit=20", null, 200)).GetProperty("data").EnumerateArray()
            .First(e => e.GetProperty("action").GetString() == "compute_price.withdraw");
        Assert.Equal("device_class=a100", entry.GetProperty("details").GetProperty("scope").GetString());
        await fixture.SendAsync(HttpMethod.Delete, $"/admin/v1/plans/free/compute-prices?device_class=A100&effective_from={From}", null, 404);
    }

    [Theory]
    [InlineData("""{"reservations":[{"pool":"th-local","slots":2}]}""", "reservations[0].slots", "reservation_exceeds_capacity")]
    [InlineData("""{"reservations":[{"pool":"th-local","slots":0}]}""", "reservations[0].slots", "invalid_plan")]
    [InlineData("""{"weight":0}""", "weight", "invalid_plan")]
    [InlineData("""{"reservations":[{"slots":1}]}""", "reservations[0].pool", "missing_required_parameter")]
    public async Task AReservationThatCannotBeKept_Is400NamingTheField(string body, string param, string code)
    {
        // The pool has 2 slots for the model and gold reserves 1: another plan may reserve at most 1.
        using var response = await fixture.Admin.PutAsync("/admin/v1/plans/free", new StringContent(body, Encoding.UTF8, "application/json"));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal((param, code), (error.GetProperty("param").GetString(), error.GetProperty("code").GetString()));
    }

    [Fact]
    public async Task AReservedTenant_GetsItsSlot_WhileAnotherTenantSaturatesThePool()
    {
        var (busyTenant, busy) = await fixture.NewTenantAsync("free");
        var (goldTenant, gold) = await fixture.NewTenantAsync("gold");
        using var busyClient = busy;
        using var goldClient = gold;
        var batcher = fixture.App.Services.GetRequiredService<ModelCatalog>().TryGet(PoolsFixture.Model, out var served) ? served.Batcher! : throw new InvalidOperationException();
        var pools = fixture.App.Services.GetRequiredService<PoolAdmission>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // The pool gate's answers, per tenant: granted (the request holds its slot) or queued (it waits for one).
        var answers = new System.Collections.Concurrent.ConcurrentDictionary<(string Tenant, PoolSlotState State), TaskCompletionSource>();
        TaskCompletionSource Answer(string tenant, PoolSlotState state) =>
            answers.GetOrAdd((tenant, state), static _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        Task Answered(string tenant, PoolSlotState state) => Answer(tenant, state).Task.WaitAsync(TimeSpan.FromMinutes(2)); // a bound for a hang only
        void OnAnswer(PoolSlotRequest slot, PoolSlotState state) => Answer(slot.TenantId, state).TrySetResult();
        var slots = fixture.App.Services.GetRequiredService<PoolSlotClient>();
        slots.Answered += OnAnswer;

        // The engine holds every step until released, so whatever is admitted stays running.
        batcher.BeforeStep = async _ => await release.Task;
        try
        {
            var first = busyClient.PostAsync("/v1/chat/completions", Chat(4));
            Task<PoolSlotCounts> Gold() => pools.CountsAsync(PoolsFixture.Pool, PoolsFixture.Model, "gold");
            await Answered(busyTenant, PoolSlotState.Granted);
            Assert.Equal(1, (await Gold()).UnreservedRunning);

            // Only the second request's answer counts as its wait (not one the first may have had before its grant).
            answers.TryRemove((busyTenant, PoolSlotState.Queued), out _);
            var second = busyClient.PostAsync("/v1/chat/completions", Chat(4));
            await Answered(busyTenant, PoolSlotState.Queued);
            Assert.Equal(1, (await Gold()).Waiting);

            // One of the pool's 2 slots is idle, but it is gold's: the second request keeps waiting. Gold gets it at once.
            Assert.Equal(0, (await Gold()).ReservedRunning);
            var reserved = goldClient.PostAsync("/v1/chat/completions", Chat(4));
            await Answered(goldTenant, PoolSlotState.Granted);
            Assert.Equal(new PoolSlotCounts(1, 1, 1), await Gold());
            Assert.False(second.IsCompleted);

            release.SetResult();
            foreach (var response in await Task.WhenAll(first, second, reserved))
            {
                Assert.Equal(200, (int)response.StatusCode);
                response.Dispose();
            }
        }
        finally
        {
            slots.Answered -= OnAnswer;
            batcher.BeforeStep = null;
            release.TrySetResult();
        }
    }

    [Fact]
    public async Task APoolReservedInFull_RefusesAPlanWithoutAReservation_NamingTheRule_AndRecordsTheRefusalAtNoCost()
    {
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/gold", new { reservations = new[] { new { pool = PoolsFixture.Pool, slots = 2 } } }, 200);
        try
        {
            var (tenant, client) = await fixture.NewTenantAsync("free");
            using var _ = client;
            using var response = await client.PostAsync("/v1/chat/completions", Chat(4));
            var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

            Assert.Equal(503, (int)response.StatusCode);
            Assert.Equal("pool_capacity_reserved", error.GetProperty("code").GetString());
            Assert.Contains("th-local", error.GetProperty("message").GetString(), StringComparison.Ordinal);
            Assert.Equal("10", response.Headers.GetValues("Retry-After").Single());
            var usage = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?tenant={tenant}&group_by=pool", null, 200);
            var row = Assert.Single(usage.GetProperty("data").EnumerateArray());
            Assert.Equal((1, 0m, "th-local"), (row.GetProperty("refused").GetInt32(), row.GetProperty("cost").GetDecimal(), row.GetProperty("pool").GetString()));
            var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
            Assert.Equal("pool_capacity_reserved", record?.RefusalCode);
        }
        finally
        {
            await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/gold", new { reservations = new[] { new { pool = PoolsFixture.Pool, slots = 1 } } }, 200);
        }
    }
}
