using System.Text;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// What /metrics exports after real requests: vLLM-style serving metrics and the OpenTelemetry GenAI conventions.
/// Each test runs its own short-lived server. Test servers share one process, and a server that stops there can
/// take the same-named series off another server's page for good (OpenTelemetry merges instruments of one name
/// across the process's meters); a server that lives for the whole run would be exposed to every other fixture's
/// shutdown, which failed these tests now and then.
/// </summary>
public sealed class MetricsExportTests
{
    [Fact]
    public async Task Metrics_ExposeServingMetricsInPrometheusFormat()
    {
        var text = await ScrapeAfterAsync("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":4}""");

        foreach (var name in new[]
        {
            "sovereign_num_requests_running", "sovereign_num_requests_waiting", "sovereign_kv_cache_usage",
            "sovereign_prompt_tokens_total", "sovereign_generation_tokens_total", "sovereign_time_to_first_token_seconds_bucket",
            "sovereign_inter_token_latency_seconds_bucket", "sovereign_e2e_request_latency_seconds_bucket", "sovereign_request_queue_time_seconds_bucket",
        })
        {
            // On failure, show every Sovereign series the scrape did hold, not just the first bytes of the page.
            Assert.True(text.Contains(name, StringComparison.Ordinal),
                $"{name} missing from /metrics ({text.Length} chars); Sovereign lines: "
                + string.Join(" | ", text.Split('\n').Where(l => l.StartsWith("sovereign_", StringComparison.Ordinal)).Take(40)));
        }

        Assert.Contains("model=\"stories\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_FollowTheGenAiConventions_PerTenant()
    {
        var lines = (await ScrapeAfterAsync("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"temperature":0}""")).Split('\n');

        bool Has(string name, params string[] labels) =>
            lines.Any(l => l.StartsWith(name, StringComparison.Ordinal) && labels.All(label => l.Contains(label, StringComparison.Ordinal)));

        Assert.True(Has("gen_ai_client_token_usage_bucket", "gen_ai_token_type=\"input\"", "gen_ai_operation_name=\"chat\"", "gen_ai_request_model=\"stories\"", "tenant="));
        Assert.True(Has("gen_ai_client_token_usage_bucket", "gen_ai_token_type=\"output\""));
        Assert.True(Has("gen_ai_server_request_duration_seconds_bucket", "gen_ai_request_model=\"stories\""));
        Assert.True(Has("gen_ai_server_time_to_first_token_seconds_bucket", "gen_ai_request_model=\"stories\""));
    }

    [Fact]
    public async Task Metrics_NameTheLegacyCompletionsOperation_TextCompletion()
    {
        var lines = (await ScrapeAfterAsync("/v1/completions", """{"model":"stories","prompt":"Once upon a time","max_tokens":4,"temperature":0}""")).Split('\n');

        Assert.Contains(lines, l => l.StartsWith("gen_ai_client_token_usage_bucket", StringComparison.Ordinal)
            && l.Contains("gen_ai_operation_name=\"text_completion\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Metrics_ShowTheRuntime_GcHeapAndThreadPool()
    {
        // An operator watching a long-running server for growth saw RSS from outside but not the managed heap, the
        // allocations or the thread pool (the soak had to guess whether +4 MB a minute was the heap or native memory).
        var lines = (await ScrapeAfterAsync("/v1/completions", """{"model":"stories","prompt":"Once","max_tokens":1}""")).Split('\n');

        foreach (var name in new[] { "dotnet_gc_last_collection_heap_size_bytes", "dotnet_gc_heap_total_allocated_bytes", "dotnet_thread_pool_thread_count" })
        {
            Assert.True(lines.Any(l => l.StartsWith(name, StringComparison.Ordinal)),
                $"{name} missing from /metrics; dotnet lines: " + string.Join(" | ", lines.Where(l => l.StartsWith("dotnet_", StringComparison.Ordinal)).Take(20)));
        }
    }

    /// <summary>Found by reading a new server's /metrics: its target_info said service_name="unknown_service:dotnet".</summary>
    [Fact]
    public async Task Metrics_NameTheService()
    {
        var lines = (await ScrapeAfterAsync("/v1/completions", """{"model":"stories","prompt":"Once","max_tokens":1}""")).Split('\n');

        var target = Assert.Single(lines, l => l.StartsWith("target_info{", StringComparison.Ordinal));
        Assert.Contains("service_name=\"sovereign\"", target, StringComparison.Ordinal);
    }

    /// <summary>Starts a server with stories260K, sends one request (which must succeed), and returns its /metrics page.</summary>
    private static async Task<string> ScrapeAfterAsync(string path, string json)
    {
        var dataDirectory = Directory.CreateTempSubdirectory("sovereign-test-").FullName;
        var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = ServerFixture.Stories, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 2, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = dataDirectory,
        }, []);
        try
        {
            await app.StartAsync();
            using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
            using var response = await http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
            Assert.Equal(200, (int)response.StatusCode);

            using var admin = new HttpClient { BaseAddress = http.BaseAddress };
            admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue(
                "Bearer", File.ReadAllText(Path.Combine(dataDirectory, Sovereign.Gateway.ControlPlane.AdminToken.FileName)).Trim());
            return await admin.GetStringAsync("/metrics");
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            Directory.Delete(dataDirectory, recursive: true);
        }
    }
}
