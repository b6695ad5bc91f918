using System.Collections.Frozen;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Inference.Embeddings;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Registry;

namespace Sovereign.Gateway.Models;

/// <summary>
/// Loads the configured models at start-up and serves them by id. With no model configured it writes and serves
/// the built-in test model, and says so.
/// </summary>
public sealed partial class ModelCatalog(
    IOptions<SovereignOptions> options,
    IOptions<Cluster.Hosting.SovereignClusterOptions> cluster,
    EngineMetrics metrics,
    ILoggerFactory loggerFactory,
    TimeProvider time) : IHostedService, IAsyncDisposable
{
    private readonly ILogger _logger = loggerFactory.CreateLogger<ModelCatalog>();
    private readonly List<IDisposable> _owned = [];
    private readonly SemaphoreSlim _changes = new(1, 1);
    private readonly Dictionary<string, IDisposable> _ownedById = new(StringComparer.Ordinal);

    // Registry models this process serves, each marked loaded (ModelRegistry.HoldLoaded) so `models rm` refuses them.
    private readonly Dictionary<string, IDisposable> _registryHolds = new(StringComparer.Ordinal);
    private volatile FrozenDictionary<string, ServedModel> _models = FrozenDictionary<string, ServedModel>.Empty;
    private Dictionary<string, ModelOptions> _configured = new(StringComparer.Ordinal);

    /// <summary>Raised after a model loads or unloads (the node registry is told at once).</summary>
    public event Action? Changed;

    /// <summary>Whether every configured model has loaded.</summary>
    public bool IsReady { get; private set; }

    /// <summary>All served models, in configuration (then load) order.</summary>
    public IReadOnlyList<ServedModel> All { get; private set; } = [];

    /// <summary>The registry of verified model files in the data directory.</summary>
    public ModelRegistry Registry { get; } = new(ModelRegistryOptions.ForDataDirectory(options.Value.ResolvedDataDirectory) with
    {
        IsKnownLicense = id => Residency.Policies.KnownLicenses.IsKnown(id),
        CanonicalizeLicense = Residency.Policies.KnownLicenses.Canonicalize,
    });

    /// <summary>
    /// Loads a registered model without a restart: refused up front when it would not fit in memory, and refused
    /// when the file's digest differs from the registry's (<see cref="ModelDigestMismatchException"/>).
    /// </summary>
    public async Task<ServedModel> LoadFromRegistryAsync(string id, int? parallel, int? contextLength, int? threads, CancellationToken cancellationToken)
    {
        await _changes.WaitAsync(cancellationToken);
        try
        {
            if (_models.ContainsKey(id))
            {
                throw new InvalidOperationException($"The model '{id}' is already loaded.");
            }

            var entry = Registry.Get(id);
            if (entry is null && _configured.TryGetValue(id, out var configured))
            {
                // A model from the configuration or --model (unloaded earlier) loads again from the same file. The settings
                // it is given are kept for the next load only once it loaded: a load refused with them left the model
                // unloadable with its defaults until a restart.
                var previous = (configured.Parallel, configured.ContextLength, configured.Threads);
                configured.Parallel = parallel ?? configured.Parallel;
                configured.ContextLength = contextLength ?? configured.ContextLength;
                configured.Threads = threads ?? configured.Threads;
                try
                {
                    CheckSettings(configured);
                    var reloaded = await Task.Run(() => Load(configured), cancellationToken);
                    Publish([.. All, reloaded]);
                    return reloaded;
                }
                catch
                {
                    (configured.Parallel, configured.ContextLength, configured.Threads) = previous;
                    throw;
                }
            }

            if (entry is null && id == MiniLmEmbeddingGenerator.ModelId && options.Value.BuiltInEmbeddings)
            {
                // The built-in embedding model could be unloaded but not loaded again ("neither in the registry nor in
                // the configuration") until a restart.
                var miniLm = BuiltInEmbeddings();
                Publish([.. All, miniLm]);
                return miniLm;
            }

            if (entry is null)
            {
                throw new KeyNotFoundException($"The model '{id}' is neither in the registry nor in the configuration.");
            }
            var template = entry.ToModelOptions("unverified");
            template.Parallel = parallel ?? template.Parallel;
            template.ContextLength = contextLength ?? template.ContextLength;
            template.Threads = threads ?? template.Threads;
            CheckSettings(template);
            var estimate = ModelMemoryEstimator.Estimate(entry, template);
            var available = ModelMemoryEstimator.AvailableMemoryBytes();
            if (!ModelMemoryEstimator.Fits(estimate, available))
            {
                throw new InsufficientMemoryException(
                    $"Loading '{id}' needs about {estimate.TotalBytes >> 20} MiB (weights {estimate.WeightsBytes >> 20} MiB, KV cache {estimate.KvCacheBytes >> 20} MiB) but {available >> 20} MiB is available.");
            }

            var hold = Registry.HoldLoaded(id);
            try
            {
                var verified = await Registry.OpenForLoadAsync(id, cancellationToken);
                var model = verified.Entry.ToModelOptions(verified.Path);
                model.Parallel = template.Parallel;
                model.ContextLength = template.ContextLength;
                model.Threads = template.Threads;
                var served = await Task.Run(() => Load(model), cancellationToken);
                _registryHolds[id] = hold;
                Publish([.. All, served]);
                return served;
            }
            catch
            {
                hold.Dispose();
                throw;
            }
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>
    /// Refuses settings the engine cannot size a KV cache for, before anything is loaded: its cells (parallel ×
    /// context_length, unless the model sets its own count) are an int, and a sequence's context must fit in them. A
    /// context of 2^30 tokens for 256 sequences overflowed (a 500).
    /// </summary>
    private static void CheckSettings(ModelOptions model)
    {
        if (model.KvCacheTokens == 0 && (long)model.Parallel * model.ContextLength > int.MaxValue)
        {
            throw new ModelSettingsException("context_length",
                $"context_length × parallel is the KV cache's cells, at most {int.MaxValue}; got {model.ContextLength} × {model.Parallel}.");
        }

        if (model.KvCacheTokens > 0 && model.ContextLength > model.KvCacheTokens)
        {
            throw new ModelSettingsException("context_length",
                $"context_length ({model.ContextLength}) must be at most the model's KV cache cells (KvCacheTokens, {model.KvCacheTokens}).");
        }
    }

    /// <summary>Unloads a model; requests still running on it fail with 503.</summary>
    public async Task<bool> UnloadAsync(string id, CancellationToken cancellationToken)
    {
        await _changes.WaitAsync(cancellationToken);
        try
        {
            if (!_models.TryGetValue(id, out var served))
            {
                return false;
            }

            Publish([.. All.Where(m => m.Id != id)]);
            if (served.Batcher is { } batcher)
            {
                await batcher.DisposeAsync();
            }

            if (_ownedById.Remove(id, out var owned))
            {
                _owned.Remove(owned);
                owned.Dispose();
            }

            if (_registryHolds.Remove(id, out var hold))
            {
                hold.Dispose();
            }

            return true;
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>all-MiniLM-L6-v2, owned by id so that an unload disposes it (it stayed in memory, unused).</summary>
    private ServedModel BuiltInEmbeddings()
    {
        var miniLm = new MiniLmEmbeddingGenerator();
        _owned.Add(miniLm);
        _ownedById[MiniLmEmbeddingGenerator.ModelId] = miniLm;
        return new ServedModel(MiniLmEmbeddingGenerator.ModelId, ModelKind.Embedding, time.GetUtcNow().ToUnixTimeSeconds(),
            "sentence-transformers", null, miniLm, miniLm.CountTokens, MiniLmEmbeddingGenerator.MaxInputTokens);
    }

    private void Publish(IReadOnlyList<ServedModel> models)
    {
        All = models;
        _models = models.ToFrozenDictionary(m => m.Id, StringComparer.Ordinal);
        Changed?.Invoke();
    }

    /// <summary>Finds a model by id (ordinal, case-sensitive, as OpenAI ids are).</summary>
    public bool TryGet(string id, out ServedModel model) => _models.TryGetValue(id, out model!);

    /// <summary>
    /// The models this process could serve but has not loaded now (see <see cref="KindWhenNotLoaded"/>), as its node
    /// reports them to the registry, so a gateway answers 503 for them too: the configured ones and the built-in embedding
    /// model were left out (only the registry's were listed), so once unloaded they were a 404 at every gateway.
    /// </summary>
    public IReadOnlyList<string> NotLoadedIds()
    {
        if (!cluster.Value.ServesModels)
        {
            return [];
        }

        var loaded = _models;
        IEnumerable<string> candidates = _configured.Keys;
        if (options.Value.BuiltInEmbeddings)
        {
            candidates = candidates.Append(MiniLmEmbeddingGenerator.ModelId);
        }

        return [.. candidates.Concat(Registry.List().Select(e => e.Id)).Distinct(StringComparer.Ordinal).Where(id => !loaded.ContainsKey(id))];
    }

    /// <summary>
    /// The kind of a model this process could serve but has not loaded now (unloaded, or loading): one in the model
    /// registry, in the configuration (or <c>--model</c>), or the built-in embedding model; null for one it never could,
    /// or one it serves. The router answers 503 for these (the operator may load it again), 404 only for the others.
    /// </summary>
    public ModelKind? KindWhenNotLoaded(string id)
    {
        if (!cluster.Value.ServesModels || _models.ContainsKey(id))
        {
            return null;
        }

        if (_configured.TryGetValue(id, out var configured))
        {
            return configured.Kind;
        }

        if (id == MiniLmEmbeddingGenerator.ModelId && options.Value.BuiltInEmbeddings)
        {
            return ModelKind.Embedding;
        }

        try
        {
            return Registry.Get(id)?.Modality;
        }
        catch (ModelRegistryException)
        {
            // An unreadable registry knows no model: the request is the 404 it was (the load reporter logs the failure).
            return null;
        }
    }

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (!cluster.Value.ServesModels)
        {
            // A gateway of a cluster serves no model itself: it relays to the cluster's nodes.
            IsReady = true;
            return;
        }

        // The built-in test model only stands in when nothing at all is configured: a node that fronts an engine serves its models.
        var configured = settings.Models.Count > 0 || settings.Engines.Count > 0 ? settings.Models : [BuiltInTestModel.Ensure(settings.ResolvedDataDirectory, _logger, settings.TestModel)];
        _configured = configured.ToDictionary(m => m.Id, StringComparer.Ordinal);
        var served = new List<ServedModel>();
        foreach (var model in configured)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (string.IsNullOrEmpty(model.Path))
            {
                await FromRegistryAsync(model, cancellationToken);
            }

            served.Add(await Task.Run(() => Load(model), cancellationToken));
        }

        if (settings.BuiltInEmbeddings && served.All(m => m.Id != MiniLmEmbeddingGenerator.ModelId)
            && settings.Engines.All(e => e.Models.All(m => m.Id != MiniLmEmbeddingGenerator.ModelId)))
        {
            served.Add(BuiltInEmbeddings());
        }

        Publish(served);
        IsReady = true;
    }

    /// <summary>
    /// A configured model named by its id alone is the registry's: its file is verified against the registered digest
    /// (as <c>models load</c> verifies it), and the registry's licence, origin and languages apply where the
    /// configuration says nothing. This is how a model loaded with <c>sovereign models load</c> is served at every start.
    /// </summary>
    private async Task FromRegistryAsync(ModelOptions model, CancellationToken cancellationToken)
    {
        _registryHolds[model.Id] = Registry.HoldLoaded(model.Id);
        var verified = await Registry.OpenForLoadAsync(model.Id, cancellationToken);
        var registered = verified.Entry.ToModelOptions(verified.Path);
        model.Path = registered.Path;
        model.License ??= registered.License;
        model.Origin ??= registered.Origin;
        if (model.Languages.Count == 0)
        {
            model.Languages = registered.Languages;
        }
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
        foreach (var hold in _registryHolds.Values)
        {
            hold.Dispose();
        }

        _registryHolds.Clear();
        Registry.Dispose();
        _changes.Dispose();
    }

    private ServedModel Load(ModelOptions model)
    {
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        LogLoading(model.Id, File.Exists(model.Path) ? new FileInfo(model.Path).Length >> 20 : 0, model.Path);
        if (model.Kind == ModelKind.Embedding)
        {
            var embedder = LlamaEmbeddingGenerator.Load(model.Path, model.Id, new LlamaEmbeddingOptions
            {
                ContextSize = model.ContextLength > 0 ? model.ContextLength : 512,
                Threads = model.Threads > 0 ? model.Threads : Math.Max(1, Environment.ProcessorCount / 2),
            });
            _owned.Add(embedder);
            _ownedById[model.Id] = embedder;
            LogLoaded(model.Id, "embedding", model.Path);
            return new ServedModel(model.Id, ModelKind.Embedding, created, "sovereign", null, embedder, embedder.CountTokens, embedder.MaxInputTokens);
        }

        var loaded = LlamaModel.Load(model, time, loggerFactory.CreateLogger<LlamaModel>());
        _owned.Add(loaded);
        _ownedById[model.Id] = loaded;
        var batcher = new ContinuousBatcher(loaded, metrics, loggerFactory.CreateLogger<ContinuousBatcher>(), time);
        LogLoaded(model.Id, "chat", model.Path);
        LogChatModel(model.Id, loaded.Info.Architecture, loaded.Info.Parameters, loaded.Info.ContextLength, loaded.Options.Parallel, loaded.Info.ChatTemplateSource);
        return new ServedModel(model.Id, ModelKind.Chat, created, "sovereign", batcher, null, null, loaded.Info.ContextLength);
    }

    [LoggerMessage(EventId = 2000, Level = LogLevel.Information, Message = "Loading model {ModelId} ({MiB} MiB) from {Path}...")]
    private partial void LogLoading(string modelId, long miB, string path);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Loaded {Kind} model {ModelId} from {Path}")]
    private partial void LogLoaded(string modelId, string kind, string path);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "Model {ModelId}: {Architecture}, {Parameters} parameters, context {Context} per sequence, {Parallel} sequences per batch, chat template from {Template}")]
    private partial void LogChatModel(string modelId, string architecture, ulong parameters, int context, int parallel, string template);
}

/// <summary>Settings a model cannot be loaded with; <see cref="Param"/> names the field.</summary>
public sealed class ModelSettingsException(string param, string message) : Exception(message)
{
    /// <summary>The request field that is wrong (<c>context_length</c>).</summary>
    public string Param { get; } = param;
}
