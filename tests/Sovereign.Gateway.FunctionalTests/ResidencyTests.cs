using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.Http.Headers;
using System.Text.Json;
using OpenAI.Chat;
using Orleans;
using Orleans.Runtime;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// Data residency end to end, with the official SDK: a tenant pinned to TH never reaches the SG node, not when TH
/// is busy and not when it is down; a tenant allowed ASEAN does; headers agree with the audit log.
/// </summary>
[Collection(ResidencyCollection.Name)]
public sealed class ResidencyTests(ResidencyFixture fixture)
{
    private static readonly ChatCompletionOptions Short = new() { MaxOutputTokenCount = 6, Temperature = 0 };

    private (ChatClient Chat, HeaderCapture Headers) Client(string key)
    {
        var capture = new HeaderCapture();
        var options = new global::OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.ThAddress, "/v1"), RetryPolicy = new ClientRetryPolicy(0) };
        options.AddPolicy(capture, PipelinePosition.PerCall);
        return (new ChatClient(ResidencyFixture.Model, new ApiKeyCredential(key), options), capture);
    }

    [Fact]
    public async Task ThTenant_IsServedInThailand_AndSaysSo()
    {
        var sgBefore = fixture.SgAuditHead;
        var (chat, headers) = Client(fixture.ThOnlyKey);

        var completion = (await chat.CompleteChatAsync([new UserChatMessage("Once upon a time")], Short)).Value;

        Assert.Equal(6, completion.Usage.OutputTokenCount);
        Assert.Equal("TH", headers.Last(InferenceRouter.JurisdictionHeader));
        Assert.Equal("th-1", headers.Last(InferenceRouter.NodeHeader));
        Assert.StartsWith("req_", headers.Last(InferenceRouter.AuditIdHeader), StringComparison.Ordinal);
        Assert.Equal(sgBefore, fixture.SgAuditHead);
    }

    [Fact]
    public async Task ThBusyOrDown_ThTenantIsRefused503_NeverSentToSingapore_AseanTenantIsServedInSingapore()
    {
        var sgBefore = fixture.SgAuditHead;
        var (thChat, _) = Client(fixture.ThOnlyKey);
        var (aseanChat, aseanHeaders) = Client(fixture.AseanKey);

        // Busy: hold TH's decode loop with one request in its only slot.
        var batcher = fixture.ThBatcher;
        var release = new TaskCompletionSource();
        batcher.BeforeStep = async wake => await Task.WhenAny(release.Task, wake);
        Task<ClientResult<ChatCompletion>> held;
        try
        {
            using (var occupant = fixture.TenantClient(fixture.ThOnlyKey))
            {
                held = Client(fixture.ThOnlyKey).Chat.CompleteChatAsync([new UserChatMessage("Hold the slot")], Short);
                await WaitUntilAsync(() => batcher.RunningCount + batcher.WaitingCount == 1);
            }

            var busy = await Assert.ThrowsAsync<ClientResultException>(() => thChat.CompleteChatAsync([new UserChatMessage("hi")], Short));
            Assert.Equal(503, busy.Status);
            Assert.Contains("no_compliant_capacity", busy.Message, StringComparison.Ordinal);
            Assert.Equal(sgBefore, fixture.SgAuditHead);

            var viaSg = (await aseanChat.CompleteChatAsync([new UserChatMessage("Once upon a time")], Short)).Value;
            Assert.Equal("SG", aseanHeaders.Last(InferenceRouter.JurisdictionHeader));
            Assert.Equal("sg-1", aseanHeaders.Last(InferenceRouter.NodeHeader));
            Assert.Equal(ResidencyFixture.Model, viaSg.Model);
            Assert.True(viaSg.Usage.OutputTokenCount > 0);
        }
        finally
        {
            batcher.BeforeStep = null;
            release.TrySetResult();
        }

        Assert.Equal(6, (await held).Value.Usage.OutputTokenCount);
        var sgAfterBusy = fixture.SgAuditHead;
        Assert.True(sgAfterBusy > sgBefore, "the ASEAN tenant was served by the SG node");

        // Down: the operator takes TH out of rotation.
        await fixture.AdminAsync(HttpMethod.Put, "/admin/v1/nodes/th-1/state", new { state = "down" }, 200);
        try
        {
            var down = await Assert.ThrowsAsync<ClientResultException>(() => thChat.CompleteChatAsync([new UserChatMessage("hi")], Short));
            Assert.Equal(503, down.Status);
            Assert.Contains("no_compliant_capacity", down.Message, StringComparison.Ordinal);
            Assert.Equal(sgAfterBusy, fixture.SgAuditHead);

            await aseanChat.CompleteChatAsync([new UserChatMessage("Once upon a time")], Short);
            Assert.Equal("SG", aseanHeaders.Last(InferenceRouter.JurisdictionHeader));
        }
        finally
        {
            await fixture.AdminAsync(HttpMethod.Put, "/admin/v1/nodes/th-1/state", new { state = "active" }, 200);
        }

        await thChat.CompleteChatAsync([new UserChatMessage("hi")], Short);
    }

    /// <summary>
    /// A replica the operator drained or took down is recorded so in the decision's reasons, this process's own and a
    /// registered node alike, as <c>nodes list</c> shows it: an auditor reading why a request was refused sees the
    /// operator's act, not a fault. Both were "unhealthy", as a node that stopped answering was.
    /// </summary>
    [Theory]
    [InlineData("draining")]
    [InlineData("down")]
    public async Task NodesTheOperatorTookOut_AreRecordedInTheirState_InTheRefusalsReasons(string state)
    {
        await fixture.AdminAsync(HttpMethod.Put, "/admin/v1/nodes/th-1/state", new { state }, 200);
        await fixture.AdminAsync(HttpMethod.Put, "/admin/v1/nodes/sg-1/state", new { state }, 200);
        try
        {
            using var client = fixture.TenantClient(fixture.AseanKey);
            using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                $$"""{"model":"{{ResidencyFixture.Model}}","messages":[{"role":"user","content":"hi"}],"max_tokens":2}""", System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(503, (int)response.StatusCode);
            var auditId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();

            var entry = (await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/audit?tenant=asean-corp&order=desc", null, 200)).GetProperty("data").EnumerateArray()
                .Single(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == auditId);
            var reasons = entry.GetProperty("reasons").EnumerateArray().Select(r => r.GetString()).ToList();
            Assert.Contains($"replica_unavailable:th-1:{state}", reasons);
            Assert.Contains($"replica_unavailable:sg-1:{state}", reasons);
        }
        finally
        {
            await fixture.AdminAsync(HttpMethod.Put, "/admin/v1/nodes/th-1/state", new { state = "active" }, 200);
            await fixture.AdminAsync(HttpMethod.Put, "/admin/v1/nodes/sg-1/state", new { state = "active" }, 200);
        }
    }

    [Fact]
    public async Task ResponseHeaders_AgreeWithTheAuditLog()
    {
        var (chat, headers) = Client(fixture.ThOnlyKey);
        var completion = (await chat.CompleteChatAsync([new UserChatMessage("Once upon a time")], Short)).Value;
        var auditId = headers.Last(InferenceRouter.AuditIdHeader);

        var entries = (await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/audit?tenant=th-hospital", null, 200)).GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == auditId).ToList();

        Assert.Equal(2, entries.Count);
        var allowed = entries.Single(e => e.GetProperty("action").GetString() == "inference.allowed");
        var completed = entries.Single(e => e.GetProperty("action").GetString() == "inference.completed");
        foreach (var entry in entries)
        {
            Assert.Equal(headers.Last(InferenceRouter.NodeHeader), entry.GetProperty("node").GetString());
            Assert.Equal(headers.Last(InferenceRouter.JurisdictionHeader), entry.GetProperty("jurisdiction").GetString());
            Assert.Equal("th-hospital", entry.GetProperty("tenant").GetString());
        }

        Assert.Equal("allowed", allowed.GetProperty("decision").GetString());
        Assert.Equal(completion.Usage.InputTokenCount, completed.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(completion.Usage.OutputTokenCount, completed.GetProperty("completion_tokens").GetInt32());
        var verify = await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/audit/verify", null, 200);
        Assert.True(verify.GetProperty("valid").GetBoolean(), verify.ToString());
        Assert.Equal("trusted", verify.GetProperty("verdict").GetString());
        Assert.True(verify.GetProperty("covered_through").GetInt64() >= 1, verify.ToString());
        Assert.Equal(verify.GetProperty("last_sequence").GetInt64() - verify.GetProperty("covered_through").GetInt64(), verify.GetProperty("uncovered").GetInt64());
        Assert.Equal(verify.GetProperty("covered_through").GetInt64(), verify.GetProperty("last_checkpoint").GetProperty("sequence").GetInt64());

        // A bound of zero seconds: whatever is not signed yet makes the log "uncovered", never "tampered".
        var strict = await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/audit/verify?max_uncovered_seconds=0", null, 200);
        Assert.True(strict.GetProperty("valid").GetBoolean(), strict.ToString());
        Assert.NotEqual("tampered", strict.GetProperty("verdict").GetString());
        var bad = await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/audit/verify?max_uncovered_seconds=soon", null, 400);
        Assert.Equal("max_uncovered_seconds", bad.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task TenantPinnedElsewhere_IsRefused403AtThisGateway_AndTheRefusalIsAudited()
    {
        var key = await fixture.CreateTenantWithKeyAsync("eu-ministry", new { allowed_jurisdictions = new[] { "EU" } });
        var (chat, headers) = Client(key);

        var refused = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("hi")], Short));

        Assert.Equal(403, refused.Status);
        Assert.Contains("residency_violation", refused.Message, StringComparison.Ordinal);
        var auditId = headers.Last(InferenceRouter.AuditIdHeader);
        var entries = (await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/audit?tenant=eu-ministry", null, 200)).GetProperty("data").EnumerateArray().ToList();
        var entry = entries.Single(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == auditId);
        Assert.Equal("refused", entry.GetProperty("decision").GetString());
        Assert.Equal("residency_violation", entry.GetProperty("code").GetString());
        Assert.NotEmpty(entry.GetProperty("reasons").EnumerateArray());
    }

    [Fact]
    public async Task TenantPinnedElsewhere_LanguageDetection_IsRefused403AtThisGateway()
    {
        // The text is the tenant's content, as a prompt is: detecting its language here processes it in TH.
        var key = await fixture.CreateTenantWithKeyAsync("eu-detector", new { allowed_jurisdictions = new[] { "EU" } });
        using var client = fixture.TenantClient(key);

        using var answer = await client.PostAsync("/v1/language/detect", new StringContent("""{"input":"Bonjour, je voudrais un rendez-vous."}""", System.Text.Encoding.UTF8, "application/json"));

        var body = JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(403, (int)answer.StatusCode);
        Assert.Equal("residency_violation", body.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("this gateway is in TH", body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);

        using var allowed = fixture.TenantClient(fixture.ThOnlyKey);
        using var served = await allowed.PostAsync("/v1/language/detect", new StringContent("""{"input":"Bonjour, je voudrais un rendez-vous."}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(200, (int)served.StatusCode);
    }

    [Fact]
    public async Task ModelOutsideThePolicy_IsRefused403ModelNotAllowed_AndNotListed()
    {
        var key = await fixture.CreateTenantWithKeyAsync("narrow-models", new { allowed_jurisdictions = new[] { "TH" }, allowed_models = new[] { "some-other-model" } });

        var refused = await Assert.ThrowsAsync<ClientResultException>(() => Client(key).Chat.CompleteChatAsync([new UserChatMessage("hi")], Short));
        Assert.Equal(403, refused.Status);
        Assert.Contains("model_not_allowed", refused.Message, StringComparison.Ordinal);

        using var client = fixture.TenantClient(key);
        var models = JsonDocument.Parse(await client.GetStringAsync("/v1/models")).RootElement.GetProperty("data");
        Assert.Equal(0, models.GetArrayLength());

        // Nor is the built-in alias, which could only choose models this tenant may not use.
        using var alias = await client.GetAsync("/v1/models/auto");
        Assert.Equal(404, (int)alias.StatusCode);

        // A tenant who may use the model sees the alias listed and retrieved alike.
        using var allowed = fixture.TenantClient(fixture.ThOnlyKey);
        var listed = JsonDocument.Parse(await allowed.GetStringAsync("/v1/models")).RootElement.GetProperty("data").EnumerateArray().ToList();
        var auto = Assert.Single(listed, m => m.GetProperty("id").GetString() == "auto");
        Assert.Equal(auto.ToString(), JsonDocument.Parse(await allowed.GetStringAsync("/v1/models/auto")).RootElement.ToString());
    }

    /// <summary>
    /// A key narrowed to an engine's model that declares no language (a LiteLLM key's 'models', moved over) saw 'auto'
    /// in /v1/models and retrieved it, though auto chooses such a model for no language and its default is not the
    /// key's: every request to it was 403. The alias is listed only where it could choose a model the caller may use.
    /// </summary>
    [Fact]
    public async Task Auto_IsNotListed_WhereItsOnlyAllowedCandidateDeclaresNoLanguage()
    {
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "no-language-engine", jurisdiction = "TH", base_url = fixture.Sg.Urls.First(), models = new[] { new { id = "no-language-model", upstream = ResidencyFixture.Model, capacity = 2 } } }, 201);
        var key = await fixture.CreateTenantWithKeyAsync("no-language-reader", new { allowed_jurisdictions = new[] { "TH" }, allowed_models = new[] { "no-language-model" }, allow_external_providers = true });
        using var client = fixture.TenantClient(key);

        var listed = JsonDocument.Parse(await client.GetStringAsync("/v1/models")).RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal(["no-language-model"], listed);
        using var alias = await client.GetAsync("/v1/models/auto");
        Assert.Equal(404, (int)alias.StatusCode);

        // As listed: a request to auto is refused, the model itself served.
        using var refused = await client.PostAsync("/v1/chat/completions", new StringContent("""{"model":"auto","messages":[{"role":"user","content":"Once upon a time there was a cat."}],"max_tokens":2}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(403, (int)refused.StatusCode);
    }

    [Fact]
    public async Task AModelIdWithASlash_IsRetrieved_WhetherTheSlashIsSentAsIsOrEscaped()
    {
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "slash-engine", jurisdiction = "TH", base_url = fixture.Sg.Urls.First(), models = new[] { new { id = "org/slash-model", upstream = ResidencyFixture.Model, capacity = 2 } } }, 201);
        var key = await fixture.CreateTenantWithKeyAsync("slash-reader", new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true });
        using var client = fixture.TenantClient(key);

        Assert.Contains("org/slash-model", JsonDocument.Parse(await client.GetStringAsync("/v1/models")).RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
        foreach (var path in new[] { "/v1/models/org/slash-model", "/v1/models/org%2Fslash-model" })
        {
            using var response = await client.GetAsync(path);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == System.Net.HttpStatusCode.OK, $"{path}: {body}");
            Assert.Equal("org/slash-model", JsonDocument.Parse(body).RootElement.GetProperty("id").GetString());
        }

        using var missing = await client.GetAsync("/v1/models/org/no-such-model");
        Assert.Equal(404, (int)missing.StatusCode);
        Assert.Equal("model_not_found", JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task GuessedKeys_LeaveNoGrainActivationBehind()
    {
        // Each guessed key used to activate a key grain that stayed for 15 minutes: unauthenticated memory growth.
        var management = fixture.Th.Services.GetRequiredService<IGrainFactory>().GetGrain<IManagementGrain>(0);
        async Task<int> KeyActivationsAsync() =>
            (await management.GetSimpleGrainStatistics()).Where(s => s.GrainType.Contains("ApiKeyGrain", StringComparison.Ordinal)).Sum(s => s.ActivationCount);
        var before = await KeyActivationsAsync();
        using var client = new HttpClient { BaseAddress = fixture.ThAddress };
        for (var i = 0; i < 200; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-sov-" + Guid.NewGuid().ToString("N"));
            using var response = await client.SendAsync(request);
            Assert.Equal(401, (int)response.StatusCode);
        }

        // Deactivation follows each refused lookup; at most the last few can still be on their way out.
        Assert.InRange(await KeyActivationsAsync(), 0, before + 20);

        // Keys issued afterwards still work.
        var created = await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants/th-hospital/keys", new { name = "after-guesses" }, 201);
        var (chat, _) = Client(created.GetProperty("secret").GetString()!);
        await chat.CompleteChatAsync([new UserChatMessage("hi")], Short);
    }

    [Fact]
    public async Task UnknownTenantIds_LeaveNoGrainActivationBehind()
    {
        // Each admin read of a tenant id that does not exist used to activate a tenant grain that stayed until idle
        // collection (15 minutes): an operator script or a typo loop grows the silo's memory.
        var management = fixture.Th.Services.GetRequiredService<IGrainFactory>().GetGrain<IManagementGrain>(0);
        async Task<int> TenantActivationsAsync() =>
            (await management.GetSimpleGrainStatistics()).Where(s => s.GrainType.Contains("TenantGrain", StringComparison.Ordinal)).Sum(s => s.ActivationCount);
        var before = await TenantActivationsAsync();
        string[] reads = ["", "/keys", "/limits", "/invoice"];
        for (var i = 0; i < 200; i++)
        {
            await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/tenants/no-such-{Guid.NewGuid():N}{reads[i % reads.Length]}", null, 404);
        }

        // Deactivation follows each miss; at most the last few can still be on their way out.
        var after = await TenantActivationsAsync();
        Assert.True(after <= before + 20, $"{after} tenant grain activations after 200 misses, {before} before");

        // A tenant created afterwards under an id read before exists and serves.
        var id = "late-" + Guid.NewGuid().ToString("N")[..8];
        await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/tenants/{id}", null, 404);
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, policy = new { allowed_jurisdictions = new[] { "TH" } } }, 201);
        Assert.Equal(id, (await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/tenants/{id}", null, 200)).GetProperty("id").GetString());
        var created = await fixture.AdminAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "after-misses" }, 201);
        var (chat, _) = Client(created.GetProperty("secret").GetString()!);
        await chat.CompleteChatAsync([new UserChatMessage("hi")], Short);
    }

    [Fact]
    public async Task RevokedKey_IsRefusedOnTheNextRequest()
    {
        var created = await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants/th-hospital/keys", new { name = "to-revoke" }, 201);
        var secret = created.GetProperty("secret").GetString()!;
        var keyId = created.GetProperty("key").GetProperty("id").GetString()!;
        Assert.StartsWith("sk-sov-", secret, StringComparison.Ordinal);
        Assert.StartsWith(created.GetProperty("key").GetProperty("prefix").GetString()!, secret, StringComparison.Ordinal);
        var (chat, _) = Client(secret);
        await chat.CompleteChatAsync([new UserChatMessage("hi")], Short);

        await fixture.AdminAsync(HttpMethod.Delete, $"/admin/v1/tenants/th-hospital/keys/{keyId}", null, 200);

        // 401s are logged at Debug (anyone can send guessed keys), but a revoked key in use is the operator's business.
        var captured = new System.Collections.Concurrent.ConcurrentQueue<(string Category, Microsoft.Extensions.Logging.LogLevel Level, Microsoft.Extensions.Logging.EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        fixture.Th.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().AddProvider(capture);
        var refused = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("hi")], Short));
        capture.Stop();
        Assert.Equal(401, refused.Status);
        Assert.Contains($"The API key {keyId} has been revoked", refused.Message, StringComparison.Ordinal);
        Assert.Contains(captured, l => l.Event.Id == 4005 && l.Level == Microsoft.Extensions.Logging.LogLevel.Information
            && l.Message.Contains(keyId, StringComparison.Ordinal) && l.Message.Contains("th-hospital", StringComparison.Ordinal));
        var listed = (await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/tenants/th-hospital/keys", null, 200)).GetProperty("data").EnumerateArray()
            .Single(k => k.GetProperty("id").GetString() == keyId);
        Assert.NotEqual(JsonValueKind.Null, listed.GetProperty("revoked_at").ValueKind);
        Assert.DoesNotContain(secret, listed.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadEndpoints_AreIsolatedBetweenTenants()
    {
        var (chat, _) = Client(fixture.AseanKey);
        await chat.CompleteChatAsync([new UserChatMessage("hi")], Short);
        await Client(fixture.ThOnlyKey).Chat.CompleteChatAsync([new UserChatMessage("hi")], Short);

        foreach (var (key, tenant) in new[] { (fixture.ThOnlyKey, "th-hospital"), (fixture.AseanKey, "asean-corp") })
        {
            using var client = fixture.TenantClient(key);
            var audit = JsonDocument.Parse(await client.GetStringAsync("/v1/audit")).RootElement.GetProperty("data").EnumerateArray().ToList();
            Assert.NotEmpty(audit);
            Assert.All(audit, e => Assert.Equal(tenant, e.GetProperty("tenant").GetString()));

            foreach (var adminPath in new[] { "/admin/v1/tenants", "/admin/v1/audit", "/admin/v1/nodes", "/admin/v1/tenants/th-hospital/keys" })
            {
                Assert.Equal(401, (int)(await client.GetAsync(adminPath)).StatusCode);
            }
        }

        using var anonymous = new HttpClient { BaseAddress = fixture.ThAddress };
        Assert.Equal(401, (int)(await anonymous.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(401, (int)(await anonymous.GetAsync("/v1/audit")).StatusCode);
    }

    [Theory]
    [InlineData("/admin/v1/tenants", """{"id":"Bad Id","policy":{"allowed_jurisdictions":["TH"]}}""", "id")]
    [InlineData("/admin/v1/tenants", """{"id":"t1"}""", "policy")]
    [InlineData("/admin/v1/tenants", """{"id":"t1","policy":{"allowed_jurisdictions":[]}}""", "policy.allowed_jurisdictions")]
    [InlineData("/admin/v1/tenants", """{"id":"t1","policy":{"allowed_jurisdictions":["XX"]}}""", "policy.allowed_jurisdictions")]
    [InlineData("/admin/v1/tenants", """{"id":"t1","policy":{"allowed_jurisdictions":["TH"],"allowed_licenses":["not-a-licence"]}}""", "policy.allowed_licenses")]
    [InlineData("/admin/v1/tenants", """{"id":"t1","policy":{"allowed_jurisdictions":["TH"],"allowed_origins":["Mars"]}}""", "policy.allowed_origins")]
    [InlineData("/admin/v1/tenants", """{"id":"t1","policy":{"allowed_jurisdictions":["TH"],"retention":{"mode":"forever"}}}""", "policy.retention.mode")]
    [InlineData("/admin/v1/tenants", """{"id":"t1","policy":{"allowed_jurisdictions":"TH"}}""", "policy.allowed_jurisdictions")]
    [InlineData("/admin/v1/tenants", """{"id":"t1","plan":"a plan with spaces","policy":{"allowed_jurisdictions":["TH"]}}""", "plan")]
    [InlineData("/admin/v1/tenants/th-hospital/keys", """{"policy":{"allowed_jurisdictions":["SG"]}}""", "policy.allowed_jurisdictions")]
    [InlineData("/admin/v1/nodes", """{"id":"n1","jurisdiction":"Atlantis","base_url":"http://127.0.0.1:1","models":[{"id":"m"}]}""", "jurisdiction")]
    [InlineData("/admin/v1/nodes", """{"id":"n1","jurisdiction":"SG","base_url":"ftp://x","models":[{"id":"m"}]}""", "base_url")]
    [InlineData("/admin/v1/nodes", """{"id":"n1","jurisdiction":"SG","base_url":"http://admin:secret@127.0.0.1:1","models":[{"id":"m"}]}""", "base_url")]
    [InlineData("/admin/v1/nodes", """{"id":"n1","jurisdiction":"SG","base_url":"http://127.0.0.1:1/#x","models":[{"id":"m"}]}""", "base_url")]
    [InlineData("/admin/v1/nodes", """{"id":"n1","jurisdiction":"SG","base_url":"http://127.0.0.1:1","models":[]}""", "models")]
    [InlineData("/admin/v1/nodes", """{"id":"n1","jurisdiction":"SG","base_url":"http://127.0.0.1:1","models":[{"id":"m","capacity":0}]}""", "models[0].capacity")]
    [InlineData("/admin/v1/nodes", """{"id":"n1","jurisdiction":"SG","base_url":"http://127.0.0.1:1","models":[{"id":"m"},{"id":"Auto"}]}""", "models[1].id")]
    public async Task AdminApi_BadInput_Is400NamingTheField(string path, string json, string field)
    {
        using var response = await fixture.Admin.PostAsync(path, new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal(field, body.GetProperty("error").GetProperty("param").GetString());
    }

    /// <summary>A key with the defaults needs no body, as other creates with defaults (a model load) do: it was a 400 "the request body is empty".</summary>
    [Fact]
    public async Task CreatingAKey_WithNoBody_IssuesOneWithTheDefaults()
    {
        await fixture.CreateTenantWithKeyAsync("bodiless-key", new { allowed_jurisdictions = new[] { "TH" } });

        using var response = await fixture.Admin.PostAsync("/admin/v1/tenants/bodiless-key/keys", null);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.True(201 == (int)response.StatusCode, body.GetRawText());
        Assert.Equal("key", body.GetProperty("key").GetProperty("name").GetString());
        Assert.StartsWith("sk-sov-", body.GetProperty("secret").GetString(), StringComparison.Ordinal);

        // A body that is sent is still read strictly.
        using var bad = await fixture.Admin.PostAsync("/admin/v1/tenants/bodiless-key/keys", new StringContent("""{"nam":"x"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(400, (int)bad.StatusCode);
    }

    [Fact]
    public async Task PolicyChanges_AreAudited()
    {
        await fixture.CreateTenantWithKeyAsync("policy-change", new { allowed_jurisdictions = new[] { "TH" } });
        await fixture.AdminAsync(HttpMethod.Patch, "/admin/v1/tenants/policy-change", new { policy = new { allowed_jurisdictions = new[] { "TH", "SG" } } }, 200);

        var entries = (await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/audit?tenant=policy-change", null, 200)).GetProperty("data").EnumerateArray().ToList();
        Assert.Contains(entries, e => e.GetProperty("action").GetString() == "tenant.create");
        Assert.Contains(entries, e => e.GetProperty("action").GetString() == "key.create");
        var change = entries.Single(e => e.GetProperty("action").GetString() == "policy.update");
        Assert.Contains("SG", change.GetProperty("details").GetProperty("policy").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("SG", change.GetProperty("details").GetProperty("old_policy").GetString(), StringComparison.Ordinal);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            await Task.Delay(10, timeout.Token);
        }
    }

    /// <summary>Records the response headers the SDK received.</summary>
    private sealed class HeaderCapture : PipelinePolicy
    {
        private readonly List<(string Name, string Value)> _headers = [];

        public string Last(string name)
        {
            lock (_headers)
            {
                return _headers.Last(h => string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase)).Value;
            }
        }

        public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            ProcessNext(message, pipeline, currentIndex);
            Capture(message);
        }

        public override async ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            await ProcessNextAsync(message, pipeline, currentIndex);
            Capture(message);
        }

        private void Capture(PipelineMessage message)
        {
            if (message.Response is null)
            {
                return;
            }

            lock (_headers)
            {
                foreach (var header in message.Response.Headers)
                {
                    _headers.Add((header.Key, header.Value));
                }
            }
        }
    }
}
