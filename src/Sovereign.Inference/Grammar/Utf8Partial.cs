namespace Sovereign.Inference.Grammar;

/// <summary>
/// Decodes output bytes into code points strictly (no overlong forms, surrogates or values past U+10FFFF), carrying an
/// unfinished code point from one token to the next as llama.cpp's grammar does (<c>llama_partial_utf8</c>).
/// </summary>
internal struct Utf8Partial
{
    private int _value;
    private int _remaining;
    private byte _low;
    private byte _high;

    /// <summary>No code point is unfinished.</summary>
    public readonly bool IsEmpty => _remaining == 0;

    /// <summary>The code points the unfinished one may still become (llama.cpp's bounds for a partial match).</summary>
    public readonly (int Low, int High) Span
    {
        get
        {
            var low = _value << (_remaining * 6);
            var high = low | ((1 << (_remaining * 6)) - 1);
            if (low == 0)
            {
                low = _remaining == 2 ? 1 << 11 : _remaining == 3 ? 1 << 16 : low;
            }

            return (low, high);
        }
    }

    /// <summary>
    /// Takes one byte: false when it breaks strict UTF-8; otherwise <paramref name="codePoint"/> is the code point it
    /// completes, or -1 while one is still unfinished.
    /// </summary>
    public bool TryStep(byte b, out int codePoint)
    {
        codePoint = -1;
        if (_remaining > 0)
        {
            if (b < _low || b > _high)
            {
                return false;
            }

            _value = (_value << 6) | (b & 0x3F);
            _low = 0x80;
            _high = 0xBF;
            if (--_remaining == 0)
            {
                codePoint = _value;
                _value = 0;
            }

            return true;
        }

        (_remaining, _low, _high, _value) = b switch
        {
            < 0x80 => (0, (byte)0, (byte)0, 0),
            >= 0xC2 and <= 0xDF => (1, (byte)0x80, (byte)0xBF, b & 0x1F),
            0xE0 => (2, (byte)0xA0, (byte)0xBF, b & 0x0F),
            0xED => (2, (byte)0x80, (byte)0x9F, b & 0x0F),
            >= 0xE1 and <= 0xEF => (2, (byte)0x80, (byte)0xBF, b & 0x0F),
            0xF0 => (3, (byte)0x90, (byte)0xBF, b & 0x07),
            >= 0xF1 and <= 0xF3 => (3, (byte)0x80, (byte)0xBF, b & 0x07),
            0xF4 => (3, (byte)0x80, (byte)0x8F, b & 0x07),
            _ => (-1, (byte)0, (byte)0, 0),
        };

        if (_remaining < 0)
        {
            _remaining = 0;
            return false;
        }

        if (_remaining == 0)
        {
            codePoint = b;
        }

        return true;
    }
}
