namespace Sovereign.Gateway.FunctionalTests;

/// <summary>Every client mistake gets a precise 4xx in OpenAI's error format, never a 5xx.</summary>
[Collection(ServerCollection.Name)]
public sealed class BadInputTests(ServerFixture server)
{
    [Theory]
    [InlineData("{\"model\":\"stories\",\"messages\":[", null)]
    [InlineData("not json at all", null)]
    [InlineData("", null)]
    [InlineData("[]", null)]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":\"hot\"}", "temperature")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":\"ten\"}", "max_tokens")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1.5}", "max_tokens")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":\"yes\"}", "stream")]
    [InlineData("{\"model\":\"stories\",\"messages\":{\"role\":\"user\"}}", "messages")]
    [InlineData("{\"model\":42,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":7}]}", "messages[0].content")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":[1,2]}", "stop")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":3}", "temperature")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":-0.5}", "temperature")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_p\":-0.01}", "top_p")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_p\":1.5}", "top_p")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_k\":-1}", "top_k")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"min_p\":2}", "min_p")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"presence_penalty\":2.5}", "presence_penalty")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"frequency_penalty\":-3}", "frequency_penalty")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":0}", "max_tokens")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_completion_tokens\":-4}", "max_completion_tokens")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":100000}", "max_tokens")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":250}", "max_tokens")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":0}", "n")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":1000}", "n")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":\"\"}", "stop")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream_options\":{\"include_usage\":true}}", "stream_options")]
    [InlineData("{\"model\":\"stories\",\"messages\":[]}", "messages")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":[]}]}", "messages[0].content")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"system\",\"content\":\"x\"},{\"role\":\"user\",\"content\":[]}]}", "messages[1].content")]
    [InlineData("{\"model\":\"stories\"}", "messages")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", "messages[0].role")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"content\":\"hi\"}]}", "messages[0].role")]
    [InlineData("{\"model\":\"stories\",\"messages\":[null]}", "messages[0]")]
    // The part itself, as Responses names an input_image part and OpenAI names a part a model cannot take (it was messages[0].content).
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is this?\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}", "messages[0].content[1].type")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logprobs\":true,\"top_logprobs\":25}", "top_logprobs")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_format\":{\"type\":\"json_schema\"}}", "response_format.json_schema")]
    // A format without its type was served as plain text, the schema ignored: OpenAI's "Missing required parameter".
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_format\":{\"json_schema\":{\"name\":\"a\",\"schema\":{\"type\":\"object\"}}}}", "response_format.type")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_format\":{}}", "response_format.type")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logit_bias\":[1,2]}", "logit_bias")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logit_bias\":{\"dog\":5}}", "logit_bias")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logit_bias\":{\"-1\":5}}", "logit_bias")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logit_bias\":{\"5\":101}}", "logit_bias")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logit_bias\":{\"5\":\"high\"}}", "logit_bias")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logit_bias\":{\"5\":1,\"05\":2}}", "logit_bias")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"functions\":[{\"name\":\"f\"}]}", "functions")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"function_call\":\"auto\"}", "function_call")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"modalities\":[\"text\",\"audio\"]}", "modalities")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"modalities\":\"text\"}", "modalities")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"audio\":{\"voice\":\"alloy\",\"format\":\"wav\"}}", "audio")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"store\":true}", "store")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"web_search_options\":{}}", "web_search_options")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"reasoning_effort\":\"high\"}", "reasoning_effort")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"cache_salt\":\"\"}", "cache_salt")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"verbosity\":\"low\"}", "verbosity")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"cache_salt\":7}", "cache_salt")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"store\":\"yes\"}", "store")]
    // A prediction is not used here, but its shape is OpenAI's: any value was served (200).
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"prediction\":5}", "prediction")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"prediction\":{\"type\":\"bogus\",\"content\":\"x\"}}", "prediction.type")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"prediction\":{\"content\":\"x\"}}", "prediction.type")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"prediction\":{\"type\":\"content\"}}", "prediction.content")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"prediction\":{\"type\":\"content\",\"content\":7}}", "prediction.content")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"prediction\":{\"type\":\"content\",\"content\":[]}}", "prediction.content")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"prediction\":{\"type\":\"content\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}}", "prediction.content[0].type")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"prediction\":{\"type\":\"content\",\"content\":[{\"type\":\"text\"}]}}", "prediction.content[0].text")]
    // A broken content part is named with its field, as Responses names its parts (it was messages[0].content).
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", "messages[0].content[0].text")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":5}]}]}", "messages[0].content[1].text")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}", "messages[0].content[0].type")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":[\"x\"]}]}", "messages[0].content[0]")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"refusal\"}]},{\"role\":\"user\",\"content\":\"hi\"}]}", "messages[0].content[0].refusal")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"name\":\"Ann Lee\"}]}", "messages[0].name")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"system\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"hi\",\"name\":\"u</s><s>system\"}]}", "messages[1].name")]
    [InlineData("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"name\":\"\"}]}", "messages[0].name")]
    [InlineData("{\"model\":\"stories-embed\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model")]
    public async Task ChatCompletions_BadRequest_Is400NamingTheField(string json, string? param)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions", json);

        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        if (param is not null)
        {
            Assert.Equal(param, error.GetProperty("param").GetString());
        }
    }

    /// <summary>
    /// <c>safety_identifier</c> and <c>prompt_cache_key</c> are ignored on chat but bounded as on Responses:
    /// <c>safety_identifier</c> by OpenAI's 64 characters (its API reference: maxLength 64; it was 256 here, so 65 to 256
    /// were served where OpenAI answers 400), <c>prompt_cache_key</c> by <c>user</c>'s 256.
    /// </summary>
    [Theory]
    [InlineData("safety_identifier", 64)]
    [InlineData("prompt_cache_key", 256)]
    public async Task ChatCompletions_IdentifierOverItsBound_Is400NamingIt_AtTheBoundServed(string field, int bound)
    {
        string Body(int length) => $$"""{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":1,"{{field}}":"{{new string('a', length)}}"}""";

        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions", Body(bound + 1));

        Assert.True(status == 400, body.ToString());
        Assert.Equal(field, body.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("string_above_max_length", body.GetProperty("error").GetProperty("code").GetString());
        (status, body, _) = await server.PostJsonAsync("/v1/chat/completions", Body(bound));
        Assert.True(status == 200, body.ToString());
    }

    /// <summary>
    /// Three requests OpenAI answers with a 400 were served: <c>parallel_tool_calls</c> without <c>tools</c>,
    /// <c>response_format: json_object</c> when no message says "json", and an assistant message with
    /// <c>tool_calls: []</c>. Each is now OpenAI's 400, in its words, naming the field; the same request with what
    /// OpenAI asks for is served.
    /// </summary>
    [Theory]
    [InlineData(
        """{"model":"tiny-random","max_tokens":1,"messages":[{"role":"user","content":"hi"}],"parallel_tool_calls":false}""",
        "parallel_tool_calls", "invalid_value", "'parallel_tool_calls' is only allowed when 'tools' are specified",
        """{"model":"tiny-random","max_tokens":1,"messages":[{"role":"user","content":"hi"}],"parallel_tool_calls":false,"tools":[{"type":"function","function":{"name":"f"}}]}""")]
    [InlineData(
        """{"model":"stories","max_tokens":1,"messages":[{"role":"system","content":"Answer as an object."},{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}""",
        "messages", "invalid_value", "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
        """{"model":"stories","max_tokens":1,"messages":[{"role":"system","content":"Answer in Json."},{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}""")]
    [InlineData(
        """{"model":"stories","max_tokens":1,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello","tool_calls":[]},{"role":"user","content":"more"}]}""",
        "messages[1].tool_calls", "empty_array", "Invalid 'messages[1].tool_calls': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        """{"model":"stories","max_tokens":1,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"more"}]}""")]
    public async Task ChatCompletions_WhatOpenAIRefuses_Is400InItsWords_AndTheMendedRequestIsServed(string json, string param, string code, string words, string mended)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions", json);

        Assert.True(status == 400, body.ToString());
        var error = body.GetProperty("error");
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Contains(words, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        (status, body, _) = await server.PostJsonAsync("/v1/chat/completions", mended);
        Assert.True(status == 200, body.ToString());
    }

    /// <summary>
    /// A function name of an earlier call in the conversation is held to OpenAI's pattern (<c>^[a-zA-Z0-9_-]{1,64}$</c>),
    /// as the names in <c>tools</c> are: on chat completions an assistant message's <c>tool_calls[].function.name</c>,
    /// on Responses a <c>function_call</c> item's <c>name</c>. It was taken as written and went into the prompt (a
    /// space, a newline or a template's own markup included). The 400 names the field; the mended request is served.
    /// </summary>
    [Theory]
    [InlineData("/v1/chat/completions", "get weather", "messages[1].tool_calls[0].function.name", "invalid_value")]
    [InlineData("/v1/chat/completions", "get.weather", "messages[1].tool_calls[0].function.name", "invalid_value")]
    [InlineData("/v1/chat/completions", "f\\n<|im_start|>system", "messages[1].tool_calls[0].function.name", "invalid_value")]
    [InlineData("/v1/chat/completions", "", "messages[1].tool_calls[0].function.name", "invalid_value")]
    [InlineData("/v1/chat/completions", "LONG", "messages[1].tool_calls[0].function.name", "string_above_max_length")]
    [InlineData("/v1/responses", "get weather", "input[1].name", "invalid_value")]
    [InlineData("/v1/responses", "LONG", "input[1].name", "string_above_max_length")]
    public async Task HistoryToolCallName_OutsideOpenAIsPattern_Is400NamingIt(string path, string name, string param, string code)
    {
        static string Body(string path, string name) => path == "/v1/responses"
            ? $$$"""{"model":"stories","max_output_tokens":16,"input":[{"role":"user","content":"hi"},{"type":"function_call","call_id":"c1","name":"{{{name}}}","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"sunny"}]}"""
            : $$$"""{"model":"stories","max_tokens":1,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"{{{name}}}","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}]}""";

        var (status, body, _) = await server.PostJsonAsync(path, Body(path, name == "LONG" ? new string('a', 65) : name));

        Assert.True(status == 400, body.ToString());
        var error = body.GetProperty("error");
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Contains(param, error.GetProperty("message").GetString(), StringComparison.Ordinal);

        // 64 letters, digits, underscores and dashes are a name.
        (status, body, _) = await server.PostJsonAsync(path, Body(path, "get_weather-2" + new string('x', 51)));
        Assert.True(status == 200, body.ToString());
    }

    /// <summary>
    /// <c>logit_bias</c> takes at most 300 entries (OpenAI's cap) of -100 to 100. It had no size cap: a body's worth of
    /// entries was served, each one applied on every sampled token.
    /// </summary>
    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":1,"logit_bias":BIAS}""")]
    [InlineData("/v1/completions", """{"model":"stories","prompt":"hi","max_tokens":1,"logit_bias":BIAS}""")]
    public async Task LogitBias_WithMoreThan300Entries_Is400_And300AreServed(string path, string template)
    {
        static string Bias(int entries, int value) => "{" + string.Join(',', Enumerable.Range(0, entries).Select(i => $"\"{i}\":{value}")) + "}";

        var (status, body, _) = await server.PostJsonAsync(path, template.Replace("BIAS", Bias(301, -1), StringComparison.Ordinal));

        Assert.True(status == 400, body.ToString());
        var error = body.GetProperty("error");
        Assert.Equal("logit_bias", error.GetProperty("param").GetString());
        Assert.Contains("301", error.GetProperty("message").GetString(), StringComparison.Ordinal);

        var (ok, served, _) = await server.PostJsonAsync(path, template.Replace("BIAS", Bias(300, 100), StringComparison.Ordinal));
        Assert.True(ok == 200, served.ToString());

        var (outOfRange, refused, _) = await server.PostJsonAsync(path, template.Replace("BIAS", """{"5":-100.5}""", StringComparison.Ordinal));
        Assert.Equal(400, outOfRange);
        Assert.Equal("logit_bias", refused.GetProperty("error").GetProperty("param").GetString());
    }

    /// <summary>OpenAI's defaults are served as without them: verbosity medium, a cache_salt.</summary>
    [Theory]
    [InlineData("""{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":1,"verbosity":"medium"}""")]
    [InlineData("""{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":1,"cache_salt":"user-1"}""")]
    public async Task ChatCompletions_DefaultVerbosityAndACacheSalt_AreServed(string json)
    {
        var (status, _, _) = await server.PostJsonAsync("/v1/chat/completions", json);

        Assert.Equal(200, status);
    }

    [Fact]
    public async Task ChatCompletions_StoreFalse_IsServed_AsWithoutIt()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions",
            "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1,\"store\":false}");

        Assert.True(status == 200, body.ToString());
    }

    [Theory]
    [InlineData("[]", "an array")]
    [InlineData("[{\"model\":\"stories\"}]", "an array")]
    [InlineData("\"hi\"", "a string")]
    [InlineData("42", "a number")]
    [InlineData("true", "a boolean")]
    [InlineData("null", "null")]
    public async Task NonObjectBody_Is400SayingSo_OnEveryEndpoint_WithoutNamingInternalTypes(string json, string got)
    {
        // The serializer's own message named the class it was reading into: "could not be converted to
        // Sovereign.Gateway.OpenAI.ChatCompletionRequest".
        foreach (var path in new[] { "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/tokenize", "/detokenize", "/v1/language/detect" })
        {
            var (status, body, _) = await server.PostJsonAsync(path, json);

            Assert.Equal(400, status);
            var error = body.GetProperty("error");
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal("invalid_type", error.GetProperty("code").GetString());
            Assert.Equal($"The request body must be a JSON object; got {got}.", error.GetProperty("message").GetString());
        }
    }

    [Theory]
    [InlineData("{\"model\":\"stories\"}", "prompt")]
    [InlineData("{\"model\":\"stories\",\"prompt\":[]}", "prompt")]
    [InlineData("{\"model\":\"stories\",\"prompt\":[[]]}", "prompt[0]")]
    [InlineData("{\"model\":\"stories\",\"prompt\":{\"a\":1}}", "prompt")]
    [InlineData("{\"model\":\"stories\",\"prompt\":[1, 99999]}", "prompt[1]")]
    [InlineData("{\"model\":\"stories\",\"prompt\":[[1, 2], [3, -1]]}", "prompt[1][1]")]
    [InlineData("{\"model\":\"stories\",\"prompt\":[1, 2.5]}", "prompt[1]")]
    [InlineData("{\"model\":\"stories\",\"prompt\":[1, 1e400]}", "prompt[1]")]
    [InlineData("{\"model\":\"stories\",\"prompt\":\"hi\",\"max_tokens\":0}", "max_tokens")]
    [InlineData("{\"model\":\"stories\",\"prompt\":\"hi\",\"logprobs\":21}", "logprobs")]
    public async Task Completions_BadRequest_Is400NamingTheField(string json, string param)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/completions", json);

        Assert.Equal(400, status);
        Assert.Equal(param, body.GetProperty("error").GetProperty("param").GetString());
    }

    [Theory]
    [InlineData("{\"model\":\"all-MiniLM-L6-v2\"}", "input")]
    [InlineData("{\"model\":\"all-MiniLM-L6-v2\",\"input\":[]}", "input")]
    [InlineData("{\"model\":\"all-MiniLM-L6-v2\",\"input\":[\"ok\", 3]}", "input[1]")]
    [InlineData("{\"model\":\"all-MiniLM-L6-v2\",\"input\":\"\"}", "input")]
    [InlineData("{\"model\":\"all-MiniLM-L6-v2\",\"input\":\"hi\",\"encoding_format\":\"hex\"}", "encoding_format")]
    [InlineData("{\"model\":\"all-MiniLM-L6-v2\",\"input\":\"hi\",\"dimensions\":12}", "dimensions")]
    [InlineData("{\"model\":\"stories\",\"input\":\"hi\"}", "model")]
    public async Task Embeddings_BadRequest_Is400NamingTheField(string json, string param)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/embeddings", json);

        Assert.Equal(400, status);
        Assert.Equal(param, body.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Embeddings_InputLongerThanContext_Is400ContextLengthExceeded()
    {
        var longText = string.Join(' ', Enumerable.Repeat("the dog ran to the park", 400));
        var (status, body, _) = await server.PostJsonAsync("/v1/embeddings", $$"""{"model":"stories-embed","input":["short","{{longText}}"]}""");

        Assert.Equal(400, status);
        Assert.Equal("context_length_exceeded", body.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("input[1]", body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task OversizedBody_Is413()
    {
        var big = new string('a', (int)ServerFixture.BodyLimit + 10);
        var (status, body, response) = await server.PostJsonAsync("/v1/chat/completions",
            $$"""{"model":"stories","messages":[{"role":"user","content":"{{big}}"}]}""");

        Assert.Equal(413, status);
        Assert.Equal("request_too_large", body.GetProperty("error").GetProperty("code").GetString());
        // JSON in UTF-8, as every JSON answer (JsonContentTypeTests): it said application/json alone.
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        // Kestrel's refusal, answered in the pipeline: OpenAI's headers as on every /v1 answer.
        Assert.Equal("2020-10-01", response.Headers.GetValues("openai-version").Single());
        Assert.True(long.TryParse(response.Headers.GetValues("openai-processing-ms").Single(), out _));
    }

    [Fact]
    public async Task UnknownModel_Is404ModelNotFound()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions",
            """{"model":"gpt-17","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(404, status);
        Assert.Equal("model_not_found", body.GetProperty("error").GetProperty("code").GetString());
        // OpenAI's words, then what to do: a misspelt model id said only that it did not exist.
        Assert.EndsWith("does not exist or you do not have access to it. GET /v1/models lists the models you can use.", body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("model", body.GetProperty("error").GetProperty("param").GetString());
    }

    /// <summary>
    /// A model id with a zero-width or other invisible character ("stories" and a U+200B) was a 404 "does not exist",
    /// echoed so it read as 'stories': the client saw its model called missing. No model id may hold one, so it is the
    /// 400 naming the rule, on every endpoint that looks a model up.
    /// </summary>
    [Theory]
    [InlineData("/v1/chat/completions", "stories\u200B", "200B")]
    [InlineData("/v1/chat/completions", "\uFEFFstories", "FEFF")]
    [InlineData("/v1/completions", "sto\u2060ries", "2060")]
    [InlineData("/v1/embeddings", "stories\u200D", "200D")]
    public async Task ModelWithAnInvisibleCharacter_Is400NamingTheRule(string path, string model, string codePoint)
    {
        var body = path switch
        {
            "/v1/embeddings" => $$"""{"model":"{{model}}","input":"hi"}""",
            "/v1/completions" => $$"""{"model":"{{model}}","prompt":"hi"}""",
            _ => $$"""{"model":"{{model}}","messages":[{"role":"user","content":"hi"}]}""",
        };

        var (status, answer, _) = await server.PostJsonAsync(path, body);

        Assert.Equal(400, status);
        var error = answer.GetProperty("error");
        Assert.Equal(("model", "invalid_value"), (error.GetProperty("param").GetString(), error.GetProperty("code").GetString()));
        Assert.StartsWith("model must not contain invisible characters: Unicode format characters", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains($"got U+{codePoint} in '", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain((char)Convert.ToInt32(codePoint, 16), error.GetProperty("message").GetString()!);
    }

    /// <summary>
    /// LiteLLM's proxy answers its endpoints with and without /v1, and its documentation points SDKs at the root: a
    /// client moved here as configured got "Unknown request URL: POST /chat/completions." and nothing more.
    /// </summary>
    [Theory]
    [InlineData("/chat/completions")]
    [InlineData("/embeddings")]
    [InlineData("/models")]
    public async Task OpenAIPath_WithoutV1_Is404SayingToAddV1(string path)
    {
        var (status, body, _) = await server.PostJsonAsync(path, """{"model":"x","messages":[]}""");

        Assert.Equal(404, status);
        var error = body.GetProperty("error");
        Assert.Equal("unknown_url", error.GetProperty("code").GetString());
        Assert.EndsWith($"The OpenAI API is served under /v1: end the client's base URL with /v1 (this endpoint is /v1{path}).", error.GetProperty("message").GetString(), StringComparison.Ordinal);

        (_, body, _) = await server.PostJsonAsync("/chatty/completions", "{}");
        Assert.Equal("Unknown request URL: POST /chatty/completions.", body.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task UnknownPath_Is404InOpenAIFormat()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/engines/davinci/completions", "{}");

        Assert.Equal(404, status);
        Assert.Equal("unknown_url", body.GetProperty("error").GetProperty("code").GetString());
    }
}
