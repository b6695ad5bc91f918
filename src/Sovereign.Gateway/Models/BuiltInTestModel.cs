using Microsoft.Extensions.Logging;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Gguf;

namespace Sovereign.Gateway.Models;

/// <summary>
/// The model served when none is configured: a small llama-architecture GGUF with deterministic random weights,
/// written by our own GGUF writer. It proves the whole path works; it does not write sensible text.
/// </summary>
public static partial class BuiltInTestModel
{
    /// <summary>The id it is served under.</summary>
    public const string Id = "sovereign-test-tiny";

    /// <summary>The file name inside the data directory.</summary>
    public const string FileName = "sovereign-test-tiny.gguf";

    /// <summary>The synthesis settings; changing them changes the file.</summary>
    public static SyntheticModelOptions Options { get; } = new()
    {
        Name = Id,
        Layers = 2,
        EmbeddingLength = 64,
        HeadCount = 4,
        KvHeadCount = 4,
        VocabularySize = 512,
        ContextLength = 2048,
        TensorType = GgmlType.F32,
        Seed = 20261126,
    };

    /// <summary>Writes the model into the data directory unless it is there, and returns how to serve it.</summary>
    /// <param name="dataDirectory">The data directory; the file goes into its <c>models</c> folder.</param>
    /// <param name="logger">Where the warning that a test model is served goes.</param>
    /// <param name="settings">Threads, parallel sequences, context and template to run it with (<c>Sovereign:TestModel</c>).</param>
    public static ModelOptions Ensure(string dataDirectory, ILogger logger, ModelOptions? settings = null)
    {
        var folder = Path.Combine(dataDirectory, "models");
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(folder);
            // Written whole (the writer stages it beside the name): a start killed half way left a partial model
            // under a name of its own that no later start removed. Two starts at once write the same bytes.
            SyntheticModelBuilder.Write(Options, path, overwrite: true);
        }

        LogTestModel(logger, Id, path);
        // The serve flags (--threads, --parallel, --ctx-size, --chat-template) were ignored here: the test model ran
        // with the defaults whatever they said, and a --parallel of -1 started the server.
        return new ModelOptions
        {
            Id = Id,
            Path = path,
            ContextLength = settings is { ContextLength: > 0 } ? settings.ContextLength : 2048,
            Parallel = settings?.Parallel ?? ModelOptions.DefaultParallel,
            Threads = settings?.Threads ?? 0,
            ChatTemplate = settings?.ChatTemplate,
        };
    }

    [LoggerMessage(EventId = 2010, Level = LogLevel.Warning, Message =
        "No model configured: serving the built-in TEST model '{ModelId}' ({Path}). It has random weights and writes gibberish. " +
        "To serve a real model: sovereign serve --model /path/to/model.gguf (or set Sovereign__Models__0__Path).")]
    private static partial void LogTestModel(ILogger logger, string modelId, string path);
}
