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

    private readonly byte[] _hash;

    /// <summary>Loads or creates the token.</summary>
    public AdminToken(IOptions<SovereignOptions> options)
    {
        var settings = options.Value;
        var token = settings.AdminToken;
        if (string.IsNullOrWhiteSpace(token))
        {
            token = LoadOrCreate(Path.Combine(settings.ResolvedDataDirectory, FileName));
        }

        _hash = SHA256.HashData(Encoding.UTF8.GetBytes(token));
    }

    /// <summary>Whether a presented bearer token is the operator's (constant-time).</summary>
    public bool Matches(string? presented) =>
        presented is not null && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), _hash);

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
