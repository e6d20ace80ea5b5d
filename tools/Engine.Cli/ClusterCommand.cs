using System.CommandLine;
using Engine.Security;

namespace Engine.Cli;

/// <summary><c>engine cluster init</c>: make a cluster's identity once.</summary>
internal static class ClusterCommand
{
    public static Command Build()
    {
        var directory = new Argument<string>("DIR") { Description = "Where to write cluster.json and the key files (made if missing)." };
        var nodes = new Option<string>("--nodes") { Description = "Comma-separated names of the cluster's nodes (default node-a,node-b). witness, operator and observer are always made." };
        var force = new Option<bool>("--force") { Description = "Replace a cluster already in DIR (a new identity: every member then needs the new files)." };
        var init = new Command("init", """
            Make a new cluster: a random cluster id, an Ed25519 key pair per principal (the nodes, witness, operator, observer) and one for the signed ledger.
            Writes DIR/cluster.json (public: copy it to every member) and DIR/NAME.key per principal plus DIR/ledger.key (private, mode 0600: copy each only to its principal).
            A node runs with `engine serve --cluster DIR/cluster.json --key DIR/node-a.key`.
            """)
        {
            directory, nodes, force,
        };
        init.SetAction(parse =>
        {
            string dir = parse.GetValue(directory)!;
            string? list = parse.GetValue(nodes);
            string[]? names = list is null ? null : list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            ClusterRoster roster;
            try
            {
                roster = ClusterSetup.Init(dir, names, parse.GetValue(force));
            }
            catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"engine cluster init: {e.Message}");
                return 2;
            }
            Console.WriteLine($"cluster {roster.ClusterIdHex} in {Path.GetFullPath(dir)}:");
            Console.WriteLine($"  {ClusterSetup.RosterFileName,-16} public: copy it to every node, the witness and the operator's and observers' machines");
            foreach (Principal principal in roster.Principals)
            {
                Console.WriteLine($"  {Path.GetFileName(ClusterSetup.KeyPath(dir, principal.Name)),-16} private (0600): only for {principal.Name}, the {Principal.RoleName(principal.Role)}");
            }
            Console.WriteLine($"  {ClusterSetup.LedgerKeyFileName,-16} private (0600): the signed ledger's key; keep it offline until a release uses it");
            return 0;
        });
        return new Command("cluster", "A cluster's identity: its members, their roles and keys.") { init };
    }
}
