using System.Text.Json;
using Engine.Cli;
using Engine.Core.Server;

namespace Engine.Tests.Admin;

/// <summary>
/// <c>GET /status</c> is one record (<see cref="NodeStatusReport"/>), written by the admin endpoint and read by the drill
/// and the tests; tools outside the project read its fields by name, so the names are pinned here.
/// </summary>
public class NodeStatusReportTests
{
    private static readonly string[] Fields =
    [
        "pid", "role", "halted", "halt_reason", "epoch", "block", "lsn", "backup_in_step", "lease", "solo_lease", "solo_lease_ms_left", "in_step",
        "listen", "journal", "replication_listen", "peer", "witness", "status", "state", "snapshots", "recovery",
        "backup_round_trip", "ledger",
    ];

    private static readonly string[] LedgerFields = ["public_key", "head_tree_size", "head_root", "head_timestamp_ns", "head_signature", "head"];

    private static readonly string[] LatencyFields = ["count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"];

    private static readonly string[] StateFields = ["lsn", "checksum", "open_orders", "trades"];

    private static NodeStatusReport Serving() => new(
        Pid: 4242, Role: "primary (took over)", Halted: false, HaltReason: null, Epoch: 2, Block: 17, Lsn: 900, BackupInStep: true, Lease: "witness", SoloLease: false,
        SoloLeaseMsLeft: null, InStep: null, Listen: "0.0.0.0:7400", Journal: "/data/a/journal", ReplicationListen: "127.0.0.1:7500", Peer: "127.0.0.1:7501", Witness: "127.0.0.1:7600",
        Status: new NodeStatus("primary (took over)", 2, 900, 17, "ab12", 3, 2, 880, 20, 1, 0, 0, 1234.5, 17, 0, 0, "memory", 12.5, 3, 1, 0, 1 << 20, false, null)
        {
            Gateway = new GatewayStats(5, 4, 1, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0),
            ReceiveToAnswer = new LatencySummary(880, 41.5, 60, 120.2, 400, 1500),
        },
        State: new NodeStateSummary(900, "0011223344556677", 12, 300),
        Snapshots: new Engine.Core.Journaling.SnapshotStatus(SnapshotBlock: 16, AppliedBlock: 17, Taken: 1, LastBytes: 4096, LastWriteMs: 1.5, LastError: null),
        Recovery: new RecoveryReport(null, null, 10, 10, 800, 10, 0, 3.5, 2, 0, 1, 1.25, 5),
        BackupRoundTrip: new LatencySummary(17, 30, 35, 80, 90, 95.5),
        Ledger: new LedgerSigningStatus(new string('a', 64), 18, new string('b', 64), 1_764_000_000_000_000_000, new string('c', 128)));

    [Test]
    public void The_fields_keep_their_names_and_order()
    {
        using JsonDocument json = JsonDocument.Parse(Serving().ToJsonUtf8());
        Assert.That(json.RootElement.EnumerateObject().Select(p => p.Name), Is.EqualTo(Fields));
        Assert.That(json.RootElement.GetProperty("state").EnumerateObject().Select(p => p.Name), Is.EqualTo(StateFields));
        Assert.That(json.RootElement.GetProperty("status").GetProperty("head_hash").GetString(), Is.EqualTo("ab12"));
        Assert.That(json.RootElement.GetProperty("status").GetProperty("gateway").GetProperty("logons_failed").GetInt64(), Is.EqualTo(1));
        Assert.That(json.RootElement.GetProperty("status").GetProperty("receive_to_answer").EnumerateObject().Select(p => p.Name), Is.EqualTo(LatencyFields));
        Assert.That(json.RootElement.GetProperty("backup_round_trip").EnumerateObject().Select(p => p.Name), Is.EqualTo(LatencyFields));
        Assert.That(json.RootElement.GetProperty("ledger").EnumerateObject().Select(p => p.Name), Is.EqualTo(LedgerFields));
    }

    [Test]
    public void What_the_endpoint_writes_reads_back_as_itself()
    {
        NodeStatusReport serving = Serving();
        NodeStatusReport backup = serving with { Role = "backup", Epoch = 1, BackupInStep = null, Lease = null, SoloLease = null, InStep = true, Status = null, State = null, BackupRoundTrip = null };
        Assert.Multiple(() =>
        {
            foreach (NodeStatusReport report in new[] { serving, backup })
            {
                NodeStatusReport back = NodeStatusReport.Parse(System.Text.Encoding.UTF8.GetString(report.ToJsonUtf8()));
                Assert.That(back with { Status = null }, Is.EqualTo(report with { Status = null }), report.Role);
                Assert.That(back.Status, Is.EqualTo(report.Status), report.Role);
                Assert.That(back.Status?.Gateway, Is.EqualTo(report.Status?.Gateway), report.Role);
            }
            Assert.That(serving.IsPrimary && serving.Whole, Is.True);
            Assert.That(serving.ClientEndpoint, Is.EqualTo("127.0.0.1:7400"));
            Assert.That(backup.IsPrimary || backup.Whole, Is.False);
        });
    }

    [TestCase("{}")]
    [TestCase("null")]
    [TestCase("""{"pid":1,"role":null}""")]
    [TestCase("""{"status":"ok"}""")]
    public void An_answer_that_is_no_nodes_status_is_refused(string json)
    {
        Assert.That(() => NodeStatusReport.Parse(json), Throws.InstanceOf<JsonException>());
    }

    [Test]
    public void A_field_missing_is_refused_not_read_as_a_default()
    {
        using JsonDocument json = JsonDocument.Parse(Serving().ToJsonUtf8());
        string withoutPid = JsonSerializer.Serialize(json.RootElement.EnumerateObject().Where(p => p.Name != "pid").ToDictionary(p => p.Name, p => p.Value));
        Assert.That(() => NodeStatusReport.Parse(withoutPid), Throws.InstanceOf<JsonException>());
    }
}
