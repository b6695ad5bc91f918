using Sovereign.Residency;

namespace Sovereign.Cli.Output;

/// <summary>Text from outside (a server's answer, a registry's file) as a table or a line of Spectre markup shows it.</summary>
internal static class TerminalText
{
    /// <summary>
    /// <paramref name="text"/> as Spectre markup that shows it as written: its markup escaped (<c>[red]</c> stays
    /// text), and every character that would act on the terminal instead of showing (an ESC sequence, a line break, a
    /// bidirectional override) shown as its <c>\uXXXX</c> escape (<see cref="DisplayText"/>). The server refuses them
    /// in the names it takes, but not everything a table shows is a name it took: a node reports its GPUs' names and
    /// its models, a cluster member its host, an engine its error.
    /// </summary>
    public static string Markup(string? text) => Spectre.Console.Markup.Escape(DisplayText.Escaped(text ?? ""));
}
