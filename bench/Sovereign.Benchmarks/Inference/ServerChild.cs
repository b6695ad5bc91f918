using Microsoft.Extensions.Logging;

namespace Sovereign.Benchmarks.Inference;

/// <summary>
/// Our server in a process of its own, for comparisons with another server process (llama-server): the same
/// <see cref="ServerHost"/> the inference benchmark uses, loaded with the model and settings on the command line.
/// Prints llama.cpp's log and its address, then serves until its standard input closes.
/// </summary>
internal static class ServerChild
{
    public const string CommandName = "serve-child";

    /// <summary>The line that carries the address; the parent waits for it.</summary>
    public const string ListeningPrefix = "LISTENING ";

    /// <summary>The parent's question, on standard input: time spent in the JIT so far.</summary>
    public const string JitQuery = "jit";

    /// <summary>The answer's prefix: JIT time in ms, then compiled methods.</summary>
    public const string JitPrefix = "JIT ";

    public static async Task<int> RunAsync(BenchOptions options)
    {
        var path = options.ProbeModel ?? throw new ArgumentException($"{CommandName} needs --probe-model PATH");
        NativeSetup.Configure(options);
        var id = options.ServedModelId ?? System.IO.Path.GetFileNameWithoutExtension(path);
        // llama.cpp's context log (flash attention, KV cache, threads) goes to the console for the parent to report.
        await using var server = await ServerHost.StartAsync(InferenceBenchmark.ModelOptionsFor(id, path, options), options.ServerData, LogLevel.Information);
        Console.WriteLine(ListeningPrefix + server.Address);
        Console.Out.Flush();

        // The parent closes our standard input to stop us (also when it dies). A "jit" line asks how much the JIT has
        // compiled so far, so the parent can warm us up until tiered compilation has settled and report what is left.
        while (await Console.In.ReadLineAsync() is { } line)
        {
            if (line == JitQuery)
            {
                Console.WriteLine(FormattableString.Invariant($"{JitPrefix}{System.Runtime.JitInfo.GetCompilationTime().TotalMilliseconds:F1} {System.Runtime.JitInfo.GetCompiledMethodCount()}"));
                Console.Out.Flush();
            }
        }

        return 0;
    }
}
