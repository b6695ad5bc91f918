namespace Sovereign.Languages.Tests;

/// <summary>The Iberian digraphs: Portuguese lh and nh, ll for Spanish, Galician and Catalan, Catalan ny.</summary>
public sealed class IberianSpellingTests
{
    [Theory]
    [InlineData("o filho do senhor", 2, 0, 0)]         // Portuguese lh, nh
    [InlineData("unha casa e algunha cousa", 0, 0, 0)] // Galician nh of unha is no Portuguese evidence
    [InlineData("enhorabuena, es inhumano", 0, 0, 0)]  // Spanish h after a prefix
    [InlineData("la calle, o fillo, el fill", 0, 3, 0)] // ll: Spanish calle, Galician fillo, Catalan fill
    [InlineData("el senyor té any", 0, 0, 2)]          // Catalan ny
    [InlineData("una inyección al cónyuge", 0, 0, 0)]  // Spanish ny across a prefix
    public void Count_DigraphsOfEachStandard(string text, int portuguese, int doubleL, int catalanNy)
    {
        Assert.Equal((portuguese, doubleL, catalanNy), IberianSpelling.Count(LanguageProfiles.Normalize(text)));
    }

    [Fact]
    public void Detect_PortugueseNh_PortugueseNotGalician()
    {
        // A sentence of the Portuguese UDHR (labelled sentences): Galician before the digraphs counted (reconhecimento).
        const string text = "Todos os indivíduos têm direito ao reconhecimento, em todos os lugares, da sua personalidade jurídica.";

        Assert.Equal("pt", TestData.DefaultDetector.Detect(text).Language);
        Assert.Equal("gl", TestData.DefaultDetector.WithSpelling(0).Detect(text).Language);
    }
}
