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
    public static NodeLoad Clamp(NodeLoad load)
    {
        ArgumentNullException.ThrowIfNull(load);
        return load with
        {
            Models = [.. (load.Models ?? []).Where(m => m is not null).Take(MaxItems).Select(Clamp)],
            Accelerators = [.. (load.Accelerators ?? []).Where(a => a is not null).Take(MaxItems).Select(Clamp)],
            Available = load.Available is null ? null : [.. load.Available.Where(a => a is not null).Take(MaxItems).Select(Name)],
            DeviceClass = load.DeviceClass is null ? null : Name(load.DeviceClass),
        };
    }

    private static ModelLoad Clamp(ModelLoad model) => model with
    {
        Model = Name(model.Model ?? string.Empty),
        Running = Count(model.Running),
        FreeSlots = Count(model.FreeSlots),
        QueueDepth = Count(model.QueueDepth),
        KvCacheUse = double.IsNaN(model.KvCacheUse) ? 0 : Math.Clamp(model.KvCacheUse, 0, 1),
        FromGateways = model.FromGateways?.Where(g => g.Key is not null).Take(MaxItems)
            .GroupBy(g => Name(g.Key), StringComparer.Ordinal).ToDictionary(g => g.Key, g => Count(g.Max(x => x.Value)), StringComparer.Ordinal),
    };

    private static Accelerator Clamp(Accelerator accelerator)
    {
        var total = Math.Clamp(accelerator.MemoryTotalMiB, 0, MaxMemoryMiB);
        return accelerator with
        {
            Kind = Name(accelerator.Kind ?? string.Empty),
            Name = Name(accelerator.Name ?? string.Empty),
            MemoryTotalMiB = total,
            MemoryUsedMiB = Math.Clamp(accelerator.MemoryUsedMiB, 0, total),
        };
    }

    private static int Count(int value) => Math.Clamp(value, 0, MaxCount);

    private static string Name(string value) => value.Length <= MaxNameLength ? value : value[..MaxNameLength];
}
