// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using Sovereign.Inference.Engine;
using Sovereign.Inference.Gguf;
using Sovereign.Inference.Registry;

namespace Sovereign.Inference.Tests.Registry;

/// <summary>Import, verify, load check and removal on a local directory.</summary>
public sealed class ModelRegistryImportTests : IDisposable
{
    private readonly RegistryTestContext _context = new();

    public void Dispose() => _context.Dispose();

    [Fact]
    public async Task ImportAsync_RealGguf_RecordsMetadataFromTheHeader()
    {
        using var registry = _context.Registry();

        var entry = await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import());

        Assert.Equal("stories", entry.Id);
        Assert.Equal(RegistryTestContext.StoriesDigest, entry.Digest);
        Assert.Equal(1_185_376, entry.SizeBytes);
        Assert.Equal("llama", entry.Architecture);
        Assert.Equal(292_800, entry.Parameters);
        Assert.Equal("F32", entry.Quantization);
        Assert.Equal(2048, entry.ContextLength);
        Assert.Equal(5, entry.Shape.Layers);
        Assert.Equal(8, entry.Shape.HeadCount);
        Assert.Equal(4, entry.Shape.KvHeadCount);
        Assert.Equal("MIT", entry.License);
        Assert.Equal(new ModelOrigin("Andrej Karpathy", "US"), entry.Origin);
        Assert.Equal(["en"], entry.Languages);
        Assert.Equal(ModelKind.Chat, entry.Modality);
        Assert.Equal(DigestProvenance.Computed, entry.DigestSource);
        Assert.Equal("import:" + Path.GetFullPath(TestModels.Stories260K), entry.Source);
        Assert.True(File.Exists(TestModels.Stories260K), "import copies by default");
    }

    [Fact]
    public async Task ImportAsync_Installed_BlobIsContentAddressedAndReadOnly()
    {
        using var registry = _context.Registry();

        var entry = await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import());

        var blob = Path.Combine(_context.ModelDirectory, "blobs", "sha256-" + entry.DigestHex + ".gguf");
        Assert.Equal(blob, registry.GetBlobPath(entry.Digest));
        Assert.Equal(File.ReadAllBytes(TestModels.Stories260K), File.ReadAllBytes(blob));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(blob));
        }

        Assert.Empty(RegistryTestContext.FilesIn(registry.DownloadsDirectory));
        Assert.Contains(_context.Events, e => e.Action == ModelRegistryAction.Installed && e.ModelId == "stories");
    }

    [Fact]
    public async Task ImportAsync_F16Model_QuantizationFromFileType()
    {
        using var registry = _context.Registry();

        var entry = await registry.ImportAsync(TestModels.TinyRandomLlama2, RegistryTestContext.Import("tiny", "Apache-2.0"));

        Assert.Equal("F16", entry.Quantization);
        Assert.Equal(4096, entry.ContextLength);
        Assert.Equal(32_000, entry.Shape.VocabularySize);
        Assert.Equal(RegistryTestContext.TinyRandomDigest, entry.Digest);
    }

    [Fact]
    public async Task ImportAsync_SyntheticQ8Model_QuantizationIsQ8_0()
    {
        var path = Path.Combine(_context.Root, "q8.gguf");
        SyntheticModelBuilder.Write(new SyntheticModelOptions { Layers = 1, EmbeddingLength = 64, HeadCount = 2, VocabularySize = 300, TensorType = GgmlType.Q8_0 }, path);
        using var registry = _context.Registry();

        var entry = await registry.ImportAsync(path, RegistryTestContext.Import("q8"));

        Assert.Equal("Q8_0", entry.Quantization);
    }

    [Fact]
    public async Task ImportAsync_Move_MovesTheFileIntoTheRegistry()
    {
        var path = _context.Copy(TestModels.Stories260K, "to-move.gguf");
        using var registry = _context.Registry();

        var entry = await registry.ImportAsync(path, RegistryTestContext.Import(move: true));

        Assert.False(File.Exists(path));
        Assert.True(File.Exists(registry.GetBlobPath(entry.Digest)));
        Assert.Equal(RegistryTestContext.StoriesDigest, entry.Digest);
    }

    [Fact]
    public async Task ImportAsync_Move_RefusedFileIsMovedBack()
    {
        var path = _context.Copy(TestModels.Stories260K, "to-move.gguf");
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.ImportAsync(path, RegistryTestContext.Import(digest: RegistryTestContext.TinyRandomDigest, move: true)));

        Assert.Equal(ModelRegistryError.DigestMismatch, error.Error);
        Assert.True(File.Exists(path));
        RegistryTestContext.AssertNothingInstalled(registry);
    }

    [Fact]
    public async Task ImportAsync_ExpectedDigestMatches_RecordedAsGiven()
    {
        using var registry = _context.Registry();

        var entry = await registry.ImportAsync(TestModels.Stories260K,
            RegistryTestContext.Import(digest: RegistryTestContext.StoriesDigest[7..].ToUpperInvariant()));

        Assert.Equal(DigestProvenance.Given, entry.DigestSource);
        Assert.Equal(RegistryTestContext.StoriesDigest, entry.Digest);
    }

    [Fact]
    public async Task ImportAsync_WrongExpectedDigest_RefusedAndNothingInstalled()
    {
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import(digest: RegistryTestContext.TinyRandomDigest)));

        Assert.Equal(ModelRegistryError.DigestMismatch, error.Error);
        Assert.Contains(RegistryTestContext.StoriesDigest, error.Message, StringComparison.Ordinal);
        Assert.Contains(RegistryTestContext.TinyRandomDigest, error.Message, StringComparison.Ordinal);
        RegistryTestContext.AssertNothingInstalled(registry);
    }

    [Fact]
    public async Task ImportAsync_NotAGgufFile_RefusedAndNothingInstalled()
    {
        var path = Path.Combine(_context.Root, "weights.bin");
        await File.WriteAllBytesAsync(path, new byte[4096]);
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() => registry.ImportAsync(path, RegistryTestContext.Import()));

        Assert.Equal(ModelRegistryError.InvalidModel, error.Error);
        Assert.Contains("GGUF", error.Message, StringComparison.Ordinal);
        RegistryTestContext.AssertNothingInstalled(registry);
    }

    [Fact]
    public async Task ImportAsync_UnknownLicense_RefusedNamingItAndNothingCreated()
    {
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import(license: "do-what-you-like")));

        Assert.Equal(ModelRegistryError.InvalidArgument, error.Error);
        Assert.True(error.IsBadInput);
        Assert.Contains("do-what-you-like", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_context.ModelDirectory));
    }

    [Theory]
    [InlineData("apache-2.0", "Apache-2.0")]
    [InlineData("LLAMA3.1", "llama3.1")]
    [InlineData("LicenseRef-Acme-Model-1.0", "LicenseRef-Acme-Model-1.0")]
    public async Task ImportAsync_KnownLicenseInAnyCase_StoredCanonically(string given, string stored)
    {
        using var registry = _context.Registry();

        var entry = await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import(license: given));

        Assert.Equal(stored, entry.License);
    }

    [Fact]
    public async Task ImportAsync_CustomLicensePolicy_IsConsulted()
    {
        using var registry = new ModelRegistry(_context.Options() is var o ? new ModelRegistryOptions
        {
            Directory = o.Directory,
            IsKnownLicense = id => id == "house-licence",
            CanonicalizeLicense = id => id,
        } : null!);

        var entry = await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import(license: "house-licence"));
        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import("other", license: "MIT")));

        Assert.Equal("house-licence", entry.License);
        Assert.Equal(ModelRegistryError.InvalidArgument, error.Error);
    }

    [Theory]
    [InlineData("", "MIT", "US", "en", "model id")]
    [InlineData("has space", "MIT", "US", "en", "model id")]
    [InlineData("-leading", "MIT", "US", "en", "model id")]
    [InlineData("auto", "MIT", "US", "en", "reserved")]
    [InlineData("ok", "", "US", "en", "licence")]
    [InlineData("ok", "MIT", "USA", "en", "country")]
    [InlineData("ok", "MIT", "ZZ", "en", "country")]
    [InlineData("ok", "MIT", "US", "english", "language")]
    public async Task ImportAsync_BadDeclaration_InvalidArgumentNamingTheField(string id, string license, string country, string language, string named)
    {
        using var registry = _context.Registry();
        var options = RegistryTestContext.Import(id, license) with { OriginCountry = country, Languages = [language] };

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() => registry.ImportAsync(TestModels.Stories260K, options));

        Assert.Equal(ModelRegistryError.InvalidArgument, error.Error);
        Assert.Contains(named, error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.False(Directory.Exists(_context.ModelDirectory));
    }

    [Fact]
    public async Task ImportAsync_MissingFile_NotFound()
    {
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.ImportAsync(Path.Combine(_context.Root, "nope.gguf"), RegistryTestContext.Import()));

        Assert.Equal(ModelRegistryError.NotFound, error.Error);
        Assert.Contains("nope.gguf", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ImportAsync_DuplicateId_RefusedAndFirstEntryKept()
    {
        using var registry = _context.Registry();
        await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import());

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.ImportAsync(TestModels.TinyRandomLlama2, RegistryTestContext.Import()));

        Assert.Equal(ModelRegistryError.AlreadyExists, error.Error);
        Assert.Equal(RegistryTestContext.StoriesDigest, Assert.Single(registry.List()).Digest);
        Assert.Single(RegistryTestContext.FilesIn(registry.BlobsDirectory));
    }

    [Fact]
    public async Task ImportAsync_ModelDirectoryIsAFile_DirectoryNotWritableAndNothingWritten()
    {
        // chmod cannot stop root (CI runs tests as root): a regular file where the directory should be stops everyone.
        await File.WriteAllTextAsync(_context.ModelDirectory, "not a directory");
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() => registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import()));

        Assert.Equal(ModelRegistryError.DirectoryNotWritable, error.Error);
        Assert.False(error.IsBadInput);
        Assert.Contains(_context.ModelDirectory, error.Message, StringComparison.Ordinal);
        Assert.Equal("not a directory", await File.ReadAllTextAsync(_context.ModelDirectory));
    }

    [Fact]
    public async Task ImportAsync_BlobsDirectoryIsAFile_DirectoryNotWritableAndNothingHalfInstalled()
    {
        Directory.CreateDirectory(_context.ModelDirectory);
        await File.WriteAllTextAsync(Path.Combine(_context.ModelDirectory, "blobs"), "in the way");
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() => registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import()));

        Assert.Equal(ModelRegistryError.DirectoryNotWritable, error.Error);
        Assert.Contains("blobs", error.Message, StringComparison.Ordinal);
        Assert.Empty(registry.List());
        Assert.False(File.Exists(registry.ManifestPath));
    }

    [Fact]
    public async Task ImportAsync_ManifestCannotBeWritten_RollsBackAndGivesTheMovedFileBack()
    {
        // A directory where registry.json should be: the file is staged and placed, then the manifest write fails.
        Directory.CreateDirectory(Path.Combine(_context.ModelDirectory, ModelRegistry.ManifestFileName));
        var path = _context.Copy(TestModels.Stories260K, "to-move.gguf");
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() => registry.ImportAsync(path, RegistryTestContext.Import(move: true)));

        Assert.Equal(ModelRegistryError.DirectoryNotWritable, error.Error);
        Assert.Contains(ModelRegistry.ManifestFileName, error.Message, StringComparison.Ordinal);
        Assert.Equal(RegistryTestContext.StoriesDigest, await ModelDigest.ComputeAsync(path));
        RegistryTestContext.AssertNothingInstalled(registry);
    }

    [Fact]
    public async Task ImportAsync_NotEnoughFreeSpace_DiskFullAndNothingInstalled()
    {
        using var registry = _context.Registry(freeSpace: _ => 1_000_000);

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() => registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import()));

        Assert.Equal(ModelRegistryError.DiskFull, error.Error);
        Assert.Contains("disk space", error.Message, StringComparison.Ordinal);
        RegistryTestContext.AssertNothingInstalled(registry);
    }

    [Fact]
    public async Task VerifyAsync_IntactFiles_AllOk()
    {
        using var registry = _context.Registry();
        await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import());
        await registry.ImportAsync(TestModels.TinyRandomLlama2, RegistryTestContext.Import("tiny"));

        var report = await registry.VerifyAsync();

        Assert.True(report.AllOk);
        Assert.Equal(2, report.Models.Count);
        Assert.Empty(report.UnreferencedBlobs);
    }

    [Fact]
    public async Task VerifyAsync_TamperedBlob_ReportsMismatchWithActualDigest()
    {
        using var registry = _context.Registry();
        var stories = await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import());
        await registry.ImportAsync(TestModels.TinyRandomLlama2, RegistryTestContext.Import("tiny"));
        RegistryTestContext.Tamper(registry.GetBlobPath(stories.Digest));

        var report = await registry.VerifyAsync();

        Assert.False(report.AllOk);
        var bad = Assert.Single(report.Models, m => !m.IsOk);
        Assert.Equal("stories", bad.Entry.Id);
        Assert.Equal(ModelVerificationStatus.DigestMismatch, bad.Status);
        Assert.NotEqual(stories.Digest, bad.ActualDigest);
        Assert.Contains(_context.Events, e => e.Action == ModelRegistryAction.VerificationFailed && e.ModelId == "stories");
    }

    [Fact]
    public async Task VerifyAsync_MissingBlobAndStrayFile_Reported()
    {
        using var registry = _context.Registry();
        var stories = await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import());
        File.Delete(registry.GetBlobPath(stories.Digest));
        var stray = Path.Combine(registry.BlobsDirectory, "sha256-" + new string('0', 64) + ".gguf");
        await File.WriteAllTextAsync(stray, "stray");

        var report = await registry.VerifyAsync();

        Assert.Equal(ModelVerificationStatus.Missing, Assert.Single(report.Models).Status);
        Assert.Equal([stray], report.UnreferencedBlobs);
    }

    [Fact]
    public async Task OpenForLoadAsync_IntactFile_ReturnsTheBlobPathAndAudits()
    {
        using var registry = _context.Registry();
        var entry = await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import());

        var verified = await registry.OpenForLoadAsync("stories");

        Assert.Equal(registry.GetBlobPath(entry.Digest), verified.Path);
        Assert.Equal((entry.Id, entry.Digest, entry.AddedAt), (verified.Entry.Id, verified.Entry.Digest, verified.Entry.AddedAt));
        Assert.Contains(_context.Events, e => e.Action == ModelRegistryAction.LoadVerified);
        var options = verified.Entry.ToModelOptions(verified.Path);
        Assert.Equal(("stories", "MIT", "US"), (options.Id, options.License, options.Origin));
    }

    [Fact]
    public async Task OpenForLoadAsync_TamperedFile_RefusedWithExpectedAndActualAndAnAuditEvent()
    {
        using var registry = _context.Registry();
        var entry = await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import());
        RegistryTestContext.Tamper(registry.GetBlobPath(entry.Digest));

        var error = await Assert.ThrowsAsync<ModelDigestMismatchException>(() => registry.OpenForLoadAsync("stories"));

        Assert.Equal("stories", error.ModelId);
        Assert.Equal(RegistryTestContext.StoriesDigest, error.ExpectedDigest);
        Assert.NotNull(error.ActualDigest);
        Assert.NotEqual(error.ExpectedDigest, error.ActualDigest);
        var audit = Assert.Single(_context.Events, e => e.Action == ModelRegistryAction.LoadRefused);
        Assert.Equal("model.load.refused", audit.AuditAction);
        Assert.Equal(error.ActualDigest, audit.ActualDigest);
        Assert.DoesNotContain(_context.Events, e => e.Action == ModelRegistryAction.LoadVerified);
    }

    [Fact]
    public async Task OpenForLoadAsync_MissingFile_Refused()
    {
        using var registry = _context.Registry();
        var entry = await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import());
        File.Delete(registry.GetBlobPath(entry.Digest));

        var error = await Assert.ThrowsAsync<ModelDigestMismatchException>(() => registry.OpenForLoadAsync("stories"));

        Assert.Null(error.ActualDigest);
        Assert.Equal(ModelRegistryError.BlobMissing, error.Error);
        Assert.Contains(_context.Events, e => e.Action == ModelRegistryAction.LoadRefused);
    }

    [Fact]
    public async Task OpenForLoadAsync_UnknownId_NotFound()
    {
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() => registry.OpenForLoadAsync("ghost"));

        Assert.Equal(ModelRegistryError.NotFound, error.Error);
    }

    [Fact]
    public async Task RemoveAsync_SharedBlob_DeletedOnlyWithTheLastEntry()
    {
        using var registry = _context.Registry();
        var first = await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import("a"));
        await registry.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import("b"));
        var blob = registry.GetBlobPath(first.Digest);

        var removedA = await registry.RemoveAsync("a");
        Assert.False(removedA.BlobDeleted);
        Assert.True(File.Exists(blob));

        var removedB = await registry.RemoveAsync("b");
        Assert.True(removedB.BlobDeleted);
        Assert.False(File.Exists(blob));
        Assert.Empty(registry.List());
        Assert.Equal(2, _context.Events.Count(e => e.Action == ModelRegistryAction.Removed));
    }

    [Fact]
    public async Task RemoveAsync_UnknownId_NotFound()
    {
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() => registry.RemoveAsync("ghost"));

        Assert.Equal(ModelRegistryError.NotFound, error.Error);
        Assert.Contains("ghost", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Manifest_SecondRegistryInstance_SeesTheSameEntries()
    {
        using (var writer = _context.Registry())
        {
            await writer.ImportAsync(TestModels.Stories260K, RegistryTestContext.Import(license: "apache-2.0"));
        }

        using var reader = _context.Registry();
        var entry = Assert.Single(reader.List());

        Assert.Equal("Apache-2.0", entry.License);
        Assert.Equal(["en"], entry.Languages);
        Assert.Equal(5, entry.Shape.Layers);
        Assert.Contains("\"digest\": \"sha256:", await File.ReadAllTextAsync(reader.ManifestPath), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ImportAsync_ConcurrentFromTwoInstances_AllEntriesLand()
    {
        using var one = _context.Registry();
        using var two = _context.Registry();

        await Task.WhenAll(Enumerable.Range(0, 6).Select(i =>
            (i % 2 == 0 ? one : two).ImportAsync(i % 3 == 0 ? TestModels.TinyRandomLlama2 : TestModels.Stories260K, RegistryTestContext.Import($"m{i}"))));

        Assert.Equal(6, one.List().Count);
        Assert.Equal(2, RegistryTestContext.FilesIn(one.BlobsDirectory).Length);
        Assert.True((await two.VerifyAsync()).AllOk);
    }

    [Fact]
    public void AvailableFreeSpace_DefaultProvider_ReportsTheVolumeOfAnExistingDirectory()
    {
        var options = new ModelRegistryOptions { Directory = _context.ModelDirectory };

        Assert.True(options.AvailableFreeSpace(_context.Root) > 0);
    }

    [Fact]
    public void Get_CorruptManifest_CorruptManifestError()
    {
        Directory.CreateDirectory(_context.ModelDirectory);
        File.WriteAllText(Path.Combine(_context.ModelDirectory, ModelRegistry.ManifestFileName), "{ not json");
        using var registry = _context.Registry();

        var error = Assert.Throws<ModelRegistryException>(() => registry.Get("x"));

        Assert.Equal(ModelRegistryError.CorruptManifest, error.Error);
    }
}
