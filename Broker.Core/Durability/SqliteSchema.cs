using Microsoft.Data.Sqlite;

namespace Broker.Durability;

/// <summary>
/// The session store's schema, as migration steps: step N takes <c>PRAGMA user_version</c> from N-1
/// to N. Append steps; never edit one that has shipped.
/// </summary>
internal static class SqliteSchema
{
    private static readonly string[] s_steps =
    [
        // 1: sessions and the user registry. Times are unix milliseconds.
        """
        CREATE TABLE sessions (
            id            TEXT    NOT NULL PRIMARY KEY,
            token_hash    BLOB    NOT NULL UNIQUE,
            principal     TEXT    NULL,
            node          TEXT    NULL,
            subscriptions TEXT    NOT NULL,
            metadata      TEXT    NOT NULL,
            created_at    INTEGER NOT NULL,
            last_seen_at  INTEGER NOT NULL
        );
        CREATE INDEX ix_sessions_last_seen_at ON sessions (last_seen_at);
        CREATE TABLE user_sessions (
            principal     TEXT    NOT NULL,
            session_id    TEXT    NOT NULL,
            node          TEXT    NOT NULL,
            registered_at INTEGER NOT NULL,
            PRIMARY KEY (principal, session_id)
        ) WITHOUT ROWID;
        CREATE INDEX ix_user_sessions_session_id ON user_sessions (session_id);
        """,
    ];

    /// <summary>The version a fully migrated file has.</summary>
    public static int CurrentVersion => s_steps.Length;

    /// <summary>Applies the missing steps, each in its own write transaction, so that several processes may start at once.</summary>
    public static async Task MigrateAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        while (true)
        {
            // BEGIN IMMEDIATE takes the write lock before reading the version: two migrators serialise.
            await using var transaction = connection.BeginTransaction(deferred: false);
            var version = await GetVersionAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
            if (version >= s_steps.Length)
            {
                if (version > s_steps.Length)
                {
                    throw new SessionStoreException(
                        $"The session database '{connection.DataSource}' has schema version {version}, newer than this broker's {s_steps.Length}.");
                }

                return;
            }

            await using (var command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                // user_version cannot be a parameter; it is our own integer.
                command.CommandText = $"{s_steps[version]}\nPRAGMA user_version = {version + 1};";
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public static async Task<int> GetVersionAsync(SqliteConnection connection, SqliteTransaction? transaction, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "PRAGMA user_version";
        return Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
    }
}
