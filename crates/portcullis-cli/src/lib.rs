//! The engines behind `portcullis test`, as a library so that benchmarks and
//! other tools can run policy test files the same way.
//!
//! A test case runs on one of two engines:
//! - [`Engine::Core`]: `portcullis-core` natively;
//! - [`Engine::Wasm`]: the shipped filter under the wasmtime proxy-wasm
//!   host, exactly as Envoy would run it: the module embedded at build time
//!   or another one (see [`filter`]), its compiled form cached on disk.
//!
//! Both turn a case into a [`portcullis_core::testfile::Outcome`] and compare
//! with [`portcullis_core::testfile::check`]; nothing here decides anything.

pub mod filter;
pub mod oci;

pub use filter::VERSION;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use portcullis_core::testfile::{
    check, missing_policy_errors, run_core, Case, HeaderList, Mismatch, Outcome, PolicySource,
    TestFile,
};
use portcullis_core::{Policy, Trace, Transport};
use portcullis_host::{HttpRequest, HttpResponse, LogLevel, Options};

/// Whether a property the filter set is its text trace line:
/// `portcullis.<policy>.trace` (see `Policy::trace_property`).
pub fn is_trace_property(p: &str) -> bool {
    p.starts_with("portcullis.") && p.ends_with(".trace")
}

/// Which engine runs the cases.
#[allow(missing_debug_implementations)] // wasmtime's engine has no useful Debug
pub enum Engine {
    /// The native core.
    Core,
    /// The filter under wasmtime (compiled once).
    Wasm(portcullis_host::Engine),
}

impl Engine {
    /// Loads and compiles the filter.
    pub fn wasm(path: &Path) -> Result<Engine, String> {
        let bytes = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read the filter {}: {e} (build it with ./build.sh build)",
                path.display()
            )
        })?;
        let opts = Options {
            // As in Envoy's default: the filter's debug lines are not needed.
            log_level: LogLevel::Info,
            ..Options::default()
        };
        portcullis_host::Engine::with_options(&bytes, opts)
            .map(Engine::Wasm)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The engine's name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Core => "core",
            Engine::Wasm(_) => "wasm",
        }
    }
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

/// Reads a test file and the policy text it names.
pub fn load(file: &Path) -> Result<(TestFile, String), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let tf = TestFile::parse(&text).map_err(|e| {
        let mut s = String::new();
        for p in &e.0 {
            let _ = writeln!(s, "{}:{p}", file.display());
        }
        s.trim_end().to_string()
    })?;
    let policy = match &tf.policy {
        PolicySource::Inline(t) => t.clone(),
        PolicySource::Path(p) => {
            let path = file.parent().unwrap_or(Path::new(".")).join(p);
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?
        }
    };
    Ok((tf, policy))
}

/// Runs every case of a test file on an engine.
pub fn run_file(engine: &Engine, file: &Path) -> Vec<CaseResult> {
    let result =
        |line: u32, name: &str, error: Option<String>, mismatches: Vec<Mismatch>, trace: String| {
            CaseResult {
                file: file.to_path_buf(),
                line,
                name: name.to_string(),
                mismatches,
                trace,
                error,
            }
        };
    let (tf, policy_text) = match load(file) {
        Ok(x) => x,
        Err(e) => return vec![result(0, "(test file)", Some(e), Vec::new(), String::new())],
    };
    if let Some(want) = &tf.expect_policy_error {
        return vec![check_rejection(engine, &policy_text, want, file)];
    }
    match engine {
        Engine::Core => {
            let policy = match Policy::parse(policy_text.as_bytes()) {
                Ok(p) => p,
                Err(e) => {
                    return vec![result(
                        0,
                        "(policy)",
                        Some(format!("policy rejected:\n{e}")),
                        Vec::new(),
                        String::new(),
                    )]
                }
            };
            tf.cases
                .iter()
                .map(|c| {
                    let o = run_core(&policy, c);
                    result(c.line, &c.name, None, check(&c.expect, &o), o.trace)
                })
                .collect()
        }
        Engine::Wasm(e) => {
            let mut plugin = match e.configure(policy_text.as_bytes()) {
                Ok(p) => p,
                Err(err) => {
                    return vec![result(
                        0,
                        "(policy)",
                        Some(format!("the filter refused the policy: {err}")),
                        Vec::new(),
                        String::new(),
                    )]
                }
            };
            tf.cases
                .iter()
                .map(|c| match run_wasm(&mut plugin, c) {
                    Ok(o) => result(c.line, &c.name, None, check(&c.expect, &o), o.trace),
                    Err(err) => result(c.line, &c.name, Some(err), Vec::new(), String::new()),
                })
                .collect()
        }
    }
}

fn check_rejection(engine: &Engine, policy: &str, want: &[String], file: &Path) -> CaseResult {
    let mut r = CaseResult {
        file: file.to_path_buf(),
        line: 0,
        name: "(policy must be rejected)".into(),
        mismatches: Vec::new(),
        trace: String::new(),
        error: None,
    };
    match engine {
        Engine::Core => match Policy::parse(policy.as_bytes()) {
            Ok(_) => r.error = Some("the policy was accepted".into()),
            Err(problems) => {
                for m in missing_policy_errors(want, &problems) {
                    r.mismatches.push(Mismatch {
                        field: "policy error".into(),
                        expected: m.to_string(),
                        seen: problems.to_string(),
                    });
                }
            }
        },
        Engine::Wasm(e) => match e.configure(policy.as_bytes()) {
            Ok(_) => r.error = Some("the filter accepted the policy".into()),
            Err(err) => {
                // The filter logs one line per problem: `...: <path>: <message>`.
                let logs: Vec<String> = err.logs().iter().map(|(_, l)| l.clone()).collect();
                for w in want {
                    // An empty path is the document itself.
                    let needle = format!(": {}: ", if w.is_empty() { "(document)" } else { w });
                    if !logs.iter().any(|l| l.contains(&needle)) {
                        r.mismatches.push(Mismatch {
                            field: "policy error".into(),
                            expected: w.clone(),
                            seen: logs.join("\n"),
                        });
                    }
                }
            }
        },
    }
    r
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
        .ok_or("the filter set no trace property")?;
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
    Ok(Outcome {
        verdict: t.verdict,
        status: x.status,
        rule: t.rule,
        client_ip: t.client_ip,
        step: t.step.as_str().to_string(),
        would_verdict: t.would.unwrap_or(t.verdict),
        // A would-be reply's status is the trace's; otherwise the one seen.
        would_status: if t.would.is_some() {
            t.status
        } else {
            x.status
        },
        scope: t.scope,
        trace: trace_line,
        location,
        upstream_headers: x.upstream_request_headers.as_deref().map(to_list),
        response_headers,
        body: x.local_reply.map(|l| l.body).unwrap_or_default(),
    })
}

/// Expands files and directories into test files (`*.json` in directories,
/// skipping policy documents that are not test files: those without
/// `"cases"` or `"expect_policy_error"`).
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .filter(|f| {
                    std::fs::read_to_string(f).is_ok_and(|t| {
                        t.contains("\"cases\"") || t.contains("\"expect_policy_error\"")
                    })
                })
                .collect();
            found.sort();
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(out)
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
