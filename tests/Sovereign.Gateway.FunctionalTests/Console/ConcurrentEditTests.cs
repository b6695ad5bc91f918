using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Sovereign.Cli.Commands;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// Two operators' edits at once. <c>tenants update</c>'s policy flags and <c>limits</c> read the whole policy or
/// limits, change what their flags name and write it all back: the edit written second put back the first one's field
/// as it had read it. GET now answers an ETag, a write with <c>If-Match</c> is refused (412 <c>precondition_failed</c>)
/// once another change came between, and the CLI then reads and makes its edit again.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConcurrentEditTests(ConsoleFixture fixture)
{
    private string[] Admin(string url, params string[] args) => [.. args, "--url", url, "--admin-token", ConsoleFixture.AdminToken];

    [Fact]
    public async Task TenantsUpdate_TwoPolicyEditsAtOnce_BothStay()
    {
        var (tenant, _) = await fixture.NewTenantAsync();

        // The second operator's whole edit runs after the first one's read and before its write.
        await using var proxy = await InterleavingProxy.StartAsync(fixture.Address, $"/admin/v1/tenants/{tenant}", async () =>
        {
            var (exit, _, stderr) = await CliProcess.RunAsync(Admin(fixture.Url, "tenants", "update", tenant, "--retain-days", "7"));
            Assert.True(exit == 0, stderr);
        });

        var (exit, _, stderr) = await CliProcess.RunAsync(Admin(proxy.Url, "tenants", "update", tenant, "--model", ConsoleFixture.Model));

        Assert.True(exit == 0, stderr);
        var policy = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}", null)).GetProperty("policy");
        Assert.Equal([ConsoleFixture.Model], policy.GetProperty("allowed_models").EnumerateArray().Select(m => m.GetString()));
        Assert.True(policy.TryGetProperty("retention", out var retention) && retention.ValueKind == JsonValueKind.Object, $"the other edit's retention was lost: {policy}");
        Assert.Equal(7, retention.GetProperty("days").GetInt32());
        Assert.Equal(["TH"], policy.GetProperty("allowed_jurisdictions").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal(2, proxy.Reads); // read, refused (412) as stale, read again
    }

    [Fact]
    public async Task Limits_TwoEditsAtOnce_BothStay()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "month", amount = 500m } }, rate_limits = new[] { new { requests_per_minute = 600 } } });
        await using var proxy = await InterleavingProxy.StartAsync(fixture.Address, $"/admin/v1/tenants/{tenant}/limits", async () =>
        {
            var (exit, _, stderr) = await CliProcess.RunAsync(Admin(fixture.Url, "limits", tenant, "--tokens-per-minute", "1000"));
            Assert.True(exit == 0, stderr);
        });

        var (exit, _, stderr) = await CliProcess.RunAsync(Admin(proxy.Url, "limits", tenant, "--requests-per-minute", "900"));

        Assert.True(exit == 0, stderr);
        var limits = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null)).GetProperty("limits");
        var rate = Assert.Single(limits.GetProperty("rate_limits").EnumerateArray());
        Assert.Equal("900/1000", $"{TenantsCommand.Text(rate, "requests_per_minute")}/{TenantsCommand.Text(rate, "tokens_per_minute")}");
        Assert.Equal(500m, Assert.Single(limits.GetProperty("budgets").EnumerateArray()).GetProperty("amount").GetDecimal());
        Assert.Equal(2, proxy.Reads); // read, refused (412) as stale, read again
    }

    [Fact]
    public async Task TenantPatch_WithAStaleIfMatch_Is412_AndChangesNothing()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        var path = $"/admin/v1/tenants/{tenant}";
        var read = await SendAsync(HttpMethod.Get, path, null, null);
        var first = read.ETag!;

        var disabled = await SendAsync(HttpMethod.Patch, path, new { disabled = true }, first);
        Assert.Equal(HttpStatusCode.OK, disabled.Status);
        Assert.NotEqual(first, disabled.ETag);
        Assert.Equal(disabled.ETag, (await SendAsync(HttpMethod.Get, path, null, null)).ETag);

        var stale = await SendAsync(HttpMethod.Patch, path, new { policy = new { allowed_jurisdictions = new[] { "TH" }, allowed_models = new[] { "x" } } }, first);
        Assert.Equal(HttpStatusCode.PreconditionFailed, stale.Status);
        var error = stale.Json.GetProperty("error");
        Assert.Equal(("precondition_failed", "If-Match"), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
        var after = await SendAsync(HttpMethod.Get, path, null, null);
        Assert.Equal(0, after.Json.GetProperty("policy").TryGetProperty("allowed_models", out var models) && models.ValueKind == JsonValueKind.Array ? models.GetArrayLength() : 0);
        Assert.True(after.Json.GetProperty("disabled").GetBoolean());

        // A weak tag never matches; a value that is not an entity tag is a 400 naming the header; * is any version.
        Assert.Equal(HttpStatusCode.PreconditionFailed, (await SendAsync(HttpMethod.Patch, path, new { disabled = false }, "W/" + disabled.ETag)).Status);
        var malformed = await SendAsync(HttpMethod.Patch, path, new { disabled = false }, "not-a-tag");
        Assert.Equal((HttpStatusCode.BadRequest, "If-Match"), (malformed.Status, malformed.Json.GetProperty("error").GetProperty("param").GetString()));
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Patch, path, new { disabled = false }, "*")).Status);
    }

    [Fact]
    public async Task LimitsPut_WithAStaleIfMatch_Is412_AndChangesNothing()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        var path = $"/admin/v1/tenants/{tenant}/limits";
        var first = (await SendAsync(HttpMethod.Get, path, null, null)).ETag!;

        var set = await SendAsync(HttpMethod.Put, path, new { rate_limits = new[] { new { requests_per_minute = 60 } } }, first);
        Assert.Equal(HttpStatusCode.OK, set.Status);
        Assert.NotEqual(first, set.ETag);

        var stale = await SendAsync(HttpMethod.Put, path, new { rate_limits = new[] { new { tokens_per_minute = 99 } } }, first);
        Assert.Equal(HttpStatusCode.PreconditionFailed, stale.Status);
        Assert.Equal("precondition_failed", stale.Json.GetProperty("error").GetProperty("code").GetString());
        var rate = Assert.Single((await SendAsync(HttpMethod.Get, path, null, null)).Json.GetProperty("limits").GetProperty("rate_limits").EnumerateArray());
        Assert.Equal(60, rate.GetProperty("requests_per_minute").GetInt64());

        // Setting the limits leaves the tenant's own version alone, and the other way round.
        var tenantVersion = (await SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}", null, null)).ETag!;
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Put, path, new { rate_limits = new[] { new { requests_per_minute = 61 } } }, set.ETag)).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { disabled = true }, tenantVersion)).Status);
    }

    private async Task<(HttpStatusCode Status, JsonElement Json, string? ETag)> SendAsync(HttpMethod method, string path, object? body, string? ifMatch)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        if (ifMatch is not null)
        {
            request.Headers.TryAddWithoutValidation("If-Match", ifMatch);
        }

        using var response = await fixture.Admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone(), response.Headers.ETag?.ToString());
    }

    /// <summary>
    /// Forwards a CLI command's admin calls to the server and, on its first read of one path, runs another edit to the
    /// end before handing the command that read's answer, now stale: the order in which two edits at once lose one.
    /// </summary>
    private sealed class InterleavingProxy : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly HttpClient _server;
        private int _reads;

        private InterleavingProxy(WebApplication app, HttpClient server, string url) => (_app, _server, Url) = (app, server, url);

        public string Url { get; }

        /// <summary>How often the command read the path (the other edit ran between the first read and its answer).</summary>
        public int Reads => Volatile.Read(ref _reads);

        public static async Task<InterleavingProxy> StartAsync(Uri server, string readPath, Func<Task> meanwhile)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            var client = new HttpClient { BaseAddress = server };
            InterleavingProxy? proxy = null;
            app.Run(async context =>
            {
                using var forwarded = new HttpRequestMessage(new HttpMethod(context.Request.Method), context.Request.Path + context.Request.QueryString);
                if (context.Request.ContentLength > 0 || context.Request.Headers.TransferEncoding.Count > 0)
                {
                    using var body = new MemoryStream();
                    await context.Request.Body.CopyToAsync(body);
                    forwarded.Content = new ByteArrayContent(body.ToArray());
                    forwarded.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(context.Request.ContentType!);
                }

                foreach (var header in new[] { "Authorization", "If-Match" })
                {
                    if (context.Request.Headers.TryGetValue(header, out var value))
                    {
                        forwarded.Headers.TryAddWithoutValidation(header, value.ToString());
                    }
                }

                using var answer = await client.SendAsync(forwarded);
                var content = await answer.Content.ReadAsByteArrayAsync();
                if (context.Request.Method == "GET" && context.Request.Path == readPath && Interlocked.Increment(ref proxy!._reads) == 1)
                {
                    await meanwhile();
                }

                context.Response.StatusCode = (int)answer.StatusCode;
                context.Response.ContentType = answer.Content.Headers.ContentType?.ToString();
                if (answer.Headers.ETag is { } etag)
                {
                    context.Response.Headers.ETag = etag.ToString();
                }

                await context.Response.Body.WriteAsync(content);
            });
            await app.StartAsync();
            proxy = new InterleavingProxy(app, client, app.Urls.First());
            return proxy;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
            _server.Dispose();
        }
    }
}
