using System.Threading.Channels;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Scheduling;

namespace Sovereign.Inference.Tests.Engine;

/// <summary>When slots are full, waiting requests are admitted weighted-fair across tenants, not FIFO.</summary>
public sealed class FairAdmissionTests : IAsyncLifetime
{
    private TestEngine _engine = null!;

    public Task InitializeAsync()
    {
        _engine = new TestEngine(new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Parallel = 1, MaxQueue = 200, ContextLength = 128, Threads = 1 });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _engine.DisposeAsync();

    private GenerationRequest Request(string tenant, int weight = 1, PriorityClass priority = PriorityClass.Interactive) => new()
    {
        PromptTokens = _engine.Model.Tokenize("Once upon a time"),
        MaxTokens = 2,
        Sampling = SamplingOptions.Greedy,
        Tenant = tenant,
        Weight = weight,
        Priority = priority,
    };

    /// <summary>Holds the loop, submits, then lets it run; returns the tenants in admission order.</summary>
    private async Task<List<string>> AdmissionOrderAsync(Func<List<GenerationStream>> submit)
    {
        var order = new List<string>();
        _engine.Batcher.OnAdmitted = r => order.Add(r.Tenant);
        var release = new TaskCompletionSource();
        _engine.Batcher.BeforeStep = async _ => await release.Task;

        // The blocker takes the only slot and the loop waits before its first step, so every request below is
        // queued before any of them is admitted.
        var blocker = _engine.Batcher.Submit(Request("blocker"));
        while (_engine.Batcher.RunningCount == 0)
        {
            await Task.Delay(1);
        }

        var streams = submit();
        _engine.Batcher.BeforeStep = null;
        release.SetResult();
        await blocker.CollectAsync();
        await Task.WhenAll(streams.Select(s => s.CollectAsync()));
        _engine.Batcher.OnAdmitted = null;
        order.Remove("blocker");
        return order;
    }

    [Fact]
    public async Task FloodingTenant_DoesNotDelayAnotherTenantBeyondOneAdmission()
    {
        var order = await AdmissionOrderAsync(() =>
        {
            var streams = Enumerable.Range(0, 50).Select(_ => _engine.Batcher.Submit(Request("tenant-a"))).ToList();
            streams.Add(_engine.Batcher.Submit(Request("tenant-b")));
            return streams;
        });

        Assert.Equal(51, order.Count);
        Assert.InRange(order.IndexOf("tenant-b"), 0, 1);
    }

    [Fact]
    public async Task Weights_GiveProportionalShares()
    {
        var order = await AdmissionOrderAsync(() =>
            Enumerable.Range(0, 30).Select(_ => _engine.Batcher.Submit(Request("gold", weight: 3)))
                .Concat(Enumerable.Range(0, 30).Select(_ => _engine.Batcher.Submit(Request("basic", weight: 1))))
                .ToList());

        // While both are backlogged, gold gets three admissions for each of basic's.
        var firstForty = order.Take(40).ToList();
        Assert.Equal(30, firstForty.Count(t => t == "gold"));
        Assert.Equal(10, firstForty.Count(t => t == "basic"));
    }

    [Fact]
    public async Task InteractiveRequests_AreAdmittedBeforeBatch()
    {
        var order = await AdmissionOrderAsync(() =>
            Enumerable.Range(0, 5).Select(_ => _engine.Batcher.Submit(Request("batch-jobs", priority: PriorityClass.Batch)))
                .Concat(Enumerable.Range(0, 5).Select(_ => _engine.Batcher.Submit(Request("chat-users"))))
                .ToList());

        Assert.Equal(Enumerable.Repeat("chat-users", 5).Concat(Enumerable.Repeat("batch-jobs", 5)), order);
    }

    [Fact]
    public void Submit_OneTenantBeyondItsQueueShare_IsRefusedWhileOthersStillFit()
    {
        var release = new TaskCompletionSource();
        _engine.Batcher.BeforeStep = async _ => await release.Task;
        var accepted = new List<GenerationStream>();
        try
        {
            // The only slot is taken and held, so every request below stays queued and counts against its tenant.
            accepted.Add(_engine.Batcher.Submit(Request("blocker")));
            SpinWait.SpinUntil(() => _engine.Batcher.RunningCount == 1, TimeSpan.FromSeconds(30));
            Assert.Equal(1, _engine.Batcher.RunningCount);
            accepted.Clear();

            var ex = Assert.Throws<TenantQueueFullException>(() =>
            {
                for (var i = 0; i < 1000; i++)
                {
                    accepted.Add(_engine.Batcher.Submit(Request("flood")));
                }
            });
            Assert.Equal("flood", ex.Tenant);
            Assert.Equal(101, accepted.Count); // half the queue (200 / 2) plus one per batch slot
            accepted.Add(_engine.Batcher.Submit(Request("other")));
        }
        finally
        {
            _engine.Batcher.BeforeStep = null;
            release.SetResult();
        }
    }
}
