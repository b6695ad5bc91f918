using System.Diagnostics;
using System.Text;
using System.Threading.Channels;
using LLama;
using LLama.Common;
using LLama.Native;
using Microsoft.Extensions.Logging;
using Sovereign.Inference.Sampling;
using Sovereign.Inference.Scheduling;

namespace Sovereign.Inference.Engine;

/// <summary>
/// Continuous batching for one model on one llama.cpp context (<see cref="BatchDecoder"/>). One loop, on a thread of
/// its own, owns the context and runs each step synchronously: it admits waiting requests while sequence slots and KV
/// space allow, adds one token per running sequence plus chunks of pending prompts (up to the batch size), decodes
/// them together, then samples each sequence with its own pipeline. Requests join and leave between steps. Finished
/// sequences stay in a <see cref="PrefixCache"/>: a new request forks the longest cached prefix of its prompt and
/// prefills only the rest. Grammar-constrained sequences are sampled off the loop (<see cref="ConstrainedSampler"/>):
/// one whose token is not ready sits out the next steps while the others decode.
/// </summary>
/// <remarks>Prompts and outputs are never logged.</remarks>
public sealed partial class ContinuousBatcher : IAsyncDisposable
{
    private readonly LlamaModel _model;
    private readonly EngineMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    // Synchronous continuations: a submitter (or a cancellation) signals the loop's blocked thread directly, not
    // through a thread-pool hop first; the only waiters are the loop's own wait and the test hook's.
    private readonly Channel<Sequence> _incoming = Channel.CreateUnbounded<Sequence>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = true });
    private readonly FairQueue<Sequence> _waiting = new(int.MaxValue, int.MaxValue);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _waitingByTenant = new(StringComparer.Ordinal);
    private readonly List<Sequence> _running = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _loopDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly int _parallel;
    private readonly int _maxQueue;
    private readonly PrefixCache _prefixCache;
    private readonly ConstrainedSampler _constrained;
    private readonly List<ConstrainedSampler.Job> _sampled = [];
    private BatchDecoder _executor;
    private long _steps;
    private TimeSpan _lastDecode;
    private long _arrivals;
    private int _waitingCount;
    private int _runningCount;
    private int _kvReserved;
    private int _kvUsed;

    /// <summary>Creates the executor for a loaded chat model and starts the decode loop.</summary>
    public ContinuousBatcher(LlamaModel model, EngineMetrics metrics, ILogger<ContinuousBatcher> logger, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _metrics = metrics;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _parallel = Math.Max(1, model.Options.Parallel);
        _maxQueue = Math.Max(0, model.Options.MaxQueue);
        _prefixCache = new PrefixCache(model.Resolved.PrefixCacheSequences, model.Resolved.PrefixCacheHostBytes);
        _executor = CreateExecutor();
        _constrained = new ConstrainedSampler(model.Weights.NativeHandle, Wake);
        _metrics.Register(this);
        // A thread of its own: each step decodes, samples and hands out tokens without a thread-pool hop, and the
        // server's HTTP and runtime work does not queue behind it (or it behind them) in the pool.
        new Thread(Run) { IsBackground = true, Name = "sovereign-decode" }.Start();
    }

    /// <summary>The model id.</summary>
    public string ModelId => _model.Info.Id;

    /// <summary>The model being served.</summary>
    public LlamaModel Model => _model;

    /// <summary>Requests decoding now.</summary>
    public int RunningCount => Volatile.Read(ref _runningCount);

    /// <summary>Requests waiting for a slot.</summary>
    public int WaitingCount => Volatile.Read(ref _waitingCount);

    /// <summary>Fraction of KV cells holding tokens of running requests.</summary>
    /// <remarks>As in vLLM, cells held only by the prefix cache count as free: they are given up whenever a request needs them.</remarks>
    public double KvCacheUsage => (double)Volatile.Read(ref _kvUsed) / _model.Resolved.KvCacheTokens;

    /// <summary>KV cells held by the prefix cache for reuse (an upper bound: cells shared between entries count per entry).</summary>
    public int PrefixCacheCells => _prefixCache.Cells;

    /// <summary>Host memory, in bytes, holding prefix-cache entries parked out of the KV cache while other requests run.</summary>
    public long PrefixCacheParkedBytes => _prefixCache.ParkedBytes;

    /// <summary>
    /// Validates and queues a request. Throws <see cref="InvalidGenerationRequestException"/> when it can never run
    /// (too long for the context) and <see cref="EngineOverloadedException"/> when the wait queue is full; both
    /// before any work is done. Cancelling <paramref name="cancellationToken"/> frees the sequence at the next step.
    /// </summary>
    public GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (_stopping.IsCancellationRequested)
        {
            throw new EngineStoppedException(ModelId);
        }

        var prompt = request.PromptTokens;
        var maxTokens = ResolveMaxTokens(prompt.Count, request.MaxTokens);
        var need = prompt.Count + maxTokens;
        ValidatePrompt(prompt);
        ValidateSampling(request.Sampling);
        if (request.PromptLogprobs is < 0 or > Logprobs.MaxTop || request.TopLogprobs is < 0 or > Logprobs.MaxTop)
        {
            throw new InvalidGenerationRequestException($"logprobs must be between 0 and {Logprobs.MaxTop}.", "logprobs");
        }

        // Requests that will be admitted at once (free slots) do not count against the queue bound.
        if (Interlocked.Increment(ref _waitingCount) > _maxQueue + Math.Max(0, _parallel - RunningCount))
        {
            Interlocked.Decrement(ref _waitingCount);
            throw new EngineOverloadedException(ModelId, _maxQueue);
        }

        // One tenant may hold at most half of the queue (at least one place), so a flood cannot fill it for others.
        var tenantLimit = Math.Max(1, _maxQueue / 2) + _parallel;
        if (_waitingByTenant.AddOrUpdate(request.Tenant, 1, static (_, n) => n + 1) > tenantLimit)
        {
            _waitingByTenant.AddOrUpdate(request.Tenant, 0, static (_, n) => n - 1);
            Interlocked.Decrement(ref _waitingCount);
            throw new TenantQueueFullException(ModelId, request.Tenant, tenantLimit);
        }

        var output = Channel.CreateUnbounded<GenerationUpdate>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var sequence = new Sequence(request, maxTokens, need, output.Writer, cancellationToken, _time.GetTimestamp(), Interlocked.Increment(ref _arrivals));
        if (cancellationToken.CanBeCanceled)
        {
            // Wake the loop so a client that leaves frees its slot at the next step, not when the step would come anyway.
            sequence.CancellationRegistration = cancellationToken.Register(static s => ((ContinuousBatcher)s!).Wake(), this);
        }

        if (!_incoming.Writer.TryWrite(sequence))
        {
            Interlocked.Decrement(ref _waitingCount);
            _waitingByTenant.AddOrUpdate(request.Tenant, 0, static (_, n) => n - 1);
            throw new EngineStoppedException(ModelId);
        }

        return new GenerationStream(output.Reader, sequence.Written, prompt.Count, maxTokens);
    }

    /// <summary>
    /// Refuses a token id outside the vocabulary before it is queued: llama.cpp would refuse the whole batch holding it,
    /// failing every sequence of that step, not this request alone. The HTTP endpoints check ids too; this guards every
    /// caller of the engine.
    /// </summary>
    private void ValidatePrompt(IReadOnlyList<int> prompt)
    {
        var vocabulary = _model.Info.VocabularySize;
        for (var i = 0; i < prompt.Count; i++)
        {
            if ((uint)prompt[i] >= (uint)vocabulary)
            {
                throw new InvalidGenerationRequestException(
                    $"Prompt token ids must be from 0 to {vocabulary - 1}; position {i} holds {prompt[i]}.", "prompt");
            }
        }
    }

    /// <summary>Refuses sampling settings this model cannot apply, before they reach the decode loop.</summary>
    private void ValidateSampling(SamplingOptions sampling)
    {
        var vocabulary = _model.Info.VocabularySize;
        foreach (var (token, bias) in sampling.LogitBias)
        {
            if ((uint)token >= (uint)vocabulary || !float.IsFinite(bias))
            {
                throw new InvalidGenerationRequestException(
                    $"logit_bias needs token ids from 0 to {vocabulary - 1} with finite biases; got token {token}, bias {bias}.", "logit_bias");
            }
        }
    }

    /// <summary>
    /// The output limit a request of <paramref name="promptTokens"/> tokens gets on this model (the whole remaining
    /// context when <paramref name="maxTokens"/> is null; 0 when asked for: the prompt is evaluated, nothing
    /// generated), or <see cref="InvalidGenerationRequestException"/> when it can never run here. <see cref="Submit"/>
    /// applies the same rule; callers use it to refuse before any work.
    /// </summary>
    /// <param name="promptTokens">Tokens in the prompt.</param>
    /// <param name="maxTokens">The output limit asked for; null: the rest of the context.</param>
    /// <param name="promptParameter">The request field a refusal names for the prompt (<c>messages</c>, <c>prompt</c>, <c>input</c>).</param>
    /// <param name="maxTokensParameter">The request field a refusal names for the output limit (<c>max_tokens</c>, <c>max_output_tokens</c>, ...).</param>
    public int ResolveMaxTokens(int promptTokens, int? maxTokens, string promptParameter = "messages", string maxTokensParameter = "max_tokens")
    {
        var context = _model.Resolved.ContextLength;
        if (promptTokens == 0)
        {
            throw new InvalidGenerationRequestException("The prompt is empty.", promptParameter);
        }

        if (promptTokens >= context)
        {
            throw new InvalidGenerationRequestException(
                $"This model's maximum context length is {context} tokens, but the prompt ('{promptParameter}') has {promptTokens} tokens.",
                promptParameter, "context_length_exceeded");
        }

        var resolved = maxTokens ?? context - promptTokens;
        if (resolved < 1 && maxTokens != 0)
        {
            throw new InvalidGenerationRequestException($"{maxTokensParameter} must be at least 1.", maxTokensParameter);
        }

        if (promptTokens + resolved > context)
        {
            throw new InvalidGenerationRequestException(
                $"This model's maximum context length is {context} tokens. However, you requested {promptTokens + resolved} tokens " +
                $"({promptTokens} in the prompt, {resolved} for the completion). Reduce '{promptParameter}' or '{maxTokensParameter}'.",
                maxTokensParameter, "context_length_exceeded");
        }

        if (promptTokens + resolved > _model.Resolved.KvCacheTokens)
        {
            throw new InvalidGenerationRequestException(
                $"The request needs {promptTokens + resolved} KV-cache cells but this model is served with {_model.Resolved.KvCacheTokens}.",
                maxTokensParameter, "context_length_exceeded");
        }

        return resolved;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        _stopping.Cancel();
        _incoming.Writer.TryComplete();
        await _loopDone.Task;

        // Native grammar code cannot be interrupted: a stop waits for it a bounded time, then leaves it to end on its
        // own (the sampler's thread keeps the weights alive until then; the context is not its to use).
        if (!await Task.Run(() => _constrained.Stop(SamplingStopWait)))
        {
            LogSamplingOutlivedStop(ModelId, SamplingStopWait.TotalSeconds);
        }

        _metrics.Unregister(this);
        _prefixCache.Dispose();
        _executor.Dispose();
        _stopping.Dispose();
    }

    private void Wake() => _incoming.Writer.TryWrite(Sequence.WakeUp);

    private BatchDecoder CreateExecutor()
    {
        var resolved = _model.Resolved;
        return new BatchDecoder(_model.Weights, new ModelParams(_model.Info.Path)
        {
            ContextSize = (uint)resolved.KvCacheTokens,
            SeqMax = (uint)(_parallel + _prefixCache.Capacity),
            BatchSize = (uint)resolved.BatchSize,
            UBatchSize = (uint)resolved.BatchSize,
            Threads = resolved.Threads,
            BatchThreads = resolved.Threads,
            GpuLayerCount = _model.Options.GpuLayers,
            KVUnified = true,
        });
    }

    private void Run()
    {
        var stop = _stopping.Token;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                DrainIncoming();
                TakeSampled();
                ReapCancelled();
                Admit();
                if (!AnyReady())
                {
                    // Idle, or every running sequence waits for its constrained sampling: block this thread (it is
                    // ours, not the pool's) until a request, a sampled token or a wake-up arrives.
                    if (!WaitForIncoming(stop))
                    {
                        break;
                    }

                    continue;
                }

                Step();
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            // Not rethrown: an exception escaping a thread of our own would end the process.
            LogLoopFailed(ModelId, ex);
            _loopDone.TrySetException(ex);
        }
        finally
        {
            var stopped = new EngineStoppedException(ModelId);
            foreach (var sequence in _running)
            {
                ReleasePipeline(sequence);
                // A running sequence reports what it generated, which its stream may already have delivered.
                sequence.Fail(new EngineStoppedException(ModelId, ResultOf(sequence, FinishReason.Cancelled)));
            }

            foreach (var sequence in _waiting.ToArray())
            {
                sequence.Fail(stopped);
            }

            while (_incoming.Reader.TryRead(out var sequence))
            {
                sequence.Fail(stopped);
            }

            _loopDone.TrySetResult();
        }
    }

    private bool WaitForIncoming(CancellationToken stop)
    {
        var wait = _incoming.Reader.WaitToReadAsync(stop);
        return wait.IsCompleted ? wait.Result : wait.AsTask().GetAwaiter().GetResult();
    }

    private void DrainIncoming()
    {
        while (_incoming.Reader.TryRead(out var sequence))
        {
            if (!ReferenceEquals(sequence, Sequence.WakeUp))
            {
                var request = sequence.Request;
                _waiting.TryEnqueue(sequence, new FairQueueEntry(request.Tenant, Math.Clamp(request.Weight, 1, FairQueueEntry.MaxWeight), request.Priority, sequence.KvReservation));
            }
        }
    }

    private void ReapCancelled()
    {
        if (_waiting.Count > 0)
        {
            foreach (var sequence in _waiting.ToArray())
            {
                if (sequence.Cancellation.IsCancellationRequested)
                {
                    _waiting.Remove(sequence);
                    LeftQueue(sequence);
                    Complete(sequence, FinishReason.Cancelled);
                }
            }
        }

        for (var i = _running.Count - 1; i >= 0; i--)
        {
            if (_running[i].Cancellation.IsCancellationRequested)
            {
                Finish(_running[i], FinishReason.Cancelled);
            }
        }
    }

    /// <summary>Observes every admission, in order (tests assert fairness on it).</summary>
    internal Action<GenerationRequest>? OnAdmitted { get; set; }

    /// <summary>
    /// Admits waiting requests in weighted-fair order across tenants (interactive before batch) while a slot and
    /// their KV reservation fit.
    /// </summary>
    private void Admit()
    {
        var admitted = false;
        while (_running.Count < _parallel && _waiting.TryPeek(out var sequence))
        {
            var kvTotal = _model.Resolved.KvCacheTokens;
            if (_kvReserved + sequence.KvReservation > kvTotal)
            {
                // The fair head waits for space rather than being overtaken forever by smaller requests.
                break;
            }

            admitted = true;

            _waiting.TryDequeue(out _);
            LeftQueue(sequence);
            OnAdmitted?.Invoke(sequence.Request);
            _kvReserved += sequence.KvReservation;
            sequence.Conversation = StartConversation(sequence);

            // Cached cells give way to reservations: what is cached plus what is reserved never exceeds the cache.
            if (_kvReserved + _prefixCache.Cells > kvTotal)
            {
                _prefixCache.Park();
            }

            sequence.Pipeline = new RequestSamplingPipeline(
                sequence.Request.Sampling, _model.Resolved.ContextLength, sequence.Request.Grammar, sequence.Request.TopLogprobs, sequence.Request.LazyGrammar);
            if (sequence.Request.PromptLogprobs is not null)
            {
                // The first token is conditioned on nothing: no log-probability, no alternatives (as OpenAI and vLLM give null).
                sequence.PromptLogprobs = new List<TokenLogprob>(sequence.Request.PromptTokens.Count)
                {
                    new(Alternative(sequence.Request.PromptTokens[0], float.NaN, special: true), []),
                };
            }

            sequence.Decoder = new StreamingTokenDecoder(Encoding.UTF8, _model.Weights);
            sequence.StopMatcher = new StopSequenceMatcher(sequence.Request.Stop, sequence.Request.StopExemptFrom);
            var admittedAt = _time.GetTimestamp();
            sequence.AdmittedAt = admittedAt;
            _running.Add(sequence);
            Interlocked.Increment(ref _runningCount);
            _metrics.Admitted(ModelId, _time.GetElapsedTime(sequence.SubmittedAt, admittedAt));
        }

        // New work: the cached sequences leave the KV cache for host memory (llama-server's idle-slot caching), so
        // that the running requests' decode steps do not scan their cells.
        if (admitted)
        {
            _prefixCache.Park();
        }
    }

    /// <summary>Whose cached prompts a request may reuse (and who may reuse its own): its partition, else its tenant's.</summary>
    private static string CachePartitionOf(GenerationRequest request) => request.CachePartition ?? request.Tenant;

    /// <summary>
    /// A new sequence for an admitted request: a fork of the cached sequence sharing the longest prefix of its prompt,
    /// cut back to that prefix, or an empty one. A fork copies cell references (llama.cpp's seq_cp), not cells.
    /// </summary>
    private KvSequence StartConversation(Sequence sequence)
    {
        var prompt = sequence.Request.PromptTokens;
        if (sequence.Request.PromptLogprobs is not null || sequence.Request.PrefillAsScored)
        {
            // Cached cells carry no logits: a scored prompt is prefilled from its first token (as vLLM skips its prefix
            // cache for prompt logprobs). Its finished sequence still joins the cache for later requests.
            return _executor.Create();
        }

        var (source, reused) = _prefixCache.Match(CachePartitionOf(sequence.Request), prompt, _executor);
        if (source is null)
        {
            return _executor.Create();
        }

        var conversation = source.Fork();
        if (conversation.TokenCount > reused)
        {
            conversation.Rewind(conversation.TokenCount - reused);
        }

        // Only whole, cut-able KV is reused: a recurrent state cannot be cut back and a sliding-window cache may
        // have dropped early cells, which shows as positions other than exactly 0..reused-1. Then prefill it all.
        var context = _executor.Native;
        if (context.MemorySequenceMinPosition(conversation.Id).Value != 0
            || context.MemorySequenceMaxPosition(conversation.Id).Value != reused - 1)
        {
            conversation.Dispose();
            return _executor.Create();
        }

        sequence.Prefilled = reused;
        sequence.CachedTokens = reused;
        for (var i = 0; i < reused; i++)
        {
            sequence.KvHistory.Add(prompt[i]);
        }

        return conversation;
    }

    /// <summary>
    /// Waited for (blocking the loop's thread) before every decode step; tests use it to hold the loop at a known point.
    /// Its argument completes when the loop is woken (a new request or a cancellation), so a held loop can still reap
    /// cancelled sequences.
    /// </summary>
    internal Func<Task, ValueTask>? BeforeStep { get; set; }

    private long _scoredPromptPositions;

    /// <summary>Prompt positions scored (a log-softmax each) since the batcher started; tests count the work with it.</summary>
    internal long ScoredPromptPositions => Interlocked.Read(ref _scoredPromptPositions);

    /// <summary>Sees every decode's status and may replace it or throw; tests use it to make a step fail.</summary>
    internal Func<DecodeResult, DecodeResult>? AfterDecode { get; set; }

    private void LeftQueue(Sequence sequence)
    {
        Interlocked.Decrement(ref _waitingCount);
        _waitingByTenant.AddOrUpdate(sequence.Request.Tenant, 0, static (_, n) => n - 1);
    }

    private void Step()
    {
        if (BeforeStep is { } beforeStep)
        {
            beforeStep(_incoming.Reader.WaitToReadAsync().AsTask()).AsTask().GetAwaiter().GetResult();
            DrainIncoming();
            TakeSampled();
            ReapCancelled();
            if (!AnyReady())
            {
                return;
            }
        }

        AwaitSampling();

        var budget = _model.Resolved.BatchSize;
        var stepTokens = 0;
        var logitRows = PromptLogitRowsPerStep;

        // Sampled tokens join the batch only now, so that between steps no sequence has tokens queued in the
        // executor and a cancelled one can be disposed without its pending token landing in a reused sequence id.
        foreach (var sequence in _running)
        {
            sequence.StepTokens = 0;
            if (sequence.PendingToken is { } token)
            {
                sequence.Conversation!.Prompt(token);
                sequence.KvHistory.Add((int)token);
                sequence.PendingToken = null;
                sequence.StepTokens = 1;
                budget--;
                stepTokens++;
            }
        }

        foreach (var sequence in _running)
        {
            var remaining = sequence.Request.PromptTokens.Count - sequence.Prefilled;
            if (remaining == 0 || budget <= 0)
            {
                continue;
            }

            var chunk = Math.Min(remaining, budget);
            var scored = sequence.PromptLogprobs is not null;
            var allLogits = scored || sequence.Request.PrefillAsScored;
            if (allLogits)
            {
                // Every scored position keeps a row of logits in llama.cpp's output buffer, which keeps its largest size:
                // the rows per step are bounded, and a scored prompt waits for the next step when they are taken.
                chunk = Math.Min(chunk, logitRows);
                if (chunk == 0)
                {
                    continue;
                }

                logitRows -= chunk;
            }

            var tokens = new LLamaToken[chunk];
            for (var i = 0; i < chunk; i++)
            {
                tokens[i] = sequence.Request.PromptTokens[sequence.Prefilled + i];
                sequence.KvHistory.Add((int)tokens[i]);
            }

            var first = sequence.Conversation!.Prompt(tokens, allLogits: allLogits);
            if (scored)
            {
                sequence.ScoredChunk = (sequence.Prefilled, first, chunk);
            }

            sequence.Prefilled += chunk;
            sequence.StepTokens = chunk;
            budget -= chunk;
            stepTokens += chunk;
        }

        if (stepTokens == 0)
        {
            return;
        }

        var started = _time.GetTimestamp();
        DecodeResult status;
        try
        {
            status = _executor.Decode();
            status = AfterDecode?.Invoke(status) ?? status;
        }
        catch (Exception ex)
        {
            // A throwing decode is a failed step like an error status: it ended the loop, and with it the model.
            RecoverFromDecodeFailure(ex.GetType().Name, ex);
            return;
        }

        var elapsed = _time.GetElapsedTime(started);
        if (status != DecodeResult.Ok)
        {
            RecoverFromDecodeFailure(status.ToString(), null);
            return;
        }

        _lastDecode = elapsed;
        _steps++;

        _kvUsed += stepTokens;
        for (var i = 0; i < _running.Count; i++)
        {
            var sequence = _running[i];
            if (sequence.StepTokens == 0)
            {
                continue;
            }

            sequence.KvTokens += sequence.StepTokens;

            sequence.ComputeSeconds += elapsed.TotalSeconds * sequence.StepTokens / stepTokens;
            FinishReason? finish;
            try
            {
                if (sequence.ScoredChunk is { } scoredChunk)
                {
                    // The scoring is this request's own work on the loop's thread: billed to it as compute, like its share of the decode.
                    sequence.ScoredChunk = null;
                    var scoring = _time.GetTimestamp();
                    ScorePrompt(sequence, scoredChunk);
                    sequence.ComputeSeconds += _time.GetElapsedTime(scoring).TotalSeconds;
                }

                if (sequence.Prefilled < sequence.Request.PromptTokens.Count)
                {
                    continue;
                }

                if (sequence.Generated == 0)
                {
                    _metrics.PromptProcessed(ModelId, sequence.Request.PromptTokens.Count, sequence.CachedTokens);
                    if (sequence.PromptLogprobs is { } scores)
                    {
                        sequence.EmitPromptLogprobs(scores);
                        sequence.PromptLogprobs = null;
                    }
                }

                // max_tokens 0 (echo): the prompt is all there is to evaluate. A grammar's sampling goes to the
                // constrained sampler with a copy of the logits (the next decode overwrites the context's).
                finish = sequence.MaxTokens == 0 ? FinishReason.Length
                    : sequence.Pipeline!.IsConstrained && !ConstrainedSamplingInline ? SubmitConstrained(sequence)
                    : SampleNext(sequence);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // One request's sampler failing fails that request; the model's other requests carry on.
                LogSequenceFailed(ModelId, ex);
                Abandon(sequence, ex);
                i--;
                continue;
            }

            if (finish is { } reason)
            {
                Finish(sequence, reason);
                i--;
            }
        }
    }

    /// <summary>Samples one token; returns why the sequence ends, or null to keep going (the token is then queued).</summary>
    private FinishReason? SampleNext(Sequence sequence)
    {
        if (sequence.Pipeline!.IsConstrained && BeforeConstrainedSample is { } hold)
        {
            hold(sequence.Request).AsTask().GetAwaiter().GetResult();
        }
        else if (!sequence.Pipeline.IsConstrained && BeforeFreeSample is { } nudge)
        {
            nudge(sequence.Request, sequence.Generated, sequence.Conversation!.WritableLogits);
        }

        var token = sequence.Conversation!.Sample(sequence.Pipeline!);
        return Sampled(sequence, token, sequence.Pipeline!.Last);
    }

    /// <summary>Hands a constrained sequence's sampling to the sampler's thread; the sequence sits out steps until its token is back.</summary>
    private FinishReason? SubmitConstrained(Sequence sequence)
    {
        sequence.Sampling = _constrained.Submit(sequence, sequence.Request, sequence.Pipeline!, sequence.Conversation!.Logits, _steps);
        return null;
    }

    /// <summary>
    /// Takes the constrained sampler's results: each token continues its sequence as an inline sample would have
    /// (text, stop strings, logprobs, limits), in the order its sequence generated them.
    /// </summary>
    private void TakeSampled()
    {
        if (!_constrained.HasResults)
        {
            return;
        }

        _constrained.TakeResults(_sampled);
        foreach (var job in _sampled)
        {
            var sequence = (Sequence)job.Owner;
            sequence.Sampling = null;
            ConstrainedSampler.ReturnLogits(job);
            FinishReason? finish;
            try
            {
                if (job.Error is { } error)
                {
                    // Rethrown here, where an inline sample's failure is handled: it fails this request alone.
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
                }

                finish = Sampled(sequence, job.Token, job.Logprob);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                LogSequenceFailed(ModelId, ex);
                Abandon(sequence, ex);
                continue;
            }

            if (finish is { } reason)
            {
                Finish(sequence, reason);
            }
        }

        _sampled.Clear();
    }

    /// <summary>Whether a running sequence can take part in a step (it has a token or prompt to decode).</summary>
    private bool AnyReady()
    {
        foreach (var sequence in _running)
        {
            if (sequence.Sampling is null)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Gives the constrained sampling of the last step's sequences a bounded moment to finish, so that a cheap grammar
    /// does not make its sequence miss every other step; the other sequences wait at most
    /// <see cref="SamplingGraceFraction"/> of a decode step for it, once per token. What is not back by then sits out.
    /// </summary>
    private void AwaitSampling()
    {
        if (ConstrainedSamplingInline || _constrained.Unfinished(_steps) == 0)
        {
            return;
        }

        var grace = _lastDecode * SamplingGraceFraction;
        var started = Stopwatch.GetTimestamp();
        _constrained.ForgetSignals();
        while (_constrained.Unfinished(_steps) > 0)
        {
            var left = grace - Stopwatch.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
            {
                break;
            }

            _constrained.WaitForResult(left, _stopping.Token);
        }

        TakeSampled();
    }

    /// <summary>The share of a decode step the loop waits, at most, for the last step's constrained sampling.</summary>
    internal const double SamplingGraceFraction = 0.25;

    /// <summary>How long a stop waits for native grammar code still running.</summary>
    internal TimeSpan SamplingStopWait { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Samples constrained sequences on the loop's own thread, between decode steps, as before the constrained sampler
    /// existed (the benchmark's "before"); set only while the batcher is idle.
    /// </summary>
    internal bool ConstrainedSamplingInline { get; set; }

    /// <summary>
    /// Called on the loop's thread before a token is sampled without a grammar, with the tokens the sequence generated
    /// so far and the logits it is drawn from (writable); tests stand in for a model that opens a tool call by itself.
    /// </summary>
    internal BeforeFreeSampleHook? BeforeFreeSample { get; set; }

    /// <summary>See <see cref="BeforeFreeSample"/>.</summary>
    internal delegate void BeforeFreeSampleHook(GenerationRequest request, int generated, Span<float> logits);

    /// <summary>
    /// Waited for before each constrained token is sampled, on the thread that samples it (the constrained sampler's,
    /// or the loop's when <see cref="ConstrainedSamplingInline"/>); tests hold sampling with it.
    /// </summary>
    internal Func<GenerationRequest, ValueTask>? BeforeConstrainedSample
    {
        get => _constrained.BeforeSample;
        set => _constrained.BeforeSample = value;
    }

    /// <summary>Continues a sequence with its sampled token; returns why it ends, or null to keep going (the token is then queued).</summary>
    private FinishReason? Sampled(Sequence sequence, LLamaToken token, (int Token, float Logprob, (int Token, float Logprob)[] Top)? last)
    {
        var now = _time.GetTimestamp();
        sequence.Generated++;
        if (sequence.Generated == 1)
        {
            sequence.FirstTokenAt = now;
            _metrics.FirstToken(ModelId, _time.GetElapsedTime(sequence.SubmittedAt, now));
            _metrics.TokenGenerated(ModelId, null);
        }
        else
        {
            _metrics.TokenGenerated(ModelId, _time.GetElapsedTime(sequence.LastTokenAt, now));
        }

        sequence.LastTokenAt = now;
        if (token.IsEndOfGeneration(_model.Weights.Vocab))
        {
            return FinishReason.Stop;
        }

        var logprob = last is { } chosen
            ? new TokenLogprob(Alternative(chosen.Token, chosen.Logprob), [.. chosen.Top.Select(t => Alternative(t.Token, t.Logprob))])
            : null;
        sequence.Decoder!.Add(token);
        var text = sequence.StopMatcher!.Append(sequence.ReadDecoded(logprob));
        sequence.Emit(text);
        if (sequence.StopMatcher.Stopped)
        {
            return FinishReason.Stop;
        }

        if (sequence.Generated >= sequence.MaxTokens)
        {
            return FinishReason.Length;
        }

        sequence.PendingToken = token;
        return null;
    }

    /// <summary>
    /// Most rows of logits one step keeps for scored prompt positions: <see cref="Registry.ModelMemoryEstimator.PromptScoringBytes"/>
    /// of floats (64 MiB: about 500 rows of a 32k vocabulary, 100 of a 150k one), at least one. llama.cpp's output
    /// buffer grows to the most rows a batch asked for and keeps that size, so this bounds what scoring prompts adds to
    /// the context's memory (the estimate counts it).
    /// </summary>
    private int PromptLogitRowsPerStep => Math.Max(1, (int)Math.Min(_model.Resolved.BatchSize, Registry.ModelMemoryEstimator.PromptScoringBytes / sizeof(float) / Math.Max(1, _model.Info.VocabularySize)));

    /// <summary>
    /// The log-probabilities of the prompt tokens that follow a scored chunk's positions, read from each position's
    /// logits right after the decode (one row at a time; nothing is kept but the top alternatives).
    /// </summary>
    private void ScorePrompt(Sequence sequence, (int Start, int FirstIndex, int Count) chunk)
    {
        var prompt = sequence.Request.PromptTokens;
        var top = sequence.Request.PromptLogprobs ?? 0;
        var context = _executor.Native;
        for (var k = 0; k < chunk.Count; k++)
        {
            var next = chunk.Start + k + 1;
            if (next >= prompt.Count)
            {
                break;
            }

            var (logprob, alternatives) = Logprobs.Compute(context.GetLogitsIth(chunk.FirstIndex + k), prompt[next], top);
            Interlocked.Increment(ref _scoredPromptPositions);
            sequence.PromptLogprobs!.Add(new TokenLogprob(
                Alternative(prompt[next], logprob, special: true), [.. alternatives.Select(a => Alternative(a.Token, a.Logprob, special: true))]));
        }
    }

    /// <param name="token">The token.</param>
    /// <param name="logprob">Its log-probability.</param>
    /// <param name="special">Whether control tokens print their text (prompt tokens, as vLLM's detokenizer shows them) or nothing (output).</param>
    private TokenAlternative Alternative(int token, float logprob, bool special = false)
    {
        Span<byte> piece = stackalloc byte[128];
        var length = (int)_model.Weights.NativeHandle.TokenToSpan((LLamaToken)token, piece, special: special);
        if (length <= piece.Length)
        {
            return new TokenAlternative(token, piece[..length].ToArray(), logprob);
        }

        var large = new byte[length];
        _model.Weights.NativeHandle.TokenToSpan((LLamaToken)token, large, special: special);
        return new TokenAlternative(token, large, logprob);
    }

    private void Finish(Sequence sequence, FinishReason reason)
    {
        _running.Remove(sequence);
        Interlocked.Decrement(ref _runningCount);
        _kvReserved -= sequence.KvReservation;
        _kvUsed -= sequence.KvTokens;

        // Between steps the sequence's cells hold exactly its history, so they can serve a later shared prefix.
        if (sequence.Conversation!.TokenCount == sequence.KvHistory.Count)
        {
            _prefixCache.Add(CachePartitionOf(sequence.Request), sequence.Conversation, sequence.KvHistory);
        }
        else
        {
            sequence.Conversation.Dispose();
        }

        ReleasePipeline(sequence);
        if (reason != FinishReason.Cancelled)
        {
            sequence.Emit(sequence.StopMatcher!.Append(sequence.ReadDecoded(null)) + sequence.StopMatcher.Flush(), flush: true);
        }

        Complete(sequence, reason);
    }

    /// <summary>Ends a sequence with an error: its cells are freed (their history is not trusted for the prefix cache).</summary>
    private void Abandon(Sequence sequence, Exception error)
    {
        _running.Remove(sequence);
        Interlocked.Decrement(ref _runningCount);
        _kvReserved -= sequence.KvReservation;
        _kvUsed -= sequence.KvTokens;
        sequence.Conversation?.Dispose();
        ReleasePipeline(sequence);
        sequence.Fail(error);
    }

    /// <summary>
    /// Disposes an ending sequence's sampling pipeline, or leaves that to the constrained sampler while its token is
    /// being sampled there (a pipeline is never used by two threads at once).
    /// </summary>
    private void ReleasePipeline(Sequence sequence)
    {
        if (sequence.Sampling is { } job)
        {
            sequence.Sampling = null;
            if (_constrained.Withdraw(job))
            {
                ConstrainedSampler.Release(job);
            }

            return;
        }

        sequence.Pipeline?.Dispose();
    }

    private void Complete(Sequence sequence, FinishReason reason)
    {
        var result = ResultOf(sequence, reason);
        _metrics.Finished(ModelId, result);
        sequence.Complete(result);
    }

    private GenerationResult ResultOf(Sequence sequence, FinishReason reason)
    {
        var now = _time.GetTimestamp();
        return new GenerationResult
        {
            FinishReason = reason,
            PromptTokens = sequence.Request.PromptTokens.Count,
            CachedPromptTokens = sequence.CachedTokens,
            CompletionTokens = sequence.Generated,
            QueueTime = _time.GetElapsedTime(sequence.SubmittedAt, sequence.AdmittedAt ?? now),
            TimeToFirstToken = sequence.FirstTokenAt is { } first ? _time.GetElapsedTime(sequence.SubmittedAt, first) : null,
            Duration = _time.GetElapsedTime(sequence.SubmittedAt, now),
            ComputeSeconds = sequence.ComputeSeconds,
            Admitted = sequence.AdmittedAt is not null,
        };
    }

    /// <summary>
    /// A failed decode leaves the KV cache in an unknown state for every sequence of the batch, so all running
    /// requests fail and the executor is rebuilt. Admission reserves KV space, so this should not happen. Each failed
    /// sequence reports what it generated before the step, which its stream may already have delivered and is billed.
    /// </summary>
    private void RecoverFromDecodeFailure(string status, Exception? thrown)
    {
        LogDecodeFailed(ModelId, status, _running.Count, thrown);
        foreach (var sequence in _running)
        {
            ReleasePipeline(sequence);
            sequence.Fail(new EngineDecodeFailedException(ModelId, status, ResultOf(sequence, FinishReason.Cancelled)));
        }

        Interlocked.Add(ref _runningCount, -_running.Count);
        _running.Clear();
        _prefixCache.Clear();
        _kvReserved = 0;
        _kvUsed = 0;
        _executor.Dispose();
        _executor = CreateExecutor();
    }

    [LoggerMessage(EventId = 1002, Level = LogLevel.Critical, Message = "The decode loop of model {ModelId} stopped on an unexpected error; its requests failed.")]
    private partial void LogLoopFailed(string modelId, Exception error);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error, Message = "Sampling failed for one request on model {ModelId}; that request failed and the others carry on.")]
    private partial void LogSequenceFailed(string modelId, Exception error);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "Model {ModelId} stopped while native grammar code was still sampling a token after {Seconds} s; it ends on its own and its memory is freed then.")]
    private partial void LogSamplingOutlivedStop(string modelId, double seconds);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Error, Message = "Decode failed on model {ModelId} with {Status}; {Running} running requests failed and the executor was rebuilt.")]
    private partial void LogDecodeFailed(string modelId, string status, int running, Exception? error);

    private sealed class Sequence(
        GenerationRequest request, int maxTokens, int kvReservation, ChannelWriter<GenerationUpdate> output,
        CancellationToken cancellation, long submittedAt, long arrival)
    {
        /// <summary>A marker written to the incoming channel to wake the loop.</summary>
        public static readonly Sequence WakeUp = new(new GenerationRequest { PromptTokens = [] }, 0, 0, Channel.CreateUnbounded<GenerationUpdate>().Writer, default, 0, 0);

        private readonly TaskCompletionSource _written = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public GenerationRequest Request { get; } = request;
        public int MaxTokens { get; } = maxTokens;
        public int KvReservation { get; } = kvReservation;
        public CancellationToken Cancellation { get; } = cancellation;
        public long SubmittedAt { get; } = submittedAt;
        public long Arrival { get; } = arrival;
        public long? AdmittedAt { get; set; }
        public long? FirstTokenAt { get; set; }
        public long LastTokenAt { get; set; }
        public KvSequence? Conversation { get; set; }
        public RequestSamplingPipeline? Pipeline { get; set; }
        public StreamingTokenDecoder? Decoder { get; set; }
        public StopSequenceMatcher? StopMatcher { get; set; }
        public CancellationTokenRegistration CancellationRegistration { get; set; }
        public int Prefilled { get; set; }

        /// <summary>Prompt tokens reused from the prefix cache instead of being prefilled.</summary>
        public int CachedTokens { get; set; }

        /// <summary>The tokens this sequence's KV cells hold, in position order.</summary>
        public List<int> KvHistory { get; } = [];
        public LLamaToken? PendingToken { get; set; }

        /// <summary>This sequence's next token, being sampled by the constrained sampler (null when none is).</summary>
        public ConstrainedSampler.Job? Sampling { get; set; }
        public int KvTokens { get; set; }
        public int StepTokens { get; set; }
        public int Generated { get; set; }
        public double ComputeSeconds { get; set; }

        /// <summary>
        /// Logprobs of tokens whose text has not been emitted whole yet (held by the decoder or the stop matcher), with
        /// the span of decoded characters each token produced.
        /// </summary>
        private readonly List<(TokenLogprob Logprob, int Start, int End)> _pendingLogprobs = [];

        /// <summary>Characters read from the decoder, and emitted (what the stop matcher let through).</summary>
        private int _decoded;
        private int _emitted;

        /// <summary>The prompt's log-probabilities so far, while a scored prompt is prefilled (null otherwise).</summary>
        public List<TokenLogprob>? PromptLogprobs { get; set; }

        /// <summary>The scored prompt chunk in this step's batch: its first prompt position, batch index and length.</summary>
        public (int Start, int FirstIndex, int Count)? ScoredChunk { get; set; }

        public void EmitPromptLogprobs(IReadOnlyList<TokenLogprob> scores) => output.TryWrite(new GenerationUpdate(string.Empty, null, PromptLogprobs: scores));

        /// <summary>Completes after the last update is written and the output completed (<see cref="GenerationStream.CollectAllAsync"/> waits for it).</summary>
        public Task Written => _written.Task;

        /// <summary>Reads the decoder's new text, which the token just added (with its logprob, when asked for) produced.</summary>
        public string ReadDecoded(TokenLogprob? logprob)
        {
            var text = Decoder!.Read();
            var start = _decoded;
            _decoded += text.Length;
            if (logprob is not null)
            {
                _pendingLogprobs.Add((logprob, start, _decoded));
            }

            return text;
        }

        public void Emit(string text, bool flush = false)
        {
            if (text.Length == 0 && !flush)
            {
                return;
            }

            _emitted += text.Length;
            var logprobs = TakeEmittedLogprobs(flush);
            if (text.Length > 0 || logprobs is not null)
            {
                output.TryWrite(new GenerationUpdate(text, null, logprobs));
            }
        }

        /// <summary>
        /// The logprobs of the tokens whose text is now emitted, so they cover exactly the text sent: a token is
        /// listed with its last character. At the end, after a stop string, a token the stop string starts inside is
        /// listed cut to its emitted part (with the whole token's logprob); the tokens of the stop string are not.
        /// </summary>
        private List<TokenLogprob>? TakeEmittedLogprobs(bool flush)
        {
            if (_pendingLogprobs.Count == 0)
            {
                return null;
            }

            var stopped = StopMatcher?.Stopped == true;
            var taken = new List<TokenLogprob>();
            var count = 0;
            foreach (var (logprob, start, end) in _pendingLogprobs)
            {
                if (end <= _emitted && start < _emitted)
                {
                    taken.Add(logprob);
                }
                else if (flush && !stopped)
                {
                    taken.Add(logprob);
                }
                else if (flush && start < _emitted)
                {
                    taken.Add(CutTo(logprob, _emitted - start));
                }
                else
                {
                    break;
                }

                count++;
            }

            _pendingLogprobs.RemoveRange(0, flush ? _pendingLogprobs.Count : count);
            return taken.Count > 0 ? taken : null;
        }

        private static TokenLogprob CutTo(TokenLogprob logprob, int characters)
        {
            var text = logprob.Token.Text;
            return characters >= text.Length
                ? logprob
                : logprob with { Token = logprob.Token with { Bytes = Encoding.UTF8.GetBytes(text[..characters]) } };
        }

        public void Complete(GenerationResult result)
        {
            CancellationRegistration.Dispose();
            output.TryWrite(new GenerationUpdate(string.Empty, result));
            output.TryComplete();
            _written.TrySetResult();
        }

        public void Fail(Exception error)
        {
            CancellationRegistration.Dispose();
            output.TryComplete(error);
            _written.TrySetResult();
        }
    }
}
