using Microsoft.Extensions.Logging;
using Sovereign.Inference.Engine;

namespace Sovereign.Inference.Tests.Engine;

/// <summary>Which llama.cpp build is loaded, and which of the CPU's extensions it leaves unused.</summary>
public sealed class NativeBuildTests
{
    // llama_print_system_info of LLamaSharp 0.30.0's linux-x64 avx512 build, and the flags of an AMD EPYC with AVX-512 VNNI.
    private const string Avx512Build = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |";

    private static readonly HashSet<string> EpycFlags =
    [
        "fpu", "sse", "sse2", "ssse3", "fma", "sse4_1", "sse4_2", "avx", "f16c", "bmi2", "avx2", "avx512f", "avx512dq",
        "avx512ifma", "avx512cd", "avx512bw", "avx512vl", "avx512_bf16", "avx512vbmi", "avx512_vbmi2", "avx512_vnni", "avx_vnni",
    ];

    [Fact]
    public void An_avx512_build_on_a_vnni_cpu_leaves_vnni_vbmi_and_bf16_unused()
    {
        Assert.Equal(["AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AVX_VNNI"], NativeBuild.UnusedExtensions(Avx512Build, EpycFlags));
    }

    [Fact]
    public void A_feature_reported_as_0_counts_as_unused_and_one_the_cpu_lacks_never_does()
    {
        var info = "CPU : AVX = 1 | AVX2 = 0 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 0 |";
        Assert.Equal(["AVX2"], NativeBuild.UnusedExtensions(info, new HashSet<string> { "avx", "avx2", "avx512f", "avx512_vnni" }));
        Assert.Empty(NativeBuild.UnusedExtensions(info, new HashSet<string>()));
    }

    [Fact]
    public void The_loaded_build_describes_itself_and_uses_avx2_exactly_where_the_cpu_has_it()
    {
        using var model = LlamaModel.Load(new ModelOptions { Id = "stories", Path = TestModels.Stories260K, ContextLength = 256, Threads = 1 });
        var info = NativeBuild.SystemInfo;
        Assert.Contains("CPU", info, StringComparison.Ordinal);
        var flags = NativeBuild.CpuFlags();
        Assert.NotEmpty(flags);

        // LLamaSharp picks its avx2 or avx512 build exactly when the CPU has AVX2: then AVX2 is never left unused.
        Assert.Equal(flags.Contains("avx2"), info.Contains("AVX2 = 1", StringComparison.Ordinal));
        Assert.DoesNotContain("AVX2", NativeBuild.UnusedExtensions(info, flags));
        Assert.Contains("libggml-cpu", NativeBuild.LibraryPath ?? string.Empty, StringComparison.Ordinal);

        var logger = new ListLogger();
        NativeBuild.Log(logger);
        var (level, id, message) = Assert.Single(logger.Entries);
        Assert.Equal((LogLevel.Information, 2004), (level, id.Id));
        Assert.Contains(NativeBuild.LibraryPath!, message, StringComparison.Ordinal);
        Assert.Contains(info, message, StringComparison.Ordinal);
        var unused = NativeBuild.UnusedExtensions(info, flags);
        Assert.EndsWith(unused.Count == 0 ? "none" : string.Join(", ", unused), message, StringComparison.Ordinal);
    }

    private sealed class ListLogger : ILogger
    {
        public List<(LogLevel Level, EventId Id, string Message)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Add((logLevel, eventId, formatter(state, exception)));
    }
}
