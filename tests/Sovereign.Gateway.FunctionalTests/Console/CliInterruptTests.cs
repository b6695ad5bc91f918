using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// Found by pressing Ctrl+C in <c>sovereign chat</c> while an answer streamed: it printed "the server did not answer in
/// time." and exited 4, the README's "the server could not be reached", for a server that was answering and a user who
/// had stopped it. An interrupted command now says so and exits 130, as shells report a command ended by SIGINT.
/// </summary>
public sealed class CliInterruptTests : IAsyncLifetime
{
    private readonly TaskCompletionSource _received = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private WebApplication _server = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        _server = builder.Build();
        // An answer that never comes until the client leaves.
        _server.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            _received.TrySetResult();
            await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
        });
        await _server.StartAsync();
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task CtrlCInChat_SaysInterrupted_AndExits130_NotUnreachable()
    {
        // Through env --default-signal=INT: a test run started in the background of a shell without job control ignores
        // SIGINT, every child inherits that, and .NET keeps an ignored signal ignored (as a backgrounded command should).
        var start = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var arg in new[] { "--default-signal=INT", "dotnet", Path.Combine(AppContext.BaseDirectory, "sovereign.dll"), "chat", "--url", _server.Urls.First(), "--model", "held", "--prompt", "hi", "--api-key", "sk-test" })
        {
            start.ArgumentList.Add(arg);
        }

        using var chat = Process.Start(start)!;
        try
        {
            chat.StandardInput.Close();
            var stderr = chat.StandardError.ReadToEndAsync();
            await _received.Task.WaitAsync(TimeSpan.FromMinutes(2));

            using (var interrupt = Process.Start("kill", ["-INT", chat.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await interrupt.WaitForExitAsync();
            }

            using var exited = new CancellationTokenSource(TimeSpan.FromMinutes(1));
            await chat.WaitForExitAsync(exited.Token);
            var said = await stderr;
            Assert.True(chat.ExitCode == 130, $"{chat.ExitCode}: {said}");
            Assert.Equal("sovereign chat: interrupted.", said.Trim());
        }
        finally
        {
            if (!chat.HasExited)
            {
                chat.Kill(entireProcessTree: true);
            }
        }
    }
}
