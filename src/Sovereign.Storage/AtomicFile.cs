namespace Sovereign.Storage;

/// <summary>What a whole-file write does when its target exists (or comes to exist while it writes).</summary>
public enum ExistingFile
{
    /// <summary>The complete new file replaces the old one in one rename.</summary>
    Replace,

    /// <summary>An existing file is kept and the write fails with <see cref="AtomicFileExistsException"/>.</summary>
    Refuse,
}

/// <summary>Who may read a file a whole-file write creates (Unix modes; Windows keeps its inherited ACL).</summary>
public enum FileAccessScope
{
    /// <summary>The process's default (mode 666 less the umask).</summary>
    Default,

    /// <summary>Readable and writable by the owner only (mode 600): private keys, tokens, witnesses, archives.</summary>
    OwnerOnly,

    /// <summary>Writable by the owner, readable by everyone (mode 644): certificates and other public material.</summary>
    OwnerWriteEveryoneRead,
}

/// <summary>A whole-file write refused because the target exists (<see cref="ExistingFile.Refuse"/>).</summary>
public sealed class AtomicFileExistsException(string path, Exception? inner = null)
    : IOException($"{path} exists already; it was kept and nothing was written over it.", inner)
{
    /// <summary>The file that exists.</summary>
    public string Path { get; } = path;
}

/// <summary>
/// The one way Sovereign writes a file whole: the content goes to a hidden temporary file in the target's folder
/// (so the rename is one step on one file system), created with the requested permissions before a byte is written,
/// flushed to disk, then renamed into place. A crash, a full disk or an exception leaves the old file (or none) and no
/// temporary beside it; readers see the old content or the new, never part of either.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="write"/>'s bytes to <paramref name="path"/> whole.</summary>
    /// <param name="path">The file to write.</param>
    /// <param name="existing">Whether an existing file is replaced or kept (the write then fails).</param>
    /// <param name="write">Writes the content to the stream it is given (not disposing it).</param>
    /// <param name="access">Who may read the new file.</param>
    public static void Write(string path, ExistingFile existing, Action<Stream> write, FileAccessScope access = FileAccessScope.Default)
    {
        ArgumentNullException.ThrowIfNull(write);
        using var file = AtomicFileWriter.Begin(path, existing, access);
        write(file.Stream);
        file.Commit();
    }

    /// <summary>Writes <paramref name="write"/>'s bytes to <paramref name="path"/> whole.</summary>
    /// <param name="path">The file to write.</param>
    /// <param name="existing">Whether an existing file is replaced or kept (the write then fails).</param>
    /// <param name="write">Writes the content to the stream it is given (not disposing it).</param>
    /// <param name="access">Who may read the new file.</param>
    /// <param name="cancellationToken">Cancels the write; the temporary file is removed.</param>
    public static async Task WriteAsync(string path, ExistingFile existing, Func<Stream, CancellationToken, Task> write,
        FileAccessScope access = FileAccessScope.Default, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(write);
        await using var file = AtomicFileWriter.Begin(path, existing, access);
        await write(file.Stream, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        await file.CommitAsync(cancellationToken);
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> whole.</summary>
    public static void WriteAllBytes(string path, ExistingFile existing, ReadOnlySpan<byte> bytes, FileAccessScope access = FileAccessScope.Default)
    {
        using var file = AtomicFileWriter.Begin(path, existing, access);
        file.Stream.Write(bytes);
        file.Commit();
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 (no byte order mark) to <paramref name="path"/> whole.</summary>
    public static void WriteAllText(string path, ExistingFile existing, string text, FileAccessScope access = FileAccessScope.Default)
    {
        ArgumentNullException.ThrowIfNull(text);
        WriteAllBytes(path, existing, System.Text.Encoding.UTF8.GetBytes(text), access);
    }

    /// <summary>
    /// A hidden name in <paramref name="path"/>'s folder, unique to one write (<c>.invoice.csv.1a2b3c4d5e6f.partial</c>),
    /// for a file another component fills (a SQLite backup) before <see cref="MoveIntoPlace"/>.
    /// </summary>
    public static string TemporaryBeside(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = System.IO.Path.GetFullPath(path);
        var folder = System.IO.Path.GetDirectoryName(full) ?? ".";
        return System.IO.Path.Combine(folder, $".{System.IO.Path.GetFileName(full)}.{Guid.NewGuid().ToString("N")[..12]}.partial");
    }

    /// <summary>
    /// Moves a complete file (already flushed) to <paramref name="path"/>: with <see cref="ExistingFile.Replace"/> by one
    /// rename that replaces the old file in one step, with <see cref="ExistingFile.Refuse"/> never over a file (.NET
    /// moves without replacing by a hard link and an unlink on Unix, so a file made since any check is kept too). On
    /// failure the temporary file is removed and the exception thrown.
    /// </summary>
    public static void MoveIntoPlace(string temporary, string path, ExistingFile existing)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(temporary);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        try
        {
            File.Move(temporary, path, overwrite: existing == ExistingFile.Replace);
        }
        catch (IOException ex) when (existing == ExistingFile.Refuse && File.Exists(path))
        {
            TryDelete(temporary);
            throw new AtomicFileExistsException(path, ex);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    /// <summary>Deletes <paramref name="path"/> if it exists, swallowing the failures a cleanup must not report over the one that caused it.</summary>
    public static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The failure that brought us here is the one to report.
        }
    }

    /// <summary>The options a temporary file is created with: new (never an existing file), exclusive, with its mode set at creation.</summary>
    internal static FileStreamOptions CreateOptions(FileAccessScope access, int bufferSize)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = bufferSize };
        if (!OperatingSystem.IsWindows())
        {
            switch (access)
            {
                case FileAccessScope.OwnerOnly:
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                    break;
                case FileAccessScope.OwnerWriteEveryoneRead:
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
                    break;
                case FileAccessScope.Default:
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(access), access, null);
            }
        }

        return options;
    }
}

/// <summary>
/// One whole-file write in progress (<see cref="AtomicFile"/>), for writers that must do something between writing and
/// placing the file (read it back and verify it, write a second file first). <see cref="Commit"/> flushes the temporary
/// file to disk and renames it into place; disposing without committing removes it.
/// </summary>
public sealed class AtomicFileWriter : IDisposable, IAsyncDisposable
{
    private readonly ExistingFile _existing;
    private FileStream? _stream;
    private bool _done;

    private AtomicFileWriter(string path, string temporaryPath, ExistingFile existing, FileStream stream)
    {
        Path = path;
        TemporaryPath = temporaryPath;
        _existing = existing;
        _stream = stream;
    }

    /// <summary>The file this write places (full path).</summary>
    public string Path { get; }

    /// <summary>The hidden temporary file beside it that holds the content until <see cref="Commit"/>.</summary>
    public string TemporaryPath { get; }

    /// <summary>The temporary file's stream; write the content here (do not dispose it).</summary>
    public Stream Stream => _stream ?? throw new InvalidOperationException($"The write of {Path} is closed; its stream cannot be written.");

    /// <summary>
    /// Starts a write of <paramref name="path"/>: creates the temporary file with <paramref name="access"/>. With
    /// <see cref="ExistingFile.Refuse"/> an existing target is refused here, before any work, and again at the rename.
    /// </summary>
    public static AtomicFileWriter Begin(string path, ExistingFile existing, FileAccessScope access = FileAccessScope.Default, int bufferSize = 4096)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = System.IO.Path.GetFullPath(path);
        if (existing == ExistingFile.Refuse && File.Exists(full))
        {
            throw new AtomicFileExistsException(full);
        }

        var temporary = AtomicFile.TemporaryBeside(full);
        var stream = new FileStream(temporary, AtomicFile.CreateOptions(access, bufferSize));
        return new AtomicFileWriter(full, temporary, existing, stream);
    }

    /// <summary>Flushes what was written to disk and closes the temporary file (it can then be read back by its path).</summary>
    public void Close()
    {
        if (_stream is { } stream)
        {
            stream.Flush(flushToDisk: true);
            stream.Dispose();
            _stream = null;
        }
    }

    /// <summary>Flushes what was written to disk and closes the temporary file (it can then be read back by its path).</summary>
    public async ValueTask CloseAsync(CancellationToken cancellationToken = default)
    {
        if (_stream is { } stream)
        {
            await stream.FlushAsync(cancellationToken);
            stream.Flush(flushToDisk: true);
            await stream.DisposeAsync();
            _stream = null;
        }
    }

    /// <summary>Flushes the content to disk and renames it into place; on failure the temporary file is removed.</summary>
    public void Commit()
    {
        ObjectDisposedException.ThrowIf(_done, this);
        try
        {
            Close();
        }
        catch
        {
            Dispose();
            throw;
        }

        _done = true;
        AtomicFile.MoveIntoPlace(TemporaryPath, Path, _existing);
    }

    /// <summary>Flushes the content to disk and renames it into place; on failure the temporary file is removed.</summary>
    public async ValueTask CommitAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        try
        {
            await CloseAsync(cancellationToken);
        }
        catch
        {
            await DisposeAsync();
            throw;
        }

        _done = true;
        AtomicFile.MoveIntoPlace(TemporaryPath, Path, _existing);
    }

    /// <summary>Abandons an uncommitted write: the temporary file is closed and removed, the target untouched.</summary>
    public void Dispose()
    {
        if (_done)
        {
            return;
        }

        _done = true;
        try
        {
            _stream?.Dispose();
        }
        catch (IOException)
        {
            // A full disk fails the final flush too; the file goes either way.
        }
        finally
        {
            _stream = null;
            AtomicFile.TryDelete(TemporaryPath);
        }
    }

    /// <summary>Abandons an uncommitted write: the temporary file is closed and removed, the target untouched.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_done)
        {
            return;
        }

        _done = true;
        try
        {
            if (_stream is { } stream)
            {
                await stream.DisposeAsync();
            }
        }
        catch (IOException)
        {
            // A full disk fails the final flush too; the file goes either way.
        }
        finally
        {
            _stream = null;
            AtomicFile.TryDelete(TemporaryPath);
        }
    }
}
