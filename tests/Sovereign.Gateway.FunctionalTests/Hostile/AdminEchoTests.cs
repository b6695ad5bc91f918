using System.Text;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// Refusals on the operator's API echo a client's value the one way (<c>RequestReader.Shorten</c>: 64 characters,
/// control characters masked), since the CLI prints them to the operator's terminal; and no value is a 500. Found:
/// <c>ttl_seconds: 99999999999999</c> on a join token was a 500 (TimeSpan overflow), and a device class, jurisdiction,
/// budget period, time or date came back whole, escape sequences included.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class AdminEchoTests(ConsoleFixture fixture)
{
    private const string Hostile = "x\u001b[31mred\u0007";

    [Theory]
    [InlineData(99_999_999_999_999L)]
    [InlineData(long.MaxValue)]
    [InlineData(604_801L)]
    [InlineData(0L)]
    public async Task JoinTokenLifetimeOutOfRange_Is400(long ttl)
    {
        var error = await RefusedAsync(HttpMethod.Post, "/admin/v1/nodes/join-tokens", JsonSerializer.Serialize(new { jurisdiction = "TH", ttl_seconds = ttl }));
        Assert.Equal("ttl_seconds", error.GetProperty("param").GetString());
    }

    public static TheoryData<string, string, string?> Echoes => new()
    {
        { "POST", "/admin/v1/nodes/join-tokens", JsonSerializer.Serialize(new { jurisdiction = "TH", device_class = Hostile }) },
        { "POST", "/admin/v1/nodes/join-tokens", JsonSerializer.Serialize(new { jurisdiction = Hostile + new string('y', 5000) }) },
        { "POST", "/admin/v1/nodes", JsonSerializer.Serialize(new { id = "n-echo", jurisdiction = Hostile, base_url = "http://127.0.0.1:9", models = new[] { new { id = "m" } } }) },
        { "PUT", "/admin/v1/tenants/th-hospital/limits", JsonSerializer.Serialize(new { budgets = new[] { new { period = Hostile, amount = 1 } } }) },
        { "GET", "/admin/v1/audit?from=" + Uri.EscapeDataString(Hostile), null },
        { "GET", "/admin/v1/tenants/th-hospital/invoice?from=" + Uri.EscapeDataString(Hostile), null },
        { "GET", "/admin/v1/usage?group_by=" + Uri.EscapeDataString(Hostile + new string('z', 5000)), null },
    };

    [Theory]
    [MemberData(nameof(Echoes))]
    public async Task RefusalEchoesTheValue_Shortened_WithoutControlCharacters(string method, string path, string? body)
    {
        var message = (await RefusedAsync(new HttpMethod(method), path, body)).GetProperty("message").GetString()!;
        Assert.DoesNotContain(message, char.IsControl);
        Assert.True(message.Length < 400, message);
    }

    private async Task<JsonElement> RefusedAsync(HttpMethod method, string path, string? body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await fixture.Admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, $"{method} {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("error");
    }
}
