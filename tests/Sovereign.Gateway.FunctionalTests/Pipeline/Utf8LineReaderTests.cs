using System.Text;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>The relay's line reader: every line as sent whatever the reads' sizes, and a bound on a line's length.</summary>
public sealed class Utf8LineReaderTests
{
    /// <summary>A stream that hands out at most <paramref name="piece"/> bytes a read, as a network does.</summary>
    private sealed class TrickleStream(byte[] content, int piece) : MemoryStream(content)
    {
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, piece));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, piece)], cancellationToken);
    }

    private static async Task<List<string>> LinesOfAsync(string text, int piece, int maxLineBytes = 1024)
    {
        await using var reader = new Utf8LineReader(new TrickleStream(Encoding.UTF8.GetBytes(text), piece), maxLineBytes);
        var lines = new List<string>();
        while (await reader.ReadLineAsync(CancellationToken.None) is { } line)
        {
            lines.Add(Encoding.UTF8.GetString(line));
        }

        return lines;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(4096)]
    public async Task EveryLine_ComesBackAsSent_WhateverTheReadsSizes(int piece)
    {
        const string text = "data: {\"a\":\"สวัสดี\"}\n\ndata: {\"b\":2}\r\n: comment\ndata: [DONE]";

        var lines = await LinesOfAsync(text, piece);

        Assert.Equal(["data: {\"a\":\"สวัสดี\"}", "", "data: {\"b\":2}\r", ": comment", "data: [DONE]"], lines);
    }

    [Fact]
    public async Task AnEmptyStream_HasNoLines_AndReadingOnStaysAtTheEnd()
    {
        await using var reader = new Utf8LineReader(new MemoryStream(), 16);

        Assert.Null(await reader.ReadLineAsync(CancellationToken.None));
        Assert.Null(await reader.ReadLineAsync(CancellationToken.None));
    }

    [Theory]
    [InlineData(5)]
    [InlineData(64)]
    public async Task ALineLongerThanTheBound_IsRefused_EvenBeforeItEnds(int piece)
    {
        // One line of 10,000 bytes that never ends, against a bound of 100: refused once the bound is passed.
        var text = "data: ok\n" + new string('x', 10_000);
        await using var reader = new Utf8LineReader(new TrickleStream(Encoding.UTF8.GetBytes(text), piece), 100);

        Assert.Equal("data: ok", Encoding.UTF8.GetString((await reader.ReadLineAsync(CancellationToken.None))!));
        var refused = await Assert.ThrowsAsync<UpstreamAnswerException>(() => reader.ReadLineAsync(CancellationToken.None).AsTask());
        Assert.Equal("upstream_answer_too_large", refused.Code);
    }

    [Fact]
    public async Task ALineOfExactlyTheBound_IsRead()
    {
        var lines = await LinesOfAsync(new string('y', 100) + "\n" + new string('z', 100), 9, maxLineBytes: 100);

        Assert.Equal([new string('y', 100), new string('z', 100)], lines);
    }
}
