using System.CommandLine;
using System.Globalization;
using Sovereign.Cli.Output;
using Sovereign.Inference.Gguf;
using Spectre.Console;

namespace Sovereign.Cli.Commands;

/// <summary><c>sovereign models</c>: list a server's models and synthesize GGUF files.</summary>
internal static class ModelsCommand
{
    public static Command Create()
    {
        var command = new Command("models", "Work with models.");
        command.Subcommands.Add(CreateList());
        command.Subcommands.Add(CreateSynth());
        foreach (var registry in Registry.RegistryCommands.Create())
        {
            command.Subcommands.Add(registry);
        }

        command.Subcommands.Add(CreateLoad("load"));
        command.Subcommands.Add(CreateLoad("unload"));
        command.Subcommands.Add(CreateLanguages());
        return command;
    }

    private static Command CreateList()
    {
        var connection = new ServerConnection();
        var command = new Command("list", "List the models a running server serves.");
        connection.AddTo(command);
        var json = new Option<bool>("--json") { Description = "Print the raw JSON answer." };
        command.Options.Add(json);
        command.SetAction((result, cancellationToken) => connection.RunAsync(result, async () =>
        {
            {
                var models = await connection.CreateClient(result).GetOpenAIModelClient().GetModelsAsync(cancellationToken);
                if (result.GetValue(json))
                {
                    Console.WriteLine(models.GetRawResponse().Content.ToString());
                    return 0;
                }

                var table = new Table().AddColumns("id", "owned by", "created");
                foreach (var model in models.Value)
                {
                    table.AddRow(TerminalText.Markup(model.Id), TerminalText.Markup(model.OwnedBy), CliTime.Format(model.CreatedAt));
                }

                AnsiConsole.Write(table);
                return 0;
            }
        }));
        return command;
    }

    /// <summary><c>models load|unload ID</c>: (un)load a registered model on a running server, without a restart.</summary>
    private static Command CreateLoad(string verb)
    {
        var connection = new AdminConnection();
        var id = new Argument<string>("id") { Description = "The registered model's id." };
        var command = new Command(verb, verb == "load"
            ? "Load a registered model on the running server (digest re-checked; refused up front if it would not fit in memory)."
            : "Unload a model from the running server.") { id };
        connection.AddTo(command);
        command.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await connection.SendAsync(result, HttpMethod.Post, $"/admin/v1/models/{AdminConnection.Segment(result.GetValue(id))}/{verb}", null, ct);
            connection.Print(result, json, () => Console.WriteLine($"{result.GetValue(id)}: {verb}ed."));
        }));
        return command;
    }

    /// <summary><c>models languages ID</c>: the language tax of a served model.</summary>
    private static Command CreateLanguages()
    {
        var connection = new AdminConnection();
        var id = new Argument<string>("id") { Description = "A served chat model." };
        var command = new Command("languages", "Show what each language costs in tokens on a model, and the ratio to English.") { id };
        connection.AddTo(command);
        command.SetAction((result, ct) => AdminConnection.RunAsync(async () =>
        {
            var json = await connection.SendAsync(result, HttpMethod.Get, $"/admin/v1/models/{AdminConnection.Segment(result.GetValue(id))}/languages", null, ct);
            if (connection.PrintJson(result, json))
            {
                return;
            }

            var table = new Table().AddColumns("language", "name", "tokens / 1,000 chars", "ratio to English", "same document vs English");
            foreach (var row in json.GetProperty("languages").EnumerateArray())
            {
                table.AddRow(TenantsCommand.Text(row, "language"), TenantsCommand.Text(row, "name"), TenantsCommand.Text(row, "tokens_per_1000_characters"),
                    TenantsCommand.Text(row, "ratio_to_english"), TenantsCommand.Text(row, "document_ratio_to_english"));
            }

            AnsiConsole.Write(table);
            Console.WriteLine("Reference texts: " + json.GetProperty("source").GetString());
        }));
        return command;
    }

    private static Command CreateSynth()
    {
        var output = new Option<FileInfo>("--output", "-o") { Description = "Where to write the GGUF file; a file that exists is refused unless --force.", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace the --output file if it exists." };
        var layers = new Option<int>("--layers") { Description = "Transformer blocks.", DefaultValueFactory = _ => 2 };
        var width = new Option<int>("--width") { Description = "Embedding length (model width).", DefaultValueFactory = _ => 64 };
        var heads = new Option<int?>("--heads") { Description = "Attention heads (default: width / 64, at least 1)." };
        var kvHeads = new Option<int?>("--kv-heads") { Description = "Key/value heads for grouped-query attention (default: heads)." };
        var ff = new Option<int?>("--ff") { Description = "Feed-forward length (default: about 8/3 of the width)." };
        var vocab = new Option<int>("--vocab") { Description = "Vocabulary size (at least the byte tokens and specials).", DefaultValueFactory = _ => 512 };
        var contextLength = new Option<int>("--context") { Description = "Context length written into the model.", DefaultValueFactory = _ => 2048 };
        var type = new Option<string>("--type") { Description = "Weight type: f32, f16 or q8_0.", DefaultValueFactory = _ => "f16" };
        type.AcceptOnlyFromAmong("f32", "f16", "q8_0");
        var seed = new Option<ulong>("--seed") { Description = "Seed of the deterministic random weights.", DefaultValueFactory = _ => 42 };
        var name = new Option<string>("--name") { Description = "general.name in the file.", DefaultValueFactory = _ => "sovereign-synthetic" };

        var command = new Command("synth", "Write a llama-architecture GGUF with deterministic random weights, for tests, benchmarks and capacity planning.")
        {
            output, force, layers, width, heads, kvHeads, ff, vocab, contextLength, type, seed, name,
        };
        command.SetAction((result, cancellationToken) =>
        {
            var w = result.GetValue(width);
            var h = result.GetValue(heads) ?? Math.Max(1, w / 64);
            SyntheticModelOptions options;
            try
            {
                options = new SyntheticModelOptions
                {
                    Layers = result.GetValue(layers),
                    EmbeddingLength = w,
                    HeadCount = h,
                    KvHeadCount = result.GetValue(kvHeads) ?? h,
                    FeedForwardLength = result.GetValue(ff) ?? SyntheticModelOptions.DefaultFeedForwardLength(w),
                    VocabularySize = result.GetValue(vocab),
                    ContextLength = result.GetValue(contextLength),
                    TensorType = result.GetValue(type) switch { "f32" => GgmlType.F32, "q8_0" => GgmlType.Q8_0, _ => GgmlType.F16 },
                    Seed = result.GetValue(seed),
                    Name = result.GetValue(name)!,
                };
                options.Validate();
            }
            catch (ArgumentException ex)
            {
                // The options' own names ("Invalid synthetic model option Layers: ... (Parameter 'Layers')") are not
                // what the user typed: name the flag.
                (string Option, string Flag)[] flags =
                [
                    (nameof(SyntheticModelOptions.Layers), "--layers"),
                    (nameof(SyntheticModelOptions.EmbeddingLength), "--width"),
                    (nameof(SyntheticModelOptions.KvHeadCount), "--kv-heads"),
                    (nameof(SyntheticModelOptions.HeadCount), "--heads"),
                    (nameof(SyntheticModelOptions.FeedForwardLength), "--ff"),
                    (nameof(SyntheticModelOptions.VocabularySize), "--vocab"),
                    (nameof(SyntheticModelOptions.ContextLength), "--context"),
                    (nameof(SyntheticModelOptions.TensorType), "--type"),
                    (nameof(SyntheticModelOptions.Name), "--name"),
                ];
                var flag = flags.FirstOrDefault(f => f.Option == ex.ParamName).Flag;
                var problem = ex.Message;
                var start = problem.IndexOf(": ", StringComparison.Ordinal);
                var end = ex.ParamName is null ? -1 : problem.LastIndexOf($" (Parameter '{ex.ParamName}')", StringComparison.Ordinal);
                problem = flag is null || start < 0 ? problem : problem[(start + 2)..(end < 0 ? problem.Length : end)];

                // The rule names the other options it depends on too ("must divide EmbeddingLength (64)"): flags here.
                // KvHeadCount is replaced before HeadCount, which it contains.
                problem = flags.Aggregate(problem, (text, f) => text.Replace(f.Option, f.Flag, StringComparison.Ordinal));
                Console.Error.WriteLine("sovereign models synth: " + (flag is null ? problem : $"{flag} {problem}"));
                return Task.FromResult(2);
            }

            if (result.GetValue(output)!.Directory is { Exists: false } folder)
            {
                // As 'invoice -o' and 'audit export -o' do: a mistyped folder is the operator's to fix, not to create.
                Console.Error.WriteLine($"sovereign models synth: the folder {folder.FullName} does not exist; create it or choose another --output.");
                return Task.FromResult(2);
            }

            var path = result.GetValue(output)!.FullName;
            if (Directory.Exists(path))
            {
                Console.Error.WriteLine($"sovereign models synth: --output {path} is a folder; give the file to write, e.g. {Path.Combine(path, "model.gguf")}.");
                return Task.FromResult(2);
            }

            var replace = result.GetValue(force);
            if (!replace && File.Exists(path))
            {
                // It was replaced without a word, as 'invoice -o' once replaced last month's invoice: a model file
                // another server loads, or one that took an hour to write, gone with one reused name.
                Console.Error.WriteLine(ExistsAlready(path));
                return Task.FromResult(2);
            }

            var estimate = SyntheticModelBuilder.Estimate(options);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Writing {path}: {options.Layers} layers, width {options.EmbeddingLength}, vocabulary {options.VocabularySize}, {result.GetValue(type)}; " +
                $"{estimate.ParameterCount:N0} parameters, {estimate.FileSizeBytes / (1024.0 * 1024.0):F1} MiB."));
            try
            {
                // The writer stages the file beside it (.partial) and removes that on failure; a second staging here
                // was left behind when the last move failed, and errors named 'x.gguf.partial.partial'.
                WriteWithProgress(options, path, estimate.FileSizeBytes, replace, cancellationToken);
            }
            catch (IOException) when (!replace && File.Exists(path))
            {
                // Made while this one was written: kept, and this one removed.
                Console.Error.WriteLine(ExistsAlready(path));
                return Task.FromResult(2);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine("sovereign models synth: cannot write " + path + ": " + ex.Message);
                return Task.FromResult(1);
            }

            Console.WriteLine("Done. Serve it with: sovereign serve --model " + path);
            return Task.FromResult(0);
        });
        return command;
    }

    private static string ExistsAlready(string path) => $"sovereign models synth: --output {path} exists already; pass --force to replace it, or choose another file.";

    private static void WriteWithProgress(SyntheticModelOptions options, string path, long totalBytes, bool overwrite, CancellationToken cancellationToken)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive || Console.IsOutputRedirected)
        {
            SyntheticModelBuilder.Write(options, path, null, cancellationToken, overwrite);
            return;
        }

        AnsiConsole.Progress().Start(context =>
        {
            var task = context.AddTask("synthesizing", maxValue: totalBytes);
            SyntheticModelBuilder.Write(options, path, new Progress<long>(bytes => task.Value = bytes), cancellationToken, overwrite);
            task.Value = totalBytes;
        });
    }
}
