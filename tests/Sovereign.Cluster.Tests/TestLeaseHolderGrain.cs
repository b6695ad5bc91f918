using System.Collections.Concurrent;
using Sovereign.Cluster.Grains;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// A gateway's budget lease table as the tests' silos host it (the gateway's own, <c>BudgetLeaseHolderGrain</c>, is in
/// the gateway's assembly): for a tenant in <see cref="Silent"/> it never answers until the test completes that tenant's
/// source (a gateway cut off, or too slow to answer); for any other it cannot be reached (it throws at once), as a silo
/// without a lease table answers. Each reclaim asked of it is counted per tenant.
/// </summary>
[Orleans.Concurrency.Reentrant]
public sealed class TestLeaseHolderGrain : Grain, IBudgetLeaseHolderGrain
{
    /// <summary>The tenants whose reclaims and recalls wait on their source here.</summary>
    public static ConcurrentDictionary<string, TaskCompletionSource> Silent { get; } = new(StringComparer.Ordinal);

    /// <summary>How many reclaims of each tenant's leases reached this table.</summary>
    public static ConcurrentDictionary<string, int> Reclaims { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// For a tenant here, how this table answers its recalls: given the recall's number (1 for the first of the tenant's
    /// recalls to reach any test silo), the task to answer with. Each recall is counted in <see cref="RecallCounts"/>.
    /// </summary>
    public static ConcurrentDictionary<string, Func<int, Task>> RecallAnswers { get; } = new(StringComparer.Ordinal);

    /// <summary>How many recalls of each tenant in <see cref="RecallAnswers"/> reached a test silo's table.</summary>
    public static ConcurrentDictionary<string, int> RecallCounts { get; } = new(StringComparer.Ordinal);

    public Task RecallAsync(string tenantId)
    {
        if (RecallAnswers.TryGetValue(tenantId, out var answer))
        {
            return answer(RecallCounts.AddOrUpdate(tenantId, 1, (_, n) => n + 1));
        }

        return Silent.TryGetValue(tenantId, out var silent) ? silent.Task : throw new InvalidOperationException("This silo holds no budget leases.");
    }

    public async Task<IReadOnlyList<BudgetLeaseUnused>> ReclaimAsync(string tenantId)
    {
        Reclaims.AddOrUpdate(tenantId, 1, (_, n) => n + 1);
        if (!Silent.TryGetValue(tenantId, out var silent))
        {
            throw new InvalidOperationException("This silo holds no budget leases.");
        }

        await silent.Task;
        return [];
    }
}
