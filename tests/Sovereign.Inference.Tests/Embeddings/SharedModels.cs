namespace Sovereign.Inference.Tests.Embeddings;

/// <summary>Finds the repository's shared test models (<c>shared/models</c>) wherever the repo is checked out.</summary>
internal static class SharedModels
{
    private static readonly Lazy<string> Directory = new(Find);

    /// <summary>Full path of a file in <c>shared/models</c>.</summary>
    public static string PathOf(string fileName) => Path.Combine(Directory.Value, fileName);

    // Walks up from the test binaries: here shared/ sits above the repo root, in CI beside it; both are ancestors' children.
    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "models");
            if (System.IO.Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException(
            $"No 'shared/models' folder in any parent of {AppContext.BaseDirectory}; the GGUF test models live there.");
    }
}
