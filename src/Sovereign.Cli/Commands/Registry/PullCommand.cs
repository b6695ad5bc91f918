using System.CommandLine;
using Sovereign.Inference.Registry;
using Spectre.Console;

namespace Sovereign.Cli.Commands.Registry;

/// <summary><c>sovereign models pull SOURCE</c>: download, verify and install a GGUF model.</summary>
internal static class PullCommand
{
    public static Command Create(RegistryCommandContext context)
    {
        var source = new Argument<string?>("SOURCE") { Description = "An https:// URL, or hf:ORG/REPO/FILE (Hugging Face; HF_ENDPOINT and HF_TOKEN are honoured).", Arity = ArgumentArity.ZeroOrOne };
        var declaration = new ModelDeclarationOptions();
        var allowUnverified = new Option<bool>("--allow-unverified")
        {
            Description = "Install even when no SHA-256 is given or published (recorded as unverified). Off by default: pulls fail closed.",
        };
        var dataDir = RegistryCommands.DataDirectoryOption();
        var command = new Command("pull", "Download a GGUF model, verify its SHA-256 (given with --sha256 or published by the server) and add it to the registry. An interrupted pull resumes when run again.")
        {
            source,
        };
        declaration.AddTo(command);
        command.Options.Add(allowUnverified);
        command.Options.Add(dataDir);
        command.SetAction((result, cancellationToken) => RegistryCommands.RunAsync(context, "pull", async () =>
        {
            var from = RegistryCommands.Required(result.GetValue(source), "SOURCE (an https:// URL or hf:ORG/REPO/FILE)");
            declaration.ThrowIfMissing(result);
            var request = new PullRequest
            {
                Source = from,
                Id = declaration.IdOr(result, from.StartsWith(ModelSource.HuggingFacePrefix, StringComparison.OrdinalIgnoreCase) ? from : (Uri.TryCreate(from, UriKind.Absolute, out var url) ? url.AbsolutePath : from)),
                License = result.GetValue(declaration.License)!,
                OriginPublisher = result.GetValue(declaration.Publisher)!,
                OriginCountry = result.GetValue(declaration.Country)!,
                Languages = declaration.LanguageList(result),
                Modality = declaration.Modality(result),
                ExpectedDigest = result.GetValue(declaration.Sha256),
                AllowUnverified = result.GetValue(allowUnverified),
            };

            using var registry = RegistryCommands.Open(context, result.GetValue(dataDir));
            var entry = await TransferProgress.RunAsync(context, from, "downloading", progress => registry.PullAsync(request, progress, cancellationToken));
            if (entry.DigestSource == DigestProvenance.Computed)
            {
                await context.Error.WriteLineAsync($"sovereign models pull: warning: {entry.Id} was installed unverified (no digest given or published); its digest is {entry.Digest}.");
            }

            context.Console.WriteLine("Installed " + RegistryCommands.Summary(entry));
            return 0;
        }));
        return command;
    }
}
