using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A noisy neighbour that reads its streams slowly, or not at all, held the route's slot of an external engine for as
/// long as it did not read (the relay waited on the client before reading the engine's next event; Kestrel only cuts a
/// client below 240 bytes a second), while the engine sat idle and another tenant waited behind it in the route's
/// queue. The relay now reads the engine's answer ahead of the client (up to <c>Sovereign:Limits:RelayReadAheadBytes</c>, 8 MiB)
/// and gives the slot back once the engine has answered; the slow client still receives every byte, billed exactly.
/// </summary>
public sealed class SlowReaderRelayTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    // About 7.3 MB: more than the kernel's socket buffers and Kestrel's between the gateway and a client that does not
    // read (4 MiB of send buffer at most here, net.ipv4.tcp_wmem), so the old relay stopped reading the engine; less
    // than the 8 MiB the relay reads ahead by default.
    private const int Events = 4_000;
    private static readonly string Word = new('x', 1700);

    [Fact]
    public async Task AClientThatDoesNotRead_DoesNotHoldTheEnginesSlot_AnotherTenantIsServed_AndTheSlowOneGetsItAllBilledExactly()
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(AnswerAsync);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "one-slot", jurisdiction = "TH", base_url = engine.Url, models = new[] { new { id = "one-slot", upstream = "upstream", capacity = 1 } } }, 201);
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/slow", new { currency = "EUR" }, 200);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/slow/prices", new { model = "one-slot", input_per_million = 0m, output_per_million = 1_000_000m }, 201);
        using var trickle = await TenantAsync("trickle");
        using var polite = await TenantAsync("polite");

        // The noisy tenant's stream: headers read, then not a byte more until the polite tenant has been served.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"one-slot","messages":[{"role":"user","content":"long"}],"max_tokens":4096,"stream":true,"stream_options":{"include_usage":true}}""", Encoding.UTF8, "application/json"),
        };
        using var slow = await trickle.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)slow.StatusCode);

        // The route has one slot. The polite request waits for it in the route's queue until the engine has answered
        // the slow one, not until the slow client has read it (the bound only ends a hang: before, it never came).
        using var answer = await polite.PostAsync("/v1/chat/completions", new StringContent(
            """{"model":"one-slot","messages":[{"role":"user","content":"short"}],"max_tokens":4,"stream":true}""", Encoding.UTF8, "application/json"))
            .WaitAsync(TimeSpan.FromSeconds(60));
        var text = await answer.Content.ReadAsStringAsync();
        Assert.Equal(200, (int)answer.StatusCode);
        Assert.Contains("[DONE]", text, StringComparison.Ordinal);

        // The slow client now reads its whole stream: every event, the usage, [DONE]; billed the engine's count exactly.
        var stream = await slow.Content.ReadAsStringAsync();
        Assert.Equal(Events, CountOf(stream, Word));
        Assert.Contains($"\"completion_tokens\":{Events}", stream, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", stream, StringComparison.Ordinal);
        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(slow.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.NotNull(record);
        Assert.Equal((UsageOutcome.Completed, Events, (decimal)Events), (record.Outcome, record.CompletionTokens, record.Cost));
        var budget = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/tenants/trickle/limits", null, 200)).GetProperty("budgets")[0];
        Assert.Equal(((decimal)Events, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
    }

    /// <summary>
    /// The same for a relayed embeddings answer: the relay reads it whole before writing it, but held the route's slot
    /// until the client had taken it. It now gives the slot back once the engine has answered (the answer within the
    /// relay's read-ahead and the shared budget), so another tenant is served while the slow client has not read.
    /// </summary>
    [Fact]
    public async Task Embeddings_AClientThatDoesNotRead_DoesNotHoldTheEnginesSlot_AndGetsItsWholeAnswerBilledExactly()
    {
        // About 7.3 MB of base64 in one vector: more than the socket buffers between the gateway and a client that does
        // not read, less than the 8 MiB the relay may hold ahead of it.
        var vector = Convert.ToBase64String(new byte[5_500_000]);
        await using var engine = await FakeUpstreamEngine.StartAsync(_ => Task.CompletedTask, async context =>
        {
            var body = await JsonDocument.ParseAsync(context.Request.Body);
            var embedding = body.RootElement.GetProperty("input").GetString() == "long" ? vector : Convert.ToBase64String(new byte[16]);
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(
                $$$"""{"object":"list","model":"upstream","data":[{"object":"embedding","index":0,"embedding":"{{{embedding}}}"}],"usage":{"prompt_tokens":3,"total_tokens":3}}""");
        });
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "one-embedder", jurisdiction = "TH", base_url = engine.Url, models = new[] { new { id = "one-embedder", upstream = "upstream", capacity = 1, kind = "embedding" } } }, 201);
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/slow-embed", new { currency = "EUR" }, 200);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/slow-embed/prices", new { model = "one-embedder", input_per_million = 1_000_000m, output_per_million = 0m }, 201);
        using var trickle = await TenantAsync("trickle-embed", "slow-embed");
        using var polite = await TenantAsync("polite-embed", "slow-embed");

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings")
        {
            Content = new StringContent("""{"model":"one-embedder","input":"long","encoding_format":"base64"}""", Encoding.UTF8, "application/json"),
        };
        using var slow = await trickle.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)slow.StatusCode);

        // One slot: the polite request is served while the slow client has read nothing of its answer.
        using var answer = await polite.PostAsync("/v1/embeddings", new StringContent(
            """{"model":"one-embedder","input":"short","encoding_format":"base64"}""", Encoding.UTF8, "application/json"))
            .WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(answer.StatusCode == System.Net.HttpStatusCode.OK, await answer.Content.ReadAsStringAsync());

        // The slow client then reads its whole answer, billed the engine's count.
        var whole = JsonDocument.Parse(await slow.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(vector, whole.GetProperty("data")[0].GetProperty("embedding").GetString());
        Assert.Equal(3, whole.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(slow.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.NotNull(record);
        Assert.Equal((UsageOutcome.Completed, 3, 3m), (record.Outcome, record.PromptTokens, record.Cost));
    }

    private async Task<HttpClient> TenantAsync(string id, string plan = "slow")
    {
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan, policy = new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true } }, 201);
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{id}/limits", new { budgets = new[] { new { period = "day", amount = 1_000_000m } } }, 200);
        var key = (await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        return fixture.TenantClient(key);
    }

    /// <summary>A stream of <see cref="Events"/> events of one long word for "long", one event for anything else; usage, then [DONE].</summary>
    private static async Task AnswerAsync(HttpContext context)
    {
        var body = await JsonDocument.ParseAsync(context.Request.Body);
        var events = body.RootElement.GetProperty("messages")[0].GetProperty("content").GetString() == "long" ? Events : 1;
        context.Response.ContentType = "text/event-stream";
        var chunk = Encoding.UTF8.GetBytes(
            $$"""data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"upstream","choices":[{"index":0,"delta":{"content":"{{Word}}"},"finish_reason":null}]}""" + "\n\n");
        for (var i = 0; i < events; i++)
        {
            await context.Response.Body.WriteAsync(chunk);
        }

        await context.Response.WriteAsync(
            $$$"""data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"upstream","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":{{{events}}},"total_tokens":{{{events + 3}}}}}""" + "\n\ndata: [DONE]\n\n");
    }

    private static int CountOf(string text, string word)
    {
        var count = 0;
        for (var at = text.IndexOf(word, StringComparison.Ordinal); at >= 0; at = text.IndexOf(word, at + word.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}
