// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using Sovereign.Inference.Registry;

namespace Sovereign.Inference.Tests.Registry;

/// <summary>Pulls from a Kestrel server on 127.0.0.1: resume, restart, digests, Hugging Face mapping, and failures.</summary>
public sealed class ModelRegistryPullTests : IAsyncLifetime, IDisposable
{
    private const string ModelPath = "/models/stories260K.gguf";

    private readonly RegistryTestContext _context = new();
    private LoopbackFileServer _server = null!;

    public async Task InitializeAsync() => _server = await LoopbackFileServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    public void Dispose() => _context.Dispose();

    [Fact]
    public async Task PullAsync_GivenDigest_InstallsAndRecordsTheUrl()
    {
        _server.Serve(ModelPath, RegistryTestContext.Stories);
        using var registry = _context.Registry();
        var url = _server.Url(ModelPath).ToString();

        var entry = await registry.PullAsync(RegistryTestContext.Pull(url, digest: RegistryTestContext.StoriesDigest));

        Assert.Equal(RegistryTestContext.StoriesDigest, entry.Digest);
        Assert.Equal(url, entry.Source);
        Assert.Equal(DigestProvenance.Given, entry.DigestSource);
        Assert.Equal("llama", entry.Architecture);
        Assert.Equal(RegistryTestContext.Stories, await File.ReadAllBytesAsync(registry.GetBlobPath(entry.Digest)));
        Assert.Empty(RegistryTestContext.FilesIn(registry.DownloadsDirectory));
        Assert.Null(Assert.Single(_server.Gets(ModelPath)).Range);
    }

    [Fact]
    public async Task PullAsync_ConnectionCutMidway_RetriesWithRangeAndMatchesTheDigest()
    {
        var file = _server.Serve(ModelPath, RegistryTestContext.Stories);
        file.CutNext(times: 1, bytes: 400_000);
        using var registry = _context.Registry();

        var entry = await registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString(), digest: RegistryTestContext.StoriesDigest));

        var gets = _server.Gets(ModelPath);
        Assert.Equal(2, gets.Count);
        Assert.Null(gets[0].Range);
        Assert.Equal("bytes=400000-", gets[1].Range);
        Assert.Equal(RegistryTestContext.StoriesDigest, entry.Digest);
        Assert.Equal(RegistryTestContext.Stories, await File.ReadAllBytesAsync(registry.GetBlobPath(entry.Digest)));
    }

    [Fact]
    public async Task PullAsync_CutWithoutRetries_KeepsOnlyThePartialAndTheNextPullResumes()
    {
        var file = _server.Serve(ModelPath, RegistryTestContext.Stories);
        file.CutNext(times: 1, bytes: 300_000);
        var url = _server.Url(ModelPath).ToString();

        using (var first = _context.Registry(maxRetries: 0))
        {
            var error = await Assert.ThrowsAsync<ModelRegistryException>(() => first.PullAsync(RegistryTestContext.Pull(url, digest: RegistryTestContext.StoriesDigest)));
            Assert.Equal(ModelRegistryError.DownloadInterrupted, error.Error);
            Assert.Contains("resume", error.Message, StringComparison.Ordinal);
            RegistryTestContext.AssertNothingInstalled(first, partialAllowed: true);
            var partial = Assert.Single(RegistryTestContext.FilesIn(first.DownloadsDirectory));
            Assert.EndsWith(RegistryTestContext.StoriesDigest[7..] + ".partial", partial, StringComparison.Ordinal);
            Assert.Equal(300_000, new FileInfo(partial).Length);
        }

        using var second = _context.Registry(maxRetries: 0);
        var entry = await second.PullAsync(RegistryTestContext.Pull(url, digest: RegistryTestContext.StoriesDigest));

        Assert.Equal("bytes=300000-", _server.Gets(ModelPath)[^1].Range);
        Assert.Equal(RegistryTestContext.StoriesDigest, entry.Digest);
        Assert.Empty(RegistryTestContext.FilesIn(second.DownloadsDirectory));
    }

    [Fact]
    public async Task PullAsync_ResumedOntoChangedContent_MismatchDeletesThePartialAndTheNextPullStartsOver()
    {
        var changed = RegistryTestContext.Stories;
        changed[^10] ^= 0xFF;
        _server.Serve(ModelPath, changed).CutNext(times: 1, bytes: 300_000);
        var request = RegistryTestContext.Pull(_server.Url(ModelPath).ToString(), digest: RegistryTestContext.StoriesDigest);
        using var registry = _context.Registry(maxRetries: 0);
        await Assert.ThrowsAsync<ModelRegistryException>(() => registry.PullAsync(request));

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() => registry.PullAsync(request));
        Assert.Equal(ModelRegistryError.DigestMismatch, error.Error);
        RegistryTestContext.AssertNothingInstalled(registry);

        _server.Serve(ModelPath, RegistryTestContext.Stories);
        var entry = await registry.PullAsync(request);
        Assert.Null(_server.Gets(ModelPath)[^1].Range);
        Assert.Equal(RegistryTestContext.StoriesDigest, entry.Digest);
    }

    [Fact]
    public async Task PullAsync_ServerWithoutRangeSupport_RestartsAndStillMatches()
    {
        var file = _server.Serve(ModelPath, RegistryTestContext.Stories);
        file.SupportsRange = false;
        file.CutNext(times: 1, bytes: 500_000);
        using var registry = _context.Registry();

        var entry = await registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString(), digest: RegistryTestContext.StoriesDigest));

        var gets = _server.Gets(ModelPath);
        Assert.Equal(2, gets.Count);
        Assert.Equal("bytes=500000-", gets[1].Range);
        Assert.Equal(RegistryTestContext.StoriesDigest, entry.Digest);
        Assert.Equal(RegistryTestContext.Stories, await File.ReadAllBytesAsync(registry.GetBlobPath(entry.Digest)));
    }

    [Fact]
    public async Task PullAsync_WrongDigest_RefusedWithNoBlobNoEntryNoPartial()
    {
        _server.Serve(ModelPath, RegistryTestContext.Stories);
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString(), digest: RegistryTestContext.TinyRandomDigest)));

        Assert.Equal(ModelRegistryError.DigestMismatch, error.Error);
        Assert.Contains(RegistryTestContext.StoriesDigest, error.Message, StringComparison.Ordinal);
        Assert.Contains(RegistryTestContext.TinyRandomDigest, error.Message, StringComparison.Ordinal);
        RegistryTestContext.AssertNothingInstalled(registry);
        Assert.DoesNotContain(_context.Events, e => e.Action == ModelRegistryAction.Installed);
    }

    [Fact]
    public async Task PullAsync_HuggingFaceSource_MapsToResolveUrlAndUsesTheLinkedEtag()
    {
        const string resolve = "/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf";
        var cdn = "/cdn/" + RegistryTestContext.StoriesDigest[7..];
        _server.Redirect(resolve, cdn, new Dictionary<string, string>
        {
            ["X-Linked-Etag"] = "\"" + RegistryTestContext.StoriesDigest[7..] + "\"",
            ["X-Linked-Size"] = "1185376",
            ["ETag"] = "\"0123456789abcdef0123456789abcdef01234567\"",
        });
        _server.Serve(cdn, RegistryTestContext.Stories);
        using var registry = _context.Registry(huggingFace: _server.BaseAddress);

        var entry = await registry.PullAsync(RegistryTestContext.Pull("hf:ggml-org/models/tinyllamas/stories260K.gguf"));

        Assert.Equal(RegistryTestContext.StoriesDigest, entry.Digest);
        Assert.Equal(DigestProvenance.Published, entry.DigestSource);
        Assert.Equal("hf:ggml-org/models/tinyllamas/stories260K.gguf", entry.Source);
        Assert.Contains(_server.Requests, r => r.Method == "HEAD" && r.Path == resolve);
        Assert.Contains(_server.Requests, r => r.Method == "GET" && r.Path == cdn);
    }

    [Fact]
    public async Task PullAsync_HuggingFaceToken_SentToTheEndpointOnly()
    {
        const string resolve = "/org/repo/resolve/main/model.gguf";
        _server.Redirect(resolve, "http://localhost:" + _server.BaseAddress.Port + "/cdn/model",
            new Dictionary<string, string> { ["X-Linked-Etag"] = RegistryTestContext.StoriesDigest[7..] });
        _server.Serve("/cdn/model", RegistryTestContext.Stories);
        using var registry = new ModelRegistry(new ModelRegistryOptions
        {
            Directory = _context.ModelDirectory,
            HuggingFaceEndpoint = _server.BaseAddress,
            HuggingFaceToken = "hf_secret",
            CreateHttpHandler = () => new SocketsHttpHandler { AllowAutoRedirect = false, UseProxy = false },
            AvailableFreeSpace = _ => null,
        });

        await registry.PullAsync(RegistryTestContext.Pull("hf:org/repo/model.gguf"));

        Assert.All(_server.Requests.Where(r => r.Path == resolve), r => Assert.Equal("Bearer hf_secret", r.Authorization));
        Assert.All(_server.Requests.Where(r => r.Path == "/cdn/model"), r => Assert.Null(r.Authorization));
    }

    [Fact]
    public async Task PullAsync_HuggingFaceDigestDiffersFromTheGivenOne_RefusedBeforeDownloading()
    {
        const string resolve = "/org/repo/resolve/main/model.gguf";
        _server.Serve(resolve, RegistryTestContext.Stories).Headers["X-Linked-Etag"] = "\"" + RegistryTestContext.StoriesDigest[7..] + "\"";
        using var registry = _context.Registry(huggingFace: _server.BaseAddress);

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.PullAsync(RegistryTestContext.Pull("hf:org/repo/model.gguf", digest: RegistryTestContext.TinyRandomDigest)));

        Assert.Equal(ModelRegistryError.DigestMismatch, error.Error);
        Assert.Contains("publisher", error.Message, StringComparison.Ordinal);
        Assert.Empty(_server.Gets(resolve));
        RegistryTestContext.AssertNothingInstalled(registry);
    }

    [Fact]
    public async Task PullAsync_Sha256SidecarBesideTheUrl_UsedAsThePublishedDigest()
    {
        _server.Serve(ModelPath, RegistryTestContext.Stories);
        _server.Serve(ModelPath + ".sha256", System.Text.Encoding.UTF8.GetBytes(RegistryTestContext.StoriesDigest[7..] + "  stories260K.gguf\n"));
        using var registry = _context.Registry();

        var entry = await registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString()));

        Assert.Equal(DigestProvenance.Published, entry.DigestSource);
        Assert.Equal(RegistryTestContext.StoriesDigest, entry.Digest);
    }

    [Fact]
    public async Task PullAsync_SidecarDisagreesWithTheFile_RefusedAndNothingInstalled()
    {
        _server.Serve(ModelPath, RegistryTestContext.Stories);
        _server.Serve(ModelPath + ".sha256", System.Text.Encoding.UTF8.GetBytes(RegistryTestContext.TinyRandomDigest));
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() => registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString())));

        Assert.Equal(ModelRegistryError.DigestMismatch, error.Error);
        Assert.Contains("published", error.Message, StringComparison.Ordinal);
        RegistryTestContext.AssertNothingInstalled(registry);
    }

    [Fact]
    public async Task PullAsync_NoDigestGivenOrPublished_RefusedFailClosed()
    {
        _server.Serve(ModelPath, RegistryTestContext.Stories);
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() => registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString())));

        Assert.Equal(ModelRegistryError.DigestUnavailable, error.Error);
        Assert.Contains("--sha256", error.Message, StringComparison.Ordinal);
        Assert.Empty(_server.Gets(ModelPath));
        RegistryTestContext.AssertNothingInstalled(registry);
    }

    [Fact]
    public async Task PullAsync_AllowUnverified_InstallsWithAComputedDigest()
    {
        _server.Serve(ModelPath, RegistryTestContext.Stories);
        using var registry = _context.Registry();

        var entry = await registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString(), allowUnverified: true));

        Assert.Equal(DigestProvenance.Computed, entry.DigestSource);
        Assert.Equal(RegistryTestContext.StoriesDigest, entry.Digest);
        Assert.Empty(RegistryTestContext.FilesIn(registry.DownloadsDirectory));
    }

    [Theory]
    [InlineData("ftp://127.0.0.1/model.gguf", "scheme 'ftp'")]
    [InlineData("file:///tmp/model.gguf", "scheme 'file'")]
    [InlineData("models/model.gguf", "not a URL")]
    [InlineData("/tmp/model.gguf", "models import")]
    [InlineData("http://example.com/model.gguf", "plain http")]
    [InlineData("https://user:pw@example.com/model.gguf", "credentials")]
    [InlineData("hf:only-org", "hf:ORG/REPO/FILE")]
    [InlineData("hf:org/repo/../secret", "'..'")]
    [InlineData("", "No source")]
    public async Task PullAsync_BadSource_InvalidArgumentBeforeAnyNetworkOrDisk(string source, string named)
    {
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() => registry.PullAsync(RegistryTestContext.Pull(source, digest: RegistryTestContext.StoriesDigest)));

        Assert.Equal(ModelRegistryError.InvalidArgument, error.Error);
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
        Assert.Empty(_server.Requests);
        Assert.False(Directory.Exists(_context.ModelDirectory));
    }

    [Fact]
    public async Task PullAsync_UnknownLicense_InvalidArgumentBeforeAnyRequest()
    {
        _server.Serve(ModelPath, RegistryTestContext.Stories);
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString(), digest: RegistryTestContext.StoriesDigest, license: "free-for-all")));

        Assert.Equal(ModelRegistryError.InvalidArgument, error.Error);
        Assert.Contains("free-for-all", error.Message, StringComparison.Ordinal);
        Assert.Empty(_server.Requests);
        Assert.False(Directory.Exists(_context.ModelDirectory));
    }

    [Fact]
    public async Task PullAsync_NotFoundOnTheServer_DownloadFailedAndNothingInstalled()
    {
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.PullAsync(RegistryTestContext.Pull(_server.Url("/missing.gguf").ToString(), digest: RegistryTestContext.StoriesDigest)));

        Assert.Equal(ModelRegistryError.DownloadFailed, error.Error);
        Assert.Contains("404", error.Message, StringComparison.Ordinal);
        RegistryTestContext.AssertNothingInstalled(registry);
    }

    [Fact]
    public async Task PullAsync_NotAGgufFile_RefusedAfterTheDigestCheckAndNothingInstalled()
    {
        var junk = new byte[64 * 1024];
        new Random(7).NextBytes(junk);
        _server.Serve("/junk.gguf", junk);
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.PullAsync(RegistryTestContext.Pull(_server.Url("/junk.gguf").ToString(), digest: RegistryTestContext.DigestOf(junk))));

        Assert.Equal(ModelRegistryError.InvalidModel, error.Error);
        RegistryTestContext.AssertNothingInstalled(registry);
    }

    [Fact]
    public async Task PullAsync_NotEnoughFreeSpace_RefusedBeforeDownloading()
    {
        _server.Serve(ModelPath, RegistryTestContext.Stories);
        using var registry = _context.Registry(freeSpace: _ => 50L << 20);

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString(), digest: RegistryTestContext.StoriesDigest)));

        Assert.Equal(ModelRegistryError.DiskFull, error.Error);
        Assert.Contains("1,185,376", error.Message, StringComparison.Ordinal);
        Assert.Empty(_server.Gets(ModelPath));
        RegistryTestContext.AssertNothingInstalled(registry);
    }

    [Fact]
    public async Task PullAsync_DiskFillsUpWhileWriting_DiskFullAndNothingInstalled()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // /dev/full is Linux's: every write to it fails with ENOSPC, for root too.
        }

        _server.Serve(ModelPath, RegistryTestContext.Stories).SupportsRange = false;
        using var registry = _context.Registry();
        Directory.CreateDirectory(registry.DownloadsDirectory);
        var partial = Path.Combine(registry.DownloadsDirectory, "sha256-" + RegistryTestContext.StoriesDigest[7..] + ".partial");
        File.CreateSymbolicLink(partial, "/dev/full");

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString(), digest: RegistryTestContext.StoriesDigest)));

        Assert.Equal(ModelRegistryError.DiskFull, error.Error);
        Assert.Contains("disk is full", error.Message, StringComparison.Ordinal);
        RegistryTestContext.AssertNothingInstalled(registry);
        Assert.True(File.Exists("/dev/full"));
    }

    [Fact]
    public async Task PullAsync_UnwritableModelDirectory_DirectoryNotWritableBeforeAnyRequest()
    {
        await File.WriteAllTextAsync(_context.ModelDirectory, "a file where the model directory should be");
        _server.Serve(ModelPath, RegistryTestContext.Stories);
        using var registry = _context.Registry();

        var error = await Assert.ThrowsAsync<ModelRegistryException>(() =>
            registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString(), digest: RegistryTestContext.StoriesDigest)));

        Assert.Equal(ModelRegistryError.DirectoryNotWritable, error.Error);
        Assert.Contains("not writable", error.Message, StringComparison.Ordinal);
        Assert.Empty(_server.Requests);
    }

    [Fact]
    public async Task PullAsync_Progress_ReportsDownloadedBytesUpToTheTotal()
    {
        _server.Serve(ModelPath, RegistryTestContext.Stories);
        using var registry = _context.Registry();
        var reports = new List<PullProgress>();

        await registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString(), digest: RegistryTestContext.StoriesDigest),
            new InlineProgress<PullProgress>(reports.Add));

        var downloads = reports.Where(r => r.Phase == PullPhase.Downloading).ToList();
        Assert.True(downloads.Count >= 2);
        Assert.Equal(1_185_376, downloads[^1].Bytes);
        Assert.Equal(1_185_376, downloads[^1].TotalBytes);
        Assert.Equal(PullPhase.Installing, reports[^1].Phase);
    }

    [Fact]
    public async Task PullAsync_SameFileUnderASecondId_SharesTheBlob()
    {
        _server.Serve(ModelPath, RegistryTestContext.Stories);
        using var registry = _context.Registry();
        var url = _server.Url(ModelPath).ToString();

        await registry.PullAsync(RegistryTestContext.Pull(url, "a", RegistryTestContext.StoriesDigest));
        await registry.PullAsync(RegistryTestContext.Pull(url, "b", RegistryTestContext.StoriesDigest));

        Assert.Equal(2, registry.List().Count);
        Assert.Single(RegistryTestContext.FilesIn(registry.BlobsDirectory));
        Assert.True((await registry.VerifyAsync()).AllOk);
    }

    [Fact]
    public async Task OpenForLoadAsync_PulledThenTampered_Refused()
    {
        _server.Serve(ModelPath, RegistryTestContext.Stories);
        using var registry = _context.Registry();
        var entry = await registry.PullAsync(RegistryTestContext.Pull(_server.Url(ModelPath).ToString(), digest: RegistryTestContext.StoriesDigest));
        RegistryTestContext.Tamper(registry.GetBlobPath(entry.Digest), offsetFromEnd: 1);

        var error = await Assert.ThrowsAsync<ModelDigestMismatchException>(() => registry.OpenForLoadAsync(entry.Id));

        Assert.Equal(entry.Digest, error.ExpectedDigest);
        Assert.Contains(_context.Events, e => e.Action == ModelRegistryAction.LoadRefused && e.ModelId == entry.Id);
    }
}
