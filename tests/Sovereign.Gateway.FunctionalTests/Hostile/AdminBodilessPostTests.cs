using System.Text;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// The admin POSTs that take no parameters in a body (<c>audit/checkpoint</c>, <c>audit/verify</c>, whose bound is a
/// query parameter, and <c>models/{id}/unload</c>) read it as <c>models/{id}/load</c> reads its optional one: none or
/// an empty object, and anything else is a 400 naming what is wrong. They accepted any body and ignored it, so a script
/// sending <c>{"max_uncovered_seconds": 5}</c> to verify got a report under the default bound, and a checkpoint was
/// signed for a body that asked something else.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class AdminBodilessPostTests(ConsoleFixture fixture)
{
    [Theory]
    [InlineData("/admin/v1/audit/checkpoint")]
    [InlineData("/admin/v1/audit/verify")]
    public async Task AnUnknownField_Is400NamingIt(string path)
    {
        var (status, error) = await PostAsync(path, """{"max_uncovered_seconds":5}""");

        Assert.True(status == 400, $"{path}: {status} {error}");
        Assert.Equal(("unknown_parameter", "max_uncovered_seconds"), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
    }

    [Theory]
    [InlineData("/admin/v1/audit/checkpoint", "not json")]
    [InlineData("/admin/v1/audit/checkpoint", "[]")]
    [InlineData("/admin/v1/audit/verify", "\"verify\"")]
    [InlineData("/admin/v1/models/no-such-model/unload", """{"force":true}""")]
    public async Task ABodyThatIsNoEmptyObject_Is400(string path, string body)
    {
        var (status, error) = await PostAsync(path, body);

        Assert.True(status == 400, $"{path} {body}: {status} {error}");
    }

    [Theory]
    [InlineData("/admin/v1/audit/checkpoint", null)]
    [InlineData("/admin/v1/audit/checkpoint", "{}")]
    [InlineData("/admin/v1/audit/verify", null)]
    [InlineData("/admin/v1/audit/verify", " { } ")]
    public async Task NoBodyOrAnEmptyObject_IsServed(string path, string? body)
    {
        var (status, error) = await PostAsync(path, body);

        Assert.True(status == 200, $"{path} {body}: {status} {error}");
    }

    private async Task<(int Status, JsonElement Error)> PostAsync(string path, string? body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await fixture.Admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var json = JsonDocument.Parse(text).RootElement.Clone();
        return ((int)response.StatusCode, json.TryGetProperty("error", out var error) ? error : json);
    }
}
