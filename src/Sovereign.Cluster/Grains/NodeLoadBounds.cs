using System.Globalization;
using Sovereign.Residency;

namespace Sovereign.Cluster.Grains;

/// <summary>
/// What the registry keeps of a node's load report (<see cref="NodeLoad"/>): the node writes it, so each value is held
/// to what a real node can report before gateways route by it, the console draws it and the CLI prints it. Running
/// plus queue depth near int.MaxValue overflowed to a negative load, which the router took for idle; negative slots,
/// a NaN KV-cache use and memory used above total were shown as sent; and a 5 MB accelerator name went into every
/// snapshot every gateway read each second.
/// </summary>
internal static class NodeLoadBounds
{
    /// <summary>The most slots, running requests or queued requests a model on a node is believed to have.</summary>
    public const int MaxCount = 1_000_000;

    /// <summary>The most models, accelerators, available models or gateways a report lists (the rest are dropped).</summary>
    public const int MaxItems = 256;

    /// <summary>The longest name kept (a model id, an accelerator's kind or name, a gateway id, a device class); longer ones are cut.</summary>
    public const int MaxNameLength = 256;

    /// <summary>The most memory an accelerator is believed to have: 16 TiB, in MiB.</summary>
    public const long MaxMemoryMiB = 16L * 1024 * 1024;

    /// <summary>The report with every count in [0, <see cref="MaxCount"/>], KV-cache use in [0, 1] (NaN: 0), memory in
    /// [0, <see cref="MaxMemoryMiB"/>] with used at most total, names cut and lists bounded.</summary>
    public static NodeLoad Clamp(NodeLoad load) => Clamp(load, out _);

    /// <summary>As <see cref="Clamp(NodeLoad)"/>; <paramref name="clamped"/> says what it had to change, each kind with its first example.</summary>
    public static NodeLoad Clamp(NodeLoad load, out IReadOnlyDictionary<NodeLoadClamp, string> clamped)
    {
        ArgumentNullException.ThrowIfNull(load);
        var seen = new Seen();
        var kept = load with
        {
            Models = [.. Bounded(load.Models, "models", seen).Select(m => Clamp(m, seen))],
            Accelerators = [.. Bounded(load.Accelerators, "accelerators", seen).Select(a => Clamp(a, seen))],
            Available = load.Available is null ? null : [.. Bounded(load.Available, "available models", seen).Select(a => Name(a, "an available model's id", seen))],
            DeviceClass = load.DeviceClass is null ? null : Name(load.DeviceClass, "its device class", seen),
        };
        clamped = seen.Kinds;
        return kept;
    }

    private static IEnumerable<T> Bounded<T>(IReadOnlyList<T?>? items, string what, Seen seen)
        where T : class
    {
        if (items is null)
        {
            return [];
        }

        var present = items.Where(i => i is not null).Select(i => i!).ToList();
        if (present.Count != items.Count || present.Count > MaxItems)
        {
            seen.Add(NodeLoadClamp.Lists, $"{items.Count} {what}{(present.Count != items.Count ? ", some null" : "")}, kept {Math.Min(present.Count, MaxItems)}");
        }

        return present.Take(MaxItems);
    }

    private static ModelLoad Clamp(ModelLoad model, Seen seen)
    {
        var name = Name(model.Model ?? string.Empty, "a model id", seen);
        var gateways = model.FromGateways;
        if (gateways is not null && (gateways.Count > MaxItems || gateways.Keys.Any(k => k is null)))
        {
            seen.Add(NodeLoadClamp.Lists, $"{gateways.Count} gateways sending to model '{Shown(name)}', kept at most {MaxItems}");
        }

        return model with
        {
            Model = name,
            Running = Count(model.Running, "running", name, seen),
            FreeSlots = Count(model.FreeSlots, "free slots", name, seen),
            QueueDepth = Count(model.QueueDepth, "queue depth", name, seen),
            KvCacheUse = KvCacheUse(model.KvCacheUse, name, seen),
            FromGateways = gateways?.Where(g => g.Key is not null).Take(MaxItems)
                .GroupBy(g => Name(g.Key, "a gateway id", seen), StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => Count(g.Max(x => x.Value), "requests from gateway '" + Shown(g.Key) + "'", name, seen), StringComparer.Ordinal),
        };
    }

    private static Accelerator Clamp(Accelerator accelerator, Seen seen)
    {
        var total = Math.Clamp(accelerator.MemoryTotalMiB, 0, MaxMemoryMiB);
        var used = Math.Clamp(accelerator.MemoryUsedMiB, 0, total);
        var name = Name(accelerator.Name ?? string.Empty, "an accelerator's name", seen);
        if (total != accelerator.MemoryTotalMiB || used != accelerator.MemoryUsedMiB)
        {
            seen.Add(NodeLoadClamp.Memory,
                string.Create(CultureInfo.InvariantCulture, $"accelerator '{Shown(name)}' memory used {accelerator.MemoryUsedMiB} of {accelerator.MemoryTotalMiB} MiB, kept {used} of {total}"));
        }

        return accelerator with
        {
            Kind = Name(accelerator.Kind ?? string.Empty, "an accelerator's kind", seen),
            Name = name,
            MemoryTotalMiB = total,
            MemoryUsedMiB = used,
        };
    }

    private static int Count(int value, string what, string model, Seen seen)
    {
        var kept = Math.Clamp(value, 0, MaxCount);
        if (kept != value)
        {
            seen.Add(NodeLoadClamp.Counts, string.Create(CultureInfo.InvariantCulture, $"{what} {value} on model '{Shown(model)}', kept {kept}"));
        }

        return kept;
    }

    private static double KvCacheUse(double value, string model, Seen seen)
    {
        var kept = double.IsNaN(value) ? 0 : Math.Clamp(value, 0, 1);
        if (!kept.Equals(value))
        {
            seen.Add(NodeLoadClamp.KvCacheUse, string.Create(CultureInfo.InvariantCulture, $"KV-cache use {value} on model '{Shown(model)}', kept {kept}"));
        }

        return kept;
    }

    private static string Name(string value, string what, Seen seen)
    {
        if (value.Length <= MaxNameLength)
        {
            return value;
        }

        seen.Add(NodeLoadClamp.Names, string.Create(CultureInfo.InvariantCulture, $"{what} of {value.Length} characters, cut at {MaxNameLength}"));
        return value[..MaxNameLength];
    }

    /// <summary>A name the node sent, as a log line may show it: at most 64 characters, every character that would act escaped.</summary>
    private static string Shown(string value) => DisplayText.Escaped(value.Length <= 64 ? value : value[..64] + "...");

    /// <summary>What one report had changed: the first example of each kind.</summary>
    private sealed class Seen
    {
        public Dictionary<NodeLoadClamp, string> Kinds { get; } = [];

        public void Add(NodeLoadClamp kind, string example) => Kinds.TryAdd(kind, example);
    }
}

/// <summary>A kind of value <see cref="NodeLoadBounds"/> had to change in a node's load report (logged once per node and kind).</summary>
internal enum NodeLoadClamp
{
    /// <summary>Running, free slots, queue depth or a gateway's count outside 0..<see cref="NodeLoadBounds.MaxCount"/>.</summary>
    Counts,

    /// <summary>A KV-cache use outside 0..1, or NaN.</summary>
    KvCacheUse,

    /// <summary>Accelerator memory outside 0..<see cref="NodeLoadBounds.MaxMemoryMiB"/>, or used above total.</summary>
    Memory,

    /// <summary>A name longer than <see cref="NodeLoadBounds.MaxNameLength"/>.</summary>
    Names,

    /// <summary>A list longer than <see cref="NodeLoadBounds.MaxItems"/>, or with null items.</summary>
    Lists,
}
