using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using LLama.Native;

namespace Sovereign.Inference.Engine;

/// <summary>
/// Which llama.cpp build LLamaSharp loaded (it picks one of its prebuilt CPU builds: noavx, avx, avx2, avx512) and
/// which of this CPU's instruction-set extensions that build leaves unused. LLamaSharp 0.30.0's avx512 build has no
/// VNNI, VBMI or BF16 code: on a CPU that has them, a llama.cpp built for the host runs a Q8_0 model's matrix
/// products with fewer instructions (measured in docs/benchmarks.md, "Where the CPU goes").
/// </summary>
public static partial class NativeBuild
{
    // llama.cpp's names (llama_print_system_info, ggml's CPU backend features) and the Linux /proc/cpuinfo flag of each.
    private static readonly (string Feature, string CpuFlag)[] Extensions =
    [
        ("AVX", "avx"), ("AVX2", "avx2"), ("F16C", "f16c"), ("FMA", "fma"), ("BMI2", "bmi2"),
        ("AVX512", "avx512f"), ("AVX512_VBMI", "avx512vbmi"), ("AVX512_VNNI", "avx512_vnni"),
        ("AVX512_BF16", "avx512_bf16"), ("AVX_VNNI", "avx_vnni"), ("AMX_INT8", "amx_int8"),
    ];

    private static int _logged;

    /// <summary>llama.cpp's own description of the loaded build (<c>llama_print_system_info</c>), e.g. "CPU : SSE3 = 1 | AVX = 1 | ...".</summary>
    public static string SystemInfo => Marshal.PtrToStringAnsi(NativeApi.llama_print_system_info())?.Trim() ?? string.Empty;

    /// <summary>The file of the loaded CPU backend (Linux: read from the process's mappings), or null when it cannot be told.</summary>
    public static string? LibraryPath
    {
        get
        {
            const string maps = "/proc/self/maps";
            if (!File.Exists(maps))
            {
                return null;
            }

            var line = File.ReadLines(maps).FirstOrDefault(l => l.Contains("libggml-cpu", StringComparison.Ordinal))
                ?? File.ReadLines(maps).FirstOrDefault(l => l.Contains("libllama", StringComparison.Ordinal));
            return line?[line.IndexOf('/', StringComparison.Ordinal)..];
        }
    }

    /// <summary>This CPU's instruction-set flags (Linux /proc/cpuinfo); empty where they cannot be read.</summary>
    public static IReadOnlySet<string> CpuFlags()
    {
        const string cpuinfo = "/proc/cpuinfo";
        if (!File.Exists(cpuinfo))
        {
            return new HashSet<string>();
        }

        var flags = File.ReadLines(cpuinfo).FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
        return flags is null ? new HashSet<string>() : flags[(flags.IndexOf(':', StringComparison.Ordinal) + 1)..]
            .Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>
    /// The extensions the CPU has (<paramref name="cpuFlags"/>, as /proc/cpuinfo names them) that the build described by
    /// <paramref name="systemInfo"/> does not use: llama.cpp lists a feature as "NAME = 1" when compiled in, as
    /// "NAME = 0" or not at all when not.
    /// </summary>
    public static IReadOnlyList<string> UnusedExtensions(string systemInfo, IReadOnlySet<string> cpuFlags)
    {
        ArgumentNullException.ThrowIfNull(systemInfo);
        ArgumentNullException.ThrowIfNull(cpuFlags);
        var built = FeatureRegex().Matches(systemInfo)
            .Where(m => m.Groups[2].Value != "0")
            .Select(m => m.Groups[1].Value)
            .ToHashSet(StringComparer.Ordinal);
        return [.. Extensions.Where(e => cpuFlags.Contains(e.CpuFlag) && !built.Contains(e.Feature)).Select(e => e.Feature)];
    }

    /// <summary>Logs the loaded build and the CPU extensions it leaves unused, once per process.</summary>
    internal static void LogOnce(Microsoft.Extensions.Logging.ILogger? logger)
    {
        if (logger is null || !logger.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Information) || Interlocked.Exchange(ref _logged, 1) != 0)
        {
            return;
        }

        Log(logger);
    }

    /// <summary>Logs the loaded build and the CPU extensions it leaves unused (event 2004).</summary>
    internal static void Log(Microsoft.Extensions.Logging.ILogger logger)
    {
        var info = SystemInfo;
        var unused = UnusedExtensions(info, CpuFlags());
        LogBuild(logger, LibraryPath ?? "unknown", info, unused.Count == 0 ? "none" : string.Join(", ", unused));
    }

    [Microsoft.Extensions.Logging.LoggerMessage(EventId = 2004, Level = Microsoft.Extensions.Logging.LogLevel.Information,
        Message = "llama.cpp build {Library}: {SystemInfo}; this CPU's extensions it does not use: {Unused}")]
    private static partial void LogBuild(Microsoft.Extensions.Logging.ILogger logger, string library, string systemInfo, string unused);

    [GeneratedRegex(@"\b([A-Z][A-Z0-9_]*) = (\d+)")]
    private static partial Regex FeatureRegex();
}
