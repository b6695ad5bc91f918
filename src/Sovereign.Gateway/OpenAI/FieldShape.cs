using System.Collections.Frozen;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// The fields a JSON value of a request body may have: for an object, its field names, each with the shape of its
/// value (null: anything, as a JSON Schema or a metadata map); for an array, the shape of its items. A tagged object
/// (a chat message by its <c>role</c>, a content part by its <c>type</c>) has one field set per tag value; one with a
/// tag value not listed is not checked here, so the endpoint's own check names the value it does not support.
/// </summary>
internal sealed class FieldShape
{
    private static readonly FrozenDictionary<string, FieldShape?> NoFields = FrozenDictionary<string, FieldShape?>.Empty;

    private FieldShape()
    {
    }

    /// <summary>An object's fields (the union of every variant's for a tagged one); null when objects are not checked.</summary>
    public FrozenDictionary<string, FieldShape?>? Fields { get; private init; }

    /// <summary>The shape of each item of an array value; null when arrays are not checked.</summary>
    public FieldShape? Items { get; private init; }

    /// <summary>The field whose string value picks the variant (<c>role</c>, <c>type</c>); null for a plain object.</summary>
    public string? Tag { get; private init; }

    /// <summary>The variant of an object without the tag (a Responses input item without <c>type</c> is a message).</summary>
    public string? Untagged { get; private init; }

    /// <summary>Each tag value's field names, the tag included.</summary>
    public FrozenDictionary<string, FrozenSet<string>>? Variants { get; private init; }

    /// <summary>An object with these fields and no others.</summary>
    public static FieldShape Object(params (string Name, FieldShape? Value)[] fields) =>
        new() { Fields = fields.ToFrozenDictionary(f => f.Name, f => f.Value, StringComparer.Ordinal) };

    /// <summary>An object with these fields whose values are anything.</summary>
    public static FieldShape Object(params string[] fields) => Object([.. fields.Select(f => (f, (FieldShape?)null))]);

    /// <summary>An array of <paramref name="items"/> (or a string, a number: only arrays and objects are checked).</summary>
    public static FieldShape ArrayOf(FieldShape items) => new() { Items = items, Fields = null };

    /// <summary>
    /// An object whose fields depend on the string value of <paramref name="tag"/>: each variant's
    /// <see cref="Object(ValueTuple{string, FieldShape}[])"/> (the tag is added to each).
    /// </summary>
    public static FieldShape Tagged(string tag, string? untagged, params (string Value, FieldShape Shape)[] variants)
    {
        var union = new Dictionary<string, FieldShape?>(StringComparer.Ordinal) { [tag] = null };
        foreach (var (_, shape) in variants)
        {
            foreach (var (name, value) in shape.Fields ?? NoFields)
            {
                union.TryAdd(name, value);
            }
        }

        return new()
        {
            Fields = union.ToFrozenDictionary(StringComparer.Ordinal),
            Tag = tag,
            Untagged = untagged,
            Variants = variants.ToFrozenDictionary(
                v => v.Value, v => (v.Shape.Fields ?? NoFields).Keys.Append(tag).ToFrozenSet(StringComparer.Ordinal), StringComparer.Ordinal),
        };
    }
}

/// <summary>A body's shape and the operator's <see cref="Hosting.SovereignOptions.AcceptedRequestFields"/>, checked while the body is read.</summary>
internal sealed record KnownFields(FieldShape Root, List<string> Accepted);

/// <summary>
/// Checks field names against a <see cref="FieldShape"/> as <see cref="RequestReader.ValidateText"/> reads the body
/// token by token: no pass of its own. A plain object's unknown field is refused where it is read; a tagged object's
/// names are kept until it closes (the tag may come last) and checked against its variant then.
/// </summary>
internal sealed class KnownFieldWalk(KnownFields known)
{
    private KnownFields _known = known;

    /// <param name="Shape">An object's shape, or an array's item shape.</param>
    /// <param name="Child">The shape of the value of the object's current property.</param>
    /// <param name="Property">The object's current property.</param>
    /// <param name="Tag">The tagged object's tag value, once read.</param>
    /// <param name="SeenFrom">Where the tagged object's names start in <see cref="_seen"/>.</param>
    private record struct Frame(FieldShape? Shape, bool IsObject, FieldShape? Child, string? Property, string? Tag, int SeenFrom);

    private readonly List<Frame> _frames = [];

    /// <summary>The names of the open tagged objects, innermost last.</summary>
    private readonly List<string> _seen = [];

    /// <summary>How many open objects and arrays are not checked (a JSON Schema, a metadata map): nothing inside them is.</summary>
    private int _unchecked;

    /// <summary>Starts a walk of another body (the walk is reused by its thread: <see cref="RequestReader.ValidateText"/>).</summary>
    public void Reset(KnownFields known)
    {
        _known = known;
        _frames.Clear();
        _seen.Clear();
        _unchecked = 0;
    }

    /// <summary>An object or array opens (before its path frame is pushed).</summary>
    public void Open(bool isObject)
    {
        if (_unchecked > 0)
        {
            _unchecked++;
            return;
        }

        var value = _frames.Count == 0 ? _known.Root : _frames[^1].IsObject ? _frames[^1].Child : _frames[^1].Shape;
        var shape = isObject ? (value?.Fields is null ? null : value) : value?.Items;
        if (shape is null)
        {
            _unchecked = 1;
            return;
        }

        _frames.Add(new Frame(shape, isObject, null, null, null, _seen.Count));
    }

    /// <summary>A property name is read; <paramref name="path"/> ends with it.</summary>
    public void Property(string name, List<(string? Name, int Index)> path)
    {
        if (_unchecked > 0)
        {
            return;
        }

        ref var frame = ref CollectionsMarshal.AsSpan(_frames)[^1];
        var shape = frame.Shape!;
        var isKnown = shape.Fields!.TryGetValue(name, out var child);
        frame.Property = name;
        frame.Child = child;
        if (shape.Tag is not null)
        {
            _seen.Add(name);
        }
        else if (!isKnown && !RequestFields.IsAccepted(_known.Accepted, NamesOf(path)))
        {
            throw RequestFields.Unknown(RequestReader.PathOf(path), topLevel: path.Count == 1);
        }
    }

    /// <summary>A string value is read: a tagged object's tag value is kept.</summary>
    public void String(ref Utf8JsonReader reader)
    {
        if (_unchecked > 0 || _frames.Count == 0)
        {
            return;
        }

        ref var frame = ref CollectionsMarshal.AsSpan(_frames)[^1];
        if (frame.IsObject && frame.Tag is null && frame.Property is { } property && property == frame.Shape!.Tag)
        {
            frame.Tag = reader.GetString();
        }
    }

    /// <summary>An object or array closes (before its path frame is popped).</summary>
    public void Close(List<(string? Name, int Index)> path)
    {
        if (_unchecked > 0)
        {
            _unchecked--;
            return;
        }

        var frame = _frames[^1];
        _frames.RemoveAt(_frames.Count - 1);
        if (frame.Shape is not { Tag: not null } shape || !frame.IsObject)
        {
            return;
        }

        // Without its tag, an object may have any variant's fields; with a tag value not listed, it is the endpoint's to refuse.
        var variant = frame.Tag ?? shape.Untagged;
        var allowed = variant is null ? null : shape.Variants!.GetValueOrDefault(variant);
        if (variant is null || allowed is not null)
        {
            for (var i = frame.SeenFrom; i < _seen.Count; i++)
            {
                if (!(allowed?.Contains(_seen[i]) ?? shape.Fields!.ContainsKey(_seen[i])))
                {
                    path[^1] = (_seen[i], path[^1].Index);
                    if (!RequestFields.IsAccepted(_known.Accepted, NamesOf(path)))
                    {
                        throw RequestFields.Unknown(RequestReader.PathOf(path), topLevel: path.Count == 1);
                    }
                }
            }
        }

        _seen.RemoveRange(frame.SeenFrom, _seen.Count - frame.SeenFrom);
    }

    /// <summary>A path as the operator writes it: names only (<c>messages.content.cache_control</c>).</summary>
    private static string NamesOf(List<(string? Name, int Index)> path) =>
        path.Count == 1 ? path[0].Name ?? "" : string.Join('.', path.Where(p => p.Name is not null).Select(p => p.Name));
}
