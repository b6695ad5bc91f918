using System.CommandLine;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Registry;

namespace Sovereign.Cli.Commands.Registry;

/// <summary>What the operator declares about a model on <c>pull</c> and <c>import</c>.</summary>
internal sealed class ModelDeclarationOptions
{
    public Option<string?> Id { get; } = new("--id") { Description = "The model's id, what clients put in \"model\" (default: the file name without .gguf)." };

    public Option<string?> License { get; } = new("--license") { Description = "Licence: an SPDX id (Apache-2.0, MIT), a model licence (llama3.1, gemma, qwen) or LicenseRef-<name>. Required." };

    public Option<string?> Publisher { get; } = new("--origin-publisher") { Description = "Who published the weights (e.g. \"Mistral AI\"). Required." };

    public Option<string?> Country { get; } = new("--origin-country") { Description = "The publisher's country, ISO 3166-1 alpha-2 (e.g. FR). Required." };

    public Option<string[]> Languages { get; } = new("--language") { Description = "A language the model serves well (ISO 639, e.g. en); repeat or separate with commas." };

    public Option<bool> Embedding { get; } = new("--embedding") { Description = "An embedding model (default: chat)." };

    public Option<string?> Sha256 { get; } = new("--sha256") { Description = "The file's SHA-256 (64 hex digits, optionally prefixed sha256:); the file must match." };

    public void AddTo(Command command)
    {
        command.Options.Add(Id);
        command.Options.Add(License);
        command.Options.Add(Publisher);
        command.Options.Add(Country);
        command.Options.Add(Languages);
        command.Options.Add(Embedding);
        command.Options.Add(Sha256);
    }

    /// <summary>Checks the required options are there; the registry validates their values.</summary>
    public void ThrowIfMissing(ParseResult result)
    {
        var missing = new[] { (License, "--license"), (Publisher, "--origin-publisher"), (Country, "--origin-country") }
            .Where(o => string.IsNullOrWhiteSpace(result.GetValue(o.Item1)))
            .Select(o => o.Item2)
            .ToList();
        if (missing.Count > 0)
        {
            throw new ModelRegistryException(ModelRegistryError.InvalidArgument,
                $"missing {string.Join(", ", missing)}: every model needs its licence and its origin (publisher and country).");
        }
    }

    public string IdOr(ParseResult result, string fileName)
    {
        var id = result.GetValue(Id);
        if (!string.IsNullOrWhiteSpace(id))
        {
            return id;
        }

        if (id is not null)
        {
            // A blank --id was quietly replaced by the file's name.
            throw new ModelRegistryException(ModelRegistryError.InvalidArgument, $"--id '{id}' is not an id: it is empty or only whitespace.");
        }

        var name = Path.GetFileName(fileName.TrimEnd('/'));
        name = name.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? name[..^5] : name;

        // The user gave no id, so the registry's "'my model' is not a valid model id" left them guessing where it came from.
        return ModelRegistry.IsValidId(name)
            ? name
            : throw new ModelRegistryException(ModelRegistryError.InvalidArgument,
                $"the file name '{name}' is not a valid model id; give one with --id ({ModelRegistry.IdRule}).");
    }

    public ModelKind Modality(ParseResult result) => result.GetValue(Embedding) ? ModelKind.Embedding : ModelKind.Chat;

    public IReadOnlyList<string> LanguageList(ParseResult result) =>
        [.. (result.GetValue(Languages) ?? []).SelectMany(l => l.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))];
}
