using System.CommandLine;
using System.CommandLine.Parsing;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.Hosting;

namespace Sovereign.Gateway.FunctionalTests.Deploy;

/// <summary>
/// What an operator installing Sovereign for the first time copies from README.md and docs/operator-guide.md must be
/// what the program does (operator1, session 56): every <c>sovereign ...</c> command line the docs show parses with
/// the real command tree, every <c>Sovereign:...</c> setting they name binds an option (the binder ignores a name
/// that binds nothing, leaving the default in force), and the guide's table of log events is the events the code
/// logs, with their levels. Each was found to have drifted; these keep it from drifting again without a word.
/// </summary>
public sealed partial class OperatorDocsTests
{
    private static readonly string[] Documents = ["README.md", "docs/operator-guide.md"];

    /// <summary>Every document an operator or a tenant developer reads for settings and events.</summary>
    private static readonly string[] AllDocuments = [.. Documents, "docs/architecture.md", "docs/openai-compatibility.md", "docs/language-tax.md"];

    /// <summary>Names the docs use to explain the form of a setting, not a setting.</summary>
    private static readonly HashSet<string> NotSettings = new(StringComparer.Ordinal)
    {
        "Sovereign:Section:Name", // "Sovereign__Section__Name, double underscore for :"
    };

    [Fact]
    public void Docs_EveryCommandLineInACodeBlock_Parses()
    {
        var lines = Documents.SelectMany(CodeBlockCommandLines).ToList();
        Assert.True(lines.Count >= 60, $"found only {lines.Count} command lines in code blocks");

        var failures = new List<string>();
        foreach (var (where, line) in lines)
        {
            var parse = SovereignCommands.Root().Parse(Words(line));
            if (parse.Errors.Count > 0)
            {
                failures.Add($"{where}: sovereign {line}: {string.Join("; ", parse.Errors.Select(e => e.Message))}");
            }
        }

        Assert.True(failures.Count == 0, "command lines the CLI refuses:\n" + string.Join("\n", failures));
    }

    /// <summary>The commands the deployment files run: the systemd units' ExecStart, the compose file's, the scripts'.</summary>
    [Fact]
    public void DeploymentFiles_EveryCommandLine_Parses()
    {
        var deploy = Path.Combine(RepositoryRoot(), "deploy");
        var lines = new List<(string Where, string Line)>();
        foreach (var unit in Directory.GetFiles(Path.Combine(deploy, "systemd"), "*.service"))
        {
            lines.AddRange(File.ReadAllLines(unit).Select(l => Regex.Match(l, @"^ExecStart=\S*/sovereign (.*)$")).Where(m => m.Success).Select(m => (unit, m.Groups[1].Value)));
        }

        foreach (var script in Directory.GetFiles(Path.Combine(deploy, "compose"), "*.sh"))
        {
            lines.AddRange(File.ReadAllLines(script).Select(l => Regex.Match(l, @"^\s*sovereign ([a-z].*)$")).Where(m => m.Success).Select(m => (script, m.Groups[1].Value)));
        }

        foreach (Match command in Regex.Matches(File.ReadAllText(Path.Combine(deploy, "compose", "compose.yaml")), @"(?m)^\s*#?\s*command: \[(""serve""[^\]]*)\]"))
        {
            lines.Add(("compose.yaml", string.Join(' ', Regex.Matches(command.Groups[1].Value, @"""([^""]*)""").Select(m => m.Groups[1].Value))));
        }

        Assert.True(lines.Count >= 10, $"found {lines.Count} command lines in deploy/");
        var failures = lines.Select(l => (l.Where, l.Line, Errors: SovereignCommands.Root().Parse(Words(l.Line)).Errors))
            .Where(l => l.Errors.Count > 0)
            .Select(l => $"{l.Where}: sovereign {l.Line}: {string.Join("; ", l.Errors.Select(e => e.Message))}")
            .ToList();
        Assert.True(failures.Count == 0, "command lines in deploy/ the CLI refuses:\n" + string.Join("\n", failures));
    }

    [Fact]
    public void Docs_EveryCommandInProse_NamesACommandAndItsOptions()
    {
        var spans = Documents.SelectMany(document => InlineSpans(document).Select(span => (Where: document, Span: span)))
            .Select(s => (s.Where, Start: CommandStart().Match(s.Span), s.Span))
            .Where(s => s.Start.Success)
            .Select(s => (s.Where, Call: s.Span[(s.Start.Index + s.Start.Length)..]))
            .ToList();
        Assert.True(spans.Count >= 60, $"found only {spans.Count} inline commands");

        var failures = new List<string>();
        foreach (var (where, call) in spans)
        {
            if (CommandProblem(call) is { } problem)
            {
                failures.Add($"{where}: `sovereign {call}`: {problem}");
            }
        }

        Assert.True(failures.Count == 0, "commands in the docs' prose the CLI does not have:\n" + string.Join("\n", failures));
    }

    /// <summary>The README's one-line summary of the admin verbs (<c>tenants list|show|create|update, keys ...</c>).</summary>
    [Fact]
    public void Readme_CommandSummary_NamesOnlyCommandsThatExist()
    {
        var summary = File.ReadAllLines(Path.Combine(RepositoryRoot(), "README.md")).Single(l => l.StartsWith("sovereign tenants list|", StringComparison.Ordinal));
        var root = SovereignCommands.Root();
        var failures = new List<string>();
        var named = 0;
        foreach (var item in Regex.Replace(summary["sovereign ".Length..], @"\([^)]*\)", "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var words = item.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var command = root.Subcommands.FirstOrDefault(c => c.Name == words[0]);
            if (command is null)
            {
                failures.Add(words[0]);
                continue;
            }

            foreach (var sub in words.Skip(1).Where(w => w != "...").SelectMany(w => w.Split('|')))
            {
                named++;
                if (!command.Subcommands.Any(c => c.Name == sub))
                {
                    failures.Add($"{words[0]} {sub}");
                }
            }
        }

        Assert.True(named >= 20, $"the summary names {named} subcommands");
        Assert.True(failures.Count == 0, "the README's summary names commands the CLI does not have: " + string.Join(", ", failures));
    }

    [Fact]
    public void Docs_EverySovereignSetting_BindsAnOption()
    {
        var names = AllDocuments.SelectMany(SettingNames).Where(n => !NotSettings.Contains(n.Name)).ToList();
        Assert.True(names.Count >= 80, $"found only {names.Count} setting names");

        var failures = names
            .Select(n => (n.Where, n.Name, Problem: SettingProblem(n.Name)))
            .Where(n => n.Problem is not null)
            .Select(n => $"{n.Where}: {n.Name}: {n.Problem}")
            .Distinct()
            .ToList();

        Assert.True(failures.Count == 0, "settings the docs name that bind nothing:\n" + string.Join("\n", failures));
    }

    [Fact]
    public void Docs_JsonConfigurationExamples_NameOnlySettings()
    {
        var blocks = Documents.SelectMany(document => CodeBlocks(document).Where(b => b.Language == "json").Select(b => (Where: document, b.Text))).ToList();
        Assert.True(blocks.Count >= 3, $"found {blocks.Count} JSON examples");

        var failures = new List<string>();
        foreach (var (where, text) in blocks)
        {
            // A fragment ("Engines": [...]) is a part of the Sovereign section.
            var json = text.TrimStart().StartsWith('{') ? text : "{ \"Sovereign\": { " + text + " } }";
            var configuration = new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();
            failures.AddRange(SovereignOptionsValidator.ShapeFailures(configuration).Where(BindsNothing).Select(f => $"{where}: {f}"));
        }

        Assert.True(failures.Count == 0, "JSON examples with settings that bind nothing:\n" + string.Join("\n", failures));
    }

    /// <summary>
    /// The guide's events table against the <c>[LoggerMessage]</c> methods of every Sovereign assembly: each id in the
    /// table is logged (a row saying "retired" is not), at a level the row names; each id logged has a row.
    /// </summary>
    [Fact]
    public void EventsTable_IsTheEventsTheCodeLogs_AtTheirLevels()
    {
        var table = EventsTable();
        var logged = LoggedEvents();
        Assert.True(logged.Count >= 100, $"found only {logged.Count} logged events");

        var failures = new List<string>();
        foreach (var (id, row) in table.OrderBy(p => p.Key))
        {
            var retired = row.Means.Contains("retired", StringComparison.OrdinalIgnoreCase);
            if (!logged.TryGetValue(id, out var events))
            {
                if (!retired)
                {
                    failures.Add($"{id}: in the table ({row.Name}), logged nowhere");
                }

                continue;
            }

            if (retired)
            {
                failures.Add($"{id}: the table says retired, but {events[0].Method} logs it");
            }

            foreach (var (level, name, method) in events)
            {
                if (level is { } fixedLevel && !row.Levels.Contains(fixedLevel))
                {
                    failures.Add($"{id}: logged at {fixedLevel} by {method}, the table says {row.Level}");
                }

                if (Identifier().IsMatch(row.Name) && row.Name != name)
                {
                    failures.Add($"{id}: named {name} in the code, {row.Name} in the table");
                }
            }
        }

        foreach (var (id, events) in logged.Where(p => !table.ContainsKey(p.Key)).OrderBy(p => p.Key))
        {
            failures.Add($"{id}: logged by {events[0].Method} ({events[0].Name}, {events[0].Level?.ToString() ?? "its level given by the caller"}), no row in the table");
        }

        Assert.True(failures.Count == 0, "the operator guide's events table and the code disagree:\n" + string.Join("\n", failures));
    }

    /// <summary>
    /// The other way round: every setting the start binds (the options classes under <c>Sovereign</c>, list items and
    /// dictionary values included) is named in README.md or the operator guide. Found by operator1 (session 56):
    /// <c>serve</c> told an operator to set <c>Sovereign__AnonymousAccess=false</c>, which no document named, nor
    /// <c>JurisdictionGroups</c>, <c>TestModel</c>, four <c>Limits</c> and six language detector settings.
    /// </summary>
    [Fact]
    public void Options_EverySetting_IsNamedInTheOperatorDocs()
    {
        var docs = string.Concat(Documents.Select(d => File.ReadAllText(Path.Combine(RepositoryRoot(), d))));
        var settings = new SortedSet<string>(StringComparer.Ordinal);
        Collect(typeof(SovereignOptions), "Sovereign", settings, 0);
        Collect(typeof(Sovereign.Cluster.Hosting.SovereignClusterOptions), "Sovereign:Cluster", settings, 0);
        Collect(typeof(Sovereign.Cluster.Grains.TenantMoneyOptions), "Sovereign:Metering", settings, 0);
        Assert.True(settings.Count >= 100, $"found only {settings.Count} settings");

        var unnamed = settings.Where(s => !Regex.IsMatch(docs, $"(?<![A-Za-z]){Regex.Escape(s[(s.LastIndexOf(':') + 1)..])}(?![A-Za-z])")).ToList();
        Assert.True(unnamed.Count == 0, "settings no operator document names:\n" + string.Join("\n", unnamed));

        static void Collect(Type type, string path, ISet<string> settings, int depth)
        {
            foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && p.GetIndexParameters().Length == 0))
            {
                if (property.Name == "Cluster" && type == typeof(SovereignOptions))
                {
                    continue; // its own options, collected apart
                }

                var name = $"{path}:{property.Name}";
                settings.Add(name);
                var value = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
                var element = value.IsGenericType && value.GetGenericTypeDefinition() == typeof(Dictionary<,>) ? value.GetGenericArguments()[1]
                    : value.IsGenericType && value.GetGenericTypeDefinition() == typeof(List<>) ? value.GetGenericArguments()[0]
                    : value;
                if (depth < 4 && element.IsClass && element != typeof(string) && !element.IsGenericType && element.Namespace?.StartsWith("Sovereign", StringComparison.Ordinal) == true)
                {
                    Collect(element, name, settings, depth + 1);
                }
            }
        }
    }

    /// <summary>An event named in the docs' prose ("event 4124", "events 4160 and 4161") has a row in the events table.</summary>
    [Fact]
    public void Docs_EveryEventNamedInProse_IsInTheEventsTable()
    {
        var table = EventsTable();
        var named = AllDocuments.SelectMany(document => Regex.Matches(File.ReadAllText(Path.Combine(RepositoryRoot(), document)), @"\bevents? (\d{4}(?:(?:, | and | or |/| then )\d{4})*)")
            .SelectMany(m => Regex.Matches(m.Groups[1].Value, @"\d{4}").Select(id => (Where: document, Id: int.Parse(id.Value, System.Globalization.CultureInfo.InvariantCulture)))))
            .ToList();
        Assert.True(named.Count >= 100, $"found only {named.Count} events named in prose");

        var missing = named.Where(n => !table.ContainsKey(n.Id)).Select(n => $"{n.Where}: {n.Id}").Distinct().ToList();
        Assert.True(missing.Count == 0, "events named in the docs with no row in the guide's events table:\n" + string.Join("\n", missing));
    }

    [Theory]
    [InlineData("Sovereign:Jurisdicton")]
    [InlineData("Sovereign:Cluster:Reddis")]
    [InlineData("Sovereign:Models:0:Pth")]
    [InlineData("Sovereign:Limits:MaxOutputTokens:Foo")]
    [InlineData("Sovereign:Metering:LeaseTerms")]
    public void SettingProblem_NamesWhatTheBinderWouldIgnore(string name) => Assert.NotNull(SettingProblem(name));

    [Theory]
    [InlineData("Sovereign:Metering:LeaseTerm")]
    [InlineData("Sovereign:Cluster:SiloPort")]
    [InlineData("Sovereign:Engines")]
    [InlineData("Sovereign:OperatorTokens:alice")]
    [InlineData("Sovereign:Engines:0:Models:0:Languages:0")]
    public void SettingProblem_AcceptsSettingsAndSections(string name) => Assert.Null(SettingProblem(name));

    [Theory]
    [InlineData("nodes add x --jurisdicton TH", "--jurisdicton")]
    [InlineData("tenants lst", "lst")]
    [InlineData("limits th --budgets month=5", "--budgets")]
    public void CommandProblem_NamesAnUnknownCommandOrOption(string call, string named) =>
        Assert.Contains(named, CommandProblem(call), StringComparison.Ordinal);

    // ---- settings ----

    /// <summary>Why the configuration binder would bind nothing to <paramref name="name"/>, or null where it binds a setting or a section.</summary>
    private static string? SettingProblem(string name)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection([new(name, "1")]).Build();
        var failures = SovereignOptionsValidator.ShapeFailures(configuration).Where(BindsNothing).ToList();
        return failures.Count == 0 ? null : string.Join("; ", failures);
    }

    /// <summary>A shape failure that means the name binds nothing (not one that only says the value has the wrong shape).</summary>
    private static bool BindsNothing(string failure) =>
        failure.Contains(" is not a setting", StringComparison.Ordinal) || failure.Contains(" is one value, but it is set to a list", StringComparison.Ordinal);

    /// <summary>
    /// Every <c>Sovereign:A:B</c> or <c>Sovereign__A__B</c> in a document, in the colon form; a following <c>`__C`</c> in the
    /// same line is the sibling <c>Sovereign:A:C</c>. Placeholders: <c>N</c>, <c>M</c> and <c>&lt;...&gt;</c> are indices or
    /// keys, <c>NAME</c> a key.
    /// </summary>
    private static IEnumerable<(string Where, string Name)> SettingNames(string document)
    {
        var lines = File.ReadAllLines(Path.Combine(RepositoryRoot(), document));
        for (var i = 0; i < lines.Length; i++)
        {
            string? previous = null;
            foreach (Match match in SettingName().Matches(lines[i]))
            {
                // "<Sovereign:Cluster:Secret>" and "Sovereign:Languages:*" (every setting of the section) name the setting or section before.
                var raw = match.Value.TrimEnd(':', '_', '.', '*');
                raw = raw.Contains('<', StringComparison.Ordinal) ? raw : raw.TrimEnd('>').TrimEnd(':', '_', '.');
                string name;
                if (raw.StartsWith("__", StringComparison.Ordinal))
                {
                    if (previous is null)
                    {
                        continue;
                    }

                    name = previous[..previous.LastIndexOf(':')] + ":" + raw[2..].Replace("__", ":", StringComparison.Ordinal);
                }
                else
                {
                    name = raw.Replace("__", ":", StringComparison.Ordinal);
                    previous = name;
                }

                var segments = name.Split(':').Select(s => s switch
                {
                    "N" or "M" => "0",
                    "NAME" => "alice",
                    _ when s.StartsWith('<') => "key",
                    _ => s,
                });
                yield return ($"{document}:{i + 1}", string.Join(':', segments));
            }
        }
    }

    // ---- commands ----

    /// <summary>Why <c>sovereign <paramref name="call"/></c> names a command or an option that does not exist, or null.</summary>
    private static string? CommandProblem(string call)
    {
        Command command = SovereignCommands.Root();
        var words = Words(call.Replace('[', ' ').Replace(']', ' '));
        var i = 0;
        for (; i < words.Count && command.Subcommands.FirstOrDefault(c => c.Name == words[i] || c.Aliases.Contains(words[i])) is { } sub; i++)
        {
            command = sub;
        }

        if (command is RootCommand)
        {
            return i < words.Count && !words[i].StartsWith('-') ? $"'{words[i]}' is not a command" : null;
        }

        if (command.Action is null && i < words.Count && Word().IsMatch(words[i]))
        {
            return $"'{words[i]}' is not a command of '{command.Name}'";
        }

        var options = command.Options.Concat(SovereignCommands.Root().Options.Where(o => o.Recursive))
            .SelectMany(o => o.Aliases.Append(o.Name)).ToHashSet(StringComparer.Ordinal);
        var unknown = words.Skip(i).Select(w => w.Split('=')[0]).Where(w => OptionWord().IsMatch(w) && !options.Contains(w)).ToList();
        return unknown.Count == 0 ? null : $"'{command.Name}' has no option {string.Join(", ", unknown)}";
    }

    /// <summary>
    /// The <c>sovereign</c> command lines of a document's shell code blocks, as their arguments (what follows
    /// <c>sovereign</c>): continuation lines joined, comments, pipes and redirections cut, environment assignments,
    /// <c>sudo -u USER</c> and a path before <c>sovereign</c> dropped; <c>[--json]</c> is the option given, and
    /// <c>load ID / models unload ID</c> two commands.
    /// </summary>
    private static IEnumerable<(string Where, string Line)> CodeBlockCommandLines(string document)
    {
        foreach (var block in CodeBlocks(document).Where(b => b.Language is "" or "sh" or "bash" or "shell"))
        {
            var logical = Regex.Replace(block.Text, @"\\\n\s*", " ");
            foreach (var raw in logical.Split('\n'))
            {
                var line = Comment().Replace(raw, "").Trim();
                var start = CommandStart().Match(line);
                if (!start.Success || line.Contains("list|", StringComparison.Ordinal))
                {
                    continue; // not a sovereign command (the README's verb summary has its own test)
                }

                var rest = line[(start.Index + start.Length)..];
                rest = Regex.Split(rest, @"\s(?:\||>|&&|;)\s|\)\s*$|\)\s")[0].Trim();
                rest = Regex.Replace(rest, @"\[([^\]]*)\]", "$1");
                var parts = rest.Split(" / models ", StringSplitOptions.None);
                for (var p = 0; p < parts.Length; p++)
                {
                    yield return ($"{document}:{block.Line}", (p == 0 ? "" : "models ") + parts[p].Trim());
                }
            }
        }
    }

    private static IEnumerable<(int Line, string Language, string Text)> CodeBlocks(string document)
    {
        var lines = File.ReadAllLines(Path.Combine(RepositoryRoot(), document));
        for (var i = 0; i < lines.Length; i++)
        {
            var fence = lines[i].TrimStart();
            if (!fence.StartsWith("```", StringComparison.Ordinal))
            {
                continue;
            }

            var indent = lines[i].Length - fence.Length;
            var start = i;
            var text = new StringBuilder();
            for (i++; i < lines.Length && !lines[i].TrimStart().StartsWith("```", StringComparison.Ordinal); i++)
            {
                text.Append(lines[i].Length >= indent ? lines[i][indent..] : lines[i].TrimStart()).Append('\n');
            }

            yield return (start + 1, fence[3..].Trim(), text.ToString());
        }
    }

    /// <summary>The inline code spans of a document, outside its code blocks.</summary>
    private static IEnumerable<string> InlineSpans(string document)
    {
        var inBlock = false;
        foreach (var line in File.ReadAllLines(Path.Combine(RepositoryRoot(), document)))
        {
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                inBlock = !inBlock;
                continue;
            }

            if (!inBlock)
            {
                foreach (Match span in Regex.Matches(line, "`([^`]+)`"))
                {
                    yield return span.Groups[1].Value;
                }
            }
        }
    }

    /// <summary>Shell-like words: whitespace-separated, quotes grouping and removed.</summary>
    private static List<string> Words(string line)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        var any = false;
        char? quote = null;
        foreach (var c in line)
        {
            if (quote is { } q)
            {
                if (c == q)
                {
                    quote = null;
                }
                else
                {
                    word.Append(c);
                }
            }
            else if (c is '"' or '\'')
            {
                quote = c;
                any = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (any || word.Length > 0)
                {
                    words.Add(word.ToString());
                }

                word.Clear();
                any = false;
            }
            else
            {
                word.Append(c);
            }
        }

        if (any || word.Length > 0)
        {
            words.Add(word.ToString());
        }

        return words;
    }

    // ---- events ----

    private sealed record Row(string Name, string Level, IReadOnlySet<LogLevel> Levels, string Means);

    /// <summary>The "Log events" table of the guide's "What to monitor": each id (ranges and lists expanded) with its row.</summary>
    private static Dictionary<int, Row> EventsTable()
    {
        var guide = File.ReadAllLines(Path.Combine(RepositoryRoot(), "docs", "operator-guide.md"));
        var header = Array.FindIndex(guide, l => l.Trim() == "| id | name | level | means |");
        Assert.True(header >= 0, "docs/operator-guide.md has no events table (| id | name | level | means |)");
        var table = new Dictionary<int, Row>();
        foreach (var line in guide.Skip(header + 2).Select(l => l.Trim()).TakeWhile(l => l.StartsWith('|')))
        {
            var cells = line.Trim('|').Split('|').Select(c => c.Trim()).ToArray();
            // The level column's first part: "Error (Debug during a database outage, 4160)" is logged at either.
            var levels = Enum.GetValues<LogLevel>().Where(l => Regex.IsMatch(cells[2], $@"\b{l}\b")).ToHashSet();
            var row = new Row(cells[1], cells[2], levels, cells[3]);
            foreach (var part in cells[0].Split(',', StringSplitOptions.TrimEntries))
            {
                var range = part.Split('-');
                var (from, to) = (int.Parse(range[0], System.Globalization.CultureInfo.InvariantCulture), int.Parse(range[^1], System.Globalization.CultureInfo.InvariantCulture));
                for (var id = from; id <= to; id++)
                {
                    Assert.True(table.TryAdd(id, row), $"event {id} has two rows in the table");
                }
            }
        }

        return table;
    }

    /// <summary>Every <c>[LoggerMessage]</c> method of the Sovereign assemblies, by event id: its level (null where the caller gives it) and name.</summary>
    private static Dictionary<int, List<(LogLevel? Level, string Name, string Method)>> LoggedEvents()
    {
        // The CLI and every Sovereign assembly it references, directly or not.
        var assemblies = new Dictionary<string, Assembly>(StringComparer.Ordinal);
        var pending = new Stack<Assembly>([typeof(SovereignCommands).Assembly]);
        while (pending.TryPop(out var assembly))
        {
            if (assemblies.TryAdd(assembly.GetName().Name!, assembly))
            {
                foreach (var reference in assembly.GetReferencedAssemblies().Where(n => n.Name!.StartsWith("Sovereign.", StringComparison.Ordinal)))
                {
                    pending.Push(Assembly.Load(reference));
                }
            }
        }

        Assert.Contains("Sovereign.Inference", assemblies.Keys);
        var events = new Dictionary<int, List<(LogLevel?, string, string)>>();
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly;
        foreach (var type in assemblies.Values.SelectMany(a => a.GetTypes()))
        {
            foreach (var method in type.GetMethods(all))
            {
                if (method.GetCustomAttribute<LoggerMessageAttribute>() is not { EventId: > 0 } message)
                {
                    continue;
                }

                var level = message.Level is LogLevel.None || (int)message.Level == -1 ? (LogLevel?)null : message.Level;
                var name = string.IsNullOrEmpty(message.EventName) ? method.Name : message.EventName;
                if (!events.TryGetValue(message.EventId, out var list))
                {
                    events[message.EventId] = list = [];
                }

                list.Add((level, name, $"{type.Name}.{method.Name}"));
            }
        }

        return events;
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "docs", "operator-guide.md")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("docs/operator-guide.md was not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"(?<![A-Za-z_])(Sovereign(?::|__)[A-Za-z0-9_:<>.*-]+|__[A-Z][A-Za-z0-9_]*)")]
    private static partial Regex SettingName();

    /// <summary>Where a command line's arguments start (not an output line such as <c>sovereign serve: ready on ...</c>).</summary>
    [GeneratedRegex(@"^(?:(?:sudo -u \S+|sudo|[A-Za-z_][A-Za-z0-9_]*=\S*)\s+)*(?:export \w+=\$\()?(?:\S*/)?sovereign\s+(?=[a-z-])(?![a-z-]+:)")]
    private static partial Regex CommandStart();

    [GeneratedRegex(@"(?:^|\s)#.*$")]
    private static partial Regex Comment();

    [GeneratedRegex("^[a-z][a-z-]*$")]
    private static partial Regex Word();

    [GeneratedRegex("^--?[a-zA-Z][a-zA-Z-]*$")]
    private static partial Regex OptionWord();

    [GeneratedRegex("^[A-Z][A-Za-z0-9]+$")]
    private static partial Regex Identifier();
}
