using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>A real <c>sovereign serve</c> process in front of a test engine, started until ready and stopped by signal.</summary>
internal static class ServeProcess
{
    /// <summary>Starts serve fronting <paramref name="engineUrl"/>'s <paramref name="model"/> and waits for <c>/ready</c>.</summary>
    public static Task<Process> StartAsync(string dataDirectory, int port, string engineUrl, string model) =>
        StartAsync(port, ["--engine", engineUrl, "--engine-model", model, "--data-dir", dataDirectory]);

    /// <summary>
    /// Starts <c>serve</c> on <paramref name="port"/> with <paramref name="arguments"/> (jurisdiction DE, no built-in
    /// embeddings, plus <paramref name="environment"/>) and waits for <c>/ready</c>. Its output lines go to
    /// <paramref name="output"/> when given.
    /// </summary>
    public static async Task<Process> StartAsync(int port, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, Action<string>? output = null)
    {
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "sovereign.dll"), "serve", "--urls", $"http://127.0.0.1:{port}" }.Concat(arguments))
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["Sovereign__Jurisdiction"] = "DE";
        start.Environment["Sovereign__BuiltInEmbeddings"] = "false";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var process = Process.Start(start)!;
        // Its own ready line, not only /ready: FreePort's port is free when chosen, not when bound, and another test's
        // server that took it meanwhile answered /ready while this one exited 2 (address in use) and the test went on
        // against the other (seen once under load: PriceStartTimeZoneTests' stop found exit 2).
        var saidReady = 0;
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        void Keep(string? line)
        {
            if (line is not null)
            {
                if (line.StartsWith("sovereign serve: ready on ", StringComparison.Ordinal))
                {
                    Volatile.Write(ref saidReady, 1);
                }

                output?.Invoke(line);
            }
        }

        using var probe = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        while (true)
        {
            Assert.False(process.HasExited, "the server exited during start-up");
            try
            {
                if (Volatile.Read(ref saidReady) == 1 && (await probe.GetAsync("/ready", timeout.Token)).IsSuccessStatusCode)
                {
                    return process;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100, timeout.Token);
        }
    }

    /// <summary>Stops <paramref name="server"/> with SIGTERM (the log then ends under a checkpoint) and checks it exited 0.</summary>
    public static async Task StopAsync(Process server)
    {
        try
        {
            using (var term = Process.Start("kill", ["-TERM", server.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await term.WaitForExitAsync();
            }

            using var exited = new CancellationTokenSource(TimeSpan.FromMinutes(1));
            await server.WaitForExitAsync(exited.Token);
            Assert.Equal(0, server.ExitCode);
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true);
            }
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
