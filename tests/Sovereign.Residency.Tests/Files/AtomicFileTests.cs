using System.Text;
using Sovereign.Storage;

namespace Sovereign.Residency.Tests.Files;

/// <summary>
/// The one whole-file write (<see cref="AtomicFile"/>) that the audit witness, the operator key and its history, the
/// admin token, cluster certificates, CLI -o files, the model registry's manifest and GGUF synthesis all use.
/// </summary>
public sealed class AtomicFileTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sovereign-atomic-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Write_Replace_PutsTheNewContentWhole_AndLeavesNothingBeside()
    {
        var path = Path.Combine(_folder, "witness.json");
        File.WriteAllText(path, "old");

        AtomicFile.WriteAllText(path, ExistingFile.Replace, "new content");

        Assert.Equal("new content", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(_folder));
    }

    [Fact]
    public void Write_WriterFailsHalfWay_KeepsTheOldFile_AndRemovesTheTemporary()
    {
        var path = Path.Combine(_folder, "history.pem");
        File.WriteAllText(path, "old");

        var thrown = Assert.Throws<IOException>(() => AtomicFile.Write(path, ExistingFile.Replace, stream =>
        {
            stream.Write("half of the new"u8);
            throw new IOException("No space left on device");
        }));

        Assert.Equal("No space left on device", thrown.Message);
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(_folder));
    }

    [Fact]
    public async Task WriteAsync_Cancelled_KeepsTheOldFile_AndRemovesTheTemporary()
    {
        var path = Path.Combine(_folder, "export.jsonl");
        File.WriteAllText(path, "old");
        using var cancel = new CancellationTokenSource();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => AtomicFile.WriteAsync(path, ExistingFile.Replace, async (stream, ct) =>
        {
            await stream.WriteAsync("partial"u8.ToArray(), ct);
            await cancel.CancelAsync();
            ct.ThrowIfCancellationRequested();
        }, cancellationToken: cancel.Token));

        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(_folder));
    }

    [Fact]
    public void Write_TargetIsAFolder_FailsAtTheRename_AndRemovesTheTemporary()
    {
        var path = Path.Combine(_folder, "ca.pem");
        Directory.CreateDirectory(path);

        Assert.ThrowsAny<IOException>(() => AtomicFile.WriteAllText(path, ExistingFile.Replace, "pem"));

        Assert.Equal([path], Directory.GetFileSystemEntries(_folder));
        Assert.Empty(Directory.GetFileSystemEntries(path));
    }

    [Fact]
    public void Write_Refuse_KeepsAnExistingFile_AndSaysSo()
    {
        var path = Path.Combine(_folder, "operator.key");
        File.WriteAllText(path, "theirs");

        var refused = Assert.Throws<AtomicFileExistsException>(() => AtomicFile.WriteAllText(path, ExistingFile.Refuse, "mine"));

        Assert.Equal(path, refused.Path);
        Assert.Equal("theirs", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(_folder));
    }

    [Fact]
    public void Writer_Refuse_AFileMadeWhileItWrote_IsKept_AndTheTemporaryRemoved()
    {
        var path = Path.Combine(_folder, "admin-token");

        using (var writer = AtomicFileWriter.Begin(path, ExistingFile.Refuse))
        {
            writer.Stream.Write("mine"u8);
            File.WriteAllText(path, "theirs");
            Assert.Throws<AtomicFileExistsException>(writer.Commit);
        }

        Assert.Equal("theirs", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(_folder));
    }

    [Fact]
    public void Writer_DisposedWithoutCommit_LeavesNoTrace()
    {
        var path = Path.Combine(_folder, "archive.jsonl");
        string temporary;
        using (var writer = AtomicFileWriter.Begin(path, ExistingFile.Refuse, FileAccessScope.OwnerOnly))
        {
            temporary = writer.TemporaryPath;
            writer.Stream.Write("verified later"u8);
            writer.Close();
            Assert.Equal("verified later", File.ReadAllText(temporary));
            Assert.Equal(Path.GetDirectoryName(path), Path.GetDirectoryName(temporary));
            Assert.StartsWith(".", Path.GetFileName(temporary), StringComparison.Ordinal);
        }

        Assert.False(File.Exists(path));
        Assert.False(File.Exists(temporary));
    }

    [Fact]
    public void OwnerOnly_IsMode600_FromCreation_AndStaysSoWhenReplaced()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var path = Path.Combine(_folder, "member.key");
        using (var writer = AtomicFileWriter.Begin(path, ExistingFile.Replace, FileAccessScope.OwnerOnly))
        {
            // Before a byte of the secret is written, the temporary file is already the owner's alone.
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(writer.TemporaryPath));
            writer.Stream.Write(Encoding.UTF8.GetBytes("-----BEGIN PRIVATE KEY-----"));
            writer.Commit();
        }

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));

        AtomicFile.WriteAllText(path, ExistingFile.Replace, "rotated", FileAccessScope.OwnerOnly);

        Assert.Equal("rotated", File.ReadAllText(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void OwnerWriteEveryoneRead_IsMode644()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var path = Path.Combine(_folder, "ca.pem");

        AtomicFile.WriteAllText(path, ExistingFile.Replace, "certificate", FileAccessScope.OwnerWriteEveryoneRead);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(path));
    }
}
