using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;

namespace Sovereign.Gateway.Observability;

/// <summary>
/// When each stage of a request up to its first content happened, for the <c>cluster-streaming --marks</c> benchmark's
/// breakdown of the relayed first token (issue 9): off (one static read the JIT folds away) unless the environment
/// variable <see cref="Variable"/> names a file, to which each finished request's marks are appended once a second as
/// <c>id stage timestamp</c> lines. The id is the relay's <c>x-sovereign-relay-of</c> when the request has one (a node's
/// relayed work, joined with the gateway's), else the response's <c>x-sovereign-audit-id</c>; the timestamp is
/// <see cref="Stopwatch.GetTimestamp"/> (CLOCK_MONOTONIC on Linux: comparable across the processes of one machine).
/// </summary>
/// <remarks>Names no tenant, key or content: request ids, stage names and times only. Not for production use.</remarks>
internal static class FirstTokenMarks
{
    /// <summary>The environment variable naming the file the marks are appended to.</summary>
    public const string Variable = "SOVEREIGN_FIRST_TOKEN_MARKS";

    private static readonly string? s_path = Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } path ? path : null;
    private static readonly ConcurrentQueue<string> s_lines = new();
    private static readonly object s_key = new();
    private static readonly Timer? s_flush = s_path is null ? null : StartFlushing();

    /// <summary>Whether marks are kept in this process.</summary>
    public static readonly bool On = s_path is not null;

    /// <summary>Notes that the request reached <paramref name="stage"/> now.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Mark(HttpContext context, string stage)
    {
        if (On)
        {
            Record(context, stage);
        }
    }

    private static void Record(HttpContext context, string stage) => Add(MarksOf(context), stage, Stopwatch.GetTimestamp());

    /// <summary>Notes <paramref name="stage"/> when <paramref name="task"/> completes (e.g. the decision's entry durable).</summary>
    public static void MarkWhenDone(HttpContext context, Task task, string stage)
    {
        if (On)
        {
            // The request's list is taken now, while the exchange is live (a context is reused once its request ended);
            // a stage reached after the request's marks were written is not written.
            var marks = MarksOf(context);
            _ = task.ContinueWith(_ => Add(marks, stage, Stopwatch.GetTimestamp()), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private static List<(string Stage, long At)> MarksOf(HttpContext context)
    {
        if (context.Items.TryGetValue(s_key, out var held) && held is List<(string Stage, long At)> known)
        {
            return known;
        }

        var marks = new List<(string Stage, long At)>();
        context.Items[s_key] = marks;
        context.Response.OnCompleted(() =>
        {
            // A relay's id only as a node reads it (the gateway's request id); anything else is not written.
            var id = context.Request.Headers[ControlPlane.ClusterRelay.RelayOfHeader] is [{ } relayOf] && ControlPlane.ResourceIds.IsValid(relayOf, ControlPlane.ResourceKind.Other) ? relayOf
                : context.Response.Headers[Routing.InferenceRouter.AuditIdHeader] is [{ } audit] && ControlPlane.ResourceIds.IsValid(audit, ControlPlane.ResourceKind.Other) ? audit : null;
            if (id is not null)
            {
                lock (marks)
                {
                    foreach (var (name, at) in marks)
                    {
                        s_lines.Enqueue(string.Create(CultureInfo.InvariantCulture, $"{id} {name} {at}"));
                    }

                    marks.Clear();
                }
            }

            return Task.CompletedTask;
        });
        return marks;
    }

    private static void Add(List<(string Stage, long At)> marks, string stage, long at)
    {
        lock (marks)
        {
            // The first time a stage is reached counts (a relay's send is reported again when its executor returns).
            if (!marks.Exists(m => m.Stage == stage))
            {
                marks.Add((stage, at));
            }
        }
    }

    private static Timer StartFlushing()
    {
        // And what is left when the process stops (SIGTERM): the marks of its last requests.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Flush();
        return new Timer(_ => Flush(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    private static void Flush()
    {
        if (s_lines.IsEmpty || s_path is null)
        {
            return;
        }

        // The timer's and the process exit's flushes never interleave their lines.
        lock (s_lines)
        {
            try
            {
                using var writer = File.AppendText(s_path);
                while (s_lines.TryDequeue(out var line))
                {
                    writer.WriteLine(line);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A benchmark's probe never stops the server: what could not be written is dropped.
                s_lines.Clear();
            }
        }

        GC.KeepAlive(s_flush);
    }
}
