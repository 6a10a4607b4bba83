//! The engines behind `portcullis test`, as a library so that benchmarks and
//! other tools can run policy test files the same way.
//!
//! A test case runs on one of two engines:
//! - [`Engine::Core`]: `portcullis-core` natively;
//! - [`Engine::Wasm`]: the shipped filter under the wasmtime proxy-wasm
//!   host, exactly as Envoy would run it: the module embedded at build time
//!   or another one (see [`filter`]), its compiled form cached on disk.
//!
//! Both are closures for the one runner, [`portcullis_harness::run_file`],
//! which reads, checks and tallies; this crate only plays cases through the
//! filter ([`run_wasm`]) and turns reports into [`CaseResult`]s for output.

pub mod filter;
pub mod oci;

pub use filter::VERSION;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use portcullis_core::{Trace, Transport};
use portcullis_harness::{
    native, run_file as run_suite, Case, CaseRun, CaseStatus, FileReport, HeaderList, Loaded,
    Mismatch, Outcome, Rejection, Suite,
};
use portcullis_host::{HttpRequest, HttpResponse, LogLevel, Options};

/// Whether a property the filter set is its text trace line:
/// `portcullis.<policy>.trace` (see `Policy::trace_property`).
pub fn is_trace_property(p: &str) -> bool {
    p.starts_with("portcullis.") && p.ends_with(".trace")
}
/// How the filter's debug log line of a trace starts.
const TRACE_LOG_PREFIX: &str = "portcullis: ";

/// Expands files and directories into test files (the harness's one rule,
/// [`portcullis_harness::corpus::collect`]).
pub use portcullis_harness::corpus::collect;

/// Which engine runs the cases.
#[allow(missing_debug_implementations)] // wasmtime's engine has no useful Debug
pub enum Engine {
    /// The native core.
    Core,
    /// The filter under wasmtime (compiled once).
    Wasm(portcullis_host::Engine),
}

/// The wasmtime host's options for running the filter on test cases.
pub fn wasm_options() -> Options {
    Options {
        // Debug, so the filter logs every decision's trace line: a policy
        // with `trace: "deny"` or `"none"` sets no trace property for some
        // requests, and the cases still check their rule.
        log_level: LogLevel::Debug,
        ..Options::default()
    }
}

impl Engine {
    /// Loads and compiles the filter.
    pub fn wasm(path: &Path) -> Result<Engine, String> {
        compile_filter(path).map(Engine::Wasm)
    }

    /// The engine's name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Core => "core",
            Engine::Wasm(_) => "wasm",
        }
    }
}

/// Reads and compiles the filter at `path` for the wasmtime host, with the
/// filter's log at info level (as in Envoy's default).
pub fn compile_filter(path: &Path) -> Result<portcullis_host::Engine, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read the filter {}: {e} (build it with scripts/build-filter.sh)",
            path.display()
        )
    })?;
    portcullis_host::Engine::with_options(&bytes, wasm_options())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One case's result.
#[derive(Debug)]
pub struct CaseResult {
    /// Test file.
    pub file: PathBuf,
    /// Line of the case.
    pub line: u32,
    /// Case name.
    pub name: String,
    /// Unmet expectations (empty: pass).
    pub mismatches: Vec<Mismatch>,
    /// The decision trace.
    pub trace: String,
    /// An engine error (the case could not run).
    pub error: Option<String>,
}

impl CaseResult {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty() && self.error.is_none()
    }
}

/// Runs every case of a test file on an engine (one [`CaseResult`] per
/// case; a rejected-policy file, or a file that could not run, gives one).
pub fn run_file(engine: &Engine, file: &Path) -> Vec<CaseResult> {
    let suite = match Suite::read(file) {
        Ok(s) => s,
        Err(e) => {
            return vec![CaseResult::of_file(
                file,
                "(test file)",
                Some(e.to_string()),
            )]
        }
    };
    let report = match engine {
        Engine::Core => run_suite(&suite, native::load, native::run),
        Engine::Wasm(e) => run_suite(
            &suite,
            |policy| {
                if policy.env.is_empty() {
                    load_wasm(e, policy.text)
                } else {
                    // The test file's `env` is the VM's environment, as
                    // Envoy's vm_config.environment_variables would give it.
                    load_wasm(&e.with_environment(policy.env.to_vec()), policy.text)
                }
            },
            |plugin, _, c| match run_wasm(plugin, c) {
                Ok(o) => CaseRun::Ran(o),
                Err(e) => CaseRun::Error(e),
            },
        ),
    };
    results(file, report)
}

/// Loads a policy into the filter: a refusal is read back from the
/// problems it logs (`... rejected: LINE:COL: PATH: message`).
pub fn load_wasm(
    engine: &portcullis_host::Engine,
    policy: &str,
) -> Loaded<portcullis_host::Plugin> {
    match engine.configure(policy.as_bytes()) {
        Ok(p) => Loaded::Policy(p),
        Err(err) => {
            let logs: Vec<&str> = err.logs().iter().map(|(_, l)| l.as_str()).collect();
            let r = Rejection::from_log(&logs, "rejected: ");
            if r.paths.is_empty() {
                Loaded::Failed(format!("the filter refused the policy: {err}"))
            } else {
                Loaded::Rejected(r)
            }
        }
    }
}

impl CaseResult {
    fn of_file(file: &Path, name: &str, error: Option<String>) -> CaseResult {
        CaseResult {
            file: file.to_path_buf(),
            line: 0,
            name: name.into(),
            mismatches: Vec::new(),
            trace: String::new(),
            error,
        }
    }
}

/// A report as the CLI prints it: one result per case that ran, or one
/// for the whole file.
fn results(file: &Path, report: FileReport) -> Vec<CaseResult> {
    if let Some(e) = &report.error {
        return vec![CaseResult::of_file(file, "(policy)", Some(e.to_string()))];
    }
    if let Some(rc) = &report.rejection {
        let mut r = CaseResult::of_file(file, "(policy must be rejected)", None);
        match &rc.rejection {
            None => r.error = Some("the policy was accepted".into()),
            Some(rej) => {
                for m in &rc.missing {
                    r.mismatches.push(Mismatch {
                        field: "policy error".into(),
                        expected: m.clone(),
                        seen: rej.text.clone(),
                    });
                }
            }
        }
        return vec![r];
    }
    report
        .cases
        .into_iter()
        .filter_map(|c| {
            let (mismatches, error) = match c.status {
                CaseStatus::Passed => (Vec::new(), None),
                CaseStatus::Failed(m) => (m, None),
                CaseStatus::Error(e) => (Vec::new(), Some(e)),
                // Neither engine skips; a skip is not a result to print.
                CaseStatus::Skipped(_) => return None,
            };
            Some(CaseResult {
                file: file.to_path_buf(),
                line: c.line,
                name: c.name,
                mismatches,
                trace: c.trace,
                error,
            })
        })
        .collect()
}

/// Plays one case through the filter and reads back what it did.
pub fn run_wasm(plugin: &mut portcullis_host::Plugin, c: &Case) -> Result<Outcome, String> {
    let r = &c.request;
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b":method".to_vec(), r.method.as_bytes().to_vec()),
        (
            b":scheme".to_vec(),
            if r.tls {
                b"https".to_vec()
            } else {
                b"http".to_vec()
            },
        ),
        (b":authority".to_vec(), r.authority.as_bytes().to_vec()),
        (b":path".to_vec(), r.path.as_bytes().to_vec()),
    ];
    headers.extend(
        r.headers
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.clone())),
    );
    let req = HttpRequest {
        peer: r.peer,
        local: r.local,
        tls: r.tls,
        protocol: match r.transport {
            Transport::Tcp => "HTTP/1.1".into(),
            Transport::Udp => "HTTP/3".into(),
        },
        headers,
        body: None,
    };
    let up = HttpResponse {
        status: c.upstream.status,
        headers: c
            .upstream
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.clone()))
            .collect(),
    };
    let x = plugin
        .play(&req, &up)
        .map_err(|e| format!("host error: {e}"))?;
    let trace_line = x
        .properties_set
        .iter()
        .rev()
        .find(|(p, _)| is_trace_property(p))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .or_else(|| {
            // Not published (the policy's `trace` left it out): the same
            // line from the filter's debug log.
            x.logs.iter().rev().find_map(|(level, line)| {
                (*level == LogLevel::Debug)
                    .then(|| line.strip_prefix(TRACE_LOG_PREFIX))
                    .flatten()
                    .map(str::to_owned)
            })
        })
        .ok_or("the filter set no trace property and logged no trace")?;
    let t = Trace::parse(&trace_line).ok_or_else(|| format!("unreadable trace {trace_line:?}"))?;
    let to_list = |h: &[(Vec<u8>, Vec<u8>)]| -> HeaderList {
        h.iter()
            .filter(|(n, _)| !n.starts_with(b":"))
            .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v.clone()))
            .collect()
    };
    let response_headers = to_list(&x.response_headers);
    let location = x
        .local_reply
        .as_ref()
        .and_then(|_| response_headers.iter().find(|(n, _)| n == "location"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    let (would_verdict, would_status) = t.enforced(x.status);
    Ok(Outcome {
        verdict: t.verdict,
        status: x.status,
        rule: t.rule,
        client_ip: t.client_ip,
        step: t.step,
        would_verdict,
        would_status,
        trace: trace_line,
        location,
        upstream_headers: x.upstream_request_headers.as_deref().map(to_list),
        response_headers,
        body: x.local_reply.map(|l| l.body).unwrap_or_default(),
    })
}

/// A failing case as text: name, each expected field and what was seen,
/// and the trace.
pub fn describe_failure(r: &CaseResult) -> String {
    let mut s = format!("FAIL {}:{}: {}\n", r.file.display(), r.line, r.name);
    if let Some(e) = &r.error {
        for l in e.lines() {
            let _ = writeln!(s, "    {l}");
        }
    }
    for m in &r.mismatches {
        let _ = writeln!(
            s,
            "    {}:\n        expected {}\n        seen     {}",
            m.field,
            m.expected,
            m.seen.replace('\n', "\n                 ")
        );
    }
    if !r.trace.is_empty() {
        let _ = writeln!(s, "    trace: {}", r.trace);
    }
    s
}
