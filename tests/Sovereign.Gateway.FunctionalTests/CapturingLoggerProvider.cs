using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>Collects what a server logs (category, level, event, message) until stopped: how tests see log levels and event ids.</summary>
internal sealed class CapturingLoggerProvider(ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)> sink) : ILoggerProvider
{
    private readonly SemaphoreSlim _logged = new(0);
    private volatile bool _stopped;

    public void Stop() => _stopped = true;

    /// <summary>
    /// Waits until something logged matches <paramref name="match"/> (woken by each entry, no polling delay), or throws
    /// <see cref="TimeoutException"/> after <paramref name="timeout"/>: for what a server logs after the answer.
    /// </summary>
    public async Task<(string Category, LogLevel Level, EventId Event, string Message)> WaitForAsync(
        Func<(string Category, LogLevel Level, EventId Event, string Message), bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            foreach (var entry in sink)
            {
                if (match(entry))
                {
                    return entry;
                }
            }

            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !await _logged.WaitAsync(left))
            {
                throw new TimeoutException($"Nothing matching was logged within {timeout.TotalSeconds} s.");
            }
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose() => Stop();

    private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => !owner._stopped;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!owner._stopped)
            {
                owner.Sink.Enqueue((category, logLevel, eventId, formatter(state, exception)));
                owner._logged.Release();
            }
        }
    }

    private ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)> Sink => sink;
}
