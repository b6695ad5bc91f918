using System.Text.Json;
using OpenAI.Chat;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.OpenAI;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.OpenAI;

/// <summary>
/// Inside a /v1 body's objects (messages, content parts, tools, tool_choice, response_format, stream_options,
/// Responses input items and text) a field OpenAI does not take is OpenAI's 400 <c>unknown_parameter</c> naming its
/// path, as at the top level: a misspelt <c>messages[0].contnet</c> or <c>tools[0].function.parmeters</c> used to be
/// served as if it were absent. What SDKs and frameworks echo back from an answer still passes.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class NestedFieldTests(ServerFixture server)
{
    private const string Chat = "\"model\":\"stories\",\"max_tokens\":2";
    private const string Response = "\"model\":\"stories\",\"max_output_tokens\":16";

    /// <summary>Tools are rendered into the prompt: the random model has room for them (512 tokens).</summary>
    private const string ToolChat = "\"model\":\"tiny-random\",\"max_tokens\":2";
    private const string ToolResponse = "\"model\":\"tiny-random\",\"max_output_tokens\":16";
    private const string User = "{\"role\":\"user\",\"content\":\"Once\"}";
    private const string Call = "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}";
    private const string Tool = "{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{}}}}";

    [Theory]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[{\"role\":\"user\",\"contnet\":\"Once\"}]", "messages[0].contnet")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[{\"rol\":\"user\",\"content\":\"Once\"}]", "messages[0].rol")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[{\"role\":\"user\",\"content\":\"Once\",\"tool_call_id\":\"call_1\"}]", "messages[0].tool_call_id")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief\",\"refusal\":null}," + User + "]", "messages[0].refusal")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"txt\":\"Once\"}]}]", "messages[0].content[0].txt")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Once\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/a.png\",\"detial\":\"low\"}}]}]", "messages[0].content[1].image_url.detial")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[" + User + ",{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"argument\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"1\"}]", "messages[1].tool_calls[0].function.argument")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[" + User + "],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parmeters\":{\"type\":\"object\"}}}]", "tools[0].function.parmeters")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[" + User + "],\"tools\":[{\"type\":\"function\",\"functon\":{\"name\":\"f\"}}]", "tools[0].functon")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[" + User + "],\"tools\":[" + Tool + "],\"tool_choice\":{\"type\":\"function\",\"function\":{\"nam\":\"f\"}}", "tool_choice.function.nam")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[" + User + "],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"shcema\":{\"type\":\"object\"}}}", "response_format.json_schema.shcema")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[" + User + "],\"response_format\":{\"type\":\"json_object\",\"schema\":{}}", "response_format.schema")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[" + User + "],\"stream\":true,\"stream_options\":{\"include_usge\":true}", "stream_options.include_usge")]
    [InlineData("/v1/completions", Chat + ",\"prompt\":\"Once\",\"stream\":true,\"stream_options\":{\"include_usge\":true}", "stream_options.include_usge")]
    [InlineData("/v1/responses", Response + ",\"input\":[{\"role\":\"user\",\"contnet\":\"Once\"}]", "input[0].contnet")]
    [InlineData("/v1/responses", Response + ",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"txt\":\"Once\"}]}]", "input[0].content[0].txt")]
    [InlineData("/v1/responses", Response + ",\"input\":[{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\",\"argument\":\"{}\"}]", "input[0].argument")]
    [InlineData("/v1/responses", Response + ",\"input\":\"Once\",\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parmeters\":{}}]", "tools[0].parmeters")]
    [InlineData("/v1/responses", Response + ",\"input\":\"Once\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"x\",\"shcema\":{}}}", "text.format.shcema")]
    [InlineData("/v1/responses", Response + ",\"input\":\"Once\",\"text\":{\"formt\":{\"type\":\"text\"}}", "text.formt")]
    [InlineData("/v1/responses", Response + ",\"input\":\"Once\",\"stream\":true,\"stream_options\":{\"include_usage\":true}", "stream_options.include_usage")]
    [InlineData("/v1/responses", Response + ",\"input\":\"Once\",\"reasoning\":{\"efort\":\"low\"}", "reasoning.efort")]
    [InlineData("/tokenize", "\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"contnet\":\"Once\"}]", "messages[0].contnet")]
    [InlineData("/tokenize", "\"model\":\"stories\",\"contnet\":\"Once\"", "contnet")]
    [InlineData("/detokenize", "\"model\":\"stories\",\"token\":[1,2]", "token")]
    [InlineData("/v1/language/detect", "\"inputs\":\"Once upon a time\"", "inputs")]
    public async Task UnknownNestedField_Is400UnknownParameterNamingItsPath(string path, string fields, string param)
    {
        var (status, body, _) = await server.PostJsonAsync(path, "{" + fields + "}");

        Assert.True(status == 400, $"{path}: {status} {body}");
        var error = body.GetProperty("error");
        Assert.Equal($"Unknown parameter: '{param}'.", error.GetProperty("message").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal("unknown_parameter", error.GetProperty("code").GetString());
    }

    [Theory]
    // An assistant message as the Python SDK dumps the answer's message, a streamed call's index, a vLLM's reasoning.
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[" + User + ",{\"role\":\"assistant\",\"content\":\"Upon\",\"refusal\":null,\"annotations\":[],\"audio\":null,\"function_call\":null,\"tool_calls\":null,\"reasoning_content\":\"hm\",\"name\":\"bot\"}," + User + "]")]
    [InlineData("/v1/chat/completions", ToolChat + ",\"messages\":[" + User + ",{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"name\":\"f\",\"content\":[{\"type\":\"text\",\"text\":\"1\"}]}],\"tools\":[" + Tool + "]")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"Be brief\",\"prompt_cache_breakpoint\":{\"mode\":\"explicit\"}}],\"name\":\"ops\"},{\"role\":\"user\",\"content\":\"Once\",\"name\":\"u\"}]")]
    [InlineData("/v1/chat/completions", ToolChat + ",\"messages\":[" + User + "],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"d\",\"strict\":true,\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"description\":\"any key of a schema\"}},\"additionalProperties\":false}}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}}")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[" + User + "],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"description\":\"d\",\"strict\":true,\"schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},\"required\":[\"a\"],\"additionalProperties\":false}}}")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[" + User + "],\"stream\":true,\"stream_options\":{\"include_usage\":true,\"include_obfuscation\":false}")]
    [InlineData("/v1/completions", Chat + ",\"prompt\":\"Once\",\"response_format\":{\"type\":\"text\"},\"stream\":true,\"stream_options\":{\"include_usage\":true,\"include_obfuscation\":true}")]
    // The operator's accepted nested path (ServerFixture): an Anthropic-style cache marker on a content part.
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Once\",\"cache_control\":{\"type\":\"ephemeral\",\"any\":1}}]}]")]
    // A response's output items sent back as input, as the SDKs do.
    [InlineData("/v1/responses", Response + ",\"input\":[{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"Once\"}],\"status\":\"completed\"},{\"type\":\"message\",\"id\":\"msg_1\",\"status\":\"completed\",\"role\":\"assistant\",\"phase\":\"final_answer\",\"content\":[{\"type\":\"output_text\",\"text\":\"Upon\",\"annotations\":[],\"logprobs\":[]}]},{\"role\":\"user\",\"content\":\"Then\"}]")]
    [InlineData("/v1/responses", ToolResponse + ",\"input\":[{\"role\":\"user\",\"content\":\"Once\"},{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\",\"status\":\"completed\"},{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"1\",\"status\":\"completed\"}],\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"description\":\"d\",\"strict\":false,\"parameters\":{\"type\":\"object\",\"properties\":{}}}],\"tool_choice\":{\"type\":\"function\",\"name\":\"f\"}")]
    [InlineData("/v1/responses", Response + ",\"input\":\"Once\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"x\",\"description\":\"d\",\"strict\":true,\"schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},\"required\":[\"a\"],\"additionalProperties\":false}},\"verbosity\":\"medium\"}")]
    [InlineData("/tokenize", "\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"Once\",\"name\":\"u\"}]")]
    [InlineData("/v1/language/detect", "\"input\":[\"Once upon a time\"]")]
    public async Task WhatOpenAIAcceptsAndClientsEchoBack_IsServed(string path, string fields)
    {
        // Raw, since a streamed answer is not one JSON document.
        using var response = await server.Http.PostAsync(path, new StringContent("{" + fields + "}", System.Text.Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.True((int)response.StatusCode == 200, $"{path}: {(int)response.StatusCode} {body}");
    }

    [Theory]
    // An operator-accepted nested field is accepted at its path only: not on the message itself.
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[{\"role\":\"user\",\"content\":\"Once\",\"cache_control\":{\"type\":\"ephemeral\"}}]", "messages[0].cache_control", "unknown_parameter")]
    // A variant this server does not run is named by its tag, not by the fields that go with it.
    [InlineData("/v1/responses", Response + ",\"input\":\"Once\",\"tools\":[{\"type\":\"web_search\",\"search_context_size\":\"low\"}]", "tools[0].type", "invalid_value")]
    [InlineData("/v1/chat/completions", Chat + ",\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"1\"}]", "messages[0].role", "invalid_value")]
    // OpenAI's custom tools (free-form input) are real fields this server does not run: unsupported, not a bad value.
    [InlineData("/v1/chat/completions", ToolChat + ",\"messages\":[" + User + "],\"tools\":[{\"type\":\"custom\",\"custom\":{\"name\":\"f\",\"description\":\"d\",\"format\":{\"type\":\"text\"}}}]", "tools[0].type", "unsupported_parameter")]
    [InlineData("/v1/chat/completions", ToolChat + ",\"messages\":[" + User + "],\"tools\":[" + Tool + "],\"tool_choice\":{\"type\":\"custom\",\"custom\":{\"name\":\"f\"}}", "tool_choice.type", "unsupported_parameter")]
    // A template field of vLLM's /tokenize is named as an engine extension, not as a typo.
    [InlineData("/tokenize", "\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"Once\"}],\"add_generation_prompt\":true", "add_generation_prompt", "unsupported_parameter")]
    public async Task RefusedNestedField_NamesWhatIsWrong(string path, string fields, string param, string code)
    {
        var (status, body, _) = await server.PostJsonAsync(path, "{" + fields + "}");

        Assert.True(status == 400, $"{path}: {status} {body}");
        Assert.Equal(param, body.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal(code, body.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task OfficialSdk_SendsAnAnswerBackWithItsRefusal_AndIsServed()
    {
        var client = server.OpenAI.GetChatClient(ServerFixture.Stories);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 2 };
        var first = (await client.CompleteChatAsync([new UserChatMessage("Once")], options)).Value;

        // The SDK's own assistant message made from the answer, with a refusal as a refusing model's would carry.
        var echoed = new AssistantChatMessage(first) { Refusal = "I cannot help with that." };
        var second = (await client.CompleteChatAsync([new UserChatMessage("Once"), echoed, new UserChatMessage("Then")], options)).Value;

        Assert.Equal(2, second.Usage.OutputTokenCount);
    }

    /// <summary>
    /// OpenAI's assistant message takes content parts of type <c>text</c> or <c>refusal</c> (the SDKs' refusal part); an
    /// assistant turn sent back with its refusal as a part was a 400 "this model accepts text only". The refusal is what
    /// the assistant said, so it is read as its text (as vLLM and this server's Responses input read it); a user
    /// message still may not carry one.
    /// </summary>
    [Fact]
    public async Task OfficialSdk_AssistantRefusalPart_IsReadAsTheAssistantsText()
    {
        var client = server.OpenAI.GetChatClient(ServerFixture.Stories);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 2 };
        const string Refusal = "I cannot help with that.";

        var withPart = (await client.CompleteChatAsync(
            [new UserChatMessage("Once"), new AssistantChatMessage([ChatMessageContentPart.CreateRefusalPart(Refusal)]), new UserChatMessage("Then")], options)).Value;
        var withText = (await client.CompleteChatAsync(
            [new UserChatMessage("Once"), new AssistantChatMessage(Refusal), new UserChatMessage("Then")], options)).Value;

        Assert.Equal(withText.Usage.InputTokenCount, withPart.Usage.InputTokenCount);

        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions",
            "{" + Chat + ",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"refusal\",\"refusal\":\"no\"}]}]}");
        Assert.True(status == 400, body.ToString());
        Assert.Equal("messages[0].content[1].type", body.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task UnknownNestedField_IsRefusedBeforeAnyWorkOrMoney()
    {
        using var admin = server.AdminClient();
        async Task<long> RequestsAsync() =>
            JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/usage?tenant=anonymous")).RootElement.GetProperty("data").EnumerateArray()
                .Sum(row => row.GetProperty("requests").GetInt64());

        var before = await RequestsAsync();
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions",
            """{"model":"stories","max_tokens":4,"messages":[{"role":"user","content":"Once"},{"role":"assistant","content":"Upon","refusl":null},{"role":"user","content":"Then"}]}""");
        var (streamStatus, _, _) = await server.PostJsonAsync("/v1/responses",
            """{"model":"stories","stream":true,"input":[{"role":"user","content":[{"type":"input_text","text":"Once","cache_control":{}}]}]}""");

        Assert.Equal(400, status);
        Assert.Equal("messages[1].refusl", body.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal(400, streamStatus);
        Assert.Equal(before, await RequestsAsync());
    }

    [Fact]
    public void RelayedWork_IsNotCheckedAgainOnTheNode()
    {
        // The gateway checked the body against its own settings; a node with other settings must not refuse it.
        var options = new SovereignOptions();
        var relayed = new Caller(ClusterRelay.RelayTenant, null, null, ClusterRelay.RelayTenant);
        var tenant = new Caller("th-hospital", "key-1", null, "default");

        Assert.Null(RequestFields.For<ChatCompletionRequest>(relayed, options));
        Assert.Null(RequestFields.For<ResponsesRequest>(relayed, options));
        Assert.NotNull(RequestFields.For<ChatCompletionRequest>(tenant, options));
        Assert.Null(RequestFields.For<ChatCompletionRequest>(tenant, new SovereignOptions { AcceptedRequestFields = ["*"] }));
    }

    [Theory]
    [InlineData("messages..cache_control")]
    [InlineData("messages.*.cache_control")]
    [InlineData("messages[0].cache_control")]
    public async Task AcceptedRequestFields_AMalformedPath_StopsTheStart(string entry)
    {
        var message = await StartFailure.WithSovereignSectionAsync($$"""{"AcceptedRequestFields":["{{entry}}"]}""");

        Assert.Contains($"Sovereign:AcceptedRequestFields has '{entry}'", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AcceptedRequestFields_Star_AcceptsAnyFieldAtAnyDepth()
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-star-").FullName;
        try
        {
            await using var app = ServeCommand.Build(new ServeSettings
            {
                Models = [new ModelOptions { Id = ServerFixture.Stories, Path = TestModels.Stories260K, ContextLength = 256, Threads = 1 }],
                Urls = "http://127.0.0.1:0",
                DataDirectory = directory,
                Overrides = new Dictionary<string, string?> { ["Sovereign:AcceptedRequestFields:0"] = "*" },
            }, []);
            await app.StartAsync();
            using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };

            using var response = await http.PostAsync("/v1/chat/completions", new StringContent(
                """{"model":"stories","max_tokens":2,"vendor_flag":1,"messages":[{"role":"user","content":[{"type":"text","text":"Once","cache_control":{}}],"x_trace":"t"}],"stream_options":null}""",
                System.Text.Encoding.UTF8, "application/json"));

            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            await app.StopAsync();
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
