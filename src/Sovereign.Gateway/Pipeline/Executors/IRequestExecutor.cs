using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.Pipeline.Executors;

/// <summary>
/// Runs routed work somewhere: this process's engine, an external engine, an embedding model (and, in a cluster,
/// a remote node). The pipeline asks it twice: to measure the work before any money moves, and to start it once
/// the money is reserved.
/// </summary>
internal interface IRequestExecutor
{
    /// <summary>Whether this executor runs the route.</summary>
    bool Runs(RoutedRequest route, Workload work);

    /// <summary>
    /// Bounds the work: its prompt tokens and one output limit for all its choices. Throws the 400 to answer with
    /// when the work can never run on this route (too long for the context), before any reservation.
    /// </summary>
    ValueTask<WorkDemand> MeasureAsync(GovernedRequest request);

    /// <summary>
    /// Waits for a slot in the route's weighted-fair, bounded queue and starts the work. Throws before any work is
    /// done when the queue is full (503) or the tenant holds its share of it (429).
    /// </summary>
    ValueTask<IExecution> StartAsync(GovernedRequest request);
}

/// <summary>Work that has started; disposing it stops what is still running and frees its slot.</summary>
internal interface IExecution : IAsyncDisposable
{
    /// <summary>
    /// What the work used. After a normal end it is what was reported; after an abort or error it is what the
    /// engine confirms it generated until it stopped (the caller has finished reading by then).
    /// </summary>
    ValueTask<ExecutedUsage> FinalUsageAsync();
}
