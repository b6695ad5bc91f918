using Sovereign.Inference.Tools;

namespace Sovereign.Inference.Tests.Tools;

public sealed class ToolCallSyntaxTests
{
    [Theory]
    [InlineData("{%- for m in messages %}<tool_call>{% endfor %}", ToolCallFormat.Hermes)]
    [InlineData("[AVAILABLE_TOOLS]{{ x }}[TOOL_CALLS]", ToolCallFormat.Mistral)]
    [InlineData("<|start_header_id|>assistant<|end_header_id|>{{ '\"parameters\": ' }}", ToolCallFormat.Llama3Json)]
    [InlineData("<|python_tag|>", ToolCallFormat.Llama3Json)]
    [InlineData("{{ messages }}", ToolCallFormat.Hermes)]
    public void The_format_is_chosen_from_the_template(string template, ToolCallFormat expected) => Assert.Equal(expected, ToolCallSyntax.Detect(template));

    [Fact]
    public void Hermes_calls_and_surrounding_content_are_separated()
    {
        var (content, calls) = ToolCallSyntax.Parse(ToolCallFormat.Hermes,
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich\"}}\n</tool_call>\n<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>");

        Assert.Equal("Let me check.", content);
        Assert.Equal([new ParsedToolCall("get_weather", "{\"city\":\"Zürich\"}"), new ParsedToolCall("f", "{}")], calls);
    }

    [Fact]
    public void Llama3_json_calls_parse_with_or_without_the_python_tag()
    {
        Assert.Equal([new ParsedToolCall("f", "{\"a\":1}")], ToolCallSyntax.Parse(ToolCallFormat.Llama3Json, " {\"name\": \"f\", \"parameters\": {\"a\": 1}}").Calls);
        Assert.Equal(2, ToolCallSyntax.Parse(ToolCallFormat.Llama3Json, "<|python_tag|>{\"name\": \"f\", \"parameters\": {}}; {\"name\": \"g\", \"parameters\": {}}").Calls.Count);
    }

    [Fact]
    public void Mistral_calls_parse_with_or_without_the_marker()
    {
        var expected = new[] { new ParsedToolCall("f", "{\"a\":\"x\"}"), new ParsedToolCall("g", "{}") };
        Assert.Equal(expected, ToolCallSyntax.Parse(ToolCallFormat.Mistral, "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": \"x\"}}, {\"name\": \"g\", \"arguments\": {}}]").Calls);
        Assert.Equal(expected, ToolCallSyntax.Parse(ToolCallFormat.Mistral, "[{\"name\": \"f\", \"arguments\": {\"a\": \"x\"}}, {\"name\": \"g\", \"arguments\": {}}]").Calls);
    }

    [Theory]
    [InlineData(ToolCallFormat.Hermes, "Plain answer.")]
    [InlineData(ToolCallFormat.Hermes, "<tool_call>{\"name\": \"f\", \"arguments\": {broken</tool_call>")]
    [InlineData(ToolCallFormat.Llama3Json, "{\"not\": \"a call\"}")]
    [InlineData(ToolCallFormat.Mistral, "[1, 2, 3]")]
    public void Text_that_is_not_a_well_formed_call_stays_content(ToolCallFormat format, string text)
    {
        var (content, calls) = ToolCallSyntax.Parse(format, text);
        Assert.Empty(calls);
        Assert.Equal(text, content);
    }

    [Fact]
    public void Streamed_hermes_text_passes_content_through_and_streams_an_accepted_call_as_it_comes()
    {
        var parser = new ToolCallStreamParser(ToolCallFormat.Hermes, name => name == "f");
        var events = new List<ToolStreamEvent>();
        foreach (var piece in new[] { "Sure", ". <tool", "_ca", "ll>\n{\"name\": \"f\", ", "\"arguments\": {\"x\": ", "\"a \\\" }\"", ", \"y\": [1, 2]}}\n</tool_", "call>", " done" })
        {
            events.AddRange(parser.Push(piece));
        }

        events.AddRange(parser.Finish());

        Assert.Equal("Sure. ", string.Concat(events.TakeWhile(e => e.CallStart is null).Select(e => e.Content)));
        Assert.Equal("f", Assert.Single(events, e => e.CallStart is not null).CallStart);
        Assert.True(events.Count(e => e.ArgumentsDelta is not null) > 1);
        var streamed = string.Concat(events.Select(e => e.ArgumentsDelta));
        Assert.Equal("{\"x\":\"a \\\" }\",\"y\":[1,2]}", streamed);
        Assert.Equal(ToolCallSyntax.Parse(ToolCallFormat.Hermes, "<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": \"a \\\" }\", \"y\": [1, 2]}}</tool_call>").Calls[0].Arguments, streamed);
        Assert.Equal(" done", events[^1].Content);
    }

    [Fact]
    public void Streamed_hermes_call_of_a_function_not_accepted_comes_out_whole_with_its_text()
    {
        var parser = new ToolCallStreamParser(ToolCallFormat.Hermes, name => name == "f");
        var block = "<tool_call>{\"name\": \"other\", \"arguments\": {}}</tool_call>";
        var events = parser.Push(block).Concat(parser.Finish()).ToList();

        var whole = Assert.Single(events);
        Assert.Equal(new ParsedToolCall("other", "{}"), whole.Call);
        Assert.Equal(block, whole.Content);
    }

    [Fact]
    public void Streamed_json_formats_decide_from_the_first_character()
    {
        var text = new ToolCallStreamParser(ToolCallFormat.Llama3Json);
        Assert.Equal("Hello", Assert.Single(text.Push("Hello")).Content);

        var call = new ToolCallStreamParser(ToolCallFormat.Llama3Json);
        Assert.Empty(call.Push("{\"name\": \"f\", "));
        Assert.Empty(call.Push("\"parameters\": {}}"));
        Assert.Equal(new ParsedToolCall("f", "{}"), Assert.Single(call.Finish()).Call);
    }
}
