using Microsoft.Extensions.DependencyInjection.Extensions;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Pipeline.Executors;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the governed request pipeline and its executors.</summary>
internal static class RequestPipelineServiceCollectionExtensions
{
    /// <summary>The stages and the executors, in the order the pipeline asks them (the first that runs a route wins).</summary>
    public static IServiceCollection AddRequestPipeline(this IServiceCollection services)
    {
        services.TryAddSingleton<RouteGates>();
        services.TryAddSingleton<EngineOccupancy>();
        services.TryAddSingleton<PoolLeaseTable>();
        services.TryAddSingleton<PoolSlotClient>();
        services.TryAddSingleton<PoolAdmission>();
        services.TryAddSingleton<RequestAccounting>();
        services.TryAddSingleton<RequestPipeline>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IRequestExecutor, LocalGenerationExecutor>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IRequestExecutor, ExternalEngineExecutor>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IRequestExecutor, RemoteNodeExecutor>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IRequestExecutor, FrontedEngineExecutor>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IRequestExecutor, EmbeddingExecutor>());
        return services;
    }
}
