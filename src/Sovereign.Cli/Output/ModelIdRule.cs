using System.CommandLine;
using System.Globalization;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Cli.Output;

/// <summary>
/// The server's rule for model ids, said before asking: no invisible characters (zero-width spaces and joiners, word
/// joiners, the byte order mark, soft hyphens; <see cref="RequestReader.InvisibleRule"/>), which make two ids look the
/// same in every table. A pasted "llama-3-8b\u200B" reached the server and came back as "does not exist".
/// </summary>
internal static class ModelIdRule
{
    /// <summary>The usage error for <paramref name="value"/> given to <paramref name="flag"/>, or null when it holds no invisible character.</summary>
    public static string? Problem(string? value, string flag) => RequestReader.FirstInvisible(value) is { } invisible
        ? string.Create(CultureInfo.InvariantCulture, $"{flag} '{RequestReader.Shorten(value!)}' is not a model id: it holds U+{(int)invisible:X4}; model ids must not contain {RequestReader.InvisibleRule}.")
        : null;

    /// <summary>Refuses, at parse time (exit 2), a value of <paramref name="option"/> holding an invisible character.</summary>
    /// <param name="option">The option whose values are model ids (or ID=UPSTREAM forms).</param>
    public static void Refuse<T>(Option<T> option)
    {
        ArgumentNullException.ThrowIfNull(option);
        option.Validators.Add(r =>
        {
            foreach (var token in r.Tokens)
            {
                if (Problem(token.Value, option.Name) is { } problem)
                {
                    r.AddError(problem);
                }
            }
        });
    }
}
