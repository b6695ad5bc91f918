using System.Buffers;
using LLama.Native;
using Sovereign.Inference.Sampling;

namespace Sovereign.Inference.Engine;

/// <summary>
/// Samples grammar-constrained sequences of one batcher on a thread of its own, from a copy of each sequence's logits,
/// so that one request's grammar work (llama.cpp's grammar stacks, the managed matcher's masks) never holds the
/// decode loop, and with it every other sequence of the model: a sequence whose next token is not sampled yet sits out
/// the decode steps until it is, while the others keep going (vLLM computes grammar bitmasks off its forward pass in
/// the same spirit).
/// </summary>
/// <remarks>
/// Bounded: a sequence has at most one job here, so the work waiting is at most one token per running sequence, and a
/// withdrawn job that has not started is dropped. Jobs are taken round-robin by tenant (the tenant served longest ago
/// first), so one tenant's many constrained choices do not queue ahead of another tenant's one. A pipeline is used by
/// one thread at a time: the decode loop hands it over with the job and gets it back with the result; a job withdrawn
/// while it runs is disposed here when it ends. The thread holds a reference on the model's native handle, so the
/// weights outlive native grammar code that is still running when the batcher stops (their memory is freed when it ends).
/// </remarks>
internal sealed class ConstrainedSampler
{
    private readonly Lock _gate = new();
    private readonly List<Job> _queued = [];
    private readonly List<Job> _done = [];
    private readonly Dictionary<string, long> _servedAt = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _work = new(0);
    private readonly SemaphoreSlim _completed = new(0);
    private readonly SafeLlamaModelHandle _model;
    private readonly Action _wake;
    private readonly Thread _thread;
    private long _served;
    private bool _stopping;
    private Job? _running;
    private bool _referenced;

    /// <param name="model">The model whose vocabulary the grammars read.</param>
    /// <param name="wake">Called after each result, to wake a decode loop that waits with nothing else to do.</param>
    public ConstrainedSampler(SafeLlamaModelHandle model, Action wake)
    {
        _model = model;
        _wake = wake;

        // Taken here, not on the thread: a batcher stopped (and its model freed) before the thread runs must not
        // leave it to reference a closed handle.
        _model.DangerousAddRef(ref _referenced);
        _thread = new Thread(Run) { IsBackground = true, Name = "sovereign-grammar" };
        _thread.Start();
    }

    /// <summary>Waited for (blocking this thread) before each job runs; tests hold a request's sampling with it.</summary>
    internal Func<GenerationRequest, ValueTask>? BeforeSample { get; set; }

    /// <summary>Whether a result waits to be taken.</summary>
    public bool HasResults
    {
        get
        {
            lock (_gate)
            {
                return _done.Count > 0;
            }
        }
    }

    /// <summary>Queues the next token of a sequence, sampled from <paramref name="logits"/> (copied now).</summary>
    public Job Submit(object owner, GenerationRequest request, RequestSamplingPipeline pipeline, ReadOnlySpan<float> logits, long step)
    {
        var copy = ArrayPool<float>.Shared.Rent(logits.Length);
        logits.CopyTo(copy);
        var job = new Job(owner, request, pipeline, copy, logits.Length, step);
        lock (_gate)
        {
            // The batcher stops this only after its loop has ended, so nothing is submitted after Stop.
            _queued.Add(job);
        }

        _work.Release();
        return job;
    }

    /// <summary>Moves the finished jobs into <paramref name="into"/>; the caller owns their pipelines again.</summary>
    public void TakeResults(List<Job> into)
    {
        lock (_gate)
        {
            into.AddRange(_done);
            _done.Clear();
        }
    }

    /// <summary>Jobs submitted at <paramref name="step"/> that have no result yet.</summary>
    public int Unfinished(long step)
    {
        lock (_gate)
        {
            var count = 0;
            foreach (var job in _queued)
            {
                count += job.Step == step ? 1 : 0;
            }

            return count + (_running is { State: JobState.Running } running && running.Step == step ? 1 : 0);
        }
    }

    /// <summary>
    /// Forgets the results signalled so far (they accumulate while nobody waits), before checking
    /// <see cref="Unfinished"/> and waiting: a result that comes after the check still wakes the wait.
    /// </summary>
    public void ForgetSignals()
    {
        while (_completed.Wait(0))
        {
        }
    }

    /// <summary>Waits until a result arrives (or one signalled since <see cref="ForgetSignals"/>), at most <paramref name="timeout"/>.</summary>
    public void WaitForResult(TimeSpan timeout, CancellationToken cancellationToken) => _completed.Wait(timeout, cancellationToken);

    /// <summary>
    /// Takes a job back for a sequence that ends. True: it had not started or had finished, and the caller owns (and
    /// must dispose, <see cref="Release"/>) its pipeline; false: it is running, and its pipeline is disposed here when it ends.
    /// </summary>
    public bool Withdraw(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        lock (_gate)
        {
            switch (job.State)
            {
                case JobState.Queued:
                    _queued.Remove(job);
                    return true;
                case JobState.Done:
                    _done.Remove(job);
                    return true;
                default:
                    job.State = JobState.Abandoned;
                    return false;
            }
        }
    }

    /// <summary>Disposes a job's pipeline and returns its logits buffer (what the decode loop owns no longer).</summary>
    public static void Release(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        job.Pipeline.Dispose();
        ReturnLogits(job);
    }

    /// <summary>Returns a job's logits buffer once its result is read.</summary>
    public static void ReturnLogits(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (job.Logits is { } logits)
        {
            job.Logits = null;
            ArrayPool<float>.Shared.Return(logits);
        }
    }

    /// <summary>
    /// Stops taking jobs, disposes those not started or not taken, and waits at most <paramref name="wait"/> for the one
    /// running (native grammar code cannot be interrupted). False when it is still running; it is disposed when it ends.
    /// </summary>
    public bool Stop(TimeSpan wait)
    {
        List<Job> left;
        lock (_gate)
        {
            _stopping = true;
            left = [.. _queued, .. _done];
            _queued.Clear();
            _done.Clear();
        }

        foreach (var job in left)
        {
            Release(job);
        }

        _work.Release();
        return _thread.Join(wait);
    }

    private void Run()
    {
        try
        {
            while (true)
            {
                _work.Wait();
                Job? job;
                lock (_gate)
                {
                    if (_stopping)
                    {
                        return;
                    }

                    job = TakeFairest();
                    if (job is null)
                    {
                        continue;
                    }

                    job.State = JobState.Running;
                    _running = job;
                }

                Sample(job);
                bool abandoned;
                lock (_gate)
                {
                    _running = null;
                    abandoned = job.State == JobState.Abandoned || _stopping;
                    if (!abandoned)
                    {
                        job.State = JobState.Done;
                        _done.Add(job);
                    }
                }

                if (abandoned)
                {
                    Release(job);
                    continue;
                }

                _completed.Release();
                _wake();
            }
        }
        finally
        {
            if (_referenced)
            {
                _model.DangerousRelease();
            }
        }
    }

    /// <summary>The queued job of the tenant served longest ago (never served first), in arrival order among equals.</summary>
    private Job? TakeFairest()
    {
        Job? best = null;
        var bestServed = long.MaxValue;
        foreach (var job in _queued)
        {
            var served = _servedAt.TryGetValue(job.Request.Tenant, out var at) ? at : -1;
            if (served < bestServed)
            {
                (best, bestServed) = (job, served);
            }
        }

        if (best is not null)
        {
            _queued.Remove(best);
            _servedAt[best.Request.Tenant] = ++_served;
        }

        if (_queued.Count == 0)
        {
            // Nobody waits: the order starts afresh, and tenants seen once are not remembered for ever.
            _servedAt.Clear();
        }

        return best;
    }

    private void Sample(Job job)
    {
        try
        {
            BeforeSample?.Invoke(job.Request).AsTask().GetAwaiter().GetResult();
            job.Token = job.Pipeline.SampleLogits(job.Logits.AsSpan(0, job.Count), _model);
            job.Logprob = job.Pipeline.Last;
        }
        catch (Exception ex)
        {
            // Not rethrown: an exception escaping this thread would end the process; the request fails alone.
            job.Error = ex;
        }
    }

    internal enum JobState
    {
        Queued,
        Running,
        Done,
        Abandoned,
    }

    /// <summary>One token to sample for one sequence, and its result.</summary>
    internal sealed class Job(object owner, GenerationRequest request, RequestSamplingPipeline pipeline, float[] logits, int count, long step)
    {
        /// <summary>The decode loop's sequence.</summary>
        public object Owner { get; } = owner;

        public GenerationRequest Request { get; } = request;

        public RequestSamplingPipeline Pipeline { get; } = pipeline;

        /// <summary>The copied logits (a pooled buffer; its first <see cref="Count"/> entries), null once returned.</summary>
        public float[]? Logits { get; set; } = logits;

        public int Count { get; } = count;

        /// <summary>The decode step whose logits these are.</summary>
        public long Step { get; } = step;

        public JobState State { get; set; }

        public LLamaToken Token { get; set; }

        public (int Token, float Logprob, (int Token, float Logprob)[] Top)? Logprob { get; set; }

        public Exception? Error { get; set; }
    }
}
