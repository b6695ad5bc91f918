using System.Collections.Frozen;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Inference.Embeddings;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.Models;

/// <summary>
/// Loads the configured models at start-up and serves them by id. With no model configured it writes and serves
/// the built-in test model, and says so.
/// </summary>
public sealed partial class ModelCatalog(
    IOptions<SovereignOptions> options,
    EngineMetrics metrics,
    ILoggerFactory loggerFactory,
    TimeProvider time) : IHostedService, IAsyncDisposable
{
    private readonly ILogger _logger = loggerFactory.CreateLogger<ModelCatalog>();
    private readonly List<IDisposable> _owned = [];
    private FrozenDictionary<string, ServedModel> _models = FrozenDictionary<string, ServedModel>.Empty;

    /// <summary>Whether every configured model has loaded.</summary>
    public bool IsReady { get; private set; }

    /// <summary>All served models, in configuration order.</summary>
    public IReadOnlyList<ServedModel> All { get; private set; } = [];

    /// <summary>Finds a model by id (ordinal, case-sensitive, as OpenAI ids are).</summary>
    public bool TryGet(string id, out ServedModel model) => _models.TryGetValue(id, out model!);

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var configured = settings.Models.Count > 0 ? settings.Models : [BuiltInTestModel.Ensure(settings.ResolvedDataDirectory, _logger)];
        var served = new List<ServedModel>();
        foreach (var model in configured)
        {
            cancellationToken.ThrowIfCancellationRequested();
            served.Add(await Task.Run(() => Load(model), cancellationToken));
        }

        if (settings.BuiltInEmbeddings && served.All(m => m.Id != MiniLmEmbeddingGenerator.ModelId))
        {
            var miniLm = new MiniLmEmbeddingGenerator();
            _owned.Add(miniLm);
            served.Add(new ServedModel(MiniLmEmbeddingGenerator.ModelId, ModelKind.Embedding, time.GetUtcNow().ToUnixTimeSeconds(),
                "sentence-transformers", null, miniLm, miniLm.CountTokens, MiniLmEmbeddingGenerator.MaxInputTokens));
        }

        All = served;
        _models = served.ToFrozenDictionary(m => m.Id, StringComparer.Ordinal);
        IsReady = true;
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        IsReady = false;
        foreach (var model in All)
        {
            if (model.Batcher is { } batcher)
            {
                await batcher.DisposeAsync();
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None);
        foreach (var owned in _owned)
        {
            owned.Dispose();
        }

        _owned.Clear();
    }

    private ServedModel Load(ModelOptions model)
    {
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        if (model.Kind == ModelKind.Embedding)
        {
            var embedder = LlamaEmbeddingGenerator.Load(model.Path, model.Id, new LlamaEmbeddingOptions
            {
                ContextSize = model.ContextLength > 0 ? model.ContextLength : 512,
                Threads = model.Threads > 0 ? model.Threads : Math.Max(1, Environment.ProcessorCount / 2),
            });
            _owned.Add(embedder);
            LogLoaded(model.Id, "embedding", model.Path);
            return new ServedModel(model.Id, ModelKind.Embedding, created, "sovereign", null, embedder, embedder.CountTokens, embedder.MaxInputTokens);
        }

        var loaded = LlamaModel.Load(model, time);
        _owned.Add(loaded);
        var batcher = new ContinuousBatcher(loaded, metrics, loggerFactory.CreateLogger<ContinuousBatcher>(), time);
        LogLoaded(model.Id, "chat", model.Path);
        LogChatModel(model.Id, loaded.Info.Architecture, loaded.Info.Parameters, loaded.Info.ContextLength, loaded.Options.Parallel, loaded.Info.ChatTemplateSource);
        return new ServedModel(model.Id, ModelKind.Chat, created, "sovereign", batcher, null, null, loaded.Info.ContextLength);
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Loaded {Kind} model {ModelId} from {Path}")]
    private partial void LogLoaded(string modelId, string kind, string path);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "Model {ModelId}: {Architecture}, {Parameters} parameters, context {Context} per sequence, {Parallel} sequences per batch, chat template from {Template}")]
    private partial void LogChatModel(string modelId, string architecture, ulong parameters, int context, int parallel, string template);
}
