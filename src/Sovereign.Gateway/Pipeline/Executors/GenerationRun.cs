using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Threading.Channels;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.Pipeline.Executors;

/// <summary>
/// The choices of one request submitted together to a model's batcher. If any choice is refused at submission, the
/// ones already queued are cancelled so that nothing runs for a request that failed. Every choice's final
/// <see cref="GenerationResult"/> is kept as it is seen, and <see cref="FinalResultsAsync"/> obtains the missing ones
/// from the engine after an abort, so what was generated is always known.
/// </summary>
internal sealed class GenerationRun : IDisposable
{
    private readonly CancellationTokenSource _cancel;
    private readonly GenerationStream[] _streams;
    private readonly GenerationResult?[] _results;
    private readonly Sovereign.Languages.LetterSample? _delivered;
    private Task? _pumps;
    private bool _streamed;

    private GenerationRun(CancellationTokenSource cancel, GenerationStream[] streams, Sovereign.Languages.LetterSample? delivered)
    {
        _cancel = cancel;
        _streams = streams;
        _delivered = delivered;
        _results = new GenerationResult?[streams.Length];
    }

    /// <summary>Choices in the run.</summary>
    public int Count => _streams.Length;

    /// <summary>
    /// Submits the choices. <paramref name="delivered"/>, when given, gathers the text handed to the endpoint (what the
    /// client is sent), choice by choice: what is generated after the client left is not in it.
    /// </summary>
    public static GenerationRun Start(ContinuousBatcher batcher, IReadOnlyList<GenerationRequest> choices, CancellationToken aborted, Sovereign.Languages.LetterSample? delivered = null)
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

        return new GenerationRun(cancel, streams, delivered);
    }

    /// <summary>Reads every choice to its end.</summary>
    public async Task<(string Text, GenerationResult Result, IReadOnlyList<Sovereign.Inference.Sampling.TokenLogprob>? Logprobs, IReadOnlyList<Sovereign.Inference.Sampling.TokenLogprob>? PromptLogprobs)[]> CollectAsync()
    {
        var collected = await Task.WhenAll(_streams.Select(s => s.CollectAllAsync()));
        for (var i = 0; i < collected.Length; i++)
        {
            _results[i] = collected[i].Result;
            _delivered?.Append(i, collected[i].Text);
        }

        return collected;
    }

    /// <summary>Updates of all choices as they come, tagged with the choice index.</summary>
    public async IAsyncEnumerable<(int Index, GenerationUpdate Update)> StreamAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        _streamed = true;
        if (_streams.Length == 1)
        {
            await foreach (var update in _streams[0].WithCancellation(cancellationToken))
            {
                _results[0] = update.Result ?? _results[0];
                _delivered?.Append(0, update.Text);
                yield return (0, update);
            }

            yield break;
        }

        var merged = Channel.CreateUnbounded<(int, GenerationUpdate)>();
        var pumps = _streams.Select(async (stream, index) =>
        {
            await foreach (var update in stream.WithCancellation(cancellationToken))
            {
                _results[index] = update.Result ?? _results[index];
                merged.Writer.TryWrite((index, update));
            }
        }).ToArray();
        _pumps = Task.WhenAll(pumps);
        _ = _pumps.ContinueWith(t => merged.Writer.TryComplete(t.Exception?.InnerException), TaskScheduler.Default);
        await foreach (var item in merged.Reader.ReadAllAsync(cancellationToken))
        {
            _delivered?.Append(item.Item1, item.Item2.Text);
            yield return item;
        }
    }

    /// <summary>
    /// Every choice's result. Choices whose end was not read (the client left, the writer failed) are cancelled
    /// and their results read from the engine, which reports what each generated up to its cancellation.
    /// </summary>
    public async Task<IReadOnlyList<GenerationResult>> FinalResultsAsync()
    {
        if (_results.All(r => r is not null))
        {
            return _results!;
        }

        _cancel.Cancel();
        if (_pumps is { } pumps)
        {
            // Channels have one reader each: let the pumps stop before reading what they left.
            await pumps.ContinueWith(static _ => { }, TaskScheduler.Default);
        }

        var final = new List<GenerationResult>(_results.Length);
        for (var i = 0; i < _streams.Length; i++)
        {
            if (_results[i] is null)
            {
                try
                {
                    await foreach (var update in _streams[i])
                    {
                        _results[i] = update.Result ?? _results[i];
                    }
                }
                catch (Exception ex) when (_streamed && PartialOf(ex) is { CompletionTokens: > 0 } partial)
                {
                    // The model was unloaded, the server stopped or a decode step failed mid-stream: what the choice
                    // generated was streamed to the client as it came, so it is billed (a choice whose tokens were
                    // never sent is not).
                    _results[i] = partial;
                }
                catch (Exception ex) when (ex is EngineStoppedException or EngineDecodeFailedException or OperationCanceledException)
                {
                    // The engine stopped under it before it streamed anything: no result to bill beyond what the other
                    // choices report.
                }
            }

            if (_results[i] is { } result)
            {
                final.Add(result);
            }
        }

        return final;
    }

    private static GenerationResult? PartialOf(Exception error) => error switch
    {
        EngineStoppedException stopped => stopped.Partial,
        EngineDecodeFailedException failed => failed.Partial,
        _ => null,
    };

    /// <summary>
    /// Prompt tokens reused from the prefix cache across the run, with choices numbered prompt * n + sample: per
    /// prompt the fewest its choices reused (a choice without a result reused none).
    /// </summary>
    public int CachedPromptTokens(int choicesPerPrompt)
    {
        var n = Math.Max(1, choicesPerPrompt);
        var total = 0;
        for (var start = 0; start < _results.Length; start += n)
        {
            var fewest = int.MaxValue;
            for (var i = start; i < Math.Min(start + n, _results.Length); i++)
            {
                fewest = Math.Min(fewest, _results[i]?.CachedPromptTokens ?? 0);
            }

            total += fewest;
        }

        return total;
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
