using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using OpenAI.Responses;
using Sovereign.Residency.Content;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests;

#pragma warning disable OPENAI001 // The Responses client is marked experimental in the SDK.

/// <summary>
/// <c>store</c>, <c>previous_response_id</c>, <c>GET</c> and <c>DELETE /v1/responses/{id}</c> on the TH gateway: only
/// for tenants whose policy retains content and allows the gateway's jurisdiction, visible to their own tenant only,
/// hidden once the policy stops allowing it, audited without content.
/// </summary>
[Collection(ResidencyCollection.Name)]
public sealed class ResponsesStoreTests(ResidencyFixture fixture, FakeChatEngine engine) : IClassFixture<FakeChatEngine>
{
    private const string Keeper = "resp-keeper";
    private const string Other = "resp-other";
    private const string FakeModel = "fake-chat-store";
    private static readonly SemaphoreSlim Setup = new(1, 1);
    private static Dictionary<string, string>? _keys;

    private static object Retaining(params string[] jurisdictions) =>
        new { allowed_jurisdictions = jurisdictions, allow_external_providers = true, retention = new { mode = "store", days = 7 } };

    private async Task<string> KeyAsync(string tenant)
    {
        await Setup.WaitAsync();
        try
        {
            if (_keys is null)
            {
                await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/nodes",
                    new { id = "fake-store-node", jurisdiction = "TH", base_url = engine.BaseUrl, models = new[] { new { id = FakeModel, upstream = "upstream-model", capacity = 4 } } }, 201);
                _keys = new()
                {
                    [Keeper] = await fixture.CreateTenantWithKeyAsync(Keeper, Retaining("TH")),
                    [Other] = await fixture.CreateTenantWithKeyAsync(Other, Retaining("TH")),
                    ["resp-sg-only"] = await fixture.CreateTenantWithKeyAsync("resp-sg-only", Retaining("SG")),
                    ["resp-forgetful"] = await fixture.CreateTenantWithKeyAsync("resp-forgetful", Retaining("TH")),
                };
            }

            return _keys[tenant];
        }
        finally
        {
            Setup.Release();
        }
    }

    private async Task<ResponsesClient> ClientAsync(string tenant) =>
        new global::OpenAI.OpenAIClient(new ApiKeyCredential(await KeyAsync(tenant)), new global::OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.ThAddress, "/v1"), RetryPolicy = new ClientRetryPolicy(0) })
            .GetResponsesClient();

    private static CreateResponseOptions Options(string model, params ResponseItem[] input)
    {
        var options = new CreateResponseOptions { Model = model, MaxOutputTokenCount = 16, Temperature = 0, StoredOutputEnabled = true };
        foreach (var item in input)
        {
            options.InputItems.Add(item);
        }

        return options;
    }

    [Fact]
    public async Task Store_Sdk_GetReturnsIt_AndPreviousResponseIdContinuesTheConversation()
    {
        var client = await ClientAsync(Keeper);
        var first = (await client.CreateResponseAsync(Options(ResidencyFixture.Model, ResponseItem.CreateUserMessageItem("Once upon a time")))).Value;
        var fetched = (await client.GetResponseAsync(first.Id)).Value;

        Assert.Equal(first.Id, fetched.Id);
        Assert.Equal(first.GetOutputText(), fetched.GetOutputText());
        Assert.Equal(first.Usage.OutputTokenCount, fetched.Usage.OutputTokenCount);

        var next = Options(ResidencyFixture.Model, ResponseItem.CreateUserMessageItem("The dog"));
        next.PreviousResponseId = first.Id;
        var continued = (await client.CreateResponseAsync(next)).Value;

        // The same conversation sent whole, statelessly, is the same prompt and (greedy) the same answer.
        var whole = Options(ResidencyFixture.Model,
            ResponseItem.CreateUserMessageItem("Once upon a time"), ResponseItem.CreateAssistantMessageItem(first.GetOutputText()), ResponseItem.CreateUserMessageItem("The dog"));
        whole.StoredOutputEnabled = false;
        var stateless = (await client.CreateResponseAsync(whole)).Value;
        Assert.Equal(stateless.Usage.InputTokenCount, continued.Usage.InputTokenCount);
        Assert.Equal(stateless.GetOutputText(), continued.GetOutputText());
        Assert.Equal(first.Id, continued.PreviousResponseId);
    }

    [Fact]
    public async Task InputItems_ListWhatAStoredResponseWasGeneratedFrom_InPages_ThroughTheSdkAndRawHttp()
    {
        var client = await ClientAsync(Keeper);
        var first = (await client.CreateResponseAsync(Options(ResidencyFixture.Model, ResponseItem.CreateUserMessageItem("Once upon a time")))).Value;
        var next = Options(ResidencyFixture.Model, ResponseItem.CreateUserMessageItem("The dog"));
        next.PreviousResponseId = first.Id;
        var continued = (await client.CreateResponseAsync(next)).Value;

        // Newest first by default: this response's input, then the conversation it continued (not its own output).
        var listed = new List<ResponseItem>();
        await foreach (var item in client.GetResponseInputItemsAsync(continued.Id))
        {
            listed.Add(item);
        }

        Assert.Equal(3, listed.Count);
        var messages = listed.Cast<MessageResponseItem>().ToList();
        Assert.Equal([MessageRole.User, MessageRole.Assistant, MessageRole.User], messages.Select(m => m.Role));
        Assert.Equal("The dog", messages[0].Content[0].Text);
        Assert.Equal(first.GetOutputText(), messages[1].Content[0].Text);
        Assert.Equal("Once upon a time", messages[2].Content[0].Text);

        using var http = fixture.TenantClient(await KeyAsync(Keeper));
        async Task<JsonElement> Page(string query, HttpStatusCode expected = HttpStatusCode.OK)
        {
            using var response = await http.GetAsync($"/v1/responses/{continued.Id}/input_items{query}");
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == expected, text);
            return JsonDocument.Parse(text).RootElement.Clone();
        }

        var page1 = await Page("?order=asc&limit=2");
        Assert.True(page1.GetProperty("has_more").GetBoolean());
        Assert.Equal("input_text", page1.GetProperty("data")[0].GetProperty("content")[0].GetProperty("type").GetString());
        Assert.Equal("output_text", page1.GetProperty("data")[1].GetProperty("content")[0].GetProperty("type").GetString());
        var page2 = await Page($"?order=asc&limit=2&after={page1.GetProperty("last_id").GetString()}");
        Assert.False(page2.GetProperty("has_more").GetBoolean());
        Assert.Equal("The dog", page2.GetProperty("data")[0].GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(page2.GetProperty("first_id").GetString(), (await Page("?limit=1")).GetProperty("first_id").GetString());

        Assert.Equal("limit", (await Page("?limit=101", HttpStatusCode.BadRequest)).GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("after", (await Page("?after=msg_nope", HttpStatusCode.BadRequest)).GetProperty("error").GetProperty("param").GetString());
        using var other = fixture.TenantClient(await KeyAsync(Other));
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"/v1/responses/{continued.Id}/input_items")).StatusCode);
    }

    [Fact]
    public async Task Store_IsAudited_WithTheIdAndExpiry_NeverTheContent()
    {
        using var client = fixture.TenantClient(await KeyAsync(Keeper));
        using var http = await client.PostAsync("/v1/responses", Json($$"""{"model":"{{ResidencyFixture.Model}}","input":"A cat","max_output_tokens":16,"store":true}"""));
        var body = JsonDocument.Parse(await http.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.OK, http.StatusCode);
        Assert.True(body.GetProperty("store").GetBoolean());
        var id = body.GetProperty("id").GetString()!;
        var auditId = http.Headers.GetValues("x-sovereign-audit-id").Single();

        var completed = (await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={Keeper}", null, 200)).GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("action").GetString() == "inference.completed" && e.GetProperty("details").GetProperty("request_id").GetString() == auditId);
        var details = completed.GetProperty("details");
        Assert.Equal(id, details.GetProperty("content_stored").GetString());
        var expires = DateTimeOffset.Parse(details.GetProperty("content_expires_at").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(expires, DateTimeOffset.UtcNow.AddDays(6), DateTimeOffset.UtcNow.AddDays(7).AddMinutes(1));
        var text = body.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString()!;
        Assert.DoesNotContain("A cat", completed.GetRawText(), StringComparison.Ordinal);
        if (text.Trim().Length > 3)
        {
            Assert.DoesNotContain(text.Trim(), completed.GetRawText(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Continuation_IsAudited_WithTheStoredResponseItSent_NeverTheContent()
    {
        // A continuation sends a stored conversation to a model: where that content went is evidence, as the store was.
        using var client = fixture.TenantClient(await KeyAsync(Keeper));
        using var first = await client.PostAsync("/v1/responses", Json($$"""{"model":"{{ResidencyFixture.Model}}","input":"A dog","max_output_tokens":16,"store":true}"""));
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var stored = JsonDocument.Parse(await first.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        using var next = await client.PostAsync("/v1/responses", Json($$"""{"model":"{{ResidencyFixture.Model}}","input":"And then?","max_output_tokens":16,"previous_response_id":"{{stored}}"}"""));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        var auditId = next.Headers.GetValues("x-sovereign-audit-id").Single();

        var completed = (await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={Keeper}", null, 200)).GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("action").GetString() == "inference.completed" && e.GetProperty("details").GetProperty("request_id").GetString() == auditId);
        Assert.Equal(stored, completed.GetProperty("details").GetProperty("previous_response_id").GetString());
        Assert.DoesNotContain("A dog", completed.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnotherTenant_GetsExactlyWhatAMissingIdGets()
    {
        var stored = (await (await ClientAsync(Keeper)).CreateResponseAsync(Options(ResidencyFixture.Model, ResponseItem.CreateUserMessageItem("Secret plans")))).Value;
        using var other = fixture.TenantClient(await KeyAsync(Other));
        const string Missing = "resp_doesnotexist000000000000000";

        async Task<(HttpStatusCode, string)> Call(HttpMethod method, string id)
        {
            using var response = await other.SendAsync(new HttpRequestMessage(method, $"/v1/responses/{id}"));
            return (response.StatusCode, (await response.Content.ReadAsStringAsync()).Replace(id, "ID", StringComparison.Ordinal));
        }

        async Task<(HttpStatusCode, string)> Continue(string id)
        {
            using var response = await other.PostAsync("/v1/responses", Json($$"""{"model":"{{ResidencyFixture.Model}}","input":"more","previous_response_id":"{{id}}","store":true}"""));
            return (response.StatusCode, (await response.Content.ReadAsStringAsync()).Replace(id, "ID", StringComparison.Ordinal));
        }

        var get = await Call(HttpMethod.Get, stored.Id);
        Assert.Equal(HttpStatusCode.NotFound, get.Item1);
        Assert.Equal(await Call(HttpMethod.Get, Missing), get);
        Assert.Equal(await Call(HttpMethod.Delete, Missing), await Call(HttpMethod.Delete, stored.Id));
        var continued = await Continue(stored.Id);
        Assert.Equal(HttpStatusCode.BadRequest, continued.Item1);
        Assert.Contains("previous_response_not_found", continued.Item2, StringComparison.Ordinal);
        Assert.Equal(await Continue(Missing), continued);

        // Still there for its owner.
        Assert.Equal(stored.Id, (await (await ClientAsync(Keeper)).GetResponseAsync(stored.Id)).Value.Id);
    }

    [Fact]
    public async Task Delete_Sdk_RemovesIt_AndIsAudited()
    {
        var client = await ClientAsync(Keeper);
        var stored = (await client.CreateResponseAsync(Options(ResidencyFixture.Model, ResponseItem.CreateUserMessageItem("Forget me")))).Value;

        var deleted = (await client.DeleteResponseAsync(stored.Id)).Value;

        Assert.True(deleted.Deleted);
        Assert.Equal(stored.Id, deleted.ResponseId);
        var gone = await Assert.ThrowsAsync<ClientResultException>(() => client.GetResponseAsync(stored.Id));
        Assert.Equal(404, gone.Status);
        Assert.Contains((await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={Keeper}", null, 200)).GetProperty("data").EnumerateArray(),
            e => e.GetProperty("action").GetString() == "response.deleted" && e.GetProperty("details").GetProperty("response_id").GetString() == stored.Id);
    }

    [Fact]
    public async Task Cancel_AStoredResponse_Is400NamingBackground_AnUnknownOrAnotherTenantsId404()
    {
        // OpenAI cancels background responses only; this server has none. An existing id answered 404 (no such route).
        var client = await ClientAsync(Keeper);
        var stored = (await client.CreateResponseAsync(Options(ResidencyFixture.Model, ResponseItem.CreateUserMessageItem("Keep going")))).Value;

        var refused = await Assert.ThrowsAsync<ClientResultException>(() => client.CancelResponseAsync(stored.Id));
        using var own = fixture.TenantClient(await KeyAsync(Keeper));
        using var unknown = await own.PostAsync("/v1/responses/resp_0123456789abcdef01234567/cancel", null);
        using var theirs = fixture.TenantClient(await KeyAsync(Other));
        using var otherTenant = await theirs.PostAsync($"/v1/responses/{stored.Id}/cancel", null);

        Assert.Equal(400, refused.Status);
        var error = JsonDocument.Parse(refused.GetRawResponse()!.Content.ToString()).RootElement.GetProperty("error");
        Assert.Equal("response_not_cancellable", error.GetProperty("code").GetString());
        Assert.Contains("background", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(404, (int)unknown.StatusCode);
        Assert.Equal(404, (int)otherTenant.StatusCode);
        Assert.Equal(stored.GetOutputText(), (await client.GetResponseAsync(stored.Id)).Value.GetOutputText());
    }

    [Fact]
    public async Task Delete_AnswerNamesItsAuditEntry_ByTheRequestId()
    {
        // The auditor links an answer to its evidence by the request id, as for inference; the deletion's entry had
        // only the response id, and the answer no x-sovereign-audit-id.
        var stored = (await (await ClientAsync(Keeper)).CreateResponseAsync(Options(ResidencyFixture.Model, ResponseItem.CreateUserMessageItem("Forget me too")))).Value;
        using var client = fixture.TenantClient(await KeyAsync(Keeper));
        using var response = await client.DeleteAsync($"/v1/responses/{stored.Id}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = response.Headers.GetValues("x-request-id").Single();
        Assert.Equal(requestId, response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal("TH", response.Headers.GetValues("x-sovereign-jurisdiction").Single());

        var entry = (await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={Keeper}", null, 200)).GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("action").GetString() == "response.deleted" && e.GetProperty("details").GetProperty("response_id").GetString() == stored.Id);
        Assert.Equal(requestId, entry.GetProperty("details").GetProperty("request_id").GetString());
    }

    /// <summary>
    /// HEAD (taken wherever GET is) answers whether the caller holds a response and none of its content: it was audited
    /// as <c>response.read</c>, evidence of a read that never happened. Now it is <c>response.checked</c>, under the
    /// request's id, and no read is recorded.
    /// </summary>
    [Fact]
    public async Task HeadOfAStoredResponse_IsAuditedAsACheck_NotAsARead()
    {
        var stored = (await (await ClientAsync(Keeper)).CreateResponseAsync(Options(ResidencyFixture.Model, ResponseItem.CreateUserMessageItem("Check me")))).Value;
        using var client = fixture.TenantClient(await KeyAsync(Keeper));
        var checks = new List<(string RequestId, string Part)>();
        foreach (var (path, part) in new[] { ($"/v1/responses/{stored.Id}", "response"), ($"/v1/responses/{stored.Id}/input_items", "input_items") })
        {
            using var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Empty(await response.Content.ReadAsByteArrayAsync());
            var requestId = response.Headers.GetValues("x-request-id").Single();
            Assert.Equal(requestId, response.Headers.GetValues("x-sovereign-audit-id").Single());
            checks.Add((requestId, part));
        }

        var entries = (await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={Keeper}&order=desc&limit=50", null, 200)).GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("details").TryGetProperty("response_id", out var id) && id.GetString() == stored.Id && e.GetProperty("action").GetString()!.StartsWith("response.", StringComparison.Ordinal))
            .Select(e => (e.GetProperty("action").GetString()!, e.GetProperty("details").GetProperty("request_id").GetString()!, e.GetProperty("details").GetProperty("part").GetString()!))
            .ToList();
        Assert.Equal(checks.Select(c => ("response.checked", c.RequestId, c.Part)).Order(), entries.Order());
    }

    /// <summary>
    /// Each read of stored content writes an audit entry, so reads count against the tenant's requests per minute as
    /// /tokenize does: they were counted nowhere, and a tenant limited to 3 a minute wrote 11,180 response.read entries
    /// into the shared chain in 10 s. A refused access reads nothing and leaves no entry.
    /// </summary>
    [Fact]
    public async Task AccessByIdToStoredResponses_CountsAgainstTheTenantsRequestsPerMinute_AndARefusedOneLeavesNoEntry()
    {
        const string tenant = "resp-rate-limited";
        var key = await fixture.CreateTenantWithKeyAsync(tenant, Retaining("TH"));
        var stored = (await new global::OpenAI.OpenAIClient(new ApiKeyCredential(key), new global::OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.ThAddress, "/v1"), RetryPolicy = new ClientRetryPolicy(0) })
            .GetResponsesClient().CreateResponseAsync(Options(ResidencyFixture.Model, ResponseItem.CreateUserMessageItem("Count me")))).Value;

        // The limit is set after the response is generated, so its bucket starts full here and the reads below are
        // all that is counted: generating under a loaded machine took long enough (20-30 s) for the bucket, which
        // refills one request per 60/limit seconds, to give one back, and the counts below drifted. The server's clock
        // is held from here, so a pause of the machine between the reads cannot refill it either.
        using var held = fixture.ThClock.Hold();
        await fixture.AdminAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { rate_limits = new[] { new { requests_per_minute = 3 } } }, 200);
        using var client = fixture.TenantClient(key);

        using (var read = await client.GetAsync($"/v1/responses/{stored.Id}"))
        {
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
            // The stored object is answered as every JSON answer is (it said application/json alone).
            Assert.Equal("application/json; charset=utf-8", read.Content.Headers.ContentType?.ToString());
            Assert.Equal("2", read.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }

        using (var items = await client.GetAsync($"/v1/responses/{stored.Id}/input_items"))
        {
            Assert.Equal(HttpStatusCode.OK, items.StatusCode);
            Assert.Equal("1", items.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }

        using (var unknown = await client.DeleteAsync($"/v1/responses/{stored.Id}x"))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode); // probing ids counts too
        }

        foreach (var (method, path) in new[] { (HttpMethod.Get, $"/v1/responses/{stored.Id}"), (HttpMethod.Head, $"/v1/responses/{stored.Id}/input_items"), (HttpMethod.Delete, $"/v1/responses/{stored.Id}"), (HttpMethod.Post, $"/v1/responses/{stored.Id}/cancel") })
        {
            using var limited = await client.SendAsync(new HttpRequestMessage(method, path));
            Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
            Assert.Equal("0", limited.Headers.GetValues("x-ratelimit-remaining-requests").Single());
            Assert.True(limited.Headers.Contains("Retry-After"), $"{method} {path}");
            Assert.False(limited.Headers.Contains("x-sovereign-audit-id"), $"{method} {path}");
            if (method != HttpMethod.Head)
            {
                Assert.Equal("rate_limit_exceeded", JsonDocument.Parse(await limited.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
            }
        }

        var accesses = (await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={tenant}", null, 200)).GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("action").GetString()!.StartsWith("response.", StringComparison.Ordinal))
            .Select(e => e.GetProperty("action").GetString() + ":" + (e.GetProperty("details").TryGetProperty("part", out var part) ? part.GetString() : ""))
            .ToList();
        Assert.Equal(["response.read:response", "response.read:input_items"], accesses);
        Assert.NotNull(await fixture.Th.Services.GetRequiredService<ResponseStore>().GetAsync(tenant, stored.Id, DateTimeOffset.UtcNow, CancellationToken.None));
    }

    [Fact]
    public async Task ReadingStoredContent_IsAudited_WhoReadWhichResponseAndWhichPart_UnderTheRequestId()
    {
        // Stored content is personal data kept because the policy asked for it: reading it back is evidence too, as
        // deleting it is. Reads were not audited: an auditor could not tell who had read a patient's conversation.
        var stored = (await (await ClientAsync(Keeper)).CreateResponseAsync(Options(ResidencyFixture.Model, ResponseItem.CreateUserMessageItem("Read me")))).Value;
        using var client = fixture.TenantClient(await KeyAsync(Keeper));
        var reads = new List<(string RequestId, string Part)>();
        foreach (var (path, part) in new[] { ($"/v1/responses/{stored.Id}", "response"), ($"/v1/responses/{stored.Id}/input_items", "input_items") })
        {
            using var response = await client.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var requestId = response.Headers.GetValues("x-request-id").Single();
            Assert.Equal(requestId, response.Headers.GetValues("x-sovereign-audit-id").Single());
            reads.Add((requestId, part));
        }

        using (var missing = await client.GetAsync($"/v1/responses/{stored.Id}x"))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }

        var entries = (await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={Keeper}", null, 200)).GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("action").GetString() == "response.read" && e.GetProperty("details").GetProperty("response_id").GetString() == stored.Id)
            .Select(e => (e.GetProperty("details").GetProperty("request_id").GetString()!, e.GetProperty("details").GetProperty("part").GetString()!))
            .ToList();
        Assert.Equal(reads.Order(), entries.Order());
        Assert.DoesNotContain((await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={Keeper}", null, 200)).GetProperty("data").EnumerateArray(),
            e => e.GetProperty("action").GetString() == "response.read" && e.GetProperty("details").GetProperty("response_id").GetString() == stored.Id + "x");
    }

    [Fact]
    public async Task RelayedRoute_StoresToo_AndTheContinuationReachesTheEngineAsHistory()
    {
        var client = await ClientAsync(Keeper);
        var first = (await client.CreateResponseAsync(Options(FakeModel, ResponseItem.CreateUserMessageItem("store relay one")))).Value;
        var next = Options(FakeModel, ResponseItem.CreateUserMessageItem("store relay two"));
        next.PreviousResponseId = first.Id;
        next.StreamingEnabled = true;
        ResponseResult? final = null;
        await foreach (var update in await client.CreateResponseStreamingAsync(next))
        {
            if (update is StreamingResponseCompletedUpdate completed)
            {
                final = completed.Response;
            }
        }

        Assert.NotNull(final);
        var messages = engine.LastWith("store relay two")["messages"]!.AsArray().Select(m => (m!["role"]!.GetValue<string>(), m["content"]!.GetValue<string>())).ToList();
        Assert.Equal([("user", "store relay one"), ("assistant", first.GetOutputText()), ("user", "store relay two")], messages);
        Assert.Equal(final.GetOutputText(), (await client.GetResponseAsync(final.Id)).Value.GetOutputText());
    }

    /// <summary>
    /// A stored response that ended in a function call is continued with the call's output, as OpenAI requires
    /// ("No tool output found for function call ..."): a plain message after it was served, the call unanswered.
    /// </summary>
    [Fact]
    public async Task Continuation_OfAStoredFunctionCall_NeedsItsOutput()
    {
        using var client = fixture.TenantClient(await KeyAsync(Keeper));
        const string Tools = "\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}]";
        using var first = await client.PostAsync("/v1/responses", Json($$"""{"model":"{{FakeModel}}","input":"Weather?","store":true,{{Tools}}}"""));
        var stored = JsonDocument.Parse(await first.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("function_call", stored.GetProperty("output")[0].GetProperty("type").GetString());
        var id = stored.GetProperty("id").GetString();

        using var unanswered = await client.PostAsync("/v1/responses", Json($$"""{"model":"{{FakeModel}}","input":"And tomorrow?","previous_response_id":"{{id}}",{{Tools}}}"""));
        Assert.Equal(HttpStatusCode.BadRequest, unanswered.StatusCode);
        var error = JsonDocument.Parse(await unanswered.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("previous_response_id", error.GetProperty("param").GetString());
        Assert.Contains(FakeChatEngine.CallId, error.GetProperty("message").GetString(), StringComparison.Ordinal);

        using var answered = await client.PostAsync("/v1/responses", Json($$"""
            {"model":"{{FakeModel}}","previous_response_id":"{{id}}","input":[{"type":"function_call_output","call_id":"{{FakeChatEngine.CallId}}","output":"31"}],{{Tools}}}
            """));
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
    }

    [Fact]
    public async Task GatewayOutsideTheAllowedJurisdictions_StoreIs400NamingTheRule()
    {
        using var client = fixture.TenantClient(await KeyAsync("resp-sg-only"));
        using var http = await client.PostAsync("/v1/responses", Json($$"""{"model":"{{ResidencyFixture.Model}}","input":"hi","store":true}"""));
        var error = JsonDocument.Parse(await http.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(HttpStatusCode.BadRequest, http.StatusCode);
        Assert.Equal("content_retention_jurisdiction_not_allowed", error.GetProperty("code").GetString());
        Assert.Equal("store", error.GetProperty("param").GetString());
        Assert.Contains("allowed_jurisdictions", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeyNarrowedToNoRetention_StoreIs400NamingRetention()
    {
        await KeyAsync(Keeper);
        var key = (await fixture.AdminAsync(HttpMethod.Post, $"/admin/v1/tenants/{Keeper}/keys", new { name = "no-retention", policy = new { retention = new { mode = "none" } } }, 201))
            .GetProperty("secret").GetString()!;
        using var client = fixture.TenantClient(key);

        using var http = await client.PostAsync("/v1/responses", Json($$"""{"model":"{{ResidencyFixture.Model}}","input":"hi","store":true}"""));

        Assert.Equal(HttpStatusCode.BadRequest, http.StatusCode);
        Assert.Equal("content_retention_not_allowed", JsonDocument.Parse(await http.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    /// <summary>
    /// A key that cannot read a stored response cannot delete it either, and gets the same 404: a key narrowed to no
    /// retention (or a shorter one) answered 404 to GET but 200 to DELETE, so it could confirm ids it may not see and
    /// destroy another application's stored conversations.
    /// </summary>
    [Fact]
    public async Task KeyThatCannotReadAStoredResponse_CannotDeleteIt()
    {
        var key = await KeyAsync(Keeper);
        var store = fixture.Th.Services.GetRequiredService<ResponseStore>();
        var twoDaysAgo = DateTimeOffset.UtcNow.AddDays(-2);
        await store.InsertAsync(new StoredResponse("resp_not_yours_to_delete", Keeper, "TH", "th-1", twoDaysAgo.ToUnixTimeMilliseconds(), twoDaysAgo.AddDays(7).ToUnixTimeMilliseconds(), """{"id":"resp_not_yours_to_delete"}""", "[]"));
        var noRetention = (await fixture.AdminAsync(HttpMethod.Post, $"/admin/v1/tenants/{Keeper}/keys", new { name = "no-retention-delete", policy = new { retention = new { mode = "none" } } }, 201))
            .GetProperty("secret").GetString()!;
        var oneDay = (await fixture.AdminAsync(HttpMethod.Post, $"/admin/v1/tenants/{Keeper}/keys", new { name = "one-day-delete", policy = new { retention = new { mode = "store", days = 1 } } }, 201))
            .GetProperty("secret").GetString()!;

        foreach (var secret in new[] { noRetention, oneDay })
        {
            using var narrow = fixture.TenantClient(secret);
            using var deleted = await narrow.DeleteAsync("/v1/responses/resp_not_yours_to_delete");
            Assert.Equal(HttpStatusCode.NotFound, deleted.StatusCode);
            Assert.Equal("not_found", JsonDocument.Parse(await deleted.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        using var owner = fixture.TenantClient(key);
        using (var still = await owner.GetAsync("/v1/responses/resp_not_yours_to_delete"))
        {
            Assert.Equal(HttpStatusCode.OK, still.StatusCode);
        }

        using var ownDelete = await owner.DeleteAsync("/v1/responses/resp_not_yours_to_delete");
        Assert.Equal(HttpStatusCode.OK, ownDelete.StatusCode);
    }

    [Fact]
    public async Task PolicyThatStopsRetaining_DeletesWhatWasStored()
    {
        var client = await ClientAsync("resp-forgetful");
        var stored = (await client.CreateResponseAsync(Options(ResidencyFixture.Model, ResponseItem.CreateUserMessageItem("Keep this")))).Value;
        Assert.Equal(stored.Id, (await client.GetResponseAsync(stored.Id)).Value.Id);

        await fixture.AdminAsync(HttpMethod.Patch, "/admin/v1/tenants/resp-forgetful",
            new { policy = new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true, retention = new { mode = "none" } } }, 200);

        var hidden = await Assert.ThrowsAsync<ClientResultException>(() => client.GetResponseAsync(stored.Id));
        Assert.Equal(404, hidden.Status);
        var store = fixture.Th.Services.GetRequiredService<ResponseStore>();
        Assert.Equal(0, await store.DeleteTenantAsync("resp-forgetful"));
        Assert.Contains((await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/audit?tenant=resp-forgetful", null, 200)).GetProperty("data").EnumerateArray(),
            e => e.GetProperty("action").GetString() == "policy.update" && e.GetProperty("details").GetProperty("stored_responses_deleted").GetString() == "1");
    }

    [Fact]
    public async Task PolicyWithShorterRetention_HidesWhatItNoLongerAllows()
    {
        // Stored under 7 days two days ago (written straight to the store), read under a 1-day policy: hidden.
        var key = await KeyAsync(Keeper);
        var store = fixture.Th.Services.GetRequiredService<ResponseStore>();
        var twoDaysAgo = DateTimeOffset.UtcNow.AddDays(-2);
        await store.InsertAsync(new StoredResponse("resp_two_days_old", Keeper, "TH", "th-1", twoDaysAgo.ToUnixTimeMilliseconds(), twoDaysAgo.AddDays(7).ToUnixTimeMilliseconds(), """{"id":"resp_two_days_old"}""", "[]"));
        using var client = fixture.TenantClient(key);
        using (var visible = await client.GetAsync("/v1/responses/resp_two_days_old"))
        {
            Assert.Equal(HttpStatusCode.OK, visible.StatusCode);
        }

        var shortKey = (await fixture.AdminAsync(HttpMethod.Post, $"/admin/v1/tenants/{Keeper}/keys", new { name = "one-day", policy = new { retention = new { mode = "store", days = 1 } } }, 201))
            .GetProperty("secret").GetString()!;
        using var shortClient = fixture.TenantClient(shortKey);
        using var hidden = await shortClient.GetAsync("/v1/responses/resp_two_days_old");

        Assert.Equal(HttpStatusCode.NotFound, hidden.StatusCode);
    }

    /// <summary>
    /// A tenant's policy shortened from 7 days to 1 keeps nothing older than a day: what it no longer allows is deleted
    /// when the policy changes (it was only hidden, kept until its old expiry, and a policy lengthened again showed it
    /// back), and what it still allows expires a day after it was stored.
    /// </summary>
    [Fact]
    public async Task PolicyShortenedThenLengthened_DoesNotBringBackWhatTheShorterOneDeleted()
    {
        const string tenant = "resp-shortened";
        var key = await fixture.CreateTenantWithKeyAsync(tenant, Retaining("TH"));
        var store = fixture.Th.Services.GetRequiredService<ResponseStore>();
        var now = DateTimeOffset.UtcNow;
        var twoDaysAgo = now.AddDays(-2);
        var anHourAgo = now.AddHours(-1);
        await store.InsertAsync(new StoredResponse("resp_shortened_old", tenant, "TH", "th-1", twoDaysAgo.ToUnixTimeMilliseconds(), twoDaysAgo.AddDays(7).ToUnixTimeMilliseconds(), """{"id":"resp_shortened_old"}""", "[]"));
        await store.InsertAsync(new StoredResponse("resp_shortened_new", tenant, "TH", "th-1", anHourAgo.ToUnixTimeMilliseconds(), anHourAgo.AddDays(7).ToUnixTimeMilliseconds(), """{"id":"resp_shortened_new"}""", "[]"));
        using var client = fixture.TenantClient(key);
        using (var before = await client.GetAsync("/v1/responses/resp_shortened_old"))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        object Policy(int days) => new { policy = new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true, retention = new { mode = "store", days } } };
        await fixture.AdminAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", Policy(1), 200);
        await fixture.AdminAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", Policy(7), 200);

        using (var old = await client.GetAsync("/v1/responses/resp_shortened_old"))
        {
            Assert.Equal(HttpStatusCode.NotFound, old.StatusCode);
        }

        using (var young = await client.GetAsync("/v1/responses/resp_shortened_new"))
        {
            Assert.Equal(HttpStatusCode.OK, young.StatusCode);
        }

        Assert.Null(await store.GetAsync(tenant, "resp_shortened_old", twoDaysAgo));
        Assert.Null(await store.GetAsync(tenant, "resp_shortened_new", anHourAgo.AddDays(1)));
        Assert.Contains((await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={tenant}", null, 200)).GetProperty("data").EnumerateArray(),
            e => e.GetProperty("action").GetString() == "policy.update" && e.GetProperty("details").TryGetProperty("stored_responses_deleted", out var deleted) && deleted.GetString() == "1");
    }

    /// <summary>
    /// A policy that stops retaining while a <c>store: true</c> response is being generated: the response was written
    /// after the update had deleted the tenant's stored responses, under the policy its request started with, so it
    /// stayed for that policy's days (hidden from reads) and a policy retaining again showed it back.
    /// </summary>
    [Fact]
    public async Task PolicyThatStopsRetainingWhileAResponseIsGenerated_LeavesItUnstored()
    {
        const string tenant = "resp-stopped-midway";
        var key = await fixture.CreateTenantWithKeyAsync(tenant, Retaining("TH"));
        await using var held = await HeldEngine.StartAsync();
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "held-midway-node", jurisdiction = "TH", base_url = held.BaseUrl, models = new[] { new { id = "held-midway", upstream = "held", capacity = 1 } } }, 201);
        using var client = fixture.TenantClient(key);
        string responseId = "", requestId;
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/responses") { Content = Json("""{"model":"held-midway","input":"Keep this","store":true,"stream":true}""") })
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            requestId = response.Headers.GetValues("x-request-id").Single();
            using var events = new StreamReader(await response.Content.ReadAsStreamAsync());
            string? line;
            while ((line = await events.ReadLineAsync()) is not null && !line.Contains("response.output_text.delta", StringComparison.Ordinal))
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal) && line.Contains("\"response.created\"", StringComparison.Ordinal))
                {
                    responseId = JsonDocument.Parse(line[6..]).RootElement.GetProperty("response").GetProperty("id").GetString()!;
                }
            }

            // Generating: the policy stops retaining, then the engine finishes and the response ends.
            await fixture.AdminAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}",
                new { policy = new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true, retention = new { mode = "none" } } }, 200);
            held.Finish();
            var rest = await events.ReadToEndAsync();
            Assert.Contains("response.completed", rest, StringComparison.Ordinal);
        }

        await fixture.AdminAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { policy = Retaining("TH") }, 200);
        using var get = await client.GetAsync($"/v1/responses/{responseId}");

        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        Assert.Null(await fixture.Th.Services.GetRequiredService<ResponseStore>().GetAsync(tenant, responseId, DateTimeOffset.UtcNow));
        var completed = (await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={tenant}&order=desc&limit=50", null, 200)).GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("action").GetString() == "inference.completed" && e.GetProperty("details").GetProperty("request_id").GetString() == requestId);
        Assert.False(completed.GetProperty("details").TryGetProperty("content_stored", out _));
    }

    /// <summary>
    /// A streamed <c>store: true</c> response whose client leaves mid-stream is not stored, as OpenAI does: closing
    /// a stream (without <c>background</c>) ends its generation, and OpenAI then answers 404 for the id that
    /// <c>response.created</c> gave. The tokens generated are billed, the outcome entry says cancelled and names
    /// no stored content.
    /// </summary>
    [Fact]
    public async Task StreamTheClientLeaves_IsNotStored_AndItsIdIsUnknownAfterwards()
    {
        await using var held = await HeldEngine.StartAsync();
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "held-store-node", jurisdiction = "TH", base_url = held.BaseUrl, models = new[] { new { id = "held-store", upstream = "held", capacity = 1 } } }, 201);
        using var client = fixture.TenantClient(await KeyAsync(Keeper));
        string responseId, requestId;
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/responses") { Content = Json("""{"model":"held-store","input":"Hello","store":true,"stream":true}""") })
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            requestId = response.Headers.GetValues("x-request-id").Single();
            using var events = new StreamReader(await response.Content.ReadAsStreamAsync());
            string? line;
            responseId = "";
            while ((line = await events.ReadLineAsync()) is not null && !line.Contains("response.output_text.delta", StringComparison.Ordinal))
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal) && line.Contains("\"response.created\"", StringComparison.Ordinal))
                {
                    responseId = JsonDocument.Parse(line[6..]).RootElement.GetProperty("response").GetProperty("id").GetString()!;
                }
            }

            Assert.StartsWith("resp_", responseId, StringComparison.Ordinal);
        }

        // The client has left: the request ends as cancelled (its entry is written once the server notices). Polled
        // for up to two minutes, a bound for a hang: 200 polls (10 s) were within reach of a loaded machine's pause.
        JsonElement completed = default;
        for (var attempt = 0; attempt < 2400 && completed.ValueKind == JsonValueKind.Undefined; attempt++)
        {
            completed = (await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={Keeper}&order=desc&limit=50", null, 200)).GetProperty("data").EnumerateArray()
                .FirstOrDefault(e => e.GetProperty("action").GetString() == "inference.completed" && e.GetProperty("details").GetProperty("request_id").GetString() == requestId);
            await Task.Delay(50);
        }

        Assert.Equal("cancelled", completed.GetProperty("details").GetProperty("outcome").GetString());
        Assert.False(completed.GetProperty("details").TryGetProperty("content_stored", out _));
        using var get = await client.GetAsync($"/v1/responses/{responseId}");
        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        using var continued = await client.PostAsync("/v1/responses", Json($$"""{"model":"{{ResidencyFixture.Model}}","input":"more","previous_response_id":"{{responseId}}","max_output_tokens":16}"""));
        Assert.Equal(HttpStatusCode.BadRequest, continued.StatusCode);
        Assert.Contains("previous_response_not_found", await continued.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Store_ExpiredResponses_AreNeverReadAndArePurged()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("sovereign-responses-").FullName, "store.db");
        var database = SqlDatabase.Sqlite(path);
        await database.MigrateAsync(ResponseStore.Migrations);
        var store = new ResponseStore(database);
        var now = DateTimeOffset.UtcNow;
        await store.InsertAsync(new StoredResponse("resp_live", "t", "TH", "gw", now.AddDays(-1).ToUnixTimeMilliseconds(), now.AddDays(6).ToUnixTimeMilliseconds(), "{}", "[]"));
        await store.InsertAsync(new StoredResponse("resp_expired", "t", "TH", "gw", now.AddDays(-8).ToUnixTimeMilliseconds(), now.AddDays(-1).ToUnixTimeMilliseconds(), "{}", "[]"));

        Assert.NotNull(await store.GetAsync("t", "resp_live", now));
        Assert.Null(await store.GetAsync("t", "resp_expired", now));
        Assert.Null(await store.GetAsync("other", "resp_live", now));
        Assert.Equal(1, await store.PurgeExpiredAsync(now));
        Assert.Equal(0, await store.PurgeExpiredAsync(now));
        Assert.Null(await store.GetAsync("t", "resp_live", now.AddDays(6)));
        Assert.Equal(1, await store.PurgeExpiredAsync(now.AddDays(6)));
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");
}
