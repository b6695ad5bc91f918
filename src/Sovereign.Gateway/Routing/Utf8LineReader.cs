using System.Buffers;
using System.IO.Pipelines;

namespace Sovereign.Gateway.Routing;

/// <summary>
/// Reads an engine's event stream line by line as UTF-8 bytes, with a bound on a line's length: a line longer than
/// the bound throws <see cref="UpstreamAnswerException"/>, so an engine that never ends a line cannot exhaust memory.
/// Bytes, not strings: the JSON parser reads UTF-8, so a line is never decoded to UTF-16 and back.
/// </summary>
internal sealed class Utf8LineReader(Stream stream, int maxLineBytes) : IAsyncDisposable
{
    private readonly PipeReader _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, leaveOpen: false));

    // Bytes of the pending line already searched for its end, so a long line is scanned once, not once per read.
    private long _searched;
    private bool _ended;

    /// <summary>The next line without its <c>\n</c> (a trailing <c>\r</c> stays), or null at the end of the stream.</summary>
    public async ValueTask<byte[]?> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (!_ended)
        {
            var result = await _reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            if (buffer.Slice(_searched).PositionOf((byte)'\n') is { } end)
            {
                var line = buffer.Slice(0, end);
                var bytes = line.Length <= maxLineBytes ? line.ToArray() : throw TooLong();
                _reader.AdvanceTo(buffer.GetPosition(1, end));
                _searched = 0;
                return bytes;
            }

            if (buffer.Length > maxLineBytes)
            {
                throw TooLong();
            }

            if (result.IsCompleted)
            {
                // The last line may lack its newline.
                _ended = true;
                var rest = buffer.IsEmpty ? null : buffer.ToArray();
                _reader.AdvanceTo(buffer.End);
                return rest;
            }

            _searched = buffer.Length;
            _reader.AdvanceTo(buffer.Start, buffer.End);
        }

        return null;
    }

    public ValueTask DisposeAsync() => _reader.CompleteAsync();

    private UpstreamAnswerException TooLong() =>
        new("upstream_answer_too_large", $"The upstream engine sent an event larger than {maxLineBytes / (1024 * 1024)} MiB, so it was not relayed; the operator must check the engine.");
}
