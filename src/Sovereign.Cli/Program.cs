using System.CommandLine;
using Sovereign.Cli.Commands;

// The sovereign command: each verb lives in Commands/, this file only assembles them.
var root = new RootCommand("Sovereign: an OpenAI-compatible server for open-weight models, with data residency and exact metering.");
root.Subcommands.Add(ServeCommand.Create());
root.Subcommands.Add(ModelsCommand.Create());
root.Subcommands.Add(ChatCommand.Create());
root.Subcommands.Add(TenantsCommand.Create());
root.Subcommands.Add(TenantsCommand.CreateKeys());
root.Subcommands.Add(NodesCommand.Create());
root.Subcommands.Add(AuditCommand.Create());
foreach (var command in MeteringCommands.Create())
{
    root.Subcommands.Add(command);
}
return await root.Parse(args).InvokeAsync();
