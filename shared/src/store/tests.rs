use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::limits::LimitKey;

fn schema_snapshot(conn: &Connection) -> Vec<(String, String)> {
    let mut stmt = conn
        .prepare("SELECT name, COALESCE(sql, '') FROM sqlite_master ORDER BY name")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

#[test]
fn open_creates_private_dir_and_file_and_migrates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::new(tmp.path().join("data"));
    let store = Store::open(&dir, 4).expect("open");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&dir.db_path()), 0o600);
    let conn = store.conn().expect("conn");
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal");
    assert_eq!(journal, "wal");
    let fk: bool = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .expect("fk");
    assert!(fk);
    for table in [
        "apps",
        "files",
        "app_kv",
        "net_allowlist",
        "net_secrets",
        "net_log",
        "limits_override",
        "config_rev",
        "settings",
    ] {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(n, 1, "{table}");
    }
}

#[test]
fn migrating_twice_is_a_no_op() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::new(tmp.path());
    let first = {
        let store = Store::open(&dir, 2).expect("open");
        let conn = store.conn().expect("conn");
        conn.execute(
            "INSERT INTO apps(name, created_at, updated_at) VALUES ('a', 1, 1)",
            [],
        )
        .expect("insert");
        schema_snapshot(&conn)
    };
    let store = Store::open(&dir, 2).expect("reopen");
    let mut conn = store.conn().expect("conn");
    assert_eq!(migrate(&mut conn).expect("migrate"), SCHEMA_VERSION);
    assert_eq!(schema_snapshot(&conn), first);
    let apps: i64 = conn
        .query_row("SELECT count(*) FROM apps", [], |r| r.get(0))
        .expect("count");
    assert_eq!(apps, 1, "data survives re-migration");
}

#[test]
fn a_database_from_a_newer_fazt_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::new(tmp.path());
    drop(Store::open(&dir, 2).expect("open"));
    let conn = Connection::open(dir.db_path()).expect("raw open");
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump");
    drop(conn);
    let err = Store::open(&dir, 2).err().expect("refused");
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    assert!(err.to_string().contains("newer than this fazt"), "{err}");
}

#[test]
fn uniqueness_holds_for_global_rows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&DataDir::new(tmp.path()), 2).expect("open");
    let conn = store.conn().expect("conn");
    let add = |app: Option<i64>| {
        conn.execute(
            "INSERT INTO net_allowlist(app_id, domain, created_at, updated_at) VALUES (?1, 'api.example.com', 0, 0)",
            [app],
        )
    };
    add(None).expect("first global");
    assert!(
        add(None).is_err(),
        "second global entry for the same domain"
    );
    conn.execute(
        "INSERT INTO apps(id, name, created_at, updated_at) VALUES (7, 'a', 1, 1)",
        [],
    )
    .expect("app");
    add(Some(7)).expect("per-app entry beside the global one");
    assert!(add(Some(7)).is_err());

    let secret = |app: Option<i64>| {
        conn.execute(
            "INSERT INTO net_secrets(app_id, name, value, kind, domain, created_at, updated_at) VALUES (?1, 'TOKEN', 'v', 'bearer', 'x.com', 0, 0)",
            [app],
        )
    };
    secret(None).expect("global secret");
    assert!(secret(None).is_err(), "duplicate global secret");
    secret(Some(7)).expect("app secret");
}

#[test]
fn overrides_round_trip_and_bump_the_revision() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&DataDir::new(tmp.path()), 2).expect("open");
    let mut conn = store.conn().expect("conn");
    let key = LimitKey::parse("net.max_calls").expect("key");
    assert_eq!(config_rev(&conn, overrides::CONFIG_KIND).expect("rev"), 0);
    overrides::set(&mut conn, key, 10).expect("set");
    overrides::set(&mut conn, key, 12).expect("set again");
    let list = overrides::list(&conn).expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].path.as_str(), list[0].value),
        ("net.max_calls", 12)
    );
    assert_eq!(config_rev(&conn, overrides::CONFIG_KIND).expect("rev"), 2);
    assert!(overrides::reset(&mut conn, key).expect("reset"));
    assert!(!overrides::reset(&mut conn, key).expect("reset again"));
    assert!(overrides::list(&conn).expect("list").is_empty());
}

#[test]
fn settings_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&DataDir::new(tmp.path()), 2).expect("open");
    let conn = store.conn().expect("conn");
    assert_eq!(settings::get(&conn, "k").expect("get"), None);
    settings::set(&conn, "k", "1").expect("set");
    settings::set(&conn, "k", "2").expect("set");
    assert_eq!(
        settings::get(&conn, "k").expect("get").as_deref(),
        Some("2")
    );
}
