using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// An engine that closes a kept-alive connection as a request goes out on it (llama-server and uvicorn drop idle ones
/// after 5 s) took no work. It was called unreachable: the request failed over, and a node's only engine was left out
/// of routing, so every request for the next 5 s got 503 no_compliant_capacity (6 of 40 concurrent requests through
/// a node fronting llama-server, where the engine itself answered all 40).
/// </summary>
public sealed class KeptAliveConnectionTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    private const string Answer =
        """{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"upstream","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}""";

    [Fact]
    public async Task AConnectionTheEngineClosesWithoutAnAnswer_IsTriedAgainOnTheSameEngine_WhichStaysInRotation()
    {
        await using var engine = await ClosingEngine.StartAsync(closeFirst: 1);
        const string Model = "ka-model";
        await fixture.RegisterEngineAsync("ka-engine", engine.Url, Model);
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/ka-plan", new { currency = "THB" }, 200);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/ka-plan/prices", new { model = Model, input_per_million = 1m, output_per_million = 1m }, 201);
        var (_, client) = await fixture.NewTenantAsync("ka-plan");
        using var _ = client;
        var body = $$"""{"model":"{{Model}}","messages":[{"role":"user","content":"Hello"}],"max_tokens":4}""";

        using var first = await client.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.True(first.StatusCode == HttpStatusCode.OK, await first.Content.ReadAsStringAsync());
        Assert.Equal("Hi", JsonDocument.Parse(await first.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());

        // The engine is still routed to: the next request is answered, not refused as "down or full".
        using var second = await client.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.True(second.StatusCode == HttpStatusCode.OK, await second.Content.ReadAsStringAsync());
        Assert.Equal((1, 3), (engine.Closed, engine.Requests));
    }

    /// <summary>
    /// An HTTP/1.1 engine on a raw socket: it reads each request whole, closes the first <c>closeFirst</c> connections
    /// without a byte of answer (a FIN, as a keep-alive timeout does), and answers the others with <see cref="Answer"/>.
    /// </summary>
    private sealed class ClosingEngine : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private int _toClose;
        private int _closed;
        private int _requests;
        private Task _serving = Task.CompletedTask;

        public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

        public int Closed => Volatile.Read(ref _closed);

        public int Requests => Volatile.Read(ref _requests);

        public static Task<ClosingEngine> StartAsync(int closeFirst)
        {
            var engine = new ClosingEngine { _toClose = closeFirst };
            engine._listener.Start();
            engine._serving = engine.ServeAsync();
            return Task.FromResult(engine);
        }

        private async Task ServeAsync()
        {
            try
            {
                while (true)
                {
                    var socket = await _listener.AcceptSocketAsync(_stop.Token);
                    _ = Task.Run(() => ConverseAsync(socket));
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private async Task ConverseAsync(Socket socket)
        {
            using var _ = socket;
            await using var stream = new NetworkStream(socket);
            try
            {
                while (await ReadRequestAsync(stream))
                {
                    Interlocked.Increment(ref _requests);
                    if (Interlocked.Decrement(ref _toClose) >= 0)
                    {
                        Interlocked.Increment(ref _closed);
                        socket.Shutdown(SocketShutdown.Both);
                        return;
                    }

                    var json = Encoding.UTF8.GetBytes(Answer);
                    await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {json.Length}\r\n\r\n"));
                    await stream.WriteAsync(json);
                }
            }
            catch (IOException)
            {
            }
        }

        /// <summary>Reads one request's headers and body; false when the client closed the connection.</summary>
        private static async Task<bool> ReadRequestAsync(NetworkStream stream)
        {
            var head = new StringBuilder();
            var one = new byte[1];
            while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
            {
                if (await stream.ReadAsync(one) == 0)
                {
                    return false;
                }

                head.Append((char)one[0]);
            }

            var length = head.ToString().Split("\r\n").Select(line => line.Split(':', 2))
                .Where(pair => pair.Length == 2 && pair[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                .Select(pair => int.Parse(pair[1].Trim(), System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();
            await stream.ReadExactlyAsync(new byte[length]);
            return true;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _serving;
            _stop.Dispose();
        }
    }
}
