using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using Sovereign.Gateway.Observability;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A governed request leaves one span per stage of the pipeline in the client's trace (W3C traceparent), so an
/// operator's tracing backend shows where its time went; the spans' order is itself evidence: the decision's audit
/// entry ends before the work is sent to the engine.
/// </summary>
[Collection(ResidencyCollection.Name)]
public sealed class PipelineSpansTests(ResidencyFixture fixture, FakeChatEngine engine) : IClassFixture<FakeChatEngine>
{
    private const string Model = "spans-fake-chat";
    private const string Prompt = "where does the time go";
    private static readonly SemaphoreSlim Setup = new(1, 1);
    private static string? _key;

    private async Task<string> KeyAsync()
    {
        await Setup.WaitAsync();
        try
        {
            if (_key is null)
            {
                await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/nodes",
                    new { id = "spans-fake-node", jurisdiction = "SG", base_url = engine.BaseUrl, models = new[] { new { id = Model, upstream = "upstream-model", capacity = 4 } } }, 201);
                _key = await fixture.CreateTenantWithKeyAsync("spans-tenant", new { allowed_jurisdictions = new[] { "ASEAN" }, allow_external_providers = true });
            }

            return _key;
        }
        finally
        {
            Setup.Release();
        }
    }

    [Fact]
    public async Task RelayedRequest_HasOneSpanPerStage_AndItsDecisionIsDurableBeforeTheWorkIsSent()
    {
        var key = await KeyAsync();
        var traceId = ActivityTraceId.CreateRandom();
        var spans = new ConcurrentQueue<Activity>();
        var events = new ConcurrentQueue<string>(); // "start:name" and "end:name" in the order they happened (no clock)
        bool Ours(Activity activity) => activity.TraceId == traceId && activity.Source.Name == GatewayTelemetry.ActivitySourceName;
        using var listener = new ActivityListener
        {
            // ASP.NET Core's own source too: its request span continues the client's traceparent, and ours are its children.
            ShouldListenTo = source => source.Name is GatewayTelemetry.ActivitySourceName or "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStarted = activity =>
            {
                if (Ours(activity))
                {
                    events.Enqueue("start:" + activity.OperationName);
                }
            },
            ActivityStopped = activity =>
            {
                if (Ours(activity))
                {
                    events.Enqueue("end:" + activity.OperationName);
                    spans.Enqueue(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);

        using var client = fixture.TenantClient(key);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent($$"""{"model":"{{Model}}","messages":[{"role":"user","content":"{{Prompt}}"}],"max_tokens":3}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("traceparent", $"00-{traceId}-{ActivitySpanId.CreateRandom()}-01");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await response.Content.ReadAsStringAsync();

        string[] stages =
        [
            GatewayTelemetry.Authenticate, GatewayTelemetry.Route, GatewayTelemetry.AuditDecision, GatewayTelemetry.Measure, GatewayTelemetry.Admit,
            GatewayTelemetry.Execute, GatewayTelemetry.Account, GatewayTelemetry.AuditOutcome, GatewayTelemetry.Settle,
        ];
        // The books close before the client's last byte, so every span has ended by now.
        var byName = spans.GroupBy(s => s.OperationName).ToDictionary(g => g.Key, g => g.ToList());
        Assert.Equal(stages.Order(), byName.Keys.Order());
        Assert.All(byName.Values, list => Assert.Single(list));
        var span = byName.ToDictionary(p => p.Key, p => p.Value[0]);

        var order = events.ToList();
        void Before(string first, string then) =>
            Assert.True(order.IndexOf(first) is >= 0 and var at && at < order.IndexOf(then), $"{first} must come before {then}: {string.Join(", ", order)}");

        // Fail closed, shown by the trace: the decision's entry committed before the work went to the engine.
        Before("end:" + GatewayTelemetry.AuditDecision, "start:" + GatewayTelemetry.Execute);
        Before("end:" + GatewayTelemetry.Authenticate, "start:" + GatewayTelemetry.Route);
        Before("end:" + GatewayTelemetry.Admit, "start:" + GatewayTelemetry.Execute);
        Before("end:" + GatewayTelemetry.Execute, "start:" + GatewayTelemetry.Account);

        // The outcome's commit and the settlement are parts of accounting, in that order.
        Assert.Equal(span[GatewayTelemetry.Account].SpanId, span[GatewayTelemetry.AuditOutcome].ParentSpanId);
        Assert.Equal(span[GatewayTelemetry.Account].SpanId, span[GatewayTelemetry.Settle].ParentSpanId);
        Before("end:" + GatewayTelemetry.AuditOutcome, "start:" + GatewayTelemetry.Settle);

        // The trace leads to the audit entry and the usage record (their request id), and never holds content.
        Assert.Equal(response.Headers.GetValues("x-sovereign-audit-id").Single(), span[GatewayTelemetry.Route].GetTagItem("sovereign.request_id"));
        Assert.Equal("spans-tenant", span[GatewayTelemetry.Authenticate].GetTagItem("sovereign.tenant"));
        Assert.DoesNotContain(spans.SelectMany(s => s.TagObjects), tag => tag.Value?.ToString()?.Contains(Prompt, StringComparison.Ordinal) == true);
    }

    /// <summary>
    /// The route's span names the model the client asked for, even one no node serves, and the client chose every
    /// character of it: a 20,000-character "model" (a prompt pasted in the wrong field) with ESC sequences went whole
    /// into the operator's tracing backend. It is now at most a model id's length, and escaped (session 48).
    /// </summary>
    [Fact]
    public async Task TheRequestedModelOnTheRouteSpan_IsBoundedAndEscaped()
    {
        var key = await KeyAsync();
        var traceId = ActivityTraceId.CreateRandom();
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is GatewayTelemetry.ActivitySourceName or "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = activity =>
            {
                if (activity.TraceId == traceId && activity.OperationName == GatewayTelemetry.Route)
                {
                    spans.Enqueue(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);

        using var client = fixture.TenantClient(key);
        var asked = "my secret plan\u001b[2J" + new string('x', 20_000);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent(System.Text.Json.JsonSerializer.Serialize(new { model = asked, messages = new[] { new { role = "user", content = Prompt } } }), Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("traceparent", $"00-{traceId}-{ActivitySpanId.CreateRandom()}-01");
        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var tagged = Assert.IsType<string>(Assert.Single(spans).GetTagItem("gen_ai.request.model"));
        Assert.StartsWith("my secret plan\\u001B[2Jxxx", tagged, StringComparison.Ordinal);
        Assert.True(tagged.Length <= 257, $"{tagged.Length} characters");
        Assert.DoesNotContain(tagged, char.IsControl);
    }
}
