using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Residency.ControlPlane;
using Sovereign.Storage;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The operator credential for /admin/v1, separate from tenant keys. Configured, or generated once into
/// &lt;data dir&gt;/admin-token (mode 600) where the CLI on the same machine finds it.
/// </summary>
public sealed partial class AdminToken
{
    /// <summary>The file name inside the data directory.</summary>
    public const string FileName = "admin-token";

    /// <summary>
    /// The fewest characters a configured token may have (<c>Sovereign:AdminToken</c>): it guards every tenant, key and
    /// budget, and a 1-character one was accepted. A generated one has 74.
    /// </summary>
    public const int MinLength = 16;

    /// <summary>The audit actor of the operator token (the setting or the file): as before named tokens existed.</summary>
    public const string DefaultActor = "operator";

    /// <summary>The audit actor of a named operator token: <c>operator:</c> and its name, never the secret.</summary>
    public static string ActorFor(string name) => DefaultActor + ":" + name;

    private static readonly object ActorKey = new();

    // The operator token's hash: read at start, as every setting but the named tokens.
    private readonly byte[] _primary;

    // The operator token first, then the named ones (Sovereign:OperatorTokens): each token's hash and its actor.
    private volatile (byte[] Hash, string Actor)[] _tokens;

    private readonly string? _adminTokenSetting;
    private readonly Lazy<ControlPlaneStore?> _store;
    private readonly TimeProvider _time;
    private readonly IConfiguration? _configuration;
    private readonly ILogger _logger;

    // The configuration files that may name operator tokens (sovereign.json), and what each looked like when read.
    private readonly FileConfigurationProvider[] _files;
    private (bool Exists, DateTimeOffset Modified, long Length)[] _stamps;
    private readonly Lock _reloading = new();

    /// <summary>Loads or creates the token.</summary>
    /// <param name="options">The settings at start.</param>
    /// <param name="configuration">
    /// The host's configuration: its JSON files are looked at again on each operator request, and named tokens read
    /// again from it when one changed (added, revoked, replaced), without a restart; null reads them at start only.
    /// </param>
    /// <param name="logger">Where a reload (event 4180) or a refused one (4181) is told.</param>
    /// <param name="services">
    /// Where the control-plane store is found, on first use, for operator keys issued through the API and revocations of
    /// configured tokens (<see cref="IdentifyAsync"/>); null: configured tokens only.
    /// </param>
    /// <param name="time">The clock operator keys expire by.</param>
    public AdminToken(IOptions<SovereignOptions> options, IConfiguration? configuration = null, ILogger<AdminToken>? logger = null,
        IServiceProvider? services = null, TimeProvider? time = null)
    {
        _store = new Lazy<ControlPlaneStore?>(() => (ControlPlaneStore?)services?.GetService(typeof(ControlPlaneStore)));
        _time = time ?? TimeProvider.System;
        var settings = options.Value;
        var token = settings.AdminToken;
        if (string.IsNullOrWhiteSpace(token))
        {
            token = LoadOrCreate(Path.Combine(settings.ResolvedDataDirectory, FileName));
        }

        _primary = SHA256.HashData(Encoding.UTF8.GetBytes(token));
        _adminTokenSetting = settings.AdminToken;
        _configuration = configuration;
        _logger = (ILogger?)logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _tokens = WithNamed(settings.OperatorTokens, out var duplicate);
        if (duplicate is not null)
        {
            // Two names for one secret: an auditor could not tell which operator acted (fail closed, at start).
            throw new InvalidOperationException($"Sovereign:OperatorTokens:{duplicate} is the same token as another operator's: give each operator a token of its own.");
        }

        _files = configuration is IConfigurationRoot root
            ? [.. root.Providers.OfType<FileConfigurationProvider>().Where(f => f.Source.FileProvider is not null && f.Source.Path is not null)]
            : [];
        _stamps = [.. _files.Select(Stamp)];
    }

    /// <summary>The operator token's entry and the named ones'; <paramref name="duplicate"/> names one whose secret another has.</summary>
    private (byte[] Hash, string Actor)[] WithNamed(IReadOnlyDictionary<string, string> named, out string? duplicate)
    {
        duplicate = null;
        var tokens = new List<(byte[] Hash, string Actor)> { (_primary, DefaultActor) };
        foreach (var (name, secret) in named.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            var hash = SHA256.HashData(Encoding.UTF8.GetBytes(secret));
            if (tokens.Any(t => CryptographicOperations.FixedTimeEquals(t.Hash, hash)))
            {
                duplicate ??= name;
            }

            tokens.Add((hash, ActorFor(name)));
        }

        return [.. tokens];
    }

    private static (bool, DateTimeOffset, long) Stamp(FileConfigurationProvider file)
    {
        var info = file.Source.FileProvider!.GetFileInfo(file.Source.Path!);
        return info.Exists ? (true, info.LastModified, info.Length) : (false, default, 0);
    }

    /// <summary>
    /// Reads the named operator tokens again when a configuration file changed since they were read: a token removed
    /// there is refused from the next request on (it needed a restart). Settings that do not hold fail closed: every
    /// named token is refused, the operator token still works, until the file is fixed.
    /// </summary>
    private void ReloadIfChanged()
    {
        if (_files.Length == 0 || _files.Select(Stamp).SequenceEqual(_stamps))
        {
            return;
        }

        lock (_reloading)
        {
            var stamps = _files.Select(Stamp).ToArray();
            if (stamps.SequenceEqual(_stamps))
            {
                return;
            }

            List<string> problems;
            Dictionary<string, string> named;
            try
            {
                named = NamedTokensNow();
                problems = Hosting.SovereignOptionsValidator.OperatorTokenProblems(named, _adminTokenSetting);
            }
            catch (InvalidDataException ex)
            {
                named = [];
                problems = [$"a configuration file could not be read ({ex.Message})"];
            }

            _stamps = stamps;
            var tokens = WithNamed(problems.Count == 0 ? named : new Dictionary<string, string>(), out var duplicate);
            if (duplicate is not null)
            {
                problems.Add($"Sovereign:OperatorTokens:{duplicate} is the same token as another operator's");
            }

            if (problems.Count > 0)
            {
                _tokens = [(_primary, DefaultActor)];
                LogOperatorTokensRefused(_logger, string.Join("; ", problems));
                return;
            }

            _tokens = tokens;
            LogOperatorTokensReloaded(_logger, named.Count, string.Join(", ", named.Keys.Order(StringComparer.Ordinal)));
        }
    }

    /// <summary>
    /// <c>Sovereign:OperatorTokens</c> as the host's configuration would read it now: its JSON files read afresh (into
    /// providers of their own, so nothing that watches the host's configuration is woken), its other sources
    /// (environment, flags) as at start, later sources over earlier ones.
    /// </summary>
    private Dictionary<string, string> NamedTokensNow()
    {
        const string section = SovereignOptions.SectionName + ":OperatorTokens";
        var named = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var host in ((IConfigurationRoot)_configuration!).Providers)
        {
            IConfigurationProvider provider = host;
            if (host is Microsoft.Extensions.Configuration.Json.JsonConfigurationProvider json)
            {
                var fresh = new Microsoft.Extensions.Configuration.Json.JsonConfigurationProvider(new Microsoft.Extensions.Configuration.Json.JsonConfigurationSource
                {
                    Path = json.Source.Path!,
                    FileProvider = json.Source.FileProvider,
                    Optional = json.Source.Optional,
                });
                fresh.Load();
                provider = fresh;
            }

            foreach (var name in provider.GetChildKeys([], section).Distinct(StringComparer.OrdinalIgnoreCase))
            {
                if (provider.TryGet(section + ":" + name, out var value))
                {
                    named[name] = value ?? "";
                }
            }
        }

        return new Dictionary<string, string>(named, StringComparer.Ordinal);
    }

    [LoggerMessage(EventId = 4180, EventName = "OperatorTokensReloaded", Level = LogLevel.Information,
        Message = "Named operator tokens read again after a configuration change: {Count} ({Names}); a token no longer listed is refused from now on")]
    private static partial void LogOperatorTokensReloaded(ILogger logger, int count, string names);

    [LoggerMessage(EventId = 4181, EventName = "OperatorTokensRefused", Level = LogLevel.Error,
        Message = "Named operator tokens changed in the configuration but do not hold ({Problems}): every named token is refused until it is fixed; the operator token still works")]
    private static partial void LogOperatorTokensRefused(ILogger logger, string problems);

    /// <summary>
    /// The audit actor of the configured operator token presented (<see cref="DefaultActor"/>, or <c>operator:NAME</c>
    /// for a named one), or null when it is none; not whether it was revoked (<see cref="IdentifyAsync"/> decides).
    /// Compared with every token in constant time, so the answer's time does not tell which one came close. Named tokens
    /// changed in a configuration file since they were read are read first.
    /// </summary>
    private string? Identify(string? presented)
    {
        if (presented is null)
        {
            return null;
        }

        ReloadIfChanged();
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        string? actor = null;
        foreach (var token in _tokens)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, token.Hash))
            {
                actor ??= token.Actor;
            }
        }

        return actor;
    }

    /// <summary>Records which operator token authenticated the request (<see cref="ActorOf"/> reads it).</summary>
    public static void SetActor(HttpContext context, string actor)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Items[ActorKey] = actor;
    }

    private static readonly object CredentialKey = new();

    /// <summary>Records the operator credential that authenticated the request (<see cref="CredentialOf"/> reads it).</summary>
    public static void SetCredential(HttpContext context, OperatorCredential credential)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Items[CredentialKey] = credential;
    }

    /// <summary>The operator credential that authenticated an admin request, or null where the admin filter did not run.</summary>
    public static OperatorCredential? CredentialOf(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Items.TryGetValue(CredentialKey, out var credential) ? credential as OperatorCredential : null;
    }

    /// <summary>
    /// The audit actor of an admin request: the operator token it presented, by name. <see cref="DefaultActor"/> where
    /// none was recorded (a request the admin filter did not see).
    /// </summary>
    public static string ActorOf(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Items.TryGetValue(ActorKey, out var actor) && actor is string named ? named : DefaultActor;
    }

    /// <summary>The bearer token a request presents, or null.</summary>
    public static string? Presented(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var header = context.Request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header["Bearer ".Length..].Trim() : null;
    }

    /// <summary>Whether <paramref name="token"/> may guard /admin/v1: <see cref="MinLength"/> or more visible ASCII characters, no spaces.</summary>
    public static bool IsStrongEnough(string token) =>
        token.Length >= MinLength && Routing.UpstreamProxy.IsSendableKey(token);

    /// <summary>
    /// Why the token file at <paramref name="path"/> cannot guard /admin/v1 (it is held to the setting's rule: a
    /// hand-written one-character file was accepted, and an empty one left /admin/v1 a token no client sends), or null when it
    /// is fit or absent (then one is generated). Never echoes the token.
    /// </summary>
    public static string? FileProblem(string path)
    {
        string token;
        try
        {
            if (!File.Exists(path))
            {
                return null;
            }

            token = File.ReadAllText(path).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"the admin token file '{path}' cannot be read: {ex.Message}";
        }

        return IsStrongEnough(token)
            ? null
            : $"the admin token file '{path}' holds {token.Length} character(s); an admin token must be at least {MinLength} characters of visible ASCII without spaces " +
                "(it is sent as a bearer token). Write a longer one there, or delete the file and a random one is generated.";
    }

    /// <summary>Reads the token file, creating it with a fresh random token if missing; refuses a file that cannot guard /admin/v1.</summary>
    public static string LoadOrCreate(string path)
    {
        if (File.Exists(path))
        {
            var stored = File.ReadAllText(path).Trim();
            return IsStrongEnough(stored) ? stored : throw new InvalidDataException(FileProblem(path));
        }

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var token = "sov-admin-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        try
        {
            AtomicFile.WriteAllText(path, ExistingFile.Refuse, token, FileAccessScope.OwnerOnly);
        }
        catch (AtomicFileExistsException)
        {
            // Another process created it first: use theirs, so both guard /admin/v1 with the same token.
            return LoadOrCreate(path);
        }

        return token;
    }
}
