using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// Budget leases are on by default on a gateway of a multi-process cluster (where the tenant's grain is on another
/// gateway for most requests), off for one process alone (<c>--role all</c>, its grains in its own process), and an
/// explicit <c>Sovereign:Metering:LeaseTerm</c> always wins. Options are read from a built host that is never started.
/// </summary>
public sealed class LeaseDefaultTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-lease-default-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Theory]
    [InlineData("Gateway", true, null, 10)]
    [InlineData("Gateway", true, "00:00:00", 0)]
    [InlineData("Gateway", true, "00:00:30", 30)]
    [InlineData("All", false, null, 0)]
    [InlineData("All", false, "00:00:05", 5)]
    [InlineData("All", true, null, 0)]
    [InlineData("Node", true, null, 0)]
    public void LeaseTerm_ByRoleAndSetting(string role, bool distributed, string? setting, int seconds)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        var configuration = new Dictionary<string, string?>
        {
            ["Sovereign:DataDirectory"] = _directory,
            ["Sovereign:NodeId"] = "lease-default",
            ["Sovereign:Cluster:Role"] = role,
            ["Sovereign:Cluster:InsecureTransport"] = "true",
            ["Sovereign:Cluster:NodeUrl"] = "http://127.0.0.1:1",
        };
        if (distributed)
        {
            configuration["Sovereign:Cluster:Redis"] = "127.0.0.1:1";
            configuration["Sovereign:Cluster:ClusterId"] = "lease-default";
            configuration["Sovereign:Cluster:Secret"] = "lease-default-secret";
        }

        if (setting is not null)
        {
            configuration["Sovereign:Metering:LeaseTerm"] = setting;
        }

        builder.Configuration.AddInMemoryCollection(configuration);
        builder.AddSovereignCluster();
        using var host = builder.Build();

        Assert.Equal(TimeSpan.FromSeconds(seconds), host.Services.GetRequiredService<IOptions<TenantMoneyOptions>>().Value.LeaseTerm);
    }

    [Theory]
    [InlineData(null, 1000)]
    [InlineData("00:00:00.250", 250)]
    [InlineData("00:00:10", 10_000)]
    public void LeaseReclaimTimeout_DefaultsToOneSecond_AndIsSet(string? setting, int milliseconds)
    {
        using var host = Gateway(setting);

        host.Services.GetRequiredService<IStartupValidator>().Validate();
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), host.Services.GetRequiredService<IOptions<TenantMoneyOptions>>().Value.LeaseReclaimTimeout);
    }

    [Theory]
    [InlineData("00:00:00")]
    [InlineData("-00:00:01")]
    [InlineData("00:00:10.001")]
    [InlineData("00:05:00")]
    public void LeaseReclaimTimeout_OutOfRange_FailsAtStart_NamingTheSetting(string setting)
    {
        using var host = Gateway(setting);

        // What the host runs at start, before any hosted service: the options validated on start.
        var refused = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("Sovereign:Metering:LeaseReclaimTimeout must be above 00:00:00 and at most 00:00:10", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, 5000)]
    [InlineData("00:00:00.500", 500)]
    [InlineData("00:00:10", 10_000)]
    public void LeaseRecallTimeout_DefaultsToFiveSeconds_AndIsSet(string? setting, int milliseconds)
    {
        using var host = Gateway(null, setting);

        host.Services.GetRequiredService<IStartupValidator>().Validate();
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), host.Services.GetRequiredService<IOptions<TenantMoneyOptions>>().Value.LeaseRecallTimeout);
    }

    [Theory]
    [InlineData("00:00:00")]
    [InlineData("-00:00:01")]
    [InlineData("00:00:10.001")]
    [InlineData("00:05:00")]
    public void LeaseRecallTimeout_OutOfRange_FailsAtStart_NamingTheSetting(string setting)
    {
        using var host = Gateway(null, setting);

        var refused = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("Sovereign:Metering:LeaseRecallTimeout must be above 00:00:00 and at most 00:00:10", refused.Message, StringComparison.Ordinal);
    }

    private Microsoft.Extensions.Hosting.IHost Gateway(string? reclaimTimeout, string? recallTimeout = null)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Sovereign:DataDirectory"] = _directory,
            ["Sovereign:NodeId"] = "lease-reclaim",
            ["Sovereign:Cluster:Role"] = "Gateway",
            ["Sovereign:Cluster:InsecureTransport"] = "true",
            ["Sovereign:Cluster:NodeUrl"] = "http://127.0.0.1:1",
            ["Sovereign:Cluster:Redis"] = "127.0.0.1:1",
            ["Sovereign:Cluster:ClusterId"] = "lease-reclaim",
            ["Sovereign:Cluster:Secret"] = "lease-reclaim-secret",
        });
        if (reclaimTimeout is not null)
        {
            builder.Configuration["Sovereign:Metering:LeaseReclaimTimeout"] = reclaimTimeout;
        }

        if (recallTimeout is not null)
        {
            builder.Configuration["Sovereign:Metering:LeaseRecallTimeout"] = recallTimeout;
        }

        builder.AddSovereignCluster();
        return builder.Build();
    }
}
