//! Test harness: start the real `fazt` binary on port 0 with a temp data
//! dir, wait for its ready line (never a sleep), talk plain HTTP/1.1 to it,
//! and stop it by PID.

#![allow(dead_code)]

pub mod dns;
pub mod net;
pub mod netns;
pub mod tls;
pub mod upstream;
pub mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::kill;
pub use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// A fresh temporary directory, removed when dropped.
pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fazt")
}

/// Runs a CLI command against `data` and returns its output.
pub fn cli(data: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("FAZT_LOG", "warn")
        .output()
        .expect("run fazt")
}

/// A running `fazt supervise`.
pub struct Fazt {
    child: Option<Child>,
    /// Address of the front door.
    pub addr: SocketAddr,
    /// The data dir.
    pub data: PathBuf,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ready_seen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Bound on start-up, generous for a debug build on a loaded 2-core CI box.
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Fazt {
    /// Starts `fazt supervise` on 127.0.0.1:0 with `data` and extra env,
    /// and waits until it says it is ready.
    pub fn start(data: &Path, env: &[(&str, &str)]) -> Fazt {
        Fazt::start_with(data, env, None)
    }

    /// As [`Fazt::start`], with the open-files limit (soft and hard) set
    /// to `nofile` when given.
    pub fn start_with(data: &Path, env: &[(&str, &str)], nofile: Option<u64>) -> Fazt {
        Fazt::launch(data, env, nofile, true)
    }

    /// Starts `fazt supervise` and waits only until it listens, not until
    /// it is ready (for tests of a supervisor that cannot become ready).
    pub fn start_listening(data: &Path, env: &[(&str, &str)]) -> Fazt {
        Fazt::launch(data, env, None, false)
    }

    fn launch(
        data: &Path,
        env: &[(&str, &str)],
        nofile: Option<u64>,
        wait_for_ready: bool,
    ) -> Fazt {
        let mut cmd = Command::new(bin());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.arg("--data-dir")
            .arg(data)
            .args(["supervise", "--listen", "127.0.0.1:0"])
            .env("FAZT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn fazt");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("FAZT_TEST_ECHO").is_some() {
                    eprintln!("[fazt] {line}");
                }
                sink.lock().expect("lock").push(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        let wanted = if wait_for_ready {
            "fazt ready on http://"
        } else {
            "fazt listening on http://"
        };
        let ready_seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = ready_seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("fazt ready on http://") {
                    seen.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                if let Some(addr) = line.strip_prefix(wanted) {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr.parse().expect("ready line address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "fazt did not start; stderr:\n{}",
                    lines.lock().expect("lock").join("\n")
                );
            }
        };
        Fazt {
            child: Some(child),
            addr,
            data: data.to_path_buf(),
            stderr: lines,
            ready_seen,
        }
    }

    /// Whether the `fazt ready on` line has been written by now.
    pub fn stdout_ready_seen(&self) -> bool {
        self.ready_seen.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The admin token written at first start.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_string()
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").join("\n")
    }

    /// A GET with the admin token.
    pub fn admin_get(&self, path: &str) -> Reply {
        let auth = format!("Bearer {}", self.token());
        request(self.addr, "GET", path, &[("authorization", &auth)], b"")
    }

    /// An admin API request with the token, a JSON body.
    pub fn admin(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let auth = format!("Bearer {}", self.token());
        request(
            self.addr,
            method,
            path,
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body,
        )
    }

    /// Sends a signal and waits (bounded) for the exit.
    pub fn signal_and_wait(&mut self, signal: Signal, within: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        kill(Pid::from_raw(child.id() as i32), signal).expect("kill");
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Fazt {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request with `Connection: close`, read to the end.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    parse_response(&raw, method == "HEAD")
}

fn parse_response(raw: &[u8], head_only: bool) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&rest[..eol])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
}

/// Writes `files` into a fresh folder named `name` under `parent` and
/// deploys it with the CLI; panics with the CLI's stderr on failure.
pub fn deploy(data: &Path, parent: &Path, name: &str, files: &[(&str, &str)]) {
    let dir = write_app(parent, name, files);
    let out = cli(data, &["app", "deploy", dir.to_str().expect("utf-8 path")]);
    assert!(
        out.status.success(),
        "deploy {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes an app folder and returns its path.
pub fn write_app(parent: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = parent.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    dir
}

impl Fazt {
    /// A plain GET of `/_app/<app><path>`.
    pub fn app_get(&self, app: &str, path: &str) -> Reply {
        request(self.addr, "GET", &format!("/_app/{app}{path}"), &[], b"")
    }

    /// Every child's row of `fazt workers status --json`.
    pub fn children(&self) -> Vec<serde_json::Value> {
        let out = cli(&self.data, &["workers", "status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["data"]["children"].as_array().expect("children").clone()
    }

    /// The worker rows, by slot.
    pub fn workers(&self) -> Vec<serde_json::Value> {
        self.children()
            .into_iter()
            .filter(|c| c["kind"] == "worker")
            .collect()
    }

    /// The egress row.
    pub fn egress(&self) -> serde_json::Value {
        self.children()
            .into_iter()
            .find(|c| c["kind"] == "egress")
            .expect("an egress row")
    }

    /// Worker pids, by slot.
    pub fn worker_pids(&self) -> Vec<u64> {
        self.workers()
            .iter()
            .map(|w| w["pid"].as_u64().expect("pid"))
            .collect()
    }
}

/// Sets limits with the CLI before a start.
pub fn set_limits(data: &Path, pairs: &[(&str, &str)]) {
    for (k, v) in pairs {
        let out = cli(data, &["limits", "set", k, v]);
        assert!(
            out.status.success(),
            "{k}={v}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A zip of `entries` (name, bytes), as an admin API deploy takes.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .expect("start");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish");
    }
    out.into_inner()
}

/// Percent-encodes all but the unreserved characters, for a URL in a query.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `command` then `args` against `data`; it must succeed.
pub fn cli_ok(data: &Path, command: &[&str], args: &[&str]) {
    let mut full = command.to_vec();
    full.extend_from_slice(args);
    let out = cli(data, &full);
    assert!(
        out.status.success(),
        "{full:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Adds allowlist entries, each given as `fazt net allow`'s arguments.
pub fn net_allow(data: &Path, entries: &[&[&str]]) {
    for args in entries {
        cli_ok(data, &["net", "allow"], args);
    }
}

/// POSTs `body` as JSON to `path`.
pub fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Reply {
    request(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// Whether `pid` runs (a zombie waiting for its reaper does not count).
pub fn pid_alive(pid: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name.
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u64, signal: Signal) {
    kill(Pid::from_raw(pid as i32), signal).expect("kill");
}

/// `kill -9 pid`.
pub fn kill9(pid: u64) {
    signal(pid, Signal::SIGKILL);
}

/// Polls `check` every 20 ms until it holds or `within` passes.
pub fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`try_get`]'s status when nothing accepted the connection.
pub const NO_CONNECTION: u16 = 0;
/// [`try_get`]'s status when the connection broke before a whole answer.
pub const BROKEN: u16 = 1;

/// GET with `Connection: close`: the status, or [`NO_CONNECTION`] /
/// [`BROKEN`]; never panics, so loads survive a server going away.
pub fn try_get(addr: SocketAddr, path: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return NO_CONNECTION;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    if s.write_all(head.as_bytes()).is_err() {
        return BROKEN;
    }
    let mut raw = Vec::new();
    if s.read_to_end(&mut raw).is_err() || !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return BROKEN;
    }
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(BROKEN)
}

/// What a bounded load saw: answers by status, and each answer's latency.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Status codes, in no order.
    pub statuses: Vec<u16>,
    /// Latencies of the answers.
    pub latencies: Vec<Duration>,
}

impl LoadResult {
    /// Answers that were not 200.
    pub fn failed(&self) -> Vec<u16> {
        self.statuses
            .iter()
            .copied()
            .filter(|s| *s != 200)
            .collect()
    }

    /// Answers that were 200.
    pub fn ok(&self) -> usize {
        self.statuses.iter().filter(|s| **s == 200).count()
    }

    /// The 99th percentile latency.
    pub fn p99(&self) -> Duration {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        l.get((l.len().saturating_sub(1) * 99) / 100)
            .copied()
            .unwrap_or_default()
    }
}

/// A load running in the background: `clients` threads, each sending GET
/// `path` one after another, until stopped or 60 s passed (bounded).
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<LoadResult>>,
}

impl Load {
    /// Starts the clients.
    pub fn start(addr: SocketAddr, path: &str, clients: usize) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..clients)
            .map(|_| {
                let (stop, path) = (stop.clone(), path.to_string());
                std::thread::spawn(move || {
                    let mut out = LoadResult::default();
                    let until = Instant::now() + Duration::from_secs(60);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until
                    {
                        let started = Instant::now();
                        let status = try_get(addr, &path);
                        out.latencies.push(started.elapsed());
                        out.statuses.push(status);
                        if status == NO_CONNECTION {
                            // Nothing listens (any more): do not spin.
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    out
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the clients and gathers what they saw.
    pub fn stop(self) -> LoadResult {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = LoadResult::default();
        for t in self.threads {
            let r = t.join().expect("load thread");
            all.statuses.extend(r.statuses);
            all.latencies.extend(r.latencies);
        }
        all
    }
}
