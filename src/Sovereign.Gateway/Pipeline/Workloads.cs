using System.Text.Json;

using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// What a client asked to run, decoded and validated from OpenAI's wire format by its endpoint. The pipeline's stages
/// read it; only the executor that runs it interprets the prompt.
/// </summary>
internal abstract class Workload
{
    /// <summary>The model (or alias) the client named.</summary>
    public required string? Model { get; init; }

    /// <summary>
    /// The request's text, turn by turn: its language is the conversation's (chat, Responses; see
    /// <see cref="Sovereign.Languages.LanguageDetector.DetectConversation"/>), the prompt's or the first prompt's of a
    /// batch (completions), the first input's (embeddings); the language tax's share is measured over all of it.
    /// </summary>
    public required Sovereign.Languages.PromptText LanguageSample { get; init; }

    /// <summary>Which kind of model can run it.</summary>
    public abstract ModelKind Kind { get; }

    /// <summary>
    /// The endpoint's own checks of the caller made before the pipeline (Responses: stored content and retention, on the
    /// caller's policy), run again on the caller a request is decided again for when its tenant's policy or plan changed
    /// after the first decision: a refusal there ends the request before admission, nothing reserved.
    /// </summary>
    public Func<ControlPlane.Caller, Task>? CallerCheck { get; init; }
}

/// <summary>A chat or text completion: one prompt (or several) and <see cref="N"/> choices of each.</summary>
internal sealed class GenerationWorkload : Workload
{
    /// <inheritdoc />
    public override ModelKind Kind => ModelKind.Chat;

    /// <summary>The OpenAI path under /v1, for relaying to an external engine: <c>chat/completions</c> or <c>completions</c>.</summary>
    public required string Endpoint { get; init; }

    /// <summary>
    /// For requests translated into this workload (Responses): the chat-completions body an external engine or a
    /// remote node gets, with <c>max_tokens</c> as its output limit. Null relays the client's own body as is (chat and
    /// text completions).
    /// </summary>
    public System.Text.Json.Nodes.JsonObject? ChatRelayBody { get; init; }

    /// <summary>The OpenAI path under /v1 that a relay sends the work to.</summary>
    public string RelayEndpoint => ChatRelayBody is null ? Endpoint : "chat/completions";

    /// <summary>The chat turns (chat completions).</summary>
    public IReadOnlyList<ChatTurn>? Turns { get; init; }

    /// <summary>The raw prompt: a string, strings, token ids or arrays of them (text completions).</summary>
    public JsonElement? Prompt { get; init; }

    /// <summary>The sampler settings shared by every choice.</summary>
    public required SamplingOptions Sampling { get; init; }

    /// <summary>The output limit the client asked for, if any.</summary>
    public int? RequestedMaxTokens { get; init; }

    /// <summary>The client's limit or, without one, the server's cap (null: up to the context).</summary>
    public int? MaxTokens { get; init; }

    /// <summary>The request field that carries the output limit (<c>max_tokens</c>, <c>max_completion_tokens</c>, <c>max_output_tokens</c>).</summary>
    public string MaxTokensParameter { get; init; } = "max_tokens";

    /// <summary>The request field that carries the prompt, named by refusals (<c>messages</c>, <c>prompt</c>, <c>input</c>).</summary>
    public string PromptParameter { get; init; } = "messages";

    /// <summary>Stop strings.</summary>
    public required IReadOnlyList<string> Stop { get; init; }

    /// <summary>Choices per prompt.</summary>
    public required int N { get; init; }

    /// <summary>Whether the client streams the answer.</summary>
    public bool Stream { get; init; }

    /// <summary>
    /// Whether the endpoint awaits <see cref="GovernedRequest.EvidenceDurableAsync"/> before a stream's first content,
    /// so that a stream relayed to this node may send its headers (and role chunk) while the decision's entry commits.
    /// </summary>
    public bool AwaitsEvidenceBeforeContent { get; init; }

    /// <summary>Constrains local generation to a grammar (structured output); null for free text.</summary>
    public Sovereign.Inference.Grammar.GbnfGrammar? Grammar { get; init; }

    /// <summary>Null: no log-probabilities; otherwise alternatives to report per generated token.</summary>
    public int? TopLogprobs { get; init; }

    /// <summary>
    /// Completions' <c>echo</c>: each choice's text starts with its prompt, and with <see cref="TopLogprobs"/> its
    /// logprobs cover the prompt's tokens too. <see cref="MaxTokens"/> may then be 0: the prompt is only scored.
    /// </summary>
    public bool Echo { get; init; }

    /// <summary>The tools offered and how they may be called (chat); null without tools.</summary>
    public Sovereign.Gateway.OpenAI.ChatTools? Tools { get; init; }

    /// <summary>
    /// Chat's <c>reasoning_effort</c> as sent, null when absent. A relay forwards it in the body (vLLM gives it to a
    /// reasoning model's template); this process's engine has no effort to set, so it refuses it.
    /// </summary>
    public string? ReasoningEffort { get; init; }

    /// <summary>The client's <c>cache_salt</c>: cached prompts are reused only within the tenant and this salt.</summary>
    public string? CacheSalt { get; init; }
}

/// <summary>An embeddings request: the texts to embed.</summary>
internal sealed class EmbeddingWorkload : Workload
{
    /// <inheritdoc />
    public override ModelKind Kind => ModelKind.Embedding;

    /// <summary>The inputs as text, in order; empty when the client sent token ids.</summary>
    public required IReadOnlyList<string> Inputs { get; init; }

    /// <summary>The inputs as token ids of the model's vocabulary (checked against it when the model is known); null for text.</summary>
    public IReadOnlyList<int[]>? TokenInputs { get; init; }

    /// <summary>Whether the ids came as an array of arrays (<c>input[i][j]</c>) rather than one array (<c>input[j]</c>).</summary>
    public bool TokenInputsNested { get; init; }

    /// <summary>Whether the texts came as an array (<c>input[i]</c>) rather than one string (<c>input</c>).</summary>
    public bool TextInputsArray { get; init; }

    /// <summary>
    /// How a refusal names input <paramref name="index"/> as the client sent it: <c>input[i]</c> for a text in an array
    /// or ids in an array of arrays, else <c>input</c>.
    /// </summary>
    public string InputField(int index) => (TokenInputs is not null ? TokenInputsNested : TextInputsArray) ? $"input[{index}]" : "input";

    /// <summary>The dimensions the client asked for, if any.</summary>
    public int? Dimensions { get; init; }
}

/// <summary>
/// The most a request can consume, known before any money moves: its prompt tokens (exact, or a bound when the
/// tokenizer is remote) and one effective output limit for the whole request, every prompt and choice included.
/// </summary>
internal readonly record struct WorkDemand(long PromptTokens, long MaxOutputTokens);

/// <summary>What the work used, as the executor confirmed it after the work ended or was abandoned.</summary>
/// <param name="CachedTokens">Prompt tokens served from the prefix cache (part of <paramref name="PromptTokens"/>).</param>
internal readonly record struct ExecutedUsage(int PromptTokens, int CompletionTokens, GenerationResult? Timing, int CachedTokens = 0)
{
    /// <summary>Nothing ran.</summary>
    public static ExecutedUsage None => default;
}
