//! The browser playground's engine.
//!
//! Why one file over 800 lines: it is the whole wasm-bindgen surface (one
//! exported function per playground call) and its unit tests; each export
//! is a thin adapter over the core, the harness, the diff or the importers.
//!
//! A thin wasm-bindgen shell: every exported function takes JSON (or policy
//! text), calls [`portcullis_core`] and returns JSON for the page to render.
//! Parsing, decisions, header edits and rule explanations happen in the
//! core; reading and running test files in the one runner
//! (`portcullis-harness`, the same code every other engine runs); this
//! crate only converts.
//!
//! The functions are plain Rust (`&str` in, `String` out), so the native
//! corpus example and the unit tests call exactly what the page calls.

use std::collections::BTreeMap;

use portcullis_core::{Field, Policy, Problems, Shown};
use portcullis_harness::native::{self, run_core};
use portcullis_harness::{
    run_file, show_bytes, Case, CaseStatus, FileError, HeaderList, LoadError, PolicySource, Suite,
    TestFile,
};
use serde::Serialize;
use wasm_bindgen::prelude::wasm_bindgen;

/// One problem with a document, for the editor.
#[derive(Debug, Serialize)]
struct ProblemOut {
    line: u32,
    column: u32,
    path: String,
    message: String,
}

fn problems(p: &Problems) -> Vec<ProblemOut> {
    p.0.iter()
        .map(|p| ProblemOut {
            line: p.line,
            column: p.column,
            path: p.path.clone(),
            message: p.error.to_string(),
        })
        .collect()
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v)
        .unwrap_or_else(|e| format!("{{\"ok\":false,\"fatal\":{:?}}}", e.to_string()))
}

/// The environment panel's variables (`{"NAME": "value"}`), for
/// `value_from` / `values_from`. They stay in the page: never in the URL,
/// never in results.
fn env_of(env_json: Option<String>) -> Vec<(String, String)> {
    env_json
        .and_then(|j| serde_json::from_str::<std::collections::BTreeMap<String, String>>(&j).ok())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default()
}

/// Validates a policy: `{ok, name, rules, errors: [{line, column, path, message}]}`.
/// `env_json`: the environment panel (`{"NAME": "value"}`).
#[wasm_bindgen]
pub fn check_policy(text: &str, env_json: Option<String>) -> String {
    let env = env_of(env_json);
    #[derive(Serialize)]
    struct Out {
        ok: bool,
        name: Option<String>,
        rules: usize,
        errors: Vec<ProblemOut>,
    }
    let out = match Policy::parse_with_env(text.as_bytes(), &env) {
        Ok(p) => Out {
            ok: true,
            rules: p.network.as_ref().map_or(0, |n| n.rules.len()),
            name: Some(p.name),
            errors: Vec::new(),
        },
        Err(e) => Out {
            ok: false,
            name: None,
            rules: 0,
            errors: problems(&e),
        },
    };
    to_json(&out)
}

/// Compares two policies (`portcullis diff OLD NEW`): `{ok, old_errors,
/// new_errors, report, text}` where `report` is the diff's JSON form and
/// `text` what the CLI prints.
#[wasm_bindgen]
pub fn diff_policies(old_text: &str, new_text: &str, env_json: Option<String>) -> String {
    let env = env_of(env_json);
    #[derive(Serialize)]
    struct Out {
        ok: bool,
        old_errors: Vec<ProblemOut>,
        new_errors: Vec<ProblemOut>,
        report: Option<portcullis_diff::Report>,
        text: String,
    }
    let (old, new) = (
        Policy::parse_with_env(old_text.as_bytes(), &env),
        Policy::parse_with_env(new_text.as_bytes(), &env),
    );
    let out = match (&old, &new) {
        (Ok(a), Ok(b)) => {
            let report = portcullis_diff::diff(a, b);
            Out {
                ok: true,
                old_errors: Vec::new(),
                new_errors: Vec::new(),
                text: report.to_string(),
                report: Some(report),
            }
        }
        _ => Out {
            ok: false,
            old_errors: old.as_ref().err().map(problems).unwrap_or_default(),
            new_errors: new.as_ref().err().map(problems).unwrap_or_default(),
            report: None,
            text: String::new(),
        },
    };
    to_json(&out)
}

/// Replays a log (`portcullis replay`): the bytes of a log file of any
/// format the CLI reads (gzip too), named `name` in the report, decided by
/// the current policy and the editor's (`old_text` empty: the decisions the
/// log recorded, `--policy`). Malformed records are skipped and counted
/// (`--keep-going`); the first is named in `malformed` as `name:line`.
/// `{ok, old_errors, new_errors, report, text, error, malformed}`. The log
/// never leaves the page: this runs in the page's worker.
#[wasm_bindgen]
pub fn replay_log(
    old_text: &str,
    new_text: &str,
    log: &[u8],
    name: &str,
    env_json: Option<String>,
) -> String {
    use portcullis_replay::read::{self, Item};
    use portcullis_replay::{Loc, Side, Tally, Unjudged};
    #[derive(Serialize)]
    struct Out {
        ok: bool,
        old_errors: Vec<ProblemOut>,
        new_errors: Vec<ProblemOut>,
        report: Option<portcullis_replay::Report>,
        text: String,
        error: Option<String>,
        malformed: Option<String>,
    }
    let env = env_of(env_json);
    let new = Policy::parse_with_env(new_text.as_bytes(), &env);
    let old =
        (!old_text.trim().is_empty()).then(|| Policy::parse_with_env(old_text.as_bytes(), &env));
    let (new, old) = match (new, old) {
        (Ok(n), None) => (n, None),
        (Ok(n), Some(Ok(o))) => (n, Some(o)),
        (n, o) => {
            return to_json(&Out {
                ok: false,
                old_errors: o
                    .as_ref()
                    .and_then(|o| o.as_ref().err())
                    .map(problems)
                    .unwrap_or_default(),
                new_errors: n.as_ref().err().map(problems).unwrap_or_default(),
                report: None,
                text: String::new(),
                error: None,
                malformed: None,
            })
        }
    };
    let side = match &old {
        Some(p) => Side::Policy(p),
        None => Side::Recorded,
    };
    let mut tally = Tally::default();
    let mut malformed = None;
    let mut error = None;
    match read::from_reader(Box::new(std::io::Cursor::new(log.to_vec()))) {
        Ok(mut input) => {
            let r = read::read(&mut *input, &mut |line, item| {
                match item {
                    Item::Record(r) => tally.add(side, &new, &r, Loc { file: 0, line }),
                    Item::Skip(why) => tally.skipped(why),
                    Item::Malformed(m) => {
                        tally.skipped(Unjudged::Malformed);
                        malformed.get_or_insert_with(|| format!("{name}:{line}: {m}"));
                    }
                }
                std::ops::ControlFlow::Continue(())
            });
            if let Err(e) = r {
                error = Some(format!("{name}:{e}"));
            }
        }
        Err(e) => error = Some(format!("{name}: {e}")),
    }
    let report = tally.report(&[name.to_string()], side, &new);
    to_json(&Out {
        ok: true,
        old_errors: Vec::new(),
        new_errors: Vec::new(),
        text: report.to_string(),
        report: Some(report),
        error,
        malformed,
    })
}

/// A header for display: the value as text, escaped when not UTF-8; a value
/// the policy read from the environment as `(from env NAME)` (the core's
/// [`Policy::shown`]), never in clear, with `from_env` naming the variable.
#[derive(Debug, Serialize)]
struct HeaderOut {
    name: String,
    value: String,
    binary: bool,
    /// Only for values read from the environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    from_env: Option<String>,
}

fn headers_out(policy: &Policy, list: &HeaderList) -> Vec<HeaderOut> {
    list.iter()
        .map(
            |(n, v)| match (policy.shown(n, v), std::str::from_utf8(v)) {
                (shown @ Shown::FromEnv(var), _) => HeaderOut {
                    name: n.clone(),
                    value: shown.to_string(),
                    binary: false,
                    from_env: Some(var.to_string()),
                },
                (Shown::Value(_), Ok(s)) => HeaderOut {
                    name: n.clone(),
                    value: s.to_string(),
                    binary: false,
                    from_env: None,
                },
                (Shown::Value(_), Err(_)) => HeaderOut {
                    name: n.clone(),
                    value: show_bytes(v),
                    binary: true,
                    from_env: None,
                },
            },
        )
        .collect()
}

/// One network rule as the explain view shows it.
#[derive(Debug, Serialize)]
struct RuleOut {
    index: usize,
    name: String,
    priority: u16,
    access: &'static str,
    line: u32,
    path: String,
    source: Vec<String>,
    source_ports: String,
    destination: String,
    destination_ports: String,
    protocol: &'static str,
    /// Every field matches the flow.
    matched: bool,
    /// This rule decided (the first match in priority order).
    decided: bool,
    /// The engine got this far (rules after the deciding one are not reached).
    reached: bool,
    /// The first field that did not match.
    failed_field: Option<&'static str>,
    why: String,
}

/// One scope as the evaluation view shows it.
#[derive(Debug, Serialize)]
struct ScopeOut {
    index: usize,
    name: String,
    line: u32,
    /// Every `match` field holds.
    matched: bool,
    /// This scope applies (the first match in document order).
    chosen: bool,
    /// The engine got this far (scopes after the chosen one are not reached).
    reached: bool,
    /// The first `match` field that did not hold.
    failed_field: Option<&'static str>,
    why: String,
}

/// The request and upstream response of the request builder, in the shape of
/// a policy test case (`{"request": {...}, "upstream": {...}}`), read by the
/// core's test-file reader so the playground and test files agree on every
/// default.
fn read_case(case_json: &str) -> Result<Case, Vec<ProblemOut>> {
    // The wrapper must only ever hold one complete JSON value: check that the
    // builder's text is one before splicing it in.
    if let Err(e) = portcullis_core::json::parse(case_json) {
        let (line, column) = portcullis_core::json::line_col(case_json, e.offset);
        return Err(vec![ProblemOut {
            line,
            column,
            path: String::new(),
            message: e.message.to_string(),
        }]);
    }
    let wrapped = format!("{{\"policy\":\"-\",\"cases\":[{case_json}]}}");
    match TestFile::parse(&wrapped) {
        Ok(tf) => tf.cases.into_iter().next().ok_or_else(|| {
            vec![ProblemOut {
                line: 1,
                column: 1,
                path: String::new(),
                message: "no request".into(),
            }]
        }),
        Err(e) => Err(problems(&e)
            .into_iter()
            .map(|mut p| {
                p.path = p
                    .path
                    .strip_prefix("cases[0].")
                    .unwrap_or(&p.path)
                    .to_string();
                p
            })
            .collect()),
    }
}

/// A header value as a test file writes it: text, or `{"hex": ...}` for
/// bytes that are not UTF-8 (so nothing is lost on the way to the page and
/// back).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ValueOut {
    Text(String),
    Hex { hex: String },
}

fn pairs_out(list: &HeaderList) -> Vec<(String, ValueOut)> {
    list.iter()
        .map(|(n, v)| {
            let value = match std::str::from_utf8(v) {
                Ok(s) => ValueOut::Text(s.to_owned()),
                Err(_) => ValueOut::Hex {
                    hex: v.iter().map(|b| format!("{b:02x}")).collect(),
                },
            };
            (n.clone(), value)
        })
        .collect()
}

/// Reads a test case's `{"request": {...}, "upstream": {...}}` as the
/// test-file reader does, every default filled in, for the request builder:
/// `{ok: true, request: {peer, local, tls, protocol, method, authority,
/// path, headers: [[name, value]]}, upstream: {status, headers}}` (a value
/// is a string or `{"hex": ...}`), or `{ok: false, request_errors}`.
#[wasm_bindgen]
pub fn read_request(case_json: &str) -> String {
    #[derive(Serialize)]
    struct UpstreamOut {
        status: u16,
        headers: Vec<(String, ValueOut)>,
    }
    #[derive(Serialize)]
    struct Out {
        ok: bool,
        request: Option<CaseOut>,
        upstream: Option<UpstreamOut>,
        request_errors: Vec<ProblemOut>,
    }
    let out = match read_case(case_json) {
        Ok(c) => Out {
            ok: true,
            request: Some(CaseOut::of(&c)),
            upstream: Some(UpstreamOut {
                status: c.upstream.status,
                headers: pairs_out(&c.upstream.headers),
            }),
            request_errors: Vec::new(),
        },
        Err(request_errors) => Out {
            ok: false,
            request: None,
            upstream: None,
            request_errors,
        },
    };
    to_json(&out)
}

/// Which parts of the policy exist, for the evaluation pipeline view.
#[derive(Debug, Serialize)]
struct Configured {
    client_ip: &'static str,
    network: bool,
    default_access: Option<&'static str>,
    https_only: bool,
    require_headers: usize,
    request_headers: usize,
    response_headers: usize,
    hsts: bool,
}

/// Decides one request and explains it. `case_json` is
/// `{"request": {...}, "upstream": {...}}` as in a policy test case.
///
/// Returns `{ok: false, errors}` for a rejected policy, `{ok: false,
/// request_errors}` for a bad request, else the decision, the per-rule
/// explanation and the headers before and after the policy's edits.
#[wasm_bindgen]
pub fn evaluate(policy_text: &str, case_json: &str, env_json: Option<String>) -> String {
    let env = env_of(env_json);
    #[derive(Serialize)]
    struct Fail {
        ok: bool,
        errors: Vec<ProblemOut>,
        request_errors: Vec<ProblemOut>,
    }
    #[derive(Serialize)]
    struct Out {
        ok: bool,
        verdict: &'static str,
        status: u16,
        /// The deciding step (in report mode, the one that would have
        /// stopped the request).
        step: &'static str,
        /// `enforce` or `report`.
        mode: &'static str,
        /// What enforce mode does: `verdict` itself, or in report mode the
        /// verdict of a request it forwards instead.
        would_verdict: &'static str,
        /// The status enforce mode gives.
        would_status: u16,
        rule: String,
        rule_index: Option<usize>,
        rule_line: Option<u32>,
        /// The scope that applied, `None` for the top level.
        scope: Option<String>,
        /// Every scope, in document order, and why it did or did not apply.
        scopes: Vec<ScopeOut>,
        /// The request was refused before any scope was chosen (an
        /// unreadable authority or an ambiguous path).
        scope_ambiguous: bool,
        /// What was refused before any scope (`unreadable authority`,
        /// `ambiguous path`).
        scope_refused: Option<&'static str>,
        /// Why it was refused before any scope, in words.
        scope_refusal: Option<&'static str>,
        client_ip: Option<String>,
        client_source: &'static str,
        /// Where the client came from and, when unknown, why, in words.
        client_detail: String,
        secure: bool,
        location: Option<String>,
        trace: String,
        body: String,
        configured: Configured,
        rules: Vec<RuleOut>,
        explain_agrees: bool,
        request_headers_before: Vec<HeaderOut>,
        request_headers_after: Option<Vec<HeaderOut>>,
        response_headers_before: Option<Vec<HeaderOut>>,
        response_headers_after: Vec<HeaderOut>,
        case: CaseOut,
    }
    let policy = match Policy::parse_with_env(policy_text.as_bytes(), &env) {
        Ok(p) => p,
        Err(e) => {
            return to_json(&Fail {
                ok: false,
                errors: problems(&e),
                request_errors: Vec::new(),
            })
        }
    };
    let case = match read_case(case_json) {
        Ok(c) => c,
        Err(errs) => {
            return to_json(&Fail {
                ok: false,
                errors: Vec::new(),
                request_errors: errs,
            })
        }
    };
    let req = case.request.as_request();
    let d = policy.decide(&req);
    let outcome = run_core(&policy, &case);
    let checks = policy.explain(&req);
    let client_ip = d.client.ip;
    // The sections that applied: the scope's effective policy.
    let applied = policy.scoped(d.scope);
    let scope_checks = policy.explain_scopes(&req);
    let scope_ambiguous = scope_checks.is_err();
    let refusal = scope_checks.as_ref().err().and_then(|r| r.scope_refusal());
    let (scope_refused, scope_refusal) = (refusal.map(|r| r.0), refusal.map(|r| r.1));
    let scope_checks = scope_checks.unwrap_or_default();
    let chosen_at = scope_checks.iter().position(|c| c.chosen);
    let scopes_out: Vec<ScopeOut> = scope_checks
        .iter()
        .filter_map(|c| {
            let s = policy.scopes.get(c.index)?;
            Some(ScopeOut {
                index: c.index,
                name: s.name.clone(),
                line: s.line,
                matched: c.failed.is_none(),
                chosen: c.chosen,
                reached: chosen_at.is_none_or(|at| c.index <= at),
                failed_field: c.failed.map(|f| f.as_str()),
                why: c.reason(&policy, &req),
            })
        })
        .collect();
    let rules = applied.network.as_ref().map(|n| n.rules.as_slice());
    let decided_at = checks.iter().position(|c| c.decided);
    let rules_out: Vec<RuleOut> = checks
        .iter()
        .filter_map(|c| {
            let r = rules?.get(c.index)?;
            let why = c.reason(&policy, &req);
            Some(RuleOut {
                index: c.index,
                name: r.name.clone(),
                priority: r.priority,
                access: r.access.as_str(),
                line: r.line,
                path: r.path.clone(),
                source: r.source_text.clone(),
                source_ports: r.source_ports.to_string(),
                destination: if r.destination_text.is_empty() {
                    "*".to_string()
                } else {
                    r.destination_text.join(", ")
                },
                destination_ports: r.destination_ports.to_string(),
                protocol: r.protocol.as_str(),
                matched: c.failed.is_none(),
                decided: c.decided,
                reached: decided_at.is_none_or(|at| c.index <= at),
                failed_field: c.failed.map(Field::as_str),
                why,
            })
        })
        .collect();
    // The per-rule walk and the compiled matcher must agree (the core's
    // property tests say so; the page shows it if they ever do not).
    let explain_agrees = client_ip.is_none() || decided_at == d.rule;
    let rule_line = d
        .rule
        .and_then(|i| rules.and_then(|r| r.get(i)))
        .map(|r| r.line);
    let forwarded = outcome.upstream_headers.is_some();
    let out = Out {
        ok: true,
        verdict: d.verdict.as_str(),
        status: outcome.status,
        step: d.deciding_step().as_str(),
        mode: policy.mode.as_str(),
        would_verdict: outcome.would_verdict.as_str(),
        would_status: outcome.would_status,
        rule: outcome.rule.clone(),
        rule_index: d.rule,
        rule_line,
        scope: policy.scope_name(d.scope).map(str::to_string),
        scopes: scopes_out,
        scope_ambiguous,
        scope_refused,
        scope_refusal,
        client_ip: client_ip.map(|ip| ip.to_string()),
        client_source: d.client.source.as_str(),
        client_detail: d.client.describe(),
        secure: d.secure,
        location: outcome.location.clone(),
        trace: outcome.trace.clone(),
        body: String::from_utf8_lossy(&outcome.body).into_owned(),
        configured: Configured {
            client_ip: applied.client_ip.from.as_str(),
            network: applied.network.is_some(),
            default_access: applied.network.as_ref().map(|n| n.default_access.as_str()),
            https_only: applied.https_only.is_some(),
            require_headers: applied.require_headers.len(),
            request_headers: applied.request_headers.len(),
            response_headers: applied.response_headers.len(),
            hsts: applied.hsts.is_some(),
        },
        rules: rules_out,
        explain_agrees,
        request_headers_before: headers_out(&policy, &case.request.headers),
        request_headers_after: outcome
            .upstream_headers
            .as_ref()
            .map(|h| headers_out(&policy, h)),
        response_headers_before: forwarded.then(|| headers_out(&policy, &case.upstream.headers)),
        response_headers_after: headers_out(&policy, &outcome.response_headers),
        case: CaseOut::of(&case),
    };
    to_json(&out)
}

/// The request as the test-file reader read it (defaults filled in).
#[derive(Debug, Serialize)]
struct CaseOut {
    peer: String,
    local: String,
    tls: bool,
    protocol: &'static str,
    method: String,
    authority: String,
    path: String,
    headers: Vec<(String, ValueOut)>,
}

impl CaseOut {
    fn of(c: &Case) -> CaseOut {
        CaseOut {
            peer: c.request.peer.to_string(),
            local: c.request.local.to_string(),
            tls: c.request.tls,
            protocol: c.request.transport.as_str(),
            method: c.request.method.clone(),
            authority: c.request.authority.clone(),
            path: c.request.path.clone(),
            headers: pairs_out(&c.request.headers),
        }
    }
}

#[derive(Debug, Serialize)]
struct MismatchOut {
    field: String,
    expected: String,
    seen: String,
}

#[derive(Debug, Serialize)]
struct CaseResult {
    name: String,
    line: u32,
    pass: bool,
    mismatches: Vec<MismatchOut>,
    trace: String,
}

#[derive(Debug, Serialize)]
struct PolicyErrorCheck {
    expected: Vec<String>,
    missing: Vec<String>,
    accepted: bool,
    errors: Vec<ProblemOut>,
}

/// Runs a policy test file (policy-tests-v1). `policies_json` maps each
/// policy path a test file may name to that file's text:
/// `{"layered-security.json": "{...}"}` (the page fetches them).
///
/// Returns `{ok, pass, errors, policy_errors, expect_policy_error, cases:
/// [{name, line, pass, mismatches: [{field, expected, seen}], trace}],
/// passed, failed}`.
#[wasm_bindgen]
pub fn run_tests(test_file_text: &str, policies_json: &str) -> String {
    #[derive(Serialize, Default)]
    struct Out {
        ok: bool,
        pass: bool,
        errors: Vec<ProblemOut>,
        policy: Option<String>,
        policy_errors: Vec<ProblemOut>,
        expect_policy_error: Option<PolicyErrorCheck>,
        cases: Vec<CaseResult>,
        passed: usize,
        failed: usize,
    }
    let mut out = Out::default();
    let policies: BTreeMap<String, String> = if policies_json.trim().is_empty() {
        BTreeMap::new()
    } else {
        match serde_json::from_str(policies_json) {
            Ok(m) => m,
            Err(e) => {
                out.errors.push(ProblemOut {
                    line: 0,
                    column: 0,
                    path: "policy".into(),
                    message: format!("policy files: {e}"),
                });
                return to_json(&out);
            }
        }
    };
    let suite = Suite::from_text("test file", test_file_text, |p| {
        policies
            .get(p)
            .cloned()
            .ok_or_else(|| (p.to_owned(), format!("policy file {p:?} was not provided")))
    });
    let suite = match suite {
        Ok(s) => s,
        Err(LoadError::Invalid { problems: e, .. }) => {
            out.errors = problems(&e);
            return to_json(&out);
        }
        Err(LoadError::Policy { path, error }) => {
            out.policy = Some(path);
            out.errors.push(ProblemOut {
                line: 0,
                column: 0,
                path: "policy".into(),
                message: error,
            });
            return to_json(&out);
        }
        Err(e) => {
            out.errors.push(ProblemOut {
                line: 0,
                column: 0,
                path: String::new(),
                message: e.to_string(),
            });
            return to_json(&out);
        }
    };
    out.policy = Some(match &suite.file.policy {
        PolicySource::Inline(_) => "(inline)".into(),
        PolicySource::Path(p) => p.clone(),
    });
    out.ok = true;
    let report = run_file(&suite, native::load, native::run);
    let problems_of =
        |r: &portcullis_harness::Rejection| r.problems.as_ref().map(problems).unwrap_or_default();
    if let Some(rc) = &report.rejection {
        out.pass = rc.passed();
        out.expect_policy_error = Some(PolicyErrorCheck {
            expected: rc.expected.clone(),
            missing: rc.missing.clone(),
            accepted: rc.rejection.is_none(),
            errors: rc.rejection.as_ref().map(problems_of).unwrap_or_default(),
        });
        return to_json(&out);
    }
    if let Some(FileError::PolicyRejected(r)) = &report.error {
        out.policy_errors = problems_of(r);
        return to_json(&out);
    }
    for c in report.cases {
        let pass = c.passed();
        let mismatches = match c.status {
            CaseStatus::Failed(m) => m
                .into_iter()
                .map(|m| MismatchOut {
                    field: m.field,
                    expected: m.expected,
                    seen: m.seen,
                })
                .collect(),
            _ => Vec::new(),
        };
        if pass {
            out.passed += 1;
        } else {
            out.failed += 1;
        }
        out.cases.push(CaseResult {
            name: c.name,
            line: c.line,
            pass,
            mismatches,
            trace: c.trace,
        });
    }
    out.pass = out.failed == 0;
    to_json(&out)
}

/// The Import view: an APIM policy (`kind` = `apim`), NSG rules (`nsg`) or
/// App Service access restrictions (`app-service`)
/// into a policy document, optionally resolving service tags through a
/// pasted snapshot. Returns `{ok, policy, report: {items, variables},
/// error}`: `policy` is null when the report holds an error; `error` says
/// why the snapshot or the kind could not be used.
#[wasm_bindgen]
pub fn import_policy(kind: &str, text: &str, service_tags: &str, strict: bool) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        ok: bool,
        policy: Option<&'a str>,
        report: Option<&'a portcullis_import::Report>,
        error: Option<String>,
    }
    let fail = |e: String| {
        to_json(&Out {
            ok: false,
            policy: None,
            report: None,
            error: Some(e),
        })
    };
    let snap = if service_tags.trim().is_empty() {
        None
    } else {
        match portcullis_import::tags::Snapshot::parse(service_tags) {
            Ok(s) => Some(s),
            Err(e) => return fail(format!("service tags {e}")),
        }
    };
    let mut o = portcullis_import::Options::new("imported");
    o.strict = strict;
    o.service_tags = snap.as_ref();
    o.source = "the pasted input".to_string();
    let out = match kind {
        "apim" => portcullis_import::apim::import(text, &o),
        "nsg" => portcullis_import::nsg::import(text, &o),
        "app-service" => portcullis_import::appsvc::import(text, &o),
        other => return fail(format!("unknown kind {other:?} (apim, nsg or app-service)")),
    };
    to_json(&Out {
        ok: out.policy.is_some(),
        policy: out.policy.as_deref(),
        report: Some(&out.report),
        error: None,
    })
}

/// The engine's version, shown in the page footer.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod import_tests {
    use super::import_policy;

    #[test]
    fn imports_and_reports_like_the_importer() {
        let xml = "<policies>\n<inbound><rate-limit calls=\"5\"/><set-header name=\"x-a\"><value>1</value></set-header></inbound></policies>";
        let v: serde_json::Value =
            serde_json::from_str(&import_policy("apim", xml, "", false)).unwrap();
        assert_eq!(v["ok"], true);
        assert!(v["policy"].as_str().unwrap().contains("\"set\": \"x-a\""));
        let items = v["report"]["items"].as_array().unwrap();
        assert!(items
            .iter()
            .any(|i| i["kind"] == "unsupported" && i["what"] == "rate-limit" && i["line"] == 2));
        let v: serde_json::Value =
            serde_json::from_str(&import_policy("apim", xml, "", true)).unwrap();
        assert_eq!(v["ok"], false);
        assert!(v["policy"].is_null());
        let v: serde_json::Value =
            serde_json::from_str(&import_policy("nsg", "[]", "{", false)).unwrap();
        assert!(v["error"].as_str().unwrap().starts_with("service tags 1:2"));
        let az = r#"{"ipSecurityRestrictions": [{"name": "office", "ipAddress": "203.0.113.0/24", "action": "Allow", "priority": 100}], "scmIpSecurityRestrictionsUseMain": true}"#;
        let v: serde_json::Value =
            serde_json::from_str(&import_policy("app-service", az, "", true)).unwrap();
        assert_eq!(v["ok"], true, "{v}");
        assert!(v["policy"].as_str().unwrap().contains("\"203.0.113.0/24\""));
        let v: serde_json::Value =
            serde_json::from_str(&import_policy("yaml", "", "", false)).unwrap();
        assert!(v["error"].as_str().unwrap().contains("unknown kind"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const POLICY: &str = r#"{
  "name": "t",
  "network": {
    "rules": [
      { "name": "deny-bad", "priority": 100, "access": "deny", "source": ["10.9.0.0/16"] },
      { "name": "web", "priority": 200, "access": "allow", "source": ["10.0.0.0/8"],
        "destination_ports": ["443"], "protocol": "tcp" },
      { "name": "h3", "priority": 300, "access": "allow", "source": ["*"], "protocol": "udp" }
    ]
  },
  "request_headers": [ { "set": "x-k", "value": "K" } ],
  "response_headers": [ { "remove": "Server" } ]
}"#;

    fn parse(s: String) -> Value {
        serde_json::from_str(&s).unwrap()
    }

    fn eval(case: Value) -> Value {
        parse(evaluate(POLICY, &case.to_string(), None))
    }

    #[test]
    fn replay_log_reports_the_callers_a_change_cuts_off() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let read = |p: &str| std::fs::read(root.join(p)).unwrap();
        let old = String::from_utf8(read("policy-samples/layered-security.json")).unwrap();
        let new = String::from_utf8(read("tests/replay/layered-security.no-fe1ase.json")).unwrap();
        let log = read("tests/replay/layered-security.nsg-v2.json");
        let name = "tests/replay/layered-security.nsg-v2.json";
        let out = parse(replay_log(&old, &new, &log, name, None));
        assert_eq!(out["ok"], true);
        // The same report the CLI prints (tests/replay).
        let expected = String::from_utf8(read("tests/replay/layered-security.nsg-v2.txt")).unwrap();
        assert_eq!(out["text"], expected.split_once('\n').unwrap().1);
        assert_eq!(
            out["report"]["newly_denied"][0]["clients"][0]["client"],
            "65.52.10.20"
        );
        let over_time = out["report"]["denied_over_time"].as_array().unwrap();
        assert_eq!(
            over_time
                .iter()
                .map(|b| b[1].as_u64().unwrap())
                .sum::<u64>(),
            6
        );
        // Gzipped, and against the recorded decisions.
        let gz = read("tests/replay/layered-security.nsg-v1.json.gz");
        let out = parse(replay_log("", &new, &gz, "v1.json.gz", None));
        assert_eq!(out["report"]["old"], "recorded");
        assert_eq!(out["report"]["records"], 4);
        let bad = parse(replay_log(&old, &new, b"{\"records\":[", "x", None));
        assert!(bad["error"].as_str().unwrap().starts_with("x:1:"), "{bad}");
        assert_eq!(parse(replay_log("{", &new, &log, "x", None))["ok"], false);
    }

    #[test]
    fn diff_policies_reports_the_changed_flows() {
        let moved = POLICY.replace("\"priority\": 100", "\"priority\": 250");
        let out = parse(diff_policies(POLICY, &moved, None));
        assert_eq!(out["ok"], true);
        let c = &out["report"]["network"]["changes"][0];
        assert_eq!(c["kind"], "newly-allowed");
        assert_eq!(c["old"]["rule"], "deny-bad");
        assert_eq!(c["new"]["rule"], "web");
        assert_eq!(c["flows"][0]["source"][0], "10.9.0.0/16");
        assert!(out["text"]
            .as_str()
            .unwrap()
            .starts_with("newly allowed:\n"));
        let same = parse(diff_policies(POLICY, POLICY, None));
        assert_eq!(same["text"], "no change in who may call\n");
        let bad = parse(diff_policies(POLICY, "{", None));
        assert_eq!(bad["ok"], false);
        assert_eq!(bad["old_errors"].as_array().unwrap().len(), 0);
        assert_eq!(bad["new_errors"][0]["line"], 1);
    }

    #[test]
    fn diff_policies_reports_changes_inside_scopes() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/diff/");
        let read = |f: &str| std::fs::read_to_string(format!("{root}{f}")).unwrap();
        let (old, new) = (read("two-apis.old.json"), read("two-apis.admin-wider.json"));
        let out = parse(diff_policies(&old, &new, None));
        assert_eq!(out["ok"], true, "{out}");
        let g = &out["report"]["scopes"]["groups"][0];
        assert_eq!(g["old"]["scope"], "orders-admin");
        assert_eq!(g["new"]["scope"], "orders-admin");
        assert_eq!(
            g["regions"][0]["description"],
            "host orders.contoso.net, paths /admin/*, any method"
        );
        assert_eq!(g["network"]["changes"][0]["kind"], "newly-allowed");
        let expected = read("two-apis.admin-wider.txt");
        assert_eq!(out["text"], expected.split_once('\n').unwrap().1);
    }

    #[test]
    fn the_environment_panel_feeds_value_from() {
        let policy = r#"{"name": "p", "request_headers": [
            {"set": "x-functions-key", "value_from": {"env": "FUNCTION_KEY"}}]}"#;
        let missing = parse(check_policy(policy, None));
        assert_eq!(missing["ok"], false);
        assert_eq!(
            missing["errors"][0]["path"],
            "request_headers[0].value_from.env"
        );
        let ok = parse(check_policy(
            policy,
            Some(r#"{"FUNCTION_KEY": "k-1"}"#.into()),
        ));
        assert_eq!(ok["ok"], true, "{ok}");
        let case = r#"{"request": {"peer": "10.0.0.1:1"}}"#;
        let raw = evaluate(policy, case, Some(r#"{"FUNCTION_KEY": "k-1"}"#.into()));
        let out = parse(raw.clone());
        assert_eq!(out["verdict"], "forward", "{out}");
        // The key reaches the backend but is shown only by its variable.
        assert!(!raw.contains("k-1"), "{raw}");
        let after = out["request_headers_after"].as_array().unwrap();
        let key = after
            .iter()
            .find(|h| h["name"] == "x-functions-key")
            .unwrap();
        assert_eq!(key["value"], "(from env FUNCTION_KEY)");
        assert_eq!(key["from_env"], "FUNCTION_KEY");
    }

    #[test]
    fn check_policy_reports_line_and_path() {
        let ok = parse(check_policy(POLICY, None));
        assert_eq!(ok["ok"], true);
        assert_eq!(ok["rules"], 3);
        let bad = POLICY.replace("\"priority\": 200", "\"priority\": 5");
        let out = parse(check_policy(&bad, None));
        assert_eq!(out["ok"], false);
        assert_eq!(out["errors"][0]["path"], "network.rules[1].priority");
        assert_eq!(out["errors"][0]["line"], 6);
        let syntax = parse(check_policy("{\n  \"name\": \"x\",,\n}", None));
        assert_eq!(syntax["errors"][0]["line"], 2);
        assert_eq!(syntax["errors"][0]["path"], "");
    }

    #[test]
    fn evaluate_names_the_scope_and_why_earlier_ones_did_not_apply() {
        let policy = r#"{"name": "gw",
          "network": {"rules": [{"name": "anyone", "priority": 100, "access": "allow", "source": ["*"]}]},
          "scopes": [
            {"name": "admin", "match": {"paths": ["/admin/*"]},
             "network": {"rules": [{"name": "mgmt", "priority": 100, "access": "allow", "source": ["10.0.0.0/8"]}]}},
            {"name": "orders", "match": {"paths": ["/orders/*"], "methods": ["GET"]}}
          ]}"#;
        let ev = |case: Value| parse(evaluate(policy, &case.to_string(), None));
        let out = ev(json!({"request": {"peer": "10.1.2.3:5000", "path": "/x/../orders/1"}}));
        assert_eq!(out["scope"], "orders");
        assert_eq!(out["scope_ambiguous"], false);
        let scopes = out["scopes"].as_array().unwrap();
        assert_eq!(scopes[0]["failed_field"], "paths");
        assert_eq!(
            scopes[0]["why"],
            "path /orders/1 (as sent: /x/../orders/1) is not in paths [/admin/*]"
        );
        assert_eq!(scopes[1]["chosen"], true);
        assert_eq!(out["rules"][0]["name"], "anyone");
        let out = ev(json!({"request": {"peer": "65.52.10.20:5000", "path": "/admin"}}));
        assert_eq!(out["scope"], "admin");
        assert_eq!(out["verdict"], "deny");
        assert_eq!(out["rules"][0]["name"], "mgmt");
        assert_eq!(out["scopes"][1]["reached"], false);
        assert!(out["trace"].as_str().unwrap().ends_with(" admin default"));
        let out = ev(json!({"request": {"peer": "10.1.2.3:5000", "path": "/admin%2fx"}}));
        assert_eq!(out["scope"], Value::Null);
        assert_eq!(out["scope_ambiguous"], true);
        assert_eq!(out["scope_refused"], "ambiguous path");
        assert!(out["scope_refusal"]
            .as_str()
            .unwrap()
            .starts_with("the path is ambiguous"));
        assert_eq!(out["status"], 400);
        assert_eq!(out["step"], "scope");
    }

    #[test]
    fn evaluate_explains_every_rule() {
        let out = eval(json!({"request": {"peer": "10.1.2.3:5000", "local": "10.0.0.4:8443"}}));
        assert_eq!(out["verdict"], "deny");
        assert_eq!(out["rule"], "default");
        assert_eq!(out["rule_index"], Value::Null);
        let rules = out["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0]["failed_field"], "source");
        assert_eq!(
            rules[0]["why"],
            "client 10.1.2.3 is not in source [10.9.0.0/16]"
        );
        assert_eq!(rules[1]["failed_field"], "destination_ports");
        assert_eq!(
            rules[1]["why"],
            "local port 8443 is not in destination_ports 443"
        );
        assert_eq!(rules[2]["failed_field"], "protocol");
        assert!(rules.iter().all(|r| r["reached"] == true));
        assert_eq!(out["explain_agrees"], true);

        let out = eval(json!({"request": {"peer": "10.9.0.1:5000", "local": "10.0.0.4:443"}}));
        assert_eq!(out["rule"], "deny-bad");
        assert_eq!(out["rule_line"], 5);
        assert_eq!(out["rules"][0]["decided"], true);
        assert_eq!(out["rules"][1]["reached"], false);
        assert_eq!(out["rules"][1]["matched"], true);
        assert_eq!(out["request_headers_after"], Value::Null);
        assert!(!out["body"].as_str().unwrap().is_empty());
    }

    #[test]
    fn evaluate_shows_header_edits_both_ways() {
        let out = eval(json!({
            "request": {"peer": "10.1.2.3:5000", "local": "10.0.0.4:443",
                        "headers": [["x-k", "client"], ["x-bin", {"hex": "ff00"}]]},
            "upstream": {"status": 201, "headers": [["Server", "IIS"], ["a", "b"]]}
        }));
        assert_eq!(out["verdict"], "forward");
        assert_eq!(out["status"], 201);
        assert_eq!(out["request_headers_before"][0]["value"], "client");
        assert_eq!(out["request_headers_before"][1]["binary"], true);
        assert_eq!(out["request_headers_before"][1]["value"], "\"\\xff\\u{0}\"");
        let after = &out["request_headers_after"];
        assert_eq!(
            after[0],
            json!({"name": "x-k", "value": "K", "binary": false})
        );
        assert_eq!(out["response_headers_before"].as_array().unwrap().len(), 2);
        assert_eq!(
            out["response_headers_after"],
            json!([{"name": "a", "value": "b", "binary": false}])
        );
    }

    #[test]
    fn evaluate_reports_bad_requests_and_policies() {
        let out = eval(json!({"request": {"peer": "10.1.2.3"}}));
        assert_eq!(out["ok"], false);
        assert_eq!(out["request_errors"][0]["path"], "request.peer");
        let out = parse(evaluate(POLICY, "{\"request\": {}}]}, {\"x\": 1", None));
        assert_eq!(out["ok"], false);
        assert_eq!(out["request_errors"][0]["path"], "");
        let out = parse(evaluate("{", "{}", None));
        assert_eq!(out["ok"], false);
        assert_eq!(out["errors"][0]["line"], 1);
    }

    #[test]
    fn read_request_fills_defaults_and_keeps_bytes() {
        let out = parse(read_request(
            &json!({"request": {"peer": "[2001:db8::1]:7", "tls": false,
                                "headers": [["x-bin", {"hex": "c328ff"}], ["a", "b"]]},
                    "expect": {"verdict": "deny"}})
            .to_string(),
        ));
        assert_eq!(out["ok"], true);
        let r = &out["request"];
        assert_eq!(r["peer"], "[2001:db8::1]:7");
        assert_eq!(r["local"], "127.0.0.1:80");
        assert_eq!(
            (
                r["method"].clone(),
                r["authority"].clone(),
                r["path"].clone()
            ),
            (json!("GET"), json!("localhost"), json!("/"))
        );
        assert_eq!(r["protocol"], "tcp");
        assert_eq!(
            r["headers"],
            json!([["x-bin", {"hex": "c328ff"}], ["a", "b"]])
        );
        assert_eq!(out["upstream"], json!({"status": 200, "headers": []}));
        let bad = parse(read_request("{\"request\": {\"peer\": \"nope\"}}"));
        assert_eq!(bad["ok"], false);
        assert_eq!(bad["request_errors"][0]["path"], "request.peer");
    }

    #[test]
    fn run_tests_checks_cases_and_policy_errors() {
        let file = json!({
            "policy": "p.json",
            "cases": [
                {"name": "ok", "request": {"peer": "10.1.2.3:1", "local": "10.0.0.4:443"},
                 "expect": {"verdict": "forward", "rule": "web"}},
                {"name": "wrong", "request": {"peer": "10.9.2.3:1"},
                 "expect": {"verdict": "forward", "status": 200}}
            ]
        })
        .to_string();
        let policies = json!({ "p.json": POLICY }).to_string();
        let out = parse(run_tests(&file, &policies));
        assert_eq!(out["ok"], true);
        assert_eq!(out["pass"], false);
        assert_eq!(
            (out["passed"].clone(), out["failed"].clone()),
            (json!(1), json!(1))
        );
        let m = &out["cases"][1]["mismatches"];
        assert_eq!(
            m[0],
            json!({"field": "verdict", "expected": "forward", "seen": "deny"})
        );
        assert_eq!(m[1]["field"], "status");
        assert_eq!(
            out["cases"][1]["trace"],
            "deny 403 network peer 10.9.2.3 - deny-bad"
        );

        let missing = parse(run_tests(&file, "{}"));
        assert_eq!(missing["ok"], false);
        assert!(missing["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("p.json"));

        let bad_policy = json!({"name": "x", "network": {"rules": [
            {"name": "a", "priority": 5, "access": "allow", "source": ["*"]}]}});
        let rejected = |paths: Value| {
            let f = json!({"policy": bad_policy, "expect_policy_error": paths}).to_string();
            parse(run_tests(&f, ""))
        };
        let out = rejected(json!(["network.rules[0].priority"]));
        assert_eq!(out["expect_policy_error"]["accepted"], false);
        assert_eq!(out["pass"], true);
        let out = rejected(json!(["network.rules[0].source"]));
        assert_eq!(out["pass"], false);
        assert_eq!(
            out["expect_policy_error"]["missing"],
            json!(["network.rules[0].source"])
        );
    }
}
