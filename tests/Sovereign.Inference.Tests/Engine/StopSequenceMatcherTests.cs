using Sovereign.Inference.Engine;

namespace Sovereign.Inference.Tests.Engine;

/// <summary>
/// Stop strings end text, not a tool call: with the call syntax's opening markers, a stop string matched before the
/// first marker ends the text as ever, and none is matched from the marker on (it cut a call the model made by itself
/// into markup returned as content).
/// </summary>
public sealed class StopSequenceMatcherTests
{
    private static (string Text, bool Stopped) Run(StopSequenceMatcher matcher, params string[] pieces)
    {
        var text = string.Concat(pieces.Select(matcher.Append)) + matcher.Flush();
        return (text, matcher.Stopped);
    }

    [Fact]
    public void WithoutMarkers_AStopEndsTheText()
    {
        Assert.Equal(("Hello ", true), Run(new StopSequenceMatcher(["wor"]), "Hello w", "orld"));
    }

    [Fact]
    public void AStopBeforeTheMarker_EndsTheText()
    {
        Assert.Equal(("Sure", true), Run(new StopSequenceMatcher(["."], ["<tool_call>"]), "Sure.", " <tool_call>{\"name\": \"f\"}"));
    }

    [Theory]
    [InlineData("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>")]
    [InlineData("Let me check. <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>")]
    public void AStopInsideTheCall_DoesNotCutIt_WhateverTheTokens(string answer)
    {
        foreach (var size in new[] { 1, 2, 3, 5, 7, answer.Length })
        {
            var pieces = Enumerable.Range(0, (answer.Length + size - 1) / size).Select(i => answer.Substring(i * size, Math.Min(size, answer.Length - (i * size)))).ToArray();
            var matcher = new StopSequenceMatcher(["\"", "city", "_c", "<"], ["<tool_call>"]);
            Assert.Equal((answer, false), Run(matcher, pieces));
            Assert.True(matcher.Exempt);
        }
    }

    [Fact]
    public void AStopWhereAMarkerMightHaveBegun_EndsTheTextOnceItIsNoMarker()
    {
        // "<tool_" could have been the start of "<tool_call>": held, then cut at the stop when it turns out not to be.
        Assert.Equal(("a ", true), Run(new StopSequenceMatcher(["<"], ["<tool_call>"]), "a <tool_", "box> b"));

        // Generation ended while it was still held: the stop string ends the text after all.
        Assert.Equal(("a ", true), Run(new StopSequenceMatcher(["<"], ["<tool_call>"]), "a <tool_"));
    }

    [Fact]
    public void JsonCallSyntax_ItsOpeningExemptsTheCall()
    {
        var answer = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}";
        var matcher = new StopSequenceMatcher(["\""], ["<|python_tag|>", "{\"name\""]);
        Assert.Equal((answer, false), Run(matcher, [.. answer.Select(c => c.ToString())]));
    }
}
