using System.Text;

namespace Sovereign.Inference.Sampling;

/// <summary>
/// Watches the bytes of free output for a lazy grammar's triggers (<see cref="Grammar.LazyGrammar"/>): string matching
/// only, cheap enough for the decode loop, which samples free tokens. Keeps just the bytes a trigger could still start
/// in: the last trigger's length less one, or, for triggers that count only at the start, the whitespace and trigger
/// prefix written so far (and nothing once the text can no longer begin with a trigger).
/// </summary>
/// <remarks>Not thread-safe; used by the thread that owns its pipeline.</remarks>
internal sealed class TriggerWatch
{
    private readonly byte[][] _triggers;
    private readonly bool _atStartOnly;
    private readonly int _keep;
    private byte[] _window = new byte[64];
    private int _count;
    private bool _hopeless;

    public TriggerWatch(IReadOnlyList<string> triggers, bool atStartOnly)
    {
        ArgumentNullException.ThrowIfNull(triggers);
        _triggers = [.. triggers.Where(t => t.Length > 0).Select(Encoding.UTF8.GetBytes)];
        _atStartOnly = atStartOnly;
        _keep = _triggers.Length == 0 ? 0 : _triggers.Max(t => t.Length) - 1;
        _hopeless = _triggers.Length == 0;
    }

    /// <summary>Forgets what was seen: the next byte starts the text anew (after a constrained part ends).</summary>
    public void Restart()
    {
        _count = 0;
        _hopeless = _triggers.Length == 0;
    }

    /// <summary>
    /// Adds the bytes of one free token; when a trigger shows, returns the output from the trigger's first byte to the
    /// end of <paramref name="piece"/> (what the grammar must accept before its first constrained token), else null.
    /// </summary>
    public byte[]? Add(ReadOnlySpan<byte> piece)
    {
        if (_hopeless || piece.IsEmpty)
        {
            return null;
        }

        if (_count + piece.Length > _window.Length)
        {
            Array.Resize(ref _window, Math.Max(_window.Length * 2, _count + piece.Length));
        }

        piece.CopyTo(_window.AsSpan(_count));
        _count += piece.Length;
        var text = _window.AsSpan(0, _count);

        var at = -1;
        foreach (var trigger in _triggers)
        {
            var index = text.IndexOf(trigger);
            if (index >= 0 && (at < 0 || index < at))
            {
                at = index;
            }
        }

        if (at >= 0 && (!_atStartOnly || IsWhitespace(text[..at])))
        {
            var opened = text[at..].ToArray();
            _count = 0;
            return opened;
        }

        if (_atStartOnly)
        {
            // Whitespace, then what may still become a trigger; anything else and no trigger can count any more.
            var rest = text.TrimStart(" \t\r\n"u8);
            _hopeless = true;
            foreach (var trigger in _triggers)
            {
                if (trigger.AsSpan().StartsWith(rest))
                {
                    _hopeless = false;
                    break;
                }
            }
        }
        else if (_count > _keep)
        {
            text[(_count - _keep)..].CopyTo(_window);
            _count = _keep;
        }

        return null;
    }

    private static bool IsWhitespace(ReadOnlySpan<byte> text) => text.TrimStart(" \t\r\n"u8).IsEmpty;
}
