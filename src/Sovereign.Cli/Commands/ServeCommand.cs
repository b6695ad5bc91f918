using System.CommandLine;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.AspNetCore.Hosting;
using Sovereign.Gateway.Hosting;
using Sovereign.Inference.Engine;

namespace Sovereign.Cli.Commands;

/// <summary><c>sovereign serve</c>: runs the OpenAI-compatible server.</summary>
internal static partial class ServeCommand
{
    /// <summary>The host's log category: it logs "Hosting failed to start" with the exception's stack at Error.</summary>
    private const string HostCategory = "Microsoft.Extensions.Hosting.Internal.Host";

    /// <summary>The host setting that turns off watching configuration files (and so the working directory) for changes.</summary>
    internal const string NoConfigReloadArgument = "--hostBuilder:reloadConfigOnChange=false";

    /// <summary>Where the server listens unless told otherwise: loopback only.</summary>
    public const string DefaultUrls = "http://127.0.0.1:8080";

    public static Command Create()
    {
        var model = new Option<string[]>("--model", "-m")
        {
            Description = "A GGUF chat model to serve, as PATH or PATH=ID; repeat for several. Without one, the built-in test model is served.",
            AllowMultipleArgumentsPerToken = false,
        };
        var embedding = new Option<string[]>("--embedding-model")
        {
            Description = "A GGUF model to serve for /v1/embeddings, as PATH or PATH=ID; repeatable.",
        };
        var urls = new Option<string?>("--urls") { Description = $"Addresses to listen on, separated by ';' (default {DefaultUrls})." };

        // '--urls 8081' loaded every model, then stopped with Kestrel's "Invalid url: '8081'"; a port past 65535 with
        // "Specified argument was out of the range of valid values. (Parameter 'port')". Both are said at once now.
        urls.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } value && ListenAddressProblem(value) is { } problem)
            {
                r.AddError(problem);
            }
        });
        var threads = new Option<int?>("--threads", "-t") { Description = "CPU threads per model for decoding (default: half the cores)." };
        var parallel = new Option<int?>("--parallel", "-np") { Description = "Sequences decoded together per model (default 8)." };
        var context = new Option<int?>("--ctx-size", "-c") { Description = "Most tokens per sequence (default: the model's, capped at 4096)." };
        var template = new Option<string?>("--chat-template") { Description = "Chat template for models whose GGUF has none (chatml, llama3, mistral-v7, gemma, ...)." };
        var apiKey = new Option<string[]>("--api-key") { Description = "Require this bearer key on /v1; repeatable." };
        var config = new Option<FileInfo?>("--config") { Description = "A JSON config file (default: sovereign.json in the current directory, if present)." };
        var dataDir = new Option<string?>("--data-dir") { Description = "Where Sovereign keeps its files (default ~/.sovereign)." };
        var role = new Option<string?>("--role")
        {
            Description = "all (gateway and node in one process, the default), gateway (routes to the cluster's nodes) or node (serves models to the cluster's gateways); gateway and node need Sovereign:Cluster:Redis (a node started with --join-token receives it).",
        };
        role.AcceptOnlyFromAmong("all", "gateway", "node");
        var joinToken = new Option<string?>("--join-token")
        {
            Description = "A node's one-time join token (sovereign nodes join-token), with --join-url: at first start the node receives its credential, " +
                "certificate, jurisdiction and the cluster's settings (Redis, cluster id, secret, database) from the gateway and keeps them in its data directory.",
        };
        var joinUrl = new Option<string?>("--join-url") { Description = "A gateway's URL to join the cluster through, with --join-token." };
        var nodeId = new Option<string?>("--node-id") { Description = "This process's node id (Sovereign:NodeId), e.g. node-th-3." };
        var nodeUrl = new Option<string?>("--node-url")
        {
            Description = "The URL gateways reach this node at (Sovereign:Cluster:NodeUrl; default: --urls when it names one address, not 0.0.0.0).",
        };

        var engine = new Option<string?>("--engine")
        {
            Description = "An OpenAI-compatible engine this node fronts (vLLM, llama-server, Ollama beside it), as its base URL without /v1, e.g. http://127.0.0.1:8000; "
                + "with --engine-model. More engines: Sovereign:Engines in the config file (--engine replaces the engines configured there).",
        };
        var engineModel = new Option<string[]>("--engine-model") { Description = "A chat model the --engine serves, as ID or ID=ENGINE_NAME; repeatable." };
        var engineEmbeddingModel = new Option<string[]>("--engine-embedding-model") { Description = "An embedding model the --engine serves, as ID or ID=ENGINE_NAME; repeatable." };
        var engineCapacity = new Option<int?>("--engine-capacity") { Description = $"Requests sent to the --engine at once per model (default {Gateway.Models.EngineOptions.DefaultCapacity}); more wait in a fair queue." };
        var engineApiKey = new Option<string?>("--engine-api-key") { Description = "The bearer key the --engine needs, if any." };
        var enginePromptCache = new Option<string?>("--engine-prompt-cache")
        {
            Description = "How the --engine keeps its prompt cache apart between tenants: shared (default; Ollama), salt (vLLM: a cache_salt per tenant) or off (llama-server: cache_prompt false).",
        };
        enginePromptCache.AcceptOnlyFromAmong("shared", "salt", "off");
        var language = new Option<string[]>("--language")
        {
            Description = "A language (ISO 639-1, e.g. th) the chat models of --model and --engine-model serve well; repeatable. "
                + "The auto alias routes requests in it to them, here and at the cluster's gateways.",
        };

        var command = new Command("serve", "Start the OpenAI-compatible server.")
        {
            model, embedding, urls, threads, parallel, context, template, apiKey, config, dataDir, role, joinToken, joinUrl, nodeId, nodeUrl,
            engine, engineModel, engineEmbeddingModel, engineCapacity, engineApiKey, enginePromptCache, language,
        };
        command.SetAction(async (result, cancellationToken) =>
        {
            List<ModelOptions> models;
            Gateway.Models.EngineOptions? fronted;
            try
            {
                models = [.. Parse(result.GetValue(model) ?? [], ModelKind.Chat), .. Parse(result.GetValue(embedding) ?? [], ModelKind.Embedding)];
                fronted = ParseEngine(result.GetValue(engine), result.GetValue(engineModel) ?? [], result.GetValue(engineEmbeddingModel) ?? [], result.GetValue(engineCapacity), result.GetValue(engineApiKey), result.GetValue(enginePromptCache));
                var languages = result.GetValue(language) ?? [];
                var chatModels = models.Where(m => m.Kind == ModelKind.Chat).ToList();
                var engineChatModels = fronted?.Models.Where(m => m.Kind == ModelKind.Chat).ToList() ?? [];
                if (languages.Length > 0 && chatModels.Count + engineChatModels.Count == 0)
                {
                    throw new ArgumentException("--language declares the languages of the chat models given with --model or --engine-model; name one (configured models take Languages in the config file).");
                }

                chatModels.ForEach(m => m.Languages = [.. languages]);
                engineChatModels.ForEach(m => m.Languages = [.. languages]);
            }
            catch (ArgumentException ex)
            {
                await Console.Error.WriteLineAsync("sovereign serve: " + ex.Message);
                return 2;
            }

            var settings = new ServeSettings
            {
                Models = models,
                Engine = fronted,
                Urls = result.GetValue(urls),
                Threads = result.GetValue(threads),
                Parallel = result.GetValue(parallel),
                ContextLength = result.GetValue(context),
                ChatTemplate = result.GetValue(template),
                ApiKeys = result.GetValue(apiKey) ?? [],
                ConfigFile = result.GetValue(config)?.FullName,
                DataDirectory = result.GetValue(dataDir),
                Overrides = new Dictionary<string, string?>
                    {
                        ["Sovereign:Cluster:Role"] = result.GetValue(role),
                        ["Sovereign:Cluster:JoinToken"] = result.GetValue(joinToken),
                        ["Sovereign:Cluster:JoinUrl"] = result.GetValue(joinUrl),
                        ["Sovereign:NodeId"] = result.GetValue(nodeId),
                        ["Sovereign:Cluster:NodeUrl"] = result.GetValue(nodeUrl),
                    }.Where(o => o.Value is not null).ToDictionary(),
            };
            return await RunAsync(settings, cancellationToken);
        });
        return command;
    }

    /// <summary>
    /// Until the first tenant exists, /v1 answers without a key (a fresh install, for this machine's own use). Bound to
    /// an address beyond loopback, anyone who reaches it runs the models with no key, limit or budget, and serve said
    /// nothing of it: it warns, naming the addresses and the two ways to close it.
    /// </summary>
    private static async Task WarnWhenOpenBeyondThisMachineAsync(WebApplication app, SovereignOptions options, CancellationToken cancellationToken)
    {
        var beyond = app.Urls.Where(url => !(Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.IsLoopback || uri.Host == "localhost"))).ToList();
        if (beyond.Count == 0 || options.AnonymousAccess == false
            || app.Services.GetService<Sovereign.Residency.ControlPlane.ControlPlaneStore>() is not { } store
            || (options.AnonymousAccess is null && await store.AnyTenantAsync(cancellationToken)))
        {
            return;
        }

        await Console.Error.WriteLineAsync(
            $"sovereign serve: warning: /v1 answers without an API key (no tenant exists yet{(options.AnonymousAccess == true ? ", and Sovereign:AnonymousAccess is true" : "")}) on {string.Join(", ", beyond)}, " +
            "beyond this machine: anyone who reaches it can use the models. Create a tenant (sovereign tenants create), or set Sovereign__AnonymousAccess=false, or listen on 127.0.0.1.");
    }

    /// <summary>Builds and runs the server until Ctrl+C; a bad setting stops the start with a message naming it.</summary>
    public static async Task<int> RunAsync(ServeSettings settings, CancellationToken cancellationToken)
    {
        WebApplication? app = null;
        try
        {
            app = Build(settings, []);
            // Validate the settings before the host starts, so a bad one is one line, not the host's stack trace.
            var options = app.Services.GetRequiredService<IOptions<SovereignOptions>>().Value;
            if (string.IsNullOrWhiteSpace(options.Jurisdiction))
            {
                await Console.Error.WriteLineAsync(
                    "sovereign serve: warning: this gateway declares no jurisdiction, so it serves no tenant whose policy names jurisdictions " +
                    "(every such request is refused with 403 residency_violation). Declare where it runs: Sovereign__Jurisdiction=TH (or \"Jurisdiction\" in sovereign.json).");
            }

            if (ClusterOnSqliteProblem(options, app.Services.GetRequiredService<IOptions<Sovereign.Cluster.Hosting.SovereignClusterOptions>>().Value) is { } onSqlite)
            {
                await app.DisposeAsync();
                await Console.Error.WriteLineAsync("sovereign serve: cannot start: " + onSqlite);
                return 2;
            }

            if (string.Equals(options.Database.Provider, nameof(Sovereign.Storage.SqlProvider.PostgreSql), StringComparison.OrdinalIgnoreCase)
                && string.IsNullOrWhiteSpace(options.Database.Jurisdiction)
                && app.Services.GetRequiredService<IOptions<Sovereign.Cluster.Hosting.SovereignClusterOptions>>().Value.Role != Sovereign.Cluster.Hosting.ServerRole.Node)
            {
                // Stored responses rest in the shared database: where it runs is declared, not assumed to be this gateway's place.
                await Console.Error.WriteLineAsync(
                    "sovereign serve: warning: the PostgreSQL database declares no jurisdiction, so no response content is stored in it " +
                    "(store: true and previous_response_id are refused with 400 content_store_jurisdiction_undeclared). Declare where it runs: Sovereign__Database__Jurisdiction=TH.");
            }

            foreach (var engine in options.Engines)
            {
                // Said, not silently kept: a shared cache lets one tenant learn by cached_tokens what another sent.
                var cache = Cluster.Grains.EnginePromptCaches.Parse(engine.PromptCache) switch
                {
                    Cluster.Grains.EnginePromptCaches.Salt => " Its prompt cache is kept apart per tenant (cache_salt).",
                    Cluster.Grains.EnginePromptCaches.Off => " Its prompt cache is not reused (cache_prompt false).",
                    _ => " Its prompt cache is shared by every tenant (--engine-prompt-cache salt keeps them apart on vLLM, off on llama-server).",
                };
                await Console.Error.WriteLineAsync($"sovereign serve: fronting the engine at {engine.BaseUrl.Trim()}: {string.Join(", ", engine.Models.Select(m => m.Id))}.{cache}");
            }

            if (!app.Configuration.GetSection("Kestrel:Endpoints").Exists() && AddressInUse(app.Configuration["urls"] ?? DefaultUrls) is { } inUse)
            {
                // Said before the models load (a minute for a large one), not after, when Kestrel binds.
                await app.DisposeAsync();
                await Console.Error.WriteLineAsync("sovereign serve: cannot start: " + inUse);
                return 2;
            }

            await Console.Error.WriteLineAsync(LoadingLine(options, app.Services.GetRequiredService<IOptions<Sovereign.Cluster.Hosting.SovereignClusterOptions>>().Value.ServesModels));
            await app.StartAsync(cancellationToken);
            await WarnWhenOpenBeyondThisMachineAsync(app, options, cancellationToken);
            await Console.Error.WriteLineAsync($"sovereign serve: ready on {string.Join(", ", app.Urls)} (console: {ConsoleUrl(app.Urls.First())}).");
            // Ctrl+C or SIGTERM printed only the host's "Application is shutting down...", then nothing for up to the
            // shutdown timeout while requests in flight finished: an operator could not tell a drain from a hang.
            var drain = app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout;
            app.Lifetime.ApplicationStopping.Register(() => Console.Error.WriteLine(
                $"sovereign serve: stopping: requests in flight have up to {drain.TotalSeconds:0} s to finish (a stream still running shortly before then ends with a server_shutting_down error event, billed for what it delivered); "
                + "then their outcomes are recorded and the audit log is signed."));
        }
        catch (InvalidDataException ex) when (ex.InnerException is { } parse)
        {
            // A config file that is not JSON: the parser's line and position are in the inner exception; the start said
            // only "Failed to load configuration from file '...'".
            var reasons = new List<string>();
            for (var inner = (Exception?)parse; inner is not null; inner = inner.InnerException)
            {
                reasons.Add(inner.Message);
            }

            await Console.Error.WriteLineAsync($"sovereign serve: cannot start: {ex.Message} {string.Join(' ', reasons)}");
            return 2;
        }
        catch (Exception ex) when (ex is OptionsValidationException or InvalidDataException or ArgumentException or FileNotFoundException or ModelLoadException or FormatException or InvalidOperationException)
        {
            StartFailed(app, ex);
            await AbandonStartAsync(app);

            // A setting of the wrong shape fails the binding with the binder's words, which name no setting.
            var shape = ex is InvalidOperationException && app is not null ? Gateway.Hosting.SovereignOptionsValidator.ShapeFailures(app.Configuration) : [];
            await Console.Error.WriteLineAsync("sovereign serve: cannot start: " + (shape.Count > 0 ? string.Join(' ', shape) : ex.Message));
            return 2;
        }
        catch (Residency.Audit.AuditIntegrityException ex)
        {
            await AbandonStartAsync(app);
            // The audit log was truncated or rewritten (its head, or the last head this server signed, is gone): nothing
            // is appended to it or signed over it. Said at Error under its own event, for the alert, and exit 3 as 'audit verify'.
            if (app?.Services.GetService<ILoggerFactory>() is { } loggers)
            {
                LogAuditRefused(loggers.CreateLogger("Sovereign.Cli.Serve"), ex.Message);
            }

            await Console.Error.WriteLineAsync("sovereign serve: cannot start: " + ex.Message);
            return Output.ExitCodes.IntegrityFailure;
        }
        catch (Gateway.ControlPlane.DatabaseUnusableException ex)
        {
            // A read-only or full disk is no bad setting: exit 1, as any local file that cannot be written.
            await Console.Error.WriteLineAsync("sovereign serve: cannot start: " + ex.Message);
            return 1;
        }
        catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
        {
            // It was reported as "cannot reach the server ... Is `sovereign serve` running?" with exit 4.
            StartFailed(app, ex);
            await Console.Error.WriteLineAsync($"sovereign serve: cannot start: {ex.Message} Another process listens there: stop it, or choose another address with --urls.");
            return 2;
        }
        catch (Orleans.Runtime.MembershipService.OrleansClusterConnectivityCheckFailedException ex)
        {
            StartFailed(app, ex);
            // Typically a certificate the cluster's members do not accept (or theirs not accepted here): TLS refused both ways.
            await Console.Error.WriteLineAsync(
                "sovereign serve: cannot start: this member could not reach the cluster's members, so it did not join. Check that its certificate "
                + "(Sovereign:Cluster:TlsCertificate) is signed by the cluster CA the members trust, and that their silo ports are reachable. " + ex.Message);
            return 2;
        }

        await using (app)
        {
            await app.WaitForShutdownAsync(cancellationToken);
            if (app.Services.GetService<Cluster.Hosting.MembershipTableWatch>() is { StoppedForLostTable: true })
            {
                // Not a clean stop: the supervisor (systemd's Restart=on-failure, compose's restart policy) starts it again.
                await Console.Error.WriteLineAsync("sovereign serve: stopped: the cluster's membership table in Redis is gone (Redis restarted empty); start this member again to join a new one.");
                return Cluster.Hosting.MembershipTableWatch.LostTableExitCode;
            }

            if (app.Services.GetService<Gateway.ControlPlane.InstanceHeartbeat>() is { ClosedByAnother: true })
            {
                // Another gateway took this process for dead and closed its open requests (event 4216): a new process starts clean.
                await Console.Error.WriteLineAsync("sovereign serve: stopped: another gateway took this process for dead (it counted no heartbeat in the shared database for longer than the grace) and closed its open requests; start it again.");
                return Gateway.ControlPlane.InstanceHeartbeat.ClosedByAnotherExitCode;
            }

            if (app.Services.GetService<Gateway.ControlPlane.AuditIntegrityWatch>() is { Lost: { } lost })
            {
                // Fail closed, as at start: the log was truncated or rewritten while it ran (event 4220).
                await Console.Error.WriteLineAsync("sovereign serve: stopped: " + lost.Message);
                return Output.ExitCodes.IntegrityFailure;
            }
        }

        await Console.Error.WriteLineAsync("sovereign serve: stopped.");
        return 0;
    }

    /// <summary>
    /// A cluster (Sovereign:Cluster:Redis) on SQLite: each member would keep its own file, so its own budgets (a tenant's
    /// money spent at one gateway unseen at another), its own audit chain, and a node's entries that no gateway checkpoints.
    /// It started without complaint; PostgreSQL is what a cluster shares. A node that joins receives the gateway's database.
    /// </summary>
    internal static string? ClusterOnSqliteProblem(SovereignOptions options, Sovereign.Cluster.Hosting.SovereignClusterOptions cluster) =>
        cluster.IsDistributed && !string.Equals(options.Database.Provider, nameof(Sovereign.Storage.SqlProvider.PostgreSql), StringComparison.OrdinalIgnoreCase)
            ? "a cluster member (Sovereign:Cluster:Redis is set) needs the cluster's shared PostgreSQL database: Sovereign:Database:Provider is "
                + $"'{options.Database.Provider}', so this process would keep its own budgets and audit chain apart from the other members'. "
                + "Set Sovereign__Database__Provider=PostgreSql and Sovereign__Database__ConnectionString (a node started with --join-token receives them from the gateway it joins)."
            : null;

    /// <summary>What <c>serve</c> says it loads before the host starts.</summary>
    /// <remarks>A gateway loads nothing (ModelCatalog returns at once), but this line said it was loading the test model.</remarks>
    internal static string LoadingLine(SovereignOptions options, bool servesModels) =>
        !servesModels
            ? "sovereign serve: a gateway serves no model itself: it relays to the cluster's nodes."
            : options.Models.Count == 0
            ? options.Engines.Count == 0 ? "sovereign serve: loading the built-in test model..." : "sovereign serve: no GGUF model to load."
            : $"sovereign serve: loading {options.Models.Count} model(s): {string.Join(", ", options.Models.Select(m => $"{m.Id} ({SizeOf(m.Path)})"))}...";

    /// <summary>
    /// Whether an address of <paramref name="urls"/> (valid, <see cref="ListenAddressProblem"/>) is taken by another
    /// process: each is bound for a moment, as Kestrel will bind it, and released. Null when all are free (or cannot be
    /// told: an address this machine does not have is left for Kestrel to report). Kestrel binds only after the models
    /// have loaded, so a port already taken was said a minute into the start of a large model.
    /// </summary>
    internal static string? AddressInUse(string urls)
    {
        foreach (var address in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            BindingAddress parsed;
            try
            {
                parsed = BindingAddress.Parse(address);
            }
            catch (FormatException)
            {
                continue;
            }

            if (parsed.IsUnixPipe || parsed.Port is <= 0 or > 65535)
            {
                continue;
            }

            // As Kestrel reads the host: localhost is both loopbacks, an IP itself, anything else every address.
            System.Net.IPAddress[] endpoints = string.Equals(parsed.Host, "localhost", StringComparison.OrdinalIgnoreCase)
                ? [System.Net.IPAddress.Loopback, System.Net.IPAddress.IPv6Loopback]
                : System.Net.IPAddress.TryParse(parsed.Host.Trim('[', ']'), out var ip) ? [ip] : [System.Net.IPAddress.IPv6Any];
            foreach (var endpoint in endpoints)
            {
                try
                {
                    using var probe = new System.Net.Sockets.Socket(endpoint.AddressFamily, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                    if (endpoint.Equals(System.Net.IPAddress.IPv6Any))
                    {
                        probe.DualMode = true;
                    }

                    probe.Bind(new System.Net.IPEndPoint(endpoint, parsed.Port));
                }
                catch (System.Net.Sockets.SocketException ex) when (ex.SocketErrorCode == System.Net.Sockets.SocketError.AddressAlreadyInUse)
                {
                    return $"--urls: {address}: address already in use (another process listens on port {parsed.Port.ToString(CultureInfo.InvariantCulture)}). "
                        + "Stop it, or choose another address with --urls (or the 'urls' setting).";
                }
                catch (System.Net.Sockets.SocketException)
                {
                    // Not this machine's address, or IPv6 off: Kestrel says what it finds when it binds.
                }
            }
        }

        return null;
    }

    /// <summary>What is wrong with an --urls value, or null: each address a URL Kestrel can listen on.</summary>
    internal static string? ListenAddressProblem(string urls)
    {
        foreach (var address in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            BindingAddress parsed;
            try
            {
                parsed = BindingAddress.Parse(address);
            }
            catch (FormatException)
            {
                var example = address.All(char.IsAsciiDigit) ? $"http://127.0.0.1:{address}" : $"http://{address}";
                return $"--urls: '{address}' is not a URL to listen on; give scheme, host and port, e.g. {example}.";
            }

            if (parsed.Scheme is not ("http" or "https"))
            {
                return $"--urls: '{address}' is not an http or https URL.";
            }

            if (!parsed.IsUnixPipe && parsed.Port is < 0 or > 65535)
            {
                return $"--urls: '{address}' has port {parsed.Port}; a port is 0 to 65535.";
            }
        }

        return null;
    }

    /// <summary>
    /// Builds the web application from defaults, the config file, environment variables and flags, in rising
    /// precedence (the usual .NET order).
    /// </summary>
    public static WebApplication Build(ServeSettings settings, string[] args)
    {
        // No file watcher: the host's default appsettings.json source watches the content root (the working directory)
        // and every folder under it for changes, so each SQLite commit in a data directory below it, and every write
        // there by anything else, woke a watcher thread (a relayed request's time before the relay, 1.87 -> 1.33 ms at
        // the median with the data directory under the working directory); started from / or $HOME it would walk the
        // whole tree at start. Settings are read once, at start, as sovereign.json is.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = [NoConfigReloadArgument, .. args],
            ContentRootPath = Directory.GetCurrentDirectory(),
        });
        builder.WebHost.UseKestrelHttpsConfiguration();
        var configFile = settings.ConfigFile ?? Path.Combine(Directory.GetCurrentDirectory(), "sovereign.json");
        if (settings.ConfigFile is not null && !File.Exists(configFile))
        {
            throw new FileNotFoundException($"--config: the file '{configFile}' does not exist.");
        }

        // Re-add environment variables after the file so that they override it, then flags over both.
        builder.Configuration.AddJsonFile(configFile, optional: true, reloadOnChange: false);
        builder.Configuration.AddEnvironmentVariables();
        builder.Configuration.AddInMemoryCollection(settings.ToConfiguration());
        builder.WebHost.UseUrls((builder.Configuration["urls"] ?? DefaultUrls).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        builder.AddSovereignGateway();
        if (settings.Models.Count > 0 || settings.Engine is not null || settings.Threads is not null || settings.Parallel is not null || settings.ContextLength is not null || settings.ChatTemplate is not null)
        {
            builder.Services.PostConfigure<SovereignOptions>(settings.Apply);
        }

        settings.Services?.Invoke(builder.Services);

        // The host logs a failed start at Error with the exception's stack, before serve prints the one line that says
        // what to fix: until the host has started its errors are left to serve, which logs the stack at Debug
        // (StartFailed). Its Critical entries (a background service stopping the host) still show.
        var starting = new StartWindow();
        builder.Logging.AddFilter(HostCategory, level => level >= LogLevel.Information && (level != LogLevel.Error || !starting.Open));
        var app = builder.Build();
        app.Lifetime.ApplicationStarted.Register(() => starting.Open = false);
        app.UseSovereignGateway();
        return app;
    }

    /// <summary>Open from the host's build until it has started.</summary>
    private sealed class StartWindow
    {
        public bool Open { get; set; } = true;
    }

    /// <summary>The failed start's exception, with its stack, at Debug: the operator reads the one line serve prints.</summary>
    /// <summary>
    /// Stops what a failed start had already started. A cluster member's silo joins the membership table before the
    /// services after it start; left there by a process that simply exits, the other members send grain calls to it
    /// (503 cluster_unavailable) until probes declare it dead, and a supervisor restarting a misconfigured member kept
    /// the cluster failing. Stopping leaves the table gracefully; bounded, so a stop that hangs cannot hold the exit.
    /// </summary>
    private static async Task AbandonStartAsync(WebApplication? app)
    {
        if (app is null)
        {
            return;
        }

        using var bounded = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await app.StopAsync(bounded.Token);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Best effort: the start already failed and says why; membership declares a member that did not leave dead.
            StartFailed(app, ex);
        }
    }

    private static void StartFailed(WebApplication? app, Exception exception)
    {
        if (app?.Services.GetService<ILoggerFactory>() is { } loggers)
        {
            LogStartFailed(loggers.CreateLogger("Sovereign.Cli.Serve"), exception);
        }
    }

    [LoggerMessage(EventId = 9001, EventName = "StartFailed", Level = LogLevel.Debug, Message = "The server could not start.")]
    private static partial void LogStartFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 9002, EventName = "AuditLogRefused", Level = LogLevel.Error,
        Message = "The server does not start: the audit log was truncated or rewritten, so nothing is appended to it or signed over it. {Reason}")]
    private static partial void LogAuditRefused(ILogger logger, string reason);

    // A model named by its id alone comes from the registry (its file is checked there): it was said to be "missing".
    private static string SizeOf(string? path) =>
        string.IsNullOrWhiteSpace(path) ? "from the registry"
        : File.Exists(path) ? string.Create(CultureInfo.InvariantCulture, $"{new FileInfo(path).Length / (1024.0 * 1024.0):F0} MiB") : "missing";

    /// <summary>The engine the <c>--engine</c> flags name, or null when they name none.</summary>
    internal static Gateway.Models.EngineOptions? ParseEngine(string? baseUrl, IReadOnlyList<string> chat, IReadOnlyList<string> embedding, int? capacity, string? apiKey, string? promptCache = null)
    {
        if (baseUrl is null)
        {
            return chat.Count > 0 || embedding.Count > 0 || capacity is not null || apiKey is not null || promptCache is not null
                ? throw new ArgumentException("--engine-model, --engine-embedding-model, --engine-capacity, --engine-api-key and --engine-prompt-cache need --engine URL.")
                : null;
        }

        if (chat.Count == 0 && embedding.Count == 0)
        {
            throw new ArgumentException("--engine: name at least one model it serves with --engine-model (chat) or --engine-embedding-model.");
        }

        var models = chat.Select(m => (Value: m, Kind: ModelKind.Chat)).Concat(embedding.Select(m => (Value: m, Kind: ModelKind.Embedding))).Select(m =>
        {
            var parts = m.Value.Split('=', 2);
            if (string.IsNullOrWhiteSpace(parts[0]) || (parts.Length == 2 && string.IsNullOrWhiteSpace(parts[1])))
            {
                var flag = m.Kind == ModelKind.Embedding ? "--engine-embedding-model" : "--engine-model";
                throw new ArgumentException($"{flag} '{m.Value}': expected ID or ID=ENGINE_NAME.");
            }

            return new Gateway.Models.EngineModelOptions { Id = parts[0], Upstream = parts.Length == 2 ? parts[1] : null, Kind = m.Kind };
        });
        return new Gateway.Models.EngineOptions
        {
            BaseUrl = baseUrl,
            ApiKey = apiKey,
            PromptCache = promptCache ?? Cluster.Grains.EnginePromptCaches.Shared,
            Capacity = capacity ?? Gateway.Models.EngineOptions.DefaultCapacity,
            Models = [.. models],
        };
    }

    /// <summary>
    /// Parses <c>PATH</c>, <c>PATH=ID</c> (the id defaults to the file name without extension) or the <c>ID</c> of a
    /// registered model (no such file, no <c>.gguf</c>): the registry's verified file is served under that id.
    /// </summary>
    internal static IEnumerable<ModelOptions> Parse(IEnumerable<string> values, ModelKind kind)
    {
        foreach (var value in values)
        {
            if (!value.Contains('=', StringComparison.Ordinal) && !File.Exists(value) && !value.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
            {
                // A model pulled or imported into the registry, loaded at every start by its id alone.
                yield return new ModelOptions { Id = value, Kind = kind };
                continue;
            }

            var split = value.LastIndexOf('=');
            var path = split > 0 ? value[..split] : value;
            var id = split > 0 ? value[(split + 1)..] : Path.GetFileNameWithoutExtension(value);
            if (string.IsNullOrWhiteSpace(path) || string.IsNullOrWhiteSpace(id))
            {
                throw new ArgumentException($"--model '{value}': expected PATH or PATH=ID.");
            }

            yield return new ModelOptions { Path = Path.GetFullPath(path), Id = id, Kind = kind };
        }
    }

    /// <summary>
    /// The console's address on <paramref name="listenUrl"/> for the ready line: a host that means every address
    /// (0.0.0.0, [::]) is no address a browser opens, so it names localhost there (the listen address is printed as bound).
    /// </summary>
    internal static string ConsoleUrl(string listenUrl)
    {
        var url = listenUrl.TrimEnd('/');
        if (Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.Host is "0.0.0.0" or "[::]" or "+" or "*"))
        {
            url = new UriBuilder(uri) { Host = "localhost" }.Uri.GetLeftPart(UriPartial.Authority);
        }

        return url + "/console";
    }
}

/// <summary>What the serve flags said; null means "not given", so lower-precedence sources apply.</summary>
internal sealed record ServeSettings
{
    public IReadOnlyList<ModelOptions> Models { get; init; } = [];

    /// <summary>The engine of the <c>--engine</c> flags; it replaces configured engines.</summary>
    public Gateway.Models.EngineOptions? Engine { get; init; }

    public string? Urls { get; init; }
    public int? Threads { get; init; }
    public int? Parallel { get; init; }
    public int? ContextLength { get; init; }
    public string? ChatTemplate { get; init; }
    public IReadOnlyList<string> ApiKeys { get; init; } = [];
    public string? ConfigFile { get; init; }
    public string? DataDirectory { get; init; }

    /// <summary>Extra configuration entries that also flow through flags (highest precedence).</summary>
    public IDictionary<string, string?> Overrides { get; init; } = new Dictionary<string, string?>();

    /// <summary>Services added after the gateway's own (tests: an Orleans call filter that counts grain calls); no flag sets it.</summary>
    public Action<IServiceCollection>? Services { get; init; }

    public IEnumerable<KeyValuePair<string, string?>> ToConfiguration()
    {
        if (Urls is not null)
        {
            yield return new("urls", Urls);
        }

        if (DataDirectory is not null)
        {
            yield return new("Sovereign:DataDirectory", DataDirectory);
        }

        for (var i = 0; i < ApiKeys.Count; i++)
        {
            yield return new($"Sovereign:ApiKeys:{i}", ApiKeys[i]);
        }

        foreach (var entry in Overrides)
        {
            yield return entry;
        }
    }

    /// <summary>Flag models replace configured ones; per-model flags apply to every model.</summary>
    public void Apply(SovereignOptions options)
    {
        if (Models.Count > 0)
        {
            options.Models = [.. Models];
        }

        if (Engine is not null)
        {
            options.Engines = [Engine];
        }

        if (options.Models.Count == 0 && options.Engines.Count == 0 && (Threads is not null || Parallel is not null || ContextLength is not null || ChatTemplate is not null))
        {
            // Nothing configured: the flags are for the built-in test model (they were silently ignored).
            options.TestModel ??= new ModelOptions();
            options.TestModel.Threads = Threads ?? options.TestModel.Threads;
            options.TestModel.Parallel = Parallel ?? options.TestModel.Parallel;
            options.TestModel.ContextLength = ContextLength ?? options.TestModel.ContextLength;
            options.TestModel.ChatTemplate = ChatTemplate ?? options.TestModel.ChatTemplate;
        }

        foreach (var model in options.Models)
        {
            model.Threads = Threads ?? model.Threads;
            model.Parallel = Parallel ?? model.Parallel;
            model.ContextLength = ContextLength ?? model.ContextLength;
            model.ChatTemplate = ChatTemplate ?? model.ChatTemplate;
        }
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Models.Count} models, urls {Urls ?? ServeCommand.DefaultUrls}");
}
