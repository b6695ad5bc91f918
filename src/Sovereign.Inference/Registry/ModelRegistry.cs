// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Gguf;
using Sovereign.Storage;

namespace Sovereign.Inference.Registry;

/// <summary>
/// The model registry: GGUF files stored by content (<c>blobs/sha256-HEX.gguf</c>, read-only once installed) and a
/// manifest (<c>registry.json</c>) of entries that name them. A file reaches <c>blobs/</c> only after its SHA-256
/// and GGUF header have been checked, and an entry reaches the manifest only after its file is in place; the manifest
/// is replaced atomically (temporary file, fsync, rename) under a lock file, so a CLI and a server can share the
/// directory. Downloads and copies are staged in <c>downloads/</c>; a failed one leaves no blob and no entry (only an
/// interrupted download keeps its <c>.partial</c> file, for the next pull to resume).
/// </summary>
public sealed class ModelRegistry : IDisposable
{
    /// <summary>The manifest's file name.</summary>
    public const string ManifestFileName = "registry.json";

    private const string LockFileName = "registry.lock";
    private const int MaxIdLength = 128;
    private const int MaxPublisherLength = 200;

    private static readonly Lazy<bool> RegionInfoWorks = new(() =>
    {
        try
        {
            return new RegionInfo("FR").TwoLetterISORegionName == "FR";
        }
        catch (ArgumentException)
        {
            return false;
        }
    });

    private readonly ModelRegistryOptions _options;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Lazy<ModelDownloader> _downloader;

    /// <summary>A registry over <see cref="ModelRegistryOptions.Directory"/>; nothing is created until something is installed.</summary>
    public ModelRegistry(ModelRegistryOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Directory);
        _options = options;
        ModelDirectory = Path.GetFullPath(options.Directory);
        BlobsDirectory = Path.Combine(ModelDirectory, "blobs");
        DownloadsDirectory = Path.Combine(ModelDirectory, "downloads");
        ManifestPath = Path.Combine(ModelDirectory, ManifestFileName);
        _downloader = new Lazy<ModelDownloader>(() => new ModelDownloader(options));
    }

    /// <summary>The model directory.</summary>
    public string ModelDirectory { get; }

    /// <summary>Where installed files live, named by digest.</summary>
    public string BlobsDirectory { get; }

    /// <summary>Where downloads and copies are staged (<c>*.partial</c>).</summary>
    public string DownloadsDirectory { get; }

    /// <summary>The manifest.</summary>
    public string ManifestPath { get; }

    /// <summary>The blob path for a digest: <c>blobs/sha256-HEX.gguf</c>.</summary>
    public string GetBlobPath(string digest) =>
        Path.Combine(BlobsDirectory, $"sha256-{ModelDigest.Hex(ModelDigest.Normalize(digest))}.gguf");

    /// <summary>All entries, by id.</summary>
    public IReadOnlyList<ModelEntry> List() => [.. ReadManifest().Models.OrderBy(m => m.Id, StringComparer.Ordinal)];

    /// <summary>The entry with this id (ordinal, case-sensitive), or null.</summary>
    public ModelEntry? Get(string id) => ReadManifest().Models.FirstOrDefault(m => string.Equals(m.Id, id, StringComparison.Ordinal));

    /// <summary>
    /// Adds a local GGUF file: copies it (or moves it, with <see cref="ImportOptions.Move"/>) into <c>downloads/</c>,
    /// hashes the staged copy, checks it against <see cref="ModelInstallOptions.ExpectedDigest"/> when given, reads
    /// its header, and installs it. On any failure nothing is installed and a moved file is moved back.
    /// </summary>
    public async Task<ModelEntry> ImportAsync(string path, ImportOptions options, IProgress<PullProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var declared = Validate(options);
        if (string.IsNullOrWhiteSpace(path))
        {
            throw new ModelRegistryException(ModelRegistryError.InvalidArgument, "No file given to import.");
        }

        var source = Path.GetFullPath(path);
        if (!File.Exists(source))
        {
            throw new ModelRegistryException(ModelRegistryError.NotFound,
                Directory.Exists(source) ? $"'{source}' is a directory, not a GGUF file." : $"There is no file at '{source}'.");
        }

        EnsureIdFree(declared.Id);
        EnsureWritable();
        var size = new FileInfo(source).Length;
        var staging = Path.Combine(DownloadsDirectory, $"import-{Guid.NewGuid():N}.partial");
        var moved = false;
        try
        {
            string digest;
            if (options.Move)
            {
                // Move first and hash the moved file: what is hashed is what gets installed.
                try
                {
                    File.Move(source, staging);
                    moved = true;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw IsDiskFull(ex)
                        ? StorageError(ex, staging)
                        : new ModelRegistryException(ModelRegistryError.InvalidArgument, $"Cannot move '{source}' into the registry: {ex.Message} (import without --move copies it instead).", ex);
                }

                digest = await HashStagedAsync(staging, size, progress, cancellationToken);
            }
            else
            {
                EnsureFreeSpace(size, $"import '{source}'");
                digest = await CopyAndHashAsync(source, staging, size, progress, cancellationToken);
            }

            if (declared.ExpectedDigest is { } expected && expected != digest)
            {
                throw new ModelRegistryException(ModelRegistryError.DigestMismatch,
                    $"'{source}' has digest {digest}, not the expected {expected}: refused, nothing installed.");
            }

            progress?.Report(new PullProgress(PullPhase.Installing, size, size));
            var facts = ReadFacts(staging, $"'{source}'");
            var entry = NewEntry(declared, digest, size, facts, "import:" + source,
                declared.ExpectedDigest is null ? DigestProvenance.Computed : DigestProvenance.Given);
            await InstallAsync(staging, entry, cancellationToken);
            return entry;
        }
        catch
        {
            if (!moved)
            {
                TryDelete(staging);
            }
            else if (File.Exists(staging))
            {
                try
                {
                    File.Move(staging, source);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // Never delete the operator's only copy: it stays in downloads/, unreferenced.
                }
            }

            throw;
        }
    }

    /// <summary>
    /// Downloads and adds a model. The digest is the one given, else the one published (Hugging Face's LFS ETag, or a
    /// <c>&lt;url&gt;.sha256</c> file); when both exist they must agree, and when neither does the pull is refused
    /// unless <see cref="PullRequest.AllowUnverified"/>. The download resumes a previous partial one, retries dropped
    /// connections, and is checked (digest, then GGUF header) before it is installed. On failure nothing is installed;
    /// only an interrupted (or cancelled) download keeps its partial file.
    /// </summary>
    public async Task<ModelEntry> PullAsync(PullRequest request, IProgress<PullProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var declared = Validate(request);
        var source = ModelSource.Parse(request.Source, _options.HuggingFaceEndpoint);
        EnsureIdFree(declared.Id);
        EnsureWritable();

        progress?.Report(new PullProgress(PullPhase.Resolving, 0, null));
        var remote = await _downloader.Value.ProbeAsync(source, trySidecar: declared.ExpectedDigest is null, cancellationToken);
        if (declared.ExpectedDigest is { } given && remote.PublishedDigest is { } published && given != published)
        {
            throw new ModelRegistryException(ModelRegistryError.DigestMismatch,
                $"The publisher's digest for {source.Original} is {published} ({remote.DigestOrigin}), not the given {given}: refused before downloading.");
        }

        var expected = declared.ExpectedDigest ?? remote.PublishedDigest;
        if (expected is null && !request.AllowUnverified)
        {
            throw new ModelRegistryException(ModelRegistryError.DigestUnavailable,
                $"No SHA-256 for {source.Original}: none was given and the server publishes none (no Hugging Face ETag, no {source.Url.AbsolutePath}.sha256). " +
                "Refusing to install an unverified model: pass the digest from the model card (--sha256), or allow unverified pulls explicitly.");
        }

        var provenance = declared.ExpectedDigest is not null ? DigestProvenance.Given
            : expected is not null ? DigestProvenance.Published
            : DigestProvenance.Computed;
        var partial = Path.Combine(DownloadsDirectory,
            expected is not null ? $"sha256-{ModelDigest.Hex(expected)}.partial" : $"url-{UrlKey(source.Url)}.partial");

        // Refused up front without touching an earlier partial download: nothing was written.
        if (remote.Size is { } announced)
        {
            EnsureFreeSpace(announced - LengthOrZero(partial), $"download {source.Original}");
        }

        var keepPartial = false;
        try
        {
            var result = await _downloader.Value.DownloadAsync(source, partial,
                remaining => EnsureFreeSpace(remaining, $"download {source.Original}"), progress, cancellationToken);
            if (expected is not null && result.Digest != expected)
            {
                var whose = provenance == DigestProvenance.Given ? "given" : $"published ({remote.DigestOrigin})";
                throw new ModelRegistryException(ModelRegistryError.DigestMismatch,
                    $"The download of {source.Original} has digest {result.Digest}, not the {whose} {expected}: refused, nothing installed.");
            }

            progress?.Report(new PullProgress(PullPhase.Installing, result.Size, result.Size));
            var facts = ReadFacts(partial, source.Original);
            var entry = NewEntry(declared, result.Digest, result.Size, facts, source.Original, provenance);
            await InstallAsync(partial, entry, cancellationToken);
            return entry;
        }
        catch (ModelRegistryException ex) when (ex.Error is ModelRegistryError.DownloadInterrupted or ModelRegistryError.Busy)
        {
            // Interrupted: keep it for the resume. Busy: it is another pull's file.
            keepPartial = true;
            throw;
        }
        catch (OperationCanceledException)
        {
            keepPartial = true;
            throw;
        }
        finally
        {
            if (!keepPartial)
            {
                TryDelete(partial);
            }
        }
    }

    /// <summary>
    /// Re-hashes every registered file and lists blobs no entry references. Failures are also reported to
    /// <see cref="ModelRegistryOptions.OnEvent"/>. Each file shared by several ids is hashed once.
    /// </summary>
    public async Task<ModelVerificationReport> VerifyAsync(IProgress<ModelVerification>? progress = null, CancellationToken cancellationToken = default)
    {
        var entries = List();
        var byDigest = new Dictionary<string, (ModelVerificationStatus Status, string? Actual, long? Size)>(StringComparer.Ordinal);
        var results = new List<ModelVerification>(entries.Count);
        foreach (var entry in entries)
        {
            var path = GetBlobPath(entry.Digest);
            if (!byDigest.TryGetValue(entry.Digest, out var outcome))
            {
                outcome = await CheckBlobAsync(entry, path, cancellationToken);
                byDigest[entry.Digest] = outcome;
            }

            var verification = new ModelVerification(entry, path, outcome.Status, outcome.Actual, outcome.Size);
            results.Add(verification);
            if (!verification.IsOk)
            {
                await RaiseAsync(ModelRegistryAction.VerificationFailed, entry, outcome.Actual,
                    $"Verification of model '{entry.Id}' failed: {outcome.Status} ({path}).", cancellationToken);
            }

            progress?.Report(verification);
        }

        var referenced = entries.Select(e => Path.GetFileName(GetBlobPath(e.Digest))).ToHashSet(StringComparer.Ordinal);
        var unreferenced = Directory.Exists(BlobsDirectory)
            ? Directory.EnumerateFiles(BlobsDirectory).Where(f => !referenced.Contains(Path.GetFileName(f))).Order(StringComparer.Ordinal).ToList()
            : [];
        return new ModelVerificationReport(results, unreferenced);
    }

    /// <summary>Removes an entry, and its file unless another entry shares it.</summary>
    public async Task<ModelRemoval> RemoveAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (Get(id) is null)
        {
            throw NotFound(id);
        }

        ModelRemoval removal;
        await using (await LockAsync(cancellationToken))
        {
            // Held while the entry goes: a server that loads the model meanwhile cannot mark it (and fails its load).
            using var exclusive = HoldUnloaded(id);
            var manifest = ReadManifest();
            var entry = manifest.Models.FirstOrDefault(m => m.Id == id) ?? throw NotFound(id);
            manifest.Models.Remove(entry);
            WriteManifest(manifest);
            var deleteBlob = !manifest.Models.Any(m => m.Digest == entry.Digest);
            if (deleteBlob)
            {
                var blob = GetBlobPath(entry.Digest);
                try
                {
                    MakeWritable(blob);
                    File.Delete(blob);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // The entry is gone, which is what matters; verify lists the file as unreferenced.
                    deleteBlob = false;
                }
            }

            removal = new ModelRemoval(entry, deleteBlob);
        }

        await RaiseAsync(ModelRegistryAction.Removed, removal.Entry, null,
            $"Model '{id}' removed{(removal.BlobDeleted ? " with its file" : "")}.", cancellationToken);
        return removal;
    }

    /// <summary>
    /// Marks <paramref name="id"/> as loaded by this process until the handle is disposed (or the process ends): a
    /// shared lock on <c>loaded/ID.lock</c>, which <see cref="RemoveAsync"/> needs exclusively. <c>models rm</c> of a
    /// model a running server had loaded deleted its file under it: it served on until a restart, which then failed
    /// on a configuration naming it. Take it before <see cref="OpenForLoadAsync"/>, so a removal under way is seen.
    /// </summary>
    public IDisposable HoldLoaded(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        var path = LoadedMarkerPath(id);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);

            // Any FileShare but None takes a shared flock: several holders, no exclusive one beside them.
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 1);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw StorageError(ex, path);
        }
        catch (IOException ex) when (!IsDiskFull(ex) && File.Exists(path))
        {
            throw new ModelRegistryException(ModelRegistryError.Busy, $"Model '{id}' is being removed from the registry; it cannot be loaded.", ex);
        }
        catch (IOException ex)
        {
            throw StorageError(ex, path);
        }
    }

    /// <summary>An exclusive lock on <paramref name="id"/>'s marker, or the refusal to remove a model a server has loaded.</summary>
    private FileStream? HoldUnloaded(string id)
    {
        var path = LoadedMarkerPath(id);
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None, bufferSize: 1);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (IOException ex) when (!IsDiskFull(ex))
        {
            throw new ModelRegistryException(ModelRegistryError.InUse,
                $"model '{id}' is loaded by a running server; unload it first (sovereign models unload {id}), and take it out of the server's configuration if it names it, then remove it.", ex);
        }
    }

    private string LoadedMarkerPath(string id) => Path.Combine(ModelDirectory, "loaded", Uri.EscapeDataString(id) + ".lock");

    /// <summary>
    /// The file to load for <paramref name="id"/>, after re-hashing it in full just now (no cached result: the file is
    /// read at load anyway). A file whose digest differs from the registry, or a missing file, is refused with a
    /// <see cref="ModelDigestMismatchException"/> after a <see cref="ModelRegistryAction.LoadRefused"/> event; a match
    /// raises <see cref="ModelRegistryAction.LoadVerified"/>.
    /// </summary>
    public async Task<VerifiedModel> OpenForLoadAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        var entry = Get(id) ?? throw NotFound(id);
        var path = GetBlobPath(entry.Digest);
        var (status, actual, _) = await CheckBlobAsync(entry, path, cancellationToken);
        if (status != ModelVerificationStatus.Ok)
        {
            var refusal = new ModelDigestMismatchException(entry.Id, entry.Digest, actual, path);
            await RaiseAsync(ModelRegistryAction.LoadRefused, entry, actual, refusal.Message, cancellationToken);
            throw refusal;
        }

        await RaiseAsync(ModelRegistryAction.LoadVerified, entry, actual, $"Model '{id}' verified before loading ({entry.Digest}).", cancellationToken);
        return new VerifiedModel(entry, path);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_downloader.IsValueCreated)
        {
            _downloader.Value.Dispose();
        }

        _gate.Dispose();
    }

    internal static bool IsDiskFull(Exception ex)
    {
        // ENOSPC (28) and EDQUOT (122 on Linux, 69 on macOS); ERROR_HANDLE_DISK_FULL and ERROR_DISK_FULL on Windows.
        var code = ex.HResult & 0xFFFF;
        return ex is IOException && (OperatingSystem.IsWindows() ? code is 0x27 or 0x70 : code is 28 or 122 || (OperatingSystem.IsMacOS() && code == 69));
    }

    internal static ModelRegistryException StorageError(Exception ex, string path) => IsDiskFull(ex)
        ? new ModelRegistryException(ModelRegistryError.DiskFull, $"The disk is full: cannot write {path} ({ex.Message}). Nothing was installed.", ex)
        : new ModelRegistryException(ModelRegistryError.DirectoryNotWritable, $"Cannot write {path}: {ex.Message}. Nothing was installed.", ex);

    private async Task<(ModelVerificationStatus Status, string? Actual, long? Size)> CheckBlobAsync(ModelEntry entry, string path, CancellationToken cancellationToken)
    {
        long size;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                return (ModelVerificationStatus.Missing, null, null);
            }

            size = info.Length;
            var actual = await ModelDigest.ComputeAsync(path, null, cancellationToken);
            if (actual == entry.Digest)
            {
                return (ModelVerificationStatus.Ok, actual, size);
            }

            return (size != entry.SizeBytes ? ModelVerificationStatus.SizeMismatch : ModelVerificationStatus.DigestMismatch, actual, size);
        }
        catch (FileNotFoundException)
        {
            return (ModelVerificationStatus.Missing, null, null);
        }
    }

    private async Task<string> CopyAndHashAsync(string source, string staging, long size, IProgress<PullProgress>? progress, CancellationToken cancellationToken)
    {
        FileStream input;
        try
        {
            input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ModelRegistryException(ModelRegistryError.InvalidArgument, $"Cannot read '{source}': {ex.Message}", ex);
        }

        await using (input)
        {
            FileStream output;
            try
            {
                output = new FileStream(staging, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0, FileOptions.Asynchronous);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw StorageError(ex, staging);
            }

            await using (output)
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buffer = new byte[1 << 20];
                long copied = 0;
                long reported = 0;
                progress?.Report(new PullProgress(PullPhase.Downloading, 0, size));
                while (true)
                {
                    int read;
                    try
                    {
                        read = await input.ReadAsync(buffer, cancellationToken);
                    }
                    catch (IOException ex)
                    {
                        throw new ModelRegistryException(ModelRegistryError.InvalidArgument, $"Cannot read '{source}': {ex.Message}", ex);
                    }

                    if (read == 0)
                    {
                        break;
                    }

                    try
                    {
                        await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                    }
                    catch (IOException ex)
                    {
                        throw StorageError(ex, staging);
                    }

                    hash.AppendData(buffer, 0, read);
                    copied += read;
                    if (copied - reported >= 8 << 20)
                    {
                        reported = copied;
                        progress?.Report(new PullProgress(PullPhase.Downloading, copied, size));
                    }
                }

                try
                {
                    output.Flush(flushToDisk: true);
                }
                catch (IOException ex)
                {
                    throw StorageError(ex, staging);
                }

                progress?.Report(new PullProgress(PullPhase.Downloading, copied, size));
                return ModelDigest.FromHash(hash.GetHashAndReset());
            }
        }
    }

    private static async Task<string> HashStagedAsync(string staging, long size, IProgress<PullProgress>? progress, CancellationToken cancellationToken) =>
        await ModelDigest.ComputeAsync(staging,
            progress is null ? null : new InlineProgress<long>(n => progress.Report(new PullProgress(PullPhase.Hashing, n, size))),
            cancellationToken);

    private async Task InstallAsync(string staged, ModelEntry entry, CancellationToken cancellationToken)
    {
        await using (await LockAsync(cancellationToken))
        {
            var manifest = ReadManifest();
            if (manifest.Models.Any(m => m.Id == entry.Id))
            {
                throw AlreadyExists(entry.Id);
            }

            var blob = GetBlobPath(entry.Digest);
            var shared = manifest.Models.Any(m => m.Digest == entry.Digest);
            var placed = false;
            try
            {
                // An existing blob is replaced by the freshly verified bytes: it may have been tampered with.
                if (File.Exists(blob))
                {
                    MakeWritable(blob);
                }

                File.Move(staged, blob, overwrite: true);
                placed = true;
                MakeReadOnly(blob);
                manifest.Models.Add(entry);
                WriteManifest(manifest);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ModelRegistryException)
            {
                // Roll back: the file goes back to where it was staged, for the caller to delete (or, for a moved
                // import, to give back). A blob other entries use stays: it holds the same verified bytes.
                if (placed && !shared)
                {
                    try
                    {
                        MakeWritable(blob);
                        File.Move(blob, staged);
                    }
                    catch (Exception rollback) when (rollback is IOException or UnauthorizedAccessException)
                    {
                        TryDelete(blob);
                    }
                }

                if (ex is ModelRegistryException)
                {
                    throw;
                }

                throw StorageError(ex, blob);
            }
        }

        await RaiseAsync(ModelRegistryAction.Installed, entry, entry.Digest,
            $"Model '{entry.Id}' installed from {entry.Source} ({entry.Digest}, {entry.DigestSource.ToString().ToLowerInvariant()} digest).", cancellationToken);
    }

    private ModelManifest ReadManifest()
    {
        if (!File.Exists(ManifestPath))
        {
            return new ModelManifest();
        }

        ModelManifest? manifest;
        try
        {
            using var stream = new FileStream(ManifestPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            manifest = JsonSerializer.Deserialize(stream, RegistryJsonContext.Default.ModelManifest);
        }
        catch (FileNotFoundException)
        {
            return new ModelManifest();
        }
        catch (JsonException ex)
        {
            throw new ModelRegistryException(ModelRegistryError.CorruptManifest, $"{ManifestPath} is not a valid registry manifest: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ModelRegistryException(ModelRegistryError.CorruptManifest, $"Cannot read {ManifestPath}: {ex.Message}", ex);
        }

        if (manifest is null || manifest.Version is < 1 or > ModelManifest.CurrentVersion)
        {
            throw new ModelRegistryException(ModelRegistryError.CorruptManifest,
                $"{ManifestPath} has manifest version {manifest?.Version}; this version of Sovereign reads version {ModelManifest.CurrentVersion}.");
        }

        return manifest;
    }

    private void WriteManifest(ModelManifest manifest)
    {
        manifest.Models.Sort((a, b) => string.CompareOrdinal(a.Id, b.Id));
        try
        {
            AtomicFile.Write(ManifestPath, ExistingFile.Replace, stream => JsonSerializer.Serialize(stream, manifest, RegistryJsonContext.Default.ModelManifest));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw StorageError(ex, ManifestPath);
        }
    }

    private async Task<IAsyncDisposable> LockAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var lockPath = Path.Combine(ModelDirectory, LockFileName);
            var started = _options.TimeProvider.GetTimestamp();
            while (true)
            {
                try
                {
                    // FileShare.None takes an exclusive lock other processes (and other registries in this one) respect.
                    var stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 1);
                    return new Lease(_gate, stream);
                }
                catch (UnauthorizedAccessException ex)
                {
                    throw StorageError(ex, lockPath);
                }
                catch (IOException ex) when (!IsDiskFull(ex) && Directory.Exists(ModelDirectory))
                {
                    if (_options.TimeProvider.GetElapsedTime(started) > _options.LockTimeout)
                    {
                        throw new ModelRegistryException(ModelRegistryError.Busy,
                            $"Another process has held {lockPath} for more than {_options.LockTimeout.TotalSeconds:0} s ({ex.Message}).", ex);
                    }

                    await Task.Delay(TimeSpan.FromMilliseconds(50), _options.TimeProvider, cancellationToken);
                }
                catch (IOException ex)
                {
                    throw StorageError(ex, lockPath);
                }
            }
        }
        catch
        {
            _gate.Release();
            throw;
        }
    }

    private void EnsureWritable()
    {
        var probing = ModelDirectory;
        try
        {
            foreach (var directory in new[] { ModelDirectory, BlobsDirectory, DownloadsDirectory })
            {
                probing = directory;
                Directory.CreateDirectory(directory);
                var probe = Path.Combine(directory, $".probe-{Guid.NewGuid():N}");
                using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
                {
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ModelRegistryException(IsDiskFull(ex) ? ModelRegistryError.DiskFull : ModelRegistryError.DirectoryNotWritable,
                $"The model directory {ModelDirectory} is not writable ({probing}: {ex.Message}). Nothing was installed.", ex);
        }
    }

    private void EnsureFreeSpace(long bytes, string what)
    {
        if (bytes <= 0 || _options.AvailableFreeSpace(ModelDirectory) is not { } available)
        {
            return;
        }

        var needed = bytes + _options.FreeSpaceReserveBytes;
        if (available < needed)
        {
            throw new ModelRegistryException(ModelRegistryError.DiskFull,
                $"Not enough disk space to {what}: {bytes:N0} bytes needed (plus {_options.FreeSpaceReserveBytes:N0} kept free), " +
                $"{available:N0} available in {ModelDirectory}. Nothing was installed.");
        }
    }

    private void EnsureIdFree(string id)
    {
        if (Get(id) is not null)
        {
            throw AlreadyExists(id);
        }
    }

    private Declared Validate(ModelInstallOptions options)
    {
        var id = options.Id;
        if (!IsValidId(id))
        {
            throw Invalid($"'{id}' is not a valid model id: {IdRule}.");
        }

        if (string.Equals(id, "auto", StringComparison.OrdinalIgnoreCase))
        {
            throw Invalid("'auto' is reserved for routing by language; choose another model id.");
        }

        var license = options.License?.Trim();
        if (string.IsNullOrEmpty(license))
        {
            throw Invalid("No licence given: pass the model's licence as an SPDX id (e.g. Apache-2.0, MIT) or a model licence id (e.g. llama3.1, gemma, qwen).");
        }

        if (!_options.IsKnownLicense(license))
        {
            throw Invalid($"Unknown licence '{license}': use an SPDX id (e.g. Apache-2.0, MIT), a model licence id (e.g. llama3.1, gemma, qwen), or LicenseRef-<name> for another licence.");
        }

        var publisher = options.OriginPublisher?.Trim();
        if (string.IsNullOrEmpty(publisher) || publisher.Length > MaxPublisherLength || publisher.Any(char.IsControl))
        {
            throw Invalid($"'{publisher}' is not a valid publisher: give the name of whoever published the weights (at most {MaxPublisherLength} characters).");
        }

        var country = options.OriginCountry?.Trim().ToUpperInvariant() ?? "";
        if (country.Length != 2 || !country.All(char.IsAsciiLetterUpper) || !IsRegion(country))
        {
            throw Invalid($"'{options.OriginCountry}' is not an ISO 3166-1 alpha-2 country code (e.g. FR, US, CN, TH).");
        }

        var languages = new List<string>();
        foreach (var language in options.Languages ?? [])
        {
            var code = language?.Trim().ToLowerInvariant() ?? "";
            if (!IsLanguageTag(code))
            {
                throw Invalid($"'{language}' is not a language code: use ISO 639 codes such as en, fr, th (optionally with a region, e.g. pt-br).");
            }

            if (!languages.Contains(code))
            {
                languages.Add(code);
            }
        }

        if (!Enum.IsDefined(options.Modality))
        {
            throw Invalid($"Unknown modality {options.Modality}.");
        }

        var digest = string.IsNullOrWhiteSpace(options.ExpectedDigest) ? null : ModelDigest.Normalize(options.ExpectedDigest);
        return new Declared(id, _options.CanonicalizeLicense(license), new ModelOrigin(publisher, country), languages, options.Modality, digest);
    }

    private ModelEntry NewEntry(Declared declared, string digest, long size, GgufModelFacts facts, string source, DigestProvenance provenance) => new()
    {
        Id = declared.Id,
        Digest = digest,
        SizeBytes = size,
        Architecture = facts.Architecture,
        Name = facts.Name,
        Parameters = facts.Parameters,
        Quantization = facts.Quantization,
        ContextLength = facts.ContextLength,
        Shape = facts.Shape,
        License = declared.License,
        Origin = declared.Origin,
        Languages = declared.Languages,
        Modality = declared.Modality,
        Source = source,
        DigestSource = provenance,
        AddedAt = _options.TimeProvider.GetUtcNow(),
    };

    private async ValueTask RaiseAsync(ModelRegistryAction action, ModelEntry entry, string? actual, string message, CancellationToken cancellationToken)
    {
        if (_options.OnEvent is { } sink)
        {
            await sink(new ModelRegistryEvent(action, entry.Id, entry.Digest, actual, entry.Source, message, _options.TimeProvider.GetUtcNow()), cancellationToken);
        }
    }

    private static GgufModelFacts ReadFacts(string path, string what)
    {
        try
        {
            return GgufModelFacts.From(GgufReader.Open(path));
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException or OverflowException)
        {
            throw new ModelRegistryException(ModelRegistryError.InvalidModel, $"{what} is not a usable GGUF model: {ex.Message} Nothing was installed.", ex);
        }
    }

    private static bool IsRegion(string code)
    {
        if (!RegionInfoWorks.Value)
        {
            return true; // No ICU data: only the format can be checked.
        }

        try
        {
            return new RegionInfo(code).TwoLetterISORegionName == code;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static bool IsLanguageTag(string code)
    {
        var parts = code.Split('-');
        return parts[0].Length is 2 or 3 && parts[0].All(char.IsAsciiLetterLower)
            && parts.Skip(1).All(p => p.Length is >= 2 and <= 8 && p.All(char.IsAsciiLetterOrDigit));
    }

    private static string UrlKey(Uri url) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(url.AbsoluteUri)))[..32];

    private static long LengthOrZero(string path)
    {
        try
        {
            var info = new FileInfo(path);
            return info.Exists ? info.Length : 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    private static void MakeReadOnly(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            File.SetAttributes(path, File.GetAttributes(path) | FileAttributes.ReadOnly);
        }
        else
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
    }

    private static void MakeWritable(string path)
    {
        // Unix renames and unlinks need only the directory to be writable.
        if (OperatingSystem.IsWindows() && File.Exists(path))
        {
            File.SetAttributes(path, File.GetAttributes(path) & ~FileAttributes.ReadOnly);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            MakeWritable(path);
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Best effort: a staged file that cannot be deleted is never referenced by the manifest.
        }
    }

    /// <summary>What a model id may be, as a message puts it after "not a valid model id: ".</summary>
    public static readonly string IdRule = $"use letters, digits, '.', '_', '-', ':' and '/', starting with a letter or digit, at most {MaxIdLength} characters, " +
        "with no empty, '.' or '..' part between slashes";

    /// <summary>
    /// Whether <paramref name="id"/> may name a registered model (<see cref="IdRule"/>). 'a/../b', 'a//b' and 'a/' were
    /// installed, though an HTTP client normalizes them in /v1/models/{id} (curl asked for 'b').
    /// </summary>
    public static bool IsValidId(string? id) =>
        !string.IsNullOrEmpty(id) && id.Length <= MaxIdLength && char.IsAsciiLetterOrDigit(id[0])
        && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or ':' or '/')
        && id.Split('/').All(part => part is not ("" or "." or ".."));

    private static ModelRegistryException Invalid(string message) => new(ModelRegistryError.InvalidArgument, message);

    private static ModelRegistryException NotFound(string id) =>
        new(ModelRegistryError.NotFound, $"No model '{id}' in the registry.");

    private static ModelRegistryException AlreadyExists(string id) =>
        new(ModelRegistryError.AlreadyExists, $"A model '{id}' is already registered: remove it first (models rm {id}) or choose another id.");

    private sealed record Declared(string Id, string License, ModelOrigin Origin, IReadOnlyList<string> Languages, ModelKind Modality, string? ExpectedDigest);

    private sealed class Lease(SemaphoreSlim gate, FileStream lockFile) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await lockFile.DisposeAsync();
            gate.Release();
        }
    }
}

/// <summary>The manifest file's content.</summary>
internal sealed class ModelManifest
{
    public const int CurrentVersion = 1;

    public int Version { get; set; } = CurrentVersion;

    public List<ModelEntry> Models { get; set; } = [];
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true, UseStringEnumConverter = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ModelManifest))]
internal sealed partial class RegistryJsonContext : JsonSerializerContext;
