using Sovereign.Inference.Tools;

namespace Sovereign.Inference.Tests.Tools;

/// <summary>Text cut by the token limit inside a call is read as the call so far, in every syntax and streamed alike.</summary>
public sealed class TruncatedToolCallTests
{
    [Theory]
    [InlineData(ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Ba", "", "get_weather", "{\"city\":\"Ba")]
    [InlineData(ToolCallFormat.Hermes, "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arg", "Checking.", "get_weather", "")]
    [InlineData(ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"get_wea", "", null, "")]
    [InlineData(ToolCallFormat.Hermes, "Checking. <tool_c", "Checking.", null, "")]
    [InlineData(ToolCallFormat.Hermes, "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": [1, 2]}}\n</tool_", "", "f", "{\"a\":[1,2]}")]
    [InlineData(ToolCallFormat.Llama3Json, "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"a\": 1", "", "f", "{\"a\":1")]
    [InlineData(ToolCallFormat.Mistral, "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": \"x y", "", "f", "{\"a\":\"x y")]
    public void A_call_cut_short_is_its_name_and_truncated_arguments(ToolCallFormat format, string text, string content, string? name, string arguments)
    {
        var cut = ToolCallSyntax.ParseTruncated(format, text);

        Assert.NotNull(cut);
        Assert.Equal((content, name, arguments), (cut.Content, cut.CutName, cut.CutArguments));
    }

    [Theory]
    [InlineData(ToolCallFormat.Hermes, "Just text, cut in the midd")]
    [InlineData(ToolCallFormat.Hermes, "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>")]
    [InlineData(ToolCallFormat.Llama3Json, "Plain text")]
    [InlineData(ToolCallFormat.Llama3Json, "{\"name\": \"f\", \"parameters\": {}}")]
    public void Text_that_does_not_end_inside_a_call_is_left_to_the_ordinary_reading(ToolCallFormat format, string text) =>
        Assert.Null(ToolCallSyntax.ParseTruncated(format, text));

    [Fact]
    public void A_complete_call_before_the_cut_one_is_kept()
    {
        var cut = ToolCallSyntax.ParseTruncated(ToolCallFormat.Hermes, "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>\n<tool_call>{\"name\": \"g\", \"arguments\": {\"b\"");

        Assert.NotNull(cut);
        Assert.Equal([new ParsedToolCall("f", "{}")], cut.Calls);
        Assert.Equal(("g", "{\"b\""), (cut.CutName, cut.CutArguments));
    }

    [Theory]
    [InlineData(ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"f\", \"arg")]
    [InlineData(ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": tr")]
    [InlineData(ToolCallFormat.Llama3Json, "{\"name\": \"f\", \"parameters\": {\"a\": tr")]
    public void Streamed_the_cut_call_is_the_same_call_and_no_markup_is_content(ToolCallFormat format, string text)
    {
        var parser = new ToolCallStreamParser(format, name => name == "f");
        var events = text.Select(c => c.ToString()).SelectMany(parser.Push).ToList();
        events.AddRange(parser.Finish(truncated: true));

        Assert.DoesNotContain(events, e => !string.IsNullOrEmpty(e.Content));
        Assert.Equal("f", Assert.Single(events, e => e.CallStart is not null).CallStart);
        var whole = ToolCallSyntax.ParseTruncated(format, text)!;
        Assert.Equal(whole.CutArguments, string.Concat(events.Select(e => e.ArgumentsDelta)));
    }
}
