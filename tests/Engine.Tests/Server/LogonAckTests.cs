using System.Buffers.Binary;
using System.Net;
using Engine.Protocol;

namespace Engine.Tests.Server;

/// <summary>The LogonAck's "other node" in a NotPrimary answer, and that every other answer keeps its old layout.</summary>
public class LogonAckTests
{
    private const int Bytes = Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes;

    [TestCase("10.1.2.3:7400")]
    [TestCase("[fe80::1:2:3:4]:7411")]
    public void A_not_primary_answer_carries_the_other_node(string endpoint)
    {
        var other = IPEndPoint.Parse(endpoint);
        var frame = new byte[Bytes];
        var ack = new LogonAck { ClientId = 9, Status = LogonStatus.NotPrimary, OtherNode = other };
        Assert.That(ReplyCodec.EncodeLogonAck(in ack, frame), Is.EqualTo(Bytes), "same size as before");
        Assert.That(ReplyCodec.DecodeLogonAck(frame, out LogonAck decoded), Is.EqualTo(RejectReason.None));
        Assert.Multiple(() =>
        {
            Assert.That(decoded.Status, Is.EqualTo(LogonStatus.NotPrimary));
            Assert.That(decoded.ClientId, Is.EqualTo(9));
            Assert.That(decoded.OtherNode, Is.EqualTo(other));
        });
    }

    [Test]
    public void Without_an_other_node_the_bytes_are_those_of_the_old_layout()
    {
        var frame = new byte[Bytes];
        var notPrimary = new LogonAck { ClientId = 4, Status = LogonStatus.NotPrimary };
        ReplyCodec.EncodeLogonAck(in notPrimary, frame);
        Assert.That(frame.AsSpan(Frame.HeaderBytes + 5, 3).ToArray(), Is.All.Zero, "reserved bytes stay zero");
        Assert.That(ReplyCodec.DecodeLogonAck(frame, out LogonAck decoded), Is.EqualTo(RejectReason.None));
        Assert.That(decoded.OtherNode, Is.Null);

        var ok = new LogonAck { ClientId = 4, Status = LogonStatus.Ok, LastClientSeq = 77, Epoch = 3, LastLsn = 1000, OtherNode = IPEndPoint.Parse("10.0.0.1:1") };
        ReplyCodec.EncodeLogonAck(in ok, frame);
        byte[] body = frame[Frame.HeaderBytes..];
        Assert.Multiple(() =>
        {
            Assert.That(body[5..8], Is.All.Zero, "an ok answer never carries an endpoint");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(body.AsSpan(8)), Is.EqualTo(77));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(body.AsSpan(16)), Is.EqualTo(3));
        });
        Assert.That(ReplyCodec.DecodeLogonAck(frame, out decoded), Is.EqualTo(RejectReason.None));
        Assert.That(decoded.LastClientSeq, Is.EqualTo(77));
        Assert.That(decoded.OtherNode, Is.Null);
    }

    [Test]
    public void An_unknown_address_kind_reads_as_no_other_node()
    {
        var frame = new byte[Bytes];
        var ack = new LogonAck { ClientId = 1, Status = LogonStatus.NotPrimary, OtherNode = IPEndPoint.Parse("10.0.0.1:7400") };
        ReplyCodec.EncodeLogonAck(in ack, frame);
        frame[Frame.HeaderBytes + 5] = 9; // a later version's kind
        Frame.WriteHeader(frame, MessageType.LogonAck, ReplyCodec.LogonAckBodyBytes); // re-seal the CRC
        Assert.That(ReplyCodec.DecodeLogonAck(frame, out LogonAck decoded), Is.EqualTo(RejectReason.None));
        Assert.That(decoded.Status, Is.EqualTo(LogonStatus.NotPrimary));
        Assert.That(decoded.OtherNode, Is.Null);
    }
}
