using System.CommandLine;
using System.Globalization;
using Sovereign.Cli.Output;
using Sovereign.Inference.Registry;
using Spectre.Console;

namespace Sovereign.Cli.Commands.Registry;

/// <summary><c>sovereign models show [ID]</c>: everything the registry knows about a model, or a table of all.</summary>
internal static class ShowCommand
{
    public static Command Create(RegistryCommandContext context)
    {
        var id = new Argument<string?>("ID") { Description = "The model to show (default: list them all).", Arity = ArgumentArity.ZeroOrOne };
        var dataDir = RegistryCommands.DataDirectoryOption();
        var command = new Command("show", "Show a registered model: digest, size, architecture, parameters, quantization, context, licence, origin, languages, modality and source.")
        {
            id, dataDir,
        };
        command.SetAction((result, _) => RegistryCommands.RunAsync(context, "show", () =>
        {
            using var registry = RegistryCommands.Open(context, result.GetValue(dataDir));
            var wanted = result.GetValue(id);
            if (string.IsNullOrEmpty(wanted))
            {
                ShowAll(context, registry);
                return Task.FromResult(0);
            }

            var entry = registry.Get(wanted)
                ?? throw new ModelRegistryException(ModelRegistryError.NotFound, $"No model '{wanted}' in {registry.ModelDirectory}.");
            // The name and architecture are the file's own (GGUF metadata, written by whoever published it): shown
            // escaped, so no ESC sequence in them reaches the terminal (Residency.DisplayText).
            var fields = Fields(entry, registry.GetBlobPath(entry.Digest)).Select(f => (f.Name, Value: Residency.DisplayText.Escaped(f.Value))).ToList();
            if (context.Interactive)
            {
                var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
                foreach (var (name, value) in fields)
                {
                    grid.AddRow(new Markup($"[bold]{TerminalText.Markup(name)}[/]"), new Text(value));
                }

                context.Console.Write(grid);
            }
            else
            {
                // Piped: one "name: value" line per field, never wrapped, for scripts.
                foreach (var (name, value) in fields)
                {
                    context.Console.WriteLine($"{name}: {value}");
                }
            }

            return Task.FromResult(0);
        }));
        return command;
    }

    private static void ShowAll(RegistryCommandContext context, ModelRegistry registry)
    {
        var entries = registry.List();
        if (entries.Count == 0)
        {
            context.Console.WriteLine($"No models in {registry.ModelDirectory}. Add one with 'sovereign models pull' or 'sovereign models import'.");
            return;
        }

        if (!context.Interactive)
        {
            foreach (var entry in entries)
            {
                context.Console.WriteLine(RegistryCommands.Summary(entry));
            }

            return;
        }

        var table = new Table().AddColumns("id", "architecture", "parameters", "quantization", "size", "licence", "origin", "digest");
        foreach (var e in entries)
        {
            table.AddRow(TerminalText.Markup(e.Id), TerminalText.Markup(e.Architecture), RegistryCommands.Count(e.Parameters), TerminalText.Markup(e.Quantization),
                RegistryCommands.Bytes(e.SizeBytes), TerminalText.Markup(e.License), TerminalText.Markup($"{e.Origin.Publisher} ({e.Origin.Country})"), e.DigestHex[..12]);
        }

        context.Console.Write(table);
    }

    private static List<(string Name, string Value)> Fields(ModelEntry e, string path)
    {
        var shape = e.Shape;
        var memory = ModelMemoryEstimator.Estimate(e);
        return
        [
            ("Id", e.Id),
            ("Name", e.Name ?? "-"),
            ("Digest", e.Digest),
            ("Digest source", e.DigestSource switch
            {
                DigestProvenance.Given => "given by the operator",
                DigestProvenance.Published => "published by the source",
                _ => "computed on arrival (unverified)",
            }),
            ("Size", $"{e.SizeBytes.ToString("N0", CultureInfo.InvariantCulture)} bytes ({RegistryCommands.Bytes(e.SizeBytes)})"),
            ("Architecture", e.Architecture),
            ("Parameters", $"{e.Parameters.ToString("N0", CultureInfo.InvariantCulture)} ({RegistryCommands.Count(e.Parameters)})"),
            ("Quantization", e.Quantization),
            ("Context length", e.ContextLength?.ToString("N0", CultureInfo.InvariantCulture) ?? "-"),
            ("Layers / heads / KV heads", $"{shape.Layers?.ToString(CultureInfo.InvariantCulture) ?? "-"} / {shape.HeadCount?.ToString(CultureInfo.InvariantCulture) ?? "-"} / {shape.KvHeadCount?.ToString(CultureInfo.InvariantCulture) ?? "-"}"),
            ("Vocabulary", shape.VocabularySize?.ToString("N0", CultureInfo.InvariantCulture) ?? "-"),
            ("Licence", e.License),
            ("Origin", $"{e.Origin.Publisher} ({e.Origin.Country})"),
            ("Languages", e.Languages.Count > 0 ? string.Join(", ", e.Languages) : "-"),
            ("Modality", e.Modality.ToString().ToLowerInvariant()),
            ("Source", e.Source),
            ("Added", CliTime.Format(e.AddedAt)),
            ("File", path),
            ("Memory (estimate, 1 sequence)", RegistryCommands.Bytes(memory.TotalBytes)),
        ];
    }
}
