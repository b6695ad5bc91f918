using System.CommandLine;
using System.CommandLine.Parsing;
using System.Runtime.InteropServices;
using Sovereign.Cli.Commands;
using Sovereign.Cli.Output;

// The sovereign command: each verb lives in Commands/, this file only assembles them and turns every failure into
// one line on stderr and a documented exit code (Output/CliErrors.cs).
// Before the commands are built: some keep the console they are given (the registry commands took Spectre's
// 80-column default, so 'models show' and 'models verify' broke each digest onto a line of its own when piped).
ConsoleOutput.Configure();
var root = SovereignCommands.Root();

var parse = root.Parse(args);
var name = CommandName(parse);
if (parse.Errors.Count > 0)
{
    var prefix = name.Length > 0 ? "sovereign " + name : "sovereign";
    var corrections = TypoCorrections.Of(parse);
    if (MisspeltCommand(parse) is { } misspelt)
    {
        // 'sovereign tenants lst' said "Required command was not provided." above the unrecognized 'lst': the user
        // gave a command, only not one that exists, so the line names the ones that do (and the nearest first).
        var commands = parse.CommandResult.Command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name);
        var guess = TypoCorrections.Question(corrections, misspelt) is { } question ? $". {question} Use" : "; use";
        Console.Error.WriteLine($"{prefix}: '{misspelt}' is not a command{guess} one of: {string.Join(", ", commands)}.");
        Console.Error.WriteLine($"Run '{prefix} --help' for the options.");
        return ExitCodes.Usage;
    }

    foreach (var error in parse.Errors)
    {
        var line = ParseErrors.Describe(error.Message, ParseErrors.NameOf(error.SymbolResult), ParseErrors.Arguments(parse.CommandResult.Command));
        // A misspelt flag ('--jurisdicton') was "Unrecognized command or argument" and nothing more.
        if (parse.UnmatchedTokens.FirstOrDefault(t => error.Message.Contains($"'{t}'", StringComparison.Ordinal)) is { } token
            && TypoCorrections.Question(corrections, token) is { } correction)
        {
            line = $"{line} {correction}";
        }

        Console.Error.WriteLine($"{prefix}: {line}");
    }

    Console.Error.WriteLine($"Run '{prefix} --help' for the options.");
    return ExitCodes.Usage;
}

// Ctrl+C in any other command is taken here, not by System.CommandLine: its handler cancelled the command's token and
// what the command waited on threw, which read as "the server did not answer in time." or "cannot reach the server
// (Operation canceled)", exit 4 (unreachable), for a server that was answering. The flag is set before the token is
// cancelled, so whatever fails after the signal is said as the interruption; a command that does not notice (chat
// waiting for a line) is ended 2 s later, as System.CommandLine ended it.
var interrupted = 0;
var said = 0;
using var cancel = new CancellationTokenSource();
using var interrupt = name == "serve" ? null : PosixSignalRegistration.Create(PosixSignal.SIGINT, signal =>
{
    signal.Cancel = true;
    if (Interlocked.Exchange(ref interrupted, 1) == 0)
    {
        // The bound is armed before the token is cancelled, on its own thread: a cancellation callback that blocks, or a
        // starved thread pool, must not keep an interrupted command alive.
        new Thread(() =>
        {
            Thread.Sleep(TimeSpan.FromSeconds(2));
            Environment.Exit(Interrupted());
        }) { IsBackground = true, Name = "interrupt bound" }.Start();
        cancel.Cancel();
    }
});
try
{
    // serve leaves SIGTERM and Ctrl+C to its host, which stops taking requests, finishes those in flight (up to its
    // shutdown timeout), records their outcomes and signs a last audit checkpoint. System.CommandLine's own handler
    // ended the process 2 s after the signal, cutting answers off with neither their outcome nor their usage recorded.
    var invocation = new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null };
    var exit = await parse.InvokeAsync(invocation, cancel.Token);
    return Volatile.Read(ref interrupted) == 1 ? Interrupted() : exit;
}
catch (Exception) when (Volatile.Read(ref interrupted) == 1)
{
    return Interrupted();
}
catch (Exception ex)
{
    return CliErrors.Report(name, ex, UrlOf(parse));
}

// Said once, whether the command or the 2 s bound ends first.
int Interrupted()
{
    if (Interlocked.Exchange(ref said, 1) == 0)
    {
        Console.Error.WriteLine($"sovereign {name}: interrupted.");
    }

    return ExitCodes.Interrupted;
}

static string CommandName(ParseResult parse)
{
    var names = new List<string>();
    for (SymbolResult? result = parse.CommandResult; result is CommandResult { Command: not RootCommand } command; result = result.Parent)
    {
        names.Insert(0, command.Command.Name);
    }

    return string.Join(' ', names);
}

// The first unmatched word where a command was expected (a command with subcommands and no action of its own).
static string? MisspeltCommand(ParseResult parse) =>
    parse.CommandResult.Command is { Subcommands.Count: > 0, Action: null } && parse.UnmatchedTokens is [var first, ..]
        ? first
        : null;

static string? UrlOf(ParseResult parse) =>
    parse.CommandResult.Command.Options.FirstOrDefault(o => o.Name == "--url") is Option<string> url ? parse.GetValue(url) : null;
