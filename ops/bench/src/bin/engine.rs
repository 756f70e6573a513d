//! The JS engine alone, in-process: µs per request of an app script run
//! the way a lane runs it (its app's reused realm, fresh host objects,
//! completion value to a response), against a baseline measured in the same
//! run: a fresh QuickJS context per request evaluating the same script,
//! which is how fazt ran requests before realms were reused. Both are
//! broken down into set-up, code and teardown.
//!
//! usage: engine [--requests N] [--script JS] [--profile N]

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
    let mut profile = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--requests" => requests = value.parse()?,
            "--script" => script = value,
            // For a profiler: fazt's engine only, for N requests, no baseline.
            "--profile" => profile = value.parse()?,
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
    // Total, set-up, code and teardown of `n` requests.
    type Split = [Duration; 4];
    let add = |a: &mut Split, b: Split| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    let fazt = |n: usize, engine: &mut Engine| -> Result<Split> {
        let mut split = [Duration::ZERO; 4];
        let started = Instant::now();
        for _ in 0..n {
            let deadline = Instant::now() + Duration::from_secs(10);
            if let Outcome::Error { code, message } = engine.run(&job, &services, deadline) {
                bail!("{code}: {message}");
            }
            let p = engine.last_phases();
            add(&mut split, [Duration::ZERO, p.setup, p.code, p.teardown]);
        }
        split[0] = started.elapsed();
        Ok(split)
    };
    let rt = rquickjs::Runtime::new()?;
    let fresh = |n: usize| -> Result<Split> {
        let mut split = [Duration::ZERO; 4];
        let started = Instant::now();
        for _ in 0..n {
            let t0 = Instant::now();
            let ctx = rquickjs::Context::full(&rt)?;
            let t1 = Instant::now();
            ctx.with(|ctx| -> Result<()> {
                let v: rquickjs::Value = ctx.eval(script.as_str())?;
                let _ = ctx.json_stringify(v)?;
                Ok(())
            })?;
            let t2 = Instant::now();
            drop(ctx);
            add(&mut split, [Duration::ZERO, t1 - t0, t2 - t1, t2.elapsed()]);
        }
        split[0] = started.elapsed();
        Ok(split)
    };
    // What a lane pays once per app: building and locking down a realm.
    let build_us = {
        let clock = std::rc::Rc::new(fazt_worker::js::clock::Clock::default());
        let started = Instant::now();
        for _ in 0..20 {
            fazt_worker::js::realm::Realm::build(50 << 20, &clock, deployed.id, "bench")?;
        }
        (started.elapsed().as_secs_f64() * 1e6 / 20.0).round()
    };
    if profile > 0 {
        let s = fazt(profile, &mut engine)?;
        println!(
            "{} µs per request",
            s[0].as_secs_f64() * 1e6 / profile as f64
        );
        return Ok(());
    }
    // Warm up both, then measure alternately so drift hits both alike.
    fazt(requests / 10, &mut engine)?;
    fresh(requests / 10)?;
    let (mut f, mut b) = ([Duration::ZERO; 4], [Duration::ZERO; 4]);
    for _ in 0..4 {
        add(&mut f, fazt(requests / 4, &mut engine)?);
        add(&mut b, fresh(requests / 4)?);
    }
    let n = (requests / 4 * 4) as f64;
    let us = |d: Duration| (d.as_secs_f64() * 1e6 / n * 10.0).round() / 10.0;
    let split = |s: Split| serde_json::json!({"total": us(s[0]), "setup": us(s[1]), "code": us(s[2]), "teardown": us(s[3])});
    println!(
        "{}",
        serde_json::json!({
            "requests": requests / 4 * 4,
            "fazt_us": split(f),
            "fresh_context_us": split(b),
            "ratio": (us(f[0]) / us(b[0]) * 100.0).round() / 100.0,
            "realms_built": engine.realms_built(),
            "realm_heap_bytes": engine.heap_bytes(),
            "realm_build_us": build_us,
        })
    );
    Ok(())
}
