using System.CommandLine;
using System.CommandLine.Invocation;

namespace Sovereign.Cli.Output;

/// <summary>
/// "Did you mean" for a misspelt flag or command, from System.CommandLine's own typo corrections
/// (<see cref="ParseErrorAction.ShowTypoCorrections"/>: the command's visible options, their aliases and its subcommands
/// within a Levenshtein distance of 3, the nearest ones only). The parser writes them, with its error lines and help,
/// only when its error action runs, which the CLI does not run: it says each error in one line of its own
/// (<see cref="ParseErrors"/>). So the action is run here into a buffer, without help, and its suggestions are read
/// back per unmatched word and put on that word's line.
/// </summary>
internal static class TypoCorrections
{
    /// <summary>The suggestions per unmatched word (only words that have some).</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> Of(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var found = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        if (parse.UnmatchedTokens.Count == 0 || parse.Action is not ParseErrorAction action)
        {
            return found;
        }

        action.ShowHelp = false;
        action.ShowTypoCorrections = true;
        using var output = new StringWriter();
        parse.Invoke(new InvocationConfiguration { Output = output, Error = TextWriter.Null, EnableDefaultExceptionHandler = false });

        // Written as a line naming the word in quotes ("'--jurisdicton' was not matched. Did you mean one of the
        // following?"), then one suggestion a line: a symbol name, which never holds a space.
        List<string>? current = null;
        foreach (var line in output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (line.Contains(' ', StringComparison.Ordinal))
            {
                var word = parse.UnmatchedTokens.FirstOrDefault(t => line.Contains($"'{t}'", StringComparison.Ordinal));
                current = word is null ? null : [];
                if (word is not null)
                {
                    found[word] = current!;
                }
            }
            else
            {
                current?.Add(line);
            }
        }

        return found;
    }

    /// <summary>"Did you mean --jurisdiction?" for <paramref name="word"/>, or null when the parser has no suggestion.</summary>
    public static string? Question(IReadOnlyDictionary<string, IReadOnlyList<string>> corrections, string word) =>
        corrections.TryGetValue(word, out var suggestions) && suggestions.Count > 0
            ? $"Did you mean {string.Join(" or ", suggestions.Distinct(StringComparer.Ordinal))}?"
            : null;
}
