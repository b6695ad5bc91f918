namespace Sovereign.Languages.Tests;

/// <summary>
/// The spelling dictionaries' evidence within Croatian, Bosnian and Serbian (<see cref="StandardForms"/>): forms two of
/// the three standards' Hunspell dictionaries accept and the third rejects, weighed by how often each member's tuning
/// text uses such forms (sentences written for these tests, in neither the tuning corpus nor a held-out set).
/// </summary>
public sealed class StandardFormsTests
{
    private static readonly string[] Members = ["hr", "bs", "sr"];

    [Fact]
    public void Table_IsLoaded_FromTheEmbeddedDictionaryForms() => Assert.InRange(StandardForms.Default.FormCount, 50_000, 100_000);

    [Theory]
    [InlineData("ko je ostavio upaljeno svjetlo u podrumu")]
    [InlineData("juče smo igrali fudbal do mraka")]
    [InlineData("opština je produžila radno vrijeme")]
    public void FormsBosnianAndSerbianShare_CountAgainstCroatian(string text)
    {
        var evidence = StandardForms.Default.Score(text, Members);
        Assert.True(evidence[0] < evidence[1] && evidence[0] < evidence[2], string.Join(" ", evidence));
    }

    [Theory]
    [InlineData("tko je ostavio upaljeno svjetlo u podrumu")]
    [InlineData("općina je produžila radno vrijeme")]
    public void FormsCroatianAndBosnianShare_CountForCroatianOverSerbian(string text)
    {
        var evidence = StandardForms.Default.Score(text, Members);
        Assert.True(evidence[0] > evidence[2] && evidence[1] > evidence[2], string.Join(" ", evidence));
    }

    [Theory]
    [InlineData("kupili smo mlečni namaz i sok")]
    [InlineData("premestili smo sto do prozora")]
    public void EkavianFormsTheOtherDictionariesWriteIjekavian_CountForSerbian(string text)
    {
        var evidence = StandardForms.Default.Score(text, Members);
        Assert.True(evidence[2] > evidence[0] && evidence[2] > evidence[1], string.Join(" ", evidence));
    }

    [Fact]
    public void TextWithoutDiscriminatingForms_HasNoEvidence()
    {
        Assert.All(StandardForms.Default.Score("sutra idemo na more autom", Members), e => Assert.Equal(0, e));
    }

    [Fact]
    public void MembersOutsideTheGroup_GetNothing()
    {
        var evidence = StandardForms.Default.Score("ko je to rekao", ["sl", "hr", "sr"]);
        Assert.Equal(0, evidence[0]);
        Assert.True(evidence[1] < evidence[2]);
    }
}
