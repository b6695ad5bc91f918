namespace Sovereign.Inference.Engine;

/// <summary>One completion to run on a model: the prompt as tokens, how to sample, and when to stop.</summary>
public sealed record GenerationRequest
{
    /// <summary>The prompt, already tokenized with the model's tokenizer (BOS included where the model wants it).</summary>
    public required IReadOnlyList<int> PromptTokens { get; init; }

    /// <summary>
    /// The most tokens to generate. <see langword="null"/> means up to the end of the sequence's context; 0 evaluates
    /// the prompt only (for its <see cref="PromptLogprobs"/>) and generates nothing.
    /// </summary>
    public int? MaxTokens { get; init; }

    /// <summary>Strings that end generation; matched on decoded text, across token boundaries, and not returned.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary>
    /// Markers after which <see cref="Stop"/> no longer applies: the openings of a tool call in the model's syntax
    /// (<see cref="Tools.ToolCallSyntax.OpeningMarkers"/>). A stop string ends text; matched inside a call the model
    /// makes by itself, it cut the call into markup returned as content.
    /// </summary>
    public IReadOnlyList<string> StopExemptFrom { get; init; } = [];

    /// <summary>How each token is chosen.</summary>
    public SamplingOptions Sampling { get; init; } = SamplingOptions.Default;

    /// <summary>Who the request is for: waiting requests are admitted weighted-fair across tenants, not FIFO.</summary>
    public string Tenant { get; init; } = "anonymous";

    /// <summary>
    /// Who may reuse this request's prompt from the prefix cache, and whose cached prompts it may reuse: only requests
    /// of the same partition (null: <see cref="Tenant"/>). A reused prefix shows in <c>cached_tokens</c> and in the
    /// time to the first token, so across tenants it would tell one tenant what another sent.
    /// </summary>
    public string? CachePartition { get; init; }

    /// <summary>The tenant's share weight (its plan's); a weight-3 tenant is admitted three times as often as a weight-1 one.</summary>
    public int Weight { get; init; } = 1;

    /// <summary>Interactive requests are admitted before batch ones.</summary>
    public Scheduling.PriorityClass Priority { get; init; } = Scheduling.PriorityClass.Interactive;

    /// <summary>Constrains the output to the grammar's language (structured output); null for free text.</summary>
    public Grammar.GbnfGrammar? Grammar { get; init; }

    /// <summary>
    /// Constrains the output from a trigger on (the tool calls a model makes by itself: free text until the call's
    /// opening marker, then the call's grammar); null for none. Not combined with <see cref="Grammar"/>, which wins.
    /// </summary>
    public Grammar.LazyGrammar? LazyGrammar { get; init; }

    /// <summary>
    /// Null: no log-probabilities. Otherwise each generated token's log-probability is reported, with this many of the
    /// most likely alternatives at its position (0 to <see cref="Sampling.Logprobs.MaxTop"/>).
    /// </summary>
    public int? TopLogprobs { get; init; }

    /// <summary>
    /// Null: no prompt log-probabilities. Otherwise every prompt token after the first is scored, log P(token | the
    /// tokens before it), with this many of the most likely alternatives at its position (0 to
    /// <see cref="Sampling.Logprobs.MaxTop"/>); they arrive in one update once the prompt is evaluated
    /// (<see cref="GenerationUpdate.PromptLogprobs"/>). Such a prompt is prefilled whole, never taken from the prefix
    /// cache, whose cells carry no logits.
    /// </summary>
    public int? PromptLogprobs { get; init; }

    /// <summary>
    /// Prefill the prompt exactly as a scored prompt is (from its first token, not from the prefix cache, with logits
    /// kept at every position) without scoring it: the other choices of a prompt that one choice scores, so that their
    /// logits are computed as the scored choice's are and greedy choices stay equal to the last bit (a reused prefix, or
    /// fewer output rows in the decode, can change the last bits of the logits).
    /// </summary>
    public bool PrefillAsScored { get; init; }
}

/// <summary>Per-request sampling settings, with OpenAI's defaults and ranges.</summary>
public sealed record SamplingOptions
{
    /// <summary>OpenAI's defaults: temperature 1, top_p 1, no top-k, no min-p, no penalties, random seed.</summary>
    public static readonly SamplingOptions Default = new();

    /// <summary>Greedy decoding: always the most likely token.</summary>
    public static readonly SamplingOptions Greedy = new() { Temperature = 0 };

    /// <summary>0 to 2; 0 is greedy.</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Nucleus sampling, [0, 1]; 1 disables it, 0 (OpenAI accepts it) keeps the most likely token alone: greedy.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Keep the k most likely tokens; 0 disables it.</summary>
    public int TopK { get; init; }

    /// <summary>Drop tokens less likely than min_p times the most likely one, [0, 1]; 0 disables it.</summary>
    public float MinP { get; init; }

    /// <summary>-2 to 2; penalises tokens that already appeared in the output.</summary>
    public float PresencePenalty { get; init; }

    /// <summary>-2 to 2; penalises tokens by how often they appeared in the output.</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>Seed for the random sampler; <see langword="null"/> draws one.</summary>
    public long? Seed { get; init; }

    /// <summary>
    /// Added to these token ids' logits before every other stage (OpenAI's <c>logit_bias</c>, -100 to 100: -100 in
    /// effect bans a token, 100 in effect forces it). Token ids must be in the model's vocabulary.
    /// </summary>
    public IReadOnlyDictionary<int, float> LogitBias { get; init; } = System.Collections.Frozen.FrozenDictionary<int, float>.Empty;

    /// <summary>Whether sampling is plain argmax: temperature 0, or top_p 0 (a nucleus of the most likely token).</summary>
    public bool IsGreedy => Temperature <= 0f || TopP <= 0f;
}

/// <summary>Why generation ended, in OpenAI's vocabulary.</summary>
public enum FinishReason
{
    /// <summary>The model emitted an end-of-generation token or a stop string matched.</summary>
    Stop,

    /// <summary>The token limit or the end of the context was reached.</summary>
    Length,

    /// <summary>The client went away or the request was cancelled.</summary>
    Cancelled,
}

/// <summary>What a finished generation cost and how it went.</summary>
public sealed record GenerationResult
{
    /// <summary>Why it ended.</summary>
    public required FinishReason FinishReason { get; init; }

    /// <summary>Tokens in the prompt.</summary>
    public required int PromptTokens { get; init; }

    /// <summary>Prompt tokens whose KV cells came from the prefix cache instead of being prefilled (part of <see cref="PromptTokens"/>).</summary>
    public int CachedPromptTokens { get; init; }

    /// <summary>Tokens the model generated, the end-of-generation token included (it took a decode step).</summary>
    public required int CompletionTokens { get; init; }

    /// <summary>Time spent waiting for a sequence slot and KV space.</summary>
    public TimeSpan QueueTime { get; init; }

    /// <summary>From submission to the first generated token.</summary>
    public TimeSpan? TimeToFirstToken { get; init; }

    /// <summary>From submission to the end.</summary>
    public TimeSpan Duration { get; init; }

    /// <summary>This request's share of each batched decode step it took part in, in seconds.</summary>
    public double ComputeSeconds { get; init; }

    /// <summary>
    /// Whether the engine took it from its queue (its prompt was read, or about to be). False for a request cancelled
    /// while it still waited there: no work ran for it, so it is billed nothing, its prompt included.
    /// </summary>
    public bool Admitted { get; init; } = true;
}

/// <summary>One piece of a streamed generation: new text, and at the end the result.</summary>
/// <param name="Text">Text generated since the last update (may be empty).</param>
/// <param name="Result">Set on the last update only.</param>
/// <param name="Logprobs">When asked for: the tokens generated since the last update that carried logprobs, in order.</param>
/// <param name="PromptLogprobs">
/// When asked for (<see cref="GenerationRequest.PromptLogprobs"/>), once, before any generated token: every prompt token
/// in order. The first has no log-probability (<see cref="float.NaN"/>: nothing precedes it) and no alternatives.
/// </param>
public readonly record struct GenerationUpdate(
    string Text, GenerationResult? Result, IReadOnlyList<Sampling.TokenLogprob>? Logprobs = null, IReadOnlyList<Sampling.TokenLogprob>? PromptLogprobs = null);
