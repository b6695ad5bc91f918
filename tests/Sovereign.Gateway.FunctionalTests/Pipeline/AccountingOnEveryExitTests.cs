using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.FunctionalTests.Metering;
using Sovereign.Gateway.Models;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// The books of every request close exactly once, whatever the exit: what was generated is billed (a client that
/// leaves mid-stream pays for the tokens it was sent), what was refused before any work is not.
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class AccountingOnEveryExitTests(MeteringFixture fixture) : IDisposable
{
    // Created with the test, before any request: it sees every request's books close.
    private readonly BooksClosedListener _books = new();

    public void Dispose() => _books.Dispose();

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private const string LongStory = """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":200,"temperature":0,"stream":true}""";

    [Fact]
    public async Task AbandonedStream_MidGeneration_IsBilledForWhatItWasSent()
    {
        var (_, key) = await fixture.NewTenantAsync();
        using var client = fixture.TenantClient(key);
        // The engine takes 8 steps (prefill, then a token a step) and then holds until it is woken by the client's
        // cancellation, so the client leaves while its request is certainly still generating.
        var batcher = fixture.App.Services.GetRequiredService<ModelCatalog>().TryGet(MeteringFixture.Model, out var served) ? served.Batcher! : throw new InvalidOperationException();
        var steps = 0;
        batcher.BeforeStep = async woken =>
        {
            if (Interlocked.Increment(ref steps) > 8)
            {
                await woken;
            }
        };
        try
        {
            var (requestId, chunks) = await ReadThenAbandonAsync(client, LongStory, stopAfterContentChunks: 5);
            var record = await WaitForRecordAsync(requestId);
            Assert.True(record.Outcome == UsageOutcome.Cancelled, $"{record} after {chunks} chunks, {steps} steps");
            Assert.True(record.CompletionTokens >= chunks, $"billed {record.CompletionTokens} completion tokens for {chunks} content chunks received");
            Assert.True(record.CompletionTokens < 200);
            Assert.True(record.PromptTokens > 0);
            Assert.True(record.ComputeSeconds > 0m);
            Assert.Equal(ExpectedCost(record), record.Cost);
        }
        finally
        {
            batcher.BeforeStep = null;
        }
    }

    [Fact]
    public async Task ModelUnloadedMidStream_IsBilledForWhatTheStreamDelivered()
    {
        // A model unloaded while a stream reads from it: the stream ends with an error event, and the tokens it sent
        // are billed (they were recorded as 0 completion tokens at no cost, since the stopped engine reported nothing).
        const string id = "stories-unloaded-mid-stream";
        var (exit, _, stderr) = await CliProcess.RunAsync("models", "import", TestModels.Stories260K, "--id", id,
            "--license", "MIT", "--origin-publisher", "Andrej Karpathy", "--origin-country", "US", "--data-dir", fixture.DataDirectory);
        Assert.True(exit == 0, stderr);
        Assert.Equal(HttpStatusCode.OK, (await fixture.Admin.PostAsync($"/admin/v1/models/{id}/load", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await fixture.Admin.PostAsync("/admin/v1/plans/standard/prices",
            Json($$"""{"model":"{{id}}","input_per_million":{{MeteringFixture.InputPerMillion}},"output_per_million":{{MeteringFixture.OutputPerMillion}}}"""))).StatusCode);
        var (_, key) = await fixture.NewTenantAsync();
        using var client = fixture.TenantClient(key);
        var batcher = fixture.App.Services.GetRequiredService<ModelCatalog>().TryGet(id, out var served) ? served.Batcher! : throw new InvalidOperationException();
        // 8 steps (prefill, then a token a step), then the engine holds until it is woken: by the unload, which stops it.
        var steps = 0;
        batcher.BeforeStep = async woken =>
        {
            if (Interlocked.Increment(ref steps) > 8)
            {
                await woken;
            }
        };

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = Json(LongStory.Replace("\"stories\"", $"\"{id}\"", StringComparison.Ordinal)),
        };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = response.Headers.GetValues("x-sovereign-audit-id").Single();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var chunks = 0;
        var unloading = Task.CompletedTask;
        var sawError = false;
        var sawDone = false;
        while (await reader.ReadLineAsync() is { } line)
        {
            sawDone |= line == "data: [DONE]";
            if (!line.StartsWith("data: {", StringComparison.Ordinal))
            {
                continue;
            }

            var chunk = JsonDocument.Parse(line[6..]).RootElement;
            sawError |= chunk.TryGetProperty("error", out _);
            if (chunk.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
                && choices[0].GetProperty("delta").TryGetProperty("content", out var content) && content.GetString() is { Length: > 0 }
                && ++chunks == 5)
            {
                unloading = fixture.Admin.PostAsync($"/admin/v1/models/{id}/unload", null);
            }
        }

        await unloading;
        var record = await WaitForRecordAsync(requestId);
        Assert.True(sawError && !sawDone, $"error event {sawError}, [DONE] {sawDone}");
        Assert.True(record.CompletionTokens >= chunks, $"billed {record.CompletionTokens} completion tokens for {chunks} content chunks received ({record})");
        Assert.True(record.CompletionTokens < 200);
        Assert.True(record.PromptTokens > 0);
        Assert.Equal(ExpectedCost(record), record.Cost);
        Assert.True(record.Cost > 0m);
    }

    [Fact]
    public async Task ModelUnloadedMidGeneration_Unstreamed_IsBilledNothing()
    {
        // An unstreamed request whose model the operator unloads while it generates: the client gets 503
        // model_unavailable and no answer, so it pays nothing (the soak found it billed for its prompt, and the SDKs
        // retry a 503, so each attempt was billed again).
        const string id = "stories-unloaded-unstreamed";
        var (exit, _, stderr) = await CliProcess.RunAsync("models", "import", TestModels.Stories260K, "--id", id,
            "--license", "MIT", "--origin-publisher", "Andrej Karpathy", "--origin-country", "US", "--data-dir", fixture.DataDirectory);
        Assert.True(exit == 0, stderr);
        Assert.Equal(HttpStatusCode.OK, (await fixture.Admin.PostAsync($"/admin/v1/models/{id}/load", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await fixture.Admin.PostAsync("/admin/v1/plans/standard/prices",
            Json($$"""{"model":"{{id}}","input_per_million":{{MeteringFixture.InputPerMillion}},"output_per_million":{{MeteringFixture.OutputPerMillion}}}"""))).StatusCode);
        var (tenant, key) = await fixture.NewTenantAsync();
        using var client = fixture.TenantClient(key);
        var batcher = fixture.App.Services.GetRequiredService<ModelCatalog>().TryGet(id, out var served) ? served.Batcher! : throw new InvalidOperationException();
        // 8 steps (prefill, then a token a step), then the engine holds until it is woken: by the unload, which stops it.
        var steps = 0;
        var holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        batcher.BeforeStep = async woken =>
        {
            if (Interlocked.Increment(ref steps) > 8)
            {
                holding.TrySetResult();
                await woken;
            }
        };

        var captured = new System.Collections.Concurrent.ConcurrentQueue<(string Category, Microsoft.Extensions.Logging.LogLevel Level, Microsoft.Extensions.Logging.EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        fixture.App.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().AddProvider(capture);
        var body = LongStory.Replace("\"stories\"", $"\"{id}\"", StringComparison.Ordinal).Replace(",\"stream\":true", "", StringComparison.Ordinal);
        var answer = client.PostAsync("/v1/chat/completions", Json(body));
        await holding.Task;
        Assert.Equal(HttpStatusCode.OK, (await fixture.Admin.PostAsync($"/admin/v1/models/{id}/unload", null)).StatusCode);
        using var response = await answer;
        capture.Stop();

        // Logged as what it is, a refusal with its code (4001, Information), not as shedding for want of capacity (4002
        // "Shed ... with 503 model_unavailable: no capacity"), which sent the soak's operator looking for overload.
        Assert.DoesNotContain(captured, l => l.Event.Id == 4002);
        Assert.Contains(captured, l => l.Event.Id == 4001 && l.Level == Microsoft.Extensions.Logging.LogLevel.Information
            && l.Message.Contains("503 server_error/model_unavailable", StringComparison.Ordinal));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("model_unavailable", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        var record = await WaitForRecordAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal(UsageOutcome.Failed, record.Outcome);
        Assert.True(record is { PromptTokens: 0, CompletionTokens: 0 }, record.ToString());
        Assert.Equal(0m, record.Cost);
        var invoice = JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/tenants/{tenant}/invoice")).RootElement;
        Assert.Equal(0m, decimal.Parse(invoice.GetProperty("total").GetString()!, CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task DecodeFails_Unstreamed_IsBilledNothing()
    {
        // A decode step that fails under an unstreamed request: 500 engine_decode_failed, which the SDKs retry, and
        // no answer, so no bill (its prompt was billed on each attempt).
        var (_, key) = await fixture.NewTenantAsync();
        using var client = fixture.TenantClient(key);
        var batcher = fixture.App.Services.GetRequiredService<ModelCatalog>().TryGet(MeteringFixture.Model, out var served) ? served.Batcher! : throw new InvalidOperationException();
        var steps = 0;
        batcher.AfterDecode = status => Interlocked.Increment(ref steps) == 4 ? LLama.Native.DecodeResult.DecodeFailed : status;
        try
        {
            using var response = await client.PostAsync("/v1/chat/completions", Json(LongStory.Replace(",\"stream\":true", "", StringComparison.Ordinal)));

            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            Assert.Equal("engine_decode_failed", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
            var record = await WaitForRecordAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
            Assert.Equal(UsageOutcome.Failed, record.Outcome);
            Assert.True(record is { PromptTokens: 0, CompletionTokens: 0 }, record.ToString());
            Assert.Equal(0m, record.Cost);
        }
        finally
        {
            batcher.AfterDecode = null;
        }
    }

    [Fact]
    public async Task DecodeFailsMidStream_IsBilledForWhatTheStreamDelivered_AndEndsWithAnErrorEvent()
    {
        // A llama.cpp decode step that fails while a stream reads: the stream ends with an error event naming the
        // failure (no [DONE]), and the tokens it sent are billed (they were recorded as 0 completion tokens at no cost).
        var (_, key) = await fixture.NewTenantAsync();
        using var client = fixture.TenantClient(key);
        var batcher = fixture.App.Services.GetRequiredService<ModelCatalog>().TryGet(MeteringFixture.Model, out var served) ? served.Batcher! : throw new InvalidOperationException();
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json(LongStory) };
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var requestId = response.Headers.GetValues("x-sovereign-audit-id").Single();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var chunks = 0;
            string? errorCode = null;
            var sawDone = false;
            while (await reader.ReadLineAsync() is { } line)
            {
                sawDone |= line == "data: [DONE]";
                if (!line.StartsWith("data: {", StringComparison.Ordinal))
                {
                    continue;
                }

                var chunk = JsonDocument.Parse(line[6..]).RootElement;
                if (chunk.TryGetProperty("error", out var error))
                {
                    errorCode = error.GetProperty("code").GetString();
                }

                if (chunk.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
                    && choices[0].GetProperty("delta").TryGetProperty("content", out var content) && content.GetString() is { Length: > 0 }
                    && ++chunks == 5)
                {
                    // The next decode step fails (once: the rebuilt executor serves on).
                    var failed = 0;
                    batcher.AfterDecode = status => Interlocked.Exchange(ref failed, 1) == 0 ? LLama.Native.DecodeResult.DecodeFailed : status;
                }
            }

            var record = await WaitForRecordAsync(requestId);
            Assert.True(errorCode == "engine_decode_failed" && !sawDone, $"error event {errorCode}, [DONE] {sawDone}");
            Assert.True(record.CompletionTokens >= chunks, $"billed {record.CompletionTokens} completion tokens for {chunks} content chunks received ({record})");
            Assert.True(record.CompletionTokens < 200);
            Assert.True(record.PromptTokens > 0);
            Assert.Equal(ExpectedCost(record), record.Cost);
            Assert.True(record.Cost > 0m);
        }
        finally
        {
            batcher.AfterDecode = null;
        }
    }

    [Fact]
    public async Task AbandonedStream_JustBeforeDone_IsBilledInFull()
    {
        var (_, key) = await fixture.NewTenantAsync();
        using var client = fixture.TenantClient(key);
        const string body = """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":24,"temperature":0""";
        // Greedy output is deterministic: the same request unstreamed says how many tokens the stream generates.
        using var probe = await client.PostAsync("/v1/chat/completions", Json(body + "}"));
        var generated = JsonDocument.Parse(await probe.Content.ReadAsStringAsync()).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        var (requestId, chunks) = await ReadThenAbandonAsync(client, body + ",\"stream\":true}", stopAfterContentChunks: int.MaxValue);

        var record = await WaitForRecordAsync(requestId);
        Assert.Equal(generated, record.CompletionTokens);
        Assert.True(chunks > 0);
        Assert.Equal(ExpectedCost(record), record.Cost);
        Assert.True(record.Cost > 0m);
    }

    [Fact]
    public async Task ContextLengthRefusal_IsBilledNothing_AndIsNotOnTheInvoice()
    {
        var (tenant, key) = await fixture.NewTenantAsync();
        using var client = fixture.TenantClient(key);
        var words = string.Join(' ', Enumerable.Repeat("the little dog ran to the park", 80));
        using var response = await client.PostAsync("/v1/chat/completions",
            Json(JsonSerializer.Serialize(new { model = "stories", messages = new[] { new { role = "user", content = words } }, max_tokens = 4 })));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        var requestId = response.Headers.GetValues("x-sovereign-audit-id").Single();
        Assert.Null(await Ledger.GetAsync(requestId));

        var invoice = JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/tenants/{tenant}/invoice")).RootElement;
        Assert.Equal(0m, decimal.Parse(invoice.GetProperty("total").GetString()!, CultureInfo.InvariantCulture));
        var limits = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200);
        Assert.All(limits.GetProperty("budgets").EnumerateArray(), b => Assert.Equal(0m, b.GetProperty("reserved").GetDecimal()));
    }

    [Fact]
    public async Task CompletedRequest_RecordIsStampedWithItsArrival()
    {
        var (_, key) = await fixture.NewTenantAsync();
        using var client = fixture.TenantClient(key);
        var before = DateTimeOffset.UtcNow;
        using var response = await client.PostAsync("/v1/chat/completions",
            Json("""{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":40,"temperature":0}"""));
        var after = DateTimeOffset.UtcNow;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var record = await WaitForRecordAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.InRange(record.Timestamp, before.AddMilliseconds(-1), after);
        // The record is stamped before the work: its timestamp plus its duration still lies within the exchange.
        Assert.True(record.Timestamp.AddMilliseconds(record.DurationMs) <= after.AddMilliseconds(1));
    }

    private UsageLedger Ledger => fixture.App.Services.GetRequiredService<UsageLedger>();

    private static decimal ExpectedCost(UsageRecord record) =>
        Math.Round((record.PromptTokens * MeteringFixture.InputPerMillion + record.CompletionTokens * MeteringFixture.OutputPerMillion) / 1_000_000m, 6);

    /// <summary>Reads a streamed answer until the given number of content chunks (or the finish chunk), then leaves.</summary>
    private static async Task<(string RequestId, int ContentChunks)> ReadThenAbandonAsync(HttpClient client, string body, int stopAfterContentChunks)
    {
        using var leave = new CancellationTokenSource();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json(body) };
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, leave.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = response.Headers.GetValues("x-sovereign-audit-id").Single();
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(leave.Token));
        var chunks = 0;
        while (await reader.ReadLineAsync(leave.Token) is { } line)
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal))
            {
                continue;
            }

            var choice = JsonDocument.Parse(line[6..]).RootElement.GetProperty("choices")[0];
            if (choice.GetProperty("finish_reason").ValueKind == JsonValueKind.String)
            {
                break;
            }

            if (choice.GetProperty("delta").TryGetProperty("content", out var content) && content.GetString() is { Length: > 0 } && ++chunks >= stopAfterContentChunks)
            {
                break;
            }
        }

        // Leave without reading the rest ([DONE] included).
        await leave.CancelAsync();
        response.Dispose();
        return (requestId, chunks);
    }

    /// <summary>
    /// The request's usage record, read once its books have closed (its record committed, its reservation settled);
    /// the server closes them when the request ends, a client that left included. The listener's bound only turns a
    /// hang into a failure.
    /// </summary>
    private async Task<UsageRecord> WaitForRecordAsync(string requestId)
    {
        await _books.ClosedForRequestAsync(requestId);
        return await Ledger.GetAsync(requestId) ?? throw new Xunit.Sdk.XunitException($"No usage record for {requestId} after its books closed.");
    }
}
