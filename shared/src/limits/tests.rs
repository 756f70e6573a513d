use std::collections::BTreeSet;

use super::*;

/// Paths of every leaf in a nested JSON object.
fn json_paths(value: &Value, leaf_is_object: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Value::Object(groups) = value else {
        return out;
    };
    for (group, fields) in groups {
        let Value::Object(fields) = fields else {
            continue;
        };
        for (field, leaf) in fields {
            assert_eq!(leaf.is_object(), leaf_is_object, "{group}.{field}");
            out.insert(format!("{group}.{field}"));
        }
    }
    out
}

fn schema_paths() -> BTreeSet<String> {
    SCHEMA.iter().map(Leaf::path).collect()
}

const MACHINES: [(u64, u64); 7] = [
    (64 * MIB, 1),
    (512 * MIB, 1),
    (GIB, 2),
    (4 * GIB, 4),
    (16 * GIB, 8),
    (64 * GIB, 32),
    (1024 * GIB, 256),
];

#[test]
fn every_field_has_a_schema_leaf_and_back() {
    let limits = Limits::defaults(&Probe::fixed(GIB, 2));
    let json = serde_json::to_value(&limits).expect("limits serialize");
    assert_eq!(json_paths(&json, false), schema_paths());
    assert_eq!(
        json_paths(&schema_json(&Probe::fixed(GIB, 2)), true),
        schema_paths()
    );
    assert_eq!(limits.values().len(), SCHEMA.len());
    let groups: BTreeSet<&str> = SCHEMA.iter().map(|l| l.group).collect();
    assert_eq!(
        groups,
        ["capacity", "hardware", "net", "runtime", "storage"].into()
    );
}

#[test]
fn every_default_lies_in_its_range_on_every_machine() {
    for (ram, cores) in MACHINES {
        let probe = Probe::fixed(ram, cores);
        let limits = Limits::defaults(&probe);
        for key in LimitKey::all() {
            let leaf = key.leaf();
            let value = limits.get(key);
            if let Some(r) = leaf.range {
                assert!(
                    (r.min..=r.max).contains(&value),
                    "{key} = {value} outside {r:?} on {ram} bytes, {cores} cores"
                );
                assert!(r.min <= r.max, "{key}");
            }
        }
    }
}

#[test]
fn ranges_are_exactly_on_writable_leaves() {
    for leaf in SCHEMA {
        assert_eq!(leaf.range.is_none(), leaf.read_only, "{}", leaf.path());
        if leaf.read_only {
            assert_eq!(leaf.default_source(), Source::Probe, "{}", leaf.path());
        }
        assert!(
            !leaf.label.is_empty() && leaf.desc.ends_with('.'),
            "{}",
            leaf.path()
        );
    }
}

#[test]
fn defaults_scale_with_cores() {
    // (cores, sf, users, writes, net.concurrency)
    let table = [
        (1, 1, 50, 100, 20),
        (2, 2, 100, 125, 20),
        (4, 4, 200, 175, 40),
        (8, 6, 300, 225, 60),
        (32, 18, 900, 525, 100),
    ];
    for (cores, sf, users, writes, concurrency) in table {
        assert_eq!(scale_factor(cores), sf, "sf at {cores}");
        let l = Limits::defaults(&Probe::fixed(8 * GIB, cores));
        assert_eq!(l.hardware.cpu_cores, cores);
        assert_eq!(l.capacity.users, users, "users at {cores}");
        assert_eq!(l.capacity.users_max, 2 * users, "users_max at {cores}");
        assert_eq!(l.capacity.reads, 200 * sf, "reads at {cores}");
        assert_eq!(l.capacity.writes, writes, "writes at {cores}");
        assert_eq!(l.capacity.mixed, 150 * sf, "mixed at {cores}");
        assert_eq!(l.net.concurrency, concurrency, "concurrency at {cores}");
        // Fixed defaults do not move with the machine.
        assert_eq!(l.net.max_calls, 5);
        assert_eq!(l.runtime.exec_timeout_ms, 5000);
        assert_eq!(l.runtime.max_memory, 50 * MIB);
        assert_eq!(l.capacity.max_requests, 500);
    }
}

#[test]
fn storage_defaults_follow_ram() {
    let small = Limits::defaults(&Probe::fixed(64 * MIB, 1));
    assert_eq!(small.storage.max_vfs, 16 * MIB);
    assert_eq!(small.storage.max_upload, 10 * MIB, "RAM/10 below the floor");
    let fallback = Limits::defaults(&Probe::fixed(FALLBACK_RAM, 1));
    assert_eq!(fallback.storage.max_vfs, 128 * MIB);
    assert_eq!(fallback.storage.max_upload, 512 * MIB / 10);
    let big = Limits::defaults(&Probe::fixed(16 * GIB, 8));
    assert_eq!(big.storage.max_vfs, GIB);
    assert_eq!(big.storage.max_upload, 100 * MIB);
    let mid = Limits::defaults(&Probe::fixed(500 * MIB, 2));
    assert_eq!(mid.storage.max_upload, 50 * MIB);
    // RAM/4 below the range minimum is clamped up to it.
    let tiny = Limits::defaults(&Probe::fixed(16 * MIB, 1));
    assert_eq!(tiny.storage.max_vfs, 10 * MIB);
}

#[test]
fn validation_names_the_problem() {
    let key = LimitKey::parse("net.max_calls").expect("exists");
    assert_eq!(key.leaf().validate("10"), Ok(10));
    assert!(matches!(
        key.leaf().validate("0"),
        Err(LimitError::OutOfRange { .. })
    ));
    let msg = key.leaf().validate("21").unwrap_err().to_string();
    assert!(msg.contains("between 1 and 20"), "{msg}");
    assert!(matches!(
        key.leaf().validate("ten"),
        Err(LimitError::WrongType { .. })
    ));

    let cores = LimitKey::parse("hardware.cpu_cores").expect("exists");
    assert!(matches!(
        cores.leaf().validate("3"),
        Err(LimitError::ReadOnly { .. })
    ));

    let mem = LimitKey::parse("runtime.max_memory").expect("exists");
    assert_eq!(mem.leaf().validate("64MiB"), Ok(64 * MIB));
    let msg = mem.leaf().validate("512MiB").unwrap_err().to_string();
    assert!(msg.contains("1 MiB and 256 MiB"), "{msg}");
    let t = LimitKey::parse("runtime.exec_timeout_ms").expect("exists");
    assert_eq!(t.leaf().validate("5s"), Ok(5000));

    let err = LimitKey::parse("net.max_call").unwrap_err().to_string();
    assert!(err.contains("max_calls"), "{err}");
    let err = LimitKey::parse("nope.x").unwrap_err().to_string();
    assert!(err.contains("groups are hardware, storage"), "{err}");
}

#[test]
fn overrides_apply_and_stale_ones_are_ignored() {
    let probe = Probe::fixed(GIB, 2);
    let overrides = [
        Override {
            path: "net.max_calls".into(),
            value: 10,
        },
        Override {
            path: "net.max_calls_old".into(),
            value: 3,
        },
        Override {
            path: "runtime.lanes".into(),
            value: 1000,
        },
        Override {
            path: "hardware.cpu_cores".into(),
            value: 64,
        },
    ];
    let r = Limits::resolve(&probe, &overrides);
    assert_eq!(r.limits.net.max_calls, 10);
    assert_eq!(r.limits.runtime.lanes, 8);
    assert_eq!(r.limits.hardware.cpu_cores, 2);
    assert_eq!(r.ignored.len(), 3);
    let key = LimitKey::parse("net.max_calls").expect("exists");
    assert_eq!(r.sources[key.0], Source::Override);
    let lanes = LimitKey::parse("runtime.lanes").expect("exists");
    assert_eq!(r.sources[lanes.0], Source::Default);
    let vfs = LimitKey::parse("storage.max_vfs").expect("exists");
    assert_eq!(r.sources[vfs.0], Source::Probe);
}

#[test]
fn schema_leaves_have_the_spec_shape() {
    let schema = schema_json(&Probe::fixed(GIB, 2));
    let leaf = &schema["net"]["max_calls"];
    assert_eq!(leaf["min"], 1);
    assert_eq!(leaf["max"], 20);
    assert_eq!(leaf["default"], 5);
    assert_eq!(leaf["read_only"], false);
    assert!(leaf.get("unit").is_none());
    let ram = &schema["hardware"]["total_ram"];
    assert_eq!(ram["unit"], "bytes");
    assert!(ram.get("min").is_none() && ram.get("max").is_none());
    assert_eq!(ram["read_only"], true);
}

#[test]
fn docs_limits_md_matches_the_schema() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/limits.md");
    let want = render_markdown();
    if std::env::var_os("FAZT_BLESS").is_some() {
        std::fs::write(&path, &want).expect("write docs/limits.md");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/limits.md is out of date; run `FAZT_BLESS=1 cargo test -p fazt-shared` and commit it"
    );
    for leaf in SCHEMA {
        assert!(
            have.contains(&format!("`{}`", leaf.field)),
            "{}",
            leaf.path()
        );
    }
}
