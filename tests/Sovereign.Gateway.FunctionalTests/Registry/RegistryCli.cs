using System.CommandLine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Sovereign.Cli.Commands.Registry;
using Sovereign.Inference.Registry;
using Spectre.Console;

namespace Sovereign.Gateway.FunctionalTests.Registry;

/// <summary>Runs the registry commands in-process under a root <c>models</c> command, capturing what they print.</summary>
internal sealed class RegistryCli
{
    public RegistryCli(string dataDirectory, bool interactive = false, Uri? huggingFace = null)
    {
        DataDirectory = dataDirectory;
        Interactive = interactive;
        HuggingFace = huggingFace;
    }

    public string DataDirectory { get; }

    public bool Interactive { get; }

    public Uri? HuggingFace { get; }

    public async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(stdout),
        });
        console.Profile.Width = 240;
        var context = new RegistryCommandContext
        {
            Console = console,
            Error = stderr,
            Interactive = Interactive,
            Configure = options => options with
            {
                HuggingFaceEndpoint = HuggingFace ?? options.HuggingFaceEndpoint,
                HuggingFaceToken = null,
                CreateHttpHandler = () => new SocketsHttpHandler { AllowAutoRedirect = false, UseProxy = false },
                RetryDelay = TimeSpan.Zero,
                AvailableFreeSpace = _ => null,
            },
        };

        var models = new Command("models");
        foreach (var command in RegistryCommands.Create(context))
        {
            models.Subcommands.Add(command);
        }

        var root = new RootCommand("test") { models };
        string[] withDataDir = args.Length > 1 && args[0] == "models" ? [.. args, "--data-dir", DataDirectory] : args;
        var exit = await root.Parse(withDataDir).InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr });
        return (exit, stdout.ToString(), stderr.ToString());
    }
}

/// <summary>A Kestrel server on 127.0.0.1 serving a few in-memory files.</summary>
internal sealed class LoopbackFiles : IAsyncDisposable
{
    private readonly Dictionary<string, byte[]> _files;
    private readonly WebApplication _app;

    private LoopbackFiles(Dictionary<string, byte[]> files, WebApplication app)
    {
        _files = files;
        _app = app;
    }

    public Uri BaseAddress => new(_app.Urls.First().TrimEnd('/') + "/");

    public static async Task<LoopbackFiles> StartAsync(Dictionary<string, byte[]> files)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.Run(async context =>
        {
            if (!files.TryGetValue(context.Request.Path.Value ?? "", out var content))
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }

            context.Response.ContentLength = content.Length;
            if (!HttpMethods.IsHead(context.Request.Method))
            {
                await context.Response.Body.WriteAsync(content);
            }
        });
        await app.StartAsync();
        return new LoopbackFiles(files, app);
    }

    public string Url(string path) => new Uri(BaseAddress, path.TrimStart('/')).ToString();

    public async ValueTask DisposeAsync()
    {
        _files.Clear();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
