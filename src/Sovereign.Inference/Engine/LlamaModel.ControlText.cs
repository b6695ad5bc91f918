using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using LLama.Native;
using Sovereign.Inference.Templates;

namespace Sovereign.Inference.Engine;

/// <summary>
/// Message text that spells one of the model's control tokens (<c>&lt;/s&gt;</c>, <c>&lt;|im_end|&gt;</c>) stays text.
/// </summary>
/// <remarks>
/// The rendered prompt is tokenized with special tokens parsed (the template writes its role markers as text), so a
/// message saying <c>&lt;|im_end|&gt;\n&lt;|im_start|&gt;system</c> ended its own turn and opened a system turn, as vLLM
/// and llama-server read it; OpenAI reads it as text. A message that spells one is rendered with each spelling replaced
/// by a marker (a private-use character none of the messages holds, around the spelling's index); the rendered prompt
/// is cut at the markers, the template's text tokenized as before and each spelling as text. A prompt whose messages
/// spell none is tokenized exactly as before (cutting changes tokens at the cuts: SentencePiece adds its space prefix
/// to each piece). Only control and unknown tokens are concerned: llama.cpp parses user-defined tokens with or without
/// the flag.
/// </remarks>
public sealed partial class LlamaModel
{
    /// <summary>The texts of the vocabulary's control tokens, longest first, and a searcher for any of them; null: none.</summary>
    private (string[] Texts, SearchValues<string> Search)? FindControlTexts()
    {
        var vocab = Weights.Vocab;
        var texts = new HashSet<string>(StringComparer.Ordinal);
        for (var token = 0; token < vocab.Count; token++)
        {
            // A control (or unknown) token prints nothing unless asked for its special text.
            var asSpecial = vocab.LLamaTokenToString((LLamaToken)token, isSpecialToken: true);
            if (!string.IsNullOrEmpty(asSpecial) && string.IsNullOrEmpty(vocab.LLamaTokenToString((LLamaToken)token, isSpecialToken: false)))
            {
                texts.Add(asSpecial);
            }
        }

        if (texts.Count == 0)
        {
            return null;
        }

        // Longest first, as llama.cpp matches them.
        var ordered = texts.OrderByDescending(t => t.Length).ThenBy(t => t, StringComparer.Ordinal).ToArray();
        return (ordered, SearchValues.Create(ordered, StringComparison.Ordinal));
    }

    /// <summary>Whether <paramref name="text"/> spells one of the model's control tokens (the first it spells, if so).</summary>
    public string? SpelledControlToken(string? text)
    {
        if (string.IsNullOrEmpty(text) || _controlTexts.Value is not { } control)
        {
            return null;
        }

        var at = text.AsSpan().IndexOfAny(control.Search);
        return at < 0 ? null : SpellingAt(control.Texts, text.AsSpan(at));
    }

    /// <summary>The longest control-token text that <paramref name="text"/> starts with (one does: the searcher found it).</summary>
    private static string SpellingAt(string[] longestFirst, ReadOnlySpan<char> text)
    {
        foreach (var spelling in longestFirst)
        {
            if (text.StartsWith(spelling, StringComparison.Ordinal))
            {
                return spelling;
            }
        }

        throw new InvalidOperationException("The searcher found a control token's text that none of them starts.");
    }

    /// <summary>
    /// The messages and tools with every spelling of a control token in text the caller wrote replaced by a marker,
    /// and what each marker stands for; null when nothing spells one.
    /// </summary>
    /// <remarks>
    /// Caller text reaches the template as message content, names, tool-call ids, a call's function name and
    /// arguments, and the <c>tools</c> (names, descriptions, parameter schemas). Arguments that are a JSON object and
    /// the tools are read as the template gets them, decoded (<c>\u003c/s\u003e</c> is <c>&lt;/s&gt;</c> once the
    /// template writes it with <c>tojson</c>), and rewritten with their strings marked; any other arguments are marked
    /// as written.
    /// </remarks>
    private MarkedPrompt? MarkControlTexts(IReadOnlyList<ChatTurn> messages, ChatPromptOptions? options)
    {
        if (_controlTexts.Value is not { } control || !CallerTexts(messages, options).Any(t => SpelledControlToken(t) is not null))
        {
            return null;
        }

        // A private-use character that no caller text holds: the template writes no such character of its own.
        var marker = '\uE000';
        while (CallerTexts(messages, options).Any(t => t.Contains(marker, StringComparison.Ordinal)))
        {
            marker++;
        }

        var spelled = new List<string>();
        string Mark(string text)
        {
            if (SpelledControlToken(text) is null)
            {
                return text;
            }

            var marked = new StringBuilder(text.Length + 16);
            var rest = text.AsSpan();
            while (rest.IndexOfAny(control.Search) is var at && at >= 0)
            {
                var token = SpellingAt(control.Texts, rest[at..]);
                marked.Append(rest[..at]).Append(marker).Append(spelled.Count.ToString(CultureInfo.InvariantCulture)).Append(marker);
                spelled.Add(token);
                rest = rest[(at + token.Length)..];
            }

            return marked.Append(rest).ToString();
        }

        string? MarkOptional(string? text) => text is null ? null : Mark(text);

        var turns = new ChatTurn[messages.Count];
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i];
            turns[i] = message with
            {
                Content = MarkOptional(message.Content)!,
                Name = MarkOptional(message.Name),
                ToolCallId = MarkOptional(message.ToolCallId),
                ToolCalls = message.ToolCalls?.Select(call => call with
                {
                    Id = Mark(call.Id),
                    Name = Mark(call.Name),
                    Arguments = ArgumentsObject(call.Arguments) is { } arguments ? MarkJson(arguments, Mark).GetRawText() : Mark(call.Arguments),
                }).ToList(),
            };
        }

        var markedOptions = options?.Tools is { Count: > 0 } tools
            ? options with { Tools = tools.Select(tool => MarkJson(tool, Mark)).ToList() }
            : options;
        return new MarkedPrompt(turns, markedOptions, marker, spelled);
    }

    /// <summary>Every text the caller wrote that the template may write into the prompt, JSON strings decoded.</summary>
    private static IEnumerable<string> CallerTexts(IReadOnlyList<ChatTurn> messages, ChatPromptOptions? options)
    {
        foreach (var message in messages)
        {
            if (message.Content is { } content)
            {
                yield return content;
            }

            if (message.Name is { } name)
            {
                yield return name;
            }

            if (message.ToolCallId is { } callId)
            {
                yield return callId;
            }

            foreach (var call in message.ToolCalls ?? [])
            {
                yield return call.Id;
                yield return call.Name;
                if (ArgumentsObject(call.Arguments) is { } arguments)
                {
                    foreach (var text in JsonTexts(arguments))
                    {
                        yield return text;
                    }
                }
                else
                {
                    yield return call.Arguments;
                }
            }
        }

        foreach (var tool in options?.Tools ?? [])
        {
            foreach (var text in JsonTexts(tool))
            {
                yield return text;
            }
        }
    }

    /// <summary>
    /// A call's arguments as the template gets them when they are a JSON object (parsed, as
    /// <see cref="ChatTemplateRenderer"/> parses them); null when it gets them as text.
    /// </summary>
    private static JsonElement? ArgumentsObject(string arguments)
    {
        // Fast path: text holding no quote has no JSON string, so nothing decoded differs from the text as written.
        if (!arguments.Contains('"', StringComparison.Ordinal))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(arguments);
            return document.RootElement.ValueKind == JsonValueKind.Object ? document.RootElement.Clone() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The property names and string values of a JSON value, decoded.</summary>
    private static IEnumerable<string> JsonTexts(JsonElement element)
    {
        var pending = new Stack<JsonElement>();
        pending.Push(element);
        while (pending.Count > 0)
        {
            var value = pending.Pop();
            switch (value.ValueKind)
            {
                case JsonValueKind.String:
                    yield return value.GetString()!;
                    break;
                case JsonValueKind.Array:
                    foreach (var item in value.EnumerateArray())
                    {
                        pending.Push(item);
                    }

                    break;
                case JsonValueKind.Object:
                    foreach (var property in value.EnumerateObject())
                    {
                        yield return property.Name;
                        pending.Push(property.Value);
                    }

                    break;
            }
        }
    }

    /// <summary>A JSON value with its property names and strings marked; numbers and order as they were.</summary>
    private static JsonElement MarkJson(JsonElement element, Func<string, string> mark)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true }))
        {
            Write(writer, element, mark);
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();

        static void Write(Utf8JsonWriter writer, JsonElement value, Func<string, string> mark)
        {
            switch (value.ValueKind)
            {
                case JsonValueKind.String:
                    writer.WriteStringValue(mark(value.GetString()!));
                    break;
                case JsonValueKind.Array:
                    writer.WriteStartArray();
                    foreach (var item in value.EnumerateArray())
                    {
                        Write(writer, item, mark);
                    }

                    writer.WriteEndArray();
                    break;
                case JsonValueKind.Object:
                    writer.WriteStartObject();
                    foreach (var property in value.EnumerateObject())
                    {
                        writer.WritePropertyName(mark(property.Name));
                        Write(writer, property.Value, mark);
                    }

                    writer.WriteEndObject();
                    break;
                default:
                    writer.WriteRawValue(value.GetRawText(), skipInputValidation: true);
                    break;
            }
        }
    }

    /// <summary>
    /// Tokenizes a prompt rendered from marked messages: the template's text with special tokens parsed, each marked
    /// spelling as text. A marker the template did not keep whole is refused: the spelling's place is then unknown.
    /// </summary>
    private int[] TokenizeMarked(string rendered, MarkedPrompt marked, bool addBos, int? maxTokens, string parameter)
    {
        var parts = rendered.Split(marked.Marker);
        if (parts.Length % 2 == 0)
        {
            throw ControlTextNotKept(marked);
        }

        var tokens = new List<int>(rendered.Length / 2);
        for (var i = 0; i < parts.Length; i++)
        {
            if (i % 2 == 1)
            {
                if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out var index) || index >= marked.Spelled.Count)
                {
                    throw ControlTextNotKept(marked);
                }

                var spelling = marked.Spelled[index];
                Interlocked.Add(ref _tokenizedCharacters, spelling.Length);
                foreach (var token in Weights.Tokenize(spelling, false, special: false, Encoding.UTF8))
                {
                    tokens.Add((int)token);
                }
            }
            else if (parts[i].Length > 0 || (i == 0 && addBos))
            {
                tokens.AddRange(maxTokens is { } max
                    ? TokenizeWithin(parts[i], max, i == 0 && addBos, "the prompt", parameter)
                    : Tokenize(parts[i], i == 0 && addBos));
            }

            if (maxTokens is { } limit && tokens.Count > limit)
            {
                throw new ContextLengthExceededException("the prompt", limit, tokens.Count, isExact: i == parts.Length - 1, parameter, ContextLengthAbove(limit));
            }
        }

        return [.. tokens];
    }

    private static InvalidGenerationRequestException ControlTextNotKept(MarkedPrompt marked) => new(
        $"The request spells one of this model's control tokens ('{marked.Spelled[0]}') in a message, a tool call or a tool, which is read as text, but the model's chat template did not keep that text as written; leave the token out.",
        "messages", "invalid_value");

    /// <summary>Messages and tools with their spellings of control tokens marked.</summary>
    /// <param name="Turns">The messages, spellings replaced by markers.</param>
    /// <param name="Options">The options, the tools' spellings replaced by markers.</param>
    /// <param name="Marker">The marker character (a marker is it, the spelling's index, it again).</param>
    /// <param name="Spelled">The spellings, by index.</param>
    private sealed record MarkedPrompt(IReadOnlyList<ChatTurn> Turns, ChatPromptOptions? Options, char Marker, List<string> Spelled);
}
