using System.Buffers;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Threading.Channels;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// The <c>n</c> choices of one request submitted together to a model's batcher. If any choice is refused at
/// submission, the ones already queued are cancelled so that nothing runs for a request that failed.
/// </summary>
internal sealed class GenerationRun : IDisposable
{
    private readonly CancellationTokenSource _cancel;
    private readonly GenerationStream[] _streams;

    private GenerationRun(CancellationTokenSource cancel, GenerationStream[] streams)
    {
        _cancel = cancel;
        _streams = streams;
    }

    public static GenerationRun Start(ContinuousBatcher batcher, IReadOnlyList<GenerationRequest> choices, CancellationToken aborted)
    {
        var cancel = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        var streams = new GenerationStream[choices.Count];
        try
        {
            for (var i = 0; i < choices.Count; i++)
            {
                streams[i] = batcher.Submit(choices[i], cancel.Token);
            }
        }
        catch
        {
            cancel.Cancel();
            cancel.Dispose();
            throw;
        }

        return new GenerationRun(cancel, streams);
    }

    public async Task<(string Text, GenerationResult Result)[]> CollectAsync() =>
        await Task.WhenAll(_streams.Select(s => s.CollectAsync()));

    /// <summary>Updates of all choices as they come, tagged with the choice index.</summary>
    public async IAsyncEnumerable<(int Index, GenerationUpdate Update)> StreamAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (_streams.Length == 1)
        {
            await foreach (var update in _streams[0].WithCancellation(cancellationToken))
            {
                yield return (0, update);
            }

            yield break;
        }

        var merged = Channel.CreateUnbounded<(int, GenerationUpdate)>();
        var pumps = _streams.Select(async (stream, index) =>
        {
            await foreach (var update in stream.WithCancellation(cancellationToken))
            {
                merged.Writer.TryWrite((index, update));
            }
        }).ToArray();
        _ = Task.WhenAll(pumps).ContinueWith(t => merged.Writer.TryComplete(t.Exception?.InnerException), TaskScheduler.Default);
        await foreach (var item in merged.Reader.ReadAllAsync(cancellationToken))
        {
            yield return item;
        }
    }

    public void Dispose()
    {
        _cancel.Cancel();
        _cancel.Dispose();
    }

    public static string NewId(string prefix) => prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));

    public static string? FinishReasonOf(FinishReason reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        _ => null,
    };
}

/// <summary>Server-sent events in the form OpenAI streams them: <c>data: {json}</c> lines and a final <c>data: [DONE]</c>.</summary>
internal static class ServerSentEvents
{
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    public static void Start(HttpResponse response)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
    }

    public static async Task WriteAsync<T>(HttpResponse response, T payload, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        buffer.Write(DataPrefix);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            JsonSerializer.Serialize(writer, payload, OpenAIJson.Options);
        }

        buffer.Write(EventEnd);
        await response.Body.WriteAsync(buffer.WrittenMemory, cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    public static async Task WriteDoneAsync(HttpResponse response, CancellationToken cancellationToken)
    {
        await response.Body.WriteAsync(Done, cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }
}
