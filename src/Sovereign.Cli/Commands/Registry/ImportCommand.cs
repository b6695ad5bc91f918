using System.CommandLine;
using Sovereign.Inference.Registry;
using Spectre.Console;

namespace Sovereign.Cli.Commands.Registry;

/// <summary><c>sovereign models import PATH</c>: add a local GGUF file (offline sites).</summary>
internal static class ImportCommand
{
    public static Command Create(RegistryCommandContext context)
    {
        var path = new Argument<string?>("PATH") { Description = "The GGUF file to add.", Arity = ArgumentArity.ZeroOrOne };
        var declaration = new ModelDeclarationOptions();
        var move = new Option<bool>("--move") { Description = "Move the file into the registry instead of copying it." };
        var dataDir = RegistryCommands.DataDirectoryOption();
        var command = new Command("import", "Add a local GGUF file to the registry (for offline sites): it is copied, hashed, checked and installed.")
        {
            path,
        };
        declaration.AddTo(command);
        command.Options.Add(move);
        command.Options.Add(dataDir);
        command.SetAction((result, cancellationToken) => RegistryCommands.RunAsync(context, "import", async () =>
        {
            var file = RegistryCommands.Required(result.GetValue(path), "PATH (the GGUF file to add)");
            declaration.ThrowIfMissing(result);
            var options = new ImportOptions
            {
                Id = declaration.IdOr(result, file),
                License = result.GetValue(declaration.License)!,
                OriginPublisher = result.GetValue(declaration.Publisher)!,
                OriginCountry = result.GetValue(declaration.Country)!,
                Languages = declaration.LanguageList(result),
                Modality = declaration.Modality(result),
                ExpectedDigest = result.GetValue(declaration.Sha256),
                Move = result.GetValue(move),
            };

            using var registry = RegistryCommands.Open(context, result.GetValue(dataDir));
            var entry = await TransferProgress.RunAsync(context, file, "copying", progress => registry.ImportAsync(file, options, progress, cancellationToken));
            context.Console.WriteLine("Installed " + RegistryCommands.Summary(entry));
            return 0;
        }));
        return command;
    }
}
