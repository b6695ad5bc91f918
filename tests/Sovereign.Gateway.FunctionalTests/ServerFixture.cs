using System.ClientModel;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.Models;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// A real server on a loopback port, built exactly as <c>sovereign serve</c> builds it, serving stories260K
/// (context 256 per sequence, to make over-long prompts cheap), the 32k-vocabulary random Llama-2, stories260K
/// in embedding mode, and MiniLM.
/// </summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public const string Stories = "stories";
    public const string TinyRandom = "tiny-random";
    public const string StoriesEmbedding = "stories-embed";
    public const long BodyLimit = 64 * 1024;

    /// <summary>The most text one /tokenize request counts here (below the body limit, so a test can pass it).</summary>
    public const int TokenizeLimit = 16 * 1024;

    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("sovereign-test-").FullName;

    public WebApplication App { get; private set; } = null!;

    /// <summary>The server's data directory (database, generated admin token).</summary>
    public string DataDirectory => _dataDirectory;

    /// <summary>An HTTP client with the generated operator token.</summary>
    public HttpClient AdminClient()
    {
        var client = new HttpClient { BaseAddress = BaseAddress };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue(
            "Bearer", File.ReadAllText(Path.Combine(_dataDirectory, Sovereign.Gateway.ControlPlane.AdminToken.FileName)).Trim());
        return client;
    }
    /// <summary>An alias that routes Thai to <see cref="TinyRandom"/> and everything else to a model no node serves.</summary>
    public const string ThaiOnlyAlias = "thai-only";

    public Uri BaseAddress { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public OpenAIClient OpenAI { get; private set; } = null!;
    public ModelCatalog Catalog => App.Services.GetRequiredService<ModelCatalog>();

    public ContinuousBatcher Batcher(string id) => Catalog.TryGet(id, out var model) ? model.Batcher! : throw new KeyNotFoundException(id);

    public async Task InitializeAsync()
    {
        App = ServeCommand.Build(new ServeSettings
        {
            Models =
            [
                new ModelOptions { Id = Stories, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 8, Threads = 1, Languages = ["en"] },
                // Random weights make near-ties everywhere, so greedy output shows the last-bit rounding of where llama.cpp
                // placed earlier requests' KV cells; the tests that compare two runs on it need a KV cache that empties
                // between requests, so this model keeps no prefix cache (PrefixCacheTests cover the cache on both models).
                new ModelOptions { Id = TinyRandom, Path = TestModels.TinyRandomLlama2, ContextLength = 512, Parallel = 4, Threads = 1, Languages = ["th", "hi"], PrefixCacheSequences = 0 },
                new ModelOptions { Id = StoriesEmbedding, Path = TestModels.Stories260K, Kind = ModelKind.Embedding, Threads = 1 },
            ],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _dataDirectory,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Limits:MaxRequestBodyBytes"] = BodyLimit.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Sovereign:Limits:MaxTokenizeBytes"] = TokenizeLimit.ToString(System.Globalization.CultureInfo.InvariantCulture),
                // A body field the operator accepts besides OpenAI's (UnknownFieldTests).
                ["Sovereign:AcceptedRequestFields:0"] = "x_gateway_tag",
                // A nested one, by its path without indices (NestedFieldTests).
                ["Sovereign:AcceptedRequestFields:1"] = "messages.content.cache_control",
                // An alias whose fallback is loaded nowhere (LanguageRoutingTests).
                [$"Sovereign:Aliases:{ThaiOnlyAlias}:Default"] = "not-loaded-anywhere",
                [$"Sovereign:Aliases:{ThaiOnlyAlias}:Candidates:0:Model"] = TinyRandom,
                [$"Sovereign:Aliases:{ThaiOnlyAlias}:Candidates:0:Languages:0"] = "th",
            },
        }, []);
        await App.StartAsync();
        BaseAddress = new Uri(App.Urls.First());
        Http = new HttpClient { BaseAddress = BaseAddress };
        OpenAI = CreateOpenAIClient(BaseAddress, "unused");
    }

    public static OpenAIClient CreateOpenAIClient(Uri baseAddress, string key) =>
        new(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(baseAddress, "/v1") });

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        Directory.Delete(_dataDirectory, recursive: true);
    }

    /// <summary>POSTs raw JSON and returns the status and parsed body.</summary>
    public async Task<(int Status, JsonElement Body, HttpResponseMessage Response)> PostJsonAsync(string path, string json)
    {
        var response = await Http.PostAsync(path, new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        var body = text.Length > 0 ? JsonDocument.Parse(text).RootElement.Clone() : default;
        return ((int)response.StatusCode, body, response);
    }

    public Task<HttpResponseMessage> PostAsync(string path, object body) => Http.PostAsJsonAsync(path, body);
}

[CollectionDefinition(Name)]
public sealed class ServerCollection : ICollectionFixture<ServerFixture>
{
    public const string Name = "server";
}
