using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// The legacy completions API's <c>echo</c> with prompt logprobs, as lm-evaluation-harness's log-likelihood tasks send
/// it (<c>echo: true, logprobs: 1, max_tokens: 1</c>, or <c>max_tokens: 0</c>), over raw HTTP: the official .NET SDK
/// has no legacy completions client (its <c>LegacyCompletionClient</c> is internal). Before, echo was a 400.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class CompletionsEchoTests(ServerFixture server)
{
    private const string Prompt = "Once upon a time, there was a little dog";

    private int[] Tokens(string text) => server.Batcher(ServerFixture.Stories).Model.Tokenize(text);

    private sealed record Logprobs(List<string> Tokens, List<float?> Values, List<Dictionary<string, float>?> Tops, List<int> Offsets);

    private static Logprobs Read(JsonElement logprobs) => new(
        [.. logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!)],
        [.. logprobs.GetProperty("token_logprobs").EnumerateArray().Select(t => t.ValueKind == JsonValueKind.Null ? (float?)null : t.GetSingle())],
        [.. logprobs.GetProperty("top_logprobs").EnumerateArray().Select(t => t.ValueKind == JsonValueKind.Null
            ? null : t.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetSingle()))],
        [.. logprobs.GetProperty("text_offset").EnumerateArray().Select(t => t.GetInt32())]);

    [Fact]
    public async Task Echo_MaxTokensZero_ReturnsThePromptWithEachTokensLogprob_AndBillsThePromptOnly()
    {
        var (status, body, response) = await server.PostJsonAsync("/v1/completions",
            $$"""{"model":"stories","prompt":"{{Prompt}}","echo":true,"logprobs":2,"max_tokens":0,"temperature":0}""");

        Assert.Equal(200, status);
        var choice = Assert.Single(body.GetProperty("choices").EnumerateArray());
        Assert.Equal(Prompt, choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var logprobs = Read(choice.GetProperty("logprobs"));
        var promptTokens = Tokens(Prompt).Length;
        Assert.Equal(promptTokens, logprobs.Tokens.Count);
        Assert.Equal(promptTokens, logprobs.Values.Count);
        Assert.Equal(promptTokens, logprobs.Tops.Count);
        Assert.Equal(promptTokens, logprobs.Offsets.Count);

        // The first token is conditioned on nothing (null, as OpenAI and vLLM write it); each later one is scored.
        Assert.Null(logprobs.Values[0]);
        Assert.Null(logprobs.Tops[0]);
        Assert.Equal(0, logprobs.Offsets[0]);
        for (var i = 1; i < promptTokens; i++)
        {
            Assert.InRange(logprobs.Values[i]!.Value, -9999f, 0f);
            Assert.True(logprobs.Offsets[i] > logprobs.Offsets[i - 1], $"text_offset does not increase at {i}");
            Assert.Equal(logprobs.Offsets[i - 1] + logprobs.Tokens[i - 1].Length, logprobs.Offsets[i]);

            // Up to logprobs + 1 alternatives: the two most likely, and the prompt's own token whatever its rank.
            var top = logprobs.Tops[i]!;
            Assert.InRange(top.Count, 2, 3);
            Assert.Equal(logprobs.Values[i], top[logprobs.Tokens[i]]);
        }

        Assert.Equal(Prompt, string.Concat(logprobs.Tokens.Skip(1)).TrimStart());
        var usage = body.GetProperty("usage");
        Assert.Equal((promptTokens, 0, promptTokens),
            (usage.GetProperty("prompt_tokens").GetInt32(), usage.GetProperty("completion_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32()));
        var record = await server.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.NotNull(record);
        Assert.Equal((UsageOutcome.Completed, promptTokens, 0), (record.Outcome, record.PromptTokens, record.CompletionTokens));
    }

    [Fact]
    public async Task Echo_MaxTokensOne_AsLmEvalSendsIt_ScoresThePromptThenTheGeneratedToken()
    {
        var (_, scoredOnly, _) = await server.PostJsonAsync("/v1/completions",
            $$"""{"model":"stories","prompt":"{{Prompt}}","echo":true,"logprobs":1,"max_tokens":0,"temperature":0}""");
        var (_, plain, _) = await server.PostJsonAsync("/v1/completions",
            $$"""{"model":"stories","prompt":"{{Prompt}}","max_tokens":1,"temperature":0,"logprobs":1}""");
        var (status, body, _) = await server.PostJsonAsync("/v1/completions",
            $$"""{"model":"stories","prompt":"{{Prompt}}","echo":true,"logprobs":1,"max_tokens":1,"temperature":0,"seed":1234}""");

        Assert.Equal(200, status);
        var choice = body.GetProperty("choices")[0];
        var generated = plain.GetProperty("choices")[0].GetProperty("text").GetString();
        Assert.Equal(Prompt + generated, choice.GetProperty("text").GetString());
        var logprobs = Read(choice.GetProperty("logprobs"));
        var prompt = Read(scoredOnly.GetProperty("choices")[0].GetProperty("logprobs"));
        var promptTokens = Tokens(Prompt).Length;
        Assert.Equal(promptTokens + 1, logprobs.Tokens.Count);
        Assert.Equal(prompt.Tokens, logprobs.Tokens[..promptTokens]);
        Assert.Equal(prompt.Values, logprobs.Values[..promptTokens]);
        Assert.Equal(Read(plain.GetProperty("choices")[0].GetProperty("logprobs")).Values[0], logprobs.Values[^1]);

        // lm-eval's reading: the sum over the continuation's tokens, and whether each was the greedy choice.
        for (var i = 1; i < logprobs.Tokens.Count; i++)
        {
            Assert.True(logprobs.Values[i] <= logprobs.Tops[i]!.Values.Max());
        }

        Assert.Equal(logprobs.Values[^1], logprobs.Tops[^1]!.Values.Max());
        Assert.Equal((promptTokens, 1), (body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), body.GetProperty("usage").GetProperty("completion_tokens").GetInt32()));
    }

    [Fact]
    public async Task Echo_WithoutLogprobs_PrefixesTheTextWithThePrompt()
    {
        var (_, plain, _) = await server.PostJsonAsync("/v1/completions", """{"model":"stories","prompt":"The little dog","max_tokens":6,"temperature":0}""");
        var (status, body, _) = await server.PostJsonAsync("/v1/completions", """{"model":"stories","prompt":"The little dog","max_tokens":6,"temperature":0,"echo":true}""");

        Assert.Equal(200, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("The little dog" + plain.GetProperty("choices")[0].GetProperty("text").GetString(), choice.GetProperty("text").GetString());
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        Assert.Equal(plain.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Echo_TokenIdPromptsInABatch_WithSeveralChoices_EchoEachChoicesOwnPrompt()
    {
        var model = server.Batcher(ServerFixture.Stories).Model;
        var (status, body, _) = await server.PostJsonAsync("/v1/completions",
            """{"model":"stories","prompt":[[1, 400, 300], [1, 200]],"echo":true,"logprobs":1,"max_tokens":2,"temperature":0,"n":2}""");

        Assert.Equal(200, status);
        var choices = body.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal(4, choices.Count);
        int[][] prompts = [[1, 400, 300], [1, 200]];
        for (var i = 0; i < 4; i++)
        {
            var prompt = prompts[i / 2];
            Assert.StartsWith(model.Detokenize(prompt), choices[i].GetProperty("text").GetString(), StringComparison.Ordinal);
            var logprobs = Read(choices[i].GetProperty("logprobs"));
            Assert.Equal(prompt.Length + 2, logprobs.Tokens.Count);
            Assert.Null(logprobs.Values[0]);
            Assert.All(logprobs.Values.Skip(1), v => Assert.NotNull(v));
        }

        Assert.Equal(Read(choices[0].GetProperty("logprobs")).Values, Read(choices[1].GetProperty("logprobs")).Values);
        Assert.Equal((3 + 2, 4 * 2), (body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), body.GetProperty("usage").GetProperty("completion_tokens").GetInt32()));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Echo_WithSeveralChoices_ScoresEachPromptOnce_AndEveryChoiceCarriesItsScores(bool stream)
    {
        // With n choices each prompt was scored n times (a log-softmax per position each, on the decode thread).
        var batcher = server.Batcher(ServerFixture.Stories);
        var before = batcher.ScoredPromptPositions;
        var json = $$"""{"model":"stories","prompt":["{{Prompt}}","The little dog"],"echo":true,"logprobs":2,"max_tokens":2,"temperature":0,"n":3,"stream":{{(stream ? "true" : "false")}}}""";
        var response = await server.Http.PostAsync("/v1/completions", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        var scored = batcher.ScoredPromptPositions - before;

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(Tokens(Prompt).Length - 1 + Tokens("The little dog").Length - 1, scored);
        // Each choice's prompt part: its first chunk (streamed) or its logprobs (whole), the prompt's tokens scored alike.
        var firsts = new Dictionary<int, JsonElement>();
        if (stream)
        {
            foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l != "data: [DONE]"))
            {
                var choice = JsonDocument.Parse(line["data: ".Length..]).RootElement.GetProperty("choices")[0];
                firsts.TryAdd(choice.GetProperty("index").GetInt32(), choice.Clone());
            }
        }
        else
        {
            foreach (var choice in JsonDocument.Parse(text).RootElement.GetProperty("choices").EnumerateArray())
            {
                firsts.Add(choice.GetProperty("index").GetInt32(), choice.Clone());
            }
        }

        Assert.Equal(6, firsts.Count);
        for (var i = 0; i < 6; i++)
        {
            var promptLength = Tokens(i < 3 ? Prompt : "The little dog").Length;
            var expected = Read(firsts[i - i % 3].GetProperty("logprobs"));
            var logprobs = Read(firsts[i].GetProperty("logprobs"));
            Assert.True(logprobs.Tokens.Count >= promptLength, $"choice {i}: {logprobs.Tokens.Count} tokens");
            Assert.Null(logprobs.Values[0]);
            Assert.Equal(expected.Values.Take(promptLength), logprobs.Values.Take(promptLength));
            Assert.All(logprobs.Values.Skip(1).Take(promptLength - 1), v => Assert.NotNull(v));
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public async Task Echo_Streamed_FirstChunkCarriesThePrompt_AndTheChunksAddUpToTheWholeAnswer(int maxTokens)
    {
        var json = $$"""{"model":"stories","prompt":"{{Prompt}}","echo":true,"logprobs":1,"max_tokens":{{maxTokens}},"temperature":0""";
        var (_, whole, _) = await server.PostJsonAsync("/v1/completions", json + "}");
        var expected = whole.GetProperty("choices")[0];

        var response = await server.Http.PostAsync("/v1/completions", new StringContent(
            json + ""","stream":true,"stream_options":{"include_usage":true}}""", System.Text.Encoding.UTF8, "application/json"));
        var lines = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal("data: [DONE]", lines[^1]);
        var events = lines[..^1].Select(l => JsonDocument.Parse(l["data: ".Length..]).RootElement).ToList();
        var chunks = events.Where(e => e.GetProperty("choices").GetArrayLength() > 0).Select(e => e.GetProperty("choices")[0]).ToList();
        Assert.StartsWith(Prompt, chunks[0].GetProperty("text").GetString(), StringComparison.Ordinal);
        Assert.Equal(expected.GetProperty("text").GetString(), string.Concat(chunks.Select(c => c.GetProperty("text").GetString())));
        var streamed = chunks.Select(c => Read(c.GetProperty("logprobs"))).ToList();
        var expectedLogprobs = Read(expected.GetProperty("logprobs"));
        Assert.Equal(expectedLogprobs.Tokens, streamed.SelectMany(l => l.Tokens));
        Assert.Equal(expectedLogprobs.Values, streamed.SelectMany(l => l.Values));
        Assert.Equal(expectedLogprobs.Offsets, streamed.SelectMany(l => l.Offsets));
        Assert.Equal("length", chunks[^1].GetProperty("finish_reason").GetString());
        Assert.Equal(maxTokens, events[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(Tokens(Prompt).Length, events[^1].GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Theory]
    [InlineData("""  "echo":true,"logprobs":6,"max_tokens":0  """, "logprobs")]
    [InlineData("""  "echo":true,"logprobs":-1,"max_tokens":0  """, "logprobs")]
    [InlineData("""  "logprobs":6,"max_tokens":1  """, "logprobs")]
    [InlineData("""  "logprobs":1,"max_tokens":0  """, "max_tokens")]
    [InlineData("""  "echo":true,"logprobs":1,"max_tokens":-1  """, "max_tokens")]
    [InlineData("""  "echo":"yes","max_tokens":0  """, "echo")]
    public async Task Echo_BadSettings_Are400NamingTheField(string fields, string param)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/completions", $$"""{"model":"stories","prompt":"Once",{{fields}}}""");

        Assert.Equal(400, status);
        Assert.Equal(param, body.GetProperty("error").GetProperty("param").GetString());
    }
}
