//! The JS engine alone, in-process: µs per request of an app script run
//! the way a lane runs it (fresh realm, fazt's globals, completion value
//! to a response), against a baseline measured in the same run: a bare
//! QuickJS context of the same intrinsics evaluating the same script. The
//! ratio is fazt's cost on top of the engine.
//!
//! usage: engine [--requests N] [--script JS]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use fazt_ipc::msg::{AppRef, HttpRequest, Job, JobId, Outcome};
use fazt_shared::store::apps::{self, NewFile, SizeLimits};
use fazt_shared::store::kv::KvQuota;
use fazt_shared::{AppName, DataDir, FilePath, Store};
use fazt_worker::code::CodeCache;
use fazt_worker::js::{Engine, EngineLimits, Services, MAX_JOBS};

const HELLO: &str = "({hello: \"world\"})";

fn main() -> Result<()> {
    let mut requests = 20_000usize;
    let mut script = HELLO.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--requests" => requests = value.parse()?,
            "--script" => script = value,
            other => bail!("unknown flag {other}"),
        }
    }
    if requests == 0 || requests > 1_000_000 {
        bail!("--requests must be 1 to 1000000");
    }
    let dir = tempfile::tempdir()?;
    let store = Store::open(&DataDir::new(dir.path()), 4)?;
    let deployed = apps::deploy(
        &mut *store.conn()?,
        &AppName::parse("bench")?,
        &[NewFile {
            path: FilePath::parse("api/main.js")?,
            content: script.clone().into_bytes(),
        }],
        &SizeLimits {
            max_file_size: 1 << 20,
            max_site_size: 1 << 20,
            max_vfs: 1 << 20,
        },
    )?;
    let services = Services {
        store,
        kv: KvQuota {
            max_bytes: 1 << 20,
            max_keys: 1000,
            max_value: 1 << 16,
        },
        cache: Arc::new(CodeCache::default()),
        log: Arc::new(|_| {}),
        net: None,
    };
    let mut engine = Engine::new(EngineLimits {
        max_memory: 50 << 20,
        exec_timeout: Duration::from_secs(5),
        max_jobs: MAX_JOBS,
        realms: fazt_worker::js::REALMS_PER_LANE,
    });
    let job = Job {
        id: JobId(1),
        request_id: "bench".into(),
        app: AppRef {
            id: deployed.id,
            name: "bench".into(),
            version: deployed.version,
        },
        request: HttpRequest {
            method: "GET".into(),
            path: "/api".into(),
            query: String::new(),
            headers: vec![("accept".into(), "*/*".into())],
            body: vec![],
        },
        timeout_ms: 10_000,
        // The engine alone makes no net call; the ticket is never checked.
        ticket: fazt_shared::ticket::TicketKey::generate().issue(deployed.id, "bench", u64::MAX),
    };
    let fazt = |n: usize, engine: &mut Engine| -> Result<Duration> {
        let started = Instant::now();
        for _ in 0..n {
            let deadline = Instant::now() + Duration::from_secs(10);
            if let Outcome::Error { code, message } = engine.run(&job, &services, deadline) {
                bail!("{code}: {message}");
            }
        }
        Ok(started.elapsed())
    };
    let rt = rquickjs::Runtime::new()?;
    let bare = |n: usize| -> Result<Duration> {
        let started = Instant::now();
        for _ in 0..n {
            let ctx = rquickjs::Context::full(&rt)?;
            ctx.with(|ctx| -> Result<()> {
                let v: rquickjs::Value = ctx.eval(script.as_str())?;
                let _ = ctx.json_stringify(v)?;
                Ok(())
            })?;
        }
        Ok(started.elapsed())
    };
    // Warm up both, then measure alternately so drift hits both alike.
    fazt(requests / 10, &mut engine)?;
    bare(requests / 10)?;
    let (mut f, mut b) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..4 {
        f += fazt(requests / 4, &mut engine)?;
        b += bare(requests / 4)?;
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / (requests / 4 * 4) as f64;
    println!(
        "{}",
        serde_json::json!({
            "requests": requests / 4 * 4,
            "fazt_us": (per(f) * 10.0).round() / 10.0,
            "bare_context_us": (per(b) * 10.0).round() / 10.0,
            "ratio": (per(f) / per(b) * 100.0).round() / 100.0,
        })
    );
    Ok(())
}
