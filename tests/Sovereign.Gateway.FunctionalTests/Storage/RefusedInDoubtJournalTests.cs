using Sovereign.Gateway.ControlPlane;
using Sovereign.Residency.Audit;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>The file that keeps refusals whose outcome's commit was in doubt across a restart (<see cref="RefusedInDoubtJournal"/>).</summary>
public sealed class RefusedInDoubtJournalTests
{
    private static RefusedInDoubtJournal.Refusal Refusal(string requestId) => new(
        requestId,
        new AuditRecord
        {
            Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceCompleted, Tenant = "t", Gateway = "gw",
            Details = new Dictionary<string, string> { ["request_id"] = requestId, ["outcome"] = "refused", ["refusal_code"] = "audit_unavailable" },
        },
        [new AuditEntry { Chain = "node-th", Sequence = 7, Timestamp = 1, Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceCompleted, PreviousHash = "p", Hash = "h7" }]);

    [Fact]
    public void Refusals_SurviveANewInstance_AndTheFileGoesWhenTheLastIsSettled()
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-journal-").FullName;
        try
        {
            var journal = new RefusedInDoubtJournal(directory);
            journal.Add(Refusal("r1"));
            journal.Add(Refusal("r2"));

            var reopened = new RefusedInDoubtJournal(directory);
            Assert.Equal(["r1", "r2"], reopened.Pending.Select(r => r.RequestId));
            var first = reopened.Pending[0];
            Assert.Equal(("refused", "audit_unavailable"), (first.Outcome.Details["outcome"], first.Outcome.Details["refusal_code"]));
            Assert.Equal(("node-th", 7L, "h7"), (first.InDoubt[0].Chain, first.InDoubt[0].Sequence, first.InDoubt[0].Hash));

            Assert.True(reopened.Remove("r1"));
            Assert.False(reopened.Remove("r1"));
            Assert.True(File.Exists(reopened.Path));
            Assert.True(reopened.Remove("r2"));
            Assert.False(File.Exists(reopened.Path));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>A damaged file stops the start with what it is and what to do, rather than forget late charges to correct.</summary>
    [Fact]
    public void DamagedFile_IsRefused_NamingItAndWhatToDo()
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-journal-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(directory, RefusedInDoubtJournal.FileName), "[{\"RequestId\":");
            var refused = Assert.Throws<InvalidDataException>(() => new RefusedInDoubtJournal(directory));
            Assert.Contains(RefusedInDoubtJournal.FileName, refused.Message, StringComparison.Ordinal);
            Assert.Contains("move it aside", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
