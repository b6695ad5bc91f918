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
/// A cluster in its own shape for the benchmarks, as the cluster tests start one: a throwaway redis-server and
/// PostgreSQL (the members' shared database), <c>sovereign serve --role gateway</c> and <c>--role node</c> processes with mutual TLS from a CA made here, each
/// holding the operator key (so it issues its own credential), nodes on https with their cluster certificates.
/// </summary>
internal sealed class BenchCluster : IAsyncDisposable
{
    public const string Secret = "cluster-bench-secret";

    /// <summary>The last lines each started member wrote, to explain a failed start.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Process, Queue<string>> s_tails = [];

    private readonly string _root = Directory.CreateTempSubdirectory("sovereign-clusterbench-").FullName;
    private readonly List<Process> _processes = [];
    private readonly Dictionary<Process, string> _names = [];
    private readonly X509Certificate2 _authority = ClusterCertificates.CreateAuthority("bench", DateTimeOffset.UtcNow);
    private readonly string _operatorKey;
    private readonly int _redisPort = FreePort();
    private readonly BenchPostgres _database;

    private BenchCluster()
    {
        _database = new BenchPostgres();
        _processes.Add(Start("redis-server", ["--port", _redisPort.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _root], []));
        _operatorKey = Path.Combine(_root, "operator-key.pem");
        using (Residency.Audit.OperatorSigningKey.LoadOrCreate(_operatorKey))
        {
        }
    }

    /// <summary>
    /// Where members started from now on append their first-token stage marks (<c>SOVEREIGN_FIRST_TOKEN_MARKS</c>), one
    /// file per member named by its node id; null: none kept.
    /// </summary>
    public string? MarksDirectory { get; set; }

    /// <summary>The database disk's flush time now (<see cref="BenchPostgres.FlushMilliseconds"/>).</summary>
    public double DatabaseFlushMilliseconds() => _database.FlushMilliseconds();

    /// <summary>Starts the cluster's Redis and database; members are started one by one.</summary>
    public static BenchCluster Create() => new();

    /// <summary>Starts a <c>--role gateway</c> process on plain http; returns it and its URL.</summary>
    public (Process Process, Uri Url) StartGateway(string nodeId)
    {
        var data = Member(nodeId, ServerRole.Gateway);
        var url = new Uri($"http://127.0.0.1:{FreePort()}/");
        var process = Start("dotnet", [Path.Combine(AppContext.BaseDirectory, "sovereign.dll"), "serve", "--role", "gateway", "--urls", url.ToString().TrimEnd('/'), "--data-dir", data],
            Environment(nodeId));
        _processes.Add(process);
        _names[process] = nodeId;
        return (process, url);
    }

    /// <summary>Starts a <c>--role node</c> process on https with <paramref name="arguments"/> (its models or engines); returns it and its URL.</summary>
    public (Process Process, Uri Url) StartNode(string nodeId, IEnumerable<string> arguments)
    {
        var data = Member(nodeId, ServerRole.Node);
        var url = new Uri($"https://127.0.0.1:{FreePort()}/");
        var environment = Environment(nodeId);
        environment["Sovereign__Cluster__NodeUrl"] = url.ToString().TrimEnd('/');
        var process = Start("dotnet",
            [Path.Combine(AppContext.BaseDirectory, "sovereign.dll"), "serve", "--role", "node", "--urls", url.ToString().TrimEnd('/'), "--data-dir", data, .. arguments], environment);
        _processes.Add(process);
        _names[process] = nodeId;
        return (process, url);
    }

    /// <summary>CPU time the cluster's processes (Redis and every member still running) have used so far.</summary>
    public TimeSpan MembersCpu() => MemberCpuTimes().Aggregate(TimeSpan.Zero, (sum, m) => sum + m.Cpu);

    /// <summary>Each process's CPU time so far, by name (redis, then members in start order).</summary>
    public IReadOnlyList<(string Name, TimeSpan Cpu)> MemberCpuTimes()
    {
        var times = new List<(string, TimeSpan)>();
        foreach (var process in _processes)
        {
            try
            {
                process.Refresh();
                times.Add((_names.GetValueOrDefault(process, "redis"), process.HasExited ? TimeSpan.Zero : process.TotalProcessorTime));
            }
            catch (InvalidOperationException)
            {
                // Exited meanwhile.
            }
        }

        return times;
    }

    /// <summary>
    /// Each member's voluntary context switches so far, per thread (from /proc; Linux only, else none): a thread that
    /// blocks and is woken again, so about one per hand-off between threads. See <see cref="WakeUpsBetween"/>.
    /// </summary>
    public IReadOnlyList<(string Name, Dictionary<string, long> Threads)> MemberWakeUps()
    {
        var counts = new List<(string, Dictionary<string, long>)>();
        foreach (var process in _processes)
        {
            if (!_names.TryGetValue(process, out var name) || !Directory.Exists($"/proc/{process.Id}/task"))
            {
                continue;
            }

            var threads = new Dictionary<string, long>();
            foreach (var task in Directory.EnumerateDirectories($"/proc/{process.Id}/task"))
            {
                try
                {
                    foreach (var line in File.ReadLines(Path.Combine(task, "status")))
                    {
                        if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal))
                        {
                            threads[Path.GetFileName(task)] = long.Parse(line.AsSpan("voluntary_ctxt_switches:".Length).Trim(), CultureInfo.InvariantCulture);
                        }
                    }
                }
                catch (IOException)
                {
                    // The thread ended meanwhile.
                }
            }

            counts.Add((name, threads));
        }

        return counts;
    }

    /// <summary>
    /// A member's voluntary context switches between two <see cref="MemberWakeUps"/> samples: the threads alive at the
    /// second, each from its count at the first (or from 0, started since). Threads that ended between are not
    /// counted, so this is a lower bound.
    /// </summary>
    public static long WakeUpsBetween(Dictionary<string, long>? before, Dictionary<string, long> after) =>
        after.Sum(thread => thread.Value - (before is not null && before.TryGetValue(thread.Key, out var earlier) ? earlier : 0));

    /// <summary>A certificate a gateway of this cluster presents (to reach a node directly, as a gateway would).</summary>
    public X509Certificate2 GatewayCertificate(string nodeId)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var identity = new ClusterIdentity(ServerRole.Gateway, nodeId);
        using var issued = ClusterCertificates.Issue(_authority, ClusterCertificates.CreateSigningRequest(identity, key), identity, DateTimeOffset.UtcNow);
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>A client of a member that trusts only the cluster CA, presenting <paramref name="certificate"/> and <paramref name="token"/>.</summary>
    public HttpClient Client(Uri address, X509Certificate2? certificate, string token)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
            MaxConnectionsPerServer = int.MaxValue,
        };
        var authority = _authority;
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

    /// <summary>Waits until <paramref name="path"/> answers 2xx with a body <paramref name="ready"/> accepts; fails with the member's last lines if it exits.</summary>
    public static async Task WaitAsync(Process member, HttpClient client, string path, Func<string, bool> ready)
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

    /// <summary>Waits until the gateway's registry lists <paramref name="nodeId"/> with a load report that has <paramref name="model"/> loaded.</summary>
    public static Task WaitForNodeAsync(Process gateway, HttpClient admin, string nodeId, string model) =>
        WaitAsync(gateway, admin, "admin/v1/nodes", body => JsonDocument.Parse(body).RootElement.GetProperty("data").EnumerateArray()
            .Any(n => n.GetProperty("id").GetString() == nodeId && n.GetProperty("load") is { ValueKind: JsonValueKind.Object } load
                && load.GetProperty("models").EnumerateArray().Any(m => m.GetProperty("id").GetString() == model)));

    /// <summary>A priced plan, a TH tenant with limits that never refuse and a key; returns the key.</summary>
    public static async Task<string> SetUpTenantAsync(HttpClient admin, string tenant, string model)
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
        await Call(HttpMethod.Post, "admin/v1/plans/standard/prices", $$"""{"model":"{{model}}","input_per_million":1,"output_per_million":2}""");
        await Call(HttpMethod.Post, "admin/v1/tenants", $$$"""{"id":"{{{tenant}}}","plan":"standard","policy":{"allowed_jurisdictions":["{{{BenchServer.Jurisdiction}}}"]}}""");
        await Call(HttpMethod.Put, $"admin/v1/tenants/{tenant}/limits",
            """{"budgets":[{"period":"day","amount":1000000}],"rate_limits":[{"requests_per_minute":100000000,"tokens_per_minute":100000000000}]}""");
        var key = await Call(HttpMethod.Post, $"admin/v1/tenants/{tenant}/keys", """{"name":"bench"}""");
        return key.GetProperty("secret").GetString()!;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in Enumerable.Reverse(_processes))
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }

            process.Dispose();
        }

        _database.Dispose();
        _authority.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    private Dictionary<string, string> Environment(string nodeId)
    {
        var environment = BaseEnvironment(nodeId);
        if (MarksDirectory is { } marks)
        {
            environment["SOVEREIGN_FIRST_TOKEN_MARKS"] = Path.Combine(marks, nodeId + ".marks");
        }

        return environment;
    }

    private Dictionary<string, string> BaseEnvironment(string nodeId) => new()
    {
        ["OMP_WAIT_POLICY"] = "PASSIVE",
        ["Sovereign__AdminToken"] = BenchServer.AdminToken,
        ["Sovereign__Jurisdiction"] = BenchServer.Jurisdiction,
        ["Sovereign__NodeId"] = nodeId,
        ["Sovereign__BuiltInEmbeddings"] = "false",
        ["Sovereign__Cluster__Redis"] = $"127.0.0.1:{_redisPort}",
        ["Sovereign__Cluster__ClusterId"] = "bench-" + Path.GetFileName(_root),
        ["Sovereign__Cluster__Secret"] = Secret,
        ["Sovereign__Database__Provider"] = "PostgreSql",
        ["Sovereign__Database__ConnectionString"] = _database.ConnectionString,
        ["Logging__LogLevel__Default"] = "Warning",

        // A loaded 2-core machine can delay a node's report past the default 5 s; a stale node is not routed to.
        ["Sovereign__Cluster__NodeStaleSeconds"] = "30",
        ["Logging__LogLevel__Orleans"] = "Error",
        ["Logging__LogLevel__llama.cpp"] = "Error",
    };

    /// <summary>A member's data directory with its certificate, key, the CA and the operator key.</summary>
    private string Member(string nodeId, ServerRole role)
    {
        var data = Directory.CreateDirectory(Path.Combine(_root, nodeId)).FullName;
        File.Copy(_operatorKey, Path.Combine(data, "operator-key.pem"));
        var identity = new ClusterIdentity(role, nodeId);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var issued = ClusterCertificates.Issue(_authority, ClusterCertificates.CreateSigningRequest(identity, key), identity, DateTimeOffset.UtcNow);
        ClusterTlsCredentials.WritePem(Path.Combine(data, "cluster-key.pem"), key.ExportPkcs8PrivateKeyPem(), secret: true);
        ClusterTlsCredentials.WritePem(Path.Combine(data, "cluster-cert.pem"), issued.ExportCertificatePem(), secret: false);
        ClusterTlsCredentials.WritePem(Path.Combine(data, "cluster-ca.pem"), _authority.ExportCertificatePem(), secret: false);
        if (role == ServerRole.Gateway)
        {
            using var caKey = _authority.GetECDsaPrivateKey()!;
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

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
