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
