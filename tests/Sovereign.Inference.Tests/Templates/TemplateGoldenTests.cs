using System.Text.Json;
using Sovereign.Inference.Templates;

namespace Sovereign.Inference.Tests.Templates;

/// <summary>
/// Each case renders with our engine and must equal the golden that the independent renderer
/// (<c>@huggingface/jinja</c>, see <c>regenerate-goldens.sh</c>) wrote for the same template and variables.
/// </summary>
public sealed class TemplateGoldenTests
{
    private static readonly string Folder = Path.Combine(AppContext.BaseDirectory, "Templates");

    /// <summary>The clock the goldens were rendered with: 26 July 2026, local time.</summary>
    internal sealed class FixedClock : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => new DateTimeOffset(2026, 7, 26, 12, 0, 0, TimeZoneInfo.Local.GetUtcOffset(new DateTime(2026, 7, 26))).ToUniversalTime();
    }

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        using var cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "cases.json")));
        foreach (var item in cases.RootElement.EnumerateArray())
        {
            data.Add(item.GetProperty("name").GetString()!);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Renders_like_the_independent_renderer(string name)
    {
        using var cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "cases.json")));
        var item = cases.RootElement.EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);
        var source = File.ReadAllText(Path.Combine(Folder, "Cases", item.GetProperty("template").GetString()!));
        using var context = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "Contexts", item.GetProperty("context").GetString()!)));
        var variables = context.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());

        var rendered = JinjaTemplate.Parse(source).Render(variables, time: new FixedClock());

        var golden = File.ReadAllText(Path.Combine(Folder, "Goldens", name + ".txt"));
        Assert.Equal(golden, rendered);
    }

    [Fact]
    public void The_built_in_chatml_template_is_the_one_checked_against_the_goldens()
    {
        var checkedCopy = File.ReadAllText(Path.Combine(Folder, "Cases", "chatml-tools.jinja"));
        Assert.Equal(ChatTemplateRenderer.ChatMl, checkedCopy);
    }
}
