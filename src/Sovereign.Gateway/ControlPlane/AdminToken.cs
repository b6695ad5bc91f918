using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The operator credential for /admin/v1, separate from tenant keys. Configured, or generated once into
/// &lt;data dir&gt;/admin-token (mode 600) where the CLI on the same machine finds it.
/// </summary>
public sealed class AdminToken
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

    // The operator token first, then the named ones (Sovereign:OperatorTokens): each token's hash and its actor.
    private readonly (byte[] Hash, string Actor)[] _tokens;

    /// <summary>Loads or creates the token.</summary>
    public AdminToken(IOptions<SovereignOptions> options)
    {
        var settings = options.Value;
        var token = settings.AdminToken;
        if (string.IsNullOrWhiteSpace(token))
        {
            token = LoadOrCreate(Path.Combine(settings.ResolvedDataDirectory, FileName));
        }

        var tokens = new List<(byte[] Hash, string Actor)> { (SHA256.HashData(Encoding.UTF8.GetBytes(token)), DefaultActor) };
        foreach (var (name, secret) in settings.OperatorTokens.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            var hash = SHA256.HashData(Encoding.UTF8.GetBytes(secret));
            if (tokens.Any(t => CryptographicOperations.FixedTimeEquals(t.Hash, hash)))
            {
                // Two names for one secret: an auditor could not tell which operator acted (fail closed, at start).
                throw new InvalidOperationException($"Sovereign:OperatorTokens:{name} is the same token as another operator's: give each operator a token of its own.");
            }

            tokens.Add((hash, ActorFor(name)));
        }

        _tokens = [.. tokens];
    }

    /// <summary>Whether a presented bearer token is an operator's (constant-time).</summary>
    public bool Matches(string? presented) => Identify(presented) is not null;

    /// <summary>
    /// The audit actor of the operator token presented (<see cref="DefaultActor"/>, or <c>operator:NAME</c> for a
    /// named one), or null when it is none. Compared with every token in constant time, so the answer's time does not
    /// tell which one came close.
    /// </summary>
    public string? Identify(string? presented)
    {
        if (presented is null)
        {
            return null;
        }

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
        var temporary = path + ".tmp";
        var fileOptions = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            fileOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(temporary, fileOptions))
        {
            stream.Write(Encoding.UTF8.GetBytes(token));
        }

        File.Move(temporary, path, overwrite: false);
        return token;
    }
}
