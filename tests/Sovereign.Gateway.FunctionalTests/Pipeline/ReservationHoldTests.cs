using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.Metering;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// The pipeline keeps an admitted request's reservation renewed from admission until its books close, on every exit
/// (<see cref="ReservationRenewals"/>): a held-open request is counted, a finished or refused one no longer is.
/// </summary>
public sealed class ReservationHoldTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    [Fact]
    public async Task ARunningRequest_IsRenewed_UntilItsBooksClose_AndAnEngineErrorEndsItToo()
    {
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fail = false;
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            if (fail)
            {
                context.Response.StatusCode = 400;
                await context.Response.WriteAsync("""{"error":{"message":"bad","type":"invalid_request_error"}}""");
                return;
            }

            received.TrySetResult();
            await answer.Task;
            await FakeUpstreamEngine.AnswerAsync(context, """{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}""");
        });
        await fixture.RegisterEngineAsync("rh-engine", engine.Url, "rh-model");
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/rh-plan", new { currency = "EUR" }, 200);
        var (_, client) = await fixture.NewTenantAsync("rh-plan");
        using var _ = client;
        var renewals = fixture.App.Services.GetRequiredService<ReservationRenewals>();
        StringContent Chat() => new("""{"model":"rh-model","messages":[{"role":"user","content":"Hello"}],"max_tokens":8}""", Encoding.UTF8, "application/json");

        // Held by the engine (it has the request and has not answered): admitted, its books not closed. The bound only
        // turns a hang into a failure.
        var pending = client.PostAsync("/v1/chat/completions", Chat());
        await Task.WhenAny(received.Task, pending).WaitAsync(TimeSpan.FromMinutes(2));
        Assert.False(pending.IsCompleted, pending.IsCompleted ? await (await pending).Content.ReadAsStringAsync() : "");
        Assert.Equal(1, renewals.Count);
        answer.SetResult();
        using (var response = await pending)
        {
            Assert.Equal(200, (int)response.StatusCode);
        }

        Assert.Equal(0, renewals.Count);
        fail = true;
        using (var refused = await client.PostAsync("/v1/chat/completions", Chat()))
        {
            Assert.Equal(400, (int)refused.StatusCode);
        }

        Assert.Equal(0, renewals.Count);
    }
}
