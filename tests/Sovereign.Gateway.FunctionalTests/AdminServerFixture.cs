using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;
using Sovereign.Tests;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// A server of its own, started in process on a fresh data directory, with a client holding the operator token: the
/// base of fixtures that set up plans, tenants and nodes over the admin API as an operator would.
/// </summary>
public abstract class AdminServerFixture(string adminToken, string folderPrefix) : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory(folderPrefix).FullName;

    public WebApplication App { get; private set; } = null!;

    /// <summary>
    /// The server's clock: the system's until a test holds it (<see cref="ShiftedClock.Hold"/>) to read a counter
    /// to the unit, such as a rate limit that refills one request every 20 s, whatever the machine's pauses.
    /// </summary>
    public ShiftedClock Clock { get; } = new();

    public HttpClient Admin { get; private set; } = null!;

    public Uri Address { get; private set; } = null!;

    /// <summary>The server's data directory (its SQLite database, keys and files).</summary>
    public string DataDirectory => _data;

    /// <summary>The models the server loads (none by default).</summary>
    protected virtual IReadOnlyList<ModelOptions> Models => [];

    /// <summary>Settings beyond the data directory, the URL and the operator token.</summary>
    protected abstract IDictionary<string, string?> Overrides { get; }

    public async Task InitializeAsync()
    {
        App = ServeCommand.Build(new ServeSettings
        {
            Models = Models,
            Urls = "http://127.0.0.1:0",
            DataDirectory = _data,
            Overrides = new Dictionary<string, string?>(Overrides) { ["Sovereign:AdminToken"] = adminToken },
            Services = services => services.AddSingleton<TimeProvider>(Clock),
        }, []);
        await App.StartAsync();
        Address = new Uri(App.Urls.First());
        Admin = new HttpClient { BaseAddress = Address };
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
        await SetUpAsync();
    }

    /// <summary>What the fixture creates once the server runs (plans, prices).</summary>
    protected virtual Task SetUpAsync() => Task.CompletedTask;

    /// <summary>A client that calls the server with a tenant's key.</summary>
    public HttpClient TenantClient(string key)
    {
        var client = new HttpClient { BaseAddress = Address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    /// <summary>Sends an admin request and asserts its status; returns the JSON body, if any.</summary>
    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body, int expected)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await Admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expected, $"{method} {path}: expected {expected}, got {(int)response.StatusCode}: {text}");
        return text.Length > 0 && text[0] is '{' or '[' ? JsonDocument.Parse(text).RootElement.Clone() : default;
    }

    public virtual async Task DisposeAsync()
    {
        Admin.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }
}
