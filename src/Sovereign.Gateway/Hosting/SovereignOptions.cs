using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.Hosting;

/// <summary>Settings of the <c>Sovereign</c> configuration section (flags, environment and config file all bind here).</summary>
public sealed class SovereignOptions
{
    /// <summary>The configuration section name.</summary>
    public const string SectionName = "Sovereign";

    /// <summary>Models to serve. Empty means the built-in test model.</summary>
    public List<ModelOptions> Models { get; set; } = [];

    /// <summary>
    /// OpenAI-compatible engines this node fronts (vLLM, llama-server, Ollama on its own machine): their models are
    /// served as this node's, beside or instead of GGUF models. Not on a gateway.
    /// </summary>
    public List<Models.EngineOptions> Engines { get; set; } = [];

    /// <summary>Where Sovereign keeps its files (the built-in test model among them). Default: ~/.sovereign.</summary>
    public string? DataDirectory { get; set; }

    /// <summary>
    /// How to run the built-in test model, served when no model and no engine is configured: its <c>Threads</c>,
    /// <c>Parallel</c>, <c>ContextLength</c> and <c>ChatTemplate</c> (<c>serve --threads/--parallel/--ctx-size/--chat-template</c>
    /// without <c>--model</c>); its id and path are the built-in ones.
    /// </summary>
    public ModelOptions? TestModel { get; set; }

    /// <summary>Serve the all-MiniLM-L6-v2 ONNX embedding model (loaded on first use).</summary>
    public bool BuiltInEmbeddings { get; set; } = true;

    /// <summary>Bearer keys accepted on /v1; empty means the API is open (loopback development). Never logged.</summary>
    public List<string> ApiKeys { get; set; } = [];

    /// <summary>Request and output limits.</summary>
    public LimitsOptions Limits { get; set; } = new();

    /// <summary>
    /// The ISO 3166-1 alpha-2 country this process (gateway and local node) runs in. Unset, no tenant with a
    /// residency policy can be served here: the jurisdiction is unknown, so the policy cannot be shown to hold.
    /// </summary>
    public string? Jurisdiction { get; set; }

    /// <summary>This process's node id in the registry. Default: "local".</summary>
    public string NodeId { get; set; } = "local";

    /// <summary>The <c>owned_by</c> a tenant reads of every model and alias /v1/models lists when <see cref="ModelOwner"/> is unset.</summary>
    public const string DefaultModelOwner = "sovereign";

    /// <summary>
    /// The <c>owned_by</c> of every model and alias /v1/models and /v1/models/{id} list: the operator's name as tenants
    /// should read it (1-64 visible ASCII characters, spaces inside allowed). Default: "sovereign". Never a node's id:
    /// which node or engine serves a model is the operator's internal layout.
    /// </summary>
    public string ModelOwner { get; set; } = DefaultModelOwner;

    /// <summary>
    /// The operator-issued credential that binds <see cref="NodeId"/> to <see cref="Jurisdiction"/>. Unset on a
    /// single machine, the process issues its own with the operator key in the data directory.
    /// </summary>
    public string? NodeCredential { get; set; }

    /// <summary>
    /// Serve /v1 without a tenant key. Unset means: only while no tenant exists (a fresh laptop install); as soon
    /// as the operator creates a tenant, every request needs a key.
    /// </summary>
    public bool? AnonymousAccess { get; set; }

    /// <summary>Bearer token for /admin/v1: at least 16 characters of visible ASCII. Unset: one is generated into &lt;data dir&gt;/admin-token (mode 600).</summary>
    public string? AdminToken { get; set; }

    /// <summary>
    /// Operator tokens of their own, by name (<c>Sovereign:OperatorTokens:alice</c>), beside <see cref="AdminToken"/>:
    /// each is accepted wherever the operator token is, and the audit entries of what it changes name it
    /// (<c>operator:alice</c>, never the secret), so an auditor can tell operators apart. Names: lowercase letters,
    /// digits, '-', '_' and '.', at most 64; tokens as <see cref="AdminToken"/>, each its own. Read at start, and again from the configuration file after it changes (<see cref="ControlPlane.AdminToken"/>).
    /// </summary>
    public Dictionary<string, string> OperatorTokens { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Where state lives.</summary>
    public DatabaseOptions Database { get; set; } = new();

    /// <summary>
    /// Let the admin API register an engine (and a node join) at a link-local address (169.254.0.0/16, fe80::/10) or a
    /// cloud's instance metadata service (<c>metadata.google.internal</c>, <c>fd00:ec2::254</c>, <c>100.100.100.200</c>),
    /// or at a name that resolves to one. Off by default: there the gateway reached the service that hands out the
    /// machine's cloud credentials (<see cref="ControlPlane.EngineAddressRule"/>). Loopback and private ranges are
    /// always allowed.
    /// </summary>
    public bool AllowLinkLocalEngineUrls { get; set; }

    /// <summary>
    /// The proxy the relays to external engines and cluster nodes go through (<c>http://proxy.example:3128</c>; http,
    /// https, socks5, socks4, socks4a; <c>user:password@</c> if it needs them). Unset: none, and the environment's
    /// <c>HTTP_PROXY</c>/<c>HTTPS_PROXY</c>/<c>ALL_PROXY</c> are ignored (<see cref="ControlPlane.RelayProxy"/>): a proxy sees
    /// tenants' content, so it is used only where the operator names it.
    /// </summary>
    public string? RelayProxy { get; set; }

    /// <summary>Language detection: which languages (default: the covered set) and in which accuracy mode.</summary>
    public Sovereign.Languages.LanguageDetectorOptions Languages { get; set; } = new();

    /// <summary>Detect the language of every request (recorded with its usage and audit entry), not only of aliased ones.</summary>
    public bool DetectLanguageOfEveryRequest { get; set; } = true;

    /// <summary>
    /// Model aliases routed by language, e.g. <c>auto</c> or <c>legal-th</c>. Without an <c>auto</c> entry, one is
    /// built from the chat models and their declared languages (the first chat model is the default).
    /// </summary>
    public Dictionary<string, AliasOptions> Aliases { get; set; } = [];

    /// <summary>
    /// How an alias matches the detected language to its candidates' languages (<c>Sovereign:LanguageMatch</c>):
    /// <c>exact</c> (default) or <c>family</c>, which lets text whose close-group member the detector did not decide
    /// (Bosnian/Croatian/Serbian, Malay/Indonesian) go to a model declared for any member of the group.
    /// </summary>
    public LanguageMatchOptions LanguageMatch { get; set; } = new();

    /// <summary>Metering: ledger retention and language-fair billing.</summary>
    public MeteringOptions Metering { get; set; } = new();

    /// <summary>The audit log's retention: archiving old entries to files on a schedule (off unless set).</summary>
    public AuditOptions Audit { get; set; } = new();

    /// <summary>
    /// Body fields /v1 accepts besides OpenAI's and the engine extensions this server honours (a 400
    /// <c>unknown_parameter</c> otherwise): relayed as sent to external engines (vLLM's <c>repetition_penalty</c>,
    /// <c>chat_template_kwargs</c>), ignored by this process's engine. A nested field is named by its path without
    /// indices (<c>messages.content.cache_control</c>), any field of an object by <c>path.*</c> (<c>messages.*</c>);
    /// <c>*</c> accepts every field at any depth.
    /// </summary>
    public List<string> AcceptedRequestFields { get; set; } = [];

    /// <summary>Operator-defined jurisdiction groups: name to member countries or groups.</summary>
    public Dictionary<string, List<string>> JurisdictionGroups { get; set; } = [];

    /// <summary>The data directory with the default applied.</summary>
    public string ResolvedDataDirectory => string.IsNullOrWhiteSpace(DataDirectory)
        ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".sovereign")
        : DataDirectory;
}

/// <summary>Limits on what one request may ask for.</summary>
public sealed class LimitsOptions
{
    /// <summary>Default body limit: 8 MiB.</summary>
    public const long DefaultMaxRequestBodyBytes = 8 * 1024 * 1024;

    /// <summary>Largest request body accepted; larger ones get 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = DefaultMaxRequestBodyBytes;

    /// <summary>Largest <c>max_tokens</c> a request may ask for; 0 means up to the model's context.</summary>
    public int MaxOutputTokens { get; set; } = 4096;

    /// <summary>Most choices (<c>n</c>) per request.</summary>
    public int MaxChoices { get; set; } = 8;

    /// <summary>Most stop strings per request (OpenAI allows 4).</summary>
    public int MaxStopSequences { get; set; } = 4;

    /// <summary>Default cap of the text one <c>/tokenize</c> request may count: 1 MiB (about 250,000 tokens of English).</summary>
    public const int DefaultMaxTokenizeBytes = 1024 * 1024;

    /// <summary>
    /// Most UTF-8 bytes of text (or message contents) one <c>/tokenize</c> request may count. The endpoint is not metered,
    /// so its work is capped here; longer documents are counted in parts.
    /// </summary>
    public int MaxTokenizeBytes { get; set; } = DefaultMaxTokenizeBytes;

    /// <summary>The default <see cref="TenantReadsPerMinute"/>: 100 views of the tenant console's page a minute.</summary>
    public const int DefaultTenantReadsPerMinute = 600;

    /// <summary>
    /// Most reads per minute, per API key, of its tenant's own records (<c>/v1/usage</c>, <c>/v1/audit</c>,
    /// <c>/v1/keys</c>, <c>/v1/limits</c>), counted per gateway apart from the tenant's request limit.
    /// </summary>
    public int TenantReadsPerMinute { get; set; } = DefaultTenantReadsPerMinute;

    /// <summary>Most inputs in one embeddings request (OpenAI allows 2048).</summary>
    public int MaxEmbeddingInputs { get; set; } = 2048;

    /// <summary>
    /// Most tokens summed across the inputs of one embeddings request (OpenAI's 300,000): 2,048 inputs each as long as a
    /// model takes held an embedding model's slot for minutes.
    /// </summary>
    public int MaxEmbeddingTokensPerRequest { get; set; } = 300_000;

    /// <summary>
    /// Requests that may wait, fairly, for a slot of an external engine's model or an embedding model once all its
    /// slots are busy; beyond that the answer is 503 with Retry-After. (Local chat models use their engine's MaxQueue.)
    /// </summary>
    public int RouteQueue { get; set; } = 256;

    /// <summary>
    /// The output limit sent to an external engine when neither the client nor <see cref="MaxOutputTokens"/> sets
    /// one: the gateway must reserve a bounded amount, so it never relays an unbounded request.
    /// </summary>
    public int UpstreamDefaultMaxTokens { get; set; } = 4096;

    /// <summary>
    /// Seconds an engine or node may send nothing on a relayed request: before its answer's headers (a streamed answer
    /// sends them at once; a whole JSON answer when it is done, so leave room for the longest generation), and between
    /// the events of a stream. Beyond it: 504 <c>upstream_timeout</c> billed nothing before the answer, or the stream's
    /// last event billed for what was relayed. An engine that took the connection and went silent held the client and
    /// a route slot for good. 600 s, as LiteLLM's default request timeout.
    /// </summary>
    public int UpstreamIdleTimeoutSeconds { get; set; } = 600;

    /// <summary>
    /// Bytes of a relayed stream read from the engine ahead of a client that reads slowly, at most, per request
    /// (8 MiB; 0 turns it off; at most 256 MiB). The route's slot is given back once the engine's answer is read to its end, so a client
    /// reading at a trickle does not keep other tenants waiting for an engine that is idle; past the bound the engine
    /// waits for the client, and the slot stays held, as without it.
    /// </summary>
    public int RelayReadAheadBytes { get; set; } = DefaultRelayReadAheadBytes;

    /// <summary>The default of <see cref="RelayReadAheadBytes"/>: 8 MiB, an answer of about 30,000 streamed tokens.</summary>
    public const int DefaultRelayReadAheadBytes = 8 * 1024 * 1024;

    /// <summary>
    /// Bytes all relays of this process may hold read ahead of their clients together (256 MiB; at least 64 KiB). A
    /// relay refused here reads at its client's pace and keeps its slot, so many streams left unread cannot take the
    /// gateway's memory (each relay's own bound is <see cref="RelayReadAheadBytes"/>).
    /// </summary>
    public int RelayReadAheadTotalBytes { get; set; } = 256 * 1024 * 1024;
}

/// <summary>Which database holds tenants, keys, nodes, the audit log and the ledger.</summary>
public sealed class DatabaseOptions
{
    /// <summary>Sqlite (default, a file in the data directory) or PostgreSql.</summary>
    public string Provider { get; set; } = "Sqlite";

    /// <summary>For Sqlite: the file path (default &lt;data dir&gt;/sovereign.db). For PostgreSql: an Npgsql connection string.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>
    /// Where the database is (an ISO 3166-1 alpha-2 code): stored response content rests there, so a tenant may store
    /// content only where its policy allows this jurisdiction. Unset: for Sqlite, this server's own
    /// <see cref="SovereignOptions.Jurisdiction"/> (the file is on this machine); for PostgreSql, undeclared, and no
    /// content is stored (a cluster's gateways in several jurisdictions share the one database, wherever it runs).
    /// </summary>
    public string? Jurisdiction { get; set; }

    /// <summary>
    /// For Sqlite: run SQLite's quick check of the whole file at start and refuse a damaged one (default true). It reads
    /// every page once, about 5 ms per MB (1.2 s for 217 MB, measured): set false only for a file so large that the
    /// start's delay matters, and check it yourself (<c>sovereign database backup</c> checks its copy).
    /// </summary>
    public bool CheckAtStart { get; set; } = true;

    /// <summary>
    /// For PostgreSql: the identity a refused start named (a copy of the installation's database, or another database
    /// than its cluster's), given once after a deliberate restore to make this database the installation's and the
    /// cluster's. The start records a new identity, so a value left set does nothing at later starts.
    /// </summary>
    public string? Rebind { get; set; }
}

/// <summary>How aliases match detected languages, for every plan or per plan (<c>Sovereign:LanguageMatch</c>).</summary>
public sealed class LanguageMatchOptions
{
    /// <summary>The value that matches the detected language only (the default).</summary>
    public const string Exact = "exact";

    /// <summary>The value that matches any member of an undecided close group.</summary>
    public const string Family = "family";

    /// <summary><c>exact</c> or <c>family</c>, for plans <see cref="Plans"/> does not name.</summary>
    public string Default { get; set; } = Exact;

    /// <summary>Per plan (by name, case-insensitive as plans are), <c>exact</c> or <c>family</c>.</summary>
    public Dictionary<string, string> Plans { get; set; } = [];

    /// <summary>Parses a value (case-insensitive); null when it is neither <c>exact</c> nor <c>family</c>.</summary>
    public static Sovereign.Languages.LanguageMatch? Parse(string? value) =>
        string.Equals(value?.Trim(), Exact, StringComparison.OrdinalIgnoreCase) ? Sovereign.Languages.LanguageMatch.Exact
        : string.Equals(value?.Trim(), Family, StringComparison.OrdinalIgnoreCase) ? Sovereign.Languages.LanguageMatch.Family
        : null;

    /// <summary>The match in force for a plan (validated at start, so every value parses).</summary>
    public Sovereign.Languages.LanguageMatch For(string? plan)
    {
        foreach (var (name, value) in Plans)
        {
            if (string.Equals(name, plan, StringComparison.OrdinalIgnoreCase))
            {
                return Parse(value) ?? Sovereign.Languages.LanguageMatch.Exact;
            }
        }

        return Parse(Default) ?? Sovereign.Languages.LanguageMatch.Exact;
    }
}

/// <summary>A language-routed model alias.</summary>
public sealed class AliasOptions
{
    /// <summary>The model used for undetermined text or a language no candidate serves.</summary>
    public string Default { get; set; } = "";

    /// <summary>Candidates in order of preference.</summary>
    public List<AliasCandidateOptions> Candidates { get; set; } = [];
}

/// <summary>One candidate of an alias.</summary>
public sealed class AliasCandidateOptions
{
    /// <summary>The model id.</summary>
    public string Model { get; set; } = "";

    /// <summary>Languages it serves (ISO 639-1 codes); empty means the model's declared languages.</summary>
    public List<string> Languages { get; set; } = [];
}

/// <summary>How usage is kept and billed.</summary>
public sealed class MeteringOptions
{
    /// <summary>Days raw usage records are kept (daily aggregates stay); purged once a day.</summary>
    public int RetentionDays { get; set; } = 90;

    /// <summary>
    /// Milliseconds between folds of the usage records committed since the last one into the period aggregates
    /// (default 250). Readers of budgets, usage and invoices add the records not yet folded, so this never changes what
    /// they read, only how many records they add.
    /// </summary>
    public int AggregateFoldIntervalMs { get; set; } = 250;

    /// <summary>Usage records committed since the last fold past which the next fold runs at once (default 256).</summary>
    public int AggregateFoldRecords { get; set; } = 256;

    /// <summary>The least <see cref="SpendSeriesLimit"/> and <see cref="GenAiSeriesLimit"/> the validator accepts.</summary>
    public const int MinSeriesLimit = 2_000;

    /// <summary>The most <see cref="SpendSeriesLimit"/> and <see cref="GenAiSeriesLimit"/> the validator accepts.</summary>
    public const int MaxSeriesLimit = 10_000_000;

    /// <summary>The default of <see cref="SpendSeriesLimit"/>.</summary>
    public const int DefaultSpendSeriesLimit = 100_000;

    /// <summary>
    /// The most series each of <c>sovereign_spend</c> and <c>sovereign_budget_remaining</c> keeps on <c>/metrics</c>
    /// (one per tenant and currency). OpenTelemetry keeps 2,000 unless told: past that every later tenant's spend went
    /// into one <c>otel_metric_overflow</c> series. Each series is reserved up front (about 100 bytes).
    /// </summary>
    public int SpendSeriesLimit { get; set; } = DefaultSpendSeriesLimit;

    /// <summary>The default of <see cref="GenAiSeriesLimit"/>.</summary>
    public const int DefaultGenAiSeriesLimit = 20_000;

    /// <summary>
    /// Whether the GenAI histograms (<c>gen_ai_client_token_usage</c>, <c>gen_ai_server_*</c>) carry the <c>tenant</c>
    /// label (default true). Off, they are per model, operation and outcome only, a few series whatever the number of
    /// tenants; per-tenant tokens and cost stay in <c>sovereign_spend</c>, <c>sovereign usage</c> and the ledger.
    /// </summary>
    public bool GenAiTenantLabel { get; set; } = true;

    /// <summary>
    /// The most series each GenAI histogram keeps on <c>/metrics</c> (default 20,000: with the tenant label about
    /// 10,000 tenants on one chat model; OpenTelemetry's own default, 2,000, folded every tenant past about 1,000 into
    /// one <c>otel_metric_overflow</c> series). A series' slot is reserved up front (about 100 bytes), its buckets when used.
    /// </summary>
    public int GenAiSeriesLimit { get; set; } = DefaultGenAiSeriesLimit;

    /// <summary>
    /// Per plan, languages billed per character-equivalent: a request in one of them is charged the tokens the same
    /// text would take in English on that model (its tokens divided by the model's language-tax ratio), so speakers
    /// of a language the tokenizer serves badly do not pay more. Example: <c>{"standard": ["th", "hi"]}</c>.
    /// </summary>
    public Dictionary<string, List<string>> CharacterEquivalentLanguages { get; set; } = [];
}

/// <summary>The audit log's settings.</summary>
public sealed class AuditOptions
{
    /// <summary>Scheduled archiving of old entries (<c>Sovereign:Audit:Archive</c>).</summary>
    public AuditArchiveOptions Archive { get; set; } = new();

    /// <summary>The default <see cref="RateLimitSummaryInterval"/>.</summary>
    public static readonly TimeSpan DefaultRateLimitSummaryInterval = TimeSpan.FromSeconds(10);

    /// <summary>The shortest <see cref="RateLimitSummaryInterval"/> accepted.</summary>
    public static readonly TimeSpan MinRateLimitSummaryInterval = TimeSpan.FromSeconds(1);

    /// <summary>The longest <see cref="RateLimitSummaryInterval"/> accepted.</summary>
    public static readonly TimeSpan MaxRateLimitSummaryInterval = TimeSpan.FromHours(1);

    /// <summary>
    /// How long a key stays marked rate-limited after a refusal, and how often the refusals counted meanwhile are
    /// written as one <c>inference.rate_limited</c> entry per key (<c>Metering/RateLimitRefusals</c>). Default 10 s.
    /// Also how often a key's refused reads of its own records are summarised in one log line
    /// (<c>ControlPlane/TenantReadLimits</c>, event 4150).
    /// </summary>
    public TimeSpan RateLimitSummaryInterval { get; set; } = DefaultRateLimitSummaryInterval;

    /// <summary>
    /// In a cluster (PostgreSQL), each member appends to its own hash chain, named by its node id, instead of the one
    /// shared chain: members then commit apart, each under its own chain's lock, where every commit of every member
    /// waited for the one lock (<c>Residency/Audit/AuditChainScope</c>). Gateways sign every member's chain;
    /// <c>audit verify</c> verifies them together. On by default since session 44 (a cluster upgrades to it from the
    /// session 42 or 43 release, which know member chains; an older one reads, verifies and closes only the shared chain);
    /// <c>false</c> keeps a cluster on the shared chain. Ignored on a single machine (one process, one chain:
    /// <c>ControlPlaneServices.AuditChainOf</c>).
    /// </summary>
    public bool MemberChains { get; set; } = true;

    /// <summary>The shortest <see cref="CommitTimeout"/> accepted.</summary>
    public static readonly TimeSpan MinCommitTimeout = TimeSpan.FromSeconds(1);

    /// <summary>The longest <see cref="CommitTimeout"/> accepted.</summary>
    public static readonly TimeSpan MaxCommitTimeout = TimeSpan.FromMinutes(10);

    /// <summary>
    /// The longest the audit log tries to commit one batch of appends, its retries included, whatever the database
    /// driver's own timeouts say (<see cref="Residency.Audit.AuditLogOptions.CommitTimeout"/>): past it the batch's
    /// requests, and those queued behind it, are refused 503 <c>audit_unavailable</c>, and a database that does not
    /// answer starts an outage that refuses new requests at once. Default 10 s; 1 s to 10 minutes.
    /// </summary>
    public TimeSpan CommitTimeout { get; set; } = Residency.Audit.AuditLogOptions.DefaultCommitTimeout;
}

/// <summary>
/// Scheduled audit retention: what <c>sovereign audit archive</c> does by hand, run by every process that signs
/// checkpoints (never a <c>--role node</c>). Off by default: deleting evidence is the operator's decision.
/// </summary>
public sealed class AuditArchiveOptions
{
    /// <summary>The largest <see cref="AfterDays"/> accepted (a century).</summary>
    public const int MaxAfterDays = 36_500;

    /// <summary>The default <see cref="Interval"/>: once a day.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromDays(1);

    /// <summary>The shortest <see cref="Interval"/> accepted.</summary>
    public static readonly TimeSpan MinInterval = TimeSpan.FromMinutes(1);

    /// <summary>The longest <see cref="Interval"/> accepted.</summary>
    public static readonly TimeSpan MaxInterval = TimeSpan.FromDays(31);

    /// <summary>The default folder inside the data directory.</summary>
    public const string DefaultDirectoryName = "audit-archive";

    /// <summary>
    /// Archive entries once they are this many days old, counted in whole UTC days (a run on 2026-12-04 with 90
    /// archives the entries written before 2026-09-05T00:00Z). 0 (the default) turns scheduled archiving off.
    /// </summary>
    public int AfterDays { get; set; }

    /// <summary>Where the archive files go (an absolute path). Default: &lt;data dir&gt;/audit-archive.</summary>
    public string? Directory { get; set; }

    /// <summary>How often a run looks for entries to archive (the first run is at start). Default: a day.</summary>
    public TimeSpan Interval { get; set; } = DefaultInterval;

    /// <summary>The archive directory with the default applied.</summary>
    public string ResolvedDirectory(string dataDirectory) =>
        string.IsNullOrWhiteSpace(Directory) ? Path.Combine(dataDirectory, DefaultDirectoryName) : Directory;
}
