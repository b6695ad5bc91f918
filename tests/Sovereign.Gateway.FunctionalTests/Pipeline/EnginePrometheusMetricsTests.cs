using Sovereign.Gateway.ControlPlane;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>The KV-cache use a fronted engine states on its Prometheus page, as vLLM and llama-server write them.</summary>
public sealed class EnginePrometheusMetricsTests
{
    [Fact]
    public void VllmPage_GivesTheLargestKvCacheUseOverItsSeries()
    {
        const string Page = """
            # HELP vllm:num_requests_running Number of requests in model execution batches.
            # TYPE vllm:num_requests_running gauge
            vllm:num_requests_running{engine="0",model_name="scb10x/typhoon-2-8b"} 3.0
            # HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
            # TYPE vllm:kv_cache_usage_perc gauge
            vllm:kv_cache_usage_perc{engine="0",model_name="scb10x/typhoon-2-8b"} 0.125
            vllm:kv_cache_usage_perc{engine="1",model_name="scb10x/typhoon-2-8b"} 0.5 1733300000000
            vllm:kv_cache_usage_perc_other 0.9
            """;
        Assert.Equal(0.5, EnginePrometheusMetrics.KvCacheUse(Page));
    }

    [Theory]
    [InlineData("llamacpp:kv_cache_usage_ratio 0.0625\nllamacpp:requests_processing 1", 0.0625)]
    [InlineData("vllm:gpu_cache_usage_perc{model_name=\"m\"} 2.5", 1.0)]
    [InlineData("sglang:token_usage{tp_rank=\"0\"} 0.3", 0.3)]
    public void OtherEngines_AndOlderNames_AreRead_AndClampedToAFraction(string page, double expected) =>
        Assert.Equal(expected, EnginePrometheusMetrics.KvCacheUse(page));

    [Theory]
    [InlineData("")]
    [InlineData("# TYPE vllm:kv_cache_usage_perc gauge\n")]
    [InlineData("vllm:kv_cache_usage_perc{model_name=\"m\"} NaN")]
    [InlineData("vllm:kv_cache_usage_perc{model_name=\"m\"")]
    [InlineData("<html>404</html>")]
    public void PageWithoutAReadableKvCacheUse_SaysNone(string page) => Assert.Null(EnginePrometheusMetrics.KvCacheUse(page));
}
