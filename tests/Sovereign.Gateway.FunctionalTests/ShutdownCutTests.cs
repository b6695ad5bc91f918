using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.Models;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// A stream still running when a stop's grace runs out ends with OpenAI's error event (<c>server_shutting_down</c>),
/// billed for what it delivered, its outcome failed (the client did not leave). It was cut at the timeout with a TCP
/// reset: the client saw a transport error and no event, and the record said the client had cancelled.
/// </summary>
public sealed class ShutdownCutTests : IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-shutdown-cut-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task AStreamRunningWhenTheGraceEnds_EndsWithAnErrorEvent_BilledForWhatItDelivered()
    {
        var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, ContextLength = 256, Parallel = 2, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _data,
            Overrides = new Dictionary<string, string?> { ["Sovereign:BuiltInEmbeddings"] = "false", ["Sovereign:Jurisdiction"] = "DE" },
            Services = services => services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20)),
        }, []);
        await using var _ = app;
        await app.StartAsync();
        var batcher = app.Services.GetRequiredService<ModelCatalog>().TryGet("stories", out var served) ? served.Batcher! : throw new InvalidOperationException();

        // Prefill and three tokens, then the engine holds until it is woken (here: by the cut's cancellation), so the
        // stream is certainly still running when the grace ends.
        var steps = 0;
        batcher.BeforeStep = async woken =>
        {
            if (Interlocked.Increment(ref steps) > 4)
            {
                await woken;
            }
        };

        using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()), Timeout = TimeSpan.FromMinutes(2) };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":200,"temperature":0,"stream":true}""", Encoding.UTF8, "application/json"),
        };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = response.Headers.GetValues("x-sovereign-audit-id").Single();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<string>();
        string? read;
        do
        {
            // Up to the first text chunk (the role chunk's content is empty).
            read = await reader.ReadLineAsync();
            if (read?.StartsWith("data: ", StringComparison.Ordinal) == true)
            {
                events.Add(read);
            }
        }
        while (read is not null && !(read.Contains("\"content\":\"", StringComparison.Ordinal) && !read.Contains("\"content\":\"\"", StringComparison.Ordinal)));

        Assert.NotNull(read);

        // The stop begins with the stream mid-generation; the rest of the stream is read to its end (a reset throws). The
        // grace is 20 s: the stream is cut 5 s before it ends, as in the default 30 s (with a grace of 4 or 12 s, cut 1 or
        // 3 s before its end, the books had not closed by then at a load of 40-65 on 2 cores: see notes/mends5.md).
        var stopping = app.StopAsync();
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add(line);
            }
        }

        batcher.BeforeStep = null;
        await stopping;

        Assert.Contains("\"code\":\"server_shutting_down\"", events[^1], StringComparison.Ordinal);
        Assert.DoesNotContain(events, e => e == "data: [DONE]");

        using var connection = new SqliteConnection($"Data Source={Path.Combine(_data, "sovereign.db")};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT outcome, completion_tokens, prompt_tokens FROM metering_usage WHERE request_id = $id";
        command.Parameters.AddWithValue("$id", requestId);
        using var row = command.ExecuteReader();
        Assert.True(row.Read(), "no usage record");
        Assert.Equal(3, row.GetInt32(0)); // failed: the server ended it, the client did not leave
        Assert.InRange(row.GetInt32(1), 1, 200);
        Assert.True(row.GetInt32(2) > 0);
    }
}
