using Spectre.Console;

namespace Sovereign.Cli.Output;

/// <summary>How tables reach the terminal, a pipe or a file.</summary>
internal static class ConsoleOutput
{
    /// <summary>
    /// When stdout is a pipe or a file, tables keep their full width (or <c>COLUMNS</c>, when set) and carry no
    /// colour codes, instead of being cut to Spectre's 80-column default.
    /// </summary>
    public static void Configure()
    {
        if (!Console.IsOutputRedirected)
        {
            return;
        }

        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(Console.Out),
        });
        console.Profile.Width = int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out var columns) && columns > 0 ? columns : 4096;
        AnsiConsole.Console = console;
    }
}
