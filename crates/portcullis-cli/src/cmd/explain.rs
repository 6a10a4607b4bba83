//! `portcullis explain POLICY --peer ADDR:PORT ...`: decide one request on
//! the core and show why, as text or (`--format json`) one JSON object.
//!
//! Both are rendered from one [`Explained`], built from what the core
//! returns; header values go through [`Policy::shown`], so a value the
//! policy read from the environment (a function key) appears only as
//! `(from env NAME)`, in text and JSON alike.

use std::net::SocketAddr;
use std::path::PathBuf;

use portcullis_core::addr::parse_socket;
use portcullis_core::{Action, EditOp, Policy, Request, Transport, Verdict};
use serde::Serialize;

use crate::style::Style;
use crate::Outcome;

/// Decide one request and show why: every rule considered, the client
/// address and its source, the header edits.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The policy document.
    #[arg(value_name = "POLICY")]
    policy: PathBuf,
    /// The connection's peer address (what Envoy sees as the downstream).
    #[arg(long, value_name = "ADDR:PORT", value_parser = socket)]
    peer: SocketAddr,
    /// The local address the request arrived on [default: 127.0.0.1:443,
    /// or :80 with --plain].
    #[arg(long, value_name = "ADDR:PORT", value_parser = socket)]
    local: Option<SocketAddr>,
    /// The connection is TLS (the default).
    #[arg(long, overrides_with = "plain")]
    tls: bool,
    /// The connection is plain text.
    #[arg(long, overrides_with = "tls")]
    plain: bool,
    /// The request came over UDP (HTTP/3).
    #[arg(long)]
    udp: bool,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// The request authority (Host).
    #[arg(
        long,
        visible_alias = "host",
        default_value = "localhost",
        value_name = "HOST"
    )]
    authority: String,
    /// The request path and query.
    #[arg(long, default_value = "/", value_name = "P")]
    path: String,
    /// A request header, 'name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = header)]
    headers: Vec<(String, Vec<u8>)>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Lines for people.
    Text,
    /// One JSON object (`ok`, then the explanation or the policy's errors).
    Json,
}

fn socket(s: &str) -> Result<SocketAddr, String> {
    parse_socket(s)
        .map(|(ip, p)| SocketAddr::new(ip, p))
        .ok_or(format!("{s:?} is not ADDR:PORT ([v6]:port for IPv6)"))
}

fn header(h: &str) -> Result<(String, Vec<u8>), String> {
    let (n, v) = h
        .split_once(':')
        .ok_or(format!("{h:?}: expected 'name: value'"))?;
    Ok((n.trim().to_string(), v.trim_start().as_bytes().to_vec()))
}

/// The explanation of one decision: what both formats print.
#[derive(Debug, Serialize)]
struct Explained {
    ok: bool,
    policy: String,
    file: String,
    request: RequestOut,
    client: ClientOut,
    /// Every scope in document order (empty without scopes).
    scopes: Vec<ScopeOut>,
    /// Refused before any scope was chosen (an unreadable authority or an
    /// ambiguous path): 400.
    scope_ambiguous: bool,
    /// Why it was refused before any scope, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope_refusal: Option<&'static str>,
    /// The scope that applied; `None` for the top level.
    scope: Option<String>,
    /// The request was refused in step 1, before the rules.
    rules_reached: bool,
    /// `default_access` of the applied `network`; `None` without one.
    default_access: Option<&'static str>,
    /// The applied scope's rules in priority order.
    rules: Vec<RuleOut>,
    decision: DecisionOut,
    /// In report mode, what enforce mode would have done.
    would: Option<WouldOut>,
    trace: String,
    /// The local reply, when the request is stopped.
    local_reply: Option<ReplyOut>,
    /// Edits of the request forwarded upstream (none with a local reply).
    request_edits: Vec<EditOut>,
    /// Edits of the upstream's response (none with a local reply).
    response_edits: Vec<EditOut>,
}

#[derive(Debug, Serialize)]
struct RequestOut {
    peer: String,
    local: String,
    protocol: &'static str,
    tls: bool,
    method: String,
    authority: String,
    path: String,
}

#[derive(Debug, Serialize)]
struct ClientOut {
    ip: Option<String>,
    source: &'static str,
    /// Where the client came from and, when unknown, why, in words.
    detail: String,
}

#[derive(Debug, Serialize)]
struct ScopeOut {
    name: String,
    line: u32,
    matched: bool,
    chosen: bool,
    why: String,
}

#[derive(Debug, Serialize)]
struct RuleOut {
    priority: u16,
    access: &'static str,
    name: String,
    line: u32,
    matched: bool,
    decided: bool,
    why: String,
}

#[derive(Debug, Serialize)]
struct DecisionOut {
    verdict: &'static str,
    step: &'static str,
    rule: String,
    /// 0 when forwarded.
    status: u16,
}

#[derive(Debug, Serialize)]
struct WouldOut {
    verdict: &'static str,
    step: &'static str,
    status: u16,
}

#[derive(Debug, Serialize)]
struct ReplyOut {
    status: u16,
    headers: Vec<HeaderOut>,
}

/// A header as shown: `value` is `(from env NAME)` for a value read from
/// the environment, and `from_env` names the variable.
#[derive(Debug, Serialize)]
struct HeaderOut {
    name: String,
    value: String,
    from_env: Option<String>,
}

impl HeaderOut {
    fn of(policy: &Policy, name: &str, value: &[u8]) -> HeaderOut {
        HeaderOut {
            name: name.to_string(),
            value: policy.shown(name, value).to_string(),
            from_env: policy.env_source(name, value).map(str::to_string),
        }
    }
}

#[derive(Debug, Serialize)]
struct EditOut {
    #[serde(skip)]
    kind: EditOp,
    /// `kind`'s word.
    op: &'static str,
    name: String,
    /// The value set or appended (none for removals).
    value: Option<String>,
    from_env: Option<String>,
}

impl EditOut {
    fn of(policy: &Policy, e: &portcullis_core::Edit<'_>) -> EditOut {
        let h = HeaderOut::of(policy, e.name, e.value);
        let has_value = matches!(e.op, EditOp::Replace | EditOp::Append);
        EditOut {
            kind: e.op,
            op: e.op.as_str(),
            name: h.name,
            value: has_value.then_some(h.value),
            from_env: h.from_env,
        }
    }
}

/// The mark of a scope or rule line: `MATCH` (green) for the one that
/// applies, `match` for a match after it, `no` for a miss.
fn mark(style: &Style, matched: bool, applies: bool) -> String {
    match (matched, applies) {
        (true, true) => style.green("MATCH"),
        (true, false) => "match".to_string(),
        (false, _) => "no   ".to_string(),
    }
}

#[derive(Debug, Serialize)]
struct ProblemOut {
    line: u32,
    column: u32,
    path: String,
    message: String,
}

pub(crate) fn run(args: Args, style: &Style) -> Outcome {
    let Args {
        policy: policy_path,
        peer,
        local,
        tls,
        plain,
        udp,
        method,
        authority,
        path,
        headers,
        format,
    } = args;
    // --tls and --plain override each other; neither means TLS.
    let tls = tls || !plain;
    let transport = if udp { Transport::Udp } else { Transport::Tcp };
    let policy_file = policy_path.display().to_string();
    let local =
        local.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], if tls { 443 } else { 80 })));
    let bytes = std::fs::read(&policy_path).map_err(|e| format!("{policy_file}: {e}"))?;
    let policy = match super::parse_policy(&bytes) {
        Ok(p) => p,
        Err(problems) => {
            match format {
                Format::Text => {
                    for p in &problems.0 {
                        println!(
                            "{policy_file}:{}:{}: {}: {}: {}",
                            p.line,
                            p.column,
                            style.red("error"),
                            p.path,
                            p.error
                        );
                    }
                }
                Format::Json => {
                    #[derive(Serialize)]
                    struct Failed {
                        ok: bool,
                        file: String,
                        errors: Vec<ProblemOut>,
                    }
                    let errors = problems
                        .0
                        .iter()
                        .map(|p| ProblemOut {
                            line: p.line,
                            column: p.column,
                            path: p.path.clone(),
                            message: p.error.to_string(),
                        })
                        .collect();
                    print_json(&Failed {
                        ok: false,
                        file: policy_file,
                        errors,
                    })?;
                }
            }
            return Ok(false);
        }
    };
    let req = Request {
        peer,
        local,
        tls,
        transport,
        method: method.as_bytes(),
        authority: authority.as_bytes(),
        path: path.as_bytes(),
        headers: &headers,
    };
    let x = explain(&policy, &policy_file, &req, &headers);
    match format {
        Format::Text => print!("{}", text(&x, style)),
        Format::Json => print_json(&x)?,
    }
    Ok(true)
}

fn print_json(v: &impl Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())? + "\n";
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    Ok(())
}

/// Decides `req` and gathers what the core says about it.
fn explain(
    policy: &Policy,
    file: &str,
    req: &Request<'_>,
    headers: &dyn portcullis_core::Headers,
) -> Explained {
    let d = policy.decide(req);
    let (scopes, scope_refusal) = match policy.explain_scopes(req) {
        Ok(checks) => (
            checks
                .iter()
                .filter_map(|c| {
                    let s = policy.scopes.get(c.index)?;
                    Some(ScopeOut {
                        name: s.name.clone(),
                        line: s.line,
                        matched: c.failed.is_none(),
                        chosen: c.chosen,
                        why: c.reason(policy, req),
                    })
                })
                .collect(),
            None,
        ),
        Err(reason) => (Vec::new(), reason.scope_refusal().map(|r| r.1)),
    };
    let scope_ambiguous = scope_refusal.is_some();
    let scoped = policy.scoped(d.scope);
    let rules_reached = d.step != portcullis_core::Step::Scope;
    let rules = match (&scoped.network, rules_reached) {
        (Some(net), true) => policy
            .explain(req)
            .iter()
            .filter_map(|c| {
                let r = net.rules.get(c.index)?;
                Some(RuleOut {
                    priority: r.priority,
                    access: r.access.as_str(),
                    name: r.name.clone(),
                    line: r.line,
                    matched: c.failed.is_none(),
                    decided: c.decided,
                    why: c.reason(policy, req),
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let (mut local_reply, mut request_edits, mut response_edits) = (None, Vec::new(), Vec::new());
    match policy.act(&d) {
        Action::Reply(reply) => {
            local_reply = Some(ReplyOut {
                status: reply.status,
                headers: reply
                    .headers
                    .iter()
                    .map(|(n, v)| HeaderOut::of(policy, n, v))
                    .collect(),
            });
        }
        Action::Forward(forward) => {
            let mut edits = Vec::new();
            forward.request_edits(headers, &mut edits);
            request_edits = edits.iter().map(|e| EditOut::of(policy, e)).collect();
            edits.clear();
            let none: [(&str, &str); 0] = [];
            forward.response().edits(policy, &none, &mut edits);
            response_edits = edits.iter().map(|e| EditOut::of(policy, e)).collect();
        }
    }
    Explained {
        ok: true,
        policy: policy.name.clone(),
        file: file.to_string(),
        request: RequestOut {
            peer: req.peer.to_string(),
            local: req.local.to_string(),
            protocol: if req.transport == Transport::Udp {
                "udp"
            } else {
                "tcp"
            },
            tls: req.tls,
            method: String::from_utf8_lossy(req.method).into_owned(),
            authority: String::from_utf8_lossy(req.authority).into_owned(),
            path: String::from_utf8_lossy(req.path).into_owned(),
        },
        client: ClientOut {
            ip: d.client.ip.map(|ip| ip.to_string()),
            source: d.client.source.as_str(),
            detail: d.client.describe(),
        },
        scopes,
        scope_ambiguous,
        scope_refusal,
        scope: policy.scope_name(d.scope).map(str::to_string),
        rules_reached,
        default_access: scoped.network.as_ref().map(|n| n.default_access.as_str()),
        rules,
        decision: DecisionOut {
            verdict: d.verdict.as_str(),
            step: d.step.as_str(),
            rule: policy.rule_of(&d).to_string(),
            status: d.status,
        },
        would: d.would.as_ref().map(|w| WouldOut {
            verdict: w.verdict.as_str(),
            step: w.reason.step().as_str(),
            status: w.status,
        }),
        trace: policy.trace(&d).to_string(),
        local_reply,
        request_edits,
        response_edits,
    }
}

/// The text form: one line per fact, the scopes up to the one that
/// applies, every rule with its mark.
fn text(x: &Explained, style: &Style) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let r = &x.request;
    let _ = writeln!(o, "{} {} ({})", style.bold("policy "), x.policy, x.file);
    let _ = writeln!(
        o,
        "{} {} -> {} {} {} {} {}{}",
        style.bold("request"),
        r.peer,
        r.local,
        r.protocol,
        if r.tls { "tls" } else { "plain" },
        r.method,
        r.authority,
        r.path
    );
    let _ = writeln!(o, "{} {}", style.bold("client "), x.client.detail);
    if x.client.ip.is_none() {
        o.push_str("         an unknown client is denied whatever the rules say\n");
    }
    if x.scope_ambiguous {
        let _ = writeln!(o, "{}", style.bold("scopes, in document order:"));
        let _ = writeln!(o, "  {}", x.scope_refusal.unwrap_or_default());
    } else if !x.scopes.is_empty() {
        let _ = writeln!(o, "{}", style.bold("scopes, in document order:"));
        for s in &x.scopes {
            let _ = writeln!(
                o,
                "  {:<28} line {:<4} {} {}",
                s.name,
                s.line,
                mark(style, s.matched, s.chosen),
                s.why
            );
            if s.chosen {
                break;
            }
        }
        if !x.scopes.iter().any(|s| s.chosen) {
            o.push_str("  no scope matched: the top level applies\n");
        }
    }
    if !x.rules_reached {
        o.push_str("rules not reached: the request was refused in step 1\n");
    } else if let Some(default_access) = x.default_access {
        let title = match &x.scope {
            Some(name) => format!("rules of scope {name}, in priority order:"),
            None => "rules, in priority order:".to_string(),
        };
        let _ = writeln!(o, "{}", style.bold(&title));
        if x.client.ip.is_none() {
            o.push_str("  not evaluated: the client is unknown\n");
        }
        for rule in &x.rules {
            let _ = writeln!(
                o,
                "  {:>4} {:<5} {:<28} line {:<4} {} {}",
                rule.priority,
                rule.access,
                rule.name,
                rule.line,
                mark(style, rule.matched, rule.decided),
                rule.why
            );
        }
        if !x.rules.iter().any(|r| r.decided) && x.client.ip.is_some() {
            let _ = writeln!(o, "  no rule matched: default_access is {default_access}");
        }
    } else {
        o.push_str("no network rules: every address passes step 2\n");
    }
    let d = &x.decision;
    let verdict = if d.verdict == Verdict::Forward.as_str() {
        style.green(d.verdict)
    } else {
        style.red(d.verdict)
    };
    // The scope is named when the policy has scopes.
    let scope = match (x.scopes.is_empty() && !x.scope_ambiguous, &x.scope) {
        (true, _) => String::new(),
        (false, Some(name)) => format!("scope {name}, "),
        (false, None) => String::from("top level, "),
    };
    let _ = writeln!(
        o,
        "{} {verdict} at step {} ({scope}rule {}){}",
        style.bold("decision"),
        d.step,
        d.rule,
        if d.status != 0 {
            format!(", status {}", d.status)
        } else {
            String::new()
        }
    );
    if let Some(w) = &x.would {
        let _ = writeln!(
            o,
            "{} report mode: enforce would {} at step {}, status {}",
            style.bold("would   "),
            style.red(w.verdict),
            w.step,
            w.status
        );
    }
    let _ = writeln!(o, "{} {}", style.bold("trace   "), x.trace);
    let show = |o: &mut String, e: &EditOut| {
        let value = e.value.as_deref().unwrap_or("");
        let _ = match e.kind {
            EditOp::Replace => writeln!(o, "    = {}: {value}", e.name),
            EditOp::Append => writeln!(o, "    + {}: {value}", e.name),
            EditOp::RemoveTwins => {
                writeln!(o, "    - {} (its `_` twins)", e.name.replace('-', "_"))
            }
            EditOp::Remove => writeln!(o, "    - {}", e.name),
        };
    };
    match &x.local_reply {
        Some(reply) => {
            let _ = writeln!(
                o,
                "{} {} with headers:",
                style.bold("local reply"),
                reply.status
            );
            for h in &reply.headers {
                let _ = writeln!(o, "    {}: {}", h.name, h.value);
            }
        }
        None => {
            let _ = writeln!(
                o,
                "{} ({} edits)",
                style.bold("request headers to the upstream"),
                x.request_edits.len()
            );
            x.request_edits.iter().for_each(|e| show(&mut o, e));
            let _ = writeln!(
                o,
                "{} ({} edits)",
                style.bold("response headers to the client"),
                x.response_edits.len()
            );
            x.response_edits.iter().for_each(|e| show(&mut o, e));
        }
    }
    o
}
