using System.CommandLine;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Sovereign.Cli.Output;
using Sovereign.Gateway.ControlPlane;

namespace Sovereign.Cli.Commands;

/// <summary>The options and HTTP calls of commands that use the operator's admin API.</summary>
internal sealed class AdminConnection
{
    public Option<string> Url { get; } = new("--url")
    {
        Description = "The server's base URL (env SOVEREIGN_URL).",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("SOVEREIGN_URL") ?? ServeCommand.DefaultUrls,
    };

    /// <summary>
    /// The operator token. Its environment variable is read when the option is absent, not as the option's default
    /// value: System.CommandLine prints a default in <c>--help</c>, which would show the secret on screen.
    /// </summary>
    public Option<string?> Token { get; } = new("--admin-token")
    {
        Description = "The operator token (env SOVEREIGN_ADMIN_TOKEN; default: read from <data dir>/admin-token on this machine).",
    };

    public Option<string?> DataDirectory { get; } = new("--data-dir") { Description = "The server's data directory (default ~/.sovereign)." };

    public Option<bool> Json { get; } = new("--json") { Description = "Print the raw JSON answer." };

    public void AddTo(Command command)
    {
        command.Options.Add(Url);
        command.Options.Add(Token);
        command.Options.Add(DataDirectory);
        command.Options.Add(Json);
    }

    /// <summary>
    /// An id as one segment of an admin URL. Escaped, so that '?', '#', '/' or '%' in what the user typed reach the
    /// server as part of the id (which it then checks) instead of changing the URL; "." and "..", which every URL
    /// parser folds away, cannot name anything.
    /// </summary>
    /// An empty id would name the collection instead (<c>tenants show ''</c> fetched the tenant list and failed
    /// reading it as a tenant, exit code 70).
    public static string Segment(string? id) =>
        string.IsNullOrWhiteSpace(id)
            // A blank id reached the server ('models load " "' asked to load a model named " ").
            ? throw new CliException($"'{id}' is not an id: it is empty or only whitespace.", ExitCodes.Usage)
            : id is "." or ".." ? throw new CliException($"'{id}' is not an id.", ExitCodes.Usage)
            // No id of any kind holds an invisible character (tenants, plans and nodes are slugs; model ids refuse them).
            : ModelIdRule.Problem(id, "id") is { } invisible ? throw new CliException(invisible.Replace("is not a model id", "is not an id", StringComparison.Ordinal), ExitCodes.Usage)
            : Uri.EscapeDataString(id);

    /// <summary>The admin API's base address, or a usage error (an ftp:// URL was a defect, exit code 70).</summary>
    public static Uri BaseAddress(string? url)
    {
        var text = ServerConnection.ServerRoot(url ?? string.Empty) + "/";
        return Uri.TryCreate(text, UriKind.Absolute, out var address) && address.Scheme is "http" or "https"
            ? address
            : throw new CliException($"--url '{url}' is not an http(s) URL.", ExitCodes.Usage);
    }

    /// <summary>Sends one admin request; returns the JSON answer or throws <see cref="AdminException"/> with the server's message.</summary>
    public async Task<JsonElement> SendAsync(ParseResult result, HttpMethod method, string path, object? body, CancellationToken cancellationToken, bool raw = false) =>
        (await SendVersionedAsync(result, method, path, body, ifMatch: null, cancellationToken, raw)).Json;

    /// <summary>How often <see cref="EditAsync"/> reads and writes again when another change came between.</summary>
    internal const int EditAttempts = 5;

    /// <summary>
    /// An edit of what <paramref name="readPath"/> answers: reads it, makes the change (<paramref name="change"/>
    /// builds the body from what was read) and writes it with <paramref name="method"/> to <paramref name="writePath"/>
    /// only if nothing changed it meanwhile (<c>If-Match</c> with the ETag read). When another edit came between (412),
    /// it reads and changes again, so two edits of different fields at once both stay: the API replaces what it is
    /// sent whole, and the second write used to put back the first one's field as read before it.
    /// </summary>
    public async Task<JsonElement> EditAsync(ParseResult result, string readPath, HttpMethod method, string writePath, Func<JsonElement, object> change, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var (current, version) = await SendVersionedAsync(result, HttpMethod.Get, readPath, null, null, cancellationToken);
            try
            {
                // A server without versions (an older release) answers no ETag: written as before, unconditionally.
                return (await SendVersionedAsync(result, method, writePath, change(current), version, cancellationToken)).Json;
            }
            catch (AdminException ex) when (ex.PreconditionFailed && attempt < EditAttempts)
            {
            }
            catch (AdminException ex) when (ex.PreconditionFailed)
            {
                throw new CliException($"{ex.Message} It changed again each of {EditAttempts} times this command read it; run it again.");
            }
        }
    }

    /// <summary>
    /// Sends one admin request, with <c>If-Match: <paramref name="ifMatch"/></c> when given; returns the JSON answer and
    /// its ETag (null when none), or throws <see cref="AdminException"/> with the server's message.
    /// </summary>
    private async Task<(JsonElement Json, string? ETag)> SendVersionedAsync(
        ParseResult result, HttpMethod method, string path, object? body, string? ifMatch, CancellationToken cancellationToken, bool raw = false)
    {
        var given = result.GetValue(Token);
        var token = given ?? Environment.GetEnvironmentVariable("SOVEREIGN_ADMIN_TOKEN");
        var source = given is not null ? "--admin-token" : "SOVEREIGN_ADMIN_TOKEN";
        if (string.IsNullOrEmpty(token))
        {
            var file = Path.Combine(result.GetValue(DataDirectory) ?? DefaultDataDirectory, AdminToken.FileName);
            token = File.Exists(file) ? (await File.ReadAllTextAsync(file, cancellationToken)).Trim()
                : throw new CliException(
                    $"No admin token: pass --admin-token, set SOVEREIGN_ADMIN_TOKEN, or on the server's machine point --data-dir (or Sovereign__DataDirectory) at its data directory ({file} not found).",
                    ExitCodes.Usage);
            source = file;
        }

        token = ServerConnection.HeaderSafe(token, source);

        using var client = CreateClient(BaseAddress(result.GetValue(Url)), result.GetValue(DataDirectory) ?? DefaultDataDirectory);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var request = new HttpRequestMessage(method, path.TrimStart('/')) { Content = body is null ? null : JsonContent.Create(body) };
        if (ifMatch is not null)
        {
            request.Headers.TryAddWithoutValidation("If-Match", ifMatch);
        }

        using var response = await client.SendAsync(request, cancellationToken);
        var etag = response.Headers.ETag?.ToString();
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        if (raw && response.IsSuccessStatusCode && (mediaType == "text/csv" || CliErrors.IsJson(mediaType)))
        {
            return (JsonSerializer.SerializeToElement(text), etag);
        }

        if (!CliErrors.IsJson(mediaType) && (response.IsSuccessStatusCode || text.Length > 0))
        {
            throw NotSovereign(client.BaseAddress, request, response);
        }

        var json = text.Length > 0 ? ParseOrNull(text) ?? throw NotSovereign(client.BaseAddress, request, response) : default;
        if (!response.IsSuccessStatusCode)
        {
            var message = json.ValueKind == JsonValueKind.Object && json.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object
                && error.TryGetProperty("message", out var said) && said.ValueKind == JsonValueKind.String
                ? said.GetString()
                : text.Length > 0 ? text : $"{response.ReasonPhrase} (no body)";
            if (response.StatusCode == System.Net.HttpStatusCode.Unauthorized && message?.StartsWith("The operator credential ", StringComparison.Ordinal) == true)
            {
                // The server knows the token and refused it (revoked or expired), naming it: the advice below, to send
                // the data directory's token, would send the very one refused.
                message += $" The token sent came from {source}.";
            }
            else if (response.StatusCode == System.Net.HttpStatusCode.Unauthorized)
            {
                // The server says what it needs, not which token this command sent: an operator who followed the README
                // tour (~/.sovereign) and then started a server on --data-dir /var/lib/sovereign sent the tour's token.
                message += $" The token sent came from {source}: give this server's operator token, its Sovereign__AdminToken or the "
                    + $"{AdminToken.FileName} file in its data directory (--data-dir DIR on its machine, --admin-token or SOVEREIGN_ADMIN_TOKEN).";
            }

            throw new AdminException($"{(int)response.StatusCode}: {message}", response.StatusCode == System.Net.HttpStatusCode.PreconditionFailed);
        }

        return (json, etag);
    }

    /// <summary>
    /// A client of the admin API at <paramref name="baseAddress"/>. Over https a certificate the machine trusts is
    /// accepted as always, and so is a cluster member's that chains to the cluster CA this data directory holds
    /// (<see cref="ClusterCaFile"/>): a node serves its cluster certificate, which names its cluster identity rather than a
    /// host, and no machine's store trusts the cluster CA, so no admin command reached a node (gateways check it so too).
    /// </summary>
    private static HttpClient CreateClient(Uri baseAddress, string dataDirectory)
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            errors == System.Net.Security.SslPolicyErrors.None
            || (certificate is System.Security.Cryptography.X509Certificates.X509Certificate2 served && ClusterAuthorities(dataDirectory) is { Count: > 0 } authorities
                && Sovereign.Cluster.Security.ClusterCertificates.Validate(served, authorities, DateTimeOffset.UtcNow, out _) is not null);
        return new HttpClient(handler) { BaseAddress = baseAddress };
    }

    /// <summary>The cluster CA file a member's CLI trusts: the member's setting where its environment names one, else the data directory's.</summary>
    private static string ClusterCaFile(string dataDirectory) =>
        Sovereign.Cluster.Security.ClusterTlsCredentials.Resolve(dataDirectory,
            Environment.GetEnvironmentVariable("Sovereign__Cluster__TlsCa") is { Length: > 0 } configured ? configured : new Sovereign.Cluster.Hosting.SovereignClusterOptions().TlsCa);

    private static System.Security.Cryptography.X509Certificates.X509Certificate2Collection? ClusterAuthorities(string dataDirectory)
    {
        var file = ClusterCaFile(dataDirectory);
        if (!File.Exists(file))
        {
            return null;
        }

        try
        {
            var authorities = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
            authorities.ImportFromPemFile(file);
            return authorities;
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            // Not a CA file: trusted no further than the machine's store.
            return null;
        }
    }

    /// <summary>
    /// Another web server answered (a wrong port, a proxy's page): every admin answer of Sovereign's is JSON (an
    /// invoice may be CSV). A 200 HTML page reached the commands as JSON and ended in "unexpected
    /// InvalidOperationException ... a defect in sovereign" (exit 70), an invoice printed the page with exit 0, and an
    /// HTML 404 was printed whole.
    /// </summary>
    private static CliException NotSovereign(Uri? baseAddress, HttpRequestMessage request, HttpResponseMessage response) =>
        new($"the server at {baseAddress?.ToString().TrimEnd('/')} is not Sovereign's admin API: it answered {request.Method} {(request.RequestUri is { IsAbsoluteUri: true } sent ? sent.AbsolutePath : request.RequestUri?.OriginalString)} with " +
            $"{(int)response.StatusCode} {response.Content.Headers.ContentType?.MediaType ?? "and no content type"}. Point to sovereign serve with --url or SOVEREIGN_URL.",
            ExitCodes.Unreachable);

    private static JsonElement? ParseOrNull(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>GETs a text answer (CSV, JSON) as is.</summary>
    public async Task<string> SendTextAsync(ParseResult result, string path, CancellationToken cancellationToken)
    {
        var json = await SendAsync(result, HttpMethod.Get, path, null, cancellationToken, raw: true);
        return json.GetString()!;
    }

    /// <summary>Prints raw JSON when --json was given; returns whether it did.</summary>
    public bool PrintJson(ParseResult result, JsonElement json)
    {
        if (!result.GetValue(Json))
        {
            return false;
        }

        Console.WriteLine(JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
        return true;
    }

    /// <summary>Prints the server's JSON answer with --json, else the text <paramref name="printText"/> writes.</summary>
    public void Print(ParseResult result, JsonElement json, Action printText)
    {
        if (!PrintJson(result, json))
        {
            printText();
        }
    }

    /// <summary>Runs an admin action; failures reach Program's handler, which prints one line and the documented exit code.</summary>
    public static async Task<int> RunAsync(Func<Task> action)
    {
        await action();
        return 0;
    }

    /// <summary>The data directory every command defaults to: the server's own setting when set in the environment, else ~/.sovereign.</summary>
    internal static string DefaultDataDirectory =>
        Environment.GetEnvironmentVariable("Sovereign__DataDirectory") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".sovereign");
}

/// <summary>The admin API refused a request; the message is the server's.</summary>
internal sealed class AdminException(string message, bool preconditionFailed = false) : Exception(message)
{
    /// <summary>412: the resource changed after the version the request was based on (<c>If-Match</c>) was read.</summary>
    public bool PreconditionFailed { get; } = preconditionFailed;
}
