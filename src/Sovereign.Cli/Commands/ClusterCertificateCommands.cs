using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;

namespace Sovereign.Cli.Commands;

/// <summary>
/// <c>sovereign cluster ca init</c> and <c>sovereign cluster cert issue</c>: the operator's cluster CA and the
/// certificates gateways and nodes authenticate each other with (nodes that join with a token get theirs from a gateway).
/// </summary>
internal static class ClusterCertificateCommands
{
    private const string AuthorityFile = "cluster-ca.pem";
    private const string AuthorityKeyFile = "cluster-ca-key.pem";
    private const string CertificateFile = "cluster-cert.pem";
    private const string KeyFile = "cluster-key.pem";

    public static Command CreateAuthority()
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "Where to write cluster-ca.pem and cluster-ca-key.pem (default ~/.sovereign)." };
        var clusterId = new Option<string>("--cluster-id") { Description = "The cluster's name, written into the CA's subject.", DefaultValueFactory = _ => "sovereign" };
        var days = new Option<int>("--days") { Description = "Days the CA is valid (default 3650).", DefaultValueFactory = _ => (int)ClusterCertificates.DefaultAuthorityLifetime.TotalDays };
        var init = new Command("init", "Create the cluster's certificate authority: every member's certificate is signed by it, and members trust nothing else.")
        {
            dataDir, clusterId, days,
        };
        init.SetAction(result =>
        {
            var directory = result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory;
            var id = result.GetValue(clusterId);
            if (!SovereignClusterOptions.IsClusterId(id))
            {
                // It is written into the CA's subject: a space or a comma (another attribute) was taken as given.
                Console.Error.WriteLine($"sovereign cluster ca init: --cluster-id must be 1 to 64 letters, digits, '.', '_' or '-'; got '{id}'.");
                return 2;
            }

            var certificatePath = Path.Combine(directory, AuthorityFile);
            var keyPath = Path.Combine(directory, AuthorityKeyFile);
            if (File.Exists(certificatePath) || File.Exists(keyPath))
            {
                Console.Error.WriteLine($"sovereign cluster ca init: {certificatePath} or {keyPath} exists already. A new CA means issuing every member a new certificate: move the old files away first.");
                return 1;
            }

            if (result.GetValue(days) <= 0)
            {
                Console.Error.WriteLine("sovereign cluster ca init: --days must be positive.");
                return 2;
            }

            using var authority = ClusterCertificates.CreateAuthority(id!, DateTimeOffset.UtcNow, TimeSpan.FromDays(result.GetValue(days)));
            using var key = authority.GetECDsaPrivateKey()!;
            ClusterTlsCredentials.WritePem(keyPath, key.ExportPkcs8PrivateKeyPem(), secret: true);
            ClusterTlsCredentials.WritePem(certificatePath, authority.ExportCertificatePem(), secret: false);
            Console.WriteLine($"Created the cluster CA {authority.Subject}, valid until {authority.NotAfter.ToUniversalTime():yyyy-MM-dd}.");
            Console.WriteLine($"  {certificatePath}: give it to every member (Sovereign:Cluster:TlsCa).");
            Console.WriteLine($"  {keyPath}: keep it on this machine and on the gateways nodes join through (Sovereign:Cluster:CaKey); never on a node.");
            return 0;
        });
        return new Command("ca", "The cluster's certificate authority.") { init };
    }

    public static Command CreateCertificate()
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "Where the cluster CA's files are (default ~/.sovereign)." };
        var role = new Option<string>("--role") { Description = "gateway or node: what the certificate lets its holder be.", Required = true };
        role.AcceptOnlyFromAmong("gateway", "node");
        var nodeId = new Option<string>("--node-id") { Description = "The member's Sovereign:NodeId, which the certificate binds.", Required = true };
        var output = new Option<string?>("--out") { Description = "Folder to write cluster-cert.pem, cluster-ca.pem and (without --csr) cluster-key.pem to (default: the data directory)." };
        var request = new Option<FileInfo?>("--csr") { Description = "A PEM signing request made on the member, so its private key never leaves it (default: generate the key here)." };
        var days = new Option<int>("--days") { Description = "Days the certificate is valid (default 365).", DefaultValueFactory = _ => (int)ClusterCertificates.DefaultMemberLifetime.TotalDays };
        var issue = new Command("issue", "Sign a gateway's or node's cluster certificate with the cluster CA (also to rotate one: issue anew, restart the member).")
        {
            dataDir, role, nodeId, output, request, days,
        };
        issue.SetAction(result =>
        {
            var directory = result.GetValue(dataDir) ?? AdminConnection.DefaultDataDirectory;
            var id = result.GetValue(nodeId)!;
            if (!ClusterIdentity.IsNodeId(id))
            {
                Console.Error.WriteLine($"sovereign cluster cert issue: --node-id must be 1-63 lowercase letters, digits and '-', starting with a letter or digit; got '{id}'.");
                return 2;
            }

            if (result.GetValue(days) <= 0)
            {
                Console.Error.WriteLine("sovereign cluster cert issue: --days must be positive.");
                return 2;
            }

            X509Certificate2 authority;
            try
            {
                authority = X509Certificate2.CreateFromPemFile(Path.Combine(directory, AuthorityFile), Path.Combine(directory, AuthorityKeyFile));
            }
            catch (Exception ex) when (ex is IOException or CryptographicException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"sovereign cluster cert issue: cannot read the cluster CA in {directory} ({AuthorityFile}, {AuthorityKeyFile}): {ex.Message} Create one with `sovereign cluster ca init`.");
                return 1;
            }

            using (authority)
            {
                var identity = new ClusterIdentity(Enum.Parse<ServerRole>(result.GetValue(role)!, ignoreCase: true), id);
                var target = result.GetValue(output) ?? directory;

                // A folder holding another member's certificate (the CA's own folder, where a gateway keeps its files,
                // is the default) had that member's key replaced: the member could not start again. Re-issuing the same
                // member there (rotation) is fine.
                var existing = Path.Combine(target, CertificateFile);
                if (File.Exists(existing) && HolderOf(existing) is var holder && holder != identity)
                {
                    Console.Error.WriteLine(
                        $"sovereign cluster cert issue: {Path.GetFullPath(target)} holds the certificate of {(holder is null ? "another member" : holder.ToString())}; " +
                        $"issuing {identity} there would replace its key. Choose a folder of its own with --out.");
                    return 2;
                }

                using var generated = result.GetValue(request) is null ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : null;
                string signingRequest;
                try
                {
                    signingRequest = generated is null ? File.ReadAllText(result.GetValue(request)!.FullName) : ClusterCertificates.CreateSigningRequest(identity, generated);
                }
                catch (IOException ex)
                {
                    Console.Error.WriteLine($"sovereign cluster cert issue: --csr: {ex.Message}");
                    return 2;
                }

                X509Certificate2 issued;
                try
                {
                    issued = ClusterCertificates.Issue(authority, signingRequest, identity, DateTimeOffset.UtcNow, TimeSpan.FromDays(result.GetValue(days)));
                }
                catch (CryptographicException ex)
                {
                    Console.Error.WriteLine($"sovereign cluster cert issue: --csr is not a PEM signing request whose signature verifies: {ex.Message}");
                    return 2;
                }

                using (issued)
                {
                    if (generated is not null)
                    {
                        ClusterTlsCredentials.WritePem(Path.Combine(target, KeyFile), generated.ExportPkcs8PrivateKeyPem(), secret: true);
                    }

                    ClusterTlsCredentials.WritePem(Path.Combine(target, CertificateFile), issued.ExportCertificatePem(), secret: false);
                    ClusterTlsCredentials.WritePem(Path.Combine(target, AuthorityFile), authority.ExportCertificatePem(), secret: false);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"Issued {identity} ({issued.Thumbprint}), valid until {issued.NotAfter.ToUniversalTime():yyyy-MM-dd}, to {Path.GetFullPath(target)}: {CertificateFile}, {AuthorityFile}{(generated is null ? "" : ", " + KeyFile)}."));
                    return 0;
                }
            }
        });
        return new Command("cert", "Cluster certificates of gateways and nodes.") { issue, CreateRevoke() };
    }

    /// <summary>The identity the certificate file binds, or null when it is not a cluster certificate.</summary>
    private static ClusterIdentity? HolderOf(string certificateFile)
    {
        try
        {
            // CreateFromPem, not CreateFromPemFile: the file holds no key, and without a key file that one looks for it there.
            using var certificate = X509Certificate2.CreateFromPem(File.ReadAllText(certificateFile));
            return ClusterCertificates.IdentityOf(certificate);
        }
        catch (CryptographicException)
        {
            return null;
        }
    }

    /// <summary>
    /// <c>sovereign cluster cert revoke --serial S | --node-id ID</c>: through a gateway's admin API, which records it in
    /// the cluster's database; every member refuses the certificate on new connections within seconds.
    /// </summary>
    private static Command CreateRevoke()
    {
        var connection = new AdminConnection();
        var serial = new Option<string?>("--serial") { Description = "The certificate's serial number (hex, as `openssl x509 -serial` prints it)." };
        var nodeId = new Option<string?>("--node-id") { Description = "Revoke every certificate issued to this node id so far (issue it a new one at least 5 minutes later)." };
        var reason = new Option<string?>("--reason") { Description = "Why, for the audit log." };
        var revoke = new Command("revoke", "Revoke a gateway's or node's cluster certificate before it expires: members refuse it on every new connection.")
        {
            serial, nodeId, reason,
        };
        connection.AddTo(revoke);
        revoke.SetAction((result, ct) =>
        {
            if ((result.GetValue(serial) is null) == (result.GetValue(nodeId) is null))
            {
                Console.Error.WriteLine("sovereign cluster cert revoke: give exactly one of --serial and --node-id.");
                return Task.FromResult(2);
            }

            return AdminConnection.RunAsync(async () =>
            {
                var json = await connection.SendAsync(result, HttpMethod.Post, "/admin/v1/cluster/revocations",
                    new { serial = result.GetValue(serial), node_id = result.GetValue(nodeId), reason = result.GetValue(reason) }, ct);
                connection.Print(result, json, () => Console.WriteLine(json.GetProperty("serial").GetString() is { } revoked
                    ? $"Revoked the cluster certificate with serial {revoked}."
                    : $"Revoked every cluster certificate of node {json.GetProperty("node_id").GetString()} issued so far."));
            });
        });
        return revoke;
    }
}
