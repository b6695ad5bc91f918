using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>The console's calls to its own API: what a client that varies the Host header can make the server hold.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConsoleLoopbackTests(ConsoleFixture fixture)
{
    [Fact]
    public async Task LoginsAndPagesUnderManyHostNames_OpenNoLoopbackConnectionPerName()
    {
        const int Names = 40;

        // Connections this server accepts (its own Kestrel meter: servers of other collections share the process).
        var meter = fixture.App.Services.GetRequiredService<IMeterFactory>().Create("Microsoft.AspNetCore.Server.Kestrel");
        var opened = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, meter) && instrument.Name == "kestrel.active_connections")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) =>
        {
            if (value > 0)
            {
                Interlocked.Add(ref opened, (int)value);
            }
        });
        listener.Start();

        // One client connection, reused for every request (sequential, keep-alive); only the Host header changes.
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        for (var i = 0; i < Names; i++)
        {
            var host = $"name-{i}.example:{fixture.Address.Port}";
            using var login = new HttpRequestMessage(HttpMethod.Post, "/console/login")
            {
                Content = new FormUrlEncodedContent([new("credential", ConsoleFixture.AdminToken)]),
            };
            login.Headers.Host = host;
            using var signedIn = await client.SendAsync(login);
            Assert.Equal(302, (int)signedIn.StatusCode);
            var cookie = signedIn.Headers.GetValues("Set-Cookie").Single().Split(';')[0];

            // A page calls the API too (the pool page reads several endpoints).
            using var page = new HttpRequestMessage(HttpMethod.Get, "/console");
            page.Headers.Host = host;
            page.Headers.Add("Cookie", cookie);
            using var pool = await client.SendAsync(page);
            Assert.Equal(200, (int)pool.StatusCode);
            Assert.Contains("Pool", await pool.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // The test's own connection and at most one or two for the console's calls (sequential, so reused), however
        // many host names: the pool used to key its connections by the browser's host, one open connection per name.
        Assert.InRange(Volatile.Read(ref opened), 0, 3);
    }

    /// <summary>Host headers Kestrel lets through, as the browser's host for the console's own calls: never a 5xx.</summary>
    [Theory]
    [InlineData("HTTP/1.1", "a_b.example")]
    [InlineData("HTTP/1.1", "example.com:")]
    [InlineData("HTTP/1.1", "example.com:99999")]
    [InlineData("HTTP/1.1", "[::1]")]
    [InlineData("HTTP/1.1", "")]
    [InlineData("HTTP/1.0", null)]
    public async Task OddHostHeaders_AreAnsweredWithoutA5xx(string version, string? host)
    {
        var body = "credential=" + ConsoleFixture.AdminToken;
        var head = $"POST /console/login {version}\r\n{(host is null ? "" : $"Host: {host}\r\n")}Connection: close\r\n" +
            $"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {body.Length}\r\n\r\n";
        var response = await Hostile.RawHttp.SendAsync(fixture.Address, System.Text.Encoding.ASCII.GetBytes(head + body));

        Assert.InRange(response.Status, 200, 499);
    }
}
