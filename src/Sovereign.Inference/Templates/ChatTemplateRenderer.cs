using System.Text;
using System.Text.Json;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Tools;

namespace Sovereign.Inference.Templates;

/// <summary>A tool call an assistant made earlier in the conversation, as the client sent it back.</summary>
/// <param name="Id">The call's id.</param>
/// <param name="Name">The function.</param>
/// <param name="Arguments">The arguments as JSON text.</param>
public sealed record ChatToolCall(string Id, string Name, string Arguments);

/// <summary>What a chat prompt is rendered with besides the messages.</summary>
public sealed record ChatPromptOptions
{
    /// <summary>No tools; the prompt ends with the assistant's turn.</summary>
    public static readonly ChatPromptOptions Default = new();

    /// <summary>The tools offered, as OpenAI's <c>tools</c> items (<c>{"type": "function", "function": {...}}</c>).</summary>
    public IReadOnlyList<JsonElement>? Tools { get; init; }

    /// <summary>Whether the prompt ends by opening the assistant's turn.</summary>
    public bool AddGenerationPrompt { get; init; } = true;
}

/// <summary>
/// Renders a conversation with a model's Jinja chat template, binding what Hugging Face's <c>apply_chat_template</c>
/// binds: <c>messages</c> (with <c>tool_calls</c>, <c>tool_call_id</c>, <c>name</c>), <c>tools</c>,
/// <c>add_generation_prompt</c>, <c>bos_token</c> and <c>eos_token</c>.
/// </summary>
public sealed class ChatTemplateRenderer
{
    /// <summary>
    /// The template used for GGUFs without one when the fallback is "chatml": llama.cpp's ChatML for plain
    /// conversations, and Qwen 2.5's tool section (Hermes-style calls) when tools are given.
    /// </summary>
    public const string ChatMl = """
        {%- if tools %}
            {{- '<|im_start|>system\n' }}
            {%- if messages[0].role == 'system' %}
                {{- messages[0].content + '\n\n' }}
            {%- endif %}
            {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
            {%- for tool in tools %}
                {{- "\n" }}
                {{- tool | tojson }}
            {%- endfor %}
            {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
        {%- elif messages[0].role == 'system' %}
            {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
        {%- endif %}
        {%- for message in messages %}
            {%- if message.role == 'user' or (message.role == 'system' and not loop.first) or (message.role == 'assistant' and not message.tool_calls) %}
                {{- '<|im_start|>' + message.role + '\n' + (message.content or '') + '<|im_end|>\n' }}
            {%- elif message.role == 'assistant' %}
                {{- '<|im_start|>' + message.role }}
                {%- if message.content %}
                    {{- '\n' + message.content }}
                {%- endif %}
                {%- for tool_call in message.tool_calls %}
                    {%- if tool_call.function is defined %}
                        {%- set tool_call = tool_call.function %}
                    {%- endif %}
                    {{- '\n<tool_call>\n{"name": "' }}
                    {{- tool_call.name }}
                    {{- '", "arguments": ' }}
                    {{- tool_call.arguments | tojson }}
                    {{- '}\n</tool_call>' }}
                {%- endfor %}
                {{- '<|im_end|>\n' }}
            {%- elif message.role == 'tool' %}
                {%- if loop.index0 == 0 or messages[loop.index0 - 1].role != 'tool' %}
                    {{- '<|im_start|>user' }}
                {%- endif %}
                {{- '\n<tool_response>\n' }}
                {{- message.content }}
                {{- '\n</tool_response>' }}
                {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}
                    {{- '<|im_end|>\n' }}
                {%- endif %}
            {%- endif %}
        {%- endfor %}
        {%- if add_generation_prompt %}
            {{- '<|im_start|>assistant\n' }}
        {%- endif %}
        """;

    private ChatTemplateRenderer(JinjaTemplate template)
    {
        Template = template;
        ToolFormat = ToolCallSyntax.Detect(template.Source);
        RendersTools = template.Source.Contains("tools", StringComparison.Ordinal);
    }

    /// <summary>The parsed template.</summary>
    public JinjaTemplate Template { get; }

    /// <summary>How the template teaches the model to call tools.</summary>
    public ToolCallFormat ToolFormat { get; }

    /// <summary>Whether the template itself renders <c>tools</c>; if not, they are described in a system message.</summary>
    public bool RendersTools { get; }

    /// <summary>Parses a template; throws <see cref="TemplateNotSupportedException"/> when the engine cannot run it.</summary>
    public static ChatTemplateRenderer Create(string source) => new(JinjaTemplate.Parse(source));

    /// <summary>Renders the conversation. Throws <see cref="TemplateException"/> subclasses on failure.</summary>
    public string Render(IReadOnlyList<ChatTurn> turns, ChatPromptOptions options, string bosToken, string eosToken, TimeProvider time, TemplateLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(turns);
        ArgumentNullException.ThrowIfNull(options);
        var tools = options.Tools is { Count: > 0 } given ? given : null;
        if (tools is not null && !RendersTools)
        {
            turns = WithToolInstructions(turns, tools);
            tools = null;
        }

        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = turns.Select(ToValue).ToList<object?>(),
            ["add_generation_prompt"] = options.AddGenerationPrompt,
            ["bos_token"] = bosToken,
            ["eos_token"] = eosToken,
        };
        if (tools is not null)
        {
            variables["tools"] = tools.Select(t => JinjaValues.FromJson(t)).ToList();
        }

        return Template.Render(variables, limits, time);
    }

    /// <summary>
    /// The conversation with the tools described in its system message, Hermes-style, for templates that do not
    /// render <c>tools</c> themselves (and for llama.cpp's built-in templates).
    /// </summary>
    public static IReadOnlyList<ChatTurn> WithToolInstructions(IReadOnlyList<ChatTurn> turns, IReadOnlyList<JsonElement> tools)
    {
        ArgumentNullException.ThrowIfNull(turns);
        ArgumentNullException.ThrowIfNull(tools);
        var text = new StringBuilder("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n")
            .Append("You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
        foreach (var tool in tools)
        {
            text.Append('\n').Append(JinjaValues.ToJson(JinjaValues.FromJson(tool), null, false));
        }

        text.Append("\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n")
            .Append("<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
        var result = turns.ToList();
        if (result.Count > 0 && result[0].Role == "system")
        {
            result[0] = result[0] with { Content = result[0].Content + "\n\n" + text };
        }
        else
        {
            result.Insert(0, new ChatTurn("system", text.ToString()));
        }

        return result;
    }

    private static JinjaDict ToValue(ChatTurn turn)
    {
        var message = new JinjaDict
        {
            ["role"] = turn.Role,
            ["content"] = turn.ToolCalls is { Count: > 0 } && string.IsNullOrEmpty(turn.Content) ? null : turn.Content,
        };
        if (turn.ToolCalls is { Count: > 0 } calls)
        {
            message["tool_calls"] = calls.Select(call => (object?)new JinjaDict
            {
                ["id"] = call.Id,
                ["type"] = "function",
                ["function"] = new JinjaDict { ["name"] = call.Name, ["arguments"] = ArgumentsValue(call.Arguments) },
            }).ToList();
        }

        if (turn.ToolCallId is { } id)
        {
            message["tool_call_id"] = id;
        }

        if (turn.Name is { } name)
        {
            message["name"] = name;
        }

        return message;
    }

    /// <summary>Templates expect arguments as a mapping (they apply <c>tojson</c>); text that is not a JSON object stays text.</summary>
    private static object? ArgumentsValue(string arguments)
    {
        try
        {
            using var document = JsonDocument.Parse(arguments);
            return document.RootElement.ValueKind == JsonValueKind.Object ? JinjaValues.FromJson(document.RootElement) : arguments;
        }
        catch (JsonException)
        {
            return arguments;
        }
    }
}
