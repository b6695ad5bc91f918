using System.Reflection;
using Sovereign.Gateway.Hosting;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// Whether a configuration key given to a benchmark (<c>pipeline --set</c>) names a setting the server binds. A key
/// under <c>Sovereign:</c> that names no property of <see cref="SovereignOptions"/> binds to nothing, and the run then
/// compares the same configuration twice: docs/benchmarks.md recorded runs with
/// <c>Sovereign:Languages:DetectLanguageOfEveryRequest</c>, a path that binds to nothing (the setting is top level,
/// <c>Sovereign:DetectLanguageOfEveryRequest</c>). Keys outside <c>Sovereign:</c> (logging, Kestrel) are not checked.
/// </summary>
internal static class SettingPaths
{
    /// <summary>True when <paramref name="key"/> is outside <c>Sovereign:</c>, or walks <see cref="SovereignOptions"/>'s
    /// properties (any case), list indices and dictionary keys to the end.</summary>
    public static bool Binds(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var parts = key.Split(':');
        if (!parts[0].Equals("Sovereign", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var type = typeof(SovereignOptions);
        for (var i = 1; i < parts.Length; i++)
        {
            type = Nullable.GetUnderlyingType(type) ?? type;
            if (Generic(type, typeof(IDictionary<,>)) is { } dictionary)
            {
                type = dictionary[1];
            }
            else if (type != typeof(string) && (type.IsArray ? type.GetElementType() : Generic(type, typeof(IList<>))?[0]) is { } element)
            {
                if (!int.TryParse(parts[i], out _))
                {
                    return false;
                }

                type = element;
            }
            else if (type.GetProperty(parts[i], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase) is { CanWrite: true } property)
            {
                type = property.PropertyType;
            }
            else
            {
                return false;
            }
        }

        return true;
    }

    private static Type[]? Generic(Type type, Type definition) =>
        (type.IsGenericType && type.GetGenericTypeDefinition() == definition ? type : type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == definition))?.GetGenericArguments();
}
