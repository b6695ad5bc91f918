using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using Sovereign.Cli.Commands;
using Sovereign.Cli.Output;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>One test per CLI defect found by trying the README as a new user would (issue 12).</summary>
[Collection(ConsoleCollection.Name)]
public sealed class CliDefectTests(ConsoleFixture fixture)
{
    private string[] Admin(params string[] args) => [.. args, "--url", fixture.Url, "--admin-token", ConsoleFixture.AdminToken];

    [Fact]
    public async Task ServerDown_ModelsListAndChat_SayCannotReachInOneLine_ExitCode4()
    {
        foreach (var command in new[] { new[] { "models", "list" }, ["chat", "--prompt", "hi"] })
        {
            var (exit, stdout, stderr) = await CliProcess.RunAsync([.. command, "--url", "http://127.0.0.1:1"]);

            Assert.Equal(ExitCodes.Unreachable, exit);
            Assert.Equal("", stdout);
            var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains("cannot reach the server at http://127.0.0.1:1", line, StringComparison.Ordinal);
            Assert.DoesNotContain(" at ", line.Replace("server at", "", StringComparison.Ordinal), StringComparison.Ordinal);
        }
    }

    /// <summary>Found in issue 8: an empty id fetched the collection (exit 70), and an ftp:// --url was a defect (exit 70).</summary>
    [Fact]
    public async Task AnEmptyIdOrANonHttpUrl_IsAUsageError()
    {
        foreach (var args in new[] { Admin("tenants", "show", ""), Admin("limits", ""), ["limits", "t1", "--url", "ftp://x", "--admin-token", "t"], ["tenants", "list", "--url", "http://[::1", "--admin-token", "t"] })
        {
            var (exit, stdout, stderr) = await CliProcess.RunAsync(args);

            Assert.True(exit == ExitCodes.Usage, $"{string.Join(' ', args)}: {exit} {stderr}");
            Assert.Equal("", stdout);
            Assert.DoesNotContain("defect", stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task AnIdWithUrlCharacters_ReachesTheServerAsTheId_NotAsAnotherUrl()
    {
        // Interpolated raw, "x?y=1" became /admin/v1/models/x (a query) and "../tenants" climbed out of the model's
        // path: the server answered "Unknown admin URL", or another endpoint answered.
        foreach (var id in new[] { "x?y=1", "a/b", "x#y", "100%" })
        {
            var (exit, _, stderr) = await CliProcess.RunAsync(Admin("models", "unload", id));

            Assert.Equal(ExitCodes.Failed, exit);
            Assert.DoesNotContain("Unknown admin URL", stderr, StringComparison.Ordinal);
            Assert.Contains("404", stderr, StringComparison.Ordinal);
        }

        foreach (var command in new[] { new[] { "models", "unload", ".." }, ["tenants", "show", "."], ["nodes", "drain", ".."] })
        {
            var (exit, _, stderr) = await CliProcess.RunAsync(Admin(command));

            Assert.Equal(ExitCodes.Usage, exit);
            Assert.Contains("is not an id", stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ABlankId_IsAUsageError_BeforeAnythingIsAsked()
    {
        // 'models load " "' reached the server, asking it to load a model named " ".
        foreach (var command in new[] { new[] { "models", "load", " " }, ["models", "unload", ""], ["models", "languages", "\t"], ["tenants", "show", "  "], ["keys", "create", " "] })
        {
            var (exit, _, stderr) = await CliProcess.RunAsync(Admin(command));

            Assert.True(exit == ExitCodes.Usage, $"{string.Join(' ', command)}: exit {exit}, {stderr}");
            Assert.Contains("empty or only whitespace", stderr, StringComparison.Ordinal);
        }

        var (importExit, _, importError) = await CliProcess.RunAsync("models", "import", TestModels.Stories260K, "--id", " ", "--license", "MIT",
            "--origin-publisher", "Andrej Karpathy", "--origin-country", "US", "--data-dir", Path.Combine(Path.GetTempPath(), "fixes-blank-id-" + Guid.NewGuid().ToString("N")));
        Assert.Equal(ExitCodes.Usage, importExit);
        Assert.Contains("--id", importError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoKey_OnAServerWithTenants_SaysMissingKey_AndTheKeyWorksByFlagAndByEnvironment()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(new Dictionary<string, string?> { ["SOVEREIGN_API_KEY"] = null }, "models", "list", "--url", fixture.Url);
        Assert.Equal(ExitCodes.Failed, exit);
        Assert.Contains("missing key", stderr, StringComparison.Ordinal);
        Assert.Contains("SOVEREIGN_API_KEY", stderr, StringComparison.Ordinal);

        (exit, var stdout, stderr) = await CliProcess.RunAsync("models", "list", "--url", fixture.Url, "--api-key", fixture.HospitalKey);
        Assert.True(exit == 0, stderr);
        Assert.Contains(ConsoleFixture.Model, stdout, StringComparison.Ordinal);

        (exit, stdout, stderr) = await CliProcess.RunAsync(new Dictionary<string, string?> { ["SOVEREIGN_API_KEY"] = fixture.HospitalKey }, "models", "list", "--url", fixture.Url, "--json");
        Assert.True(exit == 0, stderr);
        Assert.Equal(ConsoleFixture.Model, JsonDocument.Parse(stdout).RootElement.GetProperty("data")[0].GetProperty("id").GetString());
    }

    [Fact]
    public async Task Help_NeverShowsTheKeyOrTheOperatorTokenFromTheEnvironment_WhichStillWork()
    {
        // System.CommandLine prints an option's default value in --help; the secrets were those defaults.
        const string Key = "sk-sov-help-must-not-print-this-key";
        const string Token = "sov-admin-help-must-not-print-this-token";
        var secrets = new Dictionary<string, string?> { ["SOVEREIGN_API_KEY"] = Key, ["SOVEREIGN_ADMIN_TOKEN"] = Token };
        foreach (var command in new[] { new[] { "chat" }, ["models", "list"], ["tenants", "list"], ["keys", "create"], ["keys", "rotate"], ["operator-keys", "create"], ["operator-keys", "list"], ["usage"], ["invoice"], ["limits"], ["plans", "list"] })
        {
            var (exit, stdout, stderr) = await CliProcess.RunAsync(secrets, [.. command, "--help"]);

            Assert.True(exit == 0, $"{string.Join(' ', command)}: {stderr}");
            Assert.Contains("--", stdout, StringComparison.Ordinal);
            Assert.DoesNotContain(Key, stdout + stderr, StringComparison.Ordinal);
            Assert.DoesNotContain(Token, stdout + stderr, StringComparison.Ordinal);
        }

        // The environment still supplies both when the options are absent.
        var (adminExit, adminOut, adminErr) = await CliProcess.RunAsync(
            new Dictionary<string, string?> { ["SOVEREIGN_ADMIN_TOKEN"] = ConsoleFixture.AdminToken, ["Sovereign__DataDirectory"] = Path.Combine(fixture.DataDirectory, "nowhere") },
            "tenants", "list", "--url", fixture.Url, "--json");
        Assert.True(adminExit == 0, adminErr);
        Assert.Contains("th-hospital", adminOut, StringComparison.Ordinal);
        var (keyExit, _, keyErr) = await CliProcess.RunAsync(new Dictionary<string, string?> { ["SOVEREIGN_API_KEY"] = fixture.HospitalKey }, "models", "list", "--url", fixture.Url);
        Assert.True(keyExit == 0, keyErr);
    }

    [Fact]
    public async Task TenantsUpdate_ChangesOnlyWhatItsFlagsName_AndKeepsTheRestOfThePolicy()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(Admin("tenants", "create", "cli-merge", "-j", "TH", "--allow-external", "--retain-days", "7", "--model", ConsoleFixture.Model));
        Assert.True(exit == 0, stderr);

        async Task<JsonElement> Policy() => (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/tenants/cli-merge", null)).GetProperty("policy");

        // A flag on its own used to be ignored (without -j), and -j used to reset every other field of the policy.
        (exit, _, stderr) = await CliProcess.RunAsync(Admin("tenants", "update", "cli-merge", "-j", "TH", "-j", "SG"));
        Assert.True(exit == 0, stderr);
        var policy = await Policy();
        Assert.Equal(["TH", "SG"], policy.GetProperty("allowed_jurisdictions").EnumerateArray().Select(j => j.GetString()));
        Assert.True(policy.GetProperty("allow_external_providers").GetBoolean());
        Assert.Equal(7, policy.GetProperty("retention").GetProperty("days").GetInt32());
        Assert.Equal([ConsoleFixture.Model], policy.GetProperty("allowed_models").EnumerateArray().Select(m => m.GetString()));

        (exit, _, stderr) = await CliProcess.RunAsync(Admin("tenants", "update", "cli-merge", "--allow-external", "false", "--model", "any"));
        Assert.True(exit == 0, stderr);
        policy = await Policy();
        Assert.False(policy.GetProperty("allow_external_providers").GetBoolean());
        Assert.Empty(policy.GetProperty("allowed_models").EnumerateArray());
        Assert.Equal(7, policy.GetProperty("retention").GetProperty("days").GetInt32());
        Assert.Equal(2, policy.GetProperty("allowed_jurisdictions").GetArrayLength());

        (exit, _, stderr) = await CliProcess.RunAsync(Admin("tenants", "update", "cli-merge", "--retain-days", "0"));
        Assert.True(exit == 0, stderr);
        Assert.NotEqual(JsonValueKind.Object, (await Policy()).GetProperty("retention").ValueKind);
    }

    /// <summary>'tenants create|show' printed every field of the policy but its retention: --retain-days was visible only with --json.</summary>
    [Fact]
    public async Task TenantsShow_SaysWhetherContentIsRetained_AndForHowLong()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("tenants", "create", "cli-retained", "-j", "TH", "--retain-days", "30"));
        Assert.True(exit == 0, stderr);
        Assert.Matches(@"content retention\s+stored 30 days", stdout);

        (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("tenants", "show", "cli-retained"));
        Assert.True(exit == 0, stderr);
        Assert.Matches(@"content retention\s+stored 30 days", stdout);

        (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("tenants", "update", "cli-retained", "--retain-days", "0"));
        Assert.True(exit == 0, stderr);
        Assert.Matches(@"content retention\s+never stored", stdout);
    }

    /// <summary>A withdrawn price's time was printed as .NET's round-trip form ("2030-01-01T00:00:00.0000000+00:00").</summary>
    [Fact]
    public async Task PlansWithdraw_SaysWhichPriceInTheFormItWasGiven()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(Admin("plans", "price", "standard", "--model", "withdraw-demo", "--input-per-million", "1", "--output-per-million", "2", "--effective-from", "2030-01-01T00:00:00Z"));
        Assert.True(exit == 0, stderr);

        (exit, var stdout, stderr) = await CliProcess.RunAsync(Admin("plans", "withdraw", "standard", "--model", "withdraw-demo", "--effective-from", "2030-01-01T00:00:00Z"));

        Assert.True(exit == 0, stderr);
        Assert.Equal("Price from 2030-01-01T00:00:00Z withdrawn from standard.\n", stdout);
    }

    [Fact]
    public async Task Invoice_UsageInTwoCurrencies_CurrencyOptionChoosesOne()
    {
        var (tenant, key) = await fixture.NewTenantAsync("standard");
        Assert.Equal(200, await fixture.ChatAsync(key));
        await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { plan = "baht" });
        Assert.Equal(200, await fixture.ChatAsync(key));

        var (exit, _, stderr) = await CliProcess.RunAsync(Admin("invoice", tenant));
        Assert.Equal(ExitCodes.Failed, exit);
        Assert.Contains("--currency", stderr, StringComparison.Ordinal);

        (exit, var stdout, stderr) = await CliProcess.RunAsync(Admin("invoice", tenant, "--currency", "thb"));
        Assert.True(exit == 0, stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToList();
        Assert.NotEmpty(lines);
        Assert.All(lines, line => Assert.Equal("THB", line.Split(',')[1]));
    }

    [Theory]
    [InlineData("XYZ")]
    [InlineData("euro")]
    [InlineData("XXX")]
    public async Task Invoice_InACurrencyThatIsNotIso4217_IsRefusedNamingIt_NotAnEmptyInvoice(string currency)
    {
        // It answered an invoice with no lines and a total of 0 in "XYZ", as if there were nothing to bill. The CLI says
        // so before asking, naming its flag (it was the server's 400, exit 1, naming 'currency').
        var (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("invoice", "th-hospital", "--currency", currency));

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Equal("", stdout);
        Assert.Contains($"--currency: '{currency}' is not an ISO 4217 currency code", stderr, StringComparison.Ordinal);

        using var response = await fixture.Admin.GetAsync($"/admin/v1/tenants/th-hospital/invoice?currency={currency}");
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal("currency", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());

        (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("invoice", "th-hospital", "--currency", "eur", "--json"));
        Assert.True(exit == 0, stderr);
        Assert.Equal("EUR", JsonDocument.Parse(stdout).RootElement.GetProperty("currency").GetString());
    }

    [Theory]
    [InlineData("month=abc")]
    [InlineData("month")]
    [InlineData("=5")]
    public async Task Limits_AMalformedBudgetOption_IsAUsageError_ExitCode2(string budget)
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(Admin("limits", "th-hospital", "--budget", budget));

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("expected PERIOD=AMOUNT", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invoice_EmptyPeriod_IsInThePlansCurrency_NotXxx()
    {
        var (tenant, _) = await fixture.NewTenantAsync("standard");

        var (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("invoice", tenant, "--json"));

        Assert.True(exit == 0, stderr);
        var invoice = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal("EUR", invoice.GetProperty("currency").GetString());
        Assert.DoesNotContain("XXX", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PipedTable_KeepsItsFullWidth()
    {
        var name = "A tenant whose display name is far longer than eighty columns of a terminal " + new string('x', 40);
        await fixture.SendAsync(HttpMethod.Patch, "/admin/v1/tenants/sg-bank", new { name });

        var (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("tenants", "list"));

        Assert.True(exit == 0, stderr);
        Assert.Contains(stdout.Split('\n'), line => line.Contains(name, StringComparison.Ordinal) && line.Contains("sg-bank", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Limits_ShowsRateLimits_AsWellAsBudgets()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        var (exit, _, stderr) = await CliProcess.RunAsync(Admin("limits", tenant, "--budget", "month=500", "--requests-per-minute", "600"));
        Assert.True(exit == 0, stderr);

        (exit, var stdout, stderr) = await CliProcess.RunAsync(Admin("limits", tenant));

        Assert.True(exit == 0, stderr);
        Assert.Contains("requests / minute", stdout, StringComparison.Ordinal);
        Assert.Contains(stdout.Split('\n'), line => line.Contains("600", StringComparison.Ordinal) && line.Contains("unlimited", StringComparison.Ordinal));
        Assert.Contains(stdout.Split('\n'), line => line.Contains("month", StringComparison.Ordinal) && line.Contains("500 ", StringComparison.Ordinal));
    }

    /// <summary>
    /// Each call replaced every limit: raising the requests per minute removed the tenant's monthly budget (its spend
    /// was then uncapped) and its keys' rate limits, which the CLI cannot set.
    /// </summary>
    [Fact]
    public async Task Limits_SettingOneLimit_KeepsTheOthers()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        var keyId = (await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{tenant}/keys", new { name = "batch" })).GetProperty("key").GetProperty("id").GetString()!;
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new
        {
            budgets = new[] { new { period = "month", amount = 500m } },
            rate_limits = new object[] { new { requests_per_minute = 600 }, new { key_id = keyId, requests_per_minute = 5 } },
        });

        async Task<JsonElement> LimitsAfter(params string[] options)
        {
            var (exit, _, stderr) = await CliProcess.RunAsync(Admin(["limits", tenant, .. options]));
            Assert.True(exit == 0, stderr);
            return (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null)).GetProperty("limits");
        }

        string Budgets(JsonElement limits) => string.Join(",", limits.GetProperty("budgets").EnumerateArray().Select(b => $"{b.GetProperty("period").GetString()}={b.GetProperty("amount").GetDecimal()}"));
        string Rates(JsonElement limits) => string.Join(",", limits.GetProperty("rate_limits").EnumerateArray().Select(r => $"{TenantsCommand.Text(r, "key_id")}:{TenantsCommand.Text(r, "requests_per_minute")}/{TenantsCommand.Text(r, "tokens_per_minute")}"));

        var limits = await LimitsAfter("--requests-per-minute", "900");
        Assert.Equal("month=500", Budgets(limits));
        Assert.Equal($"{keyId}:5/,:900/", Rates(limits));

        limits = await LimitsAfter("--budget", "day=5", "--tokens-per-minute", "1000");
        Assert.Equal("day=5", Budgets(limits));
        Assert.Equal($"{keyId}:5/,:900/1000", Rates(limits));

        limits = await LimitsAfter("--budget", "none", "--requests-per-minute", "0", "--tokens-per-minute", "0");
        Assert.Equal("", Budgets(limits));
        Assert.Equal($"{keyId}:5/", Rates(limits));
    }

    /// <summary>
    /// 'plans set' named the plan as typed: 'plans set CASE-PLAN --weight 2' said 'Plan CASE-PLAN saved' of the plan
    /// 'case-plan', and a batch plan set without --priority was saved interactive.
    /// </summary>
    [Fact]
    public async Task PlansSet_SaysThePlansOwnName_AndKeepsItsPriority()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(Admin("plans", "set", "case-plan", "--currency", "EUR", "--priority", "batch"));
        Assert.True(exit == 0, stderr);

        (exit, var stdout, stderr) = await CliProcess.RunAsync(Admin("plans", "set", "CASE-PLAN", "--weight", "2"));

        Assert.True(exit == 0, stderr);
        Assert.Equal("Plan case-plan saved: EUR, weight 2, batch.", stdout.Trim());
    }

    [Fact]
    public async Task Json_IsHonouredByCommandsThatOfferIt()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("plans", "set", "json-plan", "--currency", "EUR", "--json"));
        Assert.True(exit == 0, stderr);
        Assert.Equal("EUR", JsonDocument.Parse(stdout).RootElement.GetProperty("currency").GetString());

        (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("plans", "price", "json-plan", "--model", ConsoleFixture.Model, "--input-per-million", "1", "--json"));
        Assert.True(exit == 0, stderr);
        Assert.Equal("json-plan", JsonDocument.Parse(stdout).RootElement.GetProperty("name").GetString());

        (exit, stdout, stderr) = await CliProcess.RunAsync(Admin(
            "plans", "price", "json-plan", "--model", ConsoleFixture.Model, "--input-per-million", "1", "--cached-input-per-million", "0.25",
            "--effective-from", DateTimeOffset.UtcNow.AddDays(1).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture), "--json"));
        Assert.True(exit == 0, stderr);
        Assert.Contains(JsonDocument.Parse(stdout).RootElement.GetProperty("prices").EnumerateArray(),
            p => p.GetProperty("cached_input_per_million").GetDecimal() == 0.25m);

        var (tenant, _) = await fixture.NewTenantAsync();
        var keys = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/keys", null);
        (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("keys", "revoke", tenant, keys.GetProperty("data")[0].GetProperty("id").GetString()!, "--json"));
        Assert.True(exit == 0, stderr);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("revoked").GetBoolean());
    }

    [Fact]
    public async Task NodesAdd_BaseUrlEndingInV1_IsRefusedWithTheUrlToUse()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(Admin("nodes", "add", "sg-vllm", "--jurisdiction", "SG", "--base-url", "http://10.1.2.3:8000/v1/", "--model", "typhoon"));

        Assert.Equal(ExitCodes.Failed, exit);
        Assert.Contains("must not end in /v1", stderr, StringComparison.Ordinal);
        Assert.Contains("'http://10.1.2.3:8000'", stderr, StringComparison.Ordinal);
        var nodes = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/nodes", null);
        Assert.DoesNotContain(nodes.GetProperty("data").EnumerateArray(), n => n.GetProperty("id").GetString() == "sg-vllm");
    }

    [Fact]
    public async Task ConfiguredModel_UnloadedThenLoaded_ServesAgain()
    {
        var (_, key) = await fixture.NewTenantAsync();
        var (exit, _, stderr) = await CliProcess.RunAsync(Admin("models", "unload", ConsoleFixture.Model));
        Assert.True(exit == 0, stderr);
        Assert.Equal(503, await fixture.ChatAsync(key)); // not loaded now: SDKs retry a 503, never a 404

        (exit, var stdout, stderr) = await CliProcess.RunAsync(Admin("models", "load", ConsoleFixture.Model, "--json"));

        Assert.True(exit == 0, stderr);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("loaded").GetBoolean());
        Assert.Equal(200, await fixture.ChatAsync(key));
    }

    /// <summary>
    /// Found in issue 8: the default cap (512) does not fit a model served with a 256-token context, and the server
    /// refuses it as OpenAI does, so a first `sovereign chat` failed. Without --max-tokens the turn is sent again
    /// uncapped (the server bounds it by the context); a cap the user chose is never dropped.
    /// </summary>
    [Fact]
    public async Task Chat_OnASmallContext_WithoutMaxTokens_Answers_AndAChosenCapStillRefuses()
    {
        var (_, key) = await fixture.NewTenantAsync();

        var (exit, stdout, stderr) = await CliProcess.RunAsync("chat", "--prompt", "Once upon a time", "--url", fixture.Url, "--api-key", key);
        Assert.True(exit == 0, stderr);
        Assert.False(string.IsNullOrWhiteSpace(stdout));

        (exit, _, stderr) = await CliProcess.RunAsync("chat", "--prompt", "Once upon a time", "--max-tokens", "1000", "--url", fixture.Url, "--api-key", key);
        Assert.Equal(ExitCodes.Failed, exit);
        Assert.Contains("max_completion_tokens", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Chat_IsCappedByDefault()
    {
        var command = ChatCommand.Create();
        var parsed = command.Parse(["--prompt", "hi"]);
        var option = command.Options.OfType<System.CommandLine.Option<int>>().Single(o => o.Name == "--max-tokens");

        Assert.Equal(ChatCommand.DefaultMaxTokens, parsed.GetValue(option));
        Assert.InRange(ChatCommand.DefaultMaxTokens, 1, 4096);
    }

    [Fact]
    public async Task AuditPublicKey_EndsWithANewline()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", fixture.DataDirectory);

        Assert.True(exit == 0, stderr);
        Assert.StartsWith("-----BEGIN PUBLIC KEY-----", stdout, StringComparison.Ordinal);
        Assert.EndsWith("-----END PUBLIC KEY-----\n", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EveryV1Answer_CarriesTheEvidenceHeaders_AndModelsListsOnlyWhatThePolicyCanRun()
    {
        using var client = new HttpClient { BaseAddress = fixture.Address };
        using var unauthorized = await client.GetAsync("/v1/models");
        Assert.Equal(401, (int)unauthorized.StatusCode);
        Assert.Equal("TH", unauthorized.Headers.GetValues("x-sovereign-jurisdiction").Single());
        Assert.Equal("bkk-1", unauthorized.Headers.GetValues("x-sovereign-node").Single());

        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", fixture.BankKey);
        using var bank = await client.GetAsync("/v1/models");
        Assert.Equal("TH", bank.Headers.GetValues("x-sovereign-jurisdiction").Single());
        Assert.Empty(JsonDocument.Parse(await bank.Content.ReadAsStringAsync()).RootElement.GetProperty("data").EnumerateArray());
        using var missing = await client.GetAsync("/v1/no-such-thing");
        Assert.Equal(404, (int)missing.StatusCode);
        Assert.True(missing.Headers.Contains("x-sovereign-node"));

        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", fixture.HospitalKey);
        var hospital = JsonDocument.Parse(await client.GetStringAsync("/v1/models")).RootElement;
        Assert.Contains(hospital.GetProperty("data").EnumerateArray(), m => m.GetProperty("id").GetString() == ConsoleFixture.Model);
    }

    [Fact]
    public async Task Serve_BadModelPath_OneLineNoStackTrace_ExitCode2()
    {
        var data = Directory.CreateTempSubdirectory("sovereign-bad-model-").FullName;
        var missing = Path.Combine(data, "no-such-model.gguf");
        var (exit, _, stderr) = await CliProcess.RunAsync("serve", "--model", missing, "--urls", "http://127.0.0.1:0", "--data-dir", data);
        Directory.Delete(data, recursive: true);

        Assert.Equal(ExitCodes.Usage, exit);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("Sovereign:Models:0:Path", line, StringComparison.Ordinal);
        Assert.Contains(missing, line, StringComparison.Ordinal);
    }

    /// <summary>
    /// A setting the host itself checks at start (an option validated on start, a port out of range) was logged by the
    /// host as "fail: ...Host[11] Hosting failed to start" with the whole stack, before serve's one line.
    /// </summary>
    [Theory]
    [InlineData("Sovereign__Metering__ReservationLifetime", "-00:01:00", "Sovereign:Metering:ReservationLifetime must be positive", "http://127.0.0.1:0")]
    // Through the environment: serve checks an --urls flag itself (CliUsageErrorTests), the host checks the setting.
    [InlineData("urls", "http://127.0.0.1:99999", "(Parameter 'port')", null)]
    public async Task Serve_ASettingTheHostChecks_IsOneLine_WithoutTheHostsStackTrace(string variable, string value, string message, string? urls)
    {
        var data = Directory.CreateTempSubdirectory("sovereign-host-check-").FullName;
        try
        {
            string[] listen = urls is null ? [] : ["--urls", urls];
            var (exit, stdout, stderr) = await CliProcess.RunAsync(new Dictionary<string, string?> { ["Sovereign__Jurisdiction"] = "TH", [variable] = value },
                ["serve", "--model", TestModels.Stories260K + "=stories", "--threads", "1", "--parallel", "1", .. listen, "--data-dir", data]);

            // The console log goes to stdout, serve's own lines to stderr: the operator sees both.
            Assert.Equal(ExitCodes.Usage, exit);
            Assert.Contains(message, Assert.Single(stderr.Split('\n'), l => l.Contains("cannot start", StringComparison.Ordinal)), StringComparison.Ordinal);
            Assert.DoesNotContain("fail:", stdout + stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", stdout + stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task Serve_WithoutJurisdiction_WarnsAtStart_AndStartsQuietly()
    {
        var (stdout, stderr) = await StartUntilReadyAsync("http://127.0.0.1:0", jurisdiction: null);

        Assert.Contains(stderr, l => l.Contains("warning: this gateway declares no jurisdiction", StringComparison.Ordinal) && l.Contains("Sovereign__Jurisdiction", StringComparison.Ordinal));
        Assert.Contains(stderr, l => l.Contains("ready on http://127.0.0.1:", StringComparison.Ordinal));
        Assert.DoesNotContain(stderr, l => l.Contains("without an API key", StringComparison.Ordinal));
        lock (stdout)
        {
            // Orleans' option dumps and notes are Information; its real warnings (a slow machine) may still show.
            Assert.DoesNotContain(stdout, l => l.StartsWith("info: Orleans", StringComparison.Ordinal) || l.StartsWith("warn: Orleans.Runtime.Silo", StringComparison.Ordinal));
            Assert.DoesNotContain(stdout, l => l.Contains("n_ctx_seq", StringComparison.Ordinal));
            Assert.DoesNotContain(stdout, l => l.StartsWith("info: Microsoft.AspNetCore", StringComparison.Ordinal));
        }
    }

    /// <summary>
    /// Listening on every address, serve printed its console at http://0.0.0.0:PORT/console, which is no address a
    /// browser opens (earlier sessions noticed): the console line names localhost, the listen address stays as bound.
    /// </summary>
    [Theory]
    [InlineData("http://0.0.0.0:0", "http://0.0.0.0:")]
    [InlineData("http://[::]:0", "http://[::]:")]
    public async Task Serve_OnEveryAddress_PrintsAConsoleAddressABrowserOpens(string urls, string bound)
    {
        var (_, stderr) = await StartUntilReadyAsync(urls, jurisdiction: "TH");

        var ready = Assert.Single(stderr, l => l.Contains("ready on", StringComparison.Ordinal));
        var match = System.Text.RegularExpressions.Regex.Match(ready, @"ready on (\S+):(\d+) \(console: http://localhost:(\d+)/console\)\.$");
        Assert.True(match.Success, ready);
        Assert.Equal(bound, match.Groups[1].Value + ":");
        Assert.Equal(match.Groups[2].Value, match.Groups[3].Value);
    }

    /// <summary>
    /// A fresh install answers /v1 without a key; bound beyond loopback (0.0.0.0 for a demo, a container) that is
    /// anyone on the network running the models with no key, limit or budget, and serve said nothing.
    /// </summary>
    [Fact]
    public async Task Serve_FreshInstallListeningBeyondLoopback_WarnsThatV1NeedsNoKey()
    {
        var (_, stderr) = await StartUntilReadyAsync("http://0.0.0.0:0", jurisdiction: "TH");

        var warning = Assert.Single(stderr, l => l.Contains("without an API key", StringComparison.Ordinal));
        Assert.Contains("0.0.0.0", warning, StringComparison.Ordinal);
        Assert.Contains("sovereign tenants create", warning, StringComparison.Ordinal);
        Assert.Contains("Sovereign__AnonymousAccess=false", warning, StringComparison.Ordinal);
    }

    private static async Task<(List<string> Stdout, List<string> Stderr)> StartUntilReadyAsync(string urls, string? jurisdiction)
    {
        var data = Directory.CreateTempSubdirectory("sovereign-serve-").FullName;
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "sovereign.dll"), "serve", "--model", TestModels.Stories260K + "=stories", "--urls", urls, "--data-dir", data, "--threads", "1", "--parallel", "1" })
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["Sovereign__BuiltInEmbeddings"] = "false";
        start.Environment.Remove("Sovereign__Jurisdiction");
        if (jurisdiction is not null)
        {
            start.Environment["Sovereign__Jurisdiction"] = jurisdiction;
        }

        using var process = Process.Start(start)!;
        var stdout = new List<string>();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (stdout)
                {
                    stdout.Add(e.Data);
                }
            }
        };
        process.BeginOutputReadLine();
        var stderr = new List<string>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            while (await process.StandardError.ReadLineAsync(timeout.Token) is { } line)
            {
                stderr.Add(line);
                if (line.Contains("ready on", StringComparison.Ordinal))
                {
                    break;
                }
            }
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            Directory.Delete(data, recursive: true);
        }

        return (stdout, stderr);
    }
}
