// Copyright (c) Sovereign contributors. Licensed under the MIT License.

namespace Sovereign.Inference.Registry;

/// <summary>What went wrong in a registry operation.</summary>
public enum ModelRegistryError
{
    /// <summary>A bad argument: id, licence, country, language, digest or source. Nothing was touched.</summary>
    InvalidArgument,

    /// <summary>No model with that id, or no file at the path given to import.</summary>
    NotFound,

    /// <summary>A model with that id is already registered.</summary>
    AlreadyExists,

    /// <summary>The file is not a GGUF model llama.cpp could load.</summary>
    InvalidModel,

    /// <summary>The file's SHA-256 is not the one given, published or registered.</summary>
    DigestMismatch,

    /// <summary>No digest was given or published, and unverified pulls are not allowed.</summary>
    DigestUnavailable,

    /// <summary>The server refused the download (4xx, a bad redirect, too many redirects). Retrying will not help.</summary>
    DownloadFailed,

    /// <summary>The connection dropped or stalled; the partial download is kept and the next pull resumes it.</summary>
    DownloadInterrupted,

    /// <summary>Not enough free space for the model, or the disk filled up while writing it.</summary>
    DiskFull,

    /// <summary>The model directory cannot be created or written.</summary>
    DirectoryNotWritable,

    /// <summary>Another process holds the registry (or the same partial download) for longer than the lock timeout.</summary>
    Busy,

    /// <summary><c>registry.json</c> cannot be read.</summary>
    CorruptManifest,

    /// <summary>A registered model's file is missing.</summary>
    BlobMissing,

    /// <summary>A running server has the model loaded: it is unloaded first (<c>sovereign models unload</c>).</summary>
    InUse,
}

/// <summary>A registry operation failed. The message names the problem; nothing half-installed is left behind.</summary>
public class ModelRegistryException : Exception
{
    public ModelRegistryException()
        : this(ModelRegistryError.InvalidArgument, "The model registry operation failed.")
    {
    }

    public ModelRegistryException(string message)
        : this(ModelRegistryError.InvalidArgument, message)
    {
    }

    public ModelRegistryException(string message, Exception innerException)
        : this(ModelRegistryError.InvalidArgument, message, innerException)
    {
    }

    public ModelRegistryException(ModelRegistryError error, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Error = error;
    }

    /// <summary>The kind of failure.</summary>
    public ModelRegistryError Error { get; }

    /// <summary>
    /// True when the caller asked for something wrong (a CLI exits 2), false for an operational failure (exit 1). An
    /// id the registry does not hold is a failure, as the CLI's other "no such id" answers are.
    /// </summary>
    public bool IsBadInput => Error is ModelRegistryError.InvalidArgument or ModelRegistryError.AlreadyExists;
}

/// <summary>
/// A model file's SHA-256 is not the registered one (or the file is gone): the registry refuses to hand it out for
/// loading. Raised by <see cref="ModelRegistry.OpenForLoadAsync"/>, after the registry has reported the refusal to its
/// audit sink.
/// </summary>
public sealed class ModelDigestMismatchException : ModelRegistryException
{
    public ModelDigestMismatchException()
        : this("A model file's digest differs from the registry's.")
    {
    }

    public ModelDigestMismatchException(string message)
        : base(ModelRegistryError.DigestMismatch, message)
    {
        ModelId = "";
        ExpectedDigest = "";
        Path = "";
    }

    public ModelDigestMismatchException(string message, Exception innerException)
        : base(ModelRegistryError.DigestMismatch, message, innerException)
    {
        ModelId = "";
        ExpectedDigest = "";
        Path = "";
    }

    public ModelDigestMismatchException(string modelId, string expectedDigest, string? actualDigest, string path)
        : base(actualDigest is null ? ModelRegistryError.BlobMissing : ModelRegistryError.DigestMismatch, Describe(modelId, expectedDigest, actualDigest, path))
    {
        ModelId = modelId;
        ExpectedDigest = expectedDigest;
        ActualDigest = actualDigest;
        Path = path;
    }

    /// <summary>The model refused.</summary>
    public string ModelId { get; }

    /// <summary>The digest in the registry.</summary>
    public string ExpectedDigest { get; }

    /// <summary>The digest of the file on disk now; null when the file is missing.</summary>
    public string? ActualDigest { get; }

    /// <summary>The model file.</summary>
    public string Path { get; }

    private static string Describe(string modelId, string expected, string? actual, string path) => actual is null
        ? $"Model '{modelId}' is refused: its file {path} is missing (expected {expected})."
        : $"Model '{modelId}' is refused: its file {path} has digest {actual}, but the registry has {expected}. The file was modified after installation; pull or import it again.";
}
