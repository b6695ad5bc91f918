using System.CommandLine;
using Sovereign.Inference.Registry;
using Sovereign.Residency.Policies;
using Spectre.Console;

namespace Sovereign.Cli.Commands.Registry;

/// <summary>
/// <c>sovereign models pull|import|verify|rm|show</c>: the local model registry in <c>&lt;data dir&gt;/models</c>.
/// Exit codes: 0 done, 1 operational failure (download, digest, disk) or an id the registry does not hold, 2 bad input
/// (arguments, an unknown licence).
/// </summary>
internal static class RegistryCommands
{
    /// <summary>The registry subcommands, to add under <c>models</c>.</summary>
    public static IEnumerable<Command> Create() => Create(new RegistryCommandContext());

    internal static IEnumerable<Command> Create(RegistryCommandContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        yield return PullCommand.Create(context);
        yield return ImportCommand.Create(context);
        yield return VerifyCommand.Create(context);
        yield return RemoveCommand.Create(context);
        yield return ShowCommand.Create(context);
    }

    internal static Option<string?> DataDirectoryOption() =>
        new("--data-dir") { Description = "Where Sovereign keeps its files (default ~/.sovereign); models live in <data dir>/models." };

    /// <summary>The registry in the data directory, with the residency policy's licence list.</summary>
    internal static ModelRegistry Open(RegistryCommandContext context, string? dataDirectory)
    {
        var options = ModelRegistryOptions.ForDataDirectory(dataDirectory ?? AdminConnection.DefaultDataDirectory) with
        {
            IsKnownLicense = id => KnownLicenses.IsKnown(id),
            CanonicalizeLicense = KnownLicenses.Canonicalize,
        };
        return new ModelRegistry(context.Configure?.Invoke(options) ?? options);
    }

    /// <summary>Runs a command body, turning registry errors into a message on stderr and exit code 1 or 2.</summary>
    internal static async Task<int> RunAsync(RegistryCommandContext context, string verb, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (ModelRegistryException ex)
        {
            await context.Error.WriteLineAsync($"sovereign models {verb}: {ex.Message}");
            // A file whose SHA-256 is not the one given, published or registered failed an integrity check (3, as the
            // audit commands' failures), not a request (1).
            return ex.IsBadInput ? Output.ExitCodes.Usage
                : ex.Error == ModelRegistryError.DigestMismatch ? Output.ExitCodes.IntegrityFailure
                : Output.ExitCodes.Failed;
        }
        catch (OperationCanceledException)
        {
            await context.Error.WriteLineAsync($"sovereign models {verb}: cancelled. An interrupted pull resumes when run again.");
            return 1;
        }
    }

    /// <summary>A positional argument that must be there; missing is bad input (exit 2), like the options.</summary>
    internal static string Required(string? value, string what) => string.IsNullOrWhiteSpace(value)
        ? throw new ModelRegistryException(ModelRegistryError.InvalidArgument, $"missing {what}.")
        : value;

    internal static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} B",
    };

    internal static string Count(long count) => count switch
    {
        >= 1_000_000_000 => $"{count / 1e9:0.#}B",
        >= 1_000_000 => $"{count / 1e6:0.#}M",
        >= 1_000 => $"{count / 1e3:0.#}K",
        _ => count.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>One line describing an installed entry.</summary>
    /// <remarks>The architecture is the file's own (GGUF metadata, written by whoever published it): shown escaped (<see cref="Residency.DisplayText"/>).</remarks>
    internal static string Summary(ModelEntry entry) =>
        Residency.DisplayText.Escaped($"{entry.Id}: {entry.Architecture}, {Count(entry.Parameters)} parameters, {entry.Quantization}, {Bytes(entry.SizeBytes)}, {entry.License}, {entry.Digest}");
}

/// <summary>Where the registry commands write and how they build the registry; tests replace the defaults.</summary>
internal sealed class RegistryCommandContext
{
    /// <summary>Standard output.</summary>
    public IAnsiConsole Console { get; init; } = AnsiConsole.Console;

    /// <summary>Standard error.</summary>
    public TextWriter Error { get; init; } = System.Console.Error;

    /// <summary>Whether output is a terminal: progress bars and grids, else plain lines.</summary>
    public bool Interactive { get; init; } = AnsiConsole.Profile.Capabilities.Interactive && !System.Console.IsOutputRedirected;

    /// <summary>Adjusts the registry options (tests point the Hugging Face endpoint at loopback, etc.).</summary>
    public Func<ModelRegistryOptions, ModelRegistryOptions>? Configure { get; init; }
}
