using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sovereign.Gateway.Observability;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// A client sending only bad requests filled the log at its own rate: each refusal a 4001 line at Information (only
/// 429s were summarised; explorer21's soak). A key's first refusal of each status and code stays visible; the same
/// refusals after it are counted, at Debug, and one line per interval says how many (event 4170), naming the key and
/// tenant by id and never what was sent.
/// </summary>
[Collection(ResidencyCollection.Name)]
public sealed class RefusalFloodLogTests(ResidencyFixture fixture)
{
    [Fact]
    public async Task AKeySendingOnlyBadRequests_LogsItsFirstRefusalOfEachCode_ThenOneSummaryLine()
    {
        const int Flood = 20;
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "log-flood", name = "log-flood", policy = new { allowed_jurisdictions = new[] { "TH" } } }, 201);
        var created = await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants/log-flood/keys", new { name = "looping" }, 201);
        var keyId = created.GetProperty("key").GetProperty("id").GetString()!;
        var summary = fixture.Th.Services.GetRequiredService<RefusalLogSummary>();
        summary.Flush();

        var captured = new ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        fixture.Th.Services.GetRequiredService<ILoggerFactory>().AddProvider(capture);
        using var tenant = fixture.TenantClient(created.GetProperty("secret").GetString()!);
        for (var i = 0; i < Flood; i++)
        {
            using var notJson = new StringContent("{not json " + i, Encoding.UTF8, "application/json");
            Assert.Equal(400, (int)(await tenant.PostAsync("/v1/chat/completions", notJson)).StatusCode);
            Assert.Equal(404, (int)(await tenant.PostAsync("/v1/chat/completions", new StringContent(
                """{"model":"no-such-model-flood","messages":[{"role":"user","content":"secret-content-7731"}]}""", Encoding.UTF8, "application/json"))).StatusCode);
        }

        summary.Flush();
        capture.Stop();

        var refused = captured.Where(l => l.Event.Id == 4001).ToList();
        var informational = refused.Where(l => l.Level >= LogLevel.Information).Select(l => l.Message).ToList();
        Assert.True(informational.Count == 2, string.Join("; ", informational));
        Assert.Single(informational, m => m.Contains(" 400 ", StringComparison.Ordinal));
        Assert.Single(informational, m => m.Contains(" 404 ", StringComparison.Ordinal) && m.Contains("model_not_found", StringComparison.Ordinal));

        // The others were at Debug (below the log's level here, so not written at all), each counted in one line.
        var summaries = captured.Where(l => l.Event.Id == 4170).Select(l => (l.Level, l.Message)).ToList();
        Assert.Equal(2, summaries.Count);
        Assert.All(summaries, s =>
        {
            Assert.Equal(LogLevel.Information, s.Level);
            Assert.StartsWith($"Key {keyId} of tenant log-flood was refused {Flood - 1} more requests with 4", s.Message, StringComparison.Ordinal);
        });
        Assert.Contains(summaries, s => s.Message.Contains("with 404 model_not_found", StringComparison.Ordinal));

        // Ids, statuses and codes only: nothing the client sent.
        Assert.DoesNotContain(captured, l => l.Message.Contains("secret-content-7731", StringComparison.Ordinal) || l.Message.Contains("no-such-model-flood", StringComparison.Ordinal));
    }
}
