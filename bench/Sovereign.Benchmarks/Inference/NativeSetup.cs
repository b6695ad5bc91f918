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
    private static readonly List<string> LoaderMessages = [];

    /// <summary>The native library LLamaSharp loaded, as its loader reported it.</summary>
    public static string LoadedLibrary { get; private set; } = "unknown";

    public static void Configure(BenchOptions options)
    {
        if (options.AvxLevel is { } level)
        {
            NativeLibraryConfig.All.WithAvx(level);
        }

        NativeLibraryConfig.All.WithLogCallback((_, message) =>
        {
            lock (Gate)
            {
                LoaderMessages.Add(message);
            }
        });
        NativeLogConfig.llama_log_set(Capture);

        // Forces the native library to load now, so the choice is made with the settings above.
        NativeApi.llama_empty_call();
        lock (Gate)
        {
            LoadedLibrary = LoaderMessages.LastOrDefault(m => m.Contains("libllama", StringComparison.Ordinal) && m.Contains("uccess", StringComparison.Ordinal))
                ?? LoaderMessages.LastOrDefault(m => m.Contains("libllama", StringComparison.Ordinal))
                ?? "unknown";
        }
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

    private static void Capture(LLamaLogLevel level, string message)
    {
        lock (Gate)
        {
            Log.Append(message);
        }

        if (level is LLamaLogLevel.Warning or LLamaLogLevel.Error)
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
