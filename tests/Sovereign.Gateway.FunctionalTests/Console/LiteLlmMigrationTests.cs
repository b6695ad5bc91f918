using System.Text.Json;
using Sovereign.Cli.Commands;
using Sovereign.Cli.Output;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// Defects an operator moving from LiteLLM's proxy (virtual keys with max_budget, rpm, tpm and a models allow-list)
/// met while setting the same up with the CLI (explorer34).
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class LiteLlmMigrationTests(ConsoleFixture fixture)
{
    private string[] Admin(params string[] args) => [.. args, "--url", fixture.Url, "--admin-token", ConsoleFixture.AdminToken];

    private async Task<string> NewKeyAsync(string tenant, string name) =>
        (await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{tenant}/keys", new { name })).GetProperty("key").GetProperty("id").GetString()!;

    private async Task<JsonElement> LimitsAfterAsync(string tenant, params string[] options)
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(Admin(["limits", tenant, .. options]));
        Assert.True(exit == 0, stderr);
        return (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null)).GetProperty("limits");
    }

    private static string Budgets(JsonElement limits) => string.Join(",", limits.GetProperty("budgets").EnumerateArray()
        .Select(b => $"{TenantsCommand.Text(b, "key_id")}:{b.GetProperty("period").GetString()}={b.GetProperty("amount").GetDecimal()}")
        .Order(StringComparer.Ordinal));

    /// <summary>The entries as <see cref="Budgets"/> and <see cref="Rates"/> write them: in ordinal order (key ids are random).</summary>
    private static string Expected(params string[] entries) => string.Join(",", entries.Order(StringComparer.Ordinal));

    private static string Rates(JsonElement limits) => string.Join(",", limits.GetProperty("rate_limits").EnumerateArray()
        .Select(r => $"{TenantsCommand.Text(r, "key_id")}:{TenantsCommand.Text(r, "requests_per_minute")}/{TenantsCommand.Text(r, "tokens_per_minute")}")
        .Order(StringComparer.Ordinal));

    /// <summary>
    /// 'limits T --budget total=10@KEY' replaced every budget of the tenant: setting one key's budget at a time (as a
    /// LiteLLM migration sets max_budget per key) removed the tenant's own budget and the budgets of the keys set
    /// before, so their spend was uncapped, and the command said nothing. A budget now replaces only the budgets of
    /// its own scope (the tenant's, or the key's it names).
    /// </summary>
    [Fact]
    public async Task Limits_AKeysBudget_KeepsTheTenantsAndTheOtherKeysBudgets()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        var first = await NewKeyAsync(tenant, "app1");
        var second = await NewKeyAsync(tenant, "app2");

        await LimitsAfterAsync(tenant, "--budget", "month=100");
        await LimitsAfterAsync(tenant, "--budget", $"total=10@{first}");
        var limits = await LimitsAfterAsync(tenant, "--budget", $"day=5@{second}", "--budget", $"month=50@{second}");
        Assert.Equal(Expected(":month=100", $"{first}:total=10", $"{second}:day=5", $"{second}:month=50"), Budgets(limits));

        // A scope named again is replaced whole, the others kept.
        limits = await LimitsAfterAsync(tenant, "--budget", $"day=7@{second}");
        Assert.Equal(Expected(":month=100", $"{first}:total=10", $"{second}:day=7"), Budgets(limits));
        limits = await LimitsAfterAsync(tenant, "--budget", "day=20");
        Assert.Equal(Expected(":day=20", $"{first}:total=10", $"{second}:day=7"), Budgets(limits));

        // none@KEY clears one key's budgets; none alone clears them all, as before.
        limits = await LimitsAfterAsync(tenant, "--budget", $"none@{first}");
        Assert.Equal(Expected(":day=20", $"{second}:day=7"), Budgets(limits));
        limits = await LimitsAfterAsync(tenant, "--budget", "none");
        Assert.Equal("", Budgets(limits));
    }

    /// <summary>LiteLLM keys carry rpm and tpm; 'limits' could set only the tenant-wide ones (a key's needed the API).</summary>
    [Fact]
    public async Task Limits_Key_SetsThatKeysRateLimits_KeepingTheTenants()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        var key = await NewKeyAsync(tenant, "app1");

        var limits = await LimitsAfterAsync(tenant, "--requests-per-minute", "600");
        limits = await LimitsAfterAsync(tenant, "--key", key, "--requests-per-minute", "3", "--tokens-per-minute", "1000");
        Assert.Equal(Expected(":600/", $"{key}:3/1000"), Rates(limits));
        limits = await LimitsAfterAsync(tenant, "--key", key, "--tokens-per-minute", "0");
        Assert.Equal(Expected(":600/", $"{key}:3/"), Rates(limits));

        var (exit, _, stderr) = await CliProcess.RunAsync(Admin("limits", tenant, "--key", key));
        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("--requests-per-minute", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// A LiteLLM key's 'models' allow-list had no CLI equivalent: 'keys create --model' was an unknown option, so the
    /// key was issued through the API or not narrowed at all. The key now narrows to the models named, is refused the
    /// others, and 'keys list' shows them.
    /// </summary>
    [Fact]
    public async Task KeysCreate_Model_NarrowsTheKeyToThoseModels()
    {
        var (tenant, _) = await fixture.NewTenantAsync();

        var (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("keys", "create", tenant, "--name", "narrow", "--model", "only-this-one"));
        Assert.True(exit == 0, stderr);
        var secret = stdout.Trim().Split('\n')[^1].Trim();
        Assert.Equal(403, await fixture.ChatAsync(secret));

        (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("keys", "create", tenant, "--name", "story", "--model", ConsoleFixture.Model));
        Assert.True(exit == 0, stderr);
        Assert.Equal(200, await fixture.ChatAsync(stdout.Trim().Split('\n')[^1].Trim()));

        var keys = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/keys", null)).GetProperty("data").EnumerateArray().ToList();
        Assert.Equal("only-this-one", Assert.Single(keys, k => k.GetProperty("name").GetString() == "narrow").GetProperty("policy").GetProperty("allowed_models")[0].GetString());
        Assert.Equal(JsonValueKind.Null, Assert.Single(keys, k => k.GetProperty("name").GetString() == "narrow").GetProperty("policy").GetProperty("allowed_jurisdictions").ValueKind);

        (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("keys", "list", tenant));
        Assert.True(exit == 0, stderr);
        Assert.Contains(stdout.Split('\n'), line => line.Contains("narrow", StringComparison.Ordinal) && line.Contains("only-this-one", StringComparison.Ordinal));
        Assert.Contains(stdout.Split('\n'), line => line.Contains("console-test", StringComparison.Ordinal) && line.Contains("tenant's", StringComparison.Ordinal));
    }

    /// <summary>
    /// LiteLLM's clients may send their key as 'x-litellm-api-key'; the 401 said "You didn't provide an API key" and
    /// nothing about the header the client had used.
    /// </summary>
    [Theory]
    [InlineData("x-litellm-api-key")]
    [InlineData("x-api-key")]
    public async Task KeyInAnotherGatewaysHeader_Is401NamingIt(string header)
    {
        var (_, key) = await fixture.NewTenantAsync();
        using var client = new HttpClient { BaseAddress = fixture.Address };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Add(header, "Bearer " + key);

        using var response = await client.SendAsync(request);

        Assert.Equal(401, (int)response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
        Assert.Equal($"You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' (or 'api-key: YOUR_KEY'); this server does not read the key from '{header}'.", error.GetProperty("message").GetString());
    }

    /// <summary>
    /// 'keys rotate' issued the replacement with the old key's name and policy but none of its budgets or rate limits,
    /// which name the key id: the replacement of a key capped at a total budget and 7 requests a minute (LiteLLM's
    /// max_budget and rpm_limit, moved over) spent and sent without a cap. It now carries them: a total budget at what
    /// the old key has left, a monthly one and the rate limit as they were.
    /// </summary>
    [Fact]
    public async Task KeysRotate_CarriesTheKeysBudgetsAndRateLimit_ATotalAtWhatIsLeft()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        var created = await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{tenant}/keys", new { name = "app1" });
        var oldKey = created.GetProperty("key").GetProperty("id").GetString()!;
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new
        {
            budgets = new object[] { new { period = "month", amount = 100m }, new { period = "total", amount = 1m, key_id = oldKey }, new { period = "month", amount = 5m, key_id = oldKey } },
            rate_limits = new object[] { new { key_id = oldKey, requests_per_minute = 7 } },
        });
        Assert.Equal(200, await fixture.ChatAsync(created.GetProperty("secret").GetString()!, maxTokens: 8));
        var left = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null)).GetProperty("budgets").EnumerateArray()
            .Single(b => TenantsCommand.Text(b, "key_id") == oldKey && b.GetProperty("period").GetString() == "total").GetProperty("remaining").GetDecimal();
        Assert.True(left is > 0m and < 1m, $"the old key spent something of its total budget: {left} left");

        var (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("keys", "rotate", tenant, oldKey));
        Assert.True(exit == 0, stderr);

        var newKey = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/keys", null)).GetProperty("data").EnumerateArray()
            .Select(k => k.GetProperty("id").GetString()!).Single(k => k != oldKey && stdout.Contains(k, StringComparison.Ordinal));
        var limits = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null)).GetProperty("limits");
        Assert.Equal(Expected(":month=100", $"{oldKey}:month=5", $"{oldKey}:total=1", $"{newKey}:month=5", $"{newKey}:total={left}"), Budgets(limits));
        Assert.Equal(Expected($"{oldKey}:7/", $"{newKey}:7/"), Rates(limits));
        Assert.Contains("carr", stdout, StringComparison.Ordinal);

        // A key without limits of its own is rotated as before, with nothing added.
        var plain = await NewKeyAsync(tenant, "plain");
        var rotated = await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{tenant}/keys/{plain}/rotate", null);
        Assert.Equal(JsonValueKind.Null, rotated.GetProperty("limits").ValueKind);
        Assert.Equal(limits.ToString(), (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null)).GetProperty("limits").ToString());
    }
}
