using System.Diagnostics;

namespace Sovereign.Benchmarks.Inference;

/// <summary>One request's timings. Times are from the moment the run started (all requests start together).</summary>
/// <param name="TimeToFirstToken">Until the first token (direct) or the first non-empty text chunk (engine, HTTP); null when not observed (non-streaming).</param>
/// <param name="DecodeTime">From the first token to the last; null when not observed.</param>
/// <param name="Tokens">Completion tokens actually generated (end-of-generation token included, as usage counts it).</param>
internal readonly record struct RequestSample(TimeSpan? TimeToFirstToken, TimeSpan? DecodeTime, int Tokens)
{
    /// <summary>Steady decode speed of this request: tokens after the first, over the time after the first.</summary>
    public double? DecodeTokensPerSecond => DecodeTime is { } d && d > TimeSpan.Zero && Tokens > 1 ? (Tokens - 1) / d.TotalSeconds : null;
}

/// <summary>One run of N concurrent requests.</summary>
internal sealed record RunSample(TimeSpan Wall, IReadOnlyList<RequestSample> Requests)
{
    /// <summary>CPU time the whole process used during the run (all threads: decode, engine, server and client).</summary>
    public TimeSpan Cpu { get; init; }

    public int Tokens => Requests.Sum(r => r.Tokens);

    /// <summary>Process CPU time per generated token, in microseconds. Less sensitive than wall time to other work on the machine.</summary>
    public double CpuMicrosecondsPerToken => Cpu.TotalMicroseconds / Tokens;

    /// <summary>Aggregate throughput: all completion tokens over the wall time of the whole run (prefill included).</summary>
    public double TokensPerSecond => Tokens / Wall.TotalSeconds;
}

/// <summary>The three ways a model is driven: the engine's ceiling, the engine without HTTP, and the real server.</summary>
internal enum Route
{
    Direct,
    Engine,
    Http,
}

/// <summary>Something that can run N identical greedy requests at once.</summary>
internal interface IRunner
{
    Route Route { get; }

    /// <param name="stream">Observe tokens as they come (TTFT, decode speed); otherwise only totals (HTTP non-streaming).</param>
    Task<RunSample> RunAsync(int[] prompt, int concurrency, int maxTokens, bool stream, CancellationToken cancellationToken);
}

internal static class Clock
{
    public static TimeSpan Since(long start) => Stopwatch.GetElapsedTime(start);
}

internal static class Stats
{
    public static double Median(IEnumerable<double> values) => Percentile(values, 50);

    /// <summary>Linear interpolation between closest ranks (numpy's default).</summary>
    public static double Percentile(IEnumerable<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        var rank = p / 100 * (sorted.Length - 1);
        var low = (int)Math.Floor(rank);
        var high = (int)Math.Ceiling(rank);
        return sorted[low] + ((sorted[high] - sorted[low]) * (rank - low));
    }
}
