using LLama.Native;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Sovereign.Gateway.Console;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.Models;
using Sovereign.Gateway.Observability;
using Sovereign.Gateway.OpenAI;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.Hosting;

/// <summary>Wires the gateway into a web application: <see cref="AddSovereignGateway"/> then <see cref="UseSovereignGateway"/>.</summary>
public static class SovereignGateway
{
    /// <summary>The OpenTelemetry service name of metrics and traces, unless <c>OTEL_SERVICE_NAME</c> sets another.</summary>
    public const string ServiceName = "sovereign";

    /// <summary>Registers options (validated at start), the model catalog, metrics, tracing and request limits.</summary>
    public static WebApplicationBuilder AddSovereignGateway(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddOptions<SovereignOptions>().BindConfiguration(SovereignOptions.SectionName).ValidateOnStart();
        services.PostConfigure<SovereignOptions>(NameModelsAfterTheirFiles);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SovereignOptions>, SovereignOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new EngineMetrics(sp.GetService<System.Diagnostics.Metrics.IMeterFactory>()));
        // llama.cpp logs through our logger (category "llama.cpp") instead of writing to stdout itself; this must
        // start before the catalog loads the first model.
        services.AddHostedService<NativeLogBridge>();
        services.TryAddSingleton<ShutdownCut>();
        services.TryAddSingleton<ModelCatalog>();
        services.TryAddSingleton<FrontedEngines>();
        services.AddHostedService(sp => sp.GetRequiredService<ModelCatalog>());
        builder.AddControlPlane();
        services.AddSovereignConsole();
        services.AddLocalNodeRegistration();
        // Read the raw setting: the validated options are only resolved at start, where a bad value is reported.
        services.AddOptions<KestrelServerOptions>().Configure<IConfiguration>((kestrel, configuration) =>
            kestrel.Limits.MaxRequestBodySize = configuration.GetValue<long?>($"{SovereignOptions.SectionName}:Limits:MaxRequestBodyBytes") is >= 1024 and var limit
                ? limit
                : LimitsOptions.DefaultMaxRequestBodyBytes);

        // Kestrel's own rejections (431, a malformed request line...) get OpenAI's error body too.
        services.AddOptions<KestrelServerOptions>().Configure(kestrel =>
            kestrel.ConfigureEndpointDefaults(listen => listen.Use(KestrelRejections.Wrap)));

        var telemetry = services.AddOpenTelemetry();
        if (string.IsNullOrEmpty(builder.Configuration["OTEL_SERVICE_NAME"]))
        {
            // Unnamed, every metric and span came from "unknown_service:dotnet" (Prometheus' target_info, the OTLP
            // resource); OTEL_SERVICE_NAME still names it otherwise.
            telemetry.ConfigureResource(resource => resource.AddService(ServiceName));
        }

        // The views' settings, bound as the options bind them (SeriesSettings), once, when the meter provider is built.
        var seriesSettings = new Lazy<MeteringOptions>(() => SeriesSettings(builder.Configuration));
        telemetry
            .WithMetrics(metrics => metrics
                // "System.Runtime": the runtime's own meter (GC heap and allocations, thread pool, working set), so
                // an operator watching a long-running server for growth can tell managed heap from native memory.
                .AddMeter(EngineMetrics.MeterName, GenAiMetrics.MeterName, Sovereign.Cluster.Security.ClusterCertificateExpiry.MeterName, Sovereign.Residency.Audit.AuditMetrics.MeterName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "System.Runtime")
                // The money series, one per tenant and currency, each keep a series for every tenant (OpenTelemetry's
                // default of 2,000 folded the 2,001st tenant's spend and every later one's into otel_metric_overflow).
                .AddView(instrument => instrument.Meter.Name == EngineMetrics.MeterName && instrument.Name is RequestMetering.SpendMetric or RequestMetering.BudgetRemainingMetric
                    ? new MetricStreamConfiguration { CardinalityLimit = seriesSettings.Value.SpendSeriesLimit }
                    : null)
                // The GenAI histograms carry the tenant: OpenTelemetry's 2,000 series each folded every tenant past
                // about 1,000 into otel_metric_overflow. Their own limit, and a switch that drops the tenant label.
                .AddView(instrument => GenAiMetrics.View(instrument, seriesSettings.Value.GenAiTenantLabel, seriesSettings.Value.GenAiSeriesLimit))
                .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0)); // a scrape shows settled spend at once; /metrics needs the operator token, so scrapes are few
        if (!string.IsNullOrEmpty(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            // Spans only where they go somewhere: without an exporter every request would build its activities and
            // their tags for nothing (a few percent of the governed path's allocations).
            telemetry
                .WithTracing(tracing => tracing
                    .AddSource(GatewayTelemetry.ActivitySourceName)
                    .AddAspNetCoreInstrumentation(o => o.RecordException = false))
                .UseOtlpExporter();
        }

        // ASP.NET Core's "Request starting ..." line carries the query string, where a client may have put its key
        // (?api_key=...): that category stays off whatever the configuration says. Off, not Warning: it writes nothing
        // above Information on a running server, and hosting builds an Activity and a log scope for every request
        // while that category is enabled at Critical, for no listener (a tracing exporter still gets its spans: its
        // listener asks for them). Added after configuration binding, for every provider a setting names, so it wins
        // over a configured rule (a Logging:Console:LogLevel:Default of Trace switched the request lines back on).
        // Kestrel's bad-request lines (Debug, category BadRequests) quote what it refused whenever its category is at
        // Information or below: a malformed request target with its query string (?api_key=...), or a header line with
        // its value (an Authorization header with a stray byte). Off as well: each refusal is still answered with its
        // status and OpenAI's error body (KestrelRejections), and the connection's other Kestrel lines still show.
        services.PostConfigure<LoggerFilterOptions>(filters =>
        {
            KeepOff(filters, HostingDiagnosticsCategory);
            KeepOff(filters, KestrelBadRequestsCategory);
        });
        QuietLogging(builder.Logging);
        return builder;
    }

    /// <summary>
    /// The metering settings the metrics views use (<see cref="MeteringOptions.SpendSeriesLimit"/>,
    /// <see cref="MeteringOptions.GenAiSeriesLimit"/>, <see cref="MeteringOptions.GenAiTenantLabel"/>), bound by the
    /// configuration binder exactly as the options are (its converter reads <c>0x7530</c> as 30,000) but not validated:
    /// the meter provider is built while the app is built (<c>MapPrometheusScrapingEndpoint</c>), before the start's
    /// validation, and resolving the validated options there threw <see cref="OptionsValidationException"/> out of the
    /// build for any other bad setting instead of stopping the start with the message naming it. A value the binder
    /// refuses, or one outside the validator's range, gives the defaults here: the start stops on it anyway. The views
    /// read the raw settings each their own way before (the GenAI limit with <c>int.TryParse</c>), so a hexadecimal
    /// value the options bound as 30,000 left the GenAI histograms at 20,000.
    /// </summary>
    internal static MeteringOptions SeriesSettings(IConfiguration configuration)
    {
        var bound = new MeteringOptions();
        try
        {
            configuration.GetSection($"{SovereignOptions.SectionName}:Metering").Bind(bound);
        }
        catch (InvalidOperationException)
        {
            return new MeteringOptions();
        }

        return new MeteringOptions
        {
            SpendSeriesLimit = bound.SpendSeriesLimit is >= MeteringOptions.MinSeriesLimit and <= MeteringOptions.MaxSeriesLimit ? bound.SpendSeriesLimit : MeteringOptions.DefaultSpendSeriesLimit,
            GenAiSeriesLimit = bound.GenAiSeriesLimit is >= MeteringOptions.MinSeriesLimit and <= MeteringOptions.MaxSeriesLimit ? bound.GenAiSeriesLimit : MeteringOptions.DefaultGenAiSeriesLimit,
            GenAiTenantLabel = bound.GenAiTenantLabel,
        };
    }

    /// <summary>
    /// A model configured by its path alone (<c>Sovereign__Models__0__Path</c>, as the test model's warning and the
    /// README suggest) is named after its file, as <c>--model PATH</c> names it; it stopped the start with
    /// "Sovereign:Models:0:Id is required".
    /// </summary>
    private static void NameModelsAfterTheirFiles(SovereignOptions options)
    {
        foreach (var model in options.Models)
        {
            if (string.IsNullOrWhiteSpace(model.Id) && !string.IsNullOrWhiteSpace(model.Path))
            {
                model.Id = Path.GetFileNameWithoutExtension(model.Path.Trim());
            }
        }
    }

    /// <summary>Maps /v1, /health, /ready and /metrics. Call after <see cref="AddSovereignGateway"/>.</summary>
    public static WebApplication UseSovereignGateway(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);

        // Middleware pipeline — order matters: application responses marked apart from Kestrel's own, evidence headers
        // on every /v1 answer, then errors wrap everything that can throw.
        // Armed now: it counts a stop's grace from the moment the stop begins.
        _ = app.Services.GetRequiredService<ShutdownCut>();
        // The pool's gauge (sovereign_cluster_nodes) on every process that routes: a cluster node leaves it to gateways.
        // Made once the server has started, not here: resolving it reads the options, and a bad setting must stop the
        // start with its own message (it was thrown from here, before the start, by the node directory's options).
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            if (app.Services.GetService<IGrainFactory>() is not null
                && app.Services.GetRequiredService<IOptions<Cluster.Hosting.SovereignClusterOptions>>().Value is not { IsDistributed: true, Role: Cluster.Hosting.ServerRole.Node })
            {
                _ = app.Services.GetService<PoolMetrics>();
            }

            // Open budget leases and reservations, wherever money is admitted (a node's relayed requests too).
            _ = app.Services.GetService<MoneyMetrics>();
        });
        app.Use(KestrelRejections.MarkApplicationResponses);
        app.UseRequestIds();
        app.UseEvidenceHeaders();
        app.UseOpenAIErrors();
        app.UseStatusCodePages(OpenAIErrorResults.WriteStatusCodePageAsync);
        var v1 = app.MapOpenAIApi();
        app.MapTokenizerEndpoints();
        var admin = app.MapAdminApi();
        admin.MapMeteringApi(v1);
        app.MapNodeJoin(admin);
        v1.MapTenantSelfApi();
        app.MapSovereignConsole();
        app.MapGet("/health", () => TypedResults.Json(new { status = "ok" }));
        app.MapGet("/ready", ReadyAsync);

        // Metrics name tenants, spend and remaining budgets: only the operator may scrape them.
        app.MapPrometheusScrapingEndpoint("/metrics", meterProvider: null, configureBranchedPipeline: RequireOperatorToken, optionsName: null);

        // Last: every GET endpoint mapped above takes HEAD too (RFC 9110; uptime monitors and link checkers send it).
        HeadWhereGet.Apply(app);
        return app;
    }

    /// <summary>
    /// Readiness: 200 <c>ready</c>, or 503 with why not (<c>loading</c>, <c>database_unavailable</c>,
    /// <c>membership_lost</c>; on a node, <c>no_models</c>, <c>draining</c> and <c>down</c> with a <c>reason</c>). Anyone who reaches the port (a load balancer, an orchestrator's probe) gets the status
    /// alone: it told them the ids of the models loaded and, in an outage, where the database is. With the operator
    /// token it adds <c>models</c> and the failure's cause (<c>error</c>); another token is not refused, only anonymous.
    /// </summary>
    private static async Task<IResult> ReadyAsync(HttpContext context, ModelCatalog catalog, IServiceProvider services, CancellationToken cancellationToken)
    {
        var operatorAsks = await services.GetRequiredService<AdminToken>().MatchesAsync(AdminToken.Presented(context), cancellationToken);
        IResult NotReady(string status, string? error) => Results.Json(
            operatorAsks && error is not null ? new { status, error } : (object)new { status }, statusCode: StatusCodes.Status503ServiceUnavailable);

        // A cluster whose membership table is gone answers every request 503 until its members restart: not ready.
        if (services.GetService<Cluster.Hosting.MembershipTableWatch>() is { State: Cluster.Hosting.MembershipTableState.Lost } watch)
        {
            return NotReady("membership_lost", watch.Problem);
        }

        if (!catalog.IsReady)
        {
            return NotReady("loading", null);
        }

        // A database that cannot record requests refuses every one of them (fail closed): not ready either.
        if (services.GetService<ControlPlane.DatabaseHealth>() is { } database && await database.CheckAsync(cancellationToken) is { } problem)
        {
            return NotReady("database_unavailable", problem);
        }

        // A node serves only its models: one that serves none, or that the operator drained or took down, gets no
        // traffic from a load balancer either (gateways route around it already). A gateway or an all-in-one server is
        // still the way in to the API, the console and the other nodes: ready without models of its own.
        if (services.GetService<IOptions<Cluster.Hosting.SovereignClusterOptions>>()?.Value.Role == Cluster.Hosting.ServerRole.Node)
        {
            string? localState = null;
            if (services.GetService<Routing.NodeDirectory>() is { } directory)
            {
                try
                {
                    localState = (await directory.GetLocalNodeAsync())?.State;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The registry did not answer: its state unknown, the node is judged by its models (the database
                    // check above already answered for an outage).
                }
            }

            if (NodeNotReady(catalog.All.Count + (services.GetService<FrontedEngines>()?.All.Count ?? 0), localState) is { } notReady)
            {
                return Results.Json(new { status = notReady.Status, reason = notReady.Reason }, statusCode: StatusCodes.Status503ServiceUnavailable);
            }
        }

        return Results.Json(operatorAsks ? new { status = "ready", models = catalog.All.Select(m => m.Id) } : (object)new { status = "ready" });
    }

    /// <summary>
    /// Why a node (role <c>node</c>) is not ready, or null: <c>no_models</c> when it serves no model (none configured,
    /// no engine fronted), <c>draining</c> or <c>down</c> when the operator set its state so (<paramref name="localState"/>,
    /// as the registry holds it). The reason is for a human reading a probe's answer; it names nothing secret.
    /// </summary>
    internal static (string Status, string Reason)? NodeNotReady(int servedModels, string? localState) =>
        localState == nameof(Residency.ControlPlane.NodeState.Draining)
            ? ("draining", "This node is draining (sovereign nodes drain): it finishes the work it has and takes nothing new. sovereign nodes state <id> active puts it back in rotation.")
        : localState == nameof(Residency.ControlPlane.NodeState.Down)
            ? ("down", "An operator took this node out of rotation (state down): sovereign nodes state <id> active puts it back.")
        : servedModels == 0
            ? ("no_models", "This node serves no models: configure Sovereign:Models or Sovereign:Engines (or pull a model) and restart it.")
        : null;

    /// <summary>The category of ASP.NET Core's request start/finish log lines (URL with query string).</summary>
    internal const string HostingDiagnosticsCategory = "Microsoft.AspNetCore.Hosting.Diagnostics";

    /// <summary>The category of Kestrel's lines about requests it refused (the refused target or header quoted).</summary>
    internal const string KestrelBadRequestsCategory = "Microsoft.AspNetCore.Server.Kestrel.BadRequests";

    private static void RequireOperatorToken(IApplicationBuilder branch) => branch.Use(async (context, next) =>
    {
        var (credential, refused) = await context.RequestServices.GetRequiredService<AdminToken>().AuthenticateAsync(AdminToken.Presented(context), context.RequestAborted);
        if (credential is not null)
        {
            await next(context);
            return;
        }

        GatewayLog.MetricsScrapeRefused(context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(GatewayLog.RequestsCategory));
        throw refused ?? OpenAIException.Unauthorized("/metrics needs the operator token (Authorization: Bearer <admin token>).");
    });
    /// <summary>OpenAI's API version header, as OpenAI states it on every answer (the version its REST API has kept).</summary>
    internal const string OpenAIVersionHeader = "openai-version";

    /// <summary>The version OpenAI states (<c>2020-10-01</c>).</summary>
    internal const string OpenAIVersion = "2020-10-01";

    /// <summary>OpenAI's header for the milliseconds from the request to the answer's start.</summary>
    internal const string ProcessingMsHeader = "openai-processing-ms";

    /// <summary>
    /// Every /v1 answer says where it was handled: a routed request's own node and jurisdiction (set by the router),
    /// else this gateway's (a model list, a 401, a 404). Undeclared is <see cref="Routing.InferenceRouter.Undeclared"/>.
    /// It also carries OpenAI's <c>openai-version</c> and <c>openai-processing-ms</c>, as OpenAI sends them on every
    /// answer, errors and streams included: clients read them (openai-python 0.x's <c>response_ms</c>; .NET clients
    /// that call <c>GetValues("Openai-Processing-Ms")</c>, which throws when the header is missing). The milliseconds
    /// run from this middleware to the answer's start: a stream's headers, so its first event, not its end.
    /// </summary>
    private static void UseEvidenceHeaders(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<SovereignOptions>>();

        // Made once; its state is one small object per /v1 request (the context and when the request reached here).
        Func<object, Task> stateHere = state =>
        {
            var answer = (V1Answer)state;
            var settings = options.Value;
            var headers = answer.Context.Response.Headers;
            headers.TryAdd(Routing.InferenceRouter.JurisdictionHeader,
                string.IsNullOrWhiteSpace(settings.Jurisdiction) ? Routing.InferenceRouter.Undeclared : settings.Jurisdiction.ToUpperInvariant());
            headers.TryAdd(Routing.InferenceRouter.NodeHeader, settings.NodeId);
            headers[OpenAIVersionHeader] = OpenAIVersion;
            headers[ProcessingMsHeader] = ((long)System.Diagnostics.Stopwatch.GetElapsedTime(answer.Started).TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Task.CompletedTask;
        };
        app.Use((context, next) =>
        {
            if (context.Request.Path.StartsWithSegments("/v1", StringComparison.Ordinal))
            {
                context.Response.OnStarting(stateHere, new V1Answer(context, System.Diagnostics.Stopwatch.GetTimestamp()));
            }

            return next(context);
        });
    }

    /// <summary>A /v1 request's context and the timestamp it reached the evidence headers' middleware.</summary>
    private sealed record V1Answer(HttpContext Context, long Started);

    /// <summary>
    /// Quiet by default: a start prints where it listens and what it loaded, and a request prints nothing unless
    /// it fails. Orleans' option dumps and ASP.NET Core's per-request lines go below Warning; "Logging" settings
    /// (sovereign.json or Logging__LogLevel__... variables) still override each category.
    /// </summary>
    internal static void QuietLogging(ILoggingBuilder logging) =>
        logging.Services.Configure<LoggerFilterOptions>(filters =>
        {
            LoggerFilterRule[] quiet =
            [
                new(null, "Orleans", LogLevel.Warning, null),
                new(null, "Microsoft.Orleans", LogLevel.Warning, null),
                // The watchdog warns about a long first GC pause while the silo and models load, and the silo advises
                // ServerGC, which the CLI turns off on purpose (a small heap for a command-line tool): neither is a fault.
                new(null, "Orleans.Runtime.Watchdog", LogLevel.Error, null),
                new(null, "Orleans.Runtime.Silo", LogLevel.Error, null),
                new(null, "Polly", LogLevel.Warning, null),
                // IHttpClientFactory logs four lines per upstream request at Information, each naming the engine's URL.
                new(null, "System.Net.Http.HttpClient", LogLevel.Warning, null),
                new(null, "Microsoft.AspNetCore", LogLevel.Warning, null),
                new(null, "Microsoft.Hosting.Lifetime", LogLevel.Information, null),
                new(null, "llama.cpp", LogLevel.Warning, null),
            ];

            // Before the settings' rules: of two rules for one category the later wins, and these were added after
            // them, so a setting naming a category (Logging__LogLevel__Microsoft.AspNetCore=Information, as the README
            // says) changed nothing.
            for (var i = quiet.Length - 1; i >= 0; i--)
            {
                filters.Rules.Insert(0, quiet[i]);
            }
        });

    /// <summary>
    /// Keeps <paramref name="category"/> off whatever the "Logging" settings say. A rule for one provider
    /// (<c>Logging:Console:LogLevel:Default</c>) outranks every rule that names none, and a longer category name (a
    /// wildcard) a shorter one: so the "off" rule is added for no provider and for each provider a setting names, last
    /// (the later of two equal rules wins), and a setting that names the category more closely than it is dropped.
    /// </summary>
    internal static void KeepOff(LoggerFilterOptions filters, string category)
    {
        var providers = filters.Rules.Select(rule => rule.ProviderName).Append(null).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        for (var i = filters.Rules.Count - 1; i >= 0; i--)
        {
            if (filters.Rules[i].CategoryName is { } name && name.Length > category.Length && Matches(name, category))
            {
                filters.Rules.RemoveAt(i);
            }
        }

        foreach (var provider in providers)
        {
            filters.Rules.Add(new LoggerFilterRule(provider, category, LogLevel.None, null));
        }
    }

    /// <summary>Whether a rule's category (a name or a prefix, with at most one <c>*</c>) applies to <paramref name="category"/>, as the logging library matches it.</summary>
    private static bool Matches(string ruleCategory, string category)
    {
        var star = ruleCategory.IndexOf('*', StringComparison.Ordinal);
        var prefix = star < 0 ? ruleCategory : ruleCategory[..star];
        var suffix = star < 0 ? "" : ruleCategory[(star + 1)..];
        return category.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) && category.EndsWith(suffix, StringComparison.OrdinalIgnoreCase);
    }

    private sealed class NativeLogBridge(ILoggerFactory loggerFactory) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            NativeLogConfig.llama_log_set(new NativeLogFilter(loggerFactory.CreateLogger("llama.cpp")));
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>
    /// Demotes llama.cpp warnings that say nothing the operator can act on: the per-sequence context differs from
    /// the training context whenever --ctx-size or --parallel split the KV cache, which is by design here.
    /// </summary>
    private sealed class NativeLogFilter(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel) || logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Warning && formatter(state, exception).Contains("n_ctx_seq", StringComparison.Ordinal))
            {
                logLevel = LogLevel.Debug;
            }

            if (inner.IsEnabled(logLevel))
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
            }
        }
    }
}
