using System.Net;
using System.Net.Http.Headers;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// Named operator tokens (<c>Sovereign:OperatorTokens:NAME</c>) in the configuration file change without a restart:
/// revoking one took a restart, so a departed operator's token kept guarding every tenant, key and budget until then.
/// The file is looked at again on the next operator request; a token no longer listed is refused there.
/// </summary>
public sealed class OperatorTokenReloadTests : IDisposable
{
    private const string Operator = "the-operators-own-token-1";
    private const string Alice = "alice-operator-token-0001";
    private const string Bob = "bob-operator-token-000002";

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-operator-tokens-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static async Task<HttpStatusCode> TenantsAsync(HttpClient http, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/v1/tenants");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        Assert.True(response.StatusCode != HttpStatusCode.InternalServerError, await response.Content.ReadAsStringAsync());
        return response.StatusCode;
    }

    private static string Config(string operatorTokens) =>
        $$"""{"Sovereign":{"AdminToken":"{{Operator}}","BuiltInEmbeddings":false,"OperatorTokens":{""" + operatorTokens + "}}}";

    [Fact]
    public async Task ATokenRemovedFromTheFile_IsRefusedAtTheNextRequest_AndOneAddedIsAccepted_WithoutARestart()
    {
        var config = Path.Combine(_directory, "sovereign.json");
        await File.WriteAllTextAsync(config, Config($"\"alice\":\"{Alice}\""));
        await using var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "m", Path = TestModels.Stories260K, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            ConfigFile = config,
        }, []);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };

        Assert.Equal(HttpStatusCode.OK, await TenantsAsync(http, Alice));
        Assert.Equal(HttpStatusCode.Unauthorized, await TenantsAsync(http, Bob));

        // Alice leaves, Bob joins.
        await File.WriteAllTextAsync(config, Config($"\"bob\":\"{Bob}\""));
        Assert.Equal(HttpStatusCode.Unauthorized, await TenantsAsync(http, Alice));
        Assert.Equal(HttpStatusCode.OK, await TenantsAsync(http, Bob));
        Assert.Equal(HttpStatusCode.OK, await TenantsAsync(http, Operator));

        // A change that does not hold (a weak token) fails closed: no named token, the operator's still works.
        await File.WriteAllTextAsync(config, Config($"\"bob\":\"{Bob}\",\"carol\":\"short\""));
        Assert.Equal(HttpStatusCode.Unauthorized, await TenantsAsync(http, Bob));
        Assert.Equal(HttpStatusCode.OK, await TenantsAsync(http, Operator));

        // Fixed: Bob is back. A file that is no JSON at all fails closed too.
        await File.WriteAllTextAsync(config, Config($"\"bob\":\"{Bob}\""));
        Assert.Equal(HttpStatusCode.OK, await TenantsAsync(http, Bob));
        await File.WriteAllTextAsync(config, "{\"Sovereign\":");
        Assert.Equal(HttpStatusCode.Unauthorized, await TenantsAsync(http, Bob));
        Assert.Equal(HttpStatusCode.OK, await TenantsAsync(http, Operator));
        await app.StopAsync();
    }

    /// <summary>
    /// A console session signed in with a named token that is removed later ends at the next page, with the reason, as a
    /// tenant's session ends when its key is revoked: it stayed signed in as "Operator" for its 8 hours, every page a 200
    /// carrying the API's 401, the removed secret kept in the server's memory.
    /// </summary>
    [Fact]
    public async Task AConsoleSessionOfARemovedToken_EndsAtTheNextPage()
    {
        var config = Path.Combine(_directory, "sovereign.json");
        await File.WriteAllTextAsync(config, Config($"\"alice\":\"{Alice}\""));
        await using var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "m", Path = TestModels.Stories260K, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            ConfigFile = config,
        }, []);
        await app.StartAsync();
        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = new Uri(app.Urls.First()) };
        using var login = await http.PostAsync("/console/login", new FormUrlEncodedContent([new("credential", Alice)]));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        var cookie = login.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        Assert.Equal(HttpStatusCode.OK, (await PageAsync(http, cookie, "/console/tenants")).Status);

        await File.WriteAllTextAsync(config, Config(""));
        var (status, html) = await PageAsync(http, cookie, "/console/tenants");
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Contains("The operator token you signed in with is no longer accepted", html, StringComparison.Ordinal);

        // The session is gone: the same cookie opens the sign-in page, and an operator page sends it there.
        (status, html) = await PageAsync(http, cookie, "/console");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("Operator token or tenant API key", html, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Redirect, (await PageAsync(http, cookie, "/console/tenants")).Status);
        await app.StopAsync();
    }

    private static async Task<(HttpStatusCode Status, string Html)> PageAsync(HttpClient http, string cookie, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("Cookie", cookie);
        using var response = await http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}
