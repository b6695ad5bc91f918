using System.Collections;
using Sovereign.Residency.Jurisdictions;

namespace Sovereign.Residency.Policies;

public static partial class RoutingDecider
{
    /// <summary>
    /// The decision <see cref="Decide(RoutingRequest)"/> makes over <see cref="RoutingRequest.Replicas"/> together with
    /// every replica of <paramref name="index"/> in the state <paramref name="states"/> reads now (holding the prompt's
    /// prefix where it runs on <paramref name="prefixNodeId"/>), made without visiting the replicas of a jurisdiction
    /// or kind the policy excludes, without a record per replica, and with node ids compared once per snapshot (the
    /// index's ranks). The reasons that explain excluded and unavailable replicas are written only as far as they are
    /// read (an audit entry keeps the first ones), in the same order and words.
    /// </summary>
    public static RoutingDecision Decide(RoutingRequest request, ReplicaIndex index, IReplicaStates states, string? prefixNodeId)
    {
        ArgumentNullException.ThrowIfNull(index);
        return DecideIndexed(request, index, null, null, states, prefixNodeId);
    }

    /// <summary>
    /// As <see cref="Decide(RoutingRequest, ReplicaIndex, IReplicaStates, string?)"/>, where every replica not in
    /// <paramref name="deviated"/> is in its <paramref name="baseline"/> state now (the caller's promise; null: any may
    /// differ). A group whose replicas all have capacity at baseline is then decided from the few that differ and the
    /// baseline order, not by reading each replica: the decision is the same.
    /// </summary>
    public static RoutingDecision Decide(RoutingRequest request, ReplicaBaseline baseline, IReadOnlyList<int>? deviated, IReplicaStates states, string? prefixNodeId)
    {
        ArgumentNullException.ThrowIfNull(baseline);
        return DecideIndexed(request, baseline.Index, baseline, deviated, states, prefixNodeId);
    }


    private static RoutingDecision DecideIndexed(RoutingRequest request, ReplicaIndex index, ReplicaBaseline? baseline, IReadOnlyList<int>? deviated, IReplicaStates states, string? prefixNodeId)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(states);
        if (Admit(request, out var admitted) is { } refused)
        {
            return refused;
        }

        var (policy, allowed, gateway, modelId, head) = admitted;
        var total = 0;
        var compliantCount = 0;
        var readyCount = 0;
        var localReady = 0;
        var explainedCount = 0;
        List<ExcludedGroup>? excluded = null;
        List<(int Index, ReplicaState State)>? unavailable = null;
        var prefixHolders = index.ReplicasOn(prefixNodeId);
        var best = -1;
        var bestState = default(ReplicaState);
        var bestLocal = false;
        var bestHolds = false;
        // The replicas that differ from baseline (the prompt's prefix holders too: they win ties), by group.
        var byGroup = baseline is null || deviated is null ? null : DeviatedByGroup(index, deviated, prefixHolders);
        var at = 0;
        for (var g = 0; g < index.Groups.Length; g++)
        {
            // A policy allows or excludes a jurisdiction and kind as a whole: an excluded group is counted, not visited.
            var group = index.Groups[g];
            var members = group.Members;
            var from = at;
            while (byGroup is not null && at < byGroup.Length && index.GroupOf[byGroup[at]] == g)
            {
                at++;
            }

            total += members.Length;
            var inAllowedPlace = group.Place is not null && allowed.Contains(group.Place);
            var kindAllowed = !group.External || policy.AllowExternalProviders;
            if (!inAllowedPlace || !kindAllowed)
            {
                (excluded ??= []).Add(new ExcludedGroup(group, inAllowedPlace, kindAllowed));
                explainedCount += members.Length * ((inAllowedPlace ? 0 : 1) + (kindAllowed ? 0 : 1));
                continue;
            }

            compliantCount += members.Length;
            var isLocal = group.Place == gateway;
            // Reading the whole group is cheaper when most of it differs from baseline.
            if (byGroup is not null && baseline!.AllReady[g] && at - from <= members.Length / 2)
            {
                // Every other replica is ready at baseline: count it, and take the first of the order as their best.
                var changed = byGroup.AsSpan(from, at - from);
                var ready = members.Length;
                foreach (var i in changed)
                {
                    var state = states.Read(i);
                    if (!state.HasCapacity)
                    {
                        ready--;
                        (unavailable ??= []).Add((i, state));
                        continue;
                    }

                    var holds = prefixHolders.Contains(i);
                    if (best < 0 || CompareIndexed(index, i, state, isLocal, holds, best, bestState, bestLocal, bestHolds) < 0)
                    {
                        (best, bestState, bestLocal, bestHolds) = (i, state, isLocal, holds);
                    }
                }

                foreach (var i in baseline.Order[g])
                {
                    if (changed.BinarySearch(i) >= 0)
                    {
                        continue;
                    }

                    var state = baseline.States[i];
                    if (best < 0 || CompareIndexed(index, i, state, isLocal, false, best, bestState, bestLocal, bestHolds) < 0)
                    {
                        (best, bestState, bestLocal, bestHolds) = (i, state, isLocal, false);
                    }

                    break;
                }

                readyCount += ready;
                localReady += isLocal ? ready : 0;
                continue;
            }

            foreach (var i in members)
            {
                var state = states.Read(i);
                if (!state.HasCapacity)
                {
                    (unavailable ??= []).Add((i, state));
                    continue;
                }

                readyCount++;
                localReady += isLocal ? 1 : 0;
                var holds = prefixHolders.Contains(i);
                if (best < 0 || CompareIndexed(index, i, state, isLocal, holds, best, bestState, bestLocal, bestHolds) < 0)
                {
                    (best, bestState, bestLocal, bestHolds) = (i, state, isLocal, holds);
                }
            }
        }

        explainedCount += unavailable?.Count ?? 0;

        // The few replicas outside the index (this process's engine, nodes without the model loaded), as Decide does.
        var chosen = best < 0 ? null : states.Record(best, bestState, bestHolds);
        var chosenLocal = bestLocal;
        List<Explained>? extras = null;
        foreach (var replica in request.Replicas ?? [])
        {
            if (replica is null)
            {
                continue;
            }

            total++;
            var place = JurisdictionCatalog.Normalize(replica.Jurisdiction);
            var inAllowedPlace = place is not null && allowed.Contains(place);
            var kindAllowed = replica.Kind == NodeKind.Local || policy.AllowExternalProviders;
            if (!inAllowedPlace || !kindAllowed)
            {
                (extras ??= []).Add(new Explained(replica, place, inAllowedPlace, kindAllowed));
                explainedCount += (inAllowedPlace ? 0 : 1) + (kindAllowed ? 0 : 1);
                continue;
            }

            compliantCount++;
            if (!replica.HasCapacity)
            {
                (extras ??= []).Add(new Explained(replica, place, true, true));
                explainedCount++;
                continue;
            }

            readyCount++;
            var isLocal = place == gateway;
            localReady += isLocal ? 1 : 0;
            if (chosen is null || CapacityOrder.Compare(replica, isLocal, chosen, chosenLocal) < 0)
            {
                (chosen, chosenLocal) = (replica, isLocal);
            }
        }

        var outcome = Conclude(policy, allowed, gateway, modelId, total, compliantCount, readyCount, localReady, chosen, chosenLocal);
        return outcome.With(new IndexedReasons(head, explainedCount, outcome.FinalReason, index, excluded, unavailable, extras));
    }

    /// <summary>The distinct replicas of <paramref name="deviated"/> and <paramref name="prefixHolders"/>, by group, then index.</summary>
    private static int[] DeviatedByGroup(ReplicaIndex index, IReadOnlyList<int> deviated, ReadOnlySpan<int> prefixHolders)
    {
        // Sorted as (group, index) packed in a long: a primitive sort, no comparer per comparison.
        var groupOf = index.GroupOf;
        var keys = new long[deviated.Count + prefixHolders.Length];
        for (var k = 0; k < deviated.Count; k++)
        {
            keys[k] = ((long)groupOf[deviated[k]] << 32) | (uint)deviated[k];
        }

        for (var k = 0; k < prefixHolders.Length; k++)
        {
            keys[deviated.Count + k] = ((long)groupOf[prefixHolders[k]] << 32) | (uint)prefixHolders[k];
        }

        Array.Sort(keys);
        var distinct = new List<int>(keys.Length);
        for (var k = 0; k < keys.Length; k++)
        {
            if (k == 0 || keys[k] != keys[k - 1])
            {
                distinct.Add((int)(keys[k] & uint.MaxValue));
            }
        }

        return [.. distinct];
    }

    /// <summary><see cref="CapacityOrder"/> on indexed replicas: the node-id order is the index's rank.</summary>
    internal static int CompareIndexed(ReplicaIndex index, int x, ReplicaState xs, bool xLocal, bool xHolds, int y, ReplicaState ys, bool yLocal, bool yHolds)
    {
        var c = yLocal.CompareTo(xLocal);
        if (c == 0) c = ((long)xs.Load * ys.Capacity).CompareTo((long)ys.Load * xs.Capacity);
        if (c == 0) c = yHolds.CompareTo(xHolds);
        if (c == 0) c = index.Ranks[x].CompareTo(index.Ranks[y]);
        return c != 0 ? c : CompareStates(xs, ys);
    }

    /// <summary>The tail of <see cref="ReplicaOrder"/>: what orders replicas equal on node, jurisdiction and kind.</summary>
    private static int CompareStates(ReplicaState x, ReplicaState y)
    {
        var c = x.Healthy.CompareTo(y.Healthy);
        if (c == 0) c = x.Load.CompareTo(y.Load);
        return c != 0 ? c : x.Capacity.CompareTo(y.Capacity);
    }

    private readonly record struct ExcludedGroup(ReplicaIndex.ReplicaGroup Group, bool InAllowedPlace, bool KindAllowed);

    private readonly record struct Explained(ModelReplica Replica, string? Place, bool InAllowedPlace, bool KindAllowed);

    /// <summary>
    /// The reasons of an indexed decision: the policy's, then one or two per excluded or unavailable replica in the
    /// replicas' order, then the outcome. The middle is merged from the excluded groups (each in rank order), the
    /// unavailable replicas and the replicas outside the index only up to the entry read, so an audit entry that keeps
    /// the first sixty reasons of a thousand excluded replicas writes sixty.
    /// </summary>
    private sealed class IndexedReasons : IReadOnlyList<string>
    {
        private readonly List<string> _head;
        private readonly int _explainedCount;
        private readonly string _final;
        private readonly ReplicaIndex _index;
        private readonly ExcludedGroup[] _excluded;
        private readonly int[] _excludedAt;
        private readonly (int Index, ReplicaState State)[] _unavailable;
        private readonly Explained[] _extras;
        private readonly List<string> _explained = [];
        private int _unavailableAt;
        private int _extrasAt;
        private bool _sorted;

        public IndexedReasons(
            List<string> head, int explainedCount, string final, ReplicaIndex index, List<ExcludedGroup>? excluded, List<(int, ReplicaState)>? unavailable, List<Explained>? extras)
        {
            _head = head;
            _explainedCount = explainedCount;
            _final = final;
            _index = index;
            _excluded = excluded is null ? [] : [.. excluded];
            _excludedAt = new int[_excluded.Length];
            _unavailable = unavailable is null ? [] : [.. unavailable];
            _extras = extras is null ? [] : [.. extras];
        }

        public int Count => _head.Count + _explainedCount + 1;

        public string this[int index]
        {
            get
            {
                ArgumentOutOfRangeException.ThrowIfNegative(index);
                ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
                if (index < _head.Count)
                {
                    return _head[index];
                }

                var k = index - _head.Count;
                if (k == _explainedCount)
                {
                    return _final;
                }

                while (_explained.Count <= k)
                {
                    ExplainNext();
                }

                return _explained[k];
            }
        }

        public IEnumerator<string> GetEnumerator()
        {
            for (var i = 0; i < Count; i++)
            {
                yield return this[i];
            }
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

        private void ExplainNext()
        {
            if (!_sorted)
            {
                var ranks = _index.Ranks;
                Array.Sort(_unavailable, (x, y) => ranks[x.Index] != ranks[y.Index] ? ranks[x.Index].CompareTo(ranks[y.Index]) : CompareStates(x.State, y.State));
                Array.Sort(_extras, static (x, y) => ReplicaOrder.Instance.Compare(x.Replica, y.Replica));
                _sorted = true;
            }

            // The first in the replicas' order among the heads of the excluded groups and the unavailable replicas
            // (different sites, so ranks decide), then against the next replica outside the index.
            var group = -1;
            for (var g = 0; g < _excluded.Length; g++)
            {
                if (_excludedAt[g] < _excluded[g].Group.Members.Length
                    && (group < 0 || _index.Ranks[Head(g)] < _index.Ranks[Head(group)]))
                {
                    group = g;
                }
            }

            var fromUnavailable = _unavailableAt < _unavailable.Length
                && (group < 0 || _index.Ranks[_unavailable[_unavailableAt].Index] < _index.Ranks[Head(group)]);
            var indexed = fromUnavailable ? _unavailable[_unavailableAt].Index : group >= 0 ? Head(group) : -1;
            if (_extrasAt < _extras.Length && (indexed < 0 || CompareToIndexed(_extras[_extrasAt].Replica, indexed, fromUnavailable) < 0))
            {
                var (replica, place, inAllowedPlace, kindAllowed) = _extras[_extrasAt++];
                Explain(_explained, replica.NodeId, place, inAllowedPlace, kindAllowed, new ReplicaState(replica.Healthy, replica.Load, replica.Capacity, replica.Draining, replica.Outage));
                return;
            }

            if (indexed < 0)
            {
                throw new InvalidOperationException("Fewer replicas to explain than counted.");
            }

            var site = _index.Sites[indexed];
            if (fromUnavailable)
            {
                Explain(_explained, site.NodeId, _index.Places[indexed], true, true, _unavailable[_unavailableAt++].State);
            }
            else
            {
                var (_, inAllowedPlace, kindAllowed) = _excluded[group];
                _excludedAt[group]++;
                Explain(_explained, site.NodeId, _index.Places[indexed], inAllowedPlace, kindAllowed, default);
            }
        }

        private int Head(int group) => _excluded[group].Group.Members[_excludedAt[group]];

        // An excluded replica equal to one outside the index on node, jurisdiction and kind is excluded by the same
        // rules, so its reasons read the same whichever comes first; an unavailable one is ordered by its state too.
        private int CompareToIndexed(ModelReplica extra, int indexed, bool unavailable)
        {
            var c = ReplicaIndex.CompareSites(new ReplicaSite(extra.NodeId, extra.Jurisdiction, extra.Kind), _index.Sites[indexed]);
            return c != 0 || !unavailable ? c : CompareStates(new ReplicaState(extra.Healthy, extra.Load, extra.Capacity, extra.Draining, extra.Outage), _unavailable[_unavailableAt].State);
        }
    }
}
