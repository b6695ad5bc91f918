using Microsoft.Extensions.Options;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>Starts a server whose sovereign.json holds <c>{"Sovereign": ...}</c> and returns why the start failed.</summary>
internal static class StartFailure
{
    /// <summary>The validation message of a start with <paramref name="sovereignSection"/> as the config file's Sovereign section.</summary>
    public static async Task<string> WithSovereignSectionAsync(string sovereignSection, List<ModelOptions>? models = null)
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-start-").FullName;
        try
        {
            var config = Path.Combine(directory, "sovereign.json");
            await File.WriteAllTextAsync(config, """{"Sovereign":""" + sovereignSection + "}");
            await using var app = ServeCommand.Build(new ServeSettings
            {
                Models = models ?? [new ModelOptions { Id = "m", Path = TestModels.Stories260K }],
                Urls = "http://127.0.0.1:0",
                DataDirectory = directory,
                ConfigFile = config,
            }, []);

            return (await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync())).Message;
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
