using System.Runtime.InteropServices;
using System.Text;
using LLama;
using LLama.Common;
using LLama.Exceptions;
using LLama.Native;
using Microsoft.Extensions.Logging;
using Sovereign.Inference.Templates;
using Sovereign.Inference.Tools;

namespace Sovereign.Inference.Engine;

/// <summary>A chat message as the template sees it.</summary>
/// <param name="Role">system, user, assistant or tool.</param>
/// <param name="Content">The message text.</param>
public readonly record struct ChatTurn(string Role, string Content)
{
    /// <summary>Calls an assistant turn made (OpenAI's <c>tool_calls</c>).</summary>
    public IReadOnlyList<ChatToolCall>? ToolCalls { get; init; }

    /// <summary>The call a tool turn answers.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>The participant's or the tool's name, when given.</summary>
    public string? Name { get; init; }
}

/// <summary>What is known about a loaded model.</summary>
public sealed record ModelInfo
{
    /// <summary>The id clients use.</summary>
    public required string Id { get; init; }

    /// <summary>The GGUF file.</summary>
    public required string Path { get; init; }

    /// <summary>Chat or embedding.</summary>
    public required ModelKind Kind { get; init; }

    /// <summary>The <c>general.architecture</c> of the GGUF.</summary>
    public required string Architecture { get; init; }

    /// <summary>Context the model was trained with.</summary>
    public required int TrainedContextLength { get; init; }

    /// <summary>Most tokens per sequence as served.</summary>
    public required int ContextLength { get; init; }

    /// <summary>Tokens in the vocabulary.</summary>
    public required int VocabularySize { get; init; }

    /// <summary>Parameters, as llama.cpp counts them.</summary>
    public required ulong Parameters { get; init; }

    /// <summary>Bytes of weights.</summary>
    public required ulong SizeBytes { get; init; }

    /// <summary>Where the chat template came from: "gguf", or the configured fallback's name.</summary>
    public required string ChatTemplateSource { get; init; }

    /// <summary>What renders chat prompts: "jinja" (the template as written) or "llama.cpp" (its built-in template matcher).</summary>
    public string ChatTemplateRenderer { get; init; } = "llama.cpp";

    /// <summary>How the model writes tool calls, chosen from its template.</summary>
    public ToolCallFormat ToolCallFormat { get; init; }

    /// <summary>Unix time the model was loaded.</summary>
    public required long CreatedUnixSeconds { get; init; }
}

/// <summary>
/// A GGUF model loaded once through LLamaSharp: weights, tokenizer and chat template. Shared by the batcher that
/// decodes it and by anything that needs to count tokens.
/// </summary>
public sealed partial class LlamaModel : IDisposable
{
    private readonly string? _fallbackTemplate;
    private readonly ChatTemplateRenderer? _jinja;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Lazy<int?> _maxBytesPerToken;
    private readonly Lazy<(string[] Texts, System.Buffers.SearchValues<string> Search)?> _controlTexts;
    private long _tokenizedCharacters;

    private LlamaModel(LLamaWeights weights, ModelOptions options, ResolvedModelOptions resolved, TimeProvider time, ILogger? logger)
    {
        Weights = weights;
        _time = time;
        _logger = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _maxBytesPerToken = new Lazy<int?>(MeasureMaxBytesPerToken);
        _controlTexts = new(FindControlTexts);
        Resolved = resolved;
        Options = options;
        weights.Metadata.TryGetValue("general.architecture", out var architecture);
        var hasTemplate = weights.Metadata.TryGetValue("tokenizer.chat_template", out var templateSource);
        _fallbackTemplate = hasTemplate ? null : (options.ChatTemplate ?? "chatml");
        _jinja = LoadJinja(options.Id, hasTemplate ? templateSource : _fallbackTemplate == "chatml" ? ChatTemplateRenderer.ChatMl : null);
        Info = new ModelInfo
        {
            Id = options.Id,
            Path = options.Path,
            Kind = options.Kind,
            Architecture = architecture ?? "unknown",
            TrainedContextLength = weights.ContextSize,
            ContextLength = resolved.ContextLength,
            VocabularySize = weights.Vocab.Count,
            Parameters = weights.ParameterCount,
            SizeBytes = weights.SizeInBytes,
            ChatTemplateSource = hasTemplate ? "gguf" : _fallbackTemplate!,
            ChatTemplateRenderer = _jinja is null ? "llama.cpp" : "jinja",
            ToolCallFormat = _jinja?.ToolFormat ?? ToolCallFormat.Hermes,
            CreatedUnixSeconds = time.GetUtcNow().ToUnixTimeSeconds(),
        };
    }

    /// <summary>The native weights.</summary>
    public LLamaWeights Weights { get; }

    /// <summary>Facts about the model as served.</summary>
    public ModelInfo Info { get; }

    /// <summary>The options it was loaded with.</summary>
    public ModelOptions Options { get; }

    internal ResolvedModelOptions Resolved { get; }

    /// <summary>Loads a GGUF file; throws <see cref="ModelLoadException"/> with the reason when it cannot.</summary>
    public static LlamaModel Load(ModelOptions options, TimeProvider? time = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!File.Exists(options.Path))
        {
            throw new ModelLoadException(options.Id, options.Path, "the file does not exist");
        }

        LLamaWeights weights;
        try
        {
            weights = LLamaWeights.LoadFromFile(new ModelParams(options.Path)
            {
                GpuLayerCount = options.GpuLayers,
                ContextSize = 0,

                // File-backed pages: shareable between processes and evictable, instead of a private copy of the weights.
                LoadMode = LLamaLoadMode.MemoryMap,
            });
        }
        catch (Exception ex) when (ex is RuntimeError or InvalidOperationException)
        {
            throw new ModelLoadException(options.Id, options.Path, "llama.cpp could not load it as GGUF (" + ex.Message + ")", ex);
        }

        NativeBuild.LogOnce(logger);

        try
        {
            CheckChatTemplate(options);
            return new LlamaModel(weights, options, options.Resolve(weights.ContextSize), time ?? TimeProvider.System, logger);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    // A name llama.cpp does not know started the server, and each chat request to the model was then a 500 (its
    // "template not found"), whether the name stood in for a missing GGUF template or for one neither engine renders.
    private static void CheckChatTemplate(ModelOptions options)
    {
        if (options.ChatTemplate is not { } name)
        {
            return;
        }

        try
        {
            var probe = new LLamaTemplate(name) { AddAssistant = true };
            probe.Add("user", "hello");
            _ = probe.Apply();
        }
        catch (MissingTemplateException)
        {
            throw new ModelLoadException(options.Id, options.Path,
                $"the chat template '{name}' (Sovereign:Models:N:ChatTemplate, --chat-template) is neither one llama.cpp has built in nor a template it recognises; "
                + $"built in: {string.Join(", ", BuiltInChatTemplates())}");
        }
    }

    private static unsafe string[] BuiltInChatTemplates()
    {
        var count = NativeApi.llama_chat_builtin_templates(null, 0);
        if (count <= 0)
        {
            return [];
        }

        // llama.cpp fills an array of C strings (LLamaSharp declares them char**; they are UTF-8 bytes).
        var names = new IntPtr[count];
        fixed (IntPtr* first = names)
        {
            _ = NativeApi.llama_chat_builtin_templates((char**)first, (UIntPtr)names.Length);
        }

        return [.. names.Select(name => Marshal.PtrToStringUTF8(name)).OfType<string>()];
    }

    /// <summary>Characters passed to the tokenizer so far (to see that a refusal cost little work).</summary>
    public long TokenizedCharacters => Interlocked.Read(ref _tokenizedCharacters);

    /// <summary>
    /// The most bytes of input one token can stand for, when the vocabulary is lossless (SentencePiece or byte-level
    /// BPE: every input byte is covered by exactly one token, byte-fallback tokens cover one byte, and no text is
    /// dropped or normalized); null for vocabularies that normalize or drop text (WordPiece, Unigram), where a byte
    /// count says nothing about the token count.
    /// </summary>
    public int? MaxBytesPerToken => _maxBytesPerToken.Value;

    /// <summary>Tokenizes text. Special tokens written in the text (e.g. <c>&lt;|im_start|&gt;</c>) are parsed.</summary>
    public int[] Tokenize(string text, bool addBos = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        Interlocked.Add(ref _tokenizedCharacters, text.Length);
        var add = addBos && Weights.Vocab.ShouldAddBOS;
        var tokens = Weights.Tokenize(text, add, special: true, Encoding.UTF8);
        var result = new int[tokens.Length];
        for (var i = 0; i < tokens.Length; i++)
        {
            result[i] = (int)tokens[i];
        }

        return result;
    }

    /// <summary>
    /// Tokenizes text that may have at most <paramref name="maxTokens"/> tokens, refusing over-long text before the
    /// work is spent: first by its length in bytes (lossless vocabularies), then by counting in chunks that stop once
    /// the limit is certainly passed. Throws <see cref="ContextLengthExceededException"/>.
    /// </summary>
    /// <param name="text">The text.</param>
    /// <param name="maxTokens">The most tokens allowed (for a prompt: the context length minus one).</param>
    /// <param name="addBos">Whether to add BOS where the model wants it.</param>
    /// <param name="subject">How the error names the text.</param>
    /// <param name="parameter">The request field at fault.</param>
    public int[] TokenizeWithin(string text, int maxTokens, bool addBos = true, string subject = "the prompt", string? parameter = "prompt")
    {
        ArgumentNullException.ThrowIfNull(text);
        EnsureBytesCanFit(Encoding.UTF8.GetByteCount(text), maxTokens, subject, parameter);
        if (text.Length > TokenBudget.ChunkCharacters(maxTokens))
        {
            TokenBudget.EnsureChunkedCountFits(text, maxTokens, chunk => Tokenize(chunk, addBos).Length, TokenBudget.ChunkCharacters(maxTokens), subject, parameter, ContextLengthAbove(maxTokens));
        }

        var tokens = Tokenize(text, addBos);
        return tokens.Length <= maxTokens ? tokens : throw new ContextLengthExceededException(subject, maxTokens, tokens.Length, isExact: true, parameter, ContextLengthAbove(maxTokens));
    }

    /// <summary>
    /// <see cref="TokenizeChat"/> with the cap of <see cref="TokenizeWithin"/>; the messages' own bytes are checked
    /// before the template renders them.
    /// </summary>
    /// <param name="messages">The conversation.</param>
    /// <param name="maxTokens">The most tokens the rendered prompt may have.</param>
    /// <param name="options">Tools and other template inputs.</param>
    /// <param name="parameter">The request field a refusal names (<c>messages</c> on chat, <c>input</c> on Responses).</param>
    public int[] TokenizeChatWithin(IReadOnlyList<ChatTurn> messages, int maxTokens, ChatPromptOptions? options = null, string parameter = "messages")
    {
        ArgumentNullException.ThrowIfNull(messages);
        long contentBytes = 0;
        foreach (var message in messages)
        {
            contentBytes += Encoding.UTF8.GetByteCount(message.Content ?? "");
        }

        EnsureBytesCanFit(contentBytes, maxTokens, "the prompt", parameter);
        try
        {
            var marked = MarkControlTexts(messages, options);
            var (text, addBos) = marked is null ? RenderForTokenizing(messages, options) : RenderForTokenizing(marked.Turns, marked.Options);
            return marked is null
                ? TokenizeWithin(text, maxTokens, addBos, "the prompt", parameter)
                : TokenizeMarked(text, marked, addBos, maxTokens, parameter);
        }
        catch (InvalidGenerationRequestException ex) when (ex.Parameter == "messages" && parameter != "messages")
        {
            throw new InvalidGenerationRequestException(ex.Message, parameter, ex.Code);
        }
    }

    /// <summary>Refuses text whose byte length alone proves it has more tokens than allowed.</summary>
    private void EnsureBytesCanFit(long bytes, int maxTokens, string subject, string? parameter)
    {
        // A lossless token stands for at most MaxBytesPerToken input bytes, so the text has at least bytes / that
        // many tokens. Two tokens of slack for BOS and a dummy-prefix space, which stand for no input byte.
        if (MaxBytesPerToken is { } perToken && bytes > (maxTokens + 2L) * perToken)
        {
            var atLeast = (int)Math.Min(bytes / perToken, int.MaxValue);
            throw new ContextLengthExceededException(subject, maxTokens, atLeast, isExact: false, parameter, ContextLengthAbove(maxTokens));
        }
    }

    /// <summary>The context length a refusal names: this model's, unless a caller's limit is larger.</summary>
    private int ContextLengthAbove(int maxTokens) => Math.Max(Info.ContextLength, maxTokens);

    private int? MeasureMaxBytesPerToken()
    {
        var vocab = Weights.Vocab;
        if (vocab.Type is not (LLamaVocabType.SentencePiece or LLamaVocabType.BytePairEncoding))
        {
            return null;
        }

        // Special tokens count with their text, since the tokenizer parses them out of the prompt (special: true).
        var longest = 1;
        for (var token = 0; token < vocab.Count; token++)
        {
            var piece = vocab.LLamaTokenToString((LLamaToken)token, isSpecialToken: true);
            if (piece is not null)
            {
                longest = Math.Max(longest, Encoding.UTF8.GetByteCount(piece));
            }
        }

        return longest;
    }

    /// <summary>One token's bytes as output text gets them (special tokens print nothing; a token may hold part of a character).</summary>
    public byte[] TokenBytes(int token)
    {
        Span<byte> buffer = stackalloc byte[128];
        var length = (int)Weights.NativeHandle.TokenToSpan((LLama.Native.LLamaToken)token, buffer);
        if (length <= buffer.Length)
        {
            return buffer[..length].ToArray();
        }

        var large = new byte[length];
        Weights.NativeHandle.TokenToSpan((LLama.Native.LLamaToken)token, large);
        return large;
    }

    /// <summary>Decodes tokens back into text (special tokens are not rendered).</summary>
    public string Detokenize(IReadOnlyList<int> tokens)
    {
        var decoder = new StreamingTokenDecoder(Encoding.UTF8, Weights);
        foreach (var token in tokens)
        {
            decoder.Add(token);
        }

        return decoder.Read();
    }

    /// <summary>
    /// Renders messages with the model's chat template as written (the Jinja engine), ending with the assistant's
    /// turn; with llama.cpp's template matcher when the engine cannot run the template. Tools are rendered by the
    /// template when it knows them, else described in the system message.
    /// </summary>
    public string RenderChat(IReadOnlyList<ChatTurn> messages, ChatPromptOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        options ??= ChatPromptOptions.Default;
        if (_jinja is not null)
        {
            try
            {
                return _jinja.Render(messages, options, SpecialText(Weights.Vocab.BOS), SpecialText(Weights.Vocab.EOS), _time, RenderLimits());
            }
            catch (TemplateRaisedException ex)
            {
                throw new InvalidGenerationRequestException("The model's chat template refused the conversation: " + ex.Message, "messages", "chat_template_error");
            }
            catch (TemplateLimitException ex)
            {
                throw new InvalidGenerationRequestException("The model's chat template could not render the conversation: " + ex.Message, "messages", "chat_template_error");
            }
            catch (TemplateRenderException ex)
            {
                LogTemplateFallback(_logger, Info.Id, ex.Message);
            }
        }

        var turns = options.Tools is { Count: > 0 } tools ? ChatTemplateRenderer.WithToolInstructions(messages, tools) : messages;
        try
        {
            return ApplyLlamaCpp(_fallbackTemplate is null ? new LLamaTemplate(Weights, strict: false) : new LLamaTemplate(_fallbackTemplate), turns, options);
        }
        catch (MissingTemplateException) when (_fallbackTemplate is null)
        {
            // Neither engine knows the GGUF's template: the configured fallback (ChatML by default) renders it.
            return ApplyLlamaCpp(new LLamaTemplate(Options.ChatTemplate ?? "chatml"), turns, options);
        }
    }

    private static string ApplyLlamaCpp(LLamaTemplate template, IReadOnlyList<ChatTurn> turns, ChatPromptOptions options)
    {
        template.AddAssistant = options.AddGenerationPrompt;
        foreach (var message in turns)
        {
            template.Add(message.Role, message.Content);
        }

        return Encoding.UTF8.GetString(template.Apply());
    }

    /// <summary>Tokenizes the rendered chat. The template writes BOS itself where the model wants it.</summary>
    public int[] TokenizeChat(IReadOnlyList<ChatTurn> messages, ChatPromptOptions? options = null)
    {
        var marked = MarkControlTexts(messages, options);
        var (text, addBos) = marked is null ? RenderForTokenizing(messages, options) : RenderForTokenizing(marked.Turns, marked.Options);
        return marked is null ? Tokenize(text, addBos) : TokenizeMarked(text, marked, addBos, null, "messages");
    }

    private (string Text, bool AddBos) RenderForTokenizing(IReadOnlyList<ChatTurn> messages, ChatPromptOptions? options)
    {
        var text = RenderChat(messages, options);
        var bos = Weights.Vocab.BOS;
        var startsWithBos = bos is { } b && text.StartsWith(Weights.Vocab.LLamaTokenToString(b, isSpecialToken: true) ?? "\0", StringComparison.Ordinal);
        return (text, !startsWithBos);
    }

    private string SpecialText(LLamaToken? token) => token is { } t ? Weights.Vocab.LLamaTokenToString(t, isSpecialToken: true) ?? "" : "";

    /// <summary>A render may write at most a few times the context's worth of text (a token is rarely under a character).</summary>
    private TemplateLimits RenderLimits() => TemplateLimits.Default with
    {
        MaxOutputCharacters = (int)Math.Min(TemplateLimits.Default.MaxOutputCharacters, Math.Max(1L << 16, Info.ContextLength * 64L)),
    };

    private ChatTemplateRenderer? LoadJinja(string modelId, string? source)
    {
        if (source is null)
        {
            return null;
        }

        try
        {
            return ChatTemplateRenderer.Create(source);
        }
        catch (TemplateNotSupportedException ex)
        {
            LogTemplateFallback(_logger, modelId, ex.Message);
            return null;
        }
    }

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning,
        Message = "Model {ModelId}: the Jinja engine cannot render its chat template ({Reason}); using llama.cpp's built-in template matcher, which renders tools only as a system message")]
    private static partial void LogTemplateFallback(ILogger logger, string modelId, string reason);

    /// <inheritdoc />
    public void Dispose() => Weights.Dispose();
}

/// <summary>A model could not be loaded; the message says which and why.</summary>
public sealed class ModelLoadException(string modelId, string path, string reason, Exception? inner = null)
    : Exception($"Model '{modelId}' at '{path}' cannot be loaded: {reason}.", inner)
{
    /// <summary>The model id.</summary>
    public string ModelId { get; } = modelId;
}
