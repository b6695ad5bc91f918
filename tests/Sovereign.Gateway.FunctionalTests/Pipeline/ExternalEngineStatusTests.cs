using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// <c>GET /admin/v1/cluster</c> (and <c>sovereign cluster status</c>) for an external engine, which reports no load of
/// its own: its registered models with what this gateway runs there against their capacity. It showed no models and
/// no free slots, so an operator could not tell an idle engine from a full one.
/// </summary>
public sealed class ExternalEngineStatusTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    private const string Model = "status-model";

    private async Task<JsonElement> NodeAsync(string id)
    {
        var status = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/cluster", null, 200);
        return status.GetProperty("nodes").EnumerateArray().Single(n => n.GetProperty("id").GetString() == id);
    }

    private static (int Running, int Free, int Queued) ModelLoad(JsonElement node)
    {
        var model = Assert.Single(node.GetProperty("models").EnumerateArray());
        Assert.Equal(Model, model.GetProperty("id").GetString());
        return (model.GetProperty("running").GetInt32(), model.GetProperty("free_slots").GetInt32(), model.GetProperty("queue_depth").GetInt32());
    }

    [Fact]
    public async Task AnExternalEngine_ShowsItsModelsAndThisGatewaysLoadOnThem()
    {
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            received.TrySetResult();
            await answer.Task;
            await FakeUpstreamEngine.AnswerAsync(context, """{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}""");
        });
        await fixture.RegisterEngineAsync("status-engine", engine.Url, Model); // capacity 2
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/status-plan", new { currency = "THB" }, 200);
        var (_, client) = await fixture.NewTenantAsync("status-plan");
        using var _ = client;

        var idle = await NodeAsync("status-engine");
        Assert.Equal("this_gateway", idle.GetProperty("load_source").GetString());
        Assert.Equal((0, 2, 0), ModelLoad(idle));

        var pending = client.PostAsync("/v1/chat/completions",
            new StringContent($$"""{"model":"{{Model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}""", Encoding.UTF8, "application/json"));
        // The engine has it and holds it (the bound only turns a hang into a failure).
        await Task.WhenAny(received.Task, pending).WaitAsync(TimeSpan.FromMinutes(2));
        Assert.False(pending.IsCompleted, pending.IsCompleted ? await (await pending).Content.ReadAsStringAsync() : "");
        Assert.Equal((1, 1, 0), ModelLoad(await NodeAsync("status-engine")));

        answer.SetResult();
        using var response = await pending;
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal((0, 2, 0), ModelLoad(await NodeAsync("status-engine")));
    }
}
