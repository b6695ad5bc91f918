using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// Once tenants exist, /v1 needs a key, yet anyone who reached the port decided how much the log wrote at Information
/// through refusals answered before any caller is known: an unknown URL (404), a method the URL does not take (405),
/// an unknown query parameter (400), each a line holding a path of their choosing (up to Kestrel's 8 KB request line).
/// 4,000 such requests with guessed keys wrote 2,000 lines in 2 seconds (found by explorer8). They are at Debug, as
/// 401s are; a tenant's own refusals stay at Information.
/// </summary>
[Collection(ResidencyCollection.Name)]
public sealed class AnonymousLogVolumeTests(ResidencyFixture fixture)
{
    [Fact]
    public async Task RefusalsBeforeAnyCallerIsKnown_AreNotLoggedAtInformation_ATenantsAre()
    {
        var captured = new ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        fixture.Th.Services.GetRequiredService<ILoggerFactory>().AddProvider(capture);

        using var anyone = new HttpClient { BaseAddress = fixture.ThAddress };
        Assert.Equal(404, (int)(await anyone.GetAsync("/v1/no-such-anonymous-url")).StatusCode);
        Assert.Equal(404, (int)(await anyone.GetAsync("/no-such-anonymous-page")).StatusCode);
        Assert.Equal(405, (int)(await anyone.GetAsync("/v1/chat/completions")).StatusCode);
        Assert.Equal(405, (int)(await anyone.DeleteAsync("/v1/models")).StatusCode);
        Assert.Equal(400, (int)(await anyone.GetAsync("/v1/models?anonymous_probe=1")).StatusCode);

        using var tenant = fixture.TenantClient(fixture.ThOnlyKey);
        using var notJson = new StringContent("{not json", Encoding.UTF8, "application/json");
        Assert.Equal(400, (int)(await tenant.PostAsync("/v1/chat/completions", notJson)).StatusCode);
        capture.Stop();

        var informational = captured.Where(l => l.Level >= LogLevel.Information && l.Event.Id == 4001).Select(l => l.Message).ToList();
        Assert.DoesNotContain(informational, m => m.Contains("anonymous", StringComparison.Ordinal)
            || m.Contains(" 405 ", StringComparison.Ordinal) || m.Contains("GET /v1/models", StringComparison.Ordinal));
        Assert.Contains(informational, m => m.Contains("POST /v1/chat/completions with 400", StringComparison.Ordinal));
    }
}
