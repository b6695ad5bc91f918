// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Collections.Concurrent;
using System.Security.Cryptography;
using Sovereign.Inference.Registry;

namespace Sovereign.Inference.Tests.Registry;

/// <summary>A fresh model directory per test, registry options suited to tests, and the events the registry raised.</summary>
internal sealed class RegistryTestContext : IDisposable
{
    public const string StoriesDigest = "sha256:270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d";
    public const string TinyRandomDigest = "sha256:81f226c62d28ed4a1a9b9fa080fcd9f0cc40e0f9d5680036583ff98fbcd035cb";

    public RegistryTestContext()
    {
        Root = Path.Combine(Path.GetTempPath(), "sovereign-registry-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Root);
        ModelDirectory = Path.Combine(Root, "models");
    }

    public string Root { get; }

    public string ModelDirectory { get; }

    public ConcurrentQueue<ModelRegistryEvent> Events { get; } = new();

    public static byte[] Stories => File.ReadAllBytes(TestModels.Stories260K);

    public ModelRegistryOptions Options(Uri? huggingFace = null, Func<string, long?>? freeSpace = null, int maxRetries = 3, string? directory = null) => new()
    {
        Directory = directory ?? ModelDirectory,
        HuggingFaceEndpoint = huggingFace ?? new Uri("https://huggingface.invalid/"),
        HuggingFaceToken = null,
        CreateHttpHandler = () => new SocketsHttpHandler { AllowAutoRedirect = false, UseProxy = false },
        MaxRetries = maxRetries,
        RetryDelay = TimeSpan.Zero,
        AvailableFreeSpace = freeSpace ?? (_ => null),
        OnEvent = (e, _) =>
        {
            Events.Enqueue(e);
            return ValueTask.CompletedTask;
        },
    };

    public ModelRegistry Registry(Uri? huggingFace = null, Func<string, long?>? freeSpace = null, int maxRetries = 3) =>
        new(Options(huggingFace, freeSpace, maxRetries));

    public string Copy(string source, string name)
    {
        var path = Path.Combine(Root, name);
        File.Copy(source, path);
        return path;
    }

    public static ImportOptions Import(string id = "stories", string license = "MIT", string? digest = null, bool move = false) => new()
    {
        Id = id,
        License = license,
        OriginPublisher = "Andrej Karpathy",
        OriginCountry = "US",
        Languages = ["en"],
        ExpectedDigest = digest,
        Move = move,
    };

    public static PullRequest Pull(string source, string id = "stories", string? digest = null, string license = "MIT", bool allowUnverified = false) => new()
    {
        Source = source,
        Id = id,
        License = license,
        OriginPublisher = "ggml-org",
        OriginCountry = "US",
        Languages = ["en"],
        ExpectedDigest = digest,
        AllowUnverified = allowUnverified,
    };

    public static string DigestOf(byte[] content) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));

    /// <summary>No entry, no blob, and (unless allowed) no staged or partial file.</summary>
    public static void AssertNothingInstalled(ModelRegistry registry, bool partialAllowed = false)
    {
        Assert.Empty(registry.List());
        Assert.Empty(FilesIn(registry.BlobsDirectory));
        if (!partialAllowed)
        {
            Assert.Empty(FilesIn(registry.DownloadsDirectory));
        }

        Assert.DoesNotContain(FilesIn(registry.ModelDirectory), f => f.EndsWith(".tmp", StringComparison.Ordinal) || f.EndsWith(".partial", StringComparison.Ordinal));
    }

    public static string[] FilesIn(string directory) => Directory.Exists(directory) ? Directory.GetFiles(directory) : [];

    /// <summary>Flips one byte of a blob in the tensor data (after making it writable: blobs are read-only).</summary>
    public static void Tamper(string path, long offsetFromEnd = 100)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        else
        {
            File.SetAttributes(path, FileAttributes.Normal);
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = stream.Length - offsetFromEnd;
        var b = stream.ReadByte();
        stream.Position = stream.Length - offsetFromEnd;
        stream.WriteByte((byte)(b ^ 0xFF));
    }

    public void Dispose()
    {
        try
        {
            // Make read-only blobs deletable on Windows; never touch what a symbolic link points to (/dev/full).
            foreach (var file in Directory.EnumerateFiles(Root, "*", SearchOption.AllDirectories))
            {
                if (new FileInfo(file).LinkTarget is null)
                {
                    File.SetAttributes(file, FileAttributes.Normal);
                }
            }

            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // The OS temp cleaner gets it later.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
