//! The network log tables (SPEC §8): rows written in batches by the
//! supervisor's flusher, pruned oldest first, counts of rows it could not
//! keep, and the reads behind `fazt net logs` and `fazt net stats`.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, TransactionBehavior};
use serde::Serialize;

use super::{now_ms, StoreError};
use crate::net::NetLogRow;
use crate::ErrorCode;

/// Rows the flusher could not keep for one app and domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Drops {
    /// Success rows dropped because the buffer was full.
    pub dropped: u64,
    /// Error rows past their own bound.
    pub errors_dropped: u64,
    /// Rows of batches that failed to write twice.
    pub lost: u64,
}

impl Drops {
    /// Whether nothing was dropped.
    pub fn is_empty(&self) -> bool {
        *self == Drops::default()
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.dropped + self.errors_dropped + self.lost
    }
}

/// Writes `rows` in one transaction.
pub fn insert(conn: &mut Connection, rows: &[NetLogRow]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO net_log(app_id, domain, method, path, status, error_code, cache_hit,
                                 duration_ms, request_bytes, response_bytes, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for r in rows {
            stmt.execute(params![
                r.app_id,
                r.domain,
                r.method,
                r.path,
                r.status,
                r.error_code.map(ErrorCode::as_str),
                r.cache_hit,
                clamp(r.duration_ms),
                clamp(r.request_bytes),
                clamp(r.response_bytes),
                r.created_at,
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Adds to the counts of rows not kept.
pub fn add_drops(conn: &mut Connection, drops: &[(i64, String, Drops)]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO net_log_drops(app_id, domain, dropped, errors_dropped, lost, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(app_id, domain) DO UPDATE SET
                dropped = dropped + excluded.dropped,
                errors_dropped = errors_dropped + excluded.errors_dropped,
                lost = lost + excluded.lost,
                updated_at = excluded.updated_at",
        )?;
        let now = now_ms();
        for (app_id, domain, d) in drops {
            stmt.execute(params![
                app_id,
                domain,
                clamp(d.dropped),
                clamp(d.errors_dropped),
                clamp(d.lost),
                now
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Deletes the oldest rows beyond `keep`; how many went.
pub fn prune(conn: &Connection, keep: u64) -> Result<u64, StoreError> {
    // By id, not by count: one index lookup, however many rows are kept
    // (ids only grow, so the rows below the cut are the oldest).
    let removed = conn.execute(
        "DELETE FROM net_log WHERE id <= (SELECT MAX(id) FROM net_log) - ?1",
        params![clamp(keep)],
    )?;
    Ok(removed as u64)
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Which rows `fazt net logs` shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this app's.
    pub app_id: Option<i64>,
    /// Only this domain's.
    pub domain: Option<String>,
    /// Only error rows.
    pub errors: bool,
    /// At most this many, newest first.
    pub limit: u64,
}

/// A row as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Row id.
    pub id: i64,
    /// The app's name, when it still exists.
    pub app: Option<String>,
    /// Its id.
    pub app_id: i64,
    /// Domain.
    pub domain: String,
    /// Method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Upstream status.
    pub status: Option<u16>,
    /// The code, for an error row.
    pub error_code: Option<String>,
    /// Served from the cache.
    pub cache_hit: bool,
    /// Duration.
    pub duration_ms: u64,
    /// Request bytes.
    pub request_bytes: u64,
    /// Response bytes.
    pub response_bytes: u64,
    /// When, ms since the epoch.
    pub created_at: i64,
}

/// Rows matching `filter`, newest first (by when the call ended: error
/// rows are written before the successes around them).
pub fn logs(conn: &Connection, filter: &Filter) -> Result<Vec<LogEntry>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT l.id, a.name, l.app_id, l.domain, l.method, l.path, l.status, l.error_code,
                l.cache_hit, l.duration_ms, l.request_bytes, l.response_bytes, l.created_at
         FROM net_log l LEFT JOIN apps a ON a.id = l.app_id
         WHERE (?1 IS NULL OR l.app_id = ?1) AND (?2 IS NULL OR l.domain = ?2)
               AND (?3 = 0 OR l.error_code IS NOT NULL)
         ORDER BY l.created_at DESC, l.id DESC LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![
            filter.app_id,
            filter.domain,
            filter.errors,
            clamp(filter.limit)
        ],
        |r| {
            Ok(LogEntry {
                id: r.get(0)?,
                app: r.get(1)?,
                app_id: r.get(2)?,
                domain: r.get(3)?,
                method: r.get(4)?,
                path: r.get(5)?,
                status: r.get(6)?,
                error_code: r.get(7)?,
                cache_hit: r.get(8)?,
                duration_ms: r.get::<_, i64>(9)?.max(0) as u64,
                request_bytes: r.get::<_, i64>(10)?.max(0) as u64,
                response_bytes: r.get::<_, i64>(11)?.max(0) as u64,
                created_at: r.get(12)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One domain's numbers for `fazt net stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DomainStats {
    /// The domain.
    pub domain: String,
    /// Calls logged.
    pub calls: u64,
    /// Of those, failed, by code.
    pub errors: BTreeMap<String, u64>,
    /// Median duration.
    pub p50_ms: u64,
    /// 99th percentile duration.
    pub p99_ms: u64,
    /// Request bytes sent.
    pub bytes_out: u64,
    /// Response bytes received.
    pub bytes_in: u64,
    /// Calls answered from the cache.
    pub cache_hits: u64,
    /// Rows not kept (see [`Drops`]).
    pub dropped: Drops,
}

/// Numbers per domain, for one app or all; domains with dropped rows
/// only are listed too.
pub fn stats(conn: &Connection, app_id: Option<i64>) -> Result<Vec<DomainStats>, StoreError> {
    let mut out: BTreeMap<String, DomainStats> = BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT domain, count(*), sum(cache_hit), sum(request_bytes), sum(response_bytes)
         FROM net_log WHERE (?1 IS NULL OR app_id = ?1) GROUP BY domain",
    )?;
    let rows = stmt.query_map(params![app_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    for row in rows {
        let (domain, calls, hits, out_b, in_b) = row?;
        let s = out.entry(domain.clone()).or_default();
        s.domain = domain;
        s.calls = calls.max(0) as u64;
        s.cache_hits = hits.max(0) as u64;
        s.bytes_out = out_b.max(0) as u64;
        s.bytes_in = in_b.max(0) as u64;
    }
    let mut stmt = conn.prepare(
        "SELECT domain, error_code, count(*) FROM net_log
         WHERE (?1 IS NULL OR app_id = ?1) AND error_code IS NOT NULL
         GROUP BY domain, error_code",
    )?;
    let rows = stmt.query_map(params![app_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (domain, code, n) = row?;
        if let Some(s) = out.get_mut(&domain) {
            s.errors.insert(code, n.max(0) as u64);
        }
    }
    let mut nth = conn.prepare(
        "SELECT duration_ms FROM net_log WHERE (?1 IS NULL OR app_id = ?1) AND domain = ?2
         ORDER BY duration_ms LIMIT 1 OFFSET ?3",
    )?;
    for s in out.values_mut() {
        let at = |q: f64| ((s.calls.saturating_sub(1)) as f64 * q).round() as i64;
        for (q, slot) in [(0.5, &mut s.p50_ms), (0.99, &mut s.p99_ms)] {
            let v: i64 = nth.query_row(params![app_id, s.domain, at(q)], |r| r.get(0))?;
            *slot = v.max(0) as u64;
        }
    }
    let mut stmt = conn.prepare(
        "SELECT domain, sum(dropped), sum(errors_dropped), sum(lost) FROM net_log_drops
         WHERE (?1 IS NULL OR app_id = ?1) GROUP BY domain",
    )?;
    let rows = stmt.query_map(params![app_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (domain, d, e, l) = row?;
        let s = out.entry(domain.clone()).or_default();
        s.domain = domain;
        s.dropped = Drops {
            dropped: d.max(0) as u64,
            errors_dropped: e.max(0) as u64,
            lost: l.max(0) as u64,
        };
    }
    Ok(out.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().expect("db");
        super::super::migrations::migrate(&mut conn).expect("migrate");
        conn
    }

    fn row(domain: &str, ms: u64, code: Option<ErrorCode>) -> NetLogRow {
        NetLogRow {
            app_id: 1,
            domain: domain.into(),
            method: "GET".into(),
            path: "/x".into(),
            status: code.is_none().then_some(200),
            error_code: code,
            cache_hit: false,
            duration_ms: ms,
            request_bytes: 1,
            response_bytes: 10,
            created_at: 0,
        }
    }

    #[test]
    fn rows_go_in_are_pruned_oldest_first_and_add_up_in_stats() {
        let mut conn = db();
        let mut rows: Vec<NetLogRow> = (1..=100).map(|ms| row("a.example.com", ms, None)).collect();
        rows.push(row("a.example.com", 5, Some(ErrorCode::NetTimeout)));
        rows.push(row("b.example.com", 7, Some(ErrorCode::NetBlocked)));
        insert(&mut conn, &rows).expect("insert");
        add_drops(
            &mut conn,
            &[(
                1,
                "a.example.com".into(),
                Drops {
                    dropped: 3,
                    errors_dropped: 0,
                    lost: 1,
                },
            )],
        )
        .expect("drops");
        add_drops(
            &mut conn,
            &[(
                1,
                "a.example.com".into(),
                Drops {
                    dropped: 2,
                    errors_dropped: 1,
                    lost: 0,
                },
            )],
        )
        .expect("drops");
        let per_domain = stats(&conn, Some(1)).expect("stats");
        let a = &per_domain[0];
        assert_eq!((a.domain.as_str(), a.calls), ("a.example.com", 101));
        assert_eq!(a.errors.get("NET_TIMEOUT"), Some(&1));
        assert_eq!((a.p50_ms, a.p99_ms), (50, 99));
        assert_eq!((a.bytes_out, a.bytes_in), (101, 1010));
        assert_eq!(
            a.dropped,
            Drops {
                dropped: 5,
                errors_dropped: 1,
                lost: 1
            }
        );
        assert_eq!(per_domain[1].errors.get("NET_BLOCKED"), Some(&1));
        assert!(stats(&conn, Some(2)).expect("stats").is_empty());

        let errors = logs(
            &conn,
            &Filter {
                errors: true,
                limit: 10,
                ..Filter::default()
            },
        )
        .expect("logs");
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].domain, "b.example.com", "newest first");
        let b = logs(
            &conn,
            &Filter {
                domain: Some("b.example.com".into()),
                limit: 10,
                ..Filter::default()
            },
        )
        .expect("logs");
        assert_eq!(b.len(), 1);

        assert_eq!(prune(&conn, 10).expect("prune"), 92);
        let left = logs(
            &conn,
            &Filter {
                limit: 100,
                ..Filter::default()
            },
        )
        .expect("logs");
        assert_eq!(left.len(), 10);
        assert_eq!(left[0].domain, "b.example.com", "the newest are kept");
        assert_eq!(prune(&conn, 10).expect("prune"), 0);
    }
}
