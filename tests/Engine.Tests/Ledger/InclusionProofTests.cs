using CsCheck;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Protocol;
using Engine.Security;
using Engine.Tests.Support;

namespace Engine.Tests.Ledger;

/// <summary>
/// Signed heads and inclusion proofs on a real journal: every transaction a root and a head cover
/// has a proof that verifies with the ledger's public key alone; changing any bit of it, or checking
/// it against another key, makes it fail; a head signer continues its tree across a restart and
/// refuses a head file of another history.
/// </summary>
public class InclusionProofTests
{
    private static readonly LedgerKey s_key = LedgerKey.Development();
    private TempDirectory _temp = null!;

    [OneTimeTearDown]
    public static void DisposeKey() => s_key.Dispose();
    private ulong _seq;

    [SetUp]
    public void SetUp()
    {
        _temp = new TempDirectory("proofs");
        _seq = 0;
    }

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private static HeadSigning Signing(LedgerKey key) => new(key.PublicKey.ToArray(), head => key.SignHead(head));

    private JournalSettings Settings(string name = "journal") =>
        new() { Directory = _temp.Sub(name), Durability = Durability.Memory, MaxTransactionsPerBlock = 16, MemorySizeBits = 22, PageSizeBits = 18, MaxCommitLagBytes = 1 << 20 };

    /// <summary>Seals <paramref name="blocks"/> blocks (1…16 transactions), roots handed over every few blocks.</summary>
    private void Seal(Journal journal, BlockBuilder builder, RecordsRootBuilder roots, int blocks, int seed)
    {
        var random = new Random(seed);
        for (int b = 0; b < blocks; b++)
        {
            int size = random.Next(1, 17);
            for (int i = 0; i < size; i++)
            {
                _seq++;
                var tx = Transaction.NewOrder(1 + (uint)(_seq % 3), _seq, 2, 1, _seq, _seq % 2 == 0 ? Side.Buy : Side.Sell, OrderType.Limit, TimeInForce.Gtc, 100 + (long)(_seq % 50), 10);
                builder.Add(in tx);
            }
            journal.Append(builder.Seal(1_000 + (long)_seq, out _));
            if (random.Next(4) == 0)
            {
                journal.Flush();
                roots.Poll();
            }
        }
        journal.Flush();
    }

    /// <summary>A journal of <paramref name="blocks"/> blocks with roots, and a head signed over all of them.</summary>
    private (Journal Journal, HeadSigner Heads) Ledger(int blocks, int seed, string name = "journal")
    {
        Journal journal = Journal.Open(Settings(name));
        var roots = new RecordsRootBuilder(journal, TimeSpan.Zero);
        var builder = new BlockBuilder(journal.Head, 16) { RootSource = roots };
        Seal(journal, builder, roots, blocks, seed);
        journal.Flush();
        roots.Poll();
        Seal(journal, builder, roots, 2, seed + 1); // the last roots go into later blocks
        var heads = new HeadSigner(journal, Signing(s_key), TimeSpan.Zero);
        heads.Poll();
        return (journal, heads);
    }

    private static bool ByKey(byte[] signed, byte[] signature) => LedgerKey.VerifyHead(s_key.PublicKey, signed, signature);

    [Test]
    public void Every_transaction_a_root_and_a_head_cover_has_a_proof_that_verifies_with_the_public_key_alone()
    {
        (Journal journal, HeadSigner heads) = Ledger(60, seed: 3);
        SignedHead head = heads.Latest!;
        heads.Dispose();
        journal.Dispose();
        Assert.That(head.TreeSize, Is.EqualTo(63), "genesis, 60 blocks and 2 more");

        using JournalReader reader = JournalReader.Open(Settings().Directory);
        VerifyReport report = reader.Verify();
        Assert.That(report.Intact, Is.True, report.Fault?.ToString());
        ulong lastLsn = report.Head!.Value.LastLsn;
        int proven = 0;
        for (ulong lsn = 1; lsn <= lastLsn; lsn++)
        {
            InclusionProof? proof = InclusionProver.Prove(reader, head, lsn, out string? why);
            if (proof is null)
            {
                Assert.That(why, Does.Contain("no records root covers"), $"lsn {lsn}: only the newest blocks wait for their root");
                continue;
            }
            Assert.That(proof.Verify(ByKey), Is.Null, $"lsn {lsn}");
            InclusionProof? back = InclusionProof.TryParse(proof.ToJsonUtf8(), out string? wrong);
            Assert.That(back, Is.Not.Null, wrong);
            Assert.That(back!.Verify(ByKey), Is.Null, $"lsn {lsn}, read back from JSON");
            proven++;
        }
        Assert.That(proven, Is.GreaterThan((int)lastLsn * 8 / 10), $"{proven} of {lastLsn} transactions proven");
        Assert.That(InclusionProver.Prove(reader, head, lastLsn + 1, out string? none), Is.Null);
        Assert.That(none, Does.Contain($"no transaction with LSN {lastLsn + 1}"));
    }

    [Test]
    public void Any_changed_bit_of_a_proof_or_another_key_makes_it_fail()
    {
        (Journal journal, HeadSigner heads) = Ledger(30, seed: 11);
        SignedHead head = heads.Latest!;
        heads.Dispose();
        journal.Dispose();
        using JournalReader reader = JournalReader.Open(Settings().Directory);
        List<InclusionProof> proofs = [.. Enumerable.Range(1, 200).Select(l => InclusionProver.Prove(reader, head, (ulong)l, out _)).OfType<InclusionProof>()];
        Assert.That(proofs, Has.Count.GreaterThan(100));

        using var other = LedgerKey.Load(Path.Combine(ClusterInit(), "cluster.json"), Path.Combine(_temp.Sub("cluster"), ClusterSetup.LedgerKeyFileName));
        Assert.That(proofs[0].Verify((signed, signature) => LedgerKey.VerifyHead(other.PublicKey, signed, signature)), Does.Contain("signature"), "another cluster's key");

        Gen.Select(Gen.Int[0, proofs.Count - 1], Gen.Int[0, 5], Gen.Int[0, int.MaxValue]).Sample((which, part, at) =>
        {
            InclusionProof proof = proofs[which];
            InclusionProof changed = part switch
            {
                0 => proof with { Record = Flip(proof.Record, at) },
                1 => proof with { RootBlock = Flip(proof.RootBlock, at) },
                2 => proof with { Head = SignedHead.TryRead(Flip(proof.Head.ToBytes(), at), out _) ?? proof.Head with { TreeSize = proof.Head.TreeSize + 1 } },
                3 => proof with { RecordPath = FlipPath(proof.RecordPath, at) ?? [.. proof.RecordPath, default] },
                4 => proof with { HeadPath = FlipPath(proof.HeadPath, at) ?? [.. proof.HeadPath, default] },
                _ => proof with { RecordIndex = proof.RecordIndex ^ (1L << (at % 6)) },
            };
            return changed.Verify(ByKey) is not null;
        }, iter: 2000);
    }

    [Test]
    public void A_signer_continues_its_tree_after_a_restart_and_the_heads_are_consistent()
    {
        SignedHead first;
        (Journal journal, HeadSigner heads) = Ledger(20, seed: 5);
        first = heads.Latest!;
        heads.Dispose();
        journal.Dispose();

        Journal reopened = Journal.Open(Settings());
        var restarted = new HeadSigner(reopened, Signing(s_key), TimeSpan.Zero);
        restarted.Poll();
        Assert.That(restarted.Latest, Is.EqualTo(first).Using<SignedHead>((a, b) => a.ToBytes().SequenceEqual(b.ToBytes())), "read back from ledger-head: nothing new to sign");
        var roots = new RecordsRootBuilder(reopened, TimeSpan.Zero);
        Seal(reopened, new BlockBuilder(reopened.Head, 16) { RootSource = roots }, roots, 7, seed: 6);
        restarted.Poll();
        SignedHead second = restarted.Latest!;
        Assert.That(second.TreeSize, Is.EqualTo(first.TreeSize + 7));
        Assert.That(LedgerKey.VerifyHead(s_key.PublicKey, second.SignedPart(), second.Signature), Is.True);

        Hash32[] leaves = BlockLeaves(reopened);
        Assert.That(Merkle.Root(leaves), Is.EqualTo(second.Root), "the head is the root of every block hash from genesis");
        Hash32[] consistency = Merkle.ConsistencyProof(leaves, first.TreeSize);
        Assert.That(Merkle.VerifyConsistency(first.TreeSize, second.TreeSize, first.Root, second.Root, consistency), Is.True, "the later head extends the earlier");
        Assert.That(restarted.Tree.RootOf(second.TreeSize), Is.EqualTo(second.Root), "the tree file continued with the head");
        restarted.Dispose();
        reopened.Dispose();

        // A lost tree file (not synced: a power cut) is built again from the journal.
        File.Delete(Path.Combine(Settings().Directory, BlockHashTree.FileName));
        var notes = new List<string>();
        using Journal third = Journal.Open(Settings());
        using var rebuilt = new HeadSigner(third, Signing(s_key), TimeSpan.Zero, log: notes.Add);
        rebuilt.Poll();
        Assert.That(notes, Has.Some.Contains("the tree file does not hold its head's tree"));
        Assert.That(rebuilt.Tree.InclusionPath(3, second.TreeSize), Is.EqualTo(Merkle.InclusionPath(leaves, 3)));
    }

    [Test]
    public void A_head_file_of_another_history_is_not_continued()
    {
        (Journal a, HeadSigner headsA) = Ledger(10, seed: 7, name: "a");
        headsA.Dispose();
        a.Dispose();
        (Journal b, HeadSigner headsB) = Ledger(12, seed: 8, name: "b"); // a different chain of the same cluster
        headsB.Dispose();
        File.Copy(HeadSigner.PathIn(Settings("a").Directory), HeadSigner.PathIn(Settings("b").Directory), overwrite: true);

        var notes = new List<string>();
        using var signer = new HeadSigner(b, Signing(s_key), TimeSpan.Zero, log: notes.Add);
        signer.Poll();
        Assert.That(notes, Has.Some.Contains("start from genesis (the head file is of another history)"));
        Assert.That(signer.Latest!.Root, Is.EqualTo(Merkle.Root(BlockLeaves(b))));
        b.Dispose();
    }

    /// <summary>A proof file is hostile input: mutated JSON or bytes are refused with a reason or verify false, never throw.</summary>
    [Test]
    public void Hostile_proof_files_are_refused_never_thrown_on()
    {
        (Journal journal, HeadSigner heads) = Ledger(12, seed: 21);
        SignedHead head = heads.Latest!;
        heads.Dispose();
        journal.Dispose();
        using JournalReader reader = JournalReader.Open(Settings().Directory);
        byte[] json = InclusionProver.Prove(reader, head, 3, out string? why)?.ToJsonUtf8() ?? throw new AssertionException(why!);
        Gen.Select(Gen.Int[0, json.Length - 1], Gen.Byte, Gen.Int[0, 3]).Sample((at, value, how) =>
        {
            byte[] mutated = how switch
            {
                0 => [.. json[..at], value, .. json[(at + 1)..]],
                1 => json[..at],
                2 => [.. json[..at], .. json[(at + 1)..]],
                _ => [.. json[..at], value, .. json[at..]],
            };
            InclusionProof? parsed = InclusionProof.TryParse(mutated, out string? wrong);
            return parsed is null ? wrong is not null : parsed.Verify(ByKey) is null or { Length: > 0 };
        }, iter: 3000);
        Assert.That(InclusionProof.TryParse(new byte[InclusionProof.MaxJsonBytes + 1], out string? large), Is.Null);
        Assert.That(large, Does.Contain("larger than any proof"));
    }

    /// <summary>
    /// The node's live prover (the journal's index, a bounded read, the tree file) makes exactly the
    /// proof the offline one (a pass over the whole journal) makes, for the client whose order it is
    /// only; the binary form a proof travels in reads back to the same proof.
    /// </summary>
    [Test]
    public void The_live_prover_makes_the_offline_proof_for_the_orders_own_client_only()
    {
        (Journal journal, HeadSigner heads) = Ledger(60, seed: 13);
        SignedHead head = heads.Latest!;
        var live = new LiveProver(journal, heads);
        using (JournalReader reader = JournalReader.Open(Settings().Directory))
        {
            int proven = 0;
            for (ulong lsn = 1; lsn <= 400; lsn++)
            {
                if (InclusionProver.Prove(reader, head, lsn, out _) is not { } offline)
                {
                    continue;
                }
                LedgerRecord.Read(offline.Record, out Transaction tx);
                InclusionProof? made = live.Prove(tx.ClientId, lsn, offline.Block, out RejectReason refusal, out string why);
                Assert.That(made, Is.Not.Null, $"lsn {lsn}: {refusal} {why}");
                Assert.That(made!.ToBytes(), Is.EqualTo(offline.ToBytes()), $"lsn {lsn}: the same proof");
                Assert.That(InclusionProof.TryRead(made.ToBytes(), out string? wrong)?.Verify(ByKey), Is.Null, $"lsn {lsn}, read back from binary: {wrong}");

                Assert.That(live.Prove(tx.ClientId + 1, lsn, offline.Block, out refusal, out _), Is.Null, "another client's order");
                Assert.That(refusal, Is.EqualTo(RejectReason.NoSuchTransaction));
                Assert.That(live.Prove(tx.ClientId, lsn, offline.Block + 1, out refusal, out _), Is.Null, "the wrong block");
                Assert.That(refusal, Is.EqualTo(RejectReason.NoSuchTransaction));
                proven++;
            }
            Assert.That(proven, Is.GreaterThan(300));
        }
        Assert.That(live.Prove(1, 1, (ulong)head.TreeSize, out RejectReason later, out string notYet), Is.Null, "a block no head covers yet");
        Assert.That(later, Is.EqualTo(RejectReason.ProofUnavailable));
        Assert.That(notYet, Does.Contain("not under a signed head yet"));
        heads.Dispose();
        journal.Dispose();
    }

    /// <summary>The tree file gives every path <see cref="Merkle.InclusionPath"/> gives, for every size; it is taken up again only when it holds the head's tree.</summary>
    [Test]
    public void The_tree_file_gives_the_paths_of_every_tree_and_is_continued_only_when_it_holds_the_head()
    {
        var leaves = new List<Hash32>();
        string directory = Directory.CreateDirectory(_temp.Sub("tree")).FullName;
        using (BlockHashTree tree = BlockHashTree.Open(directory))
        {
            var range = new CompactRange();
            for (int n = 1; n <= 140; n++)
            {
                Hash32 leaf = Merkle.LeafHash(BitConverter.GetBytes(n));
                leaves.Add(leaf);
                tree.Append(in leaf);
                range.Append(in leaf);
                Assert.That(tree.RootOf(n), Is.EqualTo(Merkle.Root([.. leaves])), $"root of {n}");
                for (int m = 0; m < n; m++)
                {
                    Assert.That(tree.InclusionPath(m, n), Is.EqualTo(Merkle.InclusionPath([.. leaves], m)), $"leaf {m} of {n}");
                }
            }
            Assert.That(tree.InclusionPath(5, 77), Is.EqualTo(Merkle.InclusionPath(leaves.Take(77).ToArray(), 5)), "a smaller tree than the file holds");

            using BlockHashTree again = BlockHashTree.Open(directory);
            Assert.That(again.Continue(range.Size, range.Subtrees(), range.Root()), Is.True);
            Assert.That(again.InclusionPath(100, 140), Is.EqualTo(Merkle.InclusionPath([.. leaves], 100)));
            Hash32 otherRoot = Merkle.LeafHash([1]);
            using BlockHashTree wrong = BlockHashTree.Open(directory);
            Assert.That(wrong.Continue(range.Size, range.Subtrees(), otherRoot), Is.False, "another root");
            Assert.That(wrong.Size, Is.Zero);
        }
        File.WriteAllBytes(Path.Combine(directory, BlockHashTree.FileName), new byte[100 * Hash32.Bytes]); // torn: shorter, and zeros
        using BlockHashTree torn = BlockHashTree.Open(directory);
        var full = new CompactRange();
        foreach (Hash32 leaf in leaves)
        {
            full.Append(in leaf);
        }
        Assert.That(torn.Continue(full.Size, full.Subtrees(), full.Root()), Is.False, "a file too short for the tree");
    }

    /// <summary>The binary proof is hostile input too: any mutation reads as no proof, or as one that fails (or, for bytes it does not cover, still holds).</summary>
    [Test]
    public void Hostile_binary_proofs_are_refused_never_thrown_on()
    {
        (Journal journal, HeadSigner heads) = Ledger(12, seed: 23);
        SignedHead head = heads.Latest!;
        heads.Dispose();
        journal.Dispose();
        using JournalReader reader = JournalReader.Open(Settings().Directory);
        InclusionProof proof = InclusionProver.Prove(reader, head, 3, out string? why) ?? throw new AssertionException(why!);
        byte[] bytes = proof.ToBytes();
        Gen.Select(Gen.Int[0, bytes.Length - 1], Gen.Int[1, 255], Gen.Int[0, 2]).Sample((at, change, how) =>
        {
            byte[] mutated = how switch
            {
                0 => [.. bytes[..at], (byte)(bytes[at] ^ change), .. bytes[(at + 1)..]],
                1 => bytes[..at],
                _ => [.. bytes[..at], (byte)change, .. bytes[at..]],
            };
            InclusionProof? read = InclusionProof.TryRead(mutated, out string? wrong);
            if (how == 0 && at is >= 32 and < 40)
            {
                // The block number is bound to the run of blocks the records root covers, not to one
                // block of it (docs/ledger-format.md, "Proofs"): another block of the run still verifies.
                return read is null || read.Verify(ByKey) is null || read.Block < read.Block + 1;
            }
            return read is null ? wrong is not null : read.Verify(ByKey) is not null;
        }, iter: 3000);
    }

    /// <summary>A head over the first <paramref name="size"/> of <paramref name="leaves"/>, signed with <paramref name="key"/>.</summary>
    private static SignedHead HeadOver(Hash32[] leaves, long size, ClusterId cluster, LedgerKey key)
    {
        Hash32 root = Merkle.Root(leaves.AsSpan(0, (int)size));
        byte[] signed = SignedHead.SignedPart(cluster, size, 1_000 * size, in root);
        return new SignedHead(cluster, size, 1_000 * size, root, key.SignHead(signed));
    }

    [Test]
    public void Every_later_head_is_proven_to_extend_every_earlier_one_and_a_rewritten_or_altered_one_is_not()
    {
        (Journal journal, HeadSigner heads) = Ledger(24, seed: 13);
        ClusterId cluster = heads.Latest!.ClusterId;
        Hash32[] leaves = BlockLeaves(journal);
        heads.Dispose();
        journal.Dispose();
        (Journal other, HeadSigner otherHeads) = Ledger(24, seed: 14, name: "other"); // another history of the same cluster
        Hash32[] otherLeaves = BlockLeaves(other);
        otherHeads.Dispose();
        other.Dispose();

        using JournalReader reader = JournalReader.Open(Settings().Directory);
        var proofs = new List<ConsistencyProof>();
        for (long m = 1; m <= leaves.Length; m += 3)
        {
            for (long n = m; n <= leaves.Length; n += 5)
            {
                ConsistencyProof? proof = InclusionProver.ProveConsistency(reader, HeadOver(leaves, m, cluster, s_key), HeadOver(leaves, n, cluster, s_key), out string? why);
                Assert.That(proof, Is.Not.Null, why);
                Assert.That(proof!.Verify(ByKey), Is.Null, $"{m} → {n}");
                ConsistencyProof? back = ConsistencyProof.TryParse(proof.ToJsonUtf8(), out string? wrong);
                Assert.That(back, Is.Not.Null, wrong);
                Assert.That(back!.Verify(ByKey), Is.Null, $"{m} → {n}, read back from JSON");
                proofs.Add(proof);
            }
        }

        // The old head of another history, or a new head over more blocks than the journal holds: no proof, and why.
        Assert.That(InclusionProver.ProveConsistency(reader, HeadOver(otherLeaves, 10, cluster, s_key), HeadOver(leaves, 20, cluster, s_key), out string? rewritten), Is.Null);
        Assert.That(rewritten, Does.Contain("the old head's root is not"));
        Assert.That(InclusionProver.ProveConsistency(reader, HeadOver(leaves, 10, cluster, s_key), HeadOver(leaves, 9, cluster, s_key), out string? backwards), Is.Null);
        Assert.That(backwards, Does.Contain("more than the new head's"));

        // A proof's path joined to another history's head, another key, any changed bit: it fails.
        ConsistencyProof sample = proofs.First(p => p.Path.Length > 1 && p.OldHead.TreeSize > 2); // past genesis, which both histories share
        Assert.That((sample with { OldHead = HeadOver(otherLeaves, sample.OldHead.TreeSize, cluster, s_key) }).Verify(ByKey), Does.Contain("prefix"));
        using var otherKey = LedgerKey.Load(Path.Combine(ClusterInit(), "cluster.json"), Path.Combine(_temp.Sub("cluster"), ClusterSetup.LedgerKeyFileName));
        Assert.That(sample.Verify((signed, signature) => LedgerKey.VerifyHead(otherKey.PublicKey, signed, signature)), Does.Contain("signature"));
        List<ConsistencyProof> nonTrivial = [.. proofs.Where(p => p.Path.Length > 0)];
        Gen.Select(Gen.Int[0, nonTrivial.Count - 1], Gen.Int[0, 2], Gen.Int[0, int.MaxValue]).Sample((which, part, at) =>
        {
            ConsistencyProof proof = nonTrivial[which];
            ConsistencyProof changed = part switch
            {
                0 => proof with { OldHead = SignedHead.TryRead(Flip(proof.OldHead.ToBytes(), at), out _) ?? proof.OldHead with { TreeSize = proof.OldHead.TreeSize + 1 } },
                1 => proof with { NewHead = SignedHead.TryRead(Flip(proof.NewHead.ToBytes(), at), out _) ?? proof.NewHead with { TreeSize = proof.NewHead.TreeSize + 1 } },
                _ => proof with { Path = FlipPath(proof.Path, at)! },
            };
            return changed.Verify(ByKey) is not null;
        }, iter: 2000);

        // Hostile JSON: refused with a reason, never thrown on.
        byte[] json = sample.ToJsonUtf8();
        Gen.Int[0, json.Length * 8 - 1].Sample(at => ConsistencyProof.TryParse(Flip(json, at), out _) is not { } parsed || parsed.Verify(ByKey) is not null || parsed.ToJsonUtf8().AsSpan().SequenceEqual(json), iter: 2000);
    }

    private string ClusterInit()
    {
        string dir = _temp.Sub("cluster");
        ClusterSetup.Init(dir);
        return dir;
    }

    private static Hash32[] BlockLeaves(Journal journal)
    {
        var leaves = new List<Hash32>();
        journal.Scan((entry, _) =>
        {
            Assert.That(BlockFormat.TryReadHeader(entry, out BlockHeader header), Is.Null);
            leaves.Add(SignedHead.BlockLeaf(BlockFormat.StoredHash(entry, in header)));
            return true;
        });
        return [.. leaves];
    }

    private static byte[] Flip(byte[] bytes, int at)
    {
        byte[] copy = [.. bytes];
        copy[at / 8 % copy.Length] ^= (byte)(1 << (at % 8));
        return copy;
    }

    private static Hash32[]? FlipPath(Hash32[] path, int at)
    {
        if (path.Length == 0)
        {
            return null;
        }
        Hash32[] copy = [.. path];
        Span<byte> bytes = copy[at % path.Length];
        bytes[at / 7 % Hash32.Bytes] ^= (byte)(1 << (at % 8));
        return copy;
    }
}
