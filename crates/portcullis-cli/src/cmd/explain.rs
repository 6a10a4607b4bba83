//! `portcullis explain POLICY --peer ADDR:PORT ...`: decide one request on
//! the core and show why.

use std::net::SocketAddr;
use std::path::PathBuf;

use portcullis_core::addr::parse_socket;
use portcullis_core::{EditOp, Request, Transport, Verdict};

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

/// The mark of a scope or rule line: `MATCH` (green) for the one that
/// applies, `match` for a match after it, `no` for a miss.
fn mark(style: &Style, matched: bool, applies: bool) -> String {
    match (matched, applies) {
        (true, true) => style.green("MATCH"),
        (true, false) => "match".to_string(),
        (false, _) => "no   ".to_string(),
    }
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
        ..
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
    let d = policy.decide(&req);
    println!("{} {} ({policy_file})", style.bold("policy "), policy.name);
    println!(
        "{} {peer} -> {local} {} {} {method} {authority}{path}",
        style.bold("request"),
        if transport == Transport::Udp {
            "udp"
        } else {
            "tcp"
        },
        if tls { "tls" } else { "plain" }
    );
    println!("{} {}", style.bold("client "), d.client.describe());
    if d.client.ip.is_none() {
        println!("         an unknown client is denied whatever the rules say");
    }
    if !policy.scopes.is_empty() {
        println!("{}", style.bold("scopes, in document order:"));
        match policy.explain_scopes(&req) {
            Ok(checks) => {
                for c in &checks {
                    let Some(s) = policy.scopes.get(c.index) else {
                        continue;
                    };
                    let mark = mark(style, c.failed.is_none(), c.chosen);
                    println!(
                        "  {:<28} line {:<4} {mark} {}",
                        s.name,
                        s.line,
                        c.reason(&policy, &req)
                    );
                    if c.chosen {
                        break;
                    }
                }
                if !checks.iter().any(|c| c.chosen) {
                    println!("  no scope matched: the top level applies");
                }
            }
            Err(reason) => println!(
                "  {}",
                reason.scope_refusal().map(|r| r.1).unwrap_or_default()
            ),
        }
    }
    let scoped = policy.scoped(d.scope);
    if d.step == portcullis_core::Step::Scope {
        println!("rules not reached: the request was refused in step 1");
    } else if let Some(net) = &scoped.network {
        match policy.scope_name(d.scope) {
            Some(name) => println!(
                "{}",
                style.bold(&format!("rules of scope {name}, in priority order:"))
            ),
            None => println!("{}", style.bold("rules, in priority order:")),
        }
        let checks = policy.explain(&req);
        if d.client.ip.is_none() {
            println!("  not evaluated: the client is unknown");
        }
        for c in &checks {
            let Some(r) = net.rules.get(c.index) else {
                continue;
            };
            let mark = mark(style, c.failed.is_none(), c.decided);
            println!(
                "  {:>4} {:<5} {:<28} line {:<4} {mark} {}",
                r.priority,
                r.access.as_str(),
                r.name,
                r.line,
                c.reason(&policy, &req)
            );
        }
        if d.rule.is_none() && d.client.ip.is_some() {
            println!(
                "  no rule matched: default_access is {}",
                net.default_access.as_str()
            );
        }
    } else {
        println!("no network rules: every address passes step 2");
    }
    let verdict = match d.verdict {
        Verdict::Forward => style.green("forward"),
        _ => style.red(d.verdict.as_str()),
    };
    // The scope is named when the policy has scopes.
    let scope = match (policy.scopes.is_empty(), policy.scope_name(d.scope)) {
        (true, _) => String::new(),
        (false, Some(name)) => format!("scope {name}, "),
        (false, None) => String::from("top level, "),
    };
    println!(
        "{} {verdict} at step {} ({scope}rule {}){}",
        style.bold("decision"),
        d.step.as_str(),
        policy.rule_of(&d),
        if d.status != 0 {
            format!(", status {}", d.status)
        } else {
            String::new()
        }
    );
    if let Some(w) = &d.would {
        println!(
            "{} report mode: enforce would {} at step {}, status {}",
            style.bold("would   "),
            style.red(w.verdict.as_str()),
            w.reason.step().as_str(),
            w.status
        );
    }
    println!("{} {}", style.bold("trace   "), policy.trace(&d));
    let show = |e: &portcullis_core::Edit<'_>| match e.op {
        EditOp::Remove => format!("    - {}", e.name),
        EditOp::Replace => format!("    = {}: {}", e.name, String::from_utf8_lossy(e.value)),
        EditOp::Append => format!("    + {}: {}", e.name, String::from_utf8_lossy(e.value)),
        EditOp::RemoveTwins => format!("    - {} (its `_` twins)", e.name.replace('-', "_")),
    };
    match policy.local_reply(&d) {
        Some(reply) => {
            println!(
                "{} {} with headers:",
                style.bold("local reply"),
                reply.status
            );
            for (n, v) in &reply.headers {
                println!("    {n}: {}", String::from_utf8_lossy(v));
            }
        }
        None => {
            let mut edits = Vec::new();
            scoped.request_edits(&headers, &mut edits);
            println!(
                "{} ({} edits)",
                style.bold("request headers to the upstream"),
                edits.len()
            );
            edits.iter().for_each(|e| println!("{}", show(e)));
            edits.clear();
            let none: [(&str, &str); 0] = [];
            scoped.response_edits(d.secure, &none, &mut edits);
            println!(
                "{} ({} edits)",
                style.bold("response headers to the client"),
                edits.len()
            );
            edits.iter().for_each(|e| println!("{}", show(e)));
        }
    }
    Ok(true)
}
