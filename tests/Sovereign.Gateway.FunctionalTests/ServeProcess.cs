using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>A real <c>sovereign serve</c> process in front of a test engine, started until ready and stopped by signal.</summary>
internal static class ServeProcess
{
    /// <summary>The lines of its output a start that failed shows.</summary>
    private const int TailLines = 40;

    /// <summary>
    /// Starts serve fronting <paramref name="engineUrl"/>'s <paramref name="model"/> on a port of its own choosing and
    /// waits for <c>/ready</c>.
    /// </summary>
    public static Task<Served> StartAsync(string dataDirectory, string engineUrl, string model) =>
        StartAsync(["--engine", engineUrl, "--engine-model", model, "--data-dir", dataDirectory]);

    /// <summary>
    /// Starts <c>serve</c> with <paramref name="arguments"/> (jurisdiction DE, no built-in embeddings, plus
    /// <paramref name="environment"/>) on <c>http://127.0.0.1:0</c>, reads the port it bound from its ready line
    /// (<c>sovereign serve: ready on http://127.0.0.1:PORT ...</c>) and waits for <c>/ready</c> there. The port is
    /// the server's own: a port chosen beforehand (<see cref="FreePort"/>) is free when chosen, not when bound, and
    /// another test's server could take it meanwhile. Its output lines go to <paramref name="output"/> when given.
    /// </summary>
    public static Task<Served> StartAsync(IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, Action<string>? output = null) =>
        StartOnAsync(0, arguments, environment, output);

    /// <summary>
    /// Starts <c>serve</c> on <paramref name="port"/> (for a test whose clients must find the server again on the same
    /// port after a restart; prefer the overload without a port) and waits for its ready line and <c>/ready</c>.
    /// </summary>
    public static async Task<Process> StartAsync(int port, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, Action<string>? output = null) =>
        (await StartOnAsync(port, arguments, environment, output)).Process;

    private static async Task<Served> StartOnAsync(int port, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment, Action<string>? output)
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
        // Its own ready line, not only /ready: another test's server on the same port answered /ready while this one
        // exited 2 (address in use) and the test went on against the other (seen once under load: PriceStartTimeZoneTests'
        // stop found exit 2). The ready line names the port bound, so a port of 0 needs no guess at all.
        var ready = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var tail = new Queue<string>();
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.Exited += (_, _) => ready.TrySetResult(-1);
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (process.HasExited)
        {
            ready.TrySetResult(-1);
        }

        void Keep(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (tail)
            {
                tail.Enqueue(line);
                if (tail.Count > TailLines)
                {
                    tail.Dequeue();
                }
            }

            if (ReadyPort(line) is { } bound)
            {
                ready.TrySetResult(bound);
            }

            output?.Invoke(line);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        int boundPort;
        try
        {
            boundPort = await ready.Task.WaitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException("the server did not say it was ready within 2 minutes; its last output:\n" + Tail());
        }

        if (boundPort < 0 || (port != 0 && boundPort != port))
        {
            // Exited (or said ready elsewhere): the lines before say why (address in use, a setting refused, ...).
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await process.WaitForExitAsync(CancellationToken.None);
            throw new Xunit.Sdk.XunitException(
                $"the server exited during start-up (exit {process.ExitCode}); its last output:\n" + Tail());
        }

        using var probe = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{boundPort}") };
        while (true)
        {
            if (process.HasExited)
            {
                throw new Xunit.Sdk.XunitException($"the server exited after saying it was ready (exit {process.ExitCode}); its last output:\n" + Tail());
            }

            try
            {
                if ((await probe.GetAsync("/ready", timeout.Token)).IsSuccessStatusCode)
                {
                    return new Served(process, boundPort, Tail);
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100, timeout.Token);
        }

        string Tail()
        {
            // Exited: its output may still be draining; WaitForExit() without a timeout waits for the redirected streams.
            if (process.HasExited)
            {
                process.WaitForExit();
            }

            lock (tail)
            {
                return string.Join('\n', tail);
            }
        }
    }

    /// <summary>The port of <c>serve</c>'s ready line (<c>sovereign serve: ready on http://127.0.0.1:PORT[, ...] (console: ...).</c>).</summary>
    internal static int? ReadyPort(string line)
    {
        const string Ready = "sovereign serve: ready on ";
        if (!line.StartsWith(Ready, StringComparison.Ordinal))
        {
            return null;
        }

        var first = line[Ready.Length..].Split([',', ' '], 2)[0];
        return Uri.TryCreate(first, UriKind.Absolute, out var url) && url.Port > 0 ? url.Port : null;
    }

    /// <summary>
    /// How long a test waits for <c>serve</c> to exit once it was told to stop (or stops by itself). A bound for a hang,
    /// not a pace: a stop takes about a second here, and one minute was reached once on CI at load 30-65.
    /// </summary>
    public static readonly TimeSpan ExitBound = TimeSpan.FromMinutes(3);

    /// <summary>
    /// Waits up to <see cref="ExitBound"/> for <paramref name="server"/> to exit; one that does not is killed, and the
    /// test fails saying so with <paramref name="output"/> (its last lines), not with a bare cancellation.
    /// </summary>
    public static async Task WaitForExitAsync(Process server, Func<string> output)
    {
        using var exited = new CancellationTokenSource(ExitBound);
        try
        {
            await server.WaitForExitAsync(exited.Token);
        }
        catch (OperationCanceledException)
        {
            server.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"serve did not exit within {ExitBound.TotalMinutes:0} minutes; its last output:\n" + output());
        }
    }

    /// <summary>Stops <paramref name="server"/> as <see cref="StopAsync(Process)"/> does; a non-zero exit or a hang shows its last output.</summary>
    public static async Task StopAsync(Served server)
    {
        try
        {
            await StopAsync(server.Process);
        }
        catch (Xunit.Sdk.XunitException ex)
        {
            throw new Xunit.Sdk.XunitException(ex.Message + "\nIts last output:\n" + server.Tail(), ex);
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

            await WaitForExitAsync(server, () => "(not kept by this caller)");
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

    /// <summary>
    /// A port free now: only for what cannot bind port 0 and say which it took. For <c>serve</c>, use
    /// <see cref="StartAsync(IEnumerable{string}, IReadOnlyDictionary{string, string}?, Action{string}?)"/>.
    /// </summary>
    public static int FreePort() => Sovereign.Tests.LoopbackPorts.Unused();
}

/// <summary>A started <c>serve</c> and the port it bound.</summary>
/// <param name="Process">The server's process.</param>
/// <param name="Port">The port it listens on (127.0.0.1).</param>
/// <param name="Tail">Its last lines of output so far.</param>
internal sealed record Served(Process Process, int Port, Func<string> Tail) : IDisposable
{
    /// <summary>Its address, for an <see cref="HttpClient"/>.</summary>
    public Uri BaseAddress => new($"http://127.0.0.1:{Port}");

    /// <inheritdoc />
    public void Dispose() => Process.Dispose();
}
