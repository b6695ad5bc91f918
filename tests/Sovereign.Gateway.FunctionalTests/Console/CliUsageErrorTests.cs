using Sovereign.Cli.Output;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// Mistakes an operator types, found by following the README and the operator guide: each is a usage error (exit 2)
/// whose one line names the flag and what it takes, said before the server or the database is asked.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class CliUsageErrorTests(ConsoleFixture fixture) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-cli-usage-").FullName;

    private string[] Admin(params string[] args) => [.. args, "--url", fixture.Url, "--admin-token", ConsoleFixture.AdminToken];

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>
    /// The parser's own message named the .NET type ("as expected type 'System.Nullable`1[System.Int32]'"); chat's
    /// --max-tokens 0 and --temperature 2.5 were the server's 400 about other names, exit 1.
    /// </summary>
    [Theory]
    [InlineData("--weight: 'abc' is not a whole number.", "plans", "set", "gold", "--currency", "EUR", "--weight", "abc")]
    [InlineData("--input-per-million: '1e3' is not a decimal number", "plans", "price", "standard", "--model", "m", "--input-per-million", "1e3", "--output-per-million", "1")]
    // A comma was a thousands separator anywhere: '0,20' was stored as a price of 20, in force at once and never changeable.
    [InlineData("--input-per-million: '0,20' is not a decimal number", "plans", "price", "standard", "--model", "m", "--input-per-million", "0,20")]
    [InlineData("--per-compute-second: '1,000.5' is not a decimal number", "plans", "compute-price", "standard", "--pool", "p", "--per-compute-second", "1,000.5")]
    [InlineData("--budget 'month=1,5': expected PERIOD=AMOUNT[@KEY_ID]", "limits", "t1", "--budget", "month=1,5")]
    [InlineData("--budget 'month=5@': the key id after '@' is empty", "limits", "t1", "--budget", "month=5@")]
    // A negative rate was sent: the server's 400 about 'rate_limits[0]' came back as exit 1, naming no flag.
    [InlineData("--requests-per-minute must be a number of requests, 0 (no limit) or more.", "limits", "t1", "--requests-per-minute", "-5")]
    [InlineData("--tokens-per-minute must be a number of tokens, 0 (no limit) or more.", "limits", "t1", "--tokens-per-minute", "-1")]
    [InlineData("--effective-from: 'tomorrow' is not a time: give ISO 8601", "plans", "compute-price", "standard", "--pool", "p", "--per-compute-second", "1", "--effective-from", "tomorrow")]
    // Read in the US order: the 1st of February to an operator in Berlin was a price in force from the 2nd of January,
    // never changeable once in force; a usage period from the 7th of December was one from the 12th of July.
    [InlineData("--effective-from: '01/02/2031' is not a time: give ISO 8601", "plans", "price", "standard", "--model", "m", "--input-per-million", "1", "--output-per-million", "1", "--effective-from", "01/02/2031")]
    [InlineData("sovereign usage: --from: '07/12/2026' is not a day: give YYYY-MM-DD", "usage", "--from", "07/12/2026")]
    [InlineData("--compromised-from '12/01/2026' is not a time: give ISO 8601", "operator-key", "rotate", "--data-dir", "/nonexistent-sovereign-dir", "--compromised-from", "12/01/2026")]
    [InlineData("--seed: '-1' is not a whole number, 0 or more.", "models", "synth", "-o", "never.gguf", "--seed", "-1")]
    [InlineData("--temperature: 'hot' is not a decimal number", "chat", "--prompt", "hi", "--temperature", "hot")]
    [InlineData("--max-tokens must be at least 1.", "chat", "--prompt", "hi", "--max-tokens", "0")]
    [InlineData("--max-uncovered-age: 'abc' is not a whole number.", "audit", "verify", "--max-uncovered-age", "abc")] // aborted, exit 134
    [InlineData("--retain-days: 'abc' is not a whole number.", "tenants", "create", "t", "-j", "TH", "--retain-days", "abc")]
    [InlineData("--temperature must be from 0 to 2.", "chat", "--prompt", "hi", "--temperature", "2.5")]
    // A value outside a fixed list was "Argument 'xml' not recognized. Must be one of:" and one line per choice, naming no flag.
    [InlineData("sovereign invoice: --format: 'xml' is not one of csv, json.\n", "invoice", "t1", "--format", "xml")]
    [InlineData("sovereign serve: --role: 'boss' is not one of all, gateway, node.\n", "serve", "--role", "boss")]
    [InlineData("sovereign nodes state: <state>: 'sleeping' is not one of active, draining, down.\n", "nodes", "state", "n1", "sleeping")]
    // "Required argument 'key-id' missing for command: 'revoke'." when the key id had been given alone, as the tenant.
    [InlineData("sovereign keys revoke: missing <key-id>; it takes <tenant> <key-id>.\n", "keys", "revoke", "key_0123456789abcdef")]
    public async Task AValueOfTheWrongType_NamesTheFlagAndWhatItTakes_NotADotNetType(string expected, params string[] args)
    {
        // chat asks a port where nothing listens, should the check not come first.
        var (exit, stdout, stderr) = await CliProcess.RunAsync(args[0] switch { "plans" or "tenants" or "limits" => Admin(args), "chat" => [.. args, "--url", "http://127.0.0.1:1"], _ => args });

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Equal("", stdout);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// <c>operator-keys</c> (the admin API's credentials) and <c>operator-key</c> (the audit signing key, a file) were
    /// one letter apart, and each one's typo correction offered the other. The credentials are <c>admin-keys</c> now;
    /// the old spelling still runs for scripts, hidden from help.
    /// </summary>
    [Fact]
    public async Task AdminKeys_NamesTheAdminCredentials_AndOperatorKeysStillRunsHidden()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync("--help");
        Assert.True(exit == 0, stderr);
        Assert.Contains("admin-keys", stdout, StringComparison.Ordinal);
        Assert.Contains("operator-key ", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("operator-keys", stdout, StringComparison.Ordinal);

        (exit, stdout, stderr) = await CliProcess.RunAsync("admin-keys", "list", "--help");
        Assert.True(exit == 0, stderr);
        Assert.Contains("--admin-token", stdout, StringComparison.Ordinal);

        (exit, stdout, stderr) = await CliProcess.RunAsync("operator-keys", "list", "--help");
        Assert.True(exit == 0, stderr);
        Assert.Contains("--admin-token", stdout, StringComparison.Ordinal);
    }

    /// <summary>
    /// A model id pasted with a zero-width character (U+200B after "stories") was sent: the server answered that the
    /// model did not exist (exit 1), or a price or a tenant's allowed model was stored for an id no request names. Said
    /// before asking, naming the flag, the character and the rule.
    /// </summary>
    [Theory]
    [InlineData("--model 'stories?' is not a model id: it holds U+200B; model ids must not contain invisible characters", "chat", "--prompt", "hi", "--model", "stories\u200B")]
    [InlineData("--model 'm?' is not a model id: it holds U+2060", "plans", "price", "standard", "--model", "m\u2060", "--input-per-million", "1", "--output-per-million", "1")]
    [InlineData("--model '?m' is not a model id: it holds U+FEFF", "tenants", "create", "t", "-j", "TH", "--model", "\uFEFFm")]
    [InlineData("--model 'm?=up' is not a model id: it holds U+200D", "nodes", "add", "n1", "-j", "TH", "--base-url", "http://127.0.0.1:1", "--model", "m\u200D=up")]
    [InlineData("'stories?' is not an id: it holds U+200B; model ids must not contain invisible characters", "models", "load", "stories\u200B")]
    public async Task AModelIdWithAnInvisibleCharacter_IsAUsageError_NamingTheRule(string expected, params string[] args)
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(args[0] switch { "chat" => [.. args, "--url", "http://127.0.0.1:1"], _ => Admin(args) });

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Equal("", stdout);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// The periods, groupings and currency of <c>usage</c> and <c>invoice</c>, found closing a month as the operator's
    /// accountant: each was sent, and the server's 400 came back as exit 1 ("the server refused") naming its query
    /// field (<c>from</c>, <c>group_by</c>), not the flag; a time with an offset was refused without saying which UTC
    /// time it is, and <c>usage --from D --to D</c> printed an empty table, which reads as "no usage that day".
    /// </summary>
    [Theory]
    [InlineData("sovereign usage: --from: '2026-13-01' is not a day: give YYYY-MM-DD", "usage", "--from", "2026-13-01")]
    [InlineData("sovereign usage: --to: 'yesterday' is not a day: give YYYY-MM-DD", "usage", "--to", "yesterday")]
    [InlineData("sovereign usage: --from: '2026-12-01T00:00:00+07:00' is 2026-11-30T17:00:00Z, not the start of a UTC day (usage is kept per UTC day): give 2026-11-30 or 2026-12-01.",
        "usage", "--from", "2026-12-01T00:00:00+07:00")]
    [InlineData("sovereign usage: --to: '2026-12-05T09:00:00Z' is 2026-12-05T09:00:00Z, not the start of a UTC day", "usage", "--to", "2026-12-05T09:00:00Z")]
    [InlineData("sovereign usage: --group-by: 'planet' is not one of day, model, jurisdiction, tenant, pool, device_class, key.", "usage", "--group-by", "tenant,planet")]
    [InlineData("sovereign usage: --to (2026-12-01) is before --from (2026-12-07).", "usage", "--from", "2026-12-07", "--to", "2026-12-01")]
    [InlineData("sovereign usage: --to is the day after the last day shown, so --from and --to on one day make an empty period: for the one day 2026-12-07 pass --to 2026-12-08.",
        "usage", "--from", "2026-12-07", "--to", "2026-12-07")]
    [InlineData("sovereign invoice: --from: '2026-13-01' is not a date: give YYYY-MM-DD (invoices cover whole UTC days).", "invoice", "t1", "--from", "2026-13-01")]
    [InlineData("sovereign invoice: --to: '2026-12-01T00:00:00+07:00' is not a date: give YYYY-MM-DD", "invoice", "t1", "--to", "2026-12-01T00:00:00+07:00")]
    [InlineData("sovereign invoice: --to (2026-12-01) is before --from (2026-12-07).", "invoice", "t1", "--from", "2026-12-07", "--to", "2026-12-01")]
    [InlineData("sovereign invoice: --currency: 'EURO' is not an ISO 4217 currency code (e.g. EUR, USD, THB).", "invoice", "t1", "--currency", "EURO")]
    public async Task AUsageOrInvoicePeriodThatIsNoPeriod_IsAUsageErrorNamingTheFlag(string expected, params string[] args)
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(Admin(args));

        Assert.True(exit == ExitCodes.Usage, $"exit {exit}: {stderr}");
        Assert.Equal("", stdout);
        Assert.StartsWith(expected, stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// A key or token no HTTP header can carry (a line break, a non-ASCII letter) is a usage error naming where it
    /// came from: it was exit 70 "a defect in sovereign" (the HTTP client's exception), exit 4 "the request failed" as
    /// if the server were unreachable, or the server's 400 about a malformed request.
    /// </summary>
    [Theory]
    [InlineData("--api-key", "sk-sov-\u00e9", "models", "list")]
    [InlineData("--api-key", "sk-sov-a\nb", "models", "list")]
    [InlineData("--api-key", "\u00e9", "chat", "--prompt", "hi")]
    [InlineData("--admin-token", "x\ny", "tenants", "list")]
    [InlineData("--admin-token", "t\u00f6k\u00e9n", "tenants", "list")]
    public async Task ACredentialNoHeaderCanCarry_IsAUsageErrorNamingTheFlag(string flag, string credential, params string[] args)
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync([.. args, "--url", fixture.Url, flag, credential]);

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Equal("", stdout);
        Assert.Contains($"{flag} holds a character an HTTP header cannot carry", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(credential, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AKeyFromTheEnvironmentNoHeaderCanCarry_NamesTheVariable()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(new Dictionary<string, string?> { ["SOVEREIGN_API_KEY"] = "sk-sov-\u00e9" }, "models", "list", "--url", fixture.Url);

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("SOVEREIGN_API_KEY holds a character an HTTP header cannot carry", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// A misspelt command ('tenants lst') said "Required command was not provided." above the unrecognized word: one
    /// line now names the word and the commands there are.
    /// </summary>
    [Theory]
    [InlineData("sovereign tenants: 'lst' is not a command. Did you mean list? Use one of: create, list, show, update.\n", "tenants", "lst")]
    [InlineData("sovereign: 'tenant' is not a command. Did you mean tenants? Use one of: serve, models, chat, tenants, keys, ", "tenant", "list")]
    [InlineData("sovereign models: '--bogus' is not a command; use one of: list, ", "models", "--bogus")]
    public async Task AMisspeltCommand_NamesTheCommandsThereAre(string expected, params string[] args)
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(args);

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Equal("", stdout);
        Assert.StartsWith(expected, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Required command", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// A misspelt flag was "Unrecognized command or argument '--jsn'." and nothing more: the line now ends with
    /// System.CommandLine's own typo correction (the nearest flags within three edits), and a word near none gets none.
    /// </summary>
    [Theory]
    [InlineData("sovereign tenants list: Unrecognized command or argument '--jsn'. Did you mean --json?\n", "tenants", "list", "--jsn")]
    [InlineData("sovereign invoice: Unrecognized command or argument '--forse'. Did you mean --force?\n", "invoice", "acme", "--forse")]
    [InlineData("sovereign invoice: Unrecognized command or argument '--something-else'.\n", "invoice", "acme", "--something-else")]
    public async Task AMisspeltFlag_IsAUsageError_ThatSaysWhichFlagWasMeant(string expected, params string[] args)
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(args);

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Equal("", stdout);
        Assert.StartsWith(expected, stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// '--urls 8081' loaded the models first, then stopped with Kestrel's "Invalid url: '8081'"; a port past 65535 with
    /// the runtime's "Specified argument was out of the range of valid values. (Parameter 'port')".
    /// </summary>
    [Theory]
    [InlineData("8081", "sovereign serve: --urls: '8081' is not a URL to listen on; give scheme, host and port, e.g. http://127.0.0.1:8081.\n")]
    [InlineData("localhost:8081", "sovereign serve: --urls: 'localhost:8081' is not a URL to listen on; give scheme, host and port, e.g. http://localhost:8081.\n")]
    [InlineData("http://127.0.0.1:99999", "sovereign serve: --urls: 'http://127.0.0.1:99999' has port 99999; a port is 0 to 65535.\n")]
    [InlineData("http://127.0.0.1:0;ftp://127.0.0.1:0", "sovereign serve: --urls: 'ftp://127.0.0.1:0' is not an http or https URL.\n")]
    public async Task ServeWithAnUrlsThatIsNoAddress_SaysSoBeforeLoadingAnything(string urls, string expected)
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync("serve", "--urls", urls, "--data-dir", _directory);

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Equal("", stdout);
        Assert.StartsWith(expected, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("loading", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_directory, "models")));
    }

    /// <summary>It said "Invalid synthetic model option Layers: ... (Parameter 'Layers')".</summary>
    [Fact]
    public async Task ASynthOptionOutOfRange_NamesTheFlag()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync("models", "synth", "-o", Path.Combine(_directory, "m.gguf"), "--layers", "-3");

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("--layers must be between 1 and 512, got -3.", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Parameter", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_directory, "m.gguf")));
    }

    /// <summary>
    /// Without --jurisdiction the server's 400 about 'policy.allowed_jurisdictions' came back as exit 1; a negative
    /// --retain-days was sent as "no retention" (create stored nothing, update cleared the tenant's retention).
    /// </summary>
    [Fact]
    public async Task TenantsCreate_WithoutAJurisdiction_OrWithNegativeRetention_IsAUsageError_AndNoTenantIsMade()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(Admin("tenants", "create", "qa-no-place"));
        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("--jurisdiction is required", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = await CliProcess.RunAsync(Admin("tenants", "create", "qa-no-place", "--jurisdiction", "TH", "--retain-days", "-5"));
        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("--retain-days", stderr, StringComparison.Ordinal);

        // An update without a flag sent an empty change, audited, with exit 0.
        (exit, _, stderr) = await CliProcess.RunAsync(Admin("tenants", "update", "th-hospital"));
        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("nothing to change", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = await CliProcess.RunAsync(Admin("tenants", "show", "qa-no-place"));
        Assert.Equal(ExitCodes.Failed, exit);
        Assert.Contains("404", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// --from after --to was the runtime's "from ('1796428800000') must be less than or equal to '1796342400000'.
    /// (Parameter 'from') Actual value was ...", in milliseconds, and left an empty export file behind.
    /// </summary>
    [Fact]
    public async Task AuditExport_FromAfterTo_NamesBothFlags_AndWritesNothing()
    {
        var output = Path.Combine(_directory, "backwards.jsonl");

        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", fixture.DataDirectory, "--from", "2026-12-05", "--to", "2026-12-04", "-o", output);

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Equal("", stdout);
        Assert.Contains("--from (2026-12-05T00:00:00Z) is after --to (2026-12-04T00:00:00Z)", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Parameter", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
    }

    /// <summary>A misspelt or blank --tenant wrote an export of other tenants' hashes only, with exit 0.</summary>
    [Fact]
    public async Task AuditExport_OfATenantThatIsNot_WritesNothing()
    {
        var output = Path.Combine(_directory, "export.jsonl");

        var (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", fixture.DataDirectory, "--tenant", "th-hospitl", "-o", output);
        Assert.Equal(ExitCodes.Failed, exit);
        Assert.Contains("no tenant 'th-hospitl'", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", fixture.DataDirectory, "--tenant", " ", "-o", output);
        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("--tenant ' ' is not a tenant id", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(output));

        (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", fixture.DataDirectory, "--tenant", "th-hospital", "-o", output);
        Assert.True(exit == 0, stderr);
        Assert.True(File.Exists(output));
    }

    /// <summary>
    /// An --output in a folder that does not exist was exit 1 with the runtime's "Could not find a part of the path"
    /// (after the invoice had been fetched); 'audit archive' already said so as a usage error.
    /// </summary>
    [Fact]
    public async Task AnOutputInAFolderThatDoesNotExist_IsAUsageErrorNamingTheFolder()
    {
        var missing = Path.Combine(_directory, "no-such-folder");
        foreach (var args in new[]
        {
            Admin("invoice", "th-hospital", "-o", Path.Combine(missing, "invoice.csv")),
            ["audit", "export", "--data-dir", fixture.DataDirectory, "-o", Path.Combine(missing, "export.jsonl")],
        })
        {
            var (exit, _, stderr) = await CliProcess.RunAsync(args);

            Assert.True(exit == ExitCodes.Usage, $"{string.Join(' ', args)}: {exit} {stderr}");
            Assert.Contains($"the folder {missing} does not exist", stderr, StringComparison.Ordinal);
        }

        Assert.False(Directory.Exists(missing));
    }

    /// <summary>
    /// <c>invoice -o FILE</c> replaced an existing file without a word (explorer23): last month's invoice, kept for the
    /// accountant, was gone with one mistyped name. It is refused as a usage error before the server is asked, and
    /// <c>--force</c> replaces it.
    /// </summary>
    [Fact]
    public async Task InvoiceOutputThatExists_IsAUsageErrorNamingTheFile_AndForceReplacesIt()
    {
        var kept = Path.Combine(_directory, "november.csv");
        await File.WriteAllTextAsync(kept, "last month's invoice");

        var (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("invoice", "th-hospital", "-o", kept));

        Assert.True(exit == ExitCodes.Usage, $"{exit} {stderr}");
        Assert.Equal("", stdout);
        Assert.Equal($"sovereign invoice: --output {kept} exists already; pass --force to replace it, or choose another file.\n", stderr);
        Assert.Equal("last month's invoice", await File.ReadAllTextAsync(kept));

        (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("invoice", "th-hospital", "-o", kept, "--force"));

        Assert.True(exit == 0, stderr);
        Assert.StartsWith("tenant,currency,", await File.ReadAllTextAsync(kept), StringComparison.Ordinal);
        Assert.Contains($"Wrote {kept}.", stdout, StringComparison.Ordinal);
    }

    /// <summary>
    /// <c>audit export -o FILE</c> and <c>models synth -o FILE</c> replaced an existing file without a word, as
    /// <c>invoice -o</c> once did: an export already handed to an auditor, or a model another server loads, gone with
    /// one reused name. Each is refused as <c>invoice -o</c> refuses it (exit 2, the same line), and <c>--force</c>
    /// replaces it; no temporary file is left beside it either way.
    /// </summary>
    [Fact]
    public async Task AuditExportAndSynthOutputThatExists_IsAUsageErrorNamingTheFile_AndForceReplacesIt()
    {
        var kept = Path.Combine(_directory, "kept.out");
        foreach (var (name, args) in new (string Name, string[] Args)[]
        {
            ("audit export", ["audit", "export", "--data-dir", fixture.DataDirectory, "-o", kept]),
            ("models synth", ["models", "synth", "--layers", "1", "--width", "64", "--vocab", "600", "-o", kept]),
        })
        {
            await File.WriteAllTextAsync(kept, "kept");

            var (exit, stdout, stderr) = await CliProcess.RunAsync(args);

            Assert.True(exit == ExitCodes.Usage, $"{name}: {exit} {stdout} {stderr}");
            Assert.Equal($"sovereign {name}: --output {kept} exists already; pass --force to replace it, or choose another file.\n", stderr);
            Assert.Equal("kept", await File.ReadAllTextAsync(kept));

            (exit, stdout, stderr) = await CliProcess.RunAsync([.. args, "--force"]);

            Assert.True(exit == 0, $"{name} --force: {exit} {stdout} {stderr}");
            Assert.NotEqual("kept", await File.ReadAllTextAsync(kept));
            Assert.Equal([kept], Directory.GetFileSystemEntries(_directory));
        }
    }

    /// <summary>
    /// An --output that is a folder was exit 1 with the runtime's "Access to the path '...' is denied." (invoice after
    /// fetching it, audit export after reading the log) or "The file '...' already exists." (audit archive), as if a
    /// permission or an earlier archive were the problem.
    /// </summary>
    [Fact]
    public async Task AnOutputThatIsAFolder_IsAUsageErrorNamingIt()
    {
        var folder = Path.Combine(_directory, "out-folder");
        Directory.CreateDirectory(folder);
        foreach (var args in new[]
        {
            Admin("invoice", "th-hospital", "-o", folder),
            ["audit", "export", "--data-dir", fixture.DataDirectory, "-o", folder],
            ["audit", "archive", "--data-dir", fixture.DataDirectory, "--before", "2000-01-01T00:00:00Z", "-o", folder],
        })
        {
            var (exit, _, stderr) = await CliProcess.RunAsync(args);

            Assert.True(exit == ExitCodes.Usage, $"{string.Join(' ', args)}: {exit} {stderr}");
            Assert.Contains($"--output {folder} is a folder", stderr, StringComparison.Ordinal);
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(folder));
    }

    /// <summary>
    /// A missing key file was exit 1 with the runtime's "Could not find file"; a file that holds no key exit 2 with
    /// "No supported key formats were found ... (Parameter 'input')".
    /// </summary>
    [Fact]
    public async Task AuditVerifyExport_WithAPublicKeyThatIsNot_IsAUsageErrorNamingTheFlag()
    {
        var export = Path.Combine(_directory, "all.jsonl");
        var (exit, _, stderr) = await CliProcess.RunAsync("audit", "export", "--data-dir", fixture.DataDirectory, "-o", export);
        Assert.True(exit == 0, stderr);

        (exit, _, stderr) = await CliProcess.RunAsync("audit", "verify-export", export, "--public-key", Path.Combine(_directory, "missing.pem"));
        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("--public-key", stderr, StringComparison.Ordinal);
        Assert.Contains("does not exist", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = await CliProcess.RunAsync("audit", "verify-export", export, "--public-key", export);
        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("holds no PEM public key", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Parameter", stderr, StringComparison.Ordinal);

        var pem = Path.Combine(_directory, "operator.pem");
        (exit, var publicKey, stderr) = await CliProcess.RunAsync("audit", "public-key", "--data-dir", fixture.DataDirectory);
        Assert.True(exit == 0, stderr);
        await File.WriteAllTextAsync(pem, publicKey);
        (exit, _, stderr) = await CliProcess.RunAsync("audit", "verify-export", export, "--public-key", pem);
        Assert.True(exit == 0, stderr);
    }

    /// <summary>
    /// An admin command with no token to send: the server was started with --data-dir, and the CLI looked in
    /// ~/.sovereign. It was exit 1, "the server refused", before any server was asked, and did not say that --data-dir
    /// (or Sovereign__DataDirectory) points it at the server's token.
    /// </summary>
    [Fact]
    public async Task AnAdminCommandWithoutAToken_IsAUsageError_NamingEveryWayToGiveIt()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(
            new Dictionary<string, string?> { ["SOVEREIGN_ADMIN_TOKEN"] = null, ["Sovereign__DataDirectory"] = null },
            "tenants", "list", "--url", fixture.Url, "--data-dir", _directory);

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Equal("", stdout);
        Assert.Contains("--admin-token", stderr, StringComparison.Ordinal);
        Assert.Contains("SOVEREIGN_ADMIN_TOKEN", stderr, StringComparison.Ordinal);
        Assert.Contains("--data-dir", stderr, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(_directory, "admin-token") + " not found", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// Found by following the README's tour (its token in ~/.sovereign/admin-token) and then the operator guide's
    /// <c>serve --data-dir /var/lib/sovereign</c>: the admin commands sent the tour's token and printed "401: The admin API
    /// needs the operator token (Authorization: Bearer &lt;admin token&gt;); tenant keys are not accepted here.", naming
    /// neither the token's source nor how to give the right one.
    /// </summary>
    [Fact]
    public async Task AnAdminCommandWhoseTokenIsRefused_NamesWhereItCameFrom_AndHowToGiveTheServersOwn()
    {
        var file = Path.Combine(_directory, "admin-token");
        await File.WriteAllTextAsync(file, "not-this-servers-token-0123456789");

        var (exit, stdout, stderr) = await CliProcess.RunAsync(
            new Dictionary<string, string?> { ["SOVEREIGN_ADMIN_TOKEN"] = null, ["Sovereign__DataDirectory"] = null },
            "tenants", "list", "--url", fixture.Url, "--data-dir", _directory);

        Assert.Equal(ExitCodes.Failed, exit);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("401", line, StringComparison.Ordinal);
        Assert.Contains($"The token sent came from {file}", line, StringComparison.Ordinal);
        Assert.Contains("--admin-token", line, StringComparison.Ordinal);
        Assert.Contains("--data-dir", line, StringComparison.Ordinal);
    }
}
