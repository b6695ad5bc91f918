using System.CommandLine;
using Spectre.Console;

namespace Sovereign.Cli.Commands.Registry;

/// <summary><c>sovereign models rm ID</c>: remove a model from the registry.</summary>
internal static class RemoveCommand
{
    public static Command Create(RegistryCommandContext context)
    {
        var id = new Argument<string?>("ID") { Description = "The model to remove.", Arity = ArgumentArity.ZeroOrOne };
        var dataDir = RegistryCommands.DataDirectoryOption();
        var command = new Command("rm", "Remove a model from the registry; its file is deleted unless another id shares it.")
        {
            id, dataDir,
        };
        command.SetAction((result, cancellationToken) => RegistryCommands.RunAsync(context, "rm", async () =>
        {
            using var registry = RegistryCommands.Open(context, result.GetValue(dataDir));
            var removal = await registry.RemoveAsync(RegistryCommands.Required(result.GetValue(id), "ID (the model to remove)"), cancellationToken);
            context.Console.WriteLine(removal.BlobDeleted
                ? $"Removed {removal.Entry.Id} and its file ({RegistryCommands.Bytes(removal.Entry.SizeBytes)} freed)."
                : $"Removed {removal.Entry.Id}; its file stays: another model id uses the same file.");
            return 0;
        }));
        return command;
    }
}
