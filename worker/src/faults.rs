//! Faults for crash-recovery tests (SPEC §10), off unless the worker's
//! environment has `FAZT_TEST_CRASH`. Only whoever starts fazt sets its
//! environment; nothing an app does can, so no app can reach these.
//! Read once at worker start and announced loudly in the log.
//!
//! `FAZT_TEST_CRASH` is a comma-separated list of:
//! - `app:<name>`: a job of app `<name>` aborts the worker (SIGABRT) once
//!   its lane has started it, as a crash inside the engine would;
//! - `start:<slot>`: the worker of slot `<slot>` exits with code 3 at start.

/// The variable read.
pub const VAR: &str = "FAZT_TEST_CRASH";

/// The faults asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Faults {
    crash_apps: Vec<String>,
    fail_start: Vec<u32>,
}

impl Faults {
    /// The faults in this process's environment.
    pub fn from_env() -> Faults {
        let faults = Faults::parse(&std::env::var(VAR).unwrap_or_default());
        if faults != Faults::default() {
            tracing::warn!(
                ?faults,
                "{VAR} is set: this worker crashes on purpose (tests only)"
            );
        }
        faults
    }

    /// Parses the variable's value; unknown entries are ignored.
    pub fn parse(spec: &str) -> Faults {
        let mut f = Faults::default();
        for entry in spec.split(',').map(str::trim) {
            if let Some(app) = entry.strip_prefix("app:") {
                f.crash_apps.push(app.to_string());
            } else if let Some(slot) = entry.strip_prefix("start:").and_then(|s| s.parse().ok()) {
                f.fail_start.push(slot);
            }
        }
        f
    }

    /// Whether a job of `app` crashes the worker.
    pub fn crashes(&self, app: &str) -> bool {
        self.crash_apps.iter().any(|a| a == app)
    }

    /// Whether the worker of `slot` fails at start.
    pub fn fails_start(&self, slot: u32) -> bool {
        self.fail_start.contains(&slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_apps_and_slots() {
        let f = Faults::parse("app:boom, start:2,junk,start:x");
        assert!(f.crashes("boom") && !f.crashes("other"));
        assert!(f.fails_start(2) && !f.fails_start(0));
        assert_eq!(Faults::parse(""), Faults::default());
    }
}
