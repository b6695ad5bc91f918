namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>Sovereign:Database</c> settings a start cannot honour. Found by hand: any provider other than <c>PostgreSql</c>
/// (a misspelt <c>Postgres</c>, <c>PostgreSQL-15</c>) quietly ran on SQLite, with the PostgreSQL connection string taken
/// for a file name (<c>./Host=db;Database=sovereign</c> appeared in the working directory), so each gateway of a
/// cluster kept its own budgets, keys and audit chain; <c>PostgreSql</c> without a connection string stopped the start
/// with "Value cannot be null. (Parameter 'connectionString')".
/// </summary>
public sealed class DatabaseSettingsTests
{
    [Theory]
    [InlineData("Postgres")]
    [InlineData("PostgreSQL-15")]
    public async Task Serve_AnUnknownDatabaseProvider_StopsTheStartNamingIt_AndCreatesNoFile(string provider)
    {
        var connectionString = $"Host=127.0.0.1;Database=sovereign-provider-probe-{Guid.NewGuid():N}";

        var message = await StartFailure.WithSovereignSectionAsync(
            $$$"""{"Database":{"Provider":"{{{provider}}}","ConnectionString":"{{{connectionString}}}"}}""");

        Assert.Contains($"Sovereign:Database:Provider '{provider}' is not a database provider; use Sqlite or PostgreSql.", message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.GetFullPath(connectionString)), "the connection string was opened as a SQLite file");
    }

    [Fact]
    public async Task Serve_PostgreSqlWithoutAConnectionString_StopsTheStartNamingTheSetting()
    {
        var message = await StartFailure.WithSovereignSectionAsync("""{"Database":{"Provider":"postgresql"}}""");

        Assert.Contains("Sovereign:Database:ConnectionString is required with Sovereign:Database:Provider PostgreSql", message, StringComparison.Ordinal);
    }
}

/// <summary>
/// <c>Sovereign:NodeId</c> that the admin API cannot name. Found by hand: <c>Sovereign__NodeId="Bad Id"</c> started,
/// listed its node as "Bad Id", and then <c>nodes drain</c>, <c>nodes state</c> and <c>nodes rm</c> of it were each a
/// 400 (an id in a path has no whitespace): the operator could not take the node out of rotation. An empty one started
/// too, logging error 4212 (the interrupted-request sweep could not run under an empty id).
/// </summary>
public sealed class NodeIdSettingTests
{
    [Theory]
    [InlineData("Bad Id")]
    [InlineData("")]
    [InlineData("node\\u0007th")]
    public async Task Serve_ANodeIdTheAdminApiCannotName_StopsTheStartNamingIt(string nodeId)
    {
        var message = await StartFailure.WithSovereignSectionAsync($$"""{"NodeId":"{{nodeId}}"}""");

        Assert.Contains("Sovereign:NodeId must be 1-256 characters without whitespace or control characters (e.g. node-th-1); got '", message, StringComparison.Ordinal);
    }
}

/// <summary>
/// One value given as a list or an object in sovereign.json. Found by hand: <c>"Jurisdiction": ["TH"]</c> stopped the
/// start with the configuration binder's "Cannot create instance of type 'System.String' because it has multiple public
/// parameterized constructors", naming no setting.
/// </summary>
public sealed class SettingShapeTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-setting-shape-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Theory]
    [InlineData("""{"Jurisdiction":["TH"]}""", "Sovereign:Jurisdiction is one value, but it is set to a list or an object: set it as \"Jurisdiction\": \"...\" in the config file, or Sovereign__Jurisdiction=... in the environment.")]
    [InlineData("""{"Limits":{"MaxOutputTokens":{"value":5}}}""", "Sovereign:Limits:MaxOutputTokens is one value, but it is set to a list or an object")]
    public async Task Serve_OneValueGivenAsAListOrObject_StopsTheStartNamingIt(string section, string message)
    {
        var config = Path.Combine(_directory, "sovereign.json");
        await File.WriteAllTextAsync(config, """{"Sovereign":""" + section + "}");

        var (exit, _, stderr) = await CliProcess.RunAsync(new Dictionary<string, string?> { ["Sovereign__BuiltInEmbeddings"] = "false" },
            "serve", "--config", config, "--urls", "http://127.0.0.1:0", "--data-dir", _directory);

        Assert.Equal(2, exit);
        Assert.Contains("sovereign serve: cannot start: " + message, stderr, StringComparison.Ordinal);
    }
}

/// <summary>
/// A misspelt setting. Found by hand: <c>"Jurisdicton": "TH"</c> in sovereign.json started the server with no
/// jurisdiction (refusing every tenant with a policy), and <c>Sovereign__Limits__MaxOutputToken</c> left the default in
/// force, without a word. Every key under <c>Sovereign</c> must now name a setting.
/// </summary>
public sealed class UnknownSettingTests
{
    [Theory]
    [InlineData("""{"Jurisdicton":"TH"}""", "Sovereign:Jurisdicton is not a setting, so it would be ignored; did you mean Sovereign:Jurisdiction?")]
    [InlineData("""{"Limits":{"MaxOutputToken":5}}""", "Sovereign:Limits:MaxOutputToken is not a setting, so it would be ignored; did you mean Sovereign:Limits:MaxOutputTokens?")]
    [InlineData("""{"Cluster":{"Reddis":"127.0.0.1:6379"}}""", "Sovereign:Cluster:Reddis is not a setting, so it would be ignored; did you mean Sovereign:Cluster:Redis?")]
    [InlineData("""{"Models":[{"Id":"m","Pth":"/x.gguf"}]}""", "Sovereign:Models:0:Pth is not a setting, so it would be ignored; did you mean Sovereign:Models:0:Path?")]
    public async Task Serve_ASettingThatDoesNotExist_StopsTheStartNamingIt(string section, string message) =>
        Assert.Contains(message, await StartFailure.WithSovereignSectionAsync(section), StringComparison.Ordinal);

    [Fact]
    public async Task Serve_ASettingAnotherComponentReads_IsASetting()
    {
        // Sovereign:Metering:ReservationLifetime is the tenant grains' (TenantMoneyOptions), documented in the operator
        // guide: the check for misspelt settings refused it at first.
        var directory = Directory.CreateTempSubdirectory("sovereign-also-bound-").FullName;
        try
        {
            await using var app = Sovereign.Cli.Commands.ServeCommand.Build(new Sovereign.Cli.Commands.ServeSettings
            {
                Urls = "http://127.0.0.1:0",
                DataDirectory = directory,
                Overrides = new Dictionary<string, string?> { ["Sovereign:Metering:ReservationLifetime"] = "00:10:00", ["Sovereign:BuiltInEmbeddings"] = "false" },
            }, []);
            await app.StartAsync();
            await app.StopAsync();
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }

        Assert.Contains("Sovereign:Metering:ReservationLifetim is not a setting, so it would be ignored; did you mean Sovereign:Metering:ReservationLifetime?",
            await StartFailure.WithSovereignSectionAsync("""{"Metering":{"ReservationLifetim":"00:10:00"}}"""), StringComparison.Ordinal);
    }
}
