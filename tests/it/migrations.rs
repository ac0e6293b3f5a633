//! Migrations across releases: a database an earlier release migrated opens with this one.
//!
//! Each engine's list is assembled from `migrations/shared` and the engine's own directory
//! (`adapters::store::migrations`). sqlx refuses a database whose recorded checksum of an
//! applied migration is not the embedded one, so every shipped checksum is held here as the
//! earlier releases recorded it.

use std::borrow::Cow;

use sqlx::migrate::{Migration, Migrator};

use crate::helpers::{Engine, TestDb};

/// The SHA-384 each migration was recorded with by the releases before `migrations/shared`
/// (`sha384sum` of each file as it shipped in `migrations/sqlite`).
const SHIPPED_SQLITE: &[(i64, &str)] = &[
    (1, "61c17217d541e39f0aaf33e85c531f6e27daaec129a382e338d157a18eec7ffeec52af2c553aea3d187e1432229e49fc"),
    (2, "65a8e305258704aed2486eb53ebc7bb87f5bfc5a64b3caad4170d8e00859324781a2a7d7bcc3899b084137b0d66720df"),
    (3, "99f53d08869e24a98aaf450718f5fedeb8d0e325cb0855db194f4edbd0568a038097a7c69d34f360284c1fc46764e14f"),
    (4, "aba7e8b4ccdbc5b76451267d4524dbf50869a3a43873dddf883357c4ca28998a4454af311f78906f5739b1f904f41941"),
    (5, "7f8b89df8b4c16f5bd36b010fb2646d716c19c854c0cf2dedb2686a0e48bbf3f7d5ada2a3b68a0ac5ecae02e6f298bb9"),
    (6, "3380bfab4202faa18a4f0ac65b3d74e083a3ed7f010f56c05ebae0938045516068144dde1837ccb3288bdc457e419eee"),
    (7, "d20476a1ec1eb53eff9f5ee116966978eb9d348ea2c9a66a7e6a72f9bcad2391a842e1c1d56514b78d5e7ef08d999402"),
    (8, "c4c30fe20c365e64140c2e4db18887b914639ea4ec8399c5589a3249897a522547e99d05478d49d6ee0d76c9af923f9d"),
    (9, "14414a4a6ad467fd585bc536df32577937d2530647fdd7a45788507529d13117f9e5b53401977850b1dcabc68b3a1cdb"),
    (10, "f8919b55d9ab2f553e7788f34eb48b7caae759431f713c0afd4dffb6d99d2fc4bd9d2ce42f9b1439fd45ee584a295de6"),
    (12, "de8fff31887c1a7fc375cd6e38a00bb4cc858301a5ccdd0d291685be1513bd7bd03ca529966a8b8b78196d8c979c3649"),
];

/// As [`SHIPPED_SQLITE`], for PostgreSQL (`migrations/postgres`): 1 and 2 are its own.
const SHIPPED_POSTGRES: &[(i64, &str)] = &[
    (1, "0b9375e883e6f7350974775ee4cd02c7b2395c828ba2b7611db462850f0a3219b2d3610df8b8e8fe08950c58d1c4086d"),
    (2, "e05d601fc7744697d727126f71ef14f98c0681b5af57b64539ec9a817ca19144506e15fe4cb4cb3f1fc2dfbec8a33299"),
    (3, "99f53d08869e24a98aaf450718f5fedeb8d0e325cb0855db194f4edbd0568a038097a7c69d34f360284c1fc46764e14f"),
    (4, "aba7e8b4ccdbc5b76451267d4524dbf50869a3a43873dddf883357c4ca28998a4454af311f78906f5739b1f904f41941"),
    (5, "7f8b89df8b4c16f5bd36b010fb2646d716c19c854c0cf2dedb2686a0e48bbf3f7d5ada2a3b68a0ac5ecae02e6f298bb9"),
    (6, "3380bfab4202faa18a4f0ac65b3d74e083a3ed7f010f56c05ebae0938045516068144dde1837ccb3288bdc457e419eee"),
    (7, "d20476a1ec1eb53eff9f5ee116966978eb9d348ea2c9a66a7e6a72f9bcad2391a842e1c1d56514b78d5e7ef08d999402"),
    (8, "c4c30fe20c365e64140c2e4db18887b914639ea4ec8399c5589a3249897a522547e99d05478d49d6ee0d76c9af923f9d"),
    (9, "14414a4a6ad467fd585bc536df32577937d2530647fdd7a45788507529d13117f9e5b53401977850b1dcabc68b3a1cdb"),
    (10, "f8919b55d9ab2f553e7788f34eb48b7caae759431f713c0afd4dffb6d99d2fc4bd9d2ce42f9b1439fd45ee584a295de6"),
    (12, "de8fff31887c1a7fc375cd6e38a00bb4cc858301a5ccdd0d291685be1513bd7bd03ca529966a8b8b78196d8c979c3649"),
];

fn shipped(engine: Engine) -> (&'static str, &'static [(i64, &'static str)]) {
    match engine {
        Engine::Sqlite => ("sqlite", SHIPPED_SQLITE),
        Engine::Postgres => ("postgres", SHIPPED_POSTGRES),
    }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
        .collect()
}

/// What an earlier release ran: the migrations it shipped, recorded with its checksums.
fn earlier_release(engine: Engine) -> Migrator {
    let (name, shipped) = shipped(engine);
    let current = adapters::store::migrations::for_engine(name).expect("an engine");
    let migrations: Vec<Migration> = shipped
        .iter()
        .map(|(version, checksum)| {
            let migration = current
                .iter()
                .find(|migration| migration.version == *version)
                .unwrap_or_else(|| panic!("shipped migration {version} is gone"));
            Migration {
                checksum: Cow::Owned(unhex(checksum)),
                ..migration.clone()
            }
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_database_an_earlier_release_migrated_opens_and_migrates_on() {
    a_database_an_earlier_release_migrated_opens_and_migrates_on(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_database_an_earlier_release_migrated_opens_and_migrates_on() {
    a_database_an_earlier_release_migrated_opens_and_migrates_on(Engine::Postgres).await;
}

async fn a_database_an_earlier_release_migrated_opens_and_migrates_on(engine: Engine) {
    let Some(db) = TestDb::unmigrated(engine).await else {
        return;
    };
    match engine {
        Engine::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            earlier_release(engine).run(&pool).await.unwrap();
            pool.close().await;
        }
        Engine::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            earlier_release(engine).run(&pool).await.unwrap();
            pool.close().await;
        }
    }
    db.store
        .migrate()
        .await
        .expect("this release migrates what an earlier one left");
    assert!(db.store.is_migrated().await.unwrap());
    // Whatever this release applied, the earlier release's records stand as they were.
    let (name, earlier) = shipped(engine);
    let recorded = db
        .store
        .sql()
        .fetch_all(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let recorded: Vec<i64> = recorded.iter().map(|row| row.i64(0).unwrap()).collect();
    let current = adapters::store::migrations::for_engine(name).unwrap();
    let expected: Vec<i64> = current.iter().map(|migration| migration.version).collect();
    assert_eq!(recorded, expected);
    assert!(earlier
        .iter()
        .all(|(version, _)| recorded.contains(version)));
    db.cleanup().await;
}
