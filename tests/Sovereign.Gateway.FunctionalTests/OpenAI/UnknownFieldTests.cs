using System.Text.Json;
using OpenAI.Chat;

namespace Sovereign.Gateway.FunctionalTests.OpenAI;

/// <summary>
/// A /v1 body names only fields the endpoint knows: OpenAI's own (honoured, refused by name, or accepted as ignorable),
/// the engine extensions this server honours, and those the operator accepts. Anything else is OpenAI's 400
/// <c>unknown_parameter</c> naming it: a typo (<c>temperatur</c>) used to be served as if it were absent.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class UnknownFieldTests(ServerFixture server)
{
    private const string Chat = "\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"Once\"}],\"max_tokens\":2";
    private const string Completion = "\"model\":\"stories\",\"prompt\":\"Once\",\"max_tokens\":2";
    private const string Embedding = "\"model\":\"stories-embed\",\"input\":\"Once\"";
    private const string Response = "\"model\":\"stories\",\"input\":\"Once\",\"max_output_tokens\":16";

    [Theory]
    [InlineData("/v1/chat/completions", Chat + ",\"temperatur\":0.5", "temperatur")]
    [InlineData("/v1/chat/completions", Chat + ",\"max_token\":5", "max_token")]
    [InlineData("/v1/chat/completions", Chat + ",\"stream\":true,\"stream_option\":{\"include_usage\":true}", "stream_option")]
    [InlineData("/v1/completions", Completion + ",\"max_token\":5", "max_token")]
    [InlineData("/v1/completions", Completion + ",\"tools\":[]", "tools")]
    [InlineData("/v1/embeddings", Embedding + ",\"dimension\":8", "dimension")]
    [InlineData("/v1/responses", Response + ",\"max_tokens\":5", "max_tokens")]
    [InlineData("/v1/responses", Response + ",\"messages\":[]", "messages")]
    public async Task UnknownField_Is400UnknownParameterNamingIt(string path, string fields, string param)
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
    [InlineData("/v1/chat/completions", Chat + ",\"user\":\"u-1\",\"metadata\":{\"k\":\"v\"},\"service_tier\":\"auto\",\"store\":false,\"prompt_cache_key\":\"p\",\"prompt_cache_retention\":\"24h\",\"safety_identifier\":\"s\",\"prediction\":{\"type\":\"content\",\"content\":\"Once\"}")]
    [InlineData("/v1/chat/completions", Chat + ",\"prediction\":{\"type\":\"content\",\"content\":[{\"type\":\"text\",\"text\":\"Once\"},{\"type\":\"text\",\"text\":\" upon\"}]}")]
    [InlineData("/v1/chat/completions", Chat + ",\"top_k\":5,\"min_p\":0.05,\"cache_salt\":\"a\",\"cache_prompt\":false")]
    [InlineData("/v1/chat/completions", Chat + ",\"x_gateway_tag\":{\"any\":[1]}")]
    [InlineData("/v1/completions", Completion + ",\"user\":\"u-1\",\"top_k\":5,\"min_p\":0.05,\"echo\":false,\"best_of\":1,\"cache_prompt\":true")]
    [InlineData("/v1/embeddings", Embedding + ",\"user\":\"u-1\",\"encoding_format\":\"float\"")]
    [InlineData("/v1/responses", Response + ",\"user\":\"u-1\",\"metadata\":{\"k\":\"v\"},\"service_tier\":\"default\",\"store\":false,\"prompt_cache_key\":\"p\",\"prompt_cache_retention\":\"in-memory\",\"safety_identifier\":\"s\",\"truncation\":\"disabled\",\"parallel_tool_calls\":true")]
    [InlineData("/v1/responses", Response + ",\"stream\":true,\"stream_options\":{\"include_obfuscation\":false}")]
    public async Task KnownIgnorableHonouredAndOperatorAcceptedFields_AreServed(string path, string fields)
    {
        // Raw, since a streamed answer is not one JSON document.
        using var response = await server.Http.PostAsync(path, new StringContent("{" + fields + "}", System.Text.Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.True((int)response.StatusCode == 200, $"{path}: {(int)response.StatusCode} {body}");
    }

    [Theory]
    [InlineData("/v1/chat/completions", Chat + ",\"repetition_penalty\":1.1", "repetition_penalty")]
    [InlineData("/v1/chat/completions", Chat + ",\"chat_template_kwargs\":{\"enable_thinking\":false}", "chat_template_kwargs")]
    [InlineData("/v1/completions", Completion + ",\"repeat_penalty\":1.1", "repeat_penalty")]
    [InlineData("/v1/completions", Completion + ",\"ignore_eos\":true", "ignore_eos")]
    [InlineData("/v1/chat/completions", Chat + ",\"service_tier\":\"fastest\"", "service_tier")]
    // Ignorable, but held to OpenAI's values as service_tier is: these were served as if valid.
    [InlineData("/v1/chat/completions", Chat + ",\"prompt_cache_retention\":\"forever\"", "prompt_cache_retention")]
    [InlineData("/v1/responses", Response + ",\"prompt_cache_retention\":\"1y\"", "prompt_cache_retention")]
    [InlineData("/v1/responses", Response + ",\"max_tool_calls\":2", "max_tool_calls")]
    [InlineData("/v1/responses", Response + ",\"context_management\":[{\"type\":\"compaction\"}]", "context_management")]
    public async Task KnownFieldThisServerCannotHonour_Is400NamingIt(string path, string fields, string param)
    {
        var (status, body, _) = await server.PostJsonAsync(path, "{" + fields + "}");

        Assert.True(status == 400, $"{path}: {status} {body}");
        var error = body.GetProperty("error");
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.NotEqual("unknown_parameter", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task OfficialSdk_WithEveryOptionItSends_IsServed()
    {
        var options = new ChatCompletionOptions
        {
            MaxOutputTokenCount = 3,
            Temperature = 0.5f,
            TopP = 0.9f,
            PresencePenalty = 0.1f,
            FrequencyPenalty = 0.1f,
            EndUserId = "end-user",
            StoredOutputEnabled = false,
            StopSequences = { "zzz" },
            IncludeLogProbabilities = true,
            TopLogProbabilityCount = 2,
        };
        options.Metadata.Add("trace", "t-1");

        var completion = (await server.OpenAI.GetChatClient(ServerFixture.Stories).CompleteChatAsync([new UserChatMessage("Once")], options)).Value;
        Assert.Equal(3, completion.Usage.OutputTokenCount);

        var streamed = 0;
        await foreach (var update in server.OpenAI.GetChatClient(ServerFixture.Stories).CompleteChatStreamingAsync([new UserChatMessage("Once")], options))
        {
            streamed += update.Usage?.OutputTokenCount ?? 0;
        }

        Assert.Equal(3, streamed);
    }

    [Fact]
    public async Task UnknownField_IsRefusedBeforeAnyWorkOrMoney()
    {
        // Refused while the body is read: the model named here does not even exist, and the unknown field is what is named.
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions",
            """{"model":"no-such-model","messages":[{"role":"user","content":"Once"}],"temprature":0}""");

        Assert.Equal(400, status);
        Assert.Equal("temprature", body.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal(JsonValueKind.Object, body.ValueKind);
    }
}
