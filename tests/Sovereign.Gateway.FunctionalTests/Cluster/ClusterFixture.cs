using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;
using Sovereign.Gateway.FunctionalTests.Storage;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// A small national pool on loopback, every member a real <c>sovereign serve</c> process: Redis holds the Orleans
/// membership, PostgreSQL the state; gateways in TH and SG (no models) and one node in each (stories260K). The
/// nodes and the TH gateway start together, so their migrations race on one database. Needs Debian's redis-server
/// and postgresql (<c>test.sh</c> installs both). Every member authenticates with a certificate of the fixture's cluster
/// CA (mutual TLS between silos), as in production.
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public const string AdminToken = "cluster-admin-token";
    public const string Secret = "cluster-secret-for-tests";
    public const string Model = "stories";
    public const decimal InputPerMillion = 1m;
    public const decimal OutputPerMillion = 1000m;

    private readonly string _root = Directory.CreateTempSubdirectory("sovereign-cluster-").FullName;
    private readonly PostgreSqlFixture _postgres = new();
    private readonly List<Member> _members = [];
    private readonly X509Certificate2 _authority = ClusterCertificates.CreateAuthority("test", DateTimeOffset.UtcNow);
    private Process? _redis;
    private int _redisPort;

    /// <summary>What TLS material a member started by <see cref="Start"/> holds.</summary>
    public enum Certificate
    {
        /// <summary>One the cluster CA signed for its role and node id (gateways also hold the CA key, to sign joins).</summary>
        Issued,

        /// <summary>None: a node that receives its certificate when it joins with a token.</summary>
        None,

        /// <summary>A valid-looking one for its role and id, from a CA of its own that it trusts, not the cluster's.</summary>
        Foreign,
    }

    public Member GatewayTh { get; private set; } = null!;
    public Member GatewaySg { get; private set; } = null!;
    public Member NodeTh { get; private set; } = null!;
    public Member NodeSg { get; private set; } = null!;

    /// <summary>The operator's key file every trusted member shares (it signs node credentials and checkpoints).</summary>
    public string OperatorKeyFile => Path.Combine(_root, "operator-key.pem");

    /// <summary>The cluster CA every issued member certificate chains to.</summary>
    public X509Certificate2 Authority => _authority;

    /// <summary>A certificate (with key) the cluster CA issues for <paramref name="identity"/>, as a member would hold.</summary>
    public X509Certificate2 IssueCertificate(ClusterIdentity identity)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var issued = ClusterCertificates.Issue(_authority, ClusterCertificates.CreateSigningRequest(identity, key), identity, DateTimeOffset.UtcNow);
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>The cluster's one PostgreSQL database (tenants, ledger, the audit chain).</summary>
    public string DatabaseConnectionString => _postgres.ConnectionString;

    public async Task InitializeAsync()
    {
        await _postgres.InitializeAsync();
        StartRedis();
        using (Residency.Audit.OperatorSigningKey.LoadOrCreate(OperatorKeyFile))
        {
        }

        NodeTh = Start("node-th", "node", "TH", withModel: true, languages: ["en"]);
        NodeSg = Start("node-sg", "node", "SG", withModel: true);
        GatewayTh = Start("gateway-th", "gateway", "TH", withModel: false);
        await Task.WhenAll(WaitReadyAsync(NodeTh), WaitReadyAsync(NodeSg), WaitReadyAsync(GatewayTh));

        // The standard plan, set at one gateway (a price change reaches running gateways too: see the price test).
        using var admin = GatewayTh.Client(AdminToken);
        await Expect(admin.PutAsJsonAsync("/admin/v1/plans/standard", new { currency = "EUR" }), 200);
        await Expect(admin.PostAsJsonAsync("/admin/v1/plans/standard/prices", new { model = Model, input_per_million = InputPerMillion, output_per_million = OutputPerMillion }), 201);

        GatewaySg = Start("gateway-sg", "gateway", "SG", withModel: false);
        await WaitReadyAsync(GatewaySg);
        await Task.WhenAll(WaitForNodesAsync(GatewayTh, "node-th", "node-sg"), WaitForNodesAsync(GatewaySg, "node-th", "node-sg"));
    }

    public async Task DisposeAsync()
    {
        foreach (var member in _members)
        {
            member.Stop();
        }

        if (_redis is { HasExited: false })
        {
            _redis.Kill(entireProcessTree: true);
            await _redis.WaitForExitAsync();
        }

        _redis?.Dispose();
        _authority.Dispose();
        await _postgres.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    /// <summary>
    /// Starts one more member. <paramref name="trusted"/> false gives it a key of its own, so its self-issued
    /// credential is not the operator's; <paramref name="operatorKeyFile"/> and <paramref name="operatorKeyHistory"/>
    /// give it another operator key file than the cluster's, and a key history beside it.
    /// </summary>
    public Member Start(
        string nodeId, string role, string jurisdiction, bool withModel, string? modelId = null, bool trusted = true, IReadOnlyDictionary<string, string>? extraEnvironment = null,
        Certificate certificate = Certificate.Issued, IReadOnlyList<string>? joinWith = null, IReadOnlyList<string>? languages = null,
        string? operatorKeyFile = null, string? operatorKeyHistory = null)
    {
        var data = Path.Combine(_root, nodeId);
        Directory.CreateDirectory(data);
        if (trusted)
        {
            File.Copy(operatorKeyFile ?? OperatorKeyFile, Path.Combine(data, "operator-key.pem"), overwrite: true);
        }

        // A member given the operator's key history (operator-key-history.pem beside its key), as after a rotation.
        if (operatorKeyHistory is not null)
        {
            File.Copy(operatorKeyHistory, Path.Combine(data, Residency.Audit.OperatorKeyHistory.FileName), overwrite: true);
        }

        if (certificate != Certificate.None)
        {
            var identity = new ClusterIdentity(role == "node" ? ServerRole.Node : ServerRole.Gateway, nodeId);
            using var foreign = certificate == Certificate.Foreign ? ClusterCertificates.CreateAuthority("test", DateTimeOffset.UtcNow) : null;
            var authority = foreign ?? _authority;
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            using var issued = ClusterCertificates.Issue(authority, ClusterCertificates.CreateSigningRequest(identity, key), identity, DateTimeOffset.UtcNow);
            ClusterTlsCredentials.WritePem(Path.Combine(data, "cluster-key.pem"), key.ExportPkcs8PrivateKeyPem(), secret: true);
            ClusterTlsCredentials.WritePem(Path.Combine(data, "cluster-cert.pem"), issued.ExportCertificatePem(), secret: false);
            ClusterTlsCredentials.WritePem(Path.Combine(data, "cluster-ca.pem"), authority.ExportCertificatePem(), secret: false);
            if (role != "node")
            {
                using var caKey = authority.GetECDsaPrivateKey()!;
                ClusterTlsCredentials.WritePem(Path.Combine(data, "cluster-ca-key.pem"), caKey.ExportPkcs8PrivateKeyPem(), secret: true);
            }
        }

        // Nodes listen on https with their cluster certificate: gateways relay to them over TLS, checked against the CA.
        var port = Sovereign.Tests.LoopbackPorts.Unused();
        var url = $"{(role == "node" ? "https" : "http")}://127.0.0.1:{port}";
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        List<string> args = [Path.Combine(AppContext.BaseDirectory, "sovereign.dll"), "serve", "--role", role, "--urls", url, "--data-dir", data];
        if (withModel)
        {
            args.AddRange(["--model", $"{TestModels.Stories260K}={modelId ?? Model}", "--threads", "1", "--ctx-size", "256", "--parallel", "2"]);
            args.AddRange((languages ?? []).SelectMany(language => new[] { "--language", language }));
        }

        args.AddRange(joinWith ?? []);
        args.ForEach(start.ArgumentList.Add);
        var environment = start.Environment;
        environment["OMP_WAIT_POLICY"] = "PASSIVE";
        environment["Sovereign__AdminToken"] = AdminToken;
        environment["Sovereign__BuiltInEmbeddings"] = "false";
        if (joinWith is null)
        {
            environment["Sovereign__Jurisdiction"] = jurisdiction;
            environment["Sovereign__NodeId"] = nodeId;
            environment["Sovereign__Database__Provider"] = "PostgreSql";
            environment["Sovereign__Database__ConnectionString"] = _postgres.ConnectionString.Replace("Maximum Pool Size=20", "Maximum Pool Size=8", StringComparison.Ordinal);
            environment["Sovereign__Cluster__Redis"] = $"127.0.0.1:{_redisPort}";
            environment["Sovereign__Cluster__ClusterId"] = "test-" + Path.GetFileName(_root);
            environment["Sovereign__Cluster__Secret"] = Secret;
            environment["Sovereign__Cluster__NodeUrl"] = url;
        }

        // A killed node stays "recently reported" for the whole run, so a gateway finds it dead by its first failed
        // connection (what the failover test checks), never by the clock.
        environment["Sovereign__Cluster__NodeStaleSeconds"] = "3600";

        // Members killed by a test are dead in membership from the start of their grace; no test stops one gracefully mid-request.
        environment["Sovereign__Cluster__InterruptedGraceSeconds"] = "1";
        foreach (var (name, value) in extraEnvironment ?? new Dictionary<string, string>())
        {
            environment[name] = value;
        }

        var member = new Member(nodeId, new Uri(url), data, Process.Start(start)!, _authority);
        _members.Add(member);
        return member;
    }

    /// <summary>
    /// The silo address (<c>ip:port@generation</c>, as the cluster status names members) where the grain directory in
    /// Redis says <paramref name="grainId"/> (e.g. <c>tenant/ct1</c>) is active; null when it is not.
    /// </summary>
    public async Task<string?> GrainSiloAsync(string grainId)
    {
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{_redisPort}");
        var entry = await redis.GetDatabase().StringGetAsync($"test-{Path.GetFileName(_root)}/directory/{grainId}");
        return entry.IsNullOrEmpty ? null : JsonDocument.Parse(entry.ToString()).RootElement.GetProperty("SiloAddress").GetString();
    }

    /// <summary>Waits until the member answers /ready (or fails if it exits first).</summary>
    public static async Task WaitReadyAsync(Member member)
    {
        using var probe = member.Client(null);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            while (true)
            {
                Assert.False(member.Process.HasExited, $"{member.Id} exited during start-up:\n{member.Output}");
                try
                {
                    if ((await probe.GetAsync("/ready", timeout.Token)).IsSuccessStatusCode)
                    {
                        return;
                    }
                }
                catch (HttpRequestException)
                {
                }

                await Task.Delay(100, timeout.Token);
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            Assert.Fail($"{member.Id} did not become ready within 3 minutes:\n{member.Output}");
        }
    }

    /// <summary>Waits until <paramref name="gateway"/>'s registry lists each node with a load report.</summary>
    public static async Task WaitForNodesAsync(Member gateway, params string[] nodeIds)
    {
        using var admin = gateway.Client(AdminToken);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        while (true)
        {
            var nodes = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/nodes", timeout.Token)).RootElement.GetProperty("data").EnumerateArray()
                .Where(n => n.GetProperty("load").ValueKind == JsonValueKind.Object)
                .Select(n => n.GetProperty("id").GetString())
                .ToHashSet();
            if (nodeIds.All(nodes.Contains))
            {
                return;
            }

            await Task.Delay(200, timeout.Token);
        }
    }

    /// <summary>Waits until <paramref name="gateway"/>'s registry shows <paramref name="nodeId"/> in the state asked.</summary>
    public static async Task<JsonElement> WaitForNodeAsync(Member gateway, string nodeId, Func<JsonElement, bool> state)
    {
        using var admin = gateway.Client(AdminToken);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        while (true)
        {
            var found = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/nodes", timeout.Token)).RootElement.GetProperty("data").EnumerateArray()
                .Where(n => n.GetProperty("id").GetString() == nodeId && state(n)).Select(n => (JsonElement?)n.Clone()).FirstOrDefault();
            if (found is { } node)
            {
                return node;
            }

            await Task.Delay(200, timeout.Token);
        }
    }

    /// <summary>Waits until <paramref name="gateway"/>'s cluster status shows the member in <paramref name="status"/>.</summary>
    public static async Task WaitForMemberAsync(Member gateway, string name, string status)
    {
        using var admin = gateway.Client(AdminToken);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        while (!JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/cluster", timeout.Token)).RootElement.GetProperty("members").EnumerateArray()
            .Any(m => m.GetProperty("name").GetString() == name && m.GetProperty("status").GetString() == status))
        {
            await Task.Delay(200, timeout.Token);
        }
    }

    public static async Task<JsonElement> Expect(Task<HttpResponseMessage> call, int status)
    {
        using var response = await call;
        var body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {body}");
        return body.Length == 0 ? default : JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>
    /// As <see cref="Expect(Task{HttpResponseMessage}, int)"/>, with the latest output of <paramref name="at"/>, the
    /// member that answered, in the failure message: a 500's cause is in that member's log, not in the answer.
    /// </summary>
    public static async Task<JsonElement> Expect(Member at, Task<HttpResponseMessage> call, int status)
    {
        using var response = await call;
        var body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {body}\n{at.Id} printed:\n{at.Output}");
        return body.Length == 0 ? default : JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>Runs the <c>sovereign</c> CLI against <paramref name="gateway"/> as the operator; returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Output)> CliAsync(Member gateway, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])[Path.Combine(AppContext.BaseDirectory, "sovereign.dll"), .. args, "--url", gateway.Url.ToString(), "--admin-token", AdminToken])
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + await stderr);
    }

    private void StartRedis()
    {
        _redisPort = Sovereign.Tests.LoopbackPorts.Unused();
        _redis = Sovereign.Tests.RedisServerProcess.Start(_redisPort, _root);
    }

    /// <summary>One <c>sovereign serve</c> process of the cluster.</summary>
    public sealed class Member
    {
        // The start-up (first lines) and the latest lines: what a failure message or a log assertion needs.
        private readonly ConcurrentQueue<string> _start = new();
        private readonly ConcurrentQueue<string> _output = new();

        // Every line, for log assertions (PrintedAsync): the latest 200 above can lose a line to a burst after it.
        private readonly ConcurrentQueue<string> _printed = new();
        private int _stopped;
        private bool _saidReady;

        private readonly X509Certificate2 _authority;

        public Member(string id, Uri url, string data, Process process, X509Certificate2 authority)
        {
            Id = id;
            DataDirectory = data;
            Url = url;
            Process = process;
            _authority = authority;
            process.OutputDataReceived += (_, e) => Keep(e.Data);
            process.ErrorDataReceived += (_, e) => Keep(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public string Id { get; }

        public string DataDirectory { get; }

        public Uri Url { get; }

        public Process Process { get; }

        /// <summary>Whether it ever said it was ready (its silo had joined and its HTTP listener was open).</summary>
        public bool SaidReady => Volatile.Read(ref _saidReady);

        /// <summary>The last lines it printed (for failure messages).</summary>
        public string Output => string.Join('\n', _start.Concat(_output));

        /// <summary>
        /// Whether it printed a line matching <paramref name="match"/>, waiting for one (bounded, for a broken build): its
        /// console logger writes on a thread of its own and its output comes through a pipe, so a line logged before an
        /// answer may be read after it.
        /// </summary>
        public async Task<bool> PrintedAsync(Func<string, bool> match)
        {
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (!_printed.Any(match))
            {
                if (bound.IsCancellationRequested)
                {
                    return false;
                }

                await Task.Delay(50, CancellationToken.None);
            }

            return true;
        }

        /// <summary>A client of this member; over https it trusts the cluster CA only, and presents <paramref name="certificate"/> if given.</summary>
        public HttpClient Client(string? token, X509Certificate2? certificate = null)
        {
            var handler = new SocketsHttpHandler();
            handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, _) =>
                presented is X509Certificate2 served && ClusterCertificates.Validate(served, _authority, DateTimeOffset.UtcNow, out _) is not null;
            if (certificate is not null)
            {
                handler.SslOptions.ClientCertificates = [certificate];
            }

            var client = new HttpClient(handler) { BaseAddress = Url };
            if (token is not null)
            {
                client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }

            return client;
        }

        /// <summary>
        /// SIGTERM and wait: the silo leaves the membership and hands its grains back, so the rest of the cluster does
        /// not wait for it to be declared dead (a SIGKILLed silo's grains are unreachable until then).
        /// </summary>
        public void StopGracefully()
        {
            if (!Process.HasExited)
            {
                using var term = System.Diagnostics.Process.Start("kill", ["-TERM", Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                term.WaitForExit();
                Process.WaitForExit(60_000);
            }

            Stop();
        }

        public void Stop()
        {
            if (Interlocked.Exchange(ref _stopped, 1) != 0)
            {
                return;
            }

            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                Process.WaitForExit();
            }

            Process.Dispose();
        }

        private void Keep(string? line)
        {
            if (line is null)
            {
                return;
            }

            if (line.Contains("sovereign serve: ready on", StringComparison.Ordinal))
            {
                Volatile.Write(ref _saidReady, true);
            }

            if (_printed.Count < 100_000)
            {
                _printed.Enqueue(line);
            }

            if (_start.Count < 200)
            {
                _start.Enqueue(line);
                return;
            }

            _output.Enqueue(line);
            while (_output.Count > 200 && _output.TryDequeue(out _))
            {
            }
        }
    }
}
