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

mod apps_and_kv {
    use super::super::apps::{self, DeployError, NewFile, SizeLimits};
    use super::super::kv;
    use super::*;
    use crate::app::{AppName, FilePath};

    const LIMITS: SizeLimits = SizeLimits {
        max_file_size: 1000,
        max_site_size: 1500,
        max_vfs: 2000,
    };

    fn file(path: &str, content: &str) -> NewFile {
        NewFile {
            path: FilePath::parse(path).expect("path"),
            content: content.as_bytes().to_vec(),
        }
    }

    const Q: kv::KvQuota = kv::KvQuota {
        max_bytes: 1 << 20,
        max_keys: 1000,
        max_value: 1 << 16,
    };

    fn public(p: &str) -> crate::PublicPath {
        crate::PublicPath::new(FilePath::parse(p).expect("path")).expect("public")
    }

    fn name(n: &str) -> AppName {
        AppName::parse(n).expect("name")
    }

    fn store() -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&DataDir::new(tmp.path()), 2).expect("open");
        (tmp, store)
    }

    #[test]
    fn deploy_replaces_files_and_bumps_the_version() {
        let (_t, store) = store();
        let mut conn = store.conn().expect("conn");
        let a = name("hello");
        let first = apps::deploy(
            &mut conn,
            &a,
            &[file("index.html", "<h1>1</h1>"), file("api/main.js", "1")],
            &LIMITS,
        )
        .expect("deploy");
        assert_eq!((first.version, first.files), (1, 2));
        let second = apps::deploy(&mut conn, &a, &[file("index.html", "<h1>2</h1>")], &LIMITS)
            .expect("redeploy");
        assert_eq!((second.id, second.version), (first.id, 2));
        let old: i64 = conn
            .query_row(
                "SELECT count(*) FROM files WHERE path = 'api/main.js'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(old, 0, "the old version's files are gone");
        let index = apps::file(&conn, first.id, &public("index.html"), u64::MAX)
            .expect("query")
            .expect("exists");
        assert_eq!(index.content.as_deref(), Some(&b"<h1>2</h1>"[..]));
        assert_eq!(index.mime, "text/html; charset=utf-8");
        assert_eq!(index.hash, apps::content_hash(b"<h1>2</h1>"));
        let listed = apps::list(&conn).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].files, listed[0].bytes), (1, 10));
        assert!(!listed[0].has_api);
        assert_eq!(config_rev(&conn, apps::CONFIG_KIND).expect("rev"), 2);
    }

    #[test]
    fn refused_deploys_write_nothing() {
        let (_t, store) = store();
        let mut conn = store.conn().expect("conn");
        let a = name("a");
        apps::deploy(&mut conn, &a, &[file("x", "old")], &LIMITS).expect("first");
        let big = "x".repeat(1001);
        let cases: Vec<(Vec<NewFile>, &str)> = vec![
            (vec![], "nothing to deploy"),
            (vec![file("x", "1"), file("x", "2")], "appears twice"),
            (vec![file("x", &big)], "max_file_size"),
            (
                vec![file("x", &"x".repeat(900)), file("y", &"y".repeat(900))],
                "max_site_size",
            ),
        ];
        for (files, want) in cases {
            let err = apps::deploy(&mut conn, &a, &files, &LIMITS).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
        // The whole store is bounded too.
        let b = name("b");
        apps::deploy(&mut conn, &b, &[file("x", &"x".repeat(999))], &LIMITS).expect("b");
        let err = apps::deploy(
            &mut conn,
            &name("c"),
            &[file("x", &"x".repeat(999))],
            &LIMITS,
        )
        .unwrap_err();
        assert!(matches!(err, DeployError::StoreFull { .. }), "{err}");
        assert!(apps::lookup(&conn, &name("c")).expect("lookup").is_none());
        let a_row = apps::lookup(&conn, &a).expect("lookup").expect("a");
        assert_eq!(a_row.version, 1);
        let x = apps::file(&conn, a_row.id, &public("x"), u64::MAX)
            .expect("q")
            .expect("x");
        assert_eq!(x.content.as_deref(), Some(&b"old"[..]));
    }

    #[test]
    fn bundle_holds_only_api_js_of_the_version_read() {
        let (_t, store) = store();
        let mut conn = store.conn().expect("conn");
        let d = apps::deploy(
            &mut conn,
            &name("a"),
            &[
                file("api/main.js", "main"),
                file("api/lib/x.js", "x"),
                file("api/readme.md", "no"),
                file("apix.js", "no"),
                file("index.js", "no"),
            ],
            &LIMITS,
        )
        .expect("deploy");
        let b = apps::bundle(&mut conn, d.id).expect("q").expect("exists");
        let mut paths: Vec<&str> = b.files.iter().map(|f| f.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(paths, ["api/lib/x.js", "api/main.js"]);
        assert_eq!(b.version, 1);
        assert!(apps::bundle(&mut conn, 999).expect("q").is_none());
    }

    #[test]
    fn large_files_are_read_in_chunks_until_a_redeploy_replaces_them() {
        let (_t, store) = store();
        let mut conn = store.conn().expect("conn");
        let content: String = (0..1000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let d = apps::deploy(&mut conn, &name("a"), &[file("big.txt", &content)], &LIMITS)
            .expect("deploy");
        let meta = apps::file(&conn, d.id, &public("big.txt"), 100)
            .expect("q")
            .expect("exists");
        assert_eq!(
            (meta.size, meta.content.is_none()),
            (1000, true),
            "over inline_max"
        );
        let mut got = Vec::new();
        let mut buf = [0u8; 300];
        loop {
            let n = apps::read_chunk(&conn, meta.id, got.len() as u64, &mut buf)
                .expect("read")
                .expect("still there");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, content.as_bytes());
        apps::deploy(&mut conn, &name("a"), &[file("big.txt", "new")], &LIMITS).expect("redeploy");
        assert_eq!(
            apps::read_chunk(&conn, meta.id, 0, &mut buf).expect("read"),
            None
        );
        let again = apps::file(&conn, d.id, &public("big.txt"), 100)
            .expect("q")
            .expect("file");
        assert_ne!(again.id, meta.id, "file row ids are never reused");
    }

    #[test]
    fn app_ids_are_never_reused() {
        // Workers and the front door cache code and files by app id and
        // version; a reused id would serve a removed app's code as a new app.
        let (_t, store) = store();
        let mut conn = store.conn().expect("conn");
        let mut seen = std::collections::HashSet::new();
        for round in 0..3 {
            for n in ["x", "y"] {
                let d =
                    apps::deploy(&mut conn, &name(n), &[file("f", n)], &LIMITS).expect("deploy");
                assert!(seen.insert(d.id), "round {round}: id {} reused", d.id);
                assert_eq!(d.version, 1);
                // A redeploy keeps the id and bumps the version.
                let again =
                    apps::deploy(&mut conn, &name(n), &[file("f", n)], &LIMITS).expect("redeploy");
                assert_eq!((again.id, again.version), (d.id, 2));
                assert!(apps::remove(&mut conn, &name(n)).expect("remove"));
            }
        }
        // Even across a reopen of the database.
        drop(conn);
        let dir = _t.path().to_path_buf();
        drop(store);
        let store = Store::open(&DataDir::new(&dir), 2).expect("reopen");
        let mut conn = store.conn().expect("conn");
        let d = apps::deploy(&mut conn, &name("z"), &[file("f", "z")], &LIMITS).expect("deploy");
        assert!(seen.insert(d.id), "id {} reused after a reopen", d.id);
    }

    #[test]
    fn remove_cascades_to_files_and_kv() {
        let (_t, store) = store();
        let mut conn = store.conn().expect("conn");
        let a = name("a");
        let d = apps::deploy(&mut conn, &a, &[file("x", "1")], &LIMITS).expect("deploy");
        kv::set(&mut conn, d.id, "k", "1", None, &Q).expect("kv");
        assert!(apps::remove(&mut conn, &a).expect("remove"));
        assert!(!apps::remove(&mut conn, &a).expect("remove again"));
        let left: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM files) + (SELECT count(*) FROM app_kv)",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(left, 0);
    }

    #[test]
    fn kv_is_scoped_expires_and_lists_by_prefix() {
        let (_t, store) = store();
        let mut conn = store.conn().expect("conn");
        let a = apps::deploy(&mut conn, &name("a"), &[file("x", "1")], &LIMITS)
            .expect("a")
            .id;
        let b = apps::deploy(&mut conn, &name("b"), &[file("x", "1")], &LIMITS)
            .expect("b")
            .id;
        kv::set(&mut conn, a, "user:1", "{\"n\":1}", None, &Q).expect("set");
        kv::set(&mut conn, a, "user:2", "2", Some(60_000), &Q).expect("set");
        kv::set(&mut conn, a, "user%", "3", None, &Q).expect("set");
        kv::set(&mut conn, a, "zzz", "4", None, &Q).expect("set");
        kv::set(&mut conn, a, "gone", "5", Some(0), &Q).expect("set");
        assert_eq!(
            kv::get(&conn, a, "user:1").expect("get").as_deref(),
            Some("{\"n\":1}")
        );
        assert_eq!(
            kv::get(&conn, b, "user:1").expect("get"),
            None,
            "scoped by app"
        );
        assert_eq!(kv::get(&conn, a, "gone").expect("get"), None, "expired");
        let keys: Vec<String> = kv::list(&conn, a, "user:", 100, u64::MAX)
            .expect("list")
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["user:1", "user:2"]);
        assert_eq!(kv::list(&conn, a, "", 2, u64::MAX).expect("list").len(), 2);
        assert!(kv::list(&conn, a, "user:", 10, u64::MAX).expect("list")[1]
            .expires_at
            .is_some());
        assert!(kv::delete(&conn, a, "zzz").expect("delete"));
        assert!(!kv::delete(&conn, a, "zzz").expect("delete again"));
        assert!(!kv::delete(&conn, a, "gone").expect("expired is not live"));
        assert_eq!(kv::purge_expired(&conn).expect("purge"), 1);
        assert!(kv::set(&mut conn, a, "", "1", None, &Q).is_err());
        assert!(kv::set(&mut conn, a, &"k".repeat(513), "1", None, &Q).is_err());
        assert!(kv::set(
            &mut conn,
            a,
            "k",
            &"v".repeat(Q.max_value as usize + 1),
            None,
            &Q
        )
        .is_err());
    }

    #[test]
    fn kv_quotas_hold_in_one_transaction_and_count_bytes_not_characters() {
        let (_t, store) = store();
        let mut conn = store.conn().expect("conn");
        let a = apps::deploy(&mut conn, &name("a"), &[file("x", "1")], &LIMITS)
            .expect("a")
            .id;
        let q = kv::KvQuota {
            max_bytes: 110,
            max_keys: 3,
            max_value: 60,
        };
        kv::set(&mut conn, a, "k1", &"x".repeat(40), None, &q).expect("first");
        // "é" is two bytes: 30 of them are 60 bytes, the value limit.
        kv::set(&mut conn, a, "k2", &"é".repeat(30), None, &q).expect("second");
        assert_eq!(
            kv::usage(&conn, a).expect("usage"),
            kv::Usage {
                keys: 2,
                bytes: 42 + 62
            }
        );
        let err = kv::set(&mut conn, a, "k3", &"y".repeat(10), None, &q).unwrap_err();
        assert!(matches!(err, kv::KvError::Quota(_)), "{err}");
        assert!(err.to_string().contains("storage.kv_max_bytes"), "{err}");
        assert_eq!(
            kv::get(&conn, a, "k3").expect("get"),
            None,
            "nothing written"
        );
        // Overwriting within the bounds is fine; the usage follows.
        kv::set(&mut conn, a, "k1", "short", None, &q).expect("smaller");
        assert_eq!(kv::usage(&conn, a).expect("usage").bytes, 2 + 5 + 2 + 60);
        kv::set(&mut conn, a, "k3", "1", None, &q).expect("third");
        let err = kv::set(&mut conn, a, "k4", "1", None, &q).unwrap_err();
        assert!(err.to_string().contains("storage.kv_max_keys"), "{err}");
        // Expired keys make room when the quota is hit.
        kv::set(&mut conn, a, "k3", "1", Some(0), &q).expect("expire k3");
        std::thread::sleep(std::time::Duration::from_millis(5));
        kv::set(&mut conn, a, "k4", "1", None, &q).expect("room from the expired key");
        assert!(matches!(
            kv::set(&mut conn, a, "big", &"v".repeat(61), None, &q),
            Err(kv::KvError::TooLarge { .. })
        ));
        // Listing stops at the byte bound.
        assert!(matches!(
            kv::list(&conn, a, "", 100, 10),
            Err(kv::KvError::ListTooLarge(10))
        ));
        // Removing the app forgets its usage.
        apps::remove(&mut conn, &name("a")).expect("remove");
        assert_eq!(kv::usage(&conn, a).expect("usage"), kv::Usage::default());
    }
}

#[test]
fn a_backup_is_written_into_the_private_file_it_created_and_follows_no_link() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&DataDir::new(tmp.path().join("data")), 2).expect("open");
    // An old backup replaced (--force): the same file, never deleted and
    // re-created by SQLite with the umask's mode, is what holds the copy.
    let to = tmp.path().join("backup.db");
    std::fs::write(&to, b"an older backup").expect("write");
    std::fs::set_permissions(&to, Permissions::from_mode(0o644)).expect("chmod");
    let inode = std::fs::metadata(&to).expect("stat").ino();
    let bytes = store.backup_to(&to).expect("backup");
    let meta = std::fs::metadata(&to).expect("stat");
    assert_eq!(meta.ino(), inode, "the file was re-created");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), bytes);
    let copy = Connection::open(&to).expect("open copy");
    let version: u32 = copy
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    // A symlink planted where the backup goes is not followed.
    let target = tmp.path().join("elsewhere");
    let link = tmp.path().join("link.db");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    assert!(store.backup_to(&link).is_err());
    assert!(!target.exists(), "the link was followed");
}

mod allowlist {
    use super::super::apps::{self, NewFile, SizeLimits};
    use super::super::net::{self, Allowed};
    use super::*;
    use crate::app::{AppName, FilePath};
    use crate::net::{Domain, DomainPattern, DomainSettings, Scope};

    fn pattern(p: &str) -> DomainPattern {
        DomainPattern::parse(p).expect("pattern")
    }

    #[test]
    fn entries_are_added_updated_scoped_and_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&DataDir::new(tmp.path()), 2).expect("open");
        let mut conn = store.conn().expect("conn");
        let a = AppName::parse("a").expect("name");
        let file = NewFile {
            path: FilePath::parse("index.html").expect("path"),
            content: b"x".to_vec(),
        };
        let limits = SizeLimits {
            max_file_size: 100,
            max_site_size: 100,
            max_vfs: 100,
        };
        apps::deploy(&mut conn, &a, &[file], &limits).expect("deploy");
        let app = net::scope_of(&conn, Some(&a))
            .expect("scope")
            .expect("exists");
        let missing = AppName::parse("nope").expect("name");
        assert_eq!(net::scope_of(&conn, Some(&missing)).expect("scope"), None);
        let rev = |conn: &Connection| config_rev(conn, net::CONFIG_KIND).expect("rev");

        let none = DomainSettings::default();
        let p = pattern("api.example.com");
        assert_eq!(
            net::allow(&mut conn, &Scope::Global, &p, false, &none).expect("allow"),
            Allowed::Added
        );
        let r1 = rev(&conn);
        // The same global entry again is an update, not a second row.
        let slow = DomainSettings {
            timeout_ms: Some(9000),
            ..none
        };
        assert_eq!(
            net::allow(&mut conn, &Scope::Global, &p, true, &slow).expect("allow"),
            Allowed::Updated
        );
        assert!(rev(&conn) > r1, "a change bumps the revision");
        assert_eq!(
            net::allow(&mut conn, &app, &p, false, &none).expect("allow"),
            Allowed::Added
        );
        net::allow(&mut conn, &app, &pattern("*.example.org"), false, &none).expect("allow");

        let all = net::list(&conn, None).expect("list");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].scope, Scope::Global, "global entries first");
        assert!(all[0].allow_http);
        assert_eq!(all[0].settings.timeout_ms, Some(9000));
        assert_eq!(net::list(&conn, Some(&app)).expect("list").len(), 2);
        assert_eq!(
            net::list(&conn, Some(&Scope::Global)).expect("list").len(),
            1
        );

        let list = net::load(&conn).expect("load");
        let id = app.app_id().expect("id");
        let host = Domain::parse("api.example.com").expect("domain");
        assert_eq!(
            list.lookup(id, &host).map(|e| e.scope.clone()),
            Some(app.clone())
        );
        assert_eq!(list.lookup(id + 1, &host).map(|e| e.allow_http), Some(true));

        assert!(net::remove(&mut conn, &Scope::Global, &p).expect("remove"));
        assert!(!net::remove(&mut conn, &Scope::Global, &p).expect("remove"));
        assert_eq!(net::list(&conn, None).expect("list").len(), 2);
        // Removing the app takes its entries with it.
        apps::remove(&mut conn, &a).expect("remove app");
        assert!(net::list(&conn, None).expect("list").is_empty());
    }
}
