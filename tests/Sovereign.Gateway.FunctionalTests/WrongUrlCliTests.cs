using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Sovereign.Cli.Output;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// A --url that reaches another web server (a wrong port, a proxy's page). Found by trying it: a 200 HTML page ended
/// admin commands in "unexpected InvalidOperationException ... a defect in sovereign" (exit 70), <c>invoice</c>
/// printed the page with exit 0, and an HTML 404 was printed whole, many lines of markup.
/// </summary>
public sealed class WrongUrlCliTests : IAsyncLifetime
{
    private WebApplication _other = null!;
    private string _okUrl = null!;
    private string _notFoundUrl = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        _other = builder.Build();
        // Any path under /missing answers an HTML 404; anything else an HTML 200, as a web site's front page would.
        _other.Run(context =>
        {
            context.Response.StatusCode = context.Request.Path.StartsWithSegments("/missing") ? 404 : 200;
            context.Response.ContentType = "text/html";
            return context.Response.WriteAsync("<!DOCTYPE html>\n<html>\n<body>\n<h1>Welcome</h1>\n</body>\n</html>\n");
        });
        await _other.StartAsync();
        _okUrl = _other.Urls.First();
        _notFoundUrl = _okUrl + "/missing";
    }

    public async Task DisposeAsync() => await _other.DisposeAsync();

    [Theory]
    [InlineData("tenants", "list")]
    [InlineData("tenants", "show", "t1")]
    [InlineData("usage")]
    [InlineData("invoice", "t1")]
    [InlineData("tenants", "create", "t1", "--jurisdiction", "TH")]
    public async Task AnAdminCommand_AgainstAnotherWebServer_SaysSoInOneLine_ExitCode4(params string[] command)
    {
        foreach (var url in new[] { _okUrl, _notFoundUrl })
        {
            var (exit, stdout, stderr) = await CliProcess.RunAsync([.. command, "--url", url, "--admin-token", "t"]);

            Assert.True(exit == ExitCodes.Unreachable, $"{string.Join(' ', command)} --url {url}: {exit} {stdout} {stderr}");
            Assert.Equal("", stdout);
            var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains($"the server at {url} is not Sovereign's admin API", line, StringComparison.Ordinal);
            Assert.Contains("text/html", line, StringComparison.Ordinal);
            Assert.DoesNotContain("<", line, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ModelsListAndChat_AgainstAnotherWebServersErrorPage_SaySoInOneLine()
    {
        foreach (var command in new[] { new[] { "models", "list" }, ["chat", "--prompt", "hi"] })
        {
            var (exit, stdout, stderr) = await CliProcess.RunAsync([.. command, "--url", _notFoundUrl]);

            Assert.True(exit == ExitCodes.Unreachable, $"{string.Join(' ', command)}: {exit} {stderr}");
            Assert.Equal("", stdout);
            var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains("is not Sovereign's API: it answered 404 with text/html", line, StringComparison.Ordinal);
        }
    }
}
