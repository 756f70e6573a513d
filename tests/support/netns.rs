//! Tests that must not reach a real network (SPEC §6 tests, browser
//! tests) run inside a private network namespace with only `lo`: the test
//! binary runs itself again under `unshare --net` (we are root in CI),
//! filtered to the one test.

use std::process::Command;

/// Set in the re-run inside the namespace.
const INSIDE: &str = "FAZT_TEST_IN_NETNS";

/// Runs `test` inside a fresh network namespace with only `lo` (this test
/// binary again, filtered to the test). Returns false in the outer process,
/// true inside.
pub fn inside_private_network(test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary");
    let status = Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(INSIDE, "1")
        .status()
        .expect("unshare (util-linux) runs the test in a private network namespace");
    assert!(status.success(), "the test failed inside its namespace");
    false
}

/// Runs a command; it must succeed.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Brings `lo` up (a new namespace starts with it down).
pub fn lo_up() {
    sh(&["ip", "link", "set", "lo", "up"]);
}
