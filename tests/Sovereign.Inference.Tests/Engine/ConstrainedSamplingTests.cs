using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Grammar;

namespace Sovereign.Inference.Tests.Engine;

/// <summary>
/// Grammar-constrained sampling runs off the decode loop: while one request's constrained token is held (a gate, not a
/// slow grammar, so nothing here depends on timing), the model's other requests keep decoding, a client that leaves
/// frees its slot, and a stop does not wait for it; the tokens are those the loop sampled inline before.
/// </summary>
public sealed class ConstrainedSamplingTests : IAsyncLifetime
{
    // Generous: only reached when the behaviour under test is broken (the loop waits on the held sampling).
    private static readonly TimeSpan Broken = TimeSpan.FromSeconds(60);

    private const string Schema =
        """{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer","minimum":0,"maximum":99}},"required":["name","age"],"additionalProperties":false}""";

    private static readonly GbnfGrammar Grammar = JsonSchemaGrammarCompiler.Compile(JsonDocument.Parse(Schema).RootElement);

    private TestEngine _engine = null!;

    public Task InitializeAsync()
    {
        _engine = new TestEngine(new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Parallel = 8, ContextLength = 256, Threads = 1 });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _engine.DisposeAsync();

    private GenerationRequest Constrained(string tenant, long seed, int maxTokens = 64, int? topLogprobs = null, params string[] stop) => new()
    {
        PromptTokens = _engine.Model.Tokenize("Once upon a time"),
        MaxTokens = maxTokens,
        Sampling = new SamplingOptions { Temperature = 1f, Seed = seed },
        Grammar = Grammar,
        Tenant = tenant,
        TopLogprobs = topLogprobs,
        Stop = stop,
    };

    private GenerationRequest Free(string tenant, int maxTokens = 20) => new()
    {
        PromptTokens = _engine.Model.Tokenize("The little dog"),
        MaxTokens = maxTokens,
        Sampling = SamplingOptions.Greedy,
        Tenant = tenant,
    };

    /// <summary>Holds every constrained token of <paramref name="tenant"/> until <see cref="Gate.Open"/>.</summary>
    private sealed class Gate
    {
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Func<GenerationRequest, ValueTask> For(string tenant) => async request =>
        {
            if (request.Tenant == tenant)
            {
                Entered.TrySetResult();
                await _open.Task;
            }
        };

        public void Open() => _open.TrySetResult();
    }

    [Fact]
    public async Task ConstrainedSamplingHeld_UnconstrainedRequestOnTheSameModelCompletes()
    {
        var gate = new Gate();
        _engine.Batcher.BeforeConstrainedSample = gate.For("slow");
        try
        {
            var held = _engine.Batcher.Submit(Constrained("slow", seed: 1)).CollectAsync();
            await gate.Entered.Task.WaitAsync(Broken);

            var (text, result) = await _engine.Batcher.Submit(Free("other")).CollectAsync().WaitAsync(Broken);

            Assert.False(string.IsNullOrEmpty(text));
            Assert.InRange(result.CompletionTokens, 1, 20);
            Assert.False(held.IsCompleted);
            Assert.Equal(1, _engine.Batcher.RunningCount);

            gate.Open();
            var (json, heldResult) = await held.WaitAsync(Broken);
            Assert.Equal(FinishReason.Stop, heldResult.FinishReason);
            using var document = JsonDocument.Parse(json);
            Assert.Equal(JsonValueKind.String, document.RootElement.GetProperty("name").ValueKind);
            Assert.InRange(document.RootElement.GetProperty("age").GetInt32(), 0, 99);
        }
        finally
        {
            gate.Open();
            _engine.Batcher.BeforeConstrainedSample = null;
        }
    }

    [Fact]
    public async Task ConstrainedSamplingHeld_ClientLeaves_SlotAndCellsFreedWhileSamplingIsStillHeld()
    {
        var gate = new Gate();
        _engine.Batcher.BeforeConstrainedSample = gate.For("slow");
        try
        {
            using var leaving = new CancellationTokenSource();
            var held = _engine.Batcher.Submit(Constrained("slow", seed: 2), leaving.Token).CollectAsync(CancellationToken.None);
            await gate.Entered.Task.WaitAsync(Broken);
            Assert.Equal(1, _engine.Batcher.RunningCount);

            await leaving.CancelAsync();
            var (_, result) = await held.WaitAsync(Broken);

            Assert.Equal(FinishReason.Cancelled, result.FinishReason);
            Assert.Equal(0, _engine.Batcher.RunningCount);
            Assert.Equal(0.0, _engine.Batcher.KvCacheUsage);
        }
        finally
        {
            gate.Open();
            _engine.Batcher.BeforeConstrainedSample = null;
        }

        // The abandoned sampling ended on the sampler's thread; the next constrained request is served as usual.
        var (json, after) = await _engine.Batcher.Submit(Constrained("slow", seed: 3)).CollectAsync().WaitAsync(Broken);
        Assert.Equal(FinishReason.Stop, after.FinishReason);
        using var document = JsonDocument.Parse(json);
        Assert.Equal(JsonValueKind.Object, document.RootElement.ValueKind);
    }

    [Fact]
    public async Task DisposeAsync_ConstrainedSamplingHeld_StopsWithoutWaitingForIt()
    {
        var batcher = new ContinuousBatcher(_engine.Model, _engine.Metrics, NullLogger<ContinuousBatcher>.Instance) { SamplingStopWait = TimeSpan.Zero };
        var gate = new Gate();
        batcher.BeforeConstrainedSample = gate.For("slow");
        try
        {
            var held = batcher.Submit(Constrained("slow", seed: 4)).CollectAsync();
            await gate.Entered.Task.WaitAsync(Broken);

            await batcher.DisposeAsync().AsTask().WaitAsync(Broken);

            await Assert.ThrowsAsync<EngineStoppedException>(() => held.WaitAsync(Broken));
        }
        finally
        {
            // The held sampling ends after the stop; its pipeline is disposed on the sampler's thread.
            gate.Open();
        }
    }

    public static TheoryData<string[]> StopStrings => new() { Array.Empty<string>(), new[] { ":" } };

    [Theory]
    [MemberData(nameof(StopStrings))]
    public async Task Constrained_SameSeed_SameTokensLogprobsAndCountsAsSampledInline(string[] stop)
    {
        // Alone, the sequence is the whole batch either way: the same logits, so the same tokens and values.
        var inline = await RunWith(inline: true, others: 0);
        var offLoop = await RunWith(inline: false, others: 0);
        Assert.Equal(inline.Text, offLoop.Text);
        Assert.Equal(inline.Result.FinishReason, offLoop.Result.FinishReason);
        Assert.Equal(inline.Result.PromptTokens, offLoop.Result.PromptTokens);
        Assert.Equal(inline.Result.CompletionTokens, offLoop.Result.CompletionTokens);
        Assert.Equal(inline.Logprobs.Select(l => (l.Token, l.Text)), offLoop.Logprobs.Select(l => (l.Token, l.Text)));
        // To rounding: the logits' last bits depend on where llama.cpp placed the KV cells, not on which thread sampled.
        Assert.All(inline.Logprobs.Zip(offLoop.Logprobs), pair => Assert.Equal(pair.First.Logprob, pair.Second.Logprob, 0.01f));

        // Beside other sequences the batch's rows change the logits' last bits, so a value (and, near a tie, a token)
        // may differ from the runs alone; what must hold is the answer's shape and its counts.
        var beside = await RunWith(inline: false, others: 4);
        foreach (var run in new[] { inline, offLoop, beside })
        {
            Assert.True(run.Result.ComputeSeconds > 0);
            Assert.Equal(run.Result.PromptTokens, inline.Result.PromptTokens);

            // Logprobs list exactly the returned text, token by token, in order.
            Assert.Equal(run.Text, string.Concat(run.Logprobs.Select(l => l.Text)));
            if (stop.Length == 0)
            {
                // Ended by end-of-generation, which is counted and prints nothing; the grammar's JSON is complete.
                Assert.Equal(FinishReason.Stop, run.Result.FinishReason);
                Assert.Equal(run.Logprobs.Count + 1, run.Result.CompletionTokens);
                using var document = JsonDocument.Parse(run.Text);
            }
        }

        async Task<Run> RunWith(bool inline, int others)
        {
            _engine.Batcher.ConstrainedSamplingInline = inline;
            try
            {
                var running = Enumerable.Range(0, others).Select(i => _engine.Batcher.Submit(Free("other" + i, 40)).CollectAsync()).ToArray();
                var run = await Collect(_engine.Batcher.Submit(Constrained("slow", seed: 5, topLogprobs: 2, stop: stop)));
                await Task.WhenAll(running);
                return run;
            }
            finally
            {
                _engine.Batcher.ConstrainedSamplingInline = false;
            }
        }
    }

    private sealed record Run(string Text, GenerationResult Result, List<(int Token, string Text, float Logprob)> Logprobs);

    private static async Task<Run> Collect(GenerationStream stream)
    {
        var text = new System.Text.StringBuilder();
        var logprobs = new List<(int, string, float)>();
        GenerationResult? result = null;
        await foreach (var update in stream.WithCancellation(CancellationToken.None))
        {
            text.Append(update.Text);
            foreach (var logprob in update.Logprobs ?? [])
            {
                logprobs.Add((logprob.Token.TokenId, logprob.Token.Text, logprob.Token.Logprob));
            }

            result ??= update.Result;
        }

        return new Run(text.ToString(), result!, logprobs);
    }
}
