//! `portcullis`: check policies, run policy tests, explain decisions.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use portcullis_cli::{collect, default_filter, describe_failure, json_str, run_file, Engine};
use portcullis_core::addr::parse_socket;
use portcullis_core::{EditOp, Policy, Request, Transport, Verdict};

const USAGE: &str = "\
portcullis: the Portcullis policy tool

USAGE:
  portcullis check POLICY...
      Validate policies: every error as file:line:col: path: message, then
      warnings (rules that can never match, allow/deny overlaps, ...).
  portcullis test [--engine wasm|core] [--filter FILE.wasm] [--format text|json] [FILE|DIR]...
      Run policy test files (policy-tests-v1) against the filter under
      wasmtime (default) or the native core. Default: tests/corpus and
      policy-samples.
  portcullis explain POLICY --peer ADDR:PORT [--local ADDR:PORT] [--tls|--plain]
                     [--udp] [--method M] [--authority HOST] [--path P] [-H 'name: value']...
      Decide one request and show why: every rule considered, the client
      address and its source, the header edits.

Exit status: 0 on success, 1 when a policy is invalid or a test fails, 2 on usage errors.
";

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn red(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.paint("1;33", s)
    }
    fn green(&self, s: &str) -> String {
        self.paint("1;32", s)
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let style = Style {
        on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let result = match args.first().map(String::as_str) {
        Some("check") => check(args.get(1..).unwrap_or(&[]), &style),
        Some("test") => test(args.get(1..).unwrap_or(&[]), &style),
        Some("explain") => explain(args.get(1..).unwrap_or(&[]), &style),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(true)
        }
        _ => Err(format!("expected a command\n\n{USAGE}")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("portcullis: {e}");
            ExitCode::from(2)
        }
    }
}

fn check(args: &[String], style: &Style) -> Result<bool, String> {
    if args.is_empty() {
        return Err("check needs at least one policy file".into());
    }
    let mut ok = true;
    for f in args {
        let bytes = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
        match Policy::parse(&bytes) {
            Ok(p) => {
                let lints = p.lints();
                for l in &lints {
                    println!(
                        "{}:{}: {}: {}: {l}",
                        f,
                        l.line,
                        style.yellow("warning"),
                        l.path
                    );
                }
                let rules = p.network.as_ref().map_or(0, |n| n.rules.len());
                let scopes = match p.scopes.len() {
                    0 => String::new(),
                    n => format!(", {n} scopes"),
                };
                println!(
                    "{f}: {} policy {:?}, {rules} rules{scopes}, {} warnings",
                    style.green("ok"),
                    p.name,
                    lints.len()
                );
            }
            Err(problems) => {
                ok = false;
                for p in &problems.0 {
                    let path = if p.path.is_empty() {
                        "(document)"
                    } else {
                        &p.path
                    };
                    println!(
                        "{f}:{}:{}: {}: {}: {}",
                        p.line,
                        p.column,
                        style.red("error"),
                        style.bold(path),
                        p.error
                    );
                }
                println!("{f}: {} error(s)", problems.0.len());
            }
        }
    }
    Ok(ok)
}

fn test(args: &[String], style: &Style) -> Result<bool, String> {
    let mut engine_name = "wasm".to_string();
    let mut filter = None;
    let mut json = false;
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--engine" => engine_name = it.next().ok_or("--engine needs wasm or core")?.clone(),
            "--filter" => filter = Some(PathBuf::from(it.next().ok_or("--filter needs a path")?)),
            "--format" => {
                json = match it.next().map(String::as_str) {
                    Some("json") => true,
                    Some("text") => false,
                    _ => return Err("--format is text or json".into()),
                }
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            p => paths.push(PathBuf::from(p)),
        }
    }
    if paths.is_empty() {
        paths = vec![
            PathBuf::from("tests/corpus"),
            PathBuf::from("policy-samples"),
        ];
    }
    let t0 = Instant::now();
    let engine = match engine_name.as_str() {
        "core" => Engine::Core,
        "wasm" => Engine::wasm(&filter.unwrap_or_else(default_filter))?,
        other => return Err(format!("unknown engine {other:?} (wasm or core)")),
    };
    let compile = t0.elapsed();
    let files = collect(&paths)?;
    let t1 = Instant::now();
    let mut results = Vec::new();
    for f in &files {
        results.extend(run_file(&engine, f));
    }
    let run = t1.elapsed();
    let failed = results.iter().filter(|r| !r.passed()).count();
    let passed = results.len() - failed;
    if json {
        let items: Vec<String> = results
            .iter()
            .map(|r| {
                let mm: Vec<String> = r
                    .mismatches
                    .iter()
                    .map(|m| format!("{{\"field\":{},\"expected\":{},\"seen\":{}}}", json_str(&m.field), json_str(&m.expected), json_str(&m.seen)))
                    .collect();
                format!(
                    "{{\"file\":{},\"line\":{},\"name\":{},\"pass\":{},\"error\":{},\"mismatches\":[{}],\"trace\":{}}}",
                    json_str(&r.file.display().to_string()),
                    r.line,
                    json_str(&r.name),
                    r.passed(),
                    r.error.as_deref().map_or("null".into(), json_str),
                    mm.join(","),
                    json_str(&r.trace)
                )
            })
            .collect();
        println!(
            "{{\"engine\":\"{}\",\"files\":{},\"passed\":{passed},\"failed\":{failed},\"compile_ms\":{:.1},\"run_ms\":{:.1},\"cases\":[{}]}}",
            engine.name(),
            files.len(),
            compile.as_secs_f64() * 1e3,
            run.as_secs_f64() * 1e3,
            items.join(",")
        );
    } else {
        for r in results.iter().filter(|r| !r.passed()) {
            print!(
                "{}",
                describe_failure(r).replacen("FAIL", &style.red("FAIL"), 1)
            );
        }
        println!(
            "engine {}: {} files, module compiled in {:.0} ms, cases ran in {:.0} ms",
            engine.name(),
            files.len(),
            compile.as_secs_f64() * 1e3,
            run.as_secs_f64() * 1e3
        );
        println!("{passed} passed, {failed} failed");
    }
    Ok(failed == 0)
}

fn explain(args: &[String], style: &Style) -> Result<bool, String> {
    let mut policy_file = None;
    let mut peer: Option<SocketAddr> = None;
    let mut local: Option<SocketAddr> = None;
    let mut tls = true;
    let mut transport = Transport::Tcp;
    let mut method = "GET".to_string();
    let mut authority = "localhost".to_string();
    let mut path = "/".to_string();
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    let sock = |s: Option<&String>, what: &str| -> Result<SocketAddr, String> {
        let s = s.ok_or(format!("{what} needs ADDR:PORT"))?;
        parse_socket(s)
            .map(|(ip, p)| SocketAddr::new(ip, p))
            .ok_or(format!(
                "{what}: {s:?} is not ADDR:PORT ([v6]:port for IPv6)"
            ))
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--peer" => peer = Some(sock(it.next(), "--peer")?),
            "--local" => local = Some(sock(it.next(), "--local")?),
            "--tls" => tls = true,
            "--plain" => tls = false,
            "--udp" => transport = Transport::Udp,
            "--method" => method = it.next().ok_or("--method needs a value")?.clone(),
            "--authority" | "--host" => {
                authority = it.next().ok_or("--authority needs a value")?.clone()
            }
            "--path" => path = it.next().ok_or("--path needs a value")?.clone(),
            "-H" | "--header" => {
                let h = it.next().ok_or("-H needs 'name: value'")?;
                let (n, v) = h
                    .split_once(':')
                    .ok_or(format!("-H {h:?}: expected 'name: value'"))?;
                headers.push((n.trim().to_string(), v.trim_start().as_bytes().to_vec()));
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            p => policy_file = Some(p.to_string()),
        }
    }
    let policy_file = policy_file.ok_or("explain needs a policy file")?;
    let peer = peer.ok_or("explain needs --peer ADDR:PORT")?;
    let local =
        local.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], if tls { 443 } else { 80 })));
    let bytes = std::fs::read(&policy_file).map_err(|e| format!("{policy_file}: {e}"))?;
    let policy = match Policy::parse(&bytes) {
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
        transport.as_str(),
        if tls { "tls" } else { "plain" }
    );
    match d.client.ip {
        Some(ip) => println!(
            "{} {ip} (from {})",
            style.bold("client "),
            d.client.source.as_str()
        ),
        None => println!(
            "{} unknown (from {}): denied whatever the rules say",
            style.bold("client "),
            d.client.source.as_str()
        ),
    }
    if !policy.scopes.is_empty() {
        println!("{}", style.bold("scopes, in document order:"));
        match policy.explain_scopes(&req) {
            Ok(checks) => {
                for c in &checks {
                    let Some(s) = policy.scopes.get(c.index) else {
                        continue;
                    };
                    let mark = match c.failed {
                        None if c.chosen => style.green("MATCH"),
                        None => "match".to_string(),
                        Some(_) => "no   ".to_string(),
                    };
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
            Err(_) => println!(
                "  the path is ambiguous (%2F, %5C, \\, NUL or a bad escape) and some scope names paths: 400 before any scope is chosen"
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
        for c in &checks {
            let Some(r) = net.rules.get(c.index) else {
                continue;
            };
            let mark = match c.failed {
                None if c.decided => style.green("MATCH"),
                None => "match".to_string(),
                Some(_) => "no   ".to_string(),
            };
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
    println!(
        "{} {verdict} at step {} (scope {}, rule {}){}",
        style.bold("decision"),
        d.reason.step().as_str(),
        policy.scope_name(d.scope).unwrap_or("- (top level)"),
        policy.rule_of(&d),
        d.reply_status()
            .map_or_else(String::new, |s| format!(", status {s}"))
    );
    println!("{} {}", style.bold("trace   "), policy.trace(&d));
    let show = |e: &portcullis_core::Edit<'_>| match e.op {
        EditOp::Remove => format!("    - {}", e.name),
        EditOp::Replace => format!("    = {}: {}", e.name, String::from_utf8_lossy(e.value)),
        EditOp::Append => format!("    + {}: {}", e.name, String::from_utf8_lossy(e.value)),
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
