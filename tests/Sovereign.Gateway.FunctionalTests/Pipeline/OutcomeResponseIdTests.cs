using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Sovereign.Gateway.FunctionalTests.Metering;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// The body's <c>id</c> the client received is in the request's entries on every exit, not only a completed one: the
/// decision names it where this gateway chose it before deciding (its own engine's answers, and every Responses
/// answer), so the <c>inference.interrupted</c> entry that another process writes from that decision names it too; and
/// a relayed stream the client left mid-way names the engine's id from its first chunk (it was lost when the relay threw).
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class OutcomeResponseIdTests(MeteringFixture fixture)
{
    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Once"}],"max_tokens":2}""")]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Once"}],"max_tokens":2,"stream":true}""")]
    [InlineData("/v1/completions", """{"model":"stories","prompt":"Once","max_tokens":2}""")]
    [InlineData("/v1/responses", """{"model":"stories","input":"Once","max_output_tokens":16,"stream":true}""")]
    public async Task ThisEnginesAnswer_TheDecisionNamesTheBodyId_AsTheOutcomeDoes(string path, string body)
    {
        var (_, key) = await fixture.NewTenantAsync();
        using var client = fixture.TenantClient(key);
        using var response = await client.PostAsync(path, Json(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        var auditId = response.Headers.GetValues("x-sovereign-audit-id").Single();
        var id = BodyId(text);

        var entries = await EntriesAsync(auditId);
        var decision = Assert.Single(entries, e => e.GetProperty("action").GetString() == "inference.allowed");
        var outcome = Assert.Single(entries, e => e.GetProperty("action").GetString() == "inference.completed");
        Assert.Equal(id, decision.GetProperty("details").GetProperty("response_id").GetString());
        Assert.Equal(id, outcome.GetProperty("details").GetProperty("response_id").GetString());
    }

    [Fact]
    public async Task ClientLeavesARelayedStream_AfterItsFirstChunk_TheOutcomeNamesTheEnginesId()
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(
                """data: {"id":"chatcmpl-left","object":"chat.completion.chunk","created":1,"model":"upstream","choices":[{"index":0,"delta":{"role":"assistant","content":"Once"},"finish_reason":null}]}""" + "\n\n");
            await context.Response.Body.FlushAsync();
            await Task.Delay(Timeout.Infinite, context.RequestAborted); // held until the gateway lets go
        });
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "left-node", jurisdiction = "DE", base_url = engine.Url, models = new[] { new { id = "left", upstream = "upstream", capacity = 4 } } }, 201);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/standard/prices", new { model = "left", input_per_million = 1m, output_per_million = 1m }, 201);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "leaver", plan = "standard", policy = new { allowed_jurisdictions = new[] { "DE" }, allow_external_providers = true } }, 201);
        var key = (await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants/leaver/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        using var client = fixture.TenantClient(key);

        string auditId;
        using (var leave = new CancellationTokenSource())
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = Json("""{"model":"left","messages":[{"role":"user","content":"Once"}],"max_tokens":8,"stream":true}"""),
            };
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, leave.Token);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            auditId = response.Headers.GetValues("x-sovereign-audit-id").Single();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(leave.Token));
            string? line;
            while ((line = await reader.ReadLineAsync(leave.Token)) is not null && !line.StartsWith("data: {", StringComparison.Ordinal))
            {
            }

            Assert.Equal("chatcmpl-left", BodyId(line!));
            await leave.CancelAsync(); // the client leaves, its first chunk read
        }

        // The outcome is written once the gateway sees the client gone: wait for it.
        JsonElement? outcome = null;
        for (var attempt = 0; attempt < 600 && outcome is null; attempt++)
        {
            outcome = (await EntriesAsync(auditId)).Cast<JsonElement?>().FirstOrDefault(e => e!.Value.GetProperty("action").GetString() != "inference.allowed");
            if (outcome is null)
            {
                await Task.Delay(50);
            }
        }

        Assert.True(outcome is not null, $"no outcome entry for {auditId} after 30 s");
        Assert.Equal("chatcmpl-left", outcome.Value.GetProperty("details").GetProperty("response_id").GetString());

        // The decision cannot name it: the engine chose it after the decision.
        var decision = Assert.Single(await EntriesAsync(auditId), e => e.GetProperty("action").GetString() == "inference.allowed");
        Assert.False(decision.GetProperty("details").TryGetProperty("response_id", out _));
    }

    /// <summary>The body's id: a JSON answer's, or a stream's first event that carries one (a Responses event's response).</summary>
    private static string BodyId(string text)
    {
        foreach (var line in text.Split('\n'))
        {
            var json = line.StartsWith("data: {", StringComparison.Ordinal) ? line["data: ".Length..] : line.StartsWith('{') ? line : null;
            if (json is null)
            {
                continue;
            }

            var root = JsonDocument.Parse(json).RootElement;
            if (root.TryGetProperty("id", out var id))
            {
                return id.GetString()!;
            }

            if (root.TryGetProperty("response", out var response))
            {
                return response.GetProperty("id").GetString()!;
            }
        }

        throw new Xunit.Sdk.XunitException("no body id in: " + text);
    }

    private async Task<List<JsonElement>> EntriesAsync(string auditId) =>
        [.. (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?id={auditId}", null, 200)).GetProperty("data").EnumerateArray()];
}
