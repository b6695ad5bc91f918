using System.Reflection;
using System.Text;
using Orleans.CodeGeneration;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// What members of two releases exchange during a rolling upgrade, pinned in <c>Cluster/cluster-contracts.txt</c>: each
/// grain interface's methods with the interface version that added them, and each serializable type's members by
/// their <c>[Id]</c>. A gateway of the new release calls grains whose activation may live on a member of the old one:
/// Orleans moves the activation to a member that has the caller's interface version (backward-compatible versioning,
/// its default), but only if the interface's <c>[Version]</c> was raised with the method; a method changed or removed
/// breaks calls from the old release outright, and so does a serialized member whose id now holds another type.
/// </summary>
public sealed class ClusterContractTests
{
    private const string ContractFile = "Cluster/cluster-contracts.txt";

    private static readonly Assembly[] Members =
    [
        typeof(Sovereign.Cluster.Grains.ITenantGrain).Assembly, // Sovereign.Cluster.Abstractions
        typeof(Sovereign.Cluster.Security.ClusterTlsCredentials).Assembly, // Sovereign.Cluster (the grains)
        typeof(Sovereign.Gateway.Pipeline.IPoolSlotsGrain).Assembly, // Sovereign.Gateway
    ];

    [Fact]
    public void GrainInterfaces_KeepEveryRecordedMethod_AndRaiseTheirVersionForNewOnes()
    {
        var toRecord = new List<string>();
        var problems = InterfaceProblems(GrainInterfaces(), Recorded(), toRecord);

        Assert.True(problems.Count == 0, Report(problems, toRecord));
    }

    /// <summary>
    /// A method added with its interface's [Version] raised, but not recorded, passed: the next change could then remove
    /// or change it with nothing to say that members of this release call it. The check now fails on it, printing the
    /// line to record (here: the recorded contract less ITenantGrain's newest methods, the three budget-lease methods
    /// of v4, the version its interface is at).
    /// </summary>
    [Fact]
    public void AMethodNotRecorded_FailsTheCheck_EvenWithItsVersionRaised_NamingTheLineToRecord()
    {
        var recorded = Recorded();
        const string Tenant = "Sovereign.Cluster.Grains.ITenantGrain, Sovereign.Cluster.Abstractions";
        string[] newest =
        [
            "Task ReturnLeaseAsync(Guid)",
            "Task<LeasedAdmission> AdmitAuthorizedLeasingAsync(AuthorizedAdmissionRequest, BudgetLeaseAsk)",
            "Task<LeasedAdmission> AdmitFromLeaseAsync(Guid, AuthorizedAdmissionRequest)",
        ];
        Assert.Equal(newest, recorded.Interfaces[Tenant].Where(m => m.Since == 4).Select(m => m.Method).Order(StringComparer.Ordinal));
        recorded.Interfaces[Tenant].RemoveAll(m => m.Since == 4);
        var toRecord = new List<string>();

        var problems = InterfaceProblems(GrainInterfaces(), recorded, toRecord);

        Assert.Equal(3, problems.Count);
        Assert.All(problems.Zip(newest), p => Assert.Contains($"'{p.Second}' is not recorded", p.First, StringComparison.Ordinal));
        Assert.Equal(newest.Select(m => $"  v4 {m}   (under 'interface {Tenant}')"), toRecord);
    }

    /// <summary>What the live grain interfaces break or leave unrecorded against <paramref name="recorded"/>; the lines to record go to <paramref name="toRecord"/>.</summary>
    private static List<string> InterfaceProblems(IEnumerable<Type> grains, Contracts recorded, List<string> toRecord)
    {
        var problems = new List<string>();
        var live = grains.ToList();
        foreach (var grain in live)
        {
            var name = TypeKey(grain);
            var version = grain.GetCustomAttribute<VersionAttribute>()?.Version ?? 0;
            var methods = grain.GetMethods().Select(Signature).ToHashSet(StringComparer.Ordinal);
            if (!recorded.Interfaces.TryGetValue(name, out var known))
            {
                problems.Add($"{name} is a new grain interface: record it.");
                toRecord.Add($"interface {name}");
                toRecord.AddRange(methods.Order(StringComparer.Ordinal).Select(m => $"  v{version} {m}"));
                continue;
            }

            foreach (var (method, since) in known)
            {
                if (!methods.Contains(method))
                {
                    problems.Add($"{name}: '{method}' (v{since}) is gone or changed; members of older releases still call it. Keep it and add the new shape beside it.");
                }
            }

            var newest = known.Count == 0 ? 0 : known.Max(m => m.Since);
            foreach (var method in methods.Where(m => !known.Any(k => k.Method == m)).Order(StringComparer.Ordinal))
            {
                var needed = newest + 1;
                problems.Add(version < needed
                    ? $"{name}: '{method}' is new; raise the interface to [Version({needed})] so calls to it never reach an activation of an older release, and record it."
                    : $"{name}: '{method}' is not recorded; record it, so that no later change removes or changes it unnoticed.");
                toRecord.Add($"  v{Math.Max(version, needed)} {method}   (under 'interface {name}')");
            }

            if (version < newest)
            {
                problems.Add($"{name} is [Version({version})], below v{newest} recorded for its methods.");
            }
        }

        foreach (var missing in recorded.Interfaces.Keys.Except(live.Select(TypeKey), StringComparer.Ordinal))
        {
            problems.Add($"{missing} is gone; members of older releases still call it.");
        }

        return problems;
    }

    [Fact]
    public void SerializedTypes_KeepEveryRecordedMemberAndId()
    {
        var recorded = Recorded();
        var problems = new List<string>();
        var toRecord = new List<string>();
        // Enums cross by their numbers: a number that changes meaning misleads an older release, and a new value reaches
        // one that does not know it (return it only to callers of a method of the version that added it).
        var current = SerializedTypes().ToDictionary(TypeKey, t => Fields(t).ToHashSet(StringComparer.Ordinal), StringComparer.Ordinal);
        var enums = new HashSet<string>(StringComparer.Ordinal);
        foreach (var enumType in SerializedTypes().SelectMany(MemberTypes).Concat(GrainInterfaces().SelectMany(g => g.GetMethods()).SelectMany(MethodTypes))
            .SelectMany(Unwrap).Where(t => t.IsEnum && Members.Contains(t.Assembly)).Distinct())
        {
            enums.Add(TypeKey(enumType));
            current[TypeKey(enumType)] = Enum.GetNames(enumType).Select(n => $"{n} = {Convert.ToInt64(Enum.Parse(enumType, n), System.Globalization.CultureInfo.InvariantCulture)}").ToHashSet(StringComparer.Ordinal);
        }

        foreach (var (type, fields) in recorded.Types)
        {
            if (!current.TryGetValue(type, out var now))
            {
                problems.Add($"{type} is gone, renamed or moved; members of older releases still send it by that name (keep it, or give the new one [Alias] of the old name).");
                continue;
            }

            foreach (var field in fields.Where(f => !now.Contains(f)))
            {
                problems.Add($"{type}: '{field}' is gone or changed; an older release reads that id as that type. Add a new id instead.");
            }
        }

        foreach (var (type, fields) in current.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            var known = recorded.Types.GetValueOrDefault(type);
            var added = fields.Where(f => known?.Contains(f) != true).Order(StringComparer.Ordinal).ToList();
            if (known is null || added.Count > 0)
            {
                problems.Add(known is null ? $"{type} is a new serialized type: record it." : $"{type} has new members: record them (new ids are compatible; old members ignore them).");
                toRecord.Add($"{(enums.Contains(type) ? "enum" : "type")} {type}");
                toRecord.AddRange(added.Select(f => $"  {f}"));
            }
        }

        Assert.True(problems.Count == 0, Report(problems, toRecord));
    }

    private static string Report(List<string> problems, List<string> toRecord) =>
        string.Join('\n', problems)
        + (toRecord.Count > 0 ? $"\nLines for tests/Sovereign.Gateway.FunctionalTests/{ContractFile}:\n" + string.Join('\n', toRecord) : "");

    private static IEnumerable<Type> GrainInterfaces() =>
        Members.SelectMany(a => a.GetTypes()).Where(t => t.IsInterface && t.IsPublic && typeof(IGrain).IsAssignableFrom(t)).OrderBy(TypeKey, StringComparer.Ordinal);

    private static IEnumerable<Type> SerializedTypes() =>
        Members.SelectMany(a => a.GetTypes()).Where(t => t.GetCustomAttribute<GenerateSerializerAttribute>() is not null);

    private static IEnumerable<Type> MemberTypes(Type type) =>
        type.GetProperties(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly).Where(p => p.GetCustomAttribute<IdAttribute>() is not null).Select(p => p.PropertyType)
            .Concat(type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly).Where(f => f.GetCustomAttribute<IdAttribute>() is not null).Select(f => f.FieldType));

    private static IEnumerable<Type> MethodTypes(MethodInfo method) => method.GetParameters().Select(p => p.ParameterType).Append(method.ReturnType);

    // A type and the types it is made of (generic arguments, array elements, nullable values).
    private static IEnumerable<Type> Unwrap(Type type) =>
        type.HasElementType ? Unwrap(type.GetElementType()!)
        : type.IsGenericType ? type.GetGenericArguments().SelectMany(Unwrap)
        : [type];

    private static IEnumerable<string> Fields(Type type)
    {
        const BindingFlags Declared = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
        foreach (var member in type.GetProperties(Declared).Cast<MemberInfo>().Concat(type.GetFields(Declared)))
        {
            if (member.GetCustomAttribute<IdAttribute>() is { } id)
            {
                var memberType = member is PropertyInfo property ? property.PropertyType : ((FieldInfo)member).FieldType;
                yield return $"Id({id.Id}) {Name(memberType)} {member.Name}";
            }
        }
    }

    // The name Orleans knows a type by across members: its full name and assembly, or its alias.
    private static string TypeKey(Type type) =>
        type.GetCustomAttribute<AliasAttribute>() is { } alias ? $"alias {alias.Alias}" : $"{type.FullName}, {type.Assembly.GetName().Name}";

    private static string Signature(MethodInfo method) =>
        $"{Name(method.ReturnType)} {method.Name}({string.Join(", ", method.GetParameters().Select(p => Name(p.ParameterType)))})";

    private static string Name(Type type)
    {
        if (type.IsArray)
        {
            return Name(type.GetElementType()!) + "[]";
        }

        if (Nullable.GetUnderlyingType(type) is { } underlying)
        {
            return Name(underlying) + "?";
        }

        var name = type.IsGenericType ? type.Name[..type.Name.IndexOf('`', StringComparison.Ordinal)] : type.Name;
        var outer = type.IsNested && !type.IsGenericParameter ? Name(type.DeclaringType!) + "." : "";
        return type.IsGenericType ? $"{outer}{name}<{string.Join(", ", type.GetGenericArguments().Select(Name))}>" : outer + name;
    }

    private sealed record Contracts(
        Dictionary<string, List<(string Method, int Since)>> Interfaces,
        Dictionary<string, HashSet<string>> Types);

    private static Contracts Recorded()
    {
        var interfaces = new Dictionary<string, List<(string, int)>>(StringComparer.Ordinal);
        var types = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        List<(string, int)>? methods = null;
        HashSet<string>? fields = null;
        foreach (var raw in File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, ContractFile), Encoding.UTF8))
        {
            var line = raw.TrimEnd();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            if (line.StartsWith("interface ", StringComparison.Ordinal))
            {
                (methods, fields) = (interfaces[line["interface ".Length..]] = [], null);
            }
            else if (line.StartsWith("type ", StringComparison.Ordinal) || line.StartsWith("enum ", StringComparison.Ordinal))
            {
                (methods, fields) = (null, types[line[5..]] = new HashSet<string>(StringComparer.Ordinal));
            }
            else if (methods is not null && line.TrimStart() is ['v', ..] entry && entry.IndexOf(' ', StringComparison.Ordinal) is > 1 and var space)
            {
                methods.Add((entry[(space + 1)..], int.Parse(entry[1..space], System.Globalization.CultureInfo.InvariantCulture)));
            }
            else if (fields is not null)
            {
                fields.Add(line.TrimStart());
            }
            else
            {
                throw new InvalidDataException($"{ContractFile}: '{line}' is outside an interface or type.");
            }
        }

        return new Contracts(interfaces, types);
    }
}
