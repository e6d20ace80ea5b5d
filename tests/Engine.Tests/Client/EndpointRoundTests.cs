using Engine.Client;

namespace Engine.Tests.Client;

/// <summary>The order a failing-over client tries the endpoints in, without sockets.</summary>
public class EndpointRoundTests
{
    /// <summary>The endpoints tried in one round, as "1 2 0", each failed attempt answered by the next of <paramref name="named"/> (-1: nothing named).</summary>
    private static string Walk(EndpointRound round, params int[] named)
    {
        var order = new List<int> { round.Current };
        for (int i = 0; round.MoveNext(i < named.Length ? named[i] : -1); i++)
        {
            order.Add(round.Current);
        }
        return string.Join(' ', order);
    }

    [Test]
    public void Each_endpoint_is_tried_once_from_the_current_one_on()
    {
        Assert.That(Walk(new EndpointRound(3, 1)), Is.EqualTo("1 2 0"));
        Assert.That(Walk(new EndpointRound(1, 0)), Is.EqualTo("0"), "one endpoint: one attempt per round");
    }

    [Test]
    public void A_not_primary_answer_sends_the_client_to_the_endpoint_it_names()
    {
        Assert.That(Walk(new EndpointRound(3, 0), 2), Is.EqualTo("0 2 1"));
    }

    /// <summary>
    /// A node just left for its silence is frozen: its port still takes a connection and the logon would
    /// wait out the timeout. The round leaves it out, even when the other node, not primary yet, names it.
    /// </summary>
    [Test]
    public void An_endpoint_left_for_silence_is_left_out_unless_it_is_the_only_one()
    {
        Assert.That(Walk(new EndpointRound(2, 1, avoid: 0), 0), Is.EqualTo("1"), "the backup names the frozen primary: not followed");
        Assert.That(Walk(new EndpointRound(3, 0, avoid: 0)), Is.EqualTo("1 2"), "it would have started there");
        Assert.That(Walk(new EndpointRound(1, 0, avoid: 0)), Is.EqualTo("0"), "the only endpoint is still tried");
    }

    [Test]
    public void A_named_endpoint_already_tried_or_unknown_is_passed_over()
    {
        Assert.That(Walk(new EndpointRound(2, 0), 0), Is.EqualTo("0 1"), "it names the one that just refused");
        Assert.That(Walk(new EndpointRound(3, 0), 7, -1), Is.EqualTo("0 1 2"), "an endpoint the client does not know");
        Assert.That(Walk(new EndpointRound(3, 0), 2, 0), Is.EqualTo("0 2 1"), "back to one tried this round");
    }

    [Test]
    public void A_round_must_start_at_an_endpoint()
    {
        Assert.That(() => new EndpointRound(0, 0), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => new EndpointRound(2, 2), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }
}
