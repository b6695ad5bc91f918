using System.ClientModel;
using System.Net.Sockets;
using System.Text.Json;
using Sovereign.Cli.Commands;

namespace Sovereign.Cli.Output;

/// <summary>The documented exit codes of every <c>sovereign</c> command (README, "Exit codes").</summary>
internal static class ExitCodes
{
    /// <summary>Done.</summary>
    public const int Success = 0;

    /// <summary>The server answered with an error (refused, not found, invalid), or a local file could not be written.</summary>
    public const int Failed = 1;

    /// <summary>Bad usage: an unknown or invalid option or argument, or a setting that stops the server's start.</summary>
    public const int Usage = 2;

    /// <summary>
    /// An integrity check failed: the audit log or an export does not verify, a model file is missing or its digest
    /// differs (<c>models verify</c>; <c>models pull</c>/<c>import</c> of a file that is not the digest given or published).
    /// </summary>
    public const int IntegrityFailure = 3;

    /// <summary>The server could not be reached (not running, wrong --url, network).</summary>
    public const int Unreachable = 4;

    /// <summary>The audit log is intact, but entries exist that no signed checkpoint covers (none at all, or a tail older than the bound).</summary>
    public const int Uncovered = 5;

    /// <summary><c>nodes drain --wait</c>: the node stopped reporting (stopped, dead or cut off) before it was seen idle.</summary>
    public const int NodeGone = 6;

    /// <summary><c>serve</c> stopped because the cluster's membership table was lost (Redis restarted empty): start it again (EX_TEMPFAIL).</summary>
    public const int MembershipLost = Cluster.Hosting.MembershipTableWatch.LostTableExitCode;

    /// <summary>Interrupted by the user (Ctrl+C), as shells report a command ended by SIGINT.</summary>
    public const int Interrupted = 130;

    /// <summary>A defect in sovereign itself; the message says where to look.</summary>
    public const int InternalError = 70;
}

/// <summary>A failure with a message for the user and the exit code to end with; printed without a stack trace.</summary>
internal sealed class CliException(string message, int exitCode = ExitCodes.Failed) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>Turns any exception that escapes a command into one readable line on stderr and a documented exit code.</summary>
internal static class CliErrors
{
    /// <summary>Set SOVEREIGN_DEBUG=1 to see the stack trace of an unexpected failure.</summary>
    public const string DebugVariable = "SOVEREIGN_DEBUG";

    public static int Report(string command, Exception exception, string? url = null)
    {
        // 'database copy' names its PostgreSQL with --to; the audit commands with --database.
        var (message, code) = Describe(exception, url, command == "database copy" ? "--to" : "--database");
        // One line, whatever the message quotes: a server's (or an engine's, relayed) words reach the terminal with no
        // character that acts instead of showing (an ESC sequence, a line break).
        Console.Error.WriteLine($"sovereign {command}: {Residency.DisplayText.Escaped(message)}");
        if (code == ExitCodes.InternalError)
        {
            Console.Error.WriteLine(Environment.GetEnvironmentVariable(DebugVariable) == "1"
                ? exception.ToString()
                : $"This is a defect in sovereign; run again with {DebugVariable}=1 for the details and report them.");
        }

        return code;
    }

    internal static (string Message, int ExitCode) Describe(Exception exception, string? url, string databaseOption = "--database")
    {
        // The audit commands' --database: PostgreSQL refused or is not there. It was "a defect in sovereign" (exit 70),
        // or "cannot reach the server ... --url", an option those commands do not have.
        if (exception is Npgsql.PostgresException refused)
        {
            return ($"PostgreSQL refused: {refused.MessageText} ({refused.SqlState}). Check {databaseOption}{(databaseOption == "--database" ? " (or Sovereign__Database__ConnectionString)" : "")}.", ExitCodes.Failed);
        }

        if (exception is Npgsql.NpgsqlException && Unreachable(exception) is { } down)
        {
            return ($"cannot reach PostgreSQL ({down}): {exception.Message}. Check {databaseOption}{(databaseOption == "--database" ? " (or Sovereign__Database__ConnectionString)" : "")}, and that PostgreSQL runs.", ExitCodes.Unreachable);
        }

        if (Untrusted(exception) is { } tls)
        {
            // Through the admin API or the OpenAI SDK (models list against a node: it was "unexpected ClientResultException", exit 70).
            return ($"the server's TLS certificate is not trusted ({tls.Message}). A cluster member's certificate (a node serves its own) is trusted by the admin commands when it chains to the cluster CA: point --data-dir at a member's data directory (its cluster-ca.pem), or set Sovereign__Cluster__TlsCa.", ExitCodes.Unreachable);
        }

        if (Unreachable(exception) is { } socket)
        {
            var where = url is null ? "the server" : $"the server at {url}";
            return ($"cannot reach {where} ({socket}). Is `sovereign serve` running? Point to it with --url or SOVEREIGN_URL.", ExitCodes.Unreachable);
        }

        return exception switch
        {
            CliException cli => (cli.Message, cli.ExitCode),
            AdminException admin => (admin.Message, ExitCodes.Failed),
            Sovereign.Residency.Audit.AuditIntegrityException integrity => (integrity.Message, ExitCodes.IntegrityFailure),
            ClientResultException { Status: > 0 } client when NotSovereign(client) is { } type =>
                ($"the server{(url is null ? "" : " at " + url)} is not Sovereign's API: it answered {client.Status} with {type}. Point to sovereign serve with --url or SOVEREIGN_URL.", ExitCodes.Unreachable),
            ClientResultException { Status: > 0 } client => ($"the server answered {client.Status}: {ServerMessage(client)}", ExitCodes.Failed),
            TaskCanceledException or TimeoutException => ("the server did not answer in time.", ExitCodes.Unreachable),
            OperationCanceledException => ("cancelled.", ExitCodes.Failed),
            UriFormatException or ArgumentException => (exception.Message, ExitCodes.Usage),
            HttpRequestException http => ($"the request failed: {http.Message}", ExitCodes.Unreachable),
            JsonException => ($"the server's answer is not the JSON expected (is --url a Sovereign server?): {exception.Message}", ExitCodes.Failed),
            Microsoft.Data.Sqlite.SqliteException sqlite when Sovereign.Storage.SqliteFailures.Explain(sqlite, "the database") is { } reason => (reason + ".", ExitCodes.Failed),
            IOException or UnauthorizedAccessException => (exception.Message, ExitCodes.Failed),
            _ => ($"unexpected {exception.GetType().Name}: {exception.Message}", ExitCodes.InternalError),
        };
    }

    /// <summary>The TLS handshake's refusal of the server's certificate, when that is the failure.</summary>
    private static System.Security.Authentication.AuthenticationException? Untrusted(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is System.Security.Authentication.AuthenticationException tls)
            {
                return tls;
            }
        }

        return null;
    }

    /// <summary>The socket error when the failure is "nobody listens there" (refused, unknown host, unreachable).</summary>
    private static string? Unreachable(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is SocketException socket)
            {
                return socket.SocketErrorCode switch
                {
                    SocketError.ConnectionRefused => "connection refused",
                    SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData => "unknown host",
                    SocketError.TimedOut => "connection timed out",
                    _ => socket.Message,
                };
            }

            if (e is ClientResultException { Status: 0 } && e.InnerException is null)
            {
                return "no answer";
            }
        }

        return null;
    }

    /// <summary>
    /// The content type of an error answer that is not JSON (another web server's page: a wrong port, a proxy), or
    /// null. Sovereign's errors are always OpenAI's JSON error object; the page was printed whole, HTML and all.
    /// </summary>
    private static string? NotSovereign(ClientResultException exception)
    {
        var response = exception.GetRawResponse();
        if (response is null || response.Content is null || response.Content.ToMemory().IsEmpty)
        {
            return null;
        }

        var type = response.Headers.TryGetValue("Content-Type", out var value) ? value?.Split(';')[0].Trim() : null;
        return IsJson(type) ? null : type ?? "no content type";
    }

    /// <summary>application/json, or a JSON media type such as application/problem+json.</summary>
    internal static bool IsJson(string? mediaType) =>
        mediaType is not null && (mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase));

    /// <summary>The "error.message" of an OpenAI-style error body, or the raw text.</summary>
    private static string ServerMessage(ClientResultException exception)
    {
        var raw = exception.GetRawResponse()?.Content?.ToString();
        if (!string.IsNullOrEmpty(raw) && raw.TrimStart().StartsWith('{'))
        {
            try
            {
                using var document = JsonDocument.Parse(raw);
                if (document.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object
                    && error.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String)
                {
                    return message.GetString()!;
                }
            }
            catch (JsonException)
            {
                // Not OpenAI's error shape: fall through to the raw text.
            }
        }

        return string.IsNullOrEmpty(raw) ? exception.Message.Split('\n')[0] : raw;
    }
}
