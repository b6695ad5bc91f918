using Sovereign.Cluster.Grains;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// A node's device class for pricing (<c>h100</c>, <c>a100</c>, <c>rtx-4090</c>, <c>cpu</c>): named by the operator
/// (<c>Sovereign:Cluster:DeviceClass</c>, or an external engine's registration) or derived from the accelerators it
/// reports: the first GPU's model (vendor words and memory sizes dropped, lower case), else <c>cpu</c>. One
/// vocabulary, in lower case: an operator's <c>H100</c> (join token, registration, setting) is <c>h100</c>, the class
/// derived from an H100's name, so usage and invoices see one class, as prices always did.
/// </summary>
public static class DeviceClasses
{
    /// <summary>The class of a node that reported nothing (an external engine registered without one).</summary>
    public const string Unknown = "unknown";

    /// <summary>The class of a node without GPUs.</summary>
    public const string Cpu = "cpu";

    /// <summary>
    /// The stored spelling of a class named anywhere (lower case), or null for none. Applied where a class enters:
    /// a join token, a registration, the setting, and a credential or report from before classes were lower case.
    /// </summary>
    public static string? Canonical(string? deviceClass) => deviceClass?.ToLowerInvariant();

    private static readonly HashSet<string> VendorWords = new(StringComparer.OrdinalIgnoreCase) { "nvidia", "geforce", "tesla", "quadro", "amd", "radeon", "instinct", "intel" };

    /// <summary>The class the accelerators suggest, or null when there are none.</summary>
    public static string? Of(IReadOnlyList<Accelerator>? accelerators)
    {
        if (accelerators is not { Count: > 0 })
        {
            return null;
        }

        var gpu = accelerators.FirstOrDefault(a => string.Equals(a.Kind, "gpu", StringComparison.OrdinalIgnoreCase));
        return gpu is null ? Cpu : OfGpuName(gpu.Name);
    }

    /// <summary>
    /// The class of a GPU from its marketing name: the first word with both letters and digits (<c>NVIDIA H100 80GB
    /// HBM3</c> is <c>h100</c>, <c>NVIDIA A100-SXM4-80GB</c> is <c>a100</c>), else the first two words joined
    /// (<c>NVIDIA GeForce RTX 4090</c> is <c>rtx-4090</c>).
    /// </summary>
    public static string OfGpuName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var words = name.Split([' ', '-', '_', '(', ')', ','], StringSplitOptions.RemoveEmptyEntries)
            .Where(w => !VendorWords.Contains(w) && !IsMemorySize(w))
            .Select(w => new string([.. w.Where(char.IsAsciiLetterOrDigit)]).ToLowerInvariant())
            .Where(w => w.Length > 0)
            .ToList();
        var model = words.FirstOrDefault(w => w.Any(char.IsAsciiLetter) && w.Any(char.IsAsciiDigit));
        var named = model ?? string.Join('-', words.Take(2));
        return named.Length is > 0 and <= 64 ? named : "gpu";
    }

    private static bool IsMemorySize(string word) =>
        word.Length > 2 && word.EndsWith("GB", StringComparison.OrdinalIgnoreCase) && word[..^2].All(char.IsAsciiDigit);
}
