using System.CommandLine;

namespace Sovereign.Cli.Commands;

/// <summary>
/// The whole <c>sovereign</c> command tree. Program.cs parses the process's arguments with it; the tests parse every
/// command line the README and the operator guide show with it, so a flag the docs name and the CLI lacks fails a test
/// instead of an operator's first install.
/// </summary>
public static class SovereignCommands
{
    /// <summary>Builds the root command with every verb.</summary>
    public static RootCommand Root()
    {
        var root = new RootCommand("Sovereign: an OpenAI-compatible server for open-weight models, with data residency and exact metering.");
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(ModelsCommand.Create());
        root.Subcommands.Add(ChatCommand.Create());
        root.Subcommands.Add(TenantsCommand.Create());
        root.Subcommands.Add(TenantsCommand.CreateKeys());
        root.Subcommands.Add(AdminKeysCommand.Create());
        root.Subcommands.Add(AdminKeysCommand.Create(legacy: true));
        root.Subcommands.Add(OperatorKeyCommand.Create());
        root.Subcommands.Add(NodesCommand.Create());
        root.Subcommands.Add(ClusterCommand.Create());
        root.Subcommands.Add(AuditCommand.Create());
        root.Subcommands.Add(DatabaseCommand.Create());
        foreach (var command in MeteringCommands.Create())
        {
            root.Subcommands.Add(command);
        }

        return root;
    }
}
