using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Pipeline;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// The prefix cache is per tenant. It was shared by every tenant of a model: a tenant sending a text another tenant had
/// sent read <c>cached_tokens</c> of almost its whole length (43 of 44 for a patient's name and diagnosis), and could
/// probe a guess token by token, and paid the cached rate for the other tenant's prefill.
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class PrefixCacheIsolationTests(MeteringFixture fixture)
{
    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"SECRET"}],"max_tokens":1,"temperature":0}""")]
    [InlineData("/v1/completions", """{"model":"stories","prompt":"SECRET","max_tokens":1,"temperature":0}""")]
    public async Task AnotherTenant_SendingTheSameText_ReusesNothing_WhileTheSenderReusesItsOwn(string path, string template)
    {
        var (_, senderKey) = await fixture.NewTenantAsync();
        var (_, probeKey) = await fixture.NewTenantAsync();
        var body = template.Replace("SECRET", $"The patient {Guid.NewGuid():N} tested positive in ward seven", StringComparison.Ordinal);

        var (prompt, _) = await UsageAsync(senderKey, path, body);
        var (probePrompt, probeCached) = await UsageAsync(probeKey, path, body);
        var (_, senderCached) = await UsageAsync(senderKey, path, body);
        var (_, probeAgainCached) = await UsageAsync(probeKey, path, body);

        Assert.Equal(prompt, probePrompt);
        Assert.Equal(0, probeCached);
        Assert.Equal(prompt - 1, senderCached);
        Assert.Equal(prompt - 1, probeAgainCached);
    }

    /// <summary>vLLM's cache_salt narrows a tenant's cache further (a tenant keeps its own users apart); the same salt reuses.</summary>
    [Fact]
    public async Task CacheSalt_KeepsATenantsOwnRequestsApart_AndTheSameSaltReuses()
    {
        var (_, key) = await fixture.NewTenantAsync();
        var text = $"Ward seven notes {Guid.NewGuid():N} for the night shift";
        string Body(string? salt) => $$"""{"model":"stories","prompt":"{{text}}","max_tokens":1,"temperature":0{{(salt is null ? "" : ",\"cache_salt\":\"" + salt + "\"")}}}""";

        var (prompt, _) = await UsageAsync(key, "/v1/completions", Body(null));
        var (_, salted) = await UsageAsync(key, "/v1/completions", Body("user-1"));
        var (_, otherSalt) = await UsageAsync(key, "/v1/completions", Body("user-2"));
        var (_, sameSalt) = await UsageAsync(key, "/v1/completions", Body("user-1"));
        var (_, unsalted) = await UsageAsync(key, "/v1/completions", Body(null));

        Assert.Equal((0, 0), (salted, otherSalt));
        Assert.Equal((prompt - 1, prompt - 1), (sameSalt, unsalted));
    }

    /// <summary>
    /// Work a gateway relays to a cluster node is one relay tenant there: the gateway sends a digest of the real tenant,
    /// and the node partitions by it; a relay without one shares nothing.
    /// </summary>
    [Fact]
    public void RelayedWork_IsPartitionedByTheTenantTheGatewaySent_AndWithoutOneSharesNothing()
    {
        var relay = new Caller(ClusterRelay.RelayTenant, null, null, ClusterRelay.RelayTenant);
        HttpContext Relayed(string? partition)
        {
            var context = new DefaultHttpContext();
            if (partition is not null)
            {
                context.Request.Headers[PrefixCachePartition.Header] = partition;
            }

            return context;
        }

        var a = PrefixCachePartition.ForRelay(new Caller("tenant-a", "key_1", null, "standard"));
        var b = PrefixCachePartition.ForRelay(new Caller("tenant-b", "key_2", null, "standard"));

        Assert.NotEqual(a, b);
        Assert.Equal(PrefixCachePartition.Of(Relayed(a), relay), PrefixCachePartition.Of(Relayed(a), relay));
        Assert.NotEqual(PrefixCachePartition.Of(Relayed(a), relay), PrefixCachePartition.Of(Relayed(b), relay));
        Assert.NotEqual(PrefixCachePartition.Of(Relayed(null), relay), PrefixCachePartition.Of(Relayed(null), relay));
        Assert.NotEqual(PrefixCachePartition.Of(Relayed("tenant-a"), relay), PrefixCachePartition.Of(Relayed("tenant-a"), relay));
        Assert.Equal("tenant-a", PrefixCachePartition.Of(Relayed(b), new Caller("tenant-a", "key_1", null, "standard")));
    }

    /// <summary>The router's prefix affinity is per tenant too: another tenant's same prefix would only move it between nodes.</summary>
    [Fact]
    public void PrefixAffinity_KeysAPrefixPerTenant()
    {
        var work = new GenerationWorkload
        {
            Model = "stories",
            LanguageSample = "",
            Endpoint = "chat/completions",
            Turns = [new Sovereign.Inference.Engine.ChatTurn("system", new string('s', 600)), new Sovereign.Inference.Engine.ChatTurn("user", "hi")],
            Sampling = Sovereign.Inference.Engine.SamplingOptions.Default,
            Stop = [],
            N = 1,
        };

        Assert.NotNull(Sovereign.Gateway.Routing.PrefixAffinity.KeyOf(work, "tenant-a"));
        Assert.Equal(Sovereign.Gateway.Routing.PrefixAffinity.KeyOf(work, "tenant-a"), Sovereign.Gateway.Routing.PrefixAffinity.KeyOf(work, "tenant-a"));
        Assert.NotEqual(Sovereign.Gateway.Routing.PrefixAffinity.KeyOf(work, "tenant-a"), Sovereign.Gateway.Routing.PrefixAffinity.KeyOf(work, "tenant-b"));
    }

    private async Task<(int Prompt, int Cached)> UsageAsync(string key, string path, string body)
    {
        using var client = fixture.TenantClient(key);
        using var response = await client.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        var usage = JsonDocument.Parse(text).RootElement.GetProperty("usage");
        return (usage.GetProperty("prompt_tokens").GetInt32(), usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
    }
}
