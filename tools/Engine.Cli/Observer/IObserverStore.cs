namespace Engine.Cli.Observer;

/// <summary>
/// Where an observer writes its tables (docs/sql.md): SQLite (<see cref="SqliteObserverStore"/>) or
/// PostgreSQL (<see cref="PostgresObserverStore"/>). The contract that makes a load exact and
/// resumable: a block's rows and the position after it become visible together, at a commit.
/// Disposing one does not commit: the owner commits at a block boundary, so a write that failed half-way is never committed.
/// </summary>
internal interface IObserverStore : IDisposable
{
    /// <summary>Where the database stopped; null for an empty one.</summary>
    ObserverPosition? Position();

    /// <summary>The first block the database holds (0: it started at genesis; more: it started from a snapshot); null for an empty one.</summary>
    ulong? FirstBlock();

    /// <summary>The orders with quantity open, as written (to resume: the observer keeps them in memory, as the book does).</summary>
    IEnumerable<OrderRow> OpenOrders();

    /// <summary>Writes a block's rows and the position after it; commits every so many blocks (and at <see cref="Commit"/>).</summary>
    void Write(ObservedBlock block);

    /// <summary>Commits what was written (a block boundary).</summary>
    void Commit();

    /// <summary>Rows in one of the observer's tables.</summary>
    long Count(string table);
}
