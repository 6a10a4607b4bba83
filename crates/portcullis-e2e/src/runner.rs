//! Running policy test files (policy-tests-v1) through real Envoy.
//!
//! [`prepare`] reads a test file, decides which cases can run on loopback
//! (see [`crate::translate`]) and translates its policy. [`Harness::start`]
//! starts one stand-in backend and one Envoy holding the listeners of any
//! number of prepared files (each listener with its own policy), and
//! [`run_case_envoy`] sends a case with curl, reads the decision trace from
//! Envoy's access log and what the backend received, and returns the
//! [`Outcome`]. [`run_files`] hands both to the one runner,
//! [`portcullis_harness::run_file`], which compares with the case's
//! expectations and reports cases Envoy cannot express as skips.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use portcullis_core::policy::TraceWhen;
use portcullis_core::{Policy, Trace, Verdict};
use portcullis_harness::{
    run_file, Case, CaseRun, CaseStatus, FileReport, HeaderExpect, HeaderList, Loaded, Outcome,
    PolicyLoad, Suite, Tally, TestFile,
};

use crate::backend::{Answer, Backend};
use crate::client::{self, ClientRequest, Version};
use crate::config::{
    AccessLog, EnvoyConfig, Filter, HttpOptions, Listener, Underscores, Upstream, CASE_HEADER,
};
use crate::envoy::{Envoy, Options, StartError};
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
    let Suite { file, policy, .. } = Suite::from_text(name, text, |p| {
        let pp = base.join(p);
        std::fs::read_to_string(&pp).map_err(|e| (pp.display().to_string(), e.to_string()))
    })
    .map_err(|e| format!("{name}: {e}"))?;
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
    /// Which build Envoy runs.
    pub engine: Engine,
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

/// Which Portcullis build Envoy runs the files on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The proxy-wasm filter (`dist/portcullis_filter.wasm`, see
    /// [`paths::filter_wasm`]) in `envoy.filters.http.wasm`.
    Wasm,
    /// The native module (`dist/libportcullis_envoy.so`, see
    /// [`paths::envoy_module`]) in `envoy.filters.http.dynamic_modules`.
    Native,
}

impl Engine {
    /// Where Envoy lists the filter's counters in `/stats`: proxy-wasm
    /// counters under `wasmcustom.`, the module's native counters under
    /// `dynamicmodulescustom.` (the names after it are the same).
    pub fn counter_prefix(self) -> &'static str {
        match self {
            Engine::Wasm => "wasmcustom.",
            Engine::Native => "dynamicmodulescustom.",
        }
    }

    /// The module Envoy loads for this engine (failing the test when it is
    /// not built).
    #[allow(clippy::panic)]
    pub fn module(self) -> Module {
        match self {
            Engine::Wasm => Module::local(require_tools().1),
            Engine::Native => {
                Module::native(paths::envoy_module().unwrap_or_else(|e| panic!("{e}")))
            }
        }
    }
}

impl Harness {
    /// Starts a backend and an Envoy with the listeners of every file in
    /// `files` that has a translation, on the wasm filter. `key`: the
    /// backend's function key for requests without a canned answer.
    pub fn start(name: &str, files: &[&Prepared], key: Option<&[u8]>) -> Result<Harness, String> {
        Harness::start_on(Engine::Wasm, name, files, key)
    }

    /// [`Harness::start`] on `engine`.
    pub fn start_on(
        engine: Engine,
        name: &str,
        files: &[&Prepared],
        key: Option<&[u8]>,
    ) -> Result<Harness, String> {
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
        // Every file's `env` goes to the filter's environment (the wasm
        // VM's vm_config.environment_variables.key_values; Envoy's own
        // environment for the native module), where it reads value_from /
        // values_from; a name two files give different values is not set,
        // so their policies are refused and shown.
        let mut module = engine.module();
        let mut clash = Vec::new();
        for f in files.iter().filter(|f| f.translation.is_some()) {
            for (k, v) in &f.file.env {
                match module.env.key_values.iter().find(|(n, _)| n == k) {
                    Some((_, old)) if old != v => clash.push(k.clone()),
                    Some(_) => {}
                    None => module.env.key_values.push((k.clone(), v.clone())),
                }
            }
        }
        module.env.key_values.retain(|(k, _)| !clash.contains(k));
        let mut options = Options::default();
        if module.is_native() {
            options.env = std::mem::take(&mut module.env.key_values);
        }
        let config = EnvoyConfig {
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listeners,
            upstream: Upstream::Static(backend.addr()),
            module,
            access_log: AccessLog::JsonFile(access_log.clone()),
        };
        // Underscored header names reach the filter, which must remove the `_`
        // twins itself (the shipped configuration refuses them earlier).
        let opts = HttpOptions {
            underscores: Underscores::Allow,
            ..HttpOptions::default()
        };
        let envoy = Envoy::start_with(&dir, &config.render_with(&opts), &options)
            .map_err(|e: StartError| e.to_string())?;
        Ok(Harness {
            engine,
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
    let (would_verdict, would_status) = trace.enforced(resp.status);
    Ok(Outcome {
        verdict: trace.verdict,
        status: resp.status,
        rule: trace.rule.clone(),
        client_ip,
        step: trace.step,
        would_verdict,
        would_status,
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
    /// Cases (or files) that failed.
    pub failed: usize,
    /// Cases that passed except that Envoy joined repeated values of a header
    /// into one comma-separated line (see [`unfold`]).
    pub folded: usize,
}

/// Undoes Envoy's folding of repeated header lines, where the case expects
/// the values `[a, b, ...]` as separate lines and Envoy delivered the single
/// line `a,b,...`: it does this when a filter appends a value to one of its
/// inline headers (`via`, `vary`, ...), the same list in HTTP terms
/// (RFC 9110, 5.3) but not the same lines. Returns a note per header
/// unfolded (the runner reports them; nothing else is excused).
pub fn unfold(case: &Case, o: &mut Outcome) -> Vec<String> {
    let mut notes = Vec::new();
    let mut one = |what: &str, expect: &[(String, HeaderExpect)], seen: &mut HeaderList| {
        for (name, e) in expect {
            let HeaderExpect::Many(values) = e else {
                continue;
            };
            let joined = values.join(",");
            let got: Vec<usize> = seen
                .iter()
                .enumerate()
                .filter(|(_, (n, _))| n.eq_ignore_ascii_case(name))
                .map(|(i, _)| i)
                .collect();
            let [at] = got.as_slice() else { continue };
            if values.len() < 2
                || seen.get(*at).map(|(_, v)| v.as_slice()) != Some(joined.as_bytes())
            {
                continue;
            }
            let n = seen.get(*at).map(|(n, _)| n.clone()).unwrap_or_default();
            let lines: Vec<(String, Vec<u8>)> = values
                .iter()
                .map(|v| (n.clone(), v.as_bytes().to_vec()))
                .collect();
            seen.splice(*at..=*at, lines);
            notes.push(format!(
                "{what}.{name}: Envoy joined {values:?} into one line"
            ));
        }
    };
    if let Some(up) = o.upstream_headers.as_mut() {
        one("upstream_headers", &case.expect.upstream_headers, up);
    }
    one(
        "response_headers",
        &case.expect.response_headers,
        &mut o.response_headers,
    );
    notes
}

/// Runs one prepared file through the one runner: its translated policy is
/// already loaded in `h` (the core must still accept it), the cases it
/// cannot express on loopback are skips.
pub fn run_prepared(h: &Harness, f: &Prepared) -> Option<FileReport> {
    let t = f.translation.as_ref()?;
    let suite = Suite {
        name: f.name.clone(),
        file: f.file.clone(),
        policy: f.policy.clone(),
    };
    let load = |p: PolicyLoad<'_>| match Policy::parse_with_env(t.policy.as_bytes(), &p.env) {
        Ok(_) => Loaded::Policy(t),
        Err(p) => Loaded::Failed(format!(
            "translated policy rejected by the core:\n{p}\n{}",
            t.policy
        )),
    };
    // The runner reads each decision from the access log's trace: a policy
    // whose `trace` switch leaves some decisions out cannot show those.
    let core = Policy::parse_with_env(t.policy.as_bytes(), &f.file.env).ok();
    let run = |t: &mut &Translation, i: usize, case: &Case| {
        if let Some((_, why)) = f.skipped.iter().find(|(s, _)| *s == i) {
            return CaseRun::Skip(why.clone());
        }
        if let Some(p) = core.as_ref().filter(|p| p.trace != TraceWhen::All) {
            if !p.trace.selects(&p.decide(&case.request.as_request())) {
                return CaseRun::Skip(format!(
                    "trace: {} publishes no trace for this decision, and Envoy's access log is how this runner reads decisions",
                    p.trace.as_str()
                ));
            }
        }
        if case.env.is_some() {
            return CaseRun::Skip(
                "the case sets its own env: one Envoy VM holds one environment".into(),
            );
        }
        match run_case_envoy(h, t, i, case) {
            Ok(mut o) => {
                let notes = unfold(case, &mut o);
                if notes.is_empty() {
                    CaseRun::Ran(o)
                } else {
                    CaseRun::Normalized(o, notes.join("; "))
                }
            }
            Err(e) => CaseRun::Error(e),
        }
    };
    Some(run_file(&suite, load, run))
}

/// [`run_files`], failing the test (with Envoy's log) if any case failed;
/// returns the counts.
pub fn run_passing(h: &Harness, files: &[&Prepared]) -> Counts {
    let (counts, failures) = run_files(h, files);
    assert!(
        failures.is_empty(),
        "{} case(s) failed in Envoy:\n{}\n--- envoy log ---\n{}",
        failures.len(),
        failures.join("\n"),
        h.envoy.log()
    );
    counts
}

/// [`run_passing`] for one file whose every case must run in Envoy (none
/// skipped as inexpressible on loopback): the sample files.
pub fn run_every_case(h: &Harness, p: &Prepared) {
    let counts = run_passing(h, &[p]);
    assert_eq!(counts.skipped, 0, "every sample case must run in Envoy");
    assert_eq!(counts.run, p.file.cases.len());
}

/// Runs every runnable case of `files` in `h`, printing skips, unfolded
/// headers and a summary line per file; returns the counts and each
/// failure as text.
pub fn run_files(h: &Harness, files: &[&Prepared]) -> (Counts, Vec<String>) {
    let mut total = Tally::default();
    let mut failures = Vec::new();
    for f in files {
        let Some(report) = run_prepared(h, f) else {
            continue;
        };
        for c in &report.cases {
            if let Some(note) = &c.note {
                println!("  folded {} case {:?}: {note}", f.name, c.name);
            }
            if let CaseStatus::Skipped(why) = &c.status {
                println!("  skipped {} case {:?}: {why}", f.name, c.name);
            }
        }
        let t = Tally::of([&report]);
        println!(
            "{}: run {}, skipped {}, failed {}",
            f.name, t.cases, t.skipped, t.failed
        );
        failures.extend(report.failures());
        total.add(&report);
    }
    let counts = Counts {
        run: total.cases,
        skipped: total.skipped,
        failed: total.failed,
        folded: total.normalized,
    };
    (counts, failures)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use portcullis_core::Step;

    fn case(expect: &str) -> Case {
        let text = format!(
            r#"{{"policy": {{"name": "p"}}, "cases": [{{"request": {{"peer": "127.0.0.1:1"}},
                 "expect": {expect}}}]}}"#
        );
        TestFile::parse(&text).unwrap().cases.remove(0)
    }

    fn outcome(response: &[(&str, &str)]) -> Outcome {
        Outcome {
            verdict: Verdict::Forward,
            status: 200,
            rule: "default".into(),
            client_ip: "127.0.0.1".into(),
            step: Step::Forward,
            would_verdict: Verdict::Forward,
            would_status: 200,
            trace: String::new(),
            location: None,
            upstream_headers: Some(vec![("via".into(), b"a,b".to_vec())]),
            response_headers: response
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn only_a_joined_line_of_exactly_the_expected_values_is_unfolded() {
        let c = case(r#"{"response_headers": {"vary": ["a", "b"], "x": ["1", "2"]}}"#);
        let mut o = outcome(&[("Vary", "a,b"), ("x", "1, 2"), ("z", "q")]);
        let notes = unfold(&c, &mut o);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("response_headers.vary"));
        let vary: Vec<&[u8]> = o
            .response_headers
            .iter()
            .filter(|(n, _)| n == "Vary")
            .map(|(_, v)| v.as_slice())
            .collect();
        assert_eq!(vary, [b"a".as_slice(), b"b".as_slice()]);
        // `1, 2` is not what Envoy writes: left for the check to report.
        assert!(o.response_headers.contains(&("x".into(), b"1, 2".to_vec())));
        assert!(portcullis_harness::check(&c.expect, &o)
            .iter()
            .any(|m| m.field == "response_headers.x"));
        // Expectations that do not ask for several lines are never touched.
        let plain = case(r#"{"upstream_headers": {"via": "a,b"}}"#);
        let mut o = outcome(&[]);
        assert!(unfold(&plain, &mut o).is_empty());
        assert_eq!(
            o.upstream_headers.unwrap(),
            [("via".into(), b"a,b".to_vec())]
        );
    }
}
