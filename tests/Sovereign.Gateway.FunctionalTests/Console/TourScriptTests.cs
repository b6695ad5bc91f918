using System.Text.RegularExpressions;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>The README's tour works as written: tests/tour/tour.sh runs its commands on a fresh data directory.</summary>
public sealed partial class TourScriptTests
{
    private static string RepositoryRoot
    {
        get
        {
            var directory = new DirectoryInfo(AppContext.BaseDirectory);
            while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Sovereign.slnx")))
            {
                directory = directory.Parent;
            }

            return directory?.FullName ?? throw new DirectoryNotFoundException("The repository root (Sovereign.slnx) was not found.");
        }
    }

    [Fact]
    public async Task Tour_RunsAsWritten_OnAFreshDataDirectory()
    {
        var (exit, stdout, stderr) = await ChildProcess.RunAsync("bash",
            [Path.Combine(RepositoryRoot, "tests", "tour", "tour.sh"), Path.Combine(AppContext.BaseDirectory, "sovereign.dll")], TimeSpan.FromMinutes(8));

        var output = stdout + stderr;
        Assert.True(exit == 0, output);
        Assert.Contains("TOUR OK", output, StringComparison.Ordinal);
    }

    [Fact]
    public void EveryCommandOfTheReadmeTour_IsInTheTourScript()
    {
        var readme = File.ReadAllText(Path.Combine(RepositoryRoot, "README.md"));
        var tour = readme[readme.IndexOf("<!-- tour:begin -->", StringComparison.Ordinal)..readme.IndexOf("<!-- tour:end -->", StringComparison.Ordinal)];
        var script = File.ReadAllText(Path.Combine(RepositoryRoot, "tests", "tour", "tour.sh"));
        var commands = CommandPattern().Matches(tour).Select(m => m.Groups["command"].Value.Trim()).Distinct().ToList();

        Assert.True(commands.Count >= 15, $"the tour has {commands.Count} sovereign commands");
        Assert.All(commands, command => Assert.Contains(command, script, StringComparison.Ordinal));
    }

    /// <summary>"sovereign VERB [SUBVERB]" at the start of a README tour line (after an optional VAR=value).</summary>
    [GeneratedRegex(@"^(?:\w+=\S+ |export \w+=\$\()?(?<command>sovereign(?: [a-z][a-z-]*){1,2})", RegexOptions.Multiline)]
    private static partial Regex CommandPattern();
}
