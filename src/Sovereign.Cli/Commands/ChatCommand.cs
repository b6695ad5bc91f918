using System.CommandLine;
using OpenAI.Chat;
using Sovereign.Cli.Output;

namespace Sovereign.Cli.Commands;

/// <summary><c>sovereign chat</c>: talks to a running server and streams the answers.</summary>
internal static class ChatCommand
{
    /// <summary>The default cap per answer, so a model that never stops cannot run on until the context is full.</summary>
    public const int DefaultMaxTokens = 512;

    public static Command Create()
    {
        var connection = new ServerConnection();
        var model = new Option<string?>("--model", "-m") { Description = "Model id (default: the server's first chat model)." };
        ModelIdRule.Refuse(model);
        var system = new Option<string?>("--system") { Description = "A system message to start the conversation with." };
        var prompt = new Option<string?>("--prompt", "-p") { Description = "Send one message, print the streamed answer, and exit." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most tokens per answer.", DefaultValueFactory = _ => DefaultMaxTokens };
        var temperature = new Option<float?>("--temperature") { Description = "Sampling temperature, 0 to 2." };
        // Said before the server is asked: it answered about 'max_completion_tokens' and 'temperature', exit 1.
        maxTokens.Validators.Add(r =>
        {
            if (Output.ParseErrors.ValueOrNull<int>(r) is < 1)
            {
                r.AddError("--max-tokens must be at least 1.");
            }
        });
        temperature.Validators.Add(r =>
        {
            if (Output.ParseErrors.ValueOrNull<float>(r) is < 0 or > 2 or float.NaN)
            {
                r.AddError("--temperature must be from 0 to 2.");
            }
        });
        var command = new Command("chat", "Chat with a model on a running server (streams the answer).") { model, system, prompt, maxTokens, temperature };
        connection.AddTo(command);
        command.SetAction((result, cancellationToken) => connection.RunAsync(result, async () =>
        {
            {
                var client = connection.CreateClient(result);
                var modelId = result.GetValue(model) ?? await FirstChatModelAsync(client, cancellationToken);
                var chat = client.GetChatClient(modelId);
                var options = new ChatCompletionOptions { MaxOutputTokenCount = result.GetValue(maxTokens), Temperature = result.GetValue(temperature) };
                var capIsOurs = result.GetResult(maxTokens) is null or { Implicit: true };
                var history = new List<OpenAI.Chat.ChatMessage>();
                if (result.GetValue(system) is { } systemText)
                {
                    history.Add(new SystemChatMessage(systemText));
                }

                if (result.GetValue(prompt) is { } once)
                {
                    await TurnAsync(chat, history, once, options, capIsOurs, cancellationToken);
                    return 0;
                }

                Console.Error.WriteLine($"Chatting with {modelId}. Empty line or Ctrl+D to quit.");
                while (!cancellationToken.IsCancellationRequested)
                {
                    Console.Error.Write("> ");
                    var line = Console.ReadLine();
                    if (string.IsNullOrWhiteSpace(line))
                    {
                        break;
                    }

                    await TurnAsync(chat, history, line, options, capIsOurs, cancellationToken);
                }

                return 0;
            }
        }));
        return command;
    }

    /// <remarks>
    /// Our default cap (not one the user chose) may not fit a small model's context: the server then refuses the
    /// request (400 on max_completion_tokens, as OpenAI does), and a first `sovereign chat` against a model served
    /// with `-c 256` failed. The turn is then sent once more without a cap, which the server bounds by what the
    /// context leaves; later turns keep it off.
    /// </remarks>
    private static async Task TurnAsync(ChatClient chat, List<OpenAI.Chat.ChatMessage> history, string text, ChatCompletionOptions options, bool capIsOurs, CancellationToken cancellationToken)
    {
        history.Add(new UserChatMessage(text));
        var answer = new System.Text.StringBuilder();
        try
        {
            await StreamAsync(chat, history, options, answer, cancellationToken);
        }
        catch (System.ClientModel.ClientResultException ex) when (capIsOurs && answer.Length == 0 && options.MaxOutputTokenCount is not null
            && ex.Status == 400 && RefusedParameter(ex) is "max_completion_tokens" or "max_tokens")
        {
            options.MaxOutputTokenCount = null;
            await StreamAsync(chat, history, options, answer, cancellationToken);
        }

        Console.WriteLine();
        history.Add(new AssistantChatMessage(answer.ToString()));
    }

    private static async Task StreamAsync(ChatClient chat, List<OpenAI.Chat.ChatMessage> history, ChatCompletionOptions options, System.Text.StringBuilder answer, CancellationToken cancellationToken)
    {
        await foreach (var update in chat.CompleteChatStreamingAsync(history, options, cancellationToken))
        {
            foreach (var part in update.ContentUpdate)
            {
                Console.Write(Shown(part.Text));
                answer.Append(part.Text);
            }
        }
    }

    /// <summary>
    /// A part of the answer as the terminal shows it. A model writes whatever its input steers it to (a document it was
    /// given, a web page), and a terminal obeys an ESC sequence it is sent: OSC 52 writes the clipboard, OSC 8 makes a
    /// link, <c>ESC[2J</c> clears the screen. Every character that acts instead of showing is written as its
    /// <c>\uXXXX</c> escape (<see cref="Residency.DisplayText"/>); line breaks, carriage returns and tabs are kept.
    /// </summary>
    internal static string Shown(string part) => Residency.DisplayText.Escaped(part, keep: "\n\r\t");

    /// <summary>The <c>error.param</c> of an OpenAI error answer, or null.</summary>
    private static string? RefusedParameter(System.ClientModel.ClientResultException exception)
    {
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(exception.GetRawResponse()?.Content?.ToString() ?? "");
            return document.RootElement.TryGetProperty("error", out var error) && error.ValueKind == System.Text.Json.JsonValueKind.Object
                && error.TryGetProperty("param", out var param) && param.ValueKind == System.Text.Json.JsonValueKind.String
                ? param.GetString()
                : null;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private static async Task<string> FirstChatModelAsync(OpenAI.OpenAIClient client, CancellationToken cancellationToken)
    {
        var models = await client.GetOpenAIModelClient().GetModelsAsync(cancellationToken);
        return models.Value.Select(m => m.Id).FirstOrDefault(id => id != "all-MiniLM-L6-v2")
            ?? throw new Output.CliException("the server serves no chat model.");
    }
}
