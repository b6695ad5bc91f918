using System.CommandLine;
using Sovereign.Inference.Registry;
using Spectre.Console;

namespace Sovereign.Cli.Commands.Registry;

/// <summary><c>sovereign models verify</c>: re-hash every registered file.</summary>
internal static class VerifyCommand
{
    public static Command Create(RegistryCommandContext context)
    {
        var dataDir = RegistryCommands.DataDirectoryOption();
        var command = new Command("verify", "Re-hash every model file and compare it with the registry; exits 3 when any is missing or altered.")
        {
            dataDir,
        };
        command.SetAction((result, cancellationToken) => RegistryCommands.RunAsync(context, "verify", async () =>
        {
            using var registry = RegistryCommands.Open(context, result.GetValue(dataDir));
            var report = await registry.VerifyAsync(new InlineProgress<ModelVerification>(v => context.Console.WriteLine(v.Status switch
            {
                ModelVerificationStatus.Ok => $"OK        {v.Entry.Id}  {v.Entry.Digest}",
                ModelVerificationStatus.Missing => $"MISSING   {v.Entry.Id}  {v.Path}",
                _ => $"MISMATCH  {v.Entry.Id}  expected {v.Entry.Digest}, found {v.ActualDigest} ({v.ActualSize:N0} bytes) in {v.Path}",
            })), cancellationToken);

            foreach (var stray in report.UnreferencedBlobs)
            {
                context.Console.WriteLine($"note: {stray} belongs to no model");
            }

            if (report.Models.Count == 0)
            {
                context.Console.WriteLine($"No models in {registry.ModelDirectory}.");
                return 0;
            }

            var failed = report.Models.Count(m => !m.IsOk);
            if (failed > 0)
            {
                await context.Error.WriteLineAsync($"sovereign models verify: {failed} of {report.Models.Count} model files are missing or altered; they will be refused at load. Pull or import them again.");
                return Output.ExitCodes.IntegrityFailure;
            }

            context.Console.WriteLine($"All {report.Models.Count} model files match the registry.");
            return 0;
        }));
        return command;
    }
}
