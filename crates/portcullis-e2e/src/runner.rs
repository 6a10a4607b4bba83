//! Running policy test files (policy-tests-v1) through real Envoy.
//!
//! [`prepare`] reads a test file, decides which cases can run on loopback
//! (see [`crate::translate`]) and translates its policy. [`Harness::start`]
//! starts one stand-in backend and one Envoy holding the listeners of any
//! number of prepared files (each listener with its own policy), and
//! [`run_case_envoy`] sends a case with curl, reads the decision trace from
//! Envoy's access log and what the backend received, and returns the
//! [`Outcome`] that `portcullis_core::testfile::check` compares with the
//! case's expectations.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use portcullis_core::testfile::{Case, Outcome, PolicySource, TestFile};
use portcullis_core::{Policy, Trace, Verdict};

use crate::backend::{Answer, Backend};
use crate::client::{self, ClientRequest, Version};
use crate::config::{AccessLog, EnvoyConfig, Filter, Listener, Upstream, CASE_HEADER};
use crate::envoy::{Envoy, StartError};
use crate::module::Module;
use crate::translate::{self, Translation};
use crate::{paths, tls};

/// How long a request's access-log line may take to appear (a failure
/// deadline; the log is polled).
const LOG_DEADLINE: Duration = Duration::from_secs(15);

/// A test file ready to run through Envoy.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Where it came from (for reports).
    pub name: String,
    /// The parsed file.
    pub file: TestFile,
    /// The original policy text.
    pub policy: String,
    /// The policy on loopback (absent for a file whose policy must be rejected).
    pub translation: Option<Translation>,
    /// Indexes of the cases that can run.
    pub runnable: Vec<usize>,
    /// Cases that cannot run, with the reason.
    pub skipped: Vec<(usize, String)>,
}

/// Reads and prepares a test file from disk.
pub fn prepare(path: &Path) -> Result<Prepared, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    prepare_text(&path.display().to_string(), &text, base)
}

/// Prepares a test file given as text; a policy path is relative to `base`.
pub fn prepare_text(name: &str, text: &str, base: &Path) -> Result<Prepared, String> {
    let file = TestFile::parse(text).map_err(|p| format!("{name}: not a valid test file:\n{p}"))?;
    let policy = match &file.policy {
        PolicySource::Inline(t) => t.clone(),
        PolicySource::Path(p) => {
            let pp = base.join(p);
            std::fs::read_to_string(&pp)
                .map_err(|e| format!("{name}: policy {}: {e}", pp.display()))?
        }
    };
    let mut runnable = Vec::new();
    let mut skipped = Vec::new();
    for (i, c) in file.cases.iter().enumerate() {
        match translate::inexpressible(c) {
            None => runnable.push(i),
            Some(why) => skipped.push((i, why)),
        }
    }
    // One local address cannot be both a TLS and a plain listener.
    let mut modes: HashMap<SocketAddr, bool> = HashMap::new();
    runnable.retain(|&i| {
        let Some(c) = file.cases.get(i) else {
            return false;
        };
        match modes.get(&c.request.local) {
            Some(&tls) if tls != c.request.tls => {
                skipped.push((i, "local address used both with and without TLS".into()));
                false
            }
            _ => {
                modes.insert(c.request.local, c.request.tls);
                true
            }
        }
    });
    let translation = if file.expect_policy_error.is_some() {
        None
    } else {
        let cases: Vec<&Case> = runnable.iter().filter_map(|&i| file.cases.get(i)).collect();
        let peers: Vec<IpAddr> = cases.iter().map(|c| c.request.peer.ip()).collect();
        let locals: Vec<(SocketAddr, bool)> = cases
            .iter()
            .map(|c| (c.request.local, c.request.tls))
            .collect();
        let peer_ports: Vec<(usize, u16)> = runnable
            .iter()
            .filter_map(|&i| file.cases.get(i).map(|c| (i, c.request.peer.port())))
            .collect();
        let mut avoid = BTreeSet::new();
        for c in &cases {
            for (_, v) in &c.request.headers {
                for part in String::from_utf8_lossy(v).split([',', ' ']) {
                    if let Ok(ip) = part.trim().parse::<IpAddr>() {
                        avoid.insert(ip);
                    }
                }
            }
        }
        Some(
            translate::translate(&policy, &peers, &locals, &peer_ports, &avoid)
                .map_err(|e| format!("{name}: {e}"))?,
        )
    };
    Ok(Prepared {
        name: name.to_owned(),
        file,
        policy,
        translation,
        runnable,
        skipped,
    })
}

/// One Envoy plus one stand-in backend serving any number of prepared files.
#[derive(Debug)]
pub struct Harness {
    /// Envoy.
    pub envoy: Envoy,
    /// The stand-in backend (canned answers per case).
    pub backend: Backend,
    /// Scratch directory.
    pub dir: PathBuf,
    access_log: PathBuf,
    log: Mutex<(usize, HashMap<String, serde_json::Value>)>,
}

/// Fails the test with a pointer to `./build.sh` if Envoy or the filter is
/// missing: tests that need them must fail, never pass silently.
#[allow(clippy::panic)]
pub fn require_tools() -> (PathBuf, PathBuf) {
    let envoy = paths::envoy_bin().unwrap_or_else(|e| panic!("{e}"));
    let wasm = paths::filter_wasm().unwrap_or_else(|e| panic!("{e}"));
    (envoy, wasm)
}

impl Harness {
    /// Starts a backend and an Envoy with the listeners of every file in
    /// `files` that has a translation. `key`: the backend's function key for
    /// requests without a canned answer.
    pub fn start(name: &str, files: &[&Prepared], key: Option<&[u8]>) -> Result<Harness, String> {
        let (_, wasm) = require_tools();
        let dir = paths::scratch(name);
        let backend = Backend::start(SocketAddr::from(([127, 0, 0, 1], 0)), key)
            .map_err(|e| format!("backend: {e}"))?;
        let cert = tls::test_cert()?;
        let access_log = dir.join("access.log");
        let mut listeners = Vec::new();
        for (fi, f) in files.iter().enumerate() {
            let Some(t) = &f.translation else { continue };
            for (li, e) in t.endpoints.iter().enumerate() {
                listeners.push(Listener {
                    name: format!("f{fi}l{li}"),
                    address: e.bind,
                    tls: e.tls.then(|| cert.clone()),
                    filter: Filter::Inline {
                        policy: t.policy.clone(),
                    },
                });
            }
        }
        let config = EnvoyConfig {
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listeners,
            upstream: Upstream::Static(backend.addr()),
            module: Module::local(wasm),
            access_log: AccessLog::JsonFile(access_log.clone()),
        };
        let envoy = Envoy::start(&dir, &config.render()).map_err(|e: StartError| e.to_string())?;
        Ok(Harness {
            envoy,
            backend,
            dir,
            access_log,
            log: Mutex::new((0, HashMap::new())),
        })
    }

    /// A fresh case id.
    pub fn next_id(&self) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        format!(
            "case-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The access-log entry of the request carrying `CASE_HEADER: id`.
    pub fn log_entry(&self, id: &str) -> Result<serde_json::Value, String> {
        let end = Instant::now() + LOG_DEADLINE;
        loop {
            {
                let mut g = self.log.lock().unwrap_or_else(|e| e.into_inner());
                if let Ok(bytes) = std::fs::read(&self.access_log) {
                    let (ref mut off, ref mut map) = *g;
                    let new = bytes.get(*off..).unwrap_or_default();
                    // Only whole lines.
                    if let Some(last_nl) = new.iter().rposition(|b| *b == b'\n') {
                        let chunk = new.get(..=last_nl).unwrap_or_default();
                        for line in chunk.split(|b| *b == b'\n') {
                            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
                                if let Some(c) = v.get("case").and_then(|c| c.as_str()) {
                                    map.insert(c.to_owned(), v.clone());
                                }
                            }
                        }
                        *off += last_nl + 1;
                    }
                    if let Some(v) = map.get(id) {
                        return Ok(v.clone());
                    }
                }
            }
            if Instant::now() > end {
                return Err(format!(
                    "no access-log line for {id} after {LOG_DEADLINE:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The decision trace logged for a request.
    pub fn trace(&self, id: &str) -> Result<(Trace, String), String> {
        let e = self.log_entry(id)?;
        let line = e
            .get("trace")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned();
        let t = Trace::parse(&line)
            .ok_or_else(|| format!("request {id}: no decision trace in the access log: {e}"))?;
        Ok((t, line))
    }

    /// Wasm failure counters that are not zero (names containing `wasm` and
    /// one of `fail`, `crash`, `abort`, `error`).
    pub fn wasm_failures(&self) -> Result<Vec<(String, u64)>, String> {
        self.envoy.wasm_failures()
    }
}

/// Runs one case through Envoy. The case must be runnable in `t`
/// (see [`Prepared::runnable`]).
/// `index` is the case's index in its file (see [`Prepared::runnable`]).
pub fn run_case_envoy(
    h: &Harness,
    t: &Translation,
    index: usize,
    case: &Case,
) -> Result<Outcome, String> {
    let r = &case.request;
    let ep = t
        .endpoint(r.local, r.tls)
        .ok_or_else(|| format!("no listener for local {} (tls {})", r.local, r.tls))?;
    let from = t
        .stand_in(r.peer.ip())
        .ok_or_else(|| format!("no stand-in for peer {}", r.peer))?;
    let id = h.next_id();
    h.backend.answer(
        &id,
        Answer {
            status: case.upstream.status,
            headers: case.upstream.headers.clone(),
        },
    );
    let mut headers = r.headers.clone();
    headers.push((CASE_HEADER.to_owned(), id.as_bytes().to_vec()));
    let req = ClientRequest {
        from: IpAddr::V4(from),
        from_port: t.client_ports.get(&index).copied(),
        to: ep.bind,
        tls: r.tls,
        // HTTP/1.1, except for methods Envoy's HTTP/1 codec refuses (it only
        // takes upper-case methods; HTTP/2 carries any token).
        version: if r.method.bytes().all(|b| b.is_ascii_uppercase()) {
            Version::Http1
        } else {
            Version::Http2
        },
        method: r.method.clone(),
        authority: r.authority.clone(),
        path: r.path.clone(),
        headers,
    };
    let resp = client::send(&h.dir, &req)?;
    let (trace, line) = h.trace(&id)?;
    let client_ip = match trace.client_ip.parse::<IpAddr>() {
        Ok(ip) => t.original(ip).to_string(),
        Err(_) => trace.client_ip.clone(),
    };
    let upstream_headers = h.backend.seen(&id).map(|s| {
        s.headers
            .into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(CASE_HEADER))
            .collect::<Vec<_>>()
    });
    let location = if trace.verdict == Verdict::Forward {
        None
    } else {
        resp.one("location")
    };
    Ok(Outcome {
        verdict: trace.verdict,
        status: resp.status,
        rule: trace.rule.clone(),
        client_ip,
        step: trace.step.as_str().to_owned(),
        would_verdict: trace.would.unwrap_or(trace.verdict),
        would_status: if trace.would.is_some() {
            trace.status
        } else {
            resp.status
        },
        scope: trace.scope.clone(),
        trace: format!(
            "{line} (on loopback: peer {} -> {from}, local {} -> {})",
            r.peer, r.local, ep.bind
        ),
        location,
        upstream_headers,
        response_headers: resp.headers,
        body: resp.body,
    })
}

/// Counts of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Cases run.
    pub run: usize,
    /// Cases skipped (inexpressible on loopback).
    pub skipped: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases that passed except that Envoy joined repeated values of a header
    /// into one comma-separated line (see [`folded_by_envoy`]).
    pub folded: usize,
}

/// Whether the mismatch on `field` (`upstream_headers.<name>` or
/// `response_headers.<name>`) is only Envoy folding: the case expects the
/// values `[a, b, ...]` as separate lines and Envoy delivered the single
/// line `a,b,...`. Envoy does this when a filter appends a value to one of
/// its inline headers (`via`, `vary`, ...): the same list in HTTP terms
/// (RFC 9110, 5.3), but not the same lines.
pub fn folded_by_envoy(case: &Case, o: &Outcome, field: &str) -> bool {
    use portcullis_core::testfile::HeaderExpect;
    let (list, seen, name) = if let Some(n) = field.strip_prefix("upstream_headers.") {
        (
            &case.expect.upstream_headers,
            o.upstream_headers.as_ref(),
            n,
        )
    } else if let Some(n) = field.strip_prefix("response_headers.") {
        (&case.expect.response_headers, Some(&o.response_headers), n)
    } else {
        return false;
    };
    let Some(seen) = seen else { return false };
    let Some((_, HeaderExpect::Many(values))) =
        list.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
    else {
        return false;
    };
    let got: Vec<&[u8]> = seen
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .collect();
    values.len() > 1 && got == [values.join(",").as_bytes()]
}

/// Runs every runnable case of `files` in `h`, printing each failure and a
/// summary line per file.
pub fn run_files(h: &Harness, files: &[&Prepared]) -> (Counts, Vec<String>) {
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    for f in files {
        let Some(t) = &f.translation else { continue };
        let mut fc = Counts {
            skipped: f.skipped.len(),
            ..Counts::default()
        };
        // The policy must still be one the core accepts after translation.
        if let Err(p) = Policy::parse(t.policy.as_bytes()) {
            failures.push(format!(
                "{}: translated policy rejected by the core:\n{p}\n{}",
                f.name, t.policy
            ));
            fc.failed += f.runnable.len();
        } else {
            for &i in &f.runnable {
                let Some(case) = f.file.cases.get(i) else {
                    continue;
                };
                fc.run += 1;
                let problems = match run_case_envoy(h, t, i, case) {
                    Ok(o) => {
                        let (folded, real): (Vec<_>, Vec<_>) =
                            portcullis_core::testfile::check(&case.expect, &o)
                                .into_iter()
                                .partition(|m| folded_by_envoy(case, &o, &m.field));
                        if !folded.is_empty() && real.is_empty() {
                            fc.folded += 1;
                            println!(
                                "  folded {} case {:?}: {}",
                                f.name,
                                case.name,
                                folded
                                    .iter()
                                    .map(|m| m.to_string())
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            );
                        }
                        real.into_iter()
                            .map(|m| m.to_string())
                            .chain(std::iter::once(format!("trace: {}", o.trace)))
                            .collect::<Vec<_>>()
                    }
                    Err(e) => vec![format!("error: {e}")],
                };
                if problems.len() > 1 || problems.first().is_some_and(|p| p.starts_with("error")) {
                    fc.failed += 1;
                    failures.push(format!(
                        "{} case {:?} (line {}):\n  {}",
                        f.name,
                        case.name,
                        case.line,
                        problems.join("\n  ")
                    ));
                }
            }
        }
        for (i, why) in &f.skipped {
            if let Some(c) = f.file.cases.get(*i) {
                println!("  skipped {} case {:?}: {why}", f.name, c.name);
            }
        }
        println!(
            "{}: run {}, skipped {}, failed {}",
            f.name, fc.run, fc.skipped, fc.failed
        );
        counts.run += fc.run;
        counts.skipped += fc.skipped;
        counts.failed += fc.failed;
    }
    (counts, failures)
}
