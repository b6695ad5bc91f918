using System.ClientModel;
using System.Text.Json;
using OpenAI.Chat;
using OpenAI.Responses;

namespace Sovereign.Gateway.FunctionalTests.OpenAI;

#pragma warning disable OPENAI001 // The Responses client is marked experimental in the SDK.

/// <summary>
/// Tool-call ids as an agent framework sends them back: one result per call. A tool result sent twice (a retried
/// tool whose first result was kept) and two calls under one id were served, the model reading both and nobody
/// able to tell which result counted; OpenAI refuses them ("Duplicate value for 'tool_call_id'"), and so does an
/// engine a request may be relayed to. Reading a conversation's calls is also bounded: it scanned the conversation
/// once per result (Responses also copied the turn's calls once per call), so one body of 55,000 calls and results
/// cost minutes of CPU before anything was measured or billed.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ToolCallIdTests(ServerFixture server)
{
    private const string TimeSchema = """{"type":"object","properties":{"tz":{"type":"string"}},"required":["tz"],"additionalProperties":false}""";

    private static ChatCompletionOptions ChatOptions()
    {
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 4 };
        options.Tools.Add(ChatTool.CreateFunctionTool("get_time", "The time in a time zone.", BinaryData.FromString(TimeSchema)));
        return options;
    }

    private static ChatToolCall Call(string id, string tz) => ChatToolCall.CreateFunctionToolCall(id, "get_time", BinaryData.FromString($$"""{"tz":"{{tz}}"}"""));

    private static (string? Param, string Message) ErrorOf(ClientResultException error)
    {
        var body = JsonDocument.Parse(error.GetRawResponse()!.Content.ToString()).RootElement.GetProperty("error");
        return (body.GetProperty("param").GetString(), body.GetProperty("message").GetString()!);
    }

    [Fact]
    public async Task Chat_AToolResultSentTwice_Is400NamingTheSecond()
    {
        var chat = server.OpenAI.GetChatClient(ServerFixture.TinyRandom);
        List<ChatMessage> messages =
        [
            new UserChatMessage("What time is it in Bangkok?"),
            new AssistantChatMessage([Call("call_1", "Asia/Bangkok")]),
            new ToolChatMessage("call_1", "timeout"),
            new ToolChatMessage("call_1", "12:00"),
        ];

        var error = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync(messages, ChatOptions()));

        Assert.Equal(400, error.Status);
        var (param, message) = ErrorOf(error);
        Assert.Equal("messages[3].tool_call_id", param);
        Assert.Contains("messages[2] and messages[3]", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Chat_TwoCallsUnderOneId_Is400NamingTheSecondCall()
    {
        var chat = server.OpenAI.GetChatClient(ServerFixture.TinyRandom);
        List<ChatMessage> messages =
        [
            new UserChatMessage("What time is it in Bangkok and in Paris?"),
            new AssistantChatMessage([Call("call_1", "Asia/Bangkok"), Call("call_1", "Europe/Paris")]),
            new ToolChatMessage("call_1", "12:00"),
        ];

        var error = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync(messages, ChatOptions()));

        Assert.Equal(400, error.Status);
        Assert.Equal("messages[1].tool_calls[1].id", ErrorOf(error).Param);
    }

    /// <summary>An id a later answer uses again (Mistral's 9-character ids can repeat) is a new call, answered afresh.</summary>
    [Fact]
    public async Task Chat_AnIdUsedAgainByALaterAnswer_IsANewCallAndServed()
    {
        var chat = server.OpenAI.GetChatClient(ServerFixture.TinyRandom);
        List<ChatMessage> messages =
        [
            new UserChatMessage("What time is it in Bangkok?"),
            new AssistantChatMessage([Call("call_1", "Asia/Bangkok")]),
            new ToolChatMessage("call_1", "12:00"),
            new UserChatMessage("And in Paris?"),
            new AssistantChatMessage([Call("call_1", "Europe/Paris")]),
            new ToolChatMessage("call_1", "07:00"),
        ];

        var completion = (await chat.CompleteChatAsync(messages, ChatOptions())).Value;

        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.True(completion.Usage.InputTokenCount > 0);
    }

    [Fact]
    public async Task Responses_AFunctionCallOutputSentTwice_Is400NamingTheSecond()
    {
        var options = new CreateResponseOptions { Model = ServerFixture.TinyRandom, MaxOutputTokenCount = 16 };
        options.Tools.Add(ResponseTool.CreateFunctionTool("get_time", BinaryData.FromString(TimeSchema), strictModeEnabled: true, "The time in a time zone."));
        options.InputItems.Add(ResponseItem.CreateUserMessageItem("What time is it in Bangkok?"));
        options.InputItems.Add(ResponseItem.CreateFunctionCallItem("call_1", "get_time", BinaryData.FromString("""{"tz":"Asia/Bangkok"}""")));
        options.InputItems.Add(ResponseItem.CreateFunctionCallOutputItem("call_1", "timeout"));
        options.InputItems.Add(ResponseItem.CreateFunctionCallOutputItem("call_1", "12:00"));

        var error = await Assert.ThrowsAsync<ClientResultException>(() => server.OpenAI.GetResponsesClient().CreateResponseAsync(options));

        Assert.Equal(400, error.Status);
        var (param, message) = ErrorOf(error);
        Assert.Equal("input[3].call_id", param);
        Assert.Contains("input[2] and input[3]", message, StringComparison.Ordinal);
    }

    /// <summary>
    /// 20,000 calls of one answer and their outputs are read in linear work: the old reading copied the turn's calls
    /// once per call item (about 1.6 GB allocated here; 55,000 of them took over 5 minutes on a loaded 2-core machine).
    /// Allocation, not time, is asserted: it does not depend on the machine's load.
    /// </summary>
    [Fact]
    public void Responses_ManyCallsAndOutputs_AreReadWithoutWorkPerPair()
    {
        const int Calls = 20_000;
        var items = new List<object> { new { role = "user", content = "hi" } };
        items.AddRange(Enumerable.Range(0, Calls).Select(i => (object)new { type = "function_call", call_id = $"c{i}", name = "f", arguments = "{}" }));
        items.AddRange(Enumerable.Range(0, Calls).Select(i => (object)new { type = "function_call_output", call_id = $"c{i}", output = "1" }));
        var request = new Sovereign.Gateway.OpenAI.ResponsesRequest { Model = "m", Input = JsonSerializer.SerializeToElement(items) };

        var before = GC.GetAllocatedBytesForCurrentThread();
        var turns = Sovereign.Gateway.OpenAI.ResponsesTranslation.ToTurns(request);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(Calls, turns[1].ToolCalls!.Count);
        Assert.Equal(1 + 1 + Calls, turns.Count);
        Assert.True(allocated < 64L * 1024 * 1024, $"{allocated:N0} bytes allocated reading {Calls:N0} calls and outputs");
    }
}
