using System.ClientModel;
using System.ClientModel.Primitives;
using System.CommandLine;
using OpenAI;
using Sovereign.Cli.Output;

namespace Sovereign.Cli.Commands;

/// <summary>The <c>--url</c> and <c>--api-key</c> options of commands that talk to a running server.</summary>
internal sealed class ServerConnection
{
    /// <summary>The environment variable that holds the tenant key when --api-key is not given.</summary>
    public const string ApiKeyVariable = "SOVEREIGN_API_KEY";

    public Option<string> Url { get; } = new("--url")
    {
        Description = "The server's base URL (env SOVEREIGN_URL).",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("SOVEREIGN_URL") ?? ServeCommand.DefaultUrls,
    };

    /// <summary>
    /// The tenant key. Its environment variable is read when the option is absent (<see cref="KeyOf"/>), not as the
    /// option's default value: System.CommandLine prints a default in <c>--help</c>, which would show the secret.
    /// </summary>
    public Option<string?> ApiKey { get; } = new("--api-key")
    {
        Description = $"Bearer key for the server, e.g. a tenant's sk-sov-... (env {ApiKeyVariable}).",
    };

    /// <summary>The key given by --api-key, else by the environment variable.</summary>
    public string? KeyOf(ParseResult result)
    {
        var given = result.GetValue(ApiKey);
        var key = given ?? Environment.GetEnvironmentVariable(ApiKeyVariable);
        return key is null ? null : HeaderSafe(key, given is not null ? "--api-key" : ApiKeyVariable);
    }

    /// <summary>
    /// A key or token as the Authorization header carries it. A line break or a non-ASCII letter (a key pasted from a
    /// document) made the HTTP client throw: exit 70 "a defect", or 4 as if the server were unreachable.
    /// </summary>
    internal static string HeaderSafe(string credential, string source) =>
        credential.All(c => c is >= ' ' and <= '~')
            ? credential
            : throw new CliException(
                $"{source} holds a character an HTTP header cannot carry (a line break, a control character or a non-ASCII letter); copy the key or token again.",
                ExitCodes.Usage);

    public void AddTo(Command command)
    {
        command.Options.Add(Url);
        command.Options.Add(ApiKey);
    }

    /// <summary>An official OpenAI client pointed at our /v1; it fails fast (no retries) so a CLI answers at once.</summary>
    public OpenAIClient CreateClient(ParseResult result)
    {
        var baseUrl = ServerRoot(result.GetValue(Url)!);
        if (!Uri.TryCreate(baseUrl + "/v1", UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https"))
        {
            throw new CliException($"--url '{baseUrl}' is not an http(s) URL.", ExitCodes.Usage);
        }

        // A server without keys accepts any bearer, but the SDK needs a non-empty credential.
        var key = KeyOf(result);
        return new OpenAIClient(new ApiKeyCredential(string.IsNullOrEmpty(key) ? "sovereign-no-key" : key),
            new OpenAIClientOptions { Endpoint = endpoint, RetryPolicy = new ClientRetryPolicy(maxRetries: 0) });
    }

    /// <summary>
    /// The server's root from a --url: an OpenAI base URL (<c>http://host:8080/v1</c>, what SDKs and OPENAI_BASE_URL take)
    /// names the same server, so its <c>/v1</c> is dropped. It was kept: every command then asked for <c>/v1/v1/...</c>
    /// or <c>/v1/admin/v1/...</c> and reported a 404.
    /// </summary>
    internal static string ServerRoot(string url)
    {
        var root = url.Trim().TrimEnd('/');
        return root.EndsWith("/v1", StringComparison.OrdinalIgnoreCase) ? root[..^"/v1".Length] : root;
    }

    /// <summary>Runs a call; a 401 without a key becomes "missing key" with what to do about it.</summary>
    public async Task<int> RunAsync(ParseResult result, Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (ClientResultException ex) when (ex.Status == 401 && string.IsNullOrEmpty(KeyOf(result)))
        {
            throw new CliException($"missing key: the server at {result.GetValue(Url)} needs an API key. Pass --api-key sk-sov-... or set {ApiKeyVariable}.");
        }
    }
}
