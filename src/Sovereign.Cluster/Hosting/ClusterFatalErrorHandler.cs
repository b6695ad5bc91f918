using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace Sovereign.Cluster.Hosting;

/// <summary>
/// What a member does when Orleans finds it cannot go on: above all when the other members declared it dead (they
/// stopped hearing from it: cut off, paused, or its certificate refused by them: another CA's, revoked). It must stop
/// at once, since the cluster has moved its grains (a tenant's money among them) elsewhere. Orleans' own handler did
/// so with <see cref="Environment.FailFast(string)"/>: exit 134 (SIGABRT, a core dump where enabled) and thousands of
/// lines of stack traces on the console, found starting a gateway with a certificate of another cluster CA. It now
/// logs one Critical event and one line on stderr, and exits 75 for its supervisor to start it again (70 for any
/// other fatal error Orleans reports: a defect).
/// </summary>
internal sealed partial class ClusterFatalErrorHandler(ILogger<ClusterFatalErrorHandler> logger, Security.ClusterTlsCredentials tls) : IFatalErrorHandler
{
    /// <summary>The exit status of a member the cluster declared dead (EX_TEMPFAIL: start it again).</summary>
    public const int DeclaredDeadExitCode = 75;

    /// <summary>The exit status of any other fatal error Orleans reports (EX_SOFTWARE).</summary>
    public const int OtherFatalErrorExitCode = 70;

    private int _handling;

    public bool IsUnexpected(Exception exception) => exception is not ThreadAbortException;

    public void OnFatalException(object? sender = null, string? context = null, Exception? exception = null)
    {
        // Several of Orleans' loops may report at once: the first one ends the process.
        if (Interlocked.Exchange(ref _handling, 1) == 1)
        {
            Thread.Sleep(Timeout.Infinite);
        }

        var declaredDead = context?.Contains("told I am dead", StringComparison.Ordinal) == true;
        var message = declaredDead
            ? "the cluster's other members declared this member dead (they stopped hearing from it: it was cut off or paused, " +
              "or they refuse its certificate: one of another cluster CA, or revoked; event 3010 on them says which), so its grains now live " +
              "elsewhere and it stops at once. " +
              (tls.LastRefusedPeer is { } refused
                  ? $"It refused a member's certificate too ({refused}): the members are not of the CA it trusts, {tls.AuthorityPath} (Sovereign:Cluster:TlsCa); " +
                    "give it this cluster's CA and a certificate the CA issued (sovereign cluster cert issue). Exit 75"
                  : "Exit 75: start it again (systemd and compose do)")
            : $"Orleans reported a fatal error in {sender?.GetType().Name ?? "the cluster runtime"} ({context ?? "no context"}" +
              $"{(exception is null ? "" : ": " + exception.GetType().Name + ": " + exception.Message)}); stopping at once. This is a defect; exit 70";
        if (declaredDead)
        {
            LogDeclaredDead(logger, message);
        }
        else
        {
            LogFatal(logger, exception, message);
        }

        Console.Error.WriteLine("sovereign serve: stopped: " + message + ".");
        Console.Error.Flush();

        // The console logger writes from a queue of its own: give it a moment, as Orleans' handler did (2 s).
        Thread.Sleep(TimeSpan.FromSeconds(1));
        MembershipTableWatch.ExitNow(declaredDead ? DeclaredDeadExitCode : OtherFatalErrorExitCode, message);
    }

    [LoggerMessage(EventId = 3057, EventName = "MemberDeclaredDead", Level = LogLevel.Critical, Message = "This member stops: {Reason}")]
    private static partial void LogDeclaredDead(ILogger logger, string reason);

    [LoggerMessage(EventId = 3058, EventName = "ClusterFatalError", Level = LogLevel.Critical, Message = "This member stops: {Reason}")]
    private static partial void LogFatal(ILogger logger, Exception? exception, string reason);
}
