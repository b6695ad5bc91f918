using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// What the CLI prints that others wrote: a model's answer (steered by whatever document it read), an engine's error
/// relayed by the gateway, and the names in its tables that come from nodes (models, GPUs, hosts), not from the
/// operator. A terminal obeys the ESC sequences it is sent (OSC 52 writes the clipboard, OSC 8 makes a link,
/// <c>ESC[2J</c> clears the screen, <c>ESC[8m</c> hides what follows), and a line break forges a line. Each such
/// character now reaches the terminal as its <c>\uXXXX</c> escape; letters of every script are kept. Found by hand:
/// each of these wrote ESC to stdout or stderr (session 48).
/// </summary>
public sealed class HostileTextCliTests : IAsyncLifetime
{
    private const string Clipboard = "\u001b]52;c;cm0gLXJmIH4=\u0007";
    private const string Link = "\u001b]8;;https://evil.example/\u001b\\here\u001b]8;;\u001b\\";
    private const string Hide = "\u001b[2J\u001b[8m";
    private const string Thai = "โรงพยาบาล";

    private WebApplication _server = null!;
    private string _url = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        _server = builder.Build();
        _server.MapGet("/v1/models", () => Results.Json(new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(new JsonObject { ["id"] = "m" + Link, ["object"] = "model", ["created"] = 0, ["owned_by"] = Thai + Hide }),
        }));
        _server.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            var body = await JsonNode.ParseAsync(context.Request.Body);
            if (body!["messages"]![0]!["content"]!.GetValue<string>() == "fail")
            {
                // An engine's own words, as the gateway relays them (UpstreamErrors keeps an engine's message).
                context.Response.StatusCode = 400;
                await context.Response.WriteAsJsonAsync(new JsonObject { ["error"] = new JsonObject { ["message"] = "bad\nsovereign: done." + Hide, ["type"] = "invalid_request_error" } });
                return;
            }

            context.Response.ContentType = "text/event-stream";
            foreach (var part in new[] { Thai + " ", Clipboard, "line one\nline two\t", Link, "🏥", Hide, "end" })
            {
                var chunk = new JsonObject
                {
                    ["id"] = "chatcmpl-1", ["object"] = "chat.completion.chunk", ["created"] = 0, ["model"] = "m",
                    ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = new JsonObject { ["content"] = part }, ["finish_reason"] = null }),
                };
                await context.Response.WriteAsync("data: " + chunk.ToJsonString() + "\n\n");
            }

            await context.Response.WriteAsync("data: [DONE]\n\n");
        });
        _server.MapGet("/admin/v1/nodes", () => Results.Json(new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(new JsonObject
            {
                ["id"] = "gpu-1", ["jurisdiction"] = "TH", ["pool"] = "th" + Hide, ["device_class"] = "h100", ["kind"] = "local", ["state"] = "active",
                ["health"] = "up", ["base_url"] = "http://10.0.0.1:8000" + Link,
                ["models"] = new JsonArray(new JsonObject { ["id"] = "llama" + Clipboard, ["kind"] = "chat" }),
            }),
        }));
        await _server.StartAsync();
        _url = _server.Urls.First();
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Chat_AnAnswerWithEscapeSequences_IsShownNotObeyed_AndKeepsItsLinesAndLetters()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync("chat", "--url", _url, "--model", "m", "--prompt", "hi");

        Assert.True(exit == 0, stderr);
        Assert.Equal(
            Thai + " \\u001B]52;c;cm0gLXJmIH4=\\u0007line one\nline two\t\\u001B]8;;https://evil.example/\\u001B\\here\\u001B]8;;\\u001B\\🏥\\u001B[2J\\u001B[8mend\n",
            stdout);
    }

    [Fact]
    public async Task Chat_AnEnginesErrorWithALineBreakAndEscapes_IsOneLineShownNotObeyed()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync("chat", "--url", _url, "--model", "m", "--prompt", "fail");

        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("bad\\u000Asovereign: done.\\u001B[2J\\u001B[8m", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tables_NamesWithEscapeSequences_AreShownNotObeyed()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync("models", "list", "--url", _url);
        Assert.True(exit == 0, stderr);
        Assert.DoesNotContain('\u001b', stdout);
        Assert.Contains("m\\u001B]8;;https://evil.example/\\u001B\\here", stdout, StringComparison.Ordinal);
        Assert.Contains(Thai + "\\u001B[2J", stdout, StringComparison.Ordinal);

        (exit, stdout, stderr) = await CliProcess.RunAsync("nodes", "list", "--url", _url, "--admin-token", "t");
        Assert.True(exit == 0, stderr);
        Assert.DoesNotContain('\u001b', stdout);
        Assert.DoesNotContain('\u0007', stdout);
        Assert.Contains("llama\\u001B]52;c;cm0gLXJmIH4=\\u0007", stdout, StringComparison.Ordinal);
    }
}
