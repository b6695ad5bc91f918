using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.Console;

/// <summary>
/// The web console at <c>/console</c>, rendered on the server from the same API the CLI uses: the operator's pages
/// (pool, tenants and their policies, usage charts, plans, models and the language tax, audit verification), the
/// tenant's page (its usage, budget, keys and audit entries) and the auditor's offline export check.
/// </summary>
public static class ConsoleEndpoints
{
    private const string HtmlType = "text/html; charset=utf-8";

    /// <summary>Longest credential the sign-in sends on; tokens and keys are far shorter.</summary>
    private const int MaxCredentialLength = 4096;

    /// <summary>Registers what the console needs.</summary>
    public static IServiceCollection AddSovereignConsole(this IServiceCollection services)
    {
        services.AddSingleton<ConsoleSessions>();
        return services;
    }

    /// <summary>Maps /console and its assets.</summary>
    public static IEndpointRouteBuilder MapSovereignConsole(this IEndpointRouteBuilder endpoints)
    {
        var console = endpoints.MapGroup("/console");
        console.AddEndpointFilter(async (invocation, next) =>
        {
            // The console's pages are never cached, framed or sniffed; scripts come only from this server.
            var headers = invocation.HttpContext.Response.Headers;
            headers.CacheControl = "no-store";
            headers["X-Content-Type-Options"] = "nosniff";
            headers["X-Frame-Options"] = "DENY";
            headers["Referrer-Policy"] = "no-referrer";
            headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'";
            if (HttpMethods.IsPost(invocation.HttpContext.Request.Method) && PostedFromAnotherOrigin(invocation.HttpContext.Request))
            {
                return Html(new ConsolePage("Not sent from the console", null).Notice(
                    "The console's forms act only when sent from this console's own pages; open the console and send the form again.", error: true),
                    StatusCodes.Status403Forbidden);
            }

            return await next(invocation);
        });
        console.MapGet("/", Home);
        console.MapPost("/login", Login);
        console.MapPost("/logout", Logout);
        console.MapGet("/tenants", (Delegate)OperatorPages.Tenants);
        console.MapGet("/tenants/{id}", OperatorPages.Tenant);
        console.MapPost("/tenants/{id}/policy", OperatorPages.SavePolicy);
        console.MapGet("/tenants/{id}/invoice", OperatorPages.Invoice);
        console.MapGet("/usage", (Delegate)OperatorPages.Usage);
        console.MapGet("/plans", (Delegate)OperatorPages.Plans);
        console.MapGet("/models", (Delegate)OperatorPages.Models);
        console.MapGet("/models/{id}/languages", OperatorPages.LanguageTax);
        console.MapGet("/audit", (Delegate)OperatorPages.Audit);
        console.MapPost("/audit/verify", (Delegate)OperatorPages.VerifyAudit);
        console.MapGet("/verify", Verify);
        console.MapGet("/assets/{name}", Asset);

        // A mistyped console address (/console/tenant) answered the API's JSON error object, raw in the browser.
        console.MapFallback("{**rest}", NoSuchPage);
        return endpoints;
    }

    /// <summary>
    /// Whether a browser sent this form from a page of another origin. The session cookie is SameSite=Strict, but a
    /// site spans ports and sibling subdomains: a page of another service on the same host was sent the operator's
    /// cookie and could change a policy, and any site could sign a browser in with its own key. The browser's
    /// Sec-Fetch-Site decides where it is sent (a proxy does not change it); older browsers are judged by Origin's
    /// host against the Host header (not its scheme, which a TLS-terminating proxy changes). Clients that send
    /// neither (curl, the SDKs) are not browsers that carry someone's cookie.
    /// </summary>
    private static bool PostedFromAnotherOrigin(HttpRequest request)
    {
        if (request.Headers["Sec-Fetch-Site"].ToString() is { Length: > 0 } site)
        {
            return site is not ("same-origin" or "none");
        }

        if (request.Headers.Origin.ToString() is not { Length: > 0 } origin)
        {
            return false;
        }

        return !Uri.TryCreate(origin, UriKind.Absolute, out var uri)
            || !string.Equals(uri.Authority, request.Host.Value, StringComparison.OrdinalIgnoreCase);
    }

    private static IResult NoSuchPage(HttpContext context, ConsoleSessions sessions)
    {
        if (OpenAI.AllowedMethods.For(context) is { Count: > 0 } allowed)
        {
            // A page that exists, asked with a method it does not take (OPTIONS /console): 405 with Allow, as the API's
            // routes answer; this fallback, which takes every method, answered 404.
            context.Response.Headers.Allow = string.Join(", ", allowed);
            return Html(new ConsolePage("Method not allowed", sessions.Find(context))
                .Notice($"The console page at {context.Request.Path} takes {string.Join(", ", allowed)}, not {OpenAI.RequestReader.Shorten(context.Request.Method)}.", error: true),
                StatusCodes.Status405MethodNotAllowed);
        }

        return Html(new ConsolePage("Page not found", sessions.Find(context))
            .Notice($"There is no console page at {context.Request.Path}.", error: true)
            .Raw("""<p><a href="/console">Go to the console's first page</a>.</p>"""), StatusCodes.Status404NotFound);
    }

    /// <summary>
    /// Reads a console form. <c>ReadFormAsync</c> throws on a body that is not a form (no or another content type), a
    /// multipart body without a boundary or cut short, and more fields than the form limits allow, which made
    /// /console/login, open to anyone, answer 500: each is the client's 415 or 400 here.
    /// </summary>
    internal static async Task<IFormCollection> ReadFormAsync(HttpContext context)
    {
        if (!context.Request.HasFormContentType)
        {
            throw new OpenAIException(StatusCodes.Status415UnsupportedMediaType,
                "The console's forms are sent as application/x-www-form-urlencoded or multipart/form-data.", "invalid_request_error", null, "unsupported_media_type");
        }

        try
        {
            return await context.Request.ReadFormAsync(context.RequestAborted);
        }
        catch (Exception ex) when (ex is InvalidDataException or (IOException and not BadHttpRequestException and not Microsoft.AspNetCore.Connections.ConnectionResetException) && !context.RequestAborted.IsCancellationRequested)
        {
            throw OpenAIException.BadRequest("The form could not be read: " + ex.Message, null, "invalid_form");
        }
    }

    internal static IResult Html(ConsolePage page, int status = StatusCodes.Status200OK) =>
        Results.Content(page.Render(), HtmlType, statusCode: status);

    private static async Task<IResult> Home(HttpContext context, ConsoleSessions sessions)
    {
        var session = sessions.Find(context);
        return session?.Role switch
        {
            ConsoleRole.Operator => await RequireOperatorAsync(context) is (_, { } refusal) ? refusal : await OperatorPages.Pool(context, session),
            ConsoleRole.Tenant => await TenantPages.Overview(context, session),
            _ => Html(LoginPage(null)),
        };
    }

    private static ConsolePage LoginPage(string? error)
    {
        var page = new ConsolePage("Sign in", null);
        if (error is not null)
        {
            page.Notice(error, error: true);
        }

        return page.Raw("""
            <p>Operators sign in with the operator token (<code>~/.sovereign/admin-token</code> on the server); tenants with one of their API keys (<code>sk-sov-…</code>).</p>
            <form method="post" action="/console/login" class="stack">
            <label for="credential">Operator token or tenant API key</label>
            <input id="credential" name="credential" type="password" autocomplete="current-password" required>
            <button type="submit">Sign in</button>
            </form>
            <p>Auditors need no sign-in: <a href="/console/verify">verify an audit export</a> with the operator's public key, in this browser.</p>
            """);
    }

    private static async Task<IResult> Login(HttpContext context, ConsoleSessions sessions)
    {
        var form = await ReadFormAsync(context);
        var credential = form["credential"].ToString().Trim();
        if (credential.Length == 0)
        {
            return Html(LoginPage("Enter the operator token or a tenant API key."), StatusCodes.Status400BadRequest);
        }

        // The credential goes on as the Authorization header of the console's own API call: one no header can carry
        // (a line break, a non-ASCII letter, more than a server takes) made that call throw, a 500 for anyone.
        if (credential.Length > MaxCredentialLength || !credential.All(c => c is >= ' ' and <= '~'))
        {
            return Html(LoginPage("That is neither the operator token nor a tenant API key."), StatusCodes.Status401Unauthorized);
        }

        var api = new ConsoleApiClient(context, credential);
        string id;
        if (credential.StartsWith(Residency.ControlPlane.ApiKeySecrets.Prefix, StringComparison.Ordinal))
        {
            // A tenant key: /v1/keys answers with the key's own tenant, and only for a valid, unrevoked key.
            var keys = await api.GetAsync("/v1/keys", context.RequestAborted);
            if (!keys.Ok)
            {
                return Html(LoginPage("That key was refused: " + keys.ErrorMessage), StatusCodes.Status401Unauthorized);
            }

            id = sessions.Create(ConsoleRole.Tenant, credential, ConsolePage.Text(keys.Json, "tenant"));
        }
        else
        {
            var probe = await api.GetAsync("/admin/v1/jurisdictions", context.RequestAborted);
            if (!probe.Ok)
            {
                return Html(LoginPage("That is neither the operator token nor a tenant API key."), StatusCodes.Status401Unauthorized);
            }

            id = sessions.Create(ConsoleRole.Operator, credential, null);
        }

        context.Response.Cookies.Append(ConsoleSessions.CookieName, id, new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Secure = context.Request.IsHttps,
            Path = "/console",
            MaxAge = ConsoleSessions.Lifetime,
        });
        return Results.Redirect("/console", permanent: false);
    }

    private static IResult Logout(HttpContext context, ConsoleSessions sessions)
    {
        sessions.Remove(context);
        context.Response.Cookies.Delete(ConsoleSessions.CookieName, new CookieOptions { Path = "/console" });
        return Results.Redirect("/console", permanent: false);
    }

    /// <summary>Ends a session whose credential the API no longer accepts, answering the sign-in page with the reason.</summary>
    internal static IResult SignOut(HttpContext context, string reason)
    {
        context.RequestServices.GetRequiredService<ConsoleSessions>().Remove(context);
        context.Response.Cookies.Delete(ConsoleSessions.CookieName, new CookieOptions { Path = "/console" });
        return Html(LoginPage(reason), StatusCodes.Status401Unauthorized);
    }

    private static IResult Verify(HttpContext context, ConsoleSessions sessions) => Html(new ConsolePage("Verify an audit export", sessions.Find(context)).Raw("""
        <p>Checks an export (<code>sovereign audit export</code>) against the operator's public key (<code>sovereign audit public-key</code>) entirely in this browser:
        nothing is uploaded. The page implements the published format (<code>FORMAT.md</code>): every entry is re-hashed, the chain and its sequence are followed,
        and the header and checkpoint signatures are checked with the key you give, not the one inside the file. A cluster's export holds every member's chain:
        each is checked, with its coverage and verdict, as <code>sovereign audit verify-export</code> checks it. Save this page to verify with no server at all.</p>
        <form id="verify-form" class="stack">
        <label for="export-file">Export file (JSON Lines)</label>
        <input id="export-file" name="export" type="file" accept=".jsonl,.json,.txt,application/json" required>
        <label for="public-key">Operator public key (PEM)</label>
        <textarea id="public-key" name="publicKey" rows="5" required placeholder="-----BEGIN PUBLIC KEY-----"></textarea>
        <label for="earlier-file">Earlier export you kept (optional; <code>--earlier</code>): this one must be the same history wherever both state a hash</label>
        <input id="earlier-file" name="earlier" type="file" accept=".jsonl,.json,.txt,application/json">
        <label for="previous-file">Previous archive file (optional; <code>--previous</code>): this one must continue its chain</label>
        <input id="previous-file" name="previous" type="file" accept=".jsonl,.json,.txt,application/json">
        <button type="submit">Verify</button>
        </form>
        <section aria-live="polite" id="verify-result" class="result"></section>
        <noscript><p class="notice error">Verification runs in the browser and needs JavaScript; or use <code>sovereign audit verify-export</code>.</p></noscript>
        <script src="/console/assets/audit-verify.js"></script>
        """));

    private static IResult Asset(string name)
    {
        var (resource, type) = name switch
        {
            "console.css" => ("console.css", "text/css; charset=utf-8"),
            "audit-verify.js" => ("audit-verify.js", "text/javascript; charset=utf-8"),
            _ => (null, null),
        };
        var stream = resource is null ? null : Assembly.GetExecutingAssembly().GetManifestResourceStream("Sovereign.Gateway.Console.Assets." + resource);
        return stream is null ? Results.NotFound() : Results.Stream(stream, type);
    }

    /// <summary>The signed-in operator, or the page to answer with instead (sign-in, or 403 for a tenant).</summary>
    internal static async Task<(ConsoleSession? Session, IResult? Refusal)> RequireOperatorAsync(HttpContext context)
    {
        var session = context.RequestServices.GetRequiredService<ConsoleSessions>().Find(context);
        if (session is null)
        {
            return (null, Results.Redirect("/console", permanent: false));
        }

        if (session.Role != ConsoleRole.Operator)
        {
            return (null, Html(new ConsolePage("Operators only", session).Notice("This page is for the operator. Your key shows your own tenant's data only.", error: true)
                .Raw("""<p><a href="/console">Back to your usage</a></p>"""), StatusCodes.Status403Forbidden));
        }

        // A named operator token removed from the configuration since the sign-in (the API refuses it from the next
        // request) kept its session for 8 hours: signed in as "Operator", every page a 200 carrying the API's 401, the
        // removed secret held in memory. Asked of the same check the API makes, in this process, on every operator page.
        if (!await context.RequestServices.GetRequiredService<ControlPlane.AdminToken>().MatchesAsync(session.Credential, context.RequestAborted))
        {
            return (null, SignOut(context, "The operator token you signed in with is no longer accepted (revoked, expired, or removed or replaced in the configuration): sign in with a current one."));
        }

        return (session, null);
    }

    internal static string Money(decimal value) => value.ToString("#,0.######", CultureInfo.InvariantCulture);

    internal static decimal Decimal(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDecimal() : 0m;
}
