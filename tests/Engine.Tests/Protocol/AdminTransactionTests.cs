using Engine.Protocol;

namespace Engine.Tests.Protocol;

/// <summary>An admin transaction's record has one meaning: its fields in range, every field its kind does not use zero.</summary>
public class AdminTransactionTests
{
    [Test]
    public void A_field_its_kind_does_not_use_set_or_a_value_out_of_range_is_refused()
    {
        Transaction[] refused =
        [
            AdminTransaction.HaltInstrument(1) with { Price = 5 },
            AdminTransaction.HaltInstrument(0),
            AdminTransaction.HaltInstrument(ProtocolLimits.MaxInstrumentId + 1),
            AdminTransaction.EnableClient(3) with { Account = 1 },
            AdminTransaction.EnableClient(ProtocolLimits.MaxClientId + 1),
            AdminTransaction.GrantAccounts(3, 5, 4),
            AdminTransaction.GrantAccounts(3, 1, 2) with { OrigClientOrderId = (ulong)uint.MaxValue + 1 },
            AdminTransaction.DefineInstrument(1, "OK", 0),
            AdminTransaction.DefineInstrument(1, "OK", 5, referencePrice: 7),
            AdminTransaction.DefineInstrument(1, "OK", 5, priceBandBps: AdminTransaction.MaxPriceBandBps + 1),
            AdminTransaction.DefineInstrument(1, "OK", 5) with { ClientOrderId = 0 },
            AdminTransaction.DefineInstrument(1, "OK", 5) with { ClientOrderId = 0x4B4F_0000_0000_0000 }, // bytes after a zero
            AdminTransaction.SetAccountLimits(1, ProtocolLimits.MaxQuantity + 1, 0, 0),
            AdminTransaction.SetAccountLimits(1, 1, -1, 0),
            AdminTransaction.CancelAllOfClient(1) with { TimeInForce = TimeInForce.Gtc },
            AdminTransaction.CancelAllOnInstrument(2) with { ClientSeq = 9 },
        ];
        foreach (Transaction tx in refused)
        {
            Assert.That(AdminTransaction.Check(in tx), Is.EqualTo(RejectReason.BadReferenceData), tx.ToString());
        }
        Assert.That(AdminTransaction.Check(AdminTransaction.GrantAccounts(3, 0, 0)), Is.EqualTo(RejectReason.None), "a range of one");
    }

    [TestCase("A")]
    [TestCase("ABCDEFGH")]
    [TestCase("x.y-Z_9!")]
    public void A_symbol_packs_into_eight_bytes_and_back(string symbol)
    {
        Assert.That(AdminTransaction.TryUnpackSymbol(AdminTransaction.PackSymbol(symbol), out string back), Is.True);
        Assert.That(back, Is.EqualTo(symbol));
    }

    [TestCase("")]
    [TestCase("NINECHARS")]
    [TestCase("TWO WORD")]
    [TestCase("ÄÖ")]
    public void What_is_no_symbol_is_refused(string symbol) =>
        Assert.That(() => AdminTransaction.PackSymbol(symbol), Throws.ArgumentException);
}
