// Copyright (c) Sovereign contributors. Licensed under the MIT License.

namespace Sovereign.Inference.Tests.Gguf;

/// <summary>A fresh temporary directory per test, deleted on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sovereign-gguf-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A native library may still hold a mapping of a model file; the OS temp cleaner gets it later.
        }
    }
}

/// <summary>Locates the real GGUF models in <c>shared/models</c>, beside or above the repository.</summary>
internal static class SharedGgufModels
{
    private static readonly Lazy<string> Folder = new(Find);

    public static string Stories260K => System.IO.Path.Combine(Folder.Value, "stories260K.gguf");

    public static string TinyRandomLlama2 => System.IO.Path.Combine(Folder.Value, "llama-2-tiny-random.gguf");

    private static string Find()
    {
        // Walk up from the test binaries: /work/main/tests/.../bin/... reaches /work, which holds shared/models.
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "shared", "models");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException($"No shared/models folder above {AppContext.BaseDirectory}.");
    }
}
