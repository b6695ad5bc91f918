namespace Sovereign.Gateway.FunctionalTests;

/// <summary>The tiny real GGUF models in <c>../shared/models/</c> beside the repository.</summary>
internal static class TestModels
{
    private static readonly Lazy<string> Folder = new(FindFolder);

    /// <summary>Trained TinyStories model, 512-token vocabulary: writes readable English.</summary>
    public static string Stories260K => Path.Combine(Folder.Value, "stories260K.gguf");

    /// <summary>Random weights with the real 32k Llama-2 vocabulary.</summary>
    public static string TinyRandomLlama2 => Path.Combine(Folder.Value, "llama-2-tiny-random.gguf");

    private static string FindFolder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "models");
            if (File.Exists(Path.Combine(candidate, "stories260K.gguf")))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("The test models were not found: expected ../shared/models/ beside the repository.");
    }
}
