using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Sovereign.Inference.Engine;

namespace Sovereign.Benchmarks.Inference;

/// <summary>What one memory probe measured (bytes).</summary>
internal sealed record MemoryReading
{
    public long RssBeforeLoad { get; init; }
    public long RssAfterLoad { get; init; }
    public long RssAfterContext { get; init; }
    public long RssWarm { get; init; }
    public long RssWarmAnonymous { get; init; }
    public long RssWarmFile { get; init; }
    public double ModelBufferMiB { get; init; }
    public double KvBufferMiB { get; init; }
    public double ComputeBufferMiB { get; init; }

    /// <summary>llama.cpp's buffer lines as logged, e.g. "CPU_REPACK model buffer size = 96.00 MiB".</summary>
    public IReadOnlyList<string> Buffers { get; init; } = [];
}

/// <summary>
/// Measures resident memory in a fresh child process, so the figures are not polluted by the other model or by the
/// benchmark's own allocations. Mode "direct": load the model, create a BatchedExecutor with N sequences (KV cache
/// N x ctx, as the server sizes it), decode one step for each, read RSS at each stage. Mode "server": start the real
/// server with the model and read RSS after a warm-up request. llama.cpp's own buffer sizes are read from its log.
/// </summary>
internal static partial class MemoryProbe
{
    public const string CommandName = "probe-memory";
    private const string Marker = "PROBE ";

    /// <summary>Child side.</summary>
    public static async Task<int> RunAsync(BenchOptions options)
    {
        var path = options.ProbeModel ?? throw new ArgumentException("--probe-model is required");
        NativeSetup.Configure(options);
        GC.Collect();
        var before = Rss.Read();
        var model = InferenceBenchmark.ModelOptionsFor("probe", path, options);
        MemoryReading reading;
        if (options.ProbeMode == "server")
        {
            await using var server = await ServerHost.StartAsync(model, options.ServerData);
            var loaded = Rss.Read();
            var prompt = server.Batcher.Model.Tokenize(InferenceBenchmark.StoryPrompt);
            using (var http = new HttpRunner(server.Address, model.Id))
            {
                await http.RunAsync(prompt, Math.Min(8, model.Parallel), 4, stream: false, CancellationToken.None);
            }

            var warm = Rss.Read();
            reading = Reading(before, loaded, loaded, warm, NativeSetup.TakeLog());
        }
        else
        {
            using var llama = LlamaModel.Load(model);
            var loaded = Rss.Read();
            using var executor = DirectRunner.CreateExecutor(llama, options.ProbeSequences);
            var context = Rss.Read();
            var prompt = llama.Tokenize(InferenceBenchmark.StoryPrompt);
            await DirectRunner.RunAsync(executor, llama, prompt, options.ProbeSequences, 4, CancellationToken.None);
            var warm = Rss.Read();
            reading = Reading(before, loaded, context, warm, NativeSetup.TakeLog());
        }

        Console.WriteLine(Marker + JsonSerializer.Serialize(reading));
        return 0;
    }

    /// <summary>Parent side: runs the probe in a child process and reads its result.</summary>
    public static async Task<MemoryReading> MeasureAsync(string modelPath, BenchOptions options, string mode, int sequences)
    {
        var start = new ProcessStartInfo
        {
            FileName = Environment.ProcessPath ?? throw new InvalidOperationException("Unknown process path."),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };

        // Under `dotnet Sovereign.Benchmarks.dll` the process is dotnet itself; pass the assembly first.
        if (System.IO.Path.GetFileNameWithoutExtension(start.FileName).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            start.ArgumentList.Add(typeof(MemoryProbe).Assembly.Location);
        }

        foreach (var arg in (string[])[CommandName, "--probe-model", modelPath, "--probe-mode", mode, "--probe-seqs", sequences.ToString(CultureInfo.InvariantCulture), .. options.EngineArgs()])
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the memory probe.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var line = (await stdout).Split('\n').FirstOrDefault(l => l.StartsWith(Marker, StringComparison.Ordinal));
        if (process.ExitCode != 0 || line is null)
        {
            throw new InvalidOperationException($"Memory probe ({mode}, {sequences} seq) failed with exit code {process.ExitCode}: {await stderr}");
        }

        return JsonSerializer.Deserialize<MemoryReading>(line[Marker.Length..]) ?? throw new InvalidOperationException("Empty probe result.");
    }

    private static MemoryReading Reading(Rss before, Rss loaded, Rss context, Rss warm, string log) => new()
    {
        RssBeforeLoad = before.Total,
        RssAfterLoad = loaded.Total,
        RssAfterContext = context.Total,
        RssWarm = warm.Total,
        RssWarmAnonymous = warm.Anonymous,
        RssWarmFile = warm.File,
        ModelBufferMiB = SumBuffers(log, "model"),
        KvBufferMiB = SumBuffers(log, "KV"),
        ComputeBufferMiB = SumBuffers(log, "compute"),
        Buffers = BufferLine().Matches(log).Select(m => m.Groups["line"].Value.Trim()).ToArray(),
    };

    /// <summary>Sums llama.cpp's "... CPU KV buffer size = 12.00 MiB" style lines of one kind.</summary>
    private static double SumBuffers(string log, string kind) => BufferLine().Matches(log)
        .Where(m => m.Groups["kind"].Value == kind)
        .Sum(m => double.Parse(m.Groups["mib"].Value, CultureInfo.InvariantCulture));

    [GeneratedRegex(@"(?<line>\S+\s+(?<kind>model|KV|compute) buffer size =\s*(?<mib>[0-9.]+) MiB)")]
    private static partial Regex BufferLine();
}
