using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Inference.Engine;

namespace Sovereign.Inference.Tests.Engine;

/// <summary>
/// The prefix cache: a request sharing a prompt prefix with a finished one reuses its KV cells, reports them as
/// cached, and generates exactly what it would have generated from a cold cache (checked against a batcher with the
/// cache turned off, on the same weights).
/// </summary>
public sealed class PrefixCacheTests : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _batchers = [];
    private LlamaModel _stories = null!;
    private EngineMetrics _metrics = null!;

    public Task InitializeAsync()
    {
        _stories = LlamaModel.Load(new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Parallel = 4, ContextLength = 256, Threads = 1 });
        _metrics = new EngineMetrics();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var batcher in _batchers)
        {
            await batcher.DisposeAsync();
        }

        _metrics.Dispose();
        _stories.Dispose();
    }

    private ContinuousBatcher Batcher(LlamaModel model)
    {
        var batcher = new ContinuousBatcher(model, _metrics, NullLogger<ContinuousBatcher>.Instance);
        _batchers.Add(batcher);
        return batcher;
    }

    private static LlamaModel Load(string path, int? prefixCacheSequences, int parallel = 4, int context = 256, int kvCells = 0) =>
        LlamaModel.Load(new ModelOptions
        {
            Id = "m", Path = path, Parallel = parallel, ContextLength = context, KvCacheTokens = kvCells, Threads = 1,
            PrefixCacheSequences = prefixCacheSequences,
        });

    private static GenerationRequest Greedy(IReadOnlyList<int> prompt, int maxTokens) =>
        new() { PromptTokens = prompt, MaxTokens = maxTokens, Sampling = SamplingOptions.Greedy };

    private static async Task<(string Text, GenerationResult Result)> Run(ContinuousBatcher batcher, IReadOnlyList<int> prompt, int maxTokens) =>
        await batcher.Submit(Greedy(prompt, maxTokens)).CollectAsync();

    [Fact]
    public async Task RepeatedPrompt_ReusesAllButTheLastToken_AndGeneratesTheSameText()
    {
        var batcher = Batcher(_stories);
        var prompt = _stories.Tokenize("Once upon a time, there was a little girl named Lily. She loved to play");

        var (cold, coldResult) = await Run(batcher, prompt, 40);
        var (warm, warmResult) = await Run(batcher, prompt, 40);

        Assert.Equal(0, coldResult.CachedPromptTokens);
        Assert.Equal(prompt.Length - 1, warmResult.CachedPromptTokens);
        Assert.Equal(prompt.Length, warmResult.PromptTokens);
        Assert.Equal(cold, warm);
        Assert.Equal(coldResult.CompletionTokens, warmResult.CompletionTokens);
        Assert.True(batcher.PrefixCacheCells > 0);
    }

    /// <summary>Entries are per partition (the tenant by default): another tenant's identical prompt reuses nothing.</summary>
    [Fact]
    public async Task AnotherPartition_ReusesNothing_AndTheSameGivesTheSameText()
    {
        var batcher = Batcher(_stories);
        var prompt = _stories.Tokenize("Once upon a time, there was a little boy named Tim. He had a red ball");
        async Task<(string Text, GenerationResult Result)> RunAs(string tenant, string? partition = null) =>
            await batcher.Submit(Greedy(prompt, 16) with { Tenant = tenant, CachePartition = partition }).CollectAsync();

        var (first, _) = await RunAs("a");
        var (other, otherResult) = await RunAs("b");
        var (relayed, relayedResult) = await RunAs("cluster-relay", partition: "relay:b");
        var (same, sameResult) = await RunAs("a");
        var (samePartition, samePartitionResult) = await RunAs("cluster-relay", partition: "relay:b");

        Assert.Equal(0, otherResult.CachedPromptTokens);
        Assert.Equal(0, relayedResult.CachedPromptTokens);
        Assert.Equal(prompt.Length - 1, sameResult.CachedPromptTokens);
        Assert.Equal(prompt.Length - 1, samePartitionResult.CachedPromptTokens);
        Assert.All(new[] { other, relayed, same, samePartition }, text => Assert.Equal(first, text));
    }

    [Fact]
    public async Task NextTurn_ReusesThePreviousTurnWithItsOutput_AndMatchesAColdCache()
    {
        using var coldModel = Load(TestModels.Stories260K, prefixCacheSequences: 0);
        var cold = Batcher(coldModel);
        var warm = Batcher(_stories);
        var first = _stories.Tokenize("Once upon a time, there was a big dog.");
        var (reply, _) = await Run(warm, first, 24);

        // The next turn repeats the first prompt and the reply, then asks more: everything before the new text is cached.
        var next = _stories.Tokenize("Once upon a time, there was a big dog." + reply + " Then the dog saw a cat.");
        var (warmText, warmResult) = await Run(warm, next, 32);
        var (coldText, coldResult) = await Run(cold, next, 32);

        Assert.Equal(0, coldResult.CachedPromptTokens);
        Assert.InRange(warmResult.CachedPromptTokens, first.Length, next.Length - 1);
        Assert.Equal(coldText, warmText);
    }

    [Fact]
    public async Task LongSharedSystemPrompt_ChunkedPrefill_SameGreedyOutputAsColdCache_OnA32kVocabulary()
    {
        // Random weights with a real 32k vocabulary: any difference in the reused cells would change the argmax.
        using var warmModel = Load(TestModels.TinyRandomLlama2, prefixCacheSequences: null, parallel: 2, context: 2048);
        using var coldModel = Load(TestModels.TinyRandomLlama2, prefixCacheSequences: 0, parallel: 2, context: 2048);
        var warm = Batcher(warmModel);
        var cold = Batcher(coldModel);
        var system = new StringBuilder("You are a careful assistant. ");
        for (var i = 0; system.Length < 4000; i++)
        {
            system.Append("Rule ").Append(i).Append(": answer in full sentences and cite the policy. ");
        }

        var shared = system.ToString();
        var prefix = warmModel.Tokenize(shared);
        Assert.True(prefix.Length > 600, "the shared prefix spans more than one prefill chunk");
        await Run(warm, warmModel.Tokenize(shared + " Question one: what is the capital?"), 8);

        foreach (var question in new[] { " Question two: how far is the moon?", " Question three: who wrote it?" })
        {
            var prompt = warmModel.Tokenize(shared + question);
            var (warmText, warmResult) = await Run(warm, prompt, 24);
            var (coldText, coldResult) = await Run(cold, prompt, 24);

            Assert.InRange(warmResult.CachedPromptTokens, prefix.Length - 2, prompt.Length - 1);
            Assert.Equal(0, coldResult.CachedPromptTokens);
            Assert.Equal(coldText, warmText);
            Assert.Equal(coldResult.CompletionTokens, warmResult.CompletionTokens);
        }
    }

    [Fact]
    public async Task ConcurrentRequestsForkingOneEntry_EachMatchesItsColdOutput()
    {
        using var coldModel = Load(TestModels.Stories260K, prefixCacheSequences: 0);
        var cold = Batcher(coldModel);
        var warm = Batcher(_stories);
        const string Shared = "Once upon a time, there was a little boy named Tim. ";
        await Run(warm, _stories.Tokenize(Shared + "He had a ball."), 8);
        string[] endings = ["He liked to run.", "One day he saw a bird.", "His mom was happy.", "The sun was hot."];

        var together = await Task.WhenAll(endings.Select(e => Run(warm, _stories.Tokenize(Shared + e), 24)));
        var alone = new List<string>();
        foreach (var ending in endings)
        {
            alone.Add((await Run(cold, _stories.Tokenize(Shared + ending), 24)).Text);
        }

        Assert.Equal(alone, together.Select(t => t.Text));
        Assert.All(together, t => Assert.True(t.Result.CachedPromptTokens >= _stories.Tokenize(Shared).Length - 2));
    }

    [Fact]
    public async Task UnrelatedPrompt_ReusesAtMostTheBeginningOfSequenceToken()
    {
        var batcher = Batcher(_stories);
        await Run(batcher, _stories.Tokenize("Once upon a time"), 8);

        var (_, result) = await Run(batcher, _stories.Tokenize("The little dog ran"), 8);

        Assert.InRange(result.CachedPromptTokens, 0, 1);
    }

    [Fact]
    public async Task CacheOff_NeverReuses()
    {
        using var model = Load(TestModels.Stories260K, prefixCacheSequences: 0);
        var batcher = Batcher(model);
        var prompt = model.Tokenize("Once upon a time");

        await Run(batcher, prompt, 8);
        var (_, again) = await Run(batcher, prompt, 8);

        Assert.Equal(0, again.CachedPromptTokens);
        Assert.Equal(0, batcher.PrefixCacheCells);
    }

    [Fact]
    public async Task FullCache_EvictsTheLeastRecentlyUsedEntry()
    {
        using var model = Load(TestModels.Stories260K, prefixCacheSequences: 2);
        var batcher = Batcher(model);
        var a = model.Tokenize("Once upon a time, there was a cat.");
        var b = model.Tokenize("The little dog ran to the park.");
        var c = model.Tokenize("Lily wanted to play with her toys.");

        await Run(batcher, a, 4);
        await Run(batcher, b, 4);
        Assert.Equal(a.Length - 1, (await Run(batcher, a, 4)).Result.CachedPromptTokens); // a is now more recent than b
        await Run(batcher, c, 4); // a third entry: b, the least recently used, goes

        Assert.Equal(a.Length - 1, (await Run(batcher, a, 4)).Result.CachedPromptTokens);
        Assert.InRange((await Run(batcher, b, 4)).Result.CachedPromptTokens, 0, 1);
    }

    [Fact]
    public async Task CachedCells_GiveWayToARequestThatNeedsTheSpace()
    {
        // One sequence's worth of KV: a cached entry must be evicted for a request that needs nearly every cell.
        using var model = Load(TestModels.Stories260K, prefixCacheSequences: 4, parallel: 1, context: 256, kvCells: 256);
        var batcher = Batcher(model);
        await Run(batcher, model.Tokenize("Once upon a time, there was a cat."), 100);
        Assert.True(batcher.PrefixCacheCells > 50);

        var prompt = model.Tokenize("The little dog ran to the park.");
        var (_, result) = await Run(batcher, prompt, 256 - prompt.Length);

        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal(256 - prompt.Length, result.CompletionTokens);
    }

    [Fact]
    public async Task AdmittingNewWork_ParksCachedEntriesOutOfTheKvCache()
    {
        // With one unified KV cache every decode step scans all cells up to the highest in use: cached entries must
        // not be there while requests run (llama-server's idle-slot caching does the same).
        var batcher = Batcher(_stories);
        await Run(batcher, _stories.Tokenize("Once upon a time, there was a little girl named Lily."), 16);
        Assert.True(batcher.PrefixCacheCells > 0);
        var cellsWhileRunning = new List<int>();
        batcher.BeforeStep = _ =>
        {
            cellsWhileRunning.Add(batcher.PrefixCacheCells);
            return ValueTask.CompletedTask;
        };

        await Run(batcher, _stories.Tokenize("The little dog ran to the park."), 8);
        batcher.BeforeStep = null;

        Assert.NotEmpty(cellsWhileRunning);
        Assert.All(cellsWhileRunning, cells => Assert.Equal(0, cells));
        Assert.True(batcher.PrefixCacheParkedBytes > 0);
    }

    [Fact]
    public async Task ParkedEntriesBeyondTheHostMemoryBound_AreDropped()
    {
        // A large model's cells take megabytes a token: parked entries are bounded in bytes (here none may be kept).
        using var model = LlamaModel.Load(new ModelOptions
        {
            Id = "m", Path = TestModels.Stories260K, Parallel = 4, ContextLength = 256, Threads = 1, PrefixCacheHostMiB = 0,
        });
        var batcher = Batcher(model);
        var prompt = model.Tokenize("Once upon a time, there was a little girl named Lily. She loved to play");
        await Run(batcher, prompt, 24);
        await Run(batcher, model.Tokenize("The little dog ran to the park."), 8); // parks the first entry, which is dropped

        var (_, again) = await Run(batcher, prompt, 24);

        Assert.Equal(0, batcher.PrefixCacheParkedBytes);
        Assert.True(again.CachedPromptTokens <= 1, $"{again.CachedPromptTokens} cached tokens: the dropped entry was reused");
    }

    [Fact]
    public async Task ParkedEntry_IsCopiedBack_AndGeneratesWhatAColdCacheDoes()
    {
        using var coldModel = Load(TestModels.Stories260K, prefixCacheSequences: 0);
        var cold = Batcher(coldModel);
        var warm = Batcher(_stories);
        var prompt = _stories.Tokenize("Once upon a time, there was a little girl named Lily. She loved to play");
        await Run(warm, prompt, 24);
        await Run(warm, _stories.Tokenize("The little dog ran to the park."), 8); // parks the first entry

        var (warmText, warmResult) = await Run(warm, prompt, 24);
        var (coldText, coldResult) = await Run(cold, prompt, 24);

        Assert.Equal(prompt.Length - 1, warmResult.CachedPromptTokens);
        Assert.Equal(0, coldResult.CachedPromptTokens);
        Assert.Equal(coldText, warmText);
    }

    [Fact]
    public async Task CancelledRequest_LeavesItsPrefilledCellsForTheRetry()
    {
        var batcher = Batcher(_stories);
        var prompt = _stories.Tokenize("Once upon a time, there was a little girl named Lily.");
        using var cts = new CancellationTokenSource();
        var stream = batcher.Submit(Greedy(prompt, 200), cts.Token);
        await using (var e = stream.GetAsyncEnumerator())
        {
            Assert.True(await e.MoveNextAsync());
            cts.Cancel();
            while (await e.MoveNextAsync())
            {
            }
        }

        var (_, retry) = await Run(batcher, prompt, 8);

        Assert.Equal(prompt.Length - 1, retry.CachedPromptTokens);
    }
}
