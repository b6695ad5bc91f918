using Sovereign.Cli.Output;
using Sovereign.Inference.Registry;
using Spectre.Console;

namespace Sovereign.Cli.Commands.Registry;

/// <summary>
/// Shows a pull's or import's progress: a Spectre progress bar in a terminal, plain lines when output is piped
/// (Spectre's live display prints nothing then): one per phase and one per 10 %.
/// </summary>
internal static class TransferProgress
{
    private const long UnknownSizeStepBytes = 100L << 20;

    /// <param name="transfer">What the transfer phase is called: a pull is "downloading", an import "copying" (a local
    /// file said "downloading" as if it came from the network).</param>
    public static async Task<T> RunAsync<T>(RegistryCommandContext context, string label, string transfer, Func<IProgress<PullProgress>, Task<T>> operation)
    {
        if (!context.Interactive)
        {
            return await operation(new PlainLines(context.Console, label, transfer));
        }

        T result = default!;
        await context.Console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(async progressContext =>
            {
                var task = progressContext.AddTask(TerminalText.Markup(label), autoStart: true, maxValue: 1);
                task.IsIndeterminate = true;
                result = await operation(new InlineProgress<PullProgress>(p =>
                {
                    task.Description = TerminalText.Markup($"{Verb(p.Phase, transfer)} {label}");
                    if (p.TotalBytes is { } total && total > 0)
                    {
                        task.IsIndeterminate = false;
                        task.MaxValue = total;
                        task.Value = Math.Min(p.Bytes, total);
                    }
                }));
                task.IsIndeterminate = false;
                task.Value = task.MaxValue;
                task.StopTask();
            });
        return result;
    }

    private static string Verb(PullPhase phase, string transfer) => phase switch
    {
        PullPhase.Resolving => "resolving",
        PullPhase.Downloading => transfer,
        PullPhase.Hashing => "hashing",
        _ => "installing",
    };

    private sealed class PlainLines(IAnsiConsole console, string label, string transfer) : IProgress<PullProgress>
    {
        private PullPhase? _phase;
        private int _tenths = -1;
        private long _nextUnknown;

        public void Report(PullProgress value)
        {
            if (value.Phase != _phase)
            {
                _phase = value.Phase;
                _tenths = -1;
                _nextUnknown = 0;
                switch (value.Phase)
                {
                    case PullPhase.Resolving:
                        console.WriteLine($"resolving {label}");
                        break;
                    case PullPhase.Installing:
                        console.WriteLine("checking the GGUF header and installing");
                        break;
                    case PullPhase.Downloading when value.ResumedFromBytes > 0:
                        console.WriteLine($"resuming after {value.ResumedFromBytes:N0} bytes already downloaded");
                        break;
                }
            }

            if (value.Phase is not (PullPhase.Downloading or PullPhase.Hashing))
            {
                return;
            }

            if (value.TotalBytes is { } total && total > 0)
            {
                var tenths = (int)Math.Min(10, value.Bytes * 10 / total);
                if (tenths > _tenths)
                {
                    _tenths = tenths;
                    console.WriteLine($"{Verb(value.Phase, transfer)}: {tenths * 10,3}% ({value.Bytes:N0} of {total:N0} bytes)");
                }
            }
            else if (value.Bytes >= _nextUnknown)
            {
                _nextUnknown = value.Bytes + UnknownSizeStepBytes;
                console.WriteLine($"{Verb(value.Phase, transfer)}: {value.Bytes:N0} bytes");
            }
        }
    }
}
