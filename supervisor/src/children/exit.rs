//! Why a child incarnation ended.

use std::fmt;
use std::process::ExitStatus;

use nix::sys::signal::Signal;

/// How a child ended: its own exit, or what the supervisor decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it (SIGKILL from `kill -9`, the OOM killer, …).
    Signal(Signal),
    /// A signal number nix does not name.
    UnknownSignal(i32),
    /// It missed its heartbeats (wedged in native code) and was killed.
    Heartbeat,
    /// It broke the protocol and was killed.
    Protocol(String),
    /// It did not connect back or report ready in time and was killed.
    NotReady,
    /// It could not be started.
    SpawnFailed(String),
    /// It did not finish its work within the drain time and was killed.
    Drain,
    /// The supervisor stopped before it was ready.
    StoppedStarting,
    /// A reload replaced it (it finishes its jobs and exits in the
    /// background).
    Replaced,
    /// Its status could not be read.
    Unknown(String),
}

impl Exit {
    /// The exit of a reaped process.
    pub fn from_status(status: std::io::Result<ExitStatus>) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(sig)) => match Signal::try_from(sig) {
                    Ok(signal) => Exit::Signal(signal),
                    Err(_) => Exit::UnknownSignal(sig),
                },
                _ => Exit::Unknown("no code and no signal".into()),
            },
            Err(e) => Exit::Unknown(format!("wait failed: {e}")),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit {code}"),
            Exit::Signal(s) => write!(f, "signal {} ({})", *s as i32, s.as_str()),
            Exit::UnknownSignal(n) => write!(f, "signal {n}"),
            Exit::Heartbeat => f.write_str("killed: missed heartbeats"),
            Exit::Protocol(e) => write!(f, "killed: protocol error: {e}"),
            Exit::NotReady => f.write_str("killed: not ready in time"),
            Exit::SpawnFailed(e) => write!(f, "spawn failed: {e}"),
            Exit::Drain => f.write_str("killed after the drain timeout"),
            Exit::StoppedStarting => f.write_str("stopped while starting"),
            Exit::Replaced => f.write_str("replaced by a reload"),
            Exit::Unknown(e) => write!(f, "unknown ({e})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn statuses_read_as_codes_and_named_signals() {
        assert_eq!(
            Exit::from_status(Ok(ExitStatus::from_raw(3 << 8))),
            Exit::Code(3)
        );
        let killed = Exit::from_status(Ok(ExitStatus::from_raw(9)));
        assert_eq!(killed, Exit::Signal(Signal::SIGKILL));
        assert_eq!(killed.to_string(), "signal 9 (SIGKILL)");
        assert_eq!(Exit::Heartbeat.to_string(), "killed: missed heartbeats");
    }
}
