using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// Cross-node streaming in the cluster's own shape: a throwaway redis-server, a <c>sovereign serve --role node</c>
/// process serving the model on https with its cluster certificate, and a <c>--role gateway</c> process, both with
/// mutual TLS from a CA made here (as the cluster tests start them). Each streamed request goes either straight to the
/// node, as a gateway would send it (https, a gateway's client certificate, the cluster secret), or through the
/// gateway with a tenant key (residency decision and audit, admission, relay over cluster TLS, ledger, settlement).
/// Requests alternate, in the same run.
/// </summary>
internal static class ClusterStreamingBenchmark
{
    public const string Usage = "cluster-streaming [--requests N per path (200)] [--max-tokens N (32)]";

    private const string Secret = "cluster-streaming-bench-secret";

    /// <summary>The last lines each started member wrote, to explain a failed start.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Process, Queue<string>> s_tails = [];

    public static async Task<int> RunAsync(string[] argv)
    {
        Args args;
        try
        {
            args = Args.Parse(argv, "--requests", "--max-tokens");
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message + "\nusage: " + Usage);
            return 2;
        }

        var requests = args.Int("--requests", 200, 40);
        var maxTokens = args.Int("--max-tokens", 32, 16);
        Report.Machine("cluster-streaming", argv);

        var root = Directory.CreateTempSubdirectory("sovereign-clusterbench-").FullName;
        var processes = new List<Process>();
        using var authority = ClusterCertificates.CreateAuthority("bench", DateTimeOffset.UtcNow);
        try
        {
            var redisPort = FreePort();
            processes.Add(Start("redis-server", ["--port", redisPort.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", root], new Dictionary<string, string>()));
            var operatorKey = Path.Combine(root, "operator-key.pem");
            using (Residency.Audit.OperatorSigningKey.LoadOrCreate(operatorKey))
            {
            }

            var clusterId = "bench-" + Path.GetFileName(root);
            Dictionary<string, string> Environment(string nodeId, string data) => new()
            {
                ["OMP_WAIT_POLICY"] = "PASSIVE",
                ["Sovereign__AdminToken"] = BenchServer.AdminToken,
                ["Sovereign__Jurisdiction"] = BenchServer.Jurisdiction,
                ["Sovereign__NodeId"] = nodeId,
                ["Sovereign__BuiltInEmbeddings"] = "false",
                ["Sovereign__Cluster__Redis"] = $"127.0.0.1:{redisPort}",
                ["Sovereign__Cluster__ClusterId"] = clusterId,
                ["Sovereign__Cluster__Secret"] = Secret,
                ["Logging__LogLevel__Default"] = "Warning",

                // A loaded 2-core machine can delay a node's report past the default 5 s; a stale node is not routed to.
                ["Sovereign__Cluster__NodeStaleSeconds"] = "30",
                ["Logging__LogLevel__Orleans"] = "Error",
                ["Logging__LogLevel__llama.cpp"] = "Error",
            };

            var nodeData = Member(root, "node-th", ServerRole.Node, authority, operatorKey);
            var nodeUrl = new Uri($"https://127.0.0.1:{FreePort()}/");
            var nodeEnvironment = Environment("node-th", nodeData);
            nodeEnvironment["Sovereign__Cluster__NodeUrl"] = nodeUrl.ToString().TrimEnd('/');
            var node = Start("dotnet", [Path.Combine(AppContext.BaseDirectory, "sovereign.dll"), "serve", "--role", "node", "--urls", nodeUrl.ToString().TrimEnd('/'),
                "--data-dir", nodeData, "--model", $"{BenchServer.FindStoriesModel()}={BenchServer.ModelId}", "--threads", "1", "--ctx-size", "256", "--parallel", "8"], nodeEnvironment);
            processes.Add(node);

            var gatewayData = Member(root, "gateway-th", ServerRole.Gateway, authority, operatorKey);
            var gatewayUrl = new Uri($"http://127.0.0.1:{FreePort()}/");
            var gateway = Start("dotnet", [Path.Combine(AppContext.BaseDirectory, "sovereign.dll"), "serve", "--role", "gateway", "--urls", gatewayUrl.ToString().TrimEnd('/'),
                "--data-dir", gatewayData], Environment("gateway-th", gatewayData));
            processes.Add(gateway);

            // The direct path presents what a gateway presents: a gateway's cluster certificate and the cluster secret.
            using var clientKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var identity = new ClusterIdentity(ServerRole.Gateway, "bench-client");
            using var issued = ClusterCertificates.Issue(authority, ClusterCertificates.CreateSigningRequest(identity, clientKey), identity, DateTimeOffset.UtcNow);
            using var clientCertificate = issued.CopyWithPrivateKey(clientKey);
            using var direct = Client(nodeUrl, authority, clientCertificate, Secret);
            using var admin = Client(gatewayUrl, authority, null, BenchServer.AdminToken);
            await WaitAsync(gateway, admin, "/ready", _ => true);
            await WaitAsync(node, direct, "/ready", _ => true);
            await WaitAsync(gateway, admin, "admin/v1/nodes", body => JsonDocument.Parse(body).RootElement.GetProperty("data").EnumerateArray()
                .Any(n => n.GetProperty("id").GetString() == "node-th" && n.GetProperty("load").ValueKind == JsonValueKind.Object));

            var key = await SetUpTenantAsync(admin);
            using var relayed = Client(gatewayUrl, authority, null, key);
            var body = Encoding.UTF8.GetBytes(
                $$"""{"model":"{{BenchServer.ModelId}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":{{maxTokens}},"temperature":0,"stream":true}""");

            // The gateway routes to the node once its registry (re-read every second) shows the node's model loaded.
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    await RelayStreamingBenchmark.StreamAsync(relayed, body);
                    break;
                }
                catch (InvalidOperationException) when (attempt < 100)
                {
                    await Task.Delay(200);
                }
            }

            // Warm both paths (JIT, grains, TLS connections, the node's model).
            for (var i = 0; i < 10; i++)
            {
                await RelayStreamingBenchmark.StreamAsync(direct, body);
                await RelayStreamingBenchmark.StreamAsync(relayed, body);
            }

            var directRuns = new List<RelayStreamingBenchmark.Timing>();
            var relayedRuns = new List<RelayStreamingBenchmark.Timing>();
            for (var i = 0; i < requests; i++)
            {
                directRuns.Add(await RelayStreamingBenchmark.StreamAsync(direct, body));
                relayedRuns.Add(await RelayStreamingBenchmark.StreamAsync(relayed, body));
            }

            Console.WriteLine(FormattableString.Invariant(
                $"## Streaming through a --role gateway process to a --role node process over cluster TLS ({requests} requests per path, alternating; {maxTokens} tokens; chunks per stream: direct {directRuns.Average(t => t.Chunks):F1}, relayed {relayedRuns.Average(t => t.Chunks):F1})"));
            Console.WriteLine();
            RelayStreamingBenchmark.Table(directRuns, relayedRuns, "direct to node", "through gateway");
            return 0;
        }
        finally
        {
            foreach (var process in Enumerable.Reverse(processes))
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                    await process.WaitForExitAsync();
                }

                process.Dispose();
            }

            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>A member's data directory with its certificate, key, the CA and the operator key (so it issues its own credential).</summary>
    private static string Member(string root, string nodeId, ServerRole role, X509Certificate2 authority, string operatorKey)
    {
        var data = Directory.CreateDirectory(Path.Combine(root, nodeId)).FullName;
        File.Copy(operatorKey, Path.Combine(data, "operator-key.pem"));
        var identity = new ClusterIdentity(role, nodeId);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var issued = ClusterCertificates.Issue(authority, ClusterCertificates.CreateSigningRequest(identity, key), identity, DateTimeOffset.UtcNow);
        ClusterTlsCredentials.WritePem(Path.Combine(data, "cluster-key.pem"), key.ExportPkcs8PrivateKeyPem(), secret: true);
        ClusterTlsCredentials.WritePem(Path.Combine(data, "cluster-cert.pem"), issued.ExportCertificatePem(), secret: false);
        ClusterTlsCredentials.WritePem(Path.Combine(data, "cluster-ca.pem"), authority.ExportCertificatePem(), secret: false);
        if (role == ServerRole.Gateway)
        {
            using var caKey = authority.GetECDsaPrivateKey()!;
            ClusterTlsCredentials.WritePem(Path.Combine(data, "cluster-ca-key.pem"), caKey.ExportPkcs8PrivateKeyPem(), secret: true);
        }

        return data;
    }

    private static Process Start(string file, IEnumerable<string> arguments, Dictionary<string, string> environment)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var process = Process.Start(start)!;

        // Drained, so a chatty member never blocks on a full pipe; the last lines explain a failed start.
        var tail = new Queue<string>();
        void Keep(object? _, DataReceivedEventArgs e)
        {
            if (e.Data is null)
            {
                return;
            }

            lock (tail)
            {
                tail.Enqueue(e.Data);
                if (tail.Count > 40)
                {
                    tail.Dequeue();
                }
            }
        }

        process.OutputDataReceived += Keep;
        process.ErrorDataReceived += Keep;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        s_tails.AddOrUpdate(process, tail);
        return process;
    }

    private static async Task WaitAsync(Process member, HttpClient client, string path, Func<string, bool> ready)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        while (true)
        {
            if (member.HasExited)
            {
                var tail = s_tails.TryGetValue(member, out var lines) ? string.Join('\n', lines) : "";
                throw new InvalidOperationException($"A cluster member exited during start-up:\n{tail}");
            }

            try
            {
                using var response = await client.GetAsync(path, timeout.Token);
                if (response.IsSuccessStatusCode && ready(await response.Content.ReadAsStringAsync(timeout.Token)))
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(200, timeout.Token);
        }
    }

    private static HttpClient Client(Uri address, X509Certificate2 authority, X509Certificate2? certificate, string token)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
        };
        handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, _) =>
            presented is X509Certificate2 served && ClusterCertificates.Validate(served, authority, DateTimeOffset.UtcNow, out _) is not null;
        if (certificate is not null)
        {
            handler.SslOptions.ClientCertificates = [certificate];
        }

        var client = new HttpClient(handler) { BaseAddress = address, Timeout = TimeSpan.FromMinutes(5) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private static async Task<string> SetUpTenantAsync(HttpClient admin)
    {
        async Task<JsonElement> Call(HttpMethod method, string path, string json)
        {
            using var request = new HttpRequestMessage(method, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
            using var response = await admin.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            return response.IsSuccessStatusCode
                ? JsonDocument.Parse(text).RootElement.Clone()
                : throw new InvalidOperationException($"{method} {path}: {(int)response.StatusCode} {text}");
        }

        await Call(HttpMethod.Put, "admin/v1/plans/standard", """{"currency":"USD","weight":1}""");
        await Call(HttpMethod.Post, "admin/v1/plans/standard/prices", $$"""{"model":"{{BenchServer.ModelId}}","input_per_million":1,"output_per_million":2}""");
        await Call(HttpMethod.Post, "admin/v1/tenants", """{"id":"stream-tenant","plan":"standard","policy":{"allowed_jurisdictions":["TH"]}}""");
        await Call(HttpMethod.Put, "admin/v1/tenants/stream-tenant/limits",
            """{"budgets":[{"period":"day","amount":1000000}],"rate_limits":[{"requests_per_minute":100000000,"tokens_per_minute":100000000000}]}""");
        var key = await Call(HttpMethod.Post, "admin/v1/tenants/stream-tenant/keys", """{"name":"bench"}""");
        return key.GetProperty("secret").GetString()!;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
