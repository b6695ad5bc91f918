using System.Security.Cryptography;
using Sovereign.Residency.Audit;

namespace Sovereign.Residency.Tests.Audit;

public sealed class OperatorSigningKeyTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sovereign-audit-tests", Guid.NewGuid().ToString("N"));

    [Fact]
    public void LoadOrCreate_MissingFile_CreatesAnOwnerOnlyP256Key()
    {
        var path = Path.Combine(_directory, "keys", "operator.pem");

        using var key = OperatorSigningKey.LoadOrCreate(path);

        Assert.True(File.Exists(path));
        Assert.Contains("BEGIN PRIVATE KEY", File.ReadAllText(path), StringComparison.Ordinal);
        Assert.Contains("BEGIN PUBLIC KEY", key.PublicKeyPem, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(path)!));
    }

    [Fact]
    public void LoadOrCreate_ExistingFile_LoadsTheSameKey()
    {
        var path = Path.Combine(_directory, "operator.pem");
        using var created = OperatorSigningKey.LoadOrCreate(path);

        using var loaded = OperatorSigningKey.LoadOrCreate(path);

        Assert.Equal(created.PublicKeyPem, loaded.PublicKeyPem);
        Assert.Equal(created.KeyId, loaded.KeyId);
    }

    [Fact]
    public void KeyId_IsTheFirst16HexOfSha256OverTheSubjectPublicKeyInfo()
    {
        using var key = OperatorSigningKey.CreateEphemeral();
        using var publicKey = ECDsa.Create();
        publicKey.ImportFromPem(key.PublicKeyPem);

        var expected = Convert.ToHexStringLower(SHA256.HashData(publicKey.ExportSubjectPublicKeyInfo()))[..16];

        Assert.Equal(expected, key.KeyId);
        Assert.Equal(expected, OperatorSigningKey.ComputeKeyId(key.PublicKeyPem));
        Assert.Matches("^[0-9a-f]{16}$", key.KeyId);
    }

    [Fact]
    public void Sign_Data_VerifiesWithThePublicKeyOnly()
    {
        using var key = OperatorSigningKey.CreateEphemeral();
        using var publicKey = ECDsa.Create();
        publicKey.ImportFromPem(key.PublicKeyPem);

        var signature = key.Sign("checkpoint"u8);

        Assert.Equal(64, signature.Length);
        Assert.True(publicKey.VerifyData("checkpoint"u8, signature, HashAlgorithmName.SHA256));
        Assert.False(publicKey.VerifyData("checkpoinT"u8, signature, HashAlgorithmName.SHA256));
    }

    [Fact]
    public void FromPem_NotP256_Throws()
    {
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);

        Assert.Throws<CryptographicException>(() => OperatorSigningKey.FromPem(p384.ExportPkcs8PrivateKeyPem()));
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
