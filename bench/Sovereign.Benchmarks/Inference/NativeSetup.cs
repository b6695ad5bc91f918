using System.Text;
using LLama.Native;

namespace Sovereign.Benchmarks.Inference;

/// <summary>
/// Picks the llama.cpp build and captures llama.cpp's log before the first native call (both must happen before
/// it). The log is kept so that buffer sizes llama.cpp reports (KV cache, compute) can be read back; warnings and
/// errors are also written to stderr.
/// </summary>
internal static class NativeSetup
{
    private static readonly Lock Gate = new();
    private static readonly StringBuilder Log = new();
    private static readonly HashSet<string> Warned = [];

    /// <summary>The native library LLamaSharp loaded (its build folder and file name).</summary>
    public static string LoadedLibrary { get; private set; } = "unknown";

    public static void Configure(BenchOptions options)
    {
        if (options.AvxLevel is { } level)
        {
            NativeLibraryConfig.All.WithAvx(level);
        }

        NativeLogConfig.llama_log_set(Capture);

        // Forces the native library to load now, so the choice is made with the settings above.
        NativeApi.llama_empty_call();
        LoadedLibrary = FindLoadedLibrary();
    }

    /// <summary>Returns the llama.cpp log captured since the last call and clears it.</summary>
    public static string TakeLog()
    {
        lock (Gate)
        {
            var text = Log.ToString();
            Log.Clear();
            return text;
        }
    }

    /// <summary>Which libllama build is mapped into this process (Linux), e.g. "avx512/libllama.so".</summary>
    private static string FindLoadedLibrary()
    {
        const string maps = "/proc/self/maps";
        if (!File.Exists(maps))
        {
            return "unknown";
        }

        var line = File.ReadLines(maps).FirstOrDefault(l => l.EndsWith("libllama.so", StringComparison.Ordinal));
        if (line is null)
        {
            return "unknown";
        }

        var path = line[line.IndexOf('/', StringComparison.Ordinal)..];
        var folder = System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(path));
        return folder + "/" + System.IO.Path.GetFileName(path);
    }

    private static void Capture(LLamaLogLevel level, string message)
    {
        bool first;
        lock (Gate)
        {
            Log.Append(message);
            first = Warned.Add(message);
        }

        // Each model load repeats the same warnings; once is enough.
        if (first && level is LLamaLogLevel.Warning or LLamaLogLevel.Error)
        {
            Console.Error.Write("llama.cpp: " + message);
        }
    }
}

/// <summary>Resident memory as the kernel counts it (Linux /proc/self/status), in bytes.</summary>
internal readonly record struct Rss(long Total, long Anonymous, long File)
{
    public static Rss Read()
    {
        long total = 0, anon = 0, file = 0;
        if (System.IO.File.Exists("/proc/self/status"))
        {
            foreach (var line in System.IO.File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    total = Kilobytes(line);
                }
                else if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
                {
                    anon = Kilobytes(line);
                }
                else if (line.StartsWith("RssFile:", StringComparison.Ordinal))
                {
                    file = Kilobytes(line);
                }
            }
        }
        else
        {
            total = Environment.WorkingSet;
        }

        return new Rss(total, anon, file);
    }

    private static long Kilobytes(string line) =>
        long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
}
