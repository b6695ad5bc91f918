using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sovereign.Cli.Commands;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// What an operator's "Logging" settings can switch on, on a server built as <c>sovereign serve</c> builds it (not
/// started: the levels are decided when it is built). Quiet by default; a category named in the settings is raised as
/// the README says; ASP.NET Core's request lines, which carry the query string (where a client may have put its key),
/// stay off whatever the settings say.
/// </summary>
public sealed class LogLevelSettingsTests : IDisposable
{
    private const string HostingDiagnostics = "Microsoft.AspNetCore.Hosting.Diagnostics";

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-log-levels-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task ByDefault_AspNetCoreAndOrleans_LogWarningsOnly()
    {
        await using var app = Build([]);
        var loggers = app.Services.GetRequiredService<ILoggerFactory>();

        Assert.False(loggers.CreateLogger("Microsoft.AspNetCore.Routing.EndpointMiddleware").IsEnabled(LogLevel.Information));
        Assert.False(loggers.CreateLogger("Orleans.Runtime.Catalog").IsEnabled(LogLevel.Information));
        Assert.True(loggers.CreateLogger("Orleans.Runtime.Catalog").IsEnabled(LogLevel.Warning));
    }

    /// <summary>
    /// The README's own example (<c>Logging__LogLevel__Microsoft.AspNetCore=Information</c>) changed nothing: the quiet
    /// defaults were added after the settings, and for one category the later rule wins.
    /// </summary>
    [Fact]
    public async Task ACategoryNamedInTheSettings_IsRaised_AsTheReadmeSays()
    {
        await using var app = Build(new()
        {
            ["Logging:LogLevel:Microsoft.AspNetCore"] = "Information",
            ["Logging:LogLevel:Orleans"] = "Debug",
        });
        var loggers = app.Services.GetRequiredService<ILoggerFactory>();

        Assert.True(loggers.CreateLogger("Microsoft.AspNetCore.Routing.EndpointMiddleware").IsEnabled(LogLevel.Information));
        Assert.True(loggers.CreateLogger("Orleans.Runtime.Catalog").IsEnabled(LogLevel.Debug));
        Assert.False(loggers.CreateLogger(HostingDiagnostics).IsEnabled(LogLevel.Critical));
    }

    /// <summary>
    /// A setting for one provider (<c>Logging:Console:LogLevel:...</c>) outranks every rule that names no provider, so
    /// it switched ASP.NET Core's request lines back on ("Request starting ... ?api_key=sk-..." at Information), which the
    /// README says stay off whatever the configuration says.
    /// </summary>
    [Theory]
    [InlineData("Logging:Console:LogLevel:Default")]
    [InlineData("Logging:Console:LogLevel:" + HostingDiagnostics)]
    [InlineData("Logging:Console:LogLevel:Microsoft.AspNetCore.Hosting.*")]
    [InlineData("Logging:Console:LogLevel:" + HostingDiagnostics + "*")]
    [InlineData("Logging:LogLevel:" + HostingDiagnostics)]
    public async Task HostingDiagnostics_StayOff_WhateverTheSettingsSay(string setting)
    {
        await using var app = Build(new() { [setting] = "Trace" });
        var hosting = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(HostingDiagnostics);

        Assert.False(hosting.IsEnabled(LogLevel.Information));
        Assert.False(hosting.IsEnabled(LogLevel.Critical));
    }

    /// <summary>
    /// Kestrel's lines about requests it refused quote the refused target (query string included) or header line
    /// (value included) once its category is at Information or below: off whatever the settings say, as the request lines.
    /// </summary>
    [Theory]
    [InlineData("Logging:LogLevel:Microsoft.AspNetCore")]
    [InlineData("Logging:LogLevel:Microsoft.AspNetCore.Server.Kestrel.BadRequests")]
    [InlineData("Logging:Console:LogLevel:Default")]
    [InlineData("Logging:Console:LogLevel:Microsoft.AspNetCore.Server.Kestrel.*")]
    public async Task KestrelBadRequests_StayOff_WhateverTheSettingsSay(string setting)
    {
        await using var app = Build(new() { [setting] = "Trace" });
        var loggers = app.Services.GetRequiredService<ILoggerFactory>();

        Assert.False(loggers.CreateLogger("Microsoft.AspNetCore.Server.Kestrel.BadRequests").IsEnabled(LogLevel.Critical));
        // Kestrel's other lines (connections opened and closed) are raised as the setting says.
        Assert.Equal(!setting.EndsWith("BadRequests", StringComparison.Ordinal), loggers.CreateLogger("Microsoft.AspNetCore.Server.Kestrel.Connections").IsEnabled(LogLevel.Debug));
    }

    private Microsoft.AspNetCore.Builder.WebApplication Build(Dictionary<string, string?> logging)
    {
        var overrides = new Dictionary<string, string?>(logging) { ["Sovereign:BuiltInEmbeddings"] = "false" };
        return ServeCommand.Build(new ServeSettings { Urls = "http://127.0.0.1:0", DataDirectory = _directory, Threads = 1, ContextLength = 256, Overrides = overrides }, []);
    }
}
