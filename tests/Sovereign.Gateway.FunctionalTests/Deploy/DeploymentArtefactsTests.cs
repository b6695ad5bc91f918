using System.Collections;
using System.Reflection;
using Sovereign.Cluster.Hosting;
using Sovereign.Gateway.Hosting;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace Sovereign.Gateway.FunctionalTests.Deploy;

/// <summary>
/// Docker and systemd cannot run here, so the deployment files are checked for what can go wrong silently: a
/// misspelt <c>Sovereign__</c> variable is ignored by the configuration binder (the server starts with the default),
/// so every name in the compose file and the systemd environment examples must be a real option.
/// </summary>
public sealed class DeploymentArtefactsTests
{
    private static readonly string Deploy = Path.Combine(RepositoryRoot(), "deploy");

    [Fact]
    public void ComposeFile_EverySovereignVariable_NamesAnOption()
    {
        var unknown = ComposeMembers().SelectMany(member => member.Environment.Keys.Select(name => (member.Name, name)))
            .Where(pair => !IsOption(pair.name))
            .Select(pair => $"{pair.Name}: {pair.name}")
            .ToList();

        Assert.Empty(unknown);
    }

    [Fact]
    public void ComposeFile_IsTwoGatewaysAndThreeNodesInTwoJurisdictions_OneCluster()
    {
        var members = ComposeMembers();

        var roles = members.Select(m => (m.Role, m.Environment["Sovereign__Jurisdiction"])).Order().ToList();
        Assert.Equal([("gateway", "SG"), ("gateway", "TH"), ("node", "SG"), ("node", "TH"), ("node", "TH")], roles);
        Assert.Equal(members.Count, members.Select(m => m.Environment["Sovereign__NodeId"]).Distinct().Count());
        foreach (var shared in (string[])["Sovereign__Cluster__Redis", "Sovereign__Cluster__ClusterId", "Sovereign__Cluster__Secret", "Sovereign__Database__Provider",
            "Sovereign__Database__ConnectionString", "Sovereign__AdminToken"])
        {
            Assert.Single(members.Select(m => m.Environment[shared]).Distinct());
        }

        foreach (var member in members)
        {
            // Orleans takes an IP address only (a host name would silently become loopback): it must be the container's own.
            Assert.Equal(member.Address, member.Environment["Sovereign__Cluster__AdvertisedAddress"]);
            Assert.Equal($"http://{member.Name}:8080", member.Environment["Sovereign__Cluster__NodeUrl"]);
            Assert.Contains(member.Volumes, v => v.StartsWith("./operator-key.pem:/var/lib/sovereign/operator-key.pem", StringComparison.Ordinal));
            Assert.Contains($"./tls/{member.Name}:/etc/sovereign/tls:ro", member.Volumes);
            Assert.Equal("/etc/sovereign/tls/cluster-cert.pem", member.Environment["Sovereign__Cluster__TlsCertificate"]);
            Assert.Equal(member.Role == "node", member.Volumes.Any(v => v.StartsWith("./models:/models:ro", StringComparison.Ordinal)));
        }
    }

    [Theory]
    [InlineData("systemd/gateway.env.example")]
    [InlineData("systemd/node.env.example")]
    public void SystemdEnvironmentExample_EverySovereignVariable_NamesAnOption(string file)
    {
        // Commented-out settings (an alternative to uncomment) are checked too.
        var names = File.ReadAllLines(Path.Combine(Deploy, file))
            .Select(line => System.Text.RegularExpressions.Regex.Match(line, "^#?([A-Za-z][A-Za-z0-9_]*)="))
            .Where(match => match.Success)
            .Select(match => match.Groups[1].Value)
            .ToList();

        Assert.Contains("Sovereign__Cluster__Redis", names);
        Assert.Contains("Sovereign__Cluster__NodeUrl", names);
        Assert.Contains("Sovereign__Cluster__TlsCertificate", names);
        Assert.DoesNotContain(names, name => name.StartsWith("Sovereign__", StringComparison.Ordinal) && !IsOption(name));
    }

    [Theory]
    [InlineData("Sovereign__Cluster__Reddis")]
    [InlineData("Sovereign__Models__0__Pth")]
    [InlineData("Sovereign__Models__first__Path")]
    [InlineData("Sovereign__Database")]
    [InlineData("Sovereign__Jurisdiction__TH")]
    public void IsOption_RefusesWhatTheBinderWouldIgnore(string name) => Assert.False(IsOption(name));

    [Theory]
    [InlineData("Sovereign__Cluster__SiloPort")]
    [InlineData("Sovereign__Models__2__GpuLayers")]
    [InlineData("Sovereign__JurisdictionGroups__ASEAN__0")]
    [InlineData("Sovereign__Limits__MaxOutputTokens")]
    public void IsOption_AcceptsRealOptions(string name) => Assert.True(IsOption(name));

    /// <summary>Walks a <c>Sovereign__A__B</c> name through the options classes as the configuration binder would.</summary>
    private static bool IsOption(string name)
    {
        var segments = name.Split("__");
        if (segments.Length < 2 || segments[0] != "Sovereign")
        {
            return true; // not ours (ASPNETCORE_URLS, ...): the host's own documentation covers those
        }

        return segments[1] == "Cluster"
            ? Walk(typeof(SovereignClusterOptions), segments.AsSpan(2))
            : Walk(typeof(SovereignOptions), segments.AsSpan(1));
    }

    private static bool Walk(Type type, ReadOnlySpan<string> segments)
    {
        if (IsLeaf(type))
        {
            return segments.IsEmpty;
        }

        if (segments.IsEmpty)
        {
            return false; // a section, not a value
        }

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>))
        {
            return Walk(type.GetGenericArguments()[1], segments[1..]);
        }

        if (type != typeof(string) && typeof(IEnumerable).IsAssignableFrom(type))
        {
            var element = type.IsArray ? type.GetElementType()! : type.GetGenericArguments()[0];
            return int.TryParse(segments[0], out _) && Walk(element, segments[1..]);
        }

        var property = type.GetProperty(segments[0], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
        return property is { CanWrite: true } && Walk(property.PropertyType, segments[1..]);
    }

    private static bool IsLeaf(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        return type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal) || type == typeof(TimeSpan);
    }

    private sealed record Member(string Name, string Role, string Address, IReadOnlyDictionary<string, string> Environment, IReadOnlyList<string> Volumes);

    /// <summary>The compose file's Sovereign services, with YAML anchors and merge keys resolved.</summary>
    private static List<Member> ComposeMembers()
    {
        using var reader = new StreamReader(Path.Combine(Deploy, "compose", "compose.yaml"));
        var document = new DeserializerBuilder().Build().Deserialize<Dictionary<string, object>>(new MergingParser(new Parser(reader)));
        var members = new List<Member>();
        foreach (var (name, value) in (Dictionary<object, object>)document["services"])
        {
            var service = (Dictionary<object, object>)value;
            var command = service.TryGetValue("command", out var c) ? ((List<object>)c).Cast<string>().ToList() : [];
            if (command.FirstOrDefault() != "serve")
            {
                continue;
            }

            var environment = ((Dictionary<object, object>)service["environment"]).ToDictionary(p => (string)p.Key, p => (string)p.Value, StringComparer.Ordinal);
            var network = (Dictionary<object, object>)((Dictionary<object, object>)service["networks"])["cluster"];
            members.Add(new Member((string)name, command[command.IndexOf("--role") + 1], (string)network["ipv4_address"], environment,
                ((List<object>)service["volumes"]).Cast<string>().ToList()));
        }

        return members;
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "deploy", "compose", "compose.yaml")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("deploy/compose/compose.yaml was not found above " + AppContext.BaseDirectory);
    }
}
