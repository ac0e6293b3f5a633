//! The schema's migrations on each engine, embedded at build time.
//!
//! A migration that reads the same on both engines is kept once, in `migrations/shared`;
//! what differs (the events table and its triggers, the checkpoints; functions only
//! PostgreSQL has) is in `migrations/sqlite` and `migrations/postgres`. Each engine's list is
//! both directories embedded by `sqlx::migrate!` (which checksums each file as it embeds it)
//! and merged in version order, so a version is either shared or engine-specific, never both.
//!
//! A migration is never edited once it has shipped: sqlx refuses to run against a database
//! whose recorded checksum of an applied migration differs from the embedded one. Moving a
//! file between these directories changes nothing sqlx records (its checksum is of the
//! text, its description of the file name); `tests/it/migrations.rs` holds every shipped
//! checksum and opens a database migrated as an earlier release left it.

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::migrate::{Migration, Migrator};

/// The migrations of the engine named `engine` (`"sqlite"` or `"postgres"`).
pub fn for_engine(engine: &str) -> Option<&'static Migrator> {
    match engine {
        "sqlite" => Some(&SQLITE),
        "postgres" => Some(&POSTGRES),
        _ => None,
    }
}

/// The embedded store's migrations.
pub static SQLITE: LazyLock<Migrator> = LazyLock::new(|| {
    merged(
        sqlx::migrate!("../migrations/shared"),
        sqlx::migrate!("../migrations/sqlite"),
    )
});

/// The PostgreSQL store's migrations.
pub static POSTGRES: LazyLock<Migrator> = LazyLock::new(|| {
    merged(
        sqlx::migrate!("../migrations/shared"),
        sqlx::migrate!("../migrations/postgres"),
    )
});

/// `shared` and `engine`'s migrations as one list in version order. A version in both is a
/// mistake in the directories, caught by the tests before anything runs.
fn merged(shared: Migrator, engine: Migrator) -> Migrator {
    let mut migrations: Vec<Migration> = shared.iter().chain(engine.iter()).cloned().collect();
    migrations.sort_by_key(|migration| migration.version);
    Migrator {
        migrations: Cow::Owned(migrations),
        ..engine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_engine_has_each_version_once_in_order() {
        for migrator in [&*SQLITE, &*POSTGRES] {
            let versions: Vec<i64> = migrator.iter().map(|migration| migration.version).collect();
            assert!(
                versions.windows(2).all(|pair| pair[0] < pair[1]),
                "{versions:?}"
            );
        }
    }

    #[test]
    fn the_engines_differ_only_in_their_own_migrations() {
        let shared = sqlx::migrate!("../migrations/shared");
        for version in shared.iter().map(|migration| migration.version) {
            let sqlite = SQLITE.iter().find(|m| m.version == version).unwrap();
            let postgres = POSTGRES.iter().find(|m| m.version == version).unwrap();
            assert_eq!(sqlite.checksum, postgres.checksum, "{version}");
        }
    }
}
