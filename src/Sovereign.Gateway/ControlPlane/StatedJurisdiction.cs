using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Configuration;
using Sovereign.Gateway.Hosting;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The jurisdiction this server stated at its first start with one, kept in its data directory
/// (<see cref="FileName"/>). A gateway's jurisdiction is where tenants' content passes, and nothing else binds it (a
/// node's is bound by its credential, unless the node issues its own with the operator key: it keeps one here too): restarted with <c>Sovereign__Jurisdiction=SG</c> by mistake, gateway-th started
/// silently as SG, refused its TH tenants and would have passed SG-only tenants' content through a machine in TH,
/// stating SG on every answer and in the audit log. A start whose jurisdiction differs from the kept one now stops,
/// naming both; setting one for the first time (a laptop that ran without one) is kept, and a start that leaves it unset
/// states the kept one (<see cref="Prepare"/>).
/// </summary>
internal sealed record StatedJurisdiction([property: JsonPropertyName("jurisdiction")] string Jurisdiction, [property: JsonPropertyName("since")] DateTimeOffset Since)
{
    /// <summary>The file in the data directory.</summary>
    public const string FileName = "jurisdiction.json";

    /// <summary>
    /// Before the options are bound: a start that sets no <c>Sovereign:Jurisdiction</c> on a data directory that stated
    /// one states it again. Restarted without the variable, a TH server warned that it declared no jurisdiction and
    /// refused TH tenants' language detection ("this gateway is in ZZ") while it served their chat in TH, from its node's
    /// registration of the earlier start. A node whose jurisdiction its credential binds (configured, or kept from a
    /// join, which fills the setting itself) is left to that, as <see cref="Check"/> leaves it.
    /// </summary>
    public static void Prepare(IConfigurationManager configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        if (!string.IsNullOrWhiteSpace(configuration["Sovereign:Jurisdiction"]))
        {
            return;
        }

        SovereignOptions settings;
        Cluster.Hosting.SovereignClusterOptions cluster;
        try
        {
            settings = configuration.GetSection(SovereignOptions.SectionName).Get<SovereignOptions>() ?? new SovereignOptions();
            cluster = configuration.GetSection(Cluster.Hosting.SovereignClusterOptions.SectionName).Get<Cluster.Hosting.SovereignClusterOptions>()
                ?? new Cluster.Hosting.SovereignClusterOptions();
        }
        catch (InvalidOperationException)
        {
            // A setting of the wrong shape (a list where one value belongs, even the jurisdiction itself): the start's
            // own validation stops it, naming the setting; the binder's message here would name none.
            return;
        }

        if (cluster.Role == Cluster.Hosting.ServerRole.Node && !string.IsNullOrWhiteSpace(settings.NodeCredential))
        {
            return;
        }

        var path = Path.Combine(settings.ResolvedDataDirectory, FileName);
        StatedJurisdiction? kept;
        try
        {
            kept = File.Exists(path) ? JsonSerializer.Deserialize<StatedJurisdiction>(File.ReadAllText(path)) : null;
        }
        catch (Exception ex) when (ex is JsonException or IOException or UnauthorizedAccessException)
        {
            kept = null; // the start goes on as undeclared, and says so
        }

        if (!string.IsNullOrWhiteSpace(kept?.Jurisdiction))
        {
            configuration.AddInMemoryCollection([new("Sovereign:Jurisdiction", kept.Jurisdiction)]);
        }
    }

    /// <summary>Checks <paramref name="configured"/> against the kept jurisdiction, and keeps it at its first start with one.</summary>
    public static void Check(string dataDirectory, string? configured, TimeProvider time)
    {
        if (string.IsNullOrWhiteSpace(configured))
        {
            return;
        }

        var jurisdiction = configured.Trim().ToUpperInvariant();
        var path = Path.Combine(dataDirectory, FileName);
        if (File.Exists(path))
        {
            StatedJurisdiction? kept;
            try
            {
                kept = JsonSerializer.Deserialize<StatedJurisdiction>(File.ReadAllText(path));
            }
            catch (JsonException)
            {
                kept = null;
            }

            if (kept is null || string.IsNullOrWhiteSpace(kept.Jurisdiction))
            {
                throw new InvalidOperationException($"{path} cannot be read: it keeps the jurisdiction this server stated before. Restore it, or delete it if Sovereign:Jurisdiction ({jurisdiction}) is where this machine is.");
            }

            if (!string.Equals(kept.Jurisdiction, jurisdiction, StringComparison.Ordinal))
            {
                throw new InvalidOperationException(
                    $"Sovereign:Jurisdiction is {jurisdiction}, but this server has stated {kept.Jurisdiction} since {kept.Since:yyyy-MM-dd} (kept in {path}): " +
                    "the jurisdiction it states is where tenants' content passes and is recorded in the audit log, so a setting alone does not move it. " +
                    $"If the setting is wrong, set it back to {kept.Jurisdiction}; if this machine (or its data directory) really moved to {jurisdiction}, delete that file and start again.");
            }

            return;
        }

        Directory.CreateDirectory(dataDirectory);
        try
        {
            // Whole or not at all: written in place, a start killed half way left a file the next start could not read.
            Storage.AtomicFile.Write(path, Storage.ExistingFile.Refuse,
                stream => JsonSerializer.Serialize(stream, new StatedJurisdiction(jurisdiction, time.GetUtcNow())), Storage.FileAccessScope.OwnerOnly);
        }
        catch (Storage.AtomicFileExistsException)
        {
            // Another start wrote it first: the next start compares.
        }
    }
}
