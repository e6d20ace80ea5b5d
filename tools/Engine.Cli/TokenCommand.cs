using System.CommandLine;
using Engine.Core.Server;

namespace Engine.Cli;

/// <summary><c>engine token hash</c>: the salted hash of a client token, for a configuration's <c>TokenHash</c>.</summary>
internal static class TokenCommand
{
    public static Command Build()
    {
        var token = new Option<string>("--token") { Description = "The token to hash (1 to 32 bytes of UTF-8); '-' reads it from the first line of standard input. Without it a new random token is made (192 bits) and printed too." };
        var iterations = new Option<int>("--iterations") { Description = $"PBKDF2-SHA256 iterations (default {TokenHash.DefaultIterations}: a few milliseconds per logon; every logon pays it, and a takeover makes every client log on at once).", DefaultValueFactory = _ => TokenHash.DefaultIterations };
        var hash = new Command("hash", """
            Print the salted hash of a client token, to put in the configuration as the client's "TokenHash" (the engine keeps no token in clear).
            With --token: prints only the hash. Without: makes a random token and prints "token: T" and "hash: H"; give the token to the client, the hash to the engine.
            """)
        {
            token,
            iterations,
        };
        hash.SetAction(parse =>
        {
            string? given = parse.GetValue(token);
            if (given == "-")
            {
                given = Console.In.ReadLine()?.TrimEnd('\r', '\n');
            }
            try
            {
                if (given is not null)
                {
                    Console.WriteLine(TokenHash.Create(given, parse.GetValue(iterations)));
                    return 0;
                }
                string made = TokenHash.NewToken();
                Console.WriteLine($"token: {made}");
                Console.WriteLine($"hash: {TokenHash.Create(made, parse.GetValue(iterations))}");
                return 0;
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"engine token hash: {e.Message}");
                return 2;
            }
        });
        return new Command("token", "Client tokens: `engine token hash` makes the hash a configuration stores.") { hash };
    }
}
