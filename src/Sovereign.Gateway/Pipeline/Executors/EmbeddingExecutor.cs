using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Embeddings;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Scheduling;

namespace Sovereign.Gateway.Pipeline.Executors;

/// <summary>
/// Runs embeddings on this process's embedding models. Measuring counts every input's tokens and refuses an
/// over-long one before any reservation; a fair gate bounds how many run at once.
/// </summary>
internal sealed class EmbeddingExecutor(RouteGates gates, EngineOccupancy occupancy, IOptions<SovereignOptions> options) : IRequestExecutor
{
    /// <summary>Embedding requests that run at once per model; the generators serialize their context anyway.</summary>
    internal const int Slots = 2;

    public bool Runs(RoutedRequest route, Workload work) => route.Local?.Embeddings is not null && work is EmbeddingWorkload;

    public ValueTask<WorkDemand> MeasureAsync(GovernedRequest request)
    {
        var work = (EmbeddingWorkload)request.Work;
        var model = request.Route!.Local!;
        if (work.Dimensions is { } dimensions && dimensions != model.Embeddings!.GetService<EmbeddingGeneratorMetadata>()?.DefaultModelDimensions)
        {
            throw OpenAIException.BadRequest($"The model '{model.Id}' does not support choosing dimensions.", "dimensions", "unsupported_parameter");
        }

        if (work.TokenInputs is { } tokenInputs)
        {
            // Ids are the model's own vocabulary (as vLLM reads them); each is one prompt token, exactly.
            var generator = model.TokenEmbeddings
                ?? throw OpenAIException.BadRequest($"The model '{model.Id}' takes text only; send input as strings.", "input", "unsupported_parameter");
            TextInputs.RequireInVocabulary(tokenInputs, work.TokenInputsNested, "input", generator.VocabularySize, model.Id);
            for (var i = 0; i < tokenInputs.Count; i++)
            {
                if (tokenInputs[i].Length > generator.MaxInputTokens)
                {
                    var field = work.InputField(i);
                    throw OpenAIException.BadRequest(ContextLengthExceededException.Describe(
                        field, generator.MaxInputTokens, tokenInputs[i].Length, isExact: true, generator.MaxInputTokens), field, "context_length_exceeded");
                }
            }

            var ids = tokenInputs.Sum(t => (long)t.Length);
            RequireWithinRequestCap(ids);
            return ValueTask.FromResult(new WorkDemand(ids, 0));
        }

        long tokens = 0;
        for (var i = 0; i < work.Inputs.Count; i++)
        {
            // Counting stops early on an over-long input (an 8 MiB input costs a few chunks, not a whole tokenization),
            // and at the input that takes the request over its cap.
            tokens += TokenBudget.CountWithin(work.Inputs[i], model.MaxInputTokens, model.CountTokens!, work.InputField(i), work.InputField(i));
            RequireWithinRequestCap(tokens);
        }

        return ValueTask.FromResult(new WorkDemand(tokens, 0));
    }

    /// <summary>Refuses a request whose inputs sum past the cap (OpenAI's <c>max_tokens_per_request</c>).</summary>
    private void RequireWithinRequestCap(long tokens)
    {
        var cap = options.Value.Limits.MaxEmbeddingTokensPerRequest;
        if (tokens > cap)
        {
            throw OpenAIException.BadRequest(
                $"Requested at least {tokens} tokens across the inputs, max {cap} tokens per request; send the inputs in several requests.", "input", "max_tokens_per_request");
        }
    }

    public async ValueTask<IExecution> StartAsync(GovernedRequest request)
    {
        var ticket = request.Ticket!;
        var route = request.Route!;
        var slot = await gates.For(route.NodeId, route.Model, Slots)
            .AcquireAsync(new FairQueueEntry(request.Caller.TenantId, ticket.Weight, ticket.Priority, 1), request.Aborted);
        return new EmbeddingRun(request, slot, occupancy);
    }
}

/// <summary>An embeddings request holding its slot; <see cref="GenerateAsync"/> runs it.</summary>
internal sealed class EmbeddingRun(GovernedRequest request, IDisposable slot, EngineOccupancy occupancy) : IExecution
{
    private int _tokens;
    private GenerationResult? _timing;

    /// <summary>Embeds the inputs; an input the model finds too long after all is the client's 400.</summary>
    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync()
    {
        var model = request.Route!.Local!;
        try
        {
            var work = (EmbeddingWorkload)request.Work;

            // The built-in model loads on first use: the load is the server's work, not this request's compute seconds.
            (model.Embeddings as MiniLmEmbeddingGenerator)?.Load();
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            GeneratedEmbeddings<Embedding<float>> embeddings;
            // The model's context runs one batch at a time: the requests in it share its time (compute seconds).
            using (var stay = occupancy.Enter("embeddings:" + model.Id))
            {
                embeddings = work.TokenInputs is { } tokenInputs
                    ? await model.TokenEmbeddings!.GenerateAsync(tokenInputs, request.Aborted)
                    : await model.Embeddings!.GenerateAsync(work.Inputs, cancellationToken: request.Aborted);
                _tokens = (int)(embeddings.Usage?.InputTokenCount ?? 0);
                _timing = new GenerationResult
                {
                    FinishReason = FinishReason.Stop,
                    PromptTokens = _tokens,
                    CompletionTokens = 0,
                    Duration = System.Diagnostics.Stopwatch.GetElapsedTime(started),
                    ComputeSeconds = stay.Leave(),
                };
            }

            return embeddings;
        }
        catch (InputTooLongException ex)
        {
            // Named as the client sent it, as every other refusal of an input is: input[i] in an array, input for one string.
            var work = (EmbeddingWorkload)request.Work;
            var field = work.InputField(ex.InputIndex);
            throw OpenAIException.BadRequest(
                ContextLengthExceededException.Describe(field, ex.MaxTokens, ex.TokenCount, isExact: true, ex.MaxTokens), field, "context_length_exceeded");
        }
    }

    /// <summary>Embeddings are all or nothing: billed only when they were produced.</summary>
    public ValueTask<ExecutedUsage> FinalUsageAsync() => ValueTask.FromResult(new ExecutedUsage(_tokens, 0, _timing));

    public ValueTask DisposeAsync()
    {
        slot.Dispose();
        return ValueTask.CompletedTask;
    }
}
