using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.Observability;
using Sovereign.Inference.Engine;
using YamlDotNet.RepresentationModel;

namespace Sovereign.Gateway.FunctionalTests.Observability;

/// <summary>
/// What an on-call engineer (explorer36) needs from a running server: error answers counted by the rule that gave
/// them, the audit log's commits timed, the pool's nodes by health, the refusal log naming the request id the client
/// was given, and the guide's metric table and <c>deploy/prometheus/sovereign-alerts.yml</c> naming only metrics the
/// server exports. Each test runs its own short-lived server (see <see cref="MetricsExportTests"/> for why).
/// </summary>
public sealed partial class MonitoringDocsTests
{
    private const string Chat = """{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":2}""";

    /// <summary>
    /// Found by explorer36: no log line named the request. A tenant quotes its x-request-id; the refusal's line (4001)
    /// said method, path, status and code only (the console format writes no scopes, and hosting's scope is off).
    /// </summary>
    [Fact]
    public async Task RefusalLog_NamesTheRequestId_TheClientWasGiven()
    {
        var run = await RunAsync(async (http, _) =>
        {
            using var refused = await http.GetAsync("/v1/models/no-such-model");
            Assert.Equal(404, (int)refused.StatusCode);
            return [refused.Headers.GetValues("x-request-id").Single()];
        });

        var requestId = Assert.Single(run.Results);
        Assert.StartsWith("req_", requestId, StringComparison.Ordinal);
        var line = Assert.Single(run.Logs, l => l.Event.Id == 4001 && l.Message.Contains("/v1/models/no-such-model", StringComparison.Ordinal));
        Assert.EndsWith("; request " + requestId, line.Message, StringComparison.Ordinal);
    }

    /// <summary>Found by explorer36: /metrics had the status by route, never the rule that refused (residency, budget, rate limit, queue).</summary>
    [Fact]
    public async Task Metrics_CountErrorAnswers_ByStatusAndCode()
    {
        var run = await RunAsync(async (http, _) =>
        {
            using var unknownModel = await http.PostAsync("/v1/chat/completions", Json(Chat.Replace("\"stories\"", "\"no-such-model\"", StringComparison.Ordinal)));
            Assert.Equal(404, (int)unknownModel.StatusCode);
            using var misspelt = await http.PostAsync("/v1/chat/completions", Json(Chat.Replace("\"max_tokens\"", "\"max_tokenz\"", StringComparison.Ordinal)));
            Assert.Equal(400, (int)misspelt.StatusCode);
            return [];
        });

        Assert.True(Count(run.Metrics, "sovereign_error_answers_total", "code=\"model_not_found\"", "http_response_status_code=\"404\"") >= 1, Excerpt(run.Metrics, "sovereign_error_answers"));
        Assert.True(Count(run.Metrics, "sovereign_error_answers_total", "code=\"unknown_parameter\"", "http_response_status_code=\"400\"") >= 1, Excerpt(run.Metrics, "sovereign_error_answers"));
    }

    /// <summary>A relayed engine's answer can carry any code: only code-shaped ones, and at most 200 of them, get a series.</summary>
    [Fact]
    public void ErrorAnswerCodes_AreBounded()
    {
        Assert.Equal("none", GatewayMetrics.Bounded(null));
        Assert.Equal("residency_violation", GatewayMetrics.Bounded("residency_violation"));
        Assert.Equal("other", GatewayMetrics.Bounded("Bad Code\"}"));
        Assert.Equal("other", GatewayMetrics.Bounded(new string('a', 65)));
        for (var i = 0; i < GatewayMetrics.MaxCodes + 10; i++)
        {
            _ = GatewayMetrics.Bounded($"flood_{i}");
        }

        Assert.Equal("other", GatewayMetrics.Bounded("flood_after_the_bound_" + Guid.NewGuid().ToString("N")));
        Assert.Equal("residency_violation", GatewayMetrics.Bounded("residency_violation"));
    }

    /// <summary>
    /// A counter that first appears at 1 hides that first increase from rate() and increase(): an alert on the
    /// database's refusals missed the first after each restart. It is exported at 0 before any refusal.
    /// </summary>
    [Fact]
    public async Task Metrics_DatabaseRefusals_AreExportedBeforeTheFirst()
    {
        var run = await RunAsync((_, _) => Task.FromResult<string[]>([]));

        Assert.Contains(run.Metrics.Split('\n'), l => l.StartsWith("sovereign_database_refusals_total{", StringComparison.Ordinal));
    }

    /// <summary>Found by explorer36: nothing said how long the audit log's commits take, though every request waits on one.</summary>
    [Fact]
    public async Task Metrics_TimeTheAuditLogsCommits()
    {
        var run = await RunAsync(async (http, _) =>
        {
            using var ok = await http.PostAsync("/v1/chat/completions", Json(Chat));
            Assert.Equal(200, (int)ok.StatusCode);
            return [];
        });

        Assert.True(Count(run.Metrics, "sovereign_audit_commit_duration_seconds_count", "outcome=\"committed\"") >= 1, Excerpt(run.Metrics, "sovereign_audit"));
        Assert.True(Count(run.Metrics, "sovereign_audit_entries_total", "outcome=\"committed\"") >= 2, Excerpt(run.Metrics, "sovereign_audit"));
    }

    /// <summary>
    /// Nothing told the on-call engineer how far the audit chain was ahead of its last signed checkpoint (what a verifier
    /// cannot prove untouched yet), nor how much money a gateway held open in budget leases and reservations. Each is
    /// on /metrics now, the lag by chain.
    /// </summary>
    [Fact]
    public async Task Metrics_AuditCheckpointLag_AndOpenLeasesAndReservations_AreExported()
    {
        var run = await RunAsync(async (http, _) =>
        {
            using var ok = await http.PostAsync("/v1/chat/completions", Json(Chat));
            Assert.Equal(200, (int)ok.StatusCode);
            return [];
        });

        var lines = run.Metrics.Split('\n');
        Assert.Contains(lines, l => l.StartsWith("sovereign_audit_checkpoint_lag_entries{", StringComparison.Ordinal) && l.Contains("chain=\"shared\"", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("sovereign_audit_checkpoint_lag_seconds{", StringComparison.Ordinal) && l.Contains("chain=\"shared\"", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("sovereign_budget_leases_open", StringComparison.Ordinal) && !l.StartsWith("sovereign_budget_leases_open_", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("sovereign_reservations_open", StringComparison.Ordinal) && !l.StartsWith("sovereign_reservations_open_", StringComparison.Ordinal));
    }

    /// <summary>
    /// The lag's values: entries appended since the newest checkpoint, and the seconds since it while they wait; both 0
    /// once the head is signed.
    /// </summary>
    [Fact]
    public async Task AuditCheckpointLag_CountsUnsignedEntries_AndTheTimeSinceTheCheckpoint()
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-lag-").FullName;
        try
        {
            var clock = new Sovereign.Tests.ManualClock(DateTimeOffset.UtcNow);
            using var key = Sovereign.Residency.Audit.OperatorSigningKey.CreateEphemeral();
            var database = Sovereign.Storage.SqlDatabase.Sqlite(Path.Combine(directory, "sovereign.db"));
            await using var audit = await Sovereign.Residency.Audit.AuditLog.OpenAsync(database, key, new Sovereign.Residency.Audit.AuditLogOptions { CheckpointInterval = 1000 }, clock);
            Sovereign.Residency.Audit.AuditRecord Entry(int i) => new()
            {
                Kind = Sovereign.Residency.Audit.AuditKind.Admin, Actor = "lag", Action = Sovereign.Residency.Audit.AuditActions.TenantCreate, Tenant = $"t{i}",
            };

            await audit.AppendAsync(Entry(0));
            await audit.CheckpointAsync();
            Assert.Equal((0L, 0d), audit.CheckpointLag());

            clock.Set(clock.GetUtcNow().AddSeconds(90));
            for (var i = 1; i <= 3; i++)
            {
                await audit.AppendAsync(Entry(i));
            }

            Assert.Equal((3L, 90d), audit.CheckpointLag());
            await audit.CheckpointAsync();
            Assert.Equal((0L, 0d), audit.CheckpointLag());
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// The GenAI histograms carry <c>tenant</c>, and kept OpenTelemetry's 2,000 series each: past about 1,000 tenants
    /// (two token types a tenant) every later one went into one overflow series. Each now keeps
    /// <c>Sovereign:Metering:GenAiSeriesLimit</c> (20,000 by default), and <c>GenAiTenantLabel=false</c> drops the label.
    /// </summary>
    [Fact]
    public void GenAiHistograms_KeepTheirOwnSeriesLimit_AndDropTheTenantOnlyWhenTold()
    {
        foreach (var instrument in Sovereign.Gateway.Observability.GenAiMetrics.Instance.Instruments)
        {
            var on = Assert.IsType<OpenTelemetry.Metrics.MetricStreamConfiguration>(Sovereign.Gateway.Observability.GenAiMetrics.View(instrument, tenantLabel: true, Sovereign.Gateway.Hosting.MeteringOptions.DefaultGenAiSeriesLimit));
            Assert.Equal((20_000, (string[]?)null), (on.CardinalityLimit, on.TagKeys));
            var off = Sovereign.Gateway.Observability.GenAiMetrics.View(instrument, tenantLabel: false, 50_000)!;
            Assert.Equal(50_000, off.CardinalityLimit);
            Assert.DoesNotContain("tenant", off.TagKeys!);
            Assert.Contains("gen_ai.request.model", off.TagKeys!);
        }

        using var other = new Meter("Sovereign.Tests.NotGenAi");
        Assert.Null(Sovereign.Gateway.Observability.GenAiMetrics.View(other.CreateHistogram<double>("gen_ai.other"), true, 20_000));
    }

    /// <summary>With the tenant label off, a served request's GenAI series name its model and no tenant.</summary>
    [Fact]
    public async Task Metrics_GenAiTenantLabelOff_TheHistogramsCarryNoTenant()
    {
        var run = await RunAsync(async (http, _) =>
        {
            using var ok = await http.PostAsync("/v1/chat/completions", Json(Chat));
            Assert.Equal(200, (int)ok.StatusCode);
            return [];
        }, new Dictionary<string, string?> { ["Sovereign:Metering:GenAiTenantLabel"] = "false" });

        var usage = run.Metrics.Split('\n').Where(l => l.StartsWith("gen_ai_client_token_usage_count{", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(usage);
        Assert.All(usage, l => Assert.DoesNotContain("tenant=", l, StringComparison.Ordinal));
        Assert.Contains(usage, l => l.Contains("gen_ai_request_model=\"stories\"", StringComparison.Ordinal));
    }

    /// <summary>
    /// Found by explorer36: the pool's health was in <c>sovereign cluster status</c> only, nothing an alert could read.
    /// Iceland, which no other test uses: test servers share the process, so their pool gauges are all exported here.
    /// </summary>
    [Fact]
    public async Task Metrics_CountThePoolsNodes_ByHealth_EveryHealthStated()
    {
        var run = await RunAsync(async (http, admin) =>
        {
            foreach (var id in (string[])["pool-engine-a", "pool-engine-b"])
            {
                using var registered = await admin.PostAsync("/admin/v1/nodes", Json(
                    $$"""{"id":"{{id}}","jurisdiction":"IS","base_url":"http://127.0.0.1:9","models":[{"id":"{{id}}-model","upstream":"m"}]}"""));
                Assert.Equal(201, (int)registered.StatusCode);
            }

            using var drained = await admin.PutAsync("/admin/v1/nodes/pool-engine-b/state", Json("""{"state":"draining"}"""));
            Assert.Equal(200, (int)drained.StatusCode);
            return [];
        });

        Assert.Equal(1, Count(run.Metrics, "sovereign_cluster_nodes", "health=\"up\"", "jurisdiction=\"IS\""));
        Assert.Equal(1, Count(run.Metrics, "sovereign_cluster_nodes", "health=\"draining\"", "jurisdiction=\"IS\""));
        foreach (var health in (string[])["down", "unreachable", "stale", "untrusted"])
        {
            Assert.Contains(run.Metrics.Split('\n'), l => l.StartsWith("sovereign_cluster_nodes{", StringComparison.Ordinal)
                && l.Contains($"health=\"{health}\"", StringComparison.Ordinal) && l.Contains("jurisdiction=\"IS\"", StringComparison.Ordinal) && l.EndsWith(" 0", StringComparison.Ordinal));
        }

        // Present, not its value: test servers share the process, and another one's registry may be stopping.
        Assert.Contains(run.Metrics.Split('\n'), l => l.StartsWith("sovereign_cluster_registry_available{", StringComparison.Ordinal));
    }

    /// <summary>
    /// The guide's table and the alert rules name metrics a dashboard or an alert reads: each must be on a running
    /// server's /metrics (or, for those that appear only in a cluster or once a tenant was settled, be an instrument the
    /// server publishes under that name); every alert in the rules is in the guide's table and the other way round.
    /// </summary>
    [Fact]
    public async Task MonitoringDocs_NameOnlyExportedMetrics_AndTheSameAlerts()
    {
        var rules = LoadRules();
        var guide = GuideSection();
        var tableRows = guide.Split('\n').Where(l => l.StartsWith("| `", StringComparison.Ordinal)).ToList();
        var documented = tableRows.Where(r => !AlertName().IsMatch(r)).Select(r => MetricName().Match(r)).Where(m => m.Success).Select(m => m.Value).ToList();
        var conditional = tableRows.Where(r => r.Contains("*cluster*", StringComparison.Ordinal) || r.Contains("*tenants*", StringComparison.Ordinal))
            .Select(r => MetricName().Match(r).Value).ToHashSet(StringComparer.Ordinal);
        Assert.True(documented.Count >= 20, $"the guide's table lists {documented.Count} metrics");

        var inRules = rules.Rules.SelectMany(r => MetricName().Matches(r.Expr + "\n" + r.Summary).Select(m => m.Value)).Distinct().ToList();
        var undocumented = inRules.Select(Base).Where(n => !documented.Contains(n)).ToList();
        Assert.True(undocumented.Count == 0, "named in the rules, not in the guide's table: " + string.Join(", ", undocumented));

        var documentedAlerts = tableRows.Select(r => AlertName().Match(r)).Where(m => m.Success).Select(m => m.Groups[1].Value).Order().ToList();
        Assert.Equal(rules.Rules.Select(r => r.Alert).Order().ToList(), documentedAlerts);

        var run = await RunAsync(async (http, admin) =>
        {
            // A registered engine, so the pool's series exist (a single server's own node is implicit).
            using var registered = await admin.PostAsync("/admin/v1/nodes", Json(
                """{"id":"docs-engine","jurisdiction":"TH","base_url":"http://127.0.0.1:9","models":[{"id":"docs-engine-model","upstream":"m"}]}"""));
            Assert.Equal(201, (int)registered.StatusCode);
            using var ok = await http.PostAsync("/v1/chat/completions", Json(Chat));
            Assert.Equal(200, (int)ok.StatusCode);
            using var refused = await http.GetAsync("/v1/models/no-such-model");
            Assert.Equal(404, (int)refused.StatusCode);
            return [];
        });

        var types = run.Metrics.Split('\n').Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]).ToHashSet(StringComparer.Ordinal);
        var missing = documented.Concat(inRules.Select(Base)).Distinct()
            .Where(name => conditional.Contains(name) ? !run.Instruments.Contains(name) : !types.Contains(name))
            .ToList();
        Assert.True(missing.Count == 0, "not exported: " + string.Join(", ", missing) + "; exported: " + string.Join(", ", types.Order()));
    }

    private static string Base(string name) =>
        HistogramSuffix().Replace(name, "");

    private static long Count(string metrics, string name, params string[] labels) =>
        metrics.Split('\n')
            .Where(l => l.StartsWith(name + "{", StringComparison.Ordinal) && labels.All(label => l.Contains(label, StringComparison.Ordinal)))
            .Select(l => long.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture))
            .DefaultIfEmpty(0)
            .Sum();

    private static string Excerpt(string metrics, string prefix) =>
        string.Join(" | ", metrics.Split('\n').Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).Take(20));

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static (List<(string Alert, string Expr, string Summary)> Rules, int Groups) LoadRules()
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(RepositoryRoot(), "deploy", "prometheus", "sovereign-alerts.yml")))
        {
            yaml.Load(reader);
        }

        var root = (YamlMappingNode)yaml.Documents.Single().RootNode;
        var groups = (YamlSequenceNode)root.Children[new YamlScalarNode("groups")];
        var rules = new List<(string, string, string)>();
        foreach (var group in groups.Cast<YamlMappingNode>())
        {
            Assert.False(string.IsNullOrEmpty(((YamlScalarNode)group.Children[new YamlScalarNode("name")]).Value));
            foreach (var rule in ((YamlSequenceNode)group.Children[new YamlScalarNode("rules")]).Cast<YamlMappingNode>())
            {
                string Scalar(YamlMappingNode node, string key) => ((YamlScalarNode)node.Children[new YamlScalarNode(key)]).Value!;
                var labels = (YamlMappingNode)rule.Children[new YamlScalarNode("labels")];
                Assert.Contains(Scalar(labels, "severity"), (string[])["critical", "warning", "info"]);
                rules.Add((Scalar(rule, "alert"), Scalar(rule, "expr"), Scalar((YamlMappingNode)rule.Children[new YamlScalarNode("annotations")], "summary")));
            }
        }

        Assert.Equal(rules.Count, rules.Select(r => r.Item1).Distinct().Count());
        return (rules, groups.Children.Count);
    }

    private static string GuideSection()
    {
        var guide = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "operator-guide.md"));
        var start = guide.IndexOf("\n## Monitoring and alerts\n", StringComparison.Ordinal);
        Assert.True(start >= 0, "docs/operator-guide.md has no \"Monitoring and alerts\" section");
        var end = guide.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        return end < 0 ? guide[start..] : guide[start..end];
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "deploy", "prometheus", "sovereign-alerts.yml")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("deploy/prometheus/sovereign-alerts.yml not found above " + AppContext.BaseDirectory);
    }

    /// <summary>The Prometheus name OpenTelemetry's exporter gives an instrument (dots to underscores, unit suffix, <c>_total</c> on counters).</summary>
    private static string PrometheusName(Instrument instrument)
    {
        var name = instrument.Name.Replace('.', '_');
        name += instrument.Unit switch
        {
            "s" => "_seconds",
            "By" => "_bytes",
            _ => "",
        };
        var type = instrument.GetType();
        return type.IsGenericType && (type.GetGenericTypeDefinition() == typeof(Counter<>) || type.GetGenericTypeDefinition() == typeof(ObservableCounter<>))
            ? name + "_total"
            : name;
    }

    /// <summary>
    /// Starts a server with stories260K, runs <paramref name="act"/> against it, then scrapes /metrics with the operator
    /// token; returns what <paramref name="act"/> returned, the scrape, the server's log and the instruments published.
    /// </summary>
    private static async Task<(string[] Results, string Metrics, List<(LogLevel Level, EventId Event, string Message)> Logs, HashSet<string> Instruments)> RunAsync(
        Func<HttpClient, HttpClient, Task<string[]>> act, IDictionary<string, string?>? overrides = null)
    {
        var dataDirectory = Directory.CreateTempSubdirectory("sovereign-test-").FullName;
        var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = ServerFixture.Stories, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 2, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = dataDirectory,
            Overrides = overrides ?? new Dictionary<string, string?>(),
        }, []);
        var captured = new ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        try
        {
            app.Services.GetRequiredService<ILoggerFactory>().AddProvider(capture);
            await app.StartAsync();
            using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
            using var admin = new HttpClient { BaseAddress = http.BaseAddress };
            admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue(
                "Bearer", File.ReadAllText(Path.Combine(dataDirectory, Sovereign.Gateway.ControlPlane.AdminToken.FileName)).Trim());
            var results = await act(http, admin);

            // The cluster certificate's gauges are made on first use, which a single server never reaches.
            _ = Sovereign.Cluster.Security.ClusterCertificateExpiry.ExpiryGauge;
            var instruments = new HashSet<string>(StringComparer.Ordinal);
            using (var listener = new MeterListener { InstrumentPublished = (instrument, _) => { lock (instruments) { instruments.Add(PrometheusName(instrument)); } } })
            {
                listener.Start();
            }

            var metrics = await admin.GetStringAsync("/metrics");
            capture.Stop();
            return (results, metrics, [.. captured.Select(l => (l.Level, l.Event, l.Message))], instruments);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            Directory.Delete(dataDirectory, recursive: true);
        }
    }

    [GeneratedRegex(@"\b(sovereign|gen_ai|http_server|dotnet|kestrel)_[a-z0-9_]+\b")]
    private static partial Regex MetricName();

    [GeneratedRegex(@"^\| `(Sovereign[A-Za-z]+)` \|")]
    private static partial Regex AlertName();

    [GeneratedRegex("_(bucket|count|sum)$")]
    private static partial Regex HistogramSuffix();
}
