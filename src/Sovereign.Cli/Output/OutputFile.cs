using Sovereign.Storage;

namespace Sovereign.Cli.Output;

/// <summary>
/// The one way a command writes its <c>--output</c> file: the mistakes an operator can make are said before any work
/// (a folder that does not exist, a folder given as the file, a file that exists without <c>--force</c>: exit 2), and
/// the content goes to a temporary file beside the target that is flushed to disk and renamed into place only once
/// it is complete. A command that fails half way (the server stops answering, the audit log does not verify, a full
/// disk, Ctrl+C) leaves no partial file and the old file, if any, as it was.
/// </summary>
internal static class OutputFile
{
    /// <summary>The usage errors an --output path can have, before anything is asked or read.</summary>
    /// <param name="target">The --output file.</param>
    /// <param name="force">Whether --force was given (an existing file is replaced).</param>
    /// <param name="example">A file name for the "is a folder" message (<c>invoice.csv</c>).</param>
    /// <param name="canForce">Whether the command offers --force (the message says so only then).</param>
    public static void Check(FileInfo target, bool force, string example, bool canForce = true)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (target.Directory is { Exists: false } folder)
        {
            // A mistyped folder is the operator's to fix, not to create.
            throw new CliException($"the folder {folder.FullName} does not exist; create it or choose another --output.", ExitCodes.Usage);
        }

        if (Directory.Exists(target.FullName))
        {
            throw new CliException($"--output {target.FullName} is a folder; give the file to write, e.g. {Path.Combine(target.FullName, example)}.", ExitCodes.Usage);
        }

        if (!force && File.Exists(target.FullName))
        {
            throw Exists(target.FullName, canForce);
        }
    }

    /// <summary>
    /// Writes the file through a temporary file in the same folder (so the rename is one step on one file system),
    /// which <paramref name="write"/> fills; then flushes it to disk and moves it into place: over an existing file
    /// only with <paramref name="force"/>, else a file made meanwhile is kept and this is the "exists already" usage
    /// error. On any failure the temporary file is removed and the target is untouched.
    /// </summary>
    /// <param name="path">The --output file.</param>
    /// <param name="force">Whether --force was given.</param>
    /// <param name="write">Writes the content to the stream it is given (not disposing it).</param>
    /// <param name="ownerOnly">Create the file readable and writable by its owner only (mode 600 on Unix).</param>
    /// <param name="canForce">Whether the command offers --force.</param>
    public static async Task WriteAsync(string path, bool force, Func<Stream, Task> write, bool ownerOnly = false, bool canForce = true)
    {
        ArgumentNullException.ThrowIfNull(write);
        try
        {
            await AtomicFile.WriteAsync(Path.GetFullPath(path), force ? ExistingFile.Replace : ExistingFile.Refuse, (stream, _) => write(stream),
                ownerOnly ? FileAccessScope.OwnerOnly : FileAccessScope.Default);
        }
        catch (AtomicFileExistsException ex)
        {
            throw Exists(ex.Path, canForce);
        }
    }

    /// <summary>
    /// Moves a complete temporary file to <paramref name="path"/>: without <paramref name="force"/> never over a file
    /// (a file made since the check is not replaced either), with it by one rename, which replaces the old file in one
    /// step (<see cref="AtomicFile.MoveIntoPlace"/>; the temporary file is removed on failure).
    /// </summary>
    public static void MoveIntoPlace(string temporary, string path, bool force, bool canForce = true)
    {
        try
        {
            AtomicFile.MoveIntoPlace(temporary, path, force ? ExistingFile.Replace : ExistingFile.Refuse);
        }
        catch (AtomicFileExistsException)
        {
            throw Exists(path, canForce);
        }
    }

    /// <summary>A hidden name in the same folder, unique to this write (<c>.invoice.csv.1a2b3c4d5e6f.partial</c>).</summary>
    public static string TemporaryBeside(string path) => AtomicFile.TemporaryBeside(path);

    /// <summary>Deletes a file, keeping quiet about a failure (the one that brought us here is the one to report).</summary>
    public static void TryDelete(string path) => AtomicFile.TryDelete(path);

    private static CliException Exists(string path, bool canForce) => new(
        canForce
            ? $"--output {path} exists already; pass --force to replace it, or choose another file."
            : $"--output {path} exists already; choose another file.",
        ExitCodes.Usage);
}
