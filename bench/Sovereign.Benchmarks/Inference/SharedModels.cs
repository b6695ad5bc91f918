namespace Sovereign.Benchmarks.Inference;

/// <summary>The test models beside the repository (<c>../shared/models/</c>), for benchmarks run without --model.</summary>
internal static class SharedModels
{
    /// <summary>The path of <paramref name="name"/> in the nearest <c>shared/models</c> above the benchmark's binaries.</summary>
    public static string Find(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "models", name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new ArgumentException($"model '{name}' not found under ../shared/models/; pass --model PATH");
    }
}
