using System.Globalization;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Reads what a fronted engine says about its KV cache in its Prometheus metrics (text exposition format), so a
/// node's load report carries the engine's real KV use: vLLM's <c>vllm:kv_cache_usage_perc</c> (before v0.10
/// <c>vllm:gpu_cache_usage_perc</c>; both a fraction despite the name), llama-server's
/// <c>llamacpp:kv_cache_usage_ratio</c> (with <c>--metrics</c>) and SGLang's <c>sglang:token_usage</c>.
/// </summary>
internal static class EnginePrometheusMetrics
{
    /// <summary>Most bytes of an engine's metrics page read (a vLLM page is tens of KiB).</summary>
    public const int MaxBytes = 4 * 1024 * 1024;

    private static readonly string[] KvCacheMetrics = ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "llamacpp:kv_cache_usage_ratio", "sglang:token_usage"];

    /// <summary>
    /// Whether the page is vLLM's (a <c>vllm:</c> sample): vLLM puts the usage so far on every event of a stream when asked
    /// (<c>stream_options.continuous_usage_stats</c>), so a stream that ends early is still billed its prompt.
    /// </summary>
    public static bool IsVllm(string page)
    {
        ArgumentNullException.ThrowIfNull(page);
        foreach (var range in page.AsSpan().Split('\n'))
        {
            if (page.AsSpan()[range].TrimStart().StartsWith("vllm:", StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The KV-cache use (0..1) the page states, the largest over its series (one per model or rank); null when it states none.</summary>
    public static double? KvCacheUse(string page)
    {
        ArgumentNullException.ThrowIfNull(page);
        double? use = null;
        foreach (var range in page.AsSpan().Split('\n'))
        {
            var line = page.AsSpan()[range].Trim();
            if (line.IsEmpty || line[0] == '#' || !IsKvCacheSample(line, out var valueText))
            {
                continue;
            }

            if (double.TryParse(valueText, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value))
            {
                value = Math.Clamp(value, 0, 1);
                use = use is { } known ? Math.Max(known, value) : value;
            }
        }

        return use;
    }

    /// <summary>Reads at most <see cref="MaxBytes"/> of a metrics page; null when it is longer.</summary>
    public static async Task<string?> ReadPageAsync(HttpContent content, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        await using var stream = await content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[64 * 1024];
        using var page = new MemoryStream();
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            if (page.Length + read > MaxBytes)
            {
                return null;
            }

            page.Write(buffer, 0, read);
        }

        return System.Text.Encoding.UTF8.GetString(page.GetBuffer(), 0, (int)page.Length);
    }

    // A sample line is NAME[{labels}] VALUE [TIMESTAMP].
    private static bool IsKvCacheSample(ReadOnlySpan<char> line, out ReadOnlySpan<char> value)
    {
        value = default;
        var nameEnd = line.IndexOfAny('{', ' ');
        if (nameEnd <= 0)
        {
            return false;
        }

        var name = line[..nameEnd];
        var known = false;
        foreach (var metric in KvCacheMetrics)
        {
            known |= name.SequenceEqual(metric);
        }

        if (!known)
        {
            return false;
        }

        var rest = line[nameEnd..];
        if (rest[0] == '{')
        {
            var close = rest.LastIndexOf('}');
            if (close < 0)
            {
                return false;
            }

            rest = rest[(close + 1)..];
        }

        rest = rest.TrimStart();
        var space = rest.IndexOf(' ');
        value = space < 0 ? rest : rest[..space];
        return !value.IsEmpty;
    }
}
