using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>Collects what a server logs (category, level, event, message) until stopped: how tests see log levels and event ids.</summary>
internal sealed class CapturingLoggerProvider(ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)> sink) : ILoggerProvider
{
    private volatile bool _stopped;

    public void Stop() => _stopped = true;

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
            }
        }
    }

    private ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)> Sink => sink;
}
