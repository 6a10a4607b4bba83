//! Scope selection agrees with a naive reference written here.
//!
//! Random scope lists (hosts exact and `*.`, paths exact and `/*`,
//! methods) and random requests (hosts with ports, case and trailing dots;
//! ports in and out of range, empty ports, userinfo, brackets; paths built
//! from segments, dot-segments, `;` parameters, repeated slashes, escapes
//! of unreserved and reserved characters, `%2F`, `%5C`, `\`, NUL,
//! malformed escapes and queries). The reference normalizes with a segment stack,
//! not the core's RFC 3986 buffer walk. Each scope denies with its own
//! status, so the property is checked on the decision itself: a request
//! the reference puts in a scope never escapes it in the core.

use std::net::SocketAddr;

use portcullis_core::{Policy, Reason, Request, Transport};
use proptest::prelude::*;

const LABELS: &[&str] = &["a", "b", "api", "x1"];
const SEGMENTS: &[&str] = &["a", "b", "orders", "x", "A"];

#[derive(Debug, Clone)]
struct Scope {
    hosts: Option<Vec<(bool, Vec<&'static str>)>>,
    paths: Option<Vec<(Vec<&'static str>, bool)>>,
    methods: Option<Vec<&'static str>>,
}

fn host_pattern() -> impl Strategy<Value = (bool, Vec<&'static str>)> {
    (
        any::<bool>(),
        prop::collection::vec(prop::sample::select(LABELS), 1..3),
    )
}

fn path_pattern() -> impl Strategy<Value = (Vec<&'static str>, bool)> {
    (
        prop::collection::vec(prop::sample::select(SEGMENTS), 0..3),
        any::<bool>(),
    )
}

fn scope() -> impl Strategy<Value = Scope> {
    (
        prop::option::of(prop::collection::vec(host_pattern(), 1..3)),
        prop::option::of(prop::collection::vec(path_pattern(), 1..3)),
        prop::option::of(prop::collection::vec(
            prop::sample::select(&["GET", "POST", "get"][..]),
            1..3,
        )),
    )
        .prop_filter("match needs a field", |(h, p, m)| {
            h.is_some() || p.is_some() || m.is_some()
        })
        .prop_map(|(hosts, paths, methods)| Scope {
            hosts,
            paths,
            methods,
        })
}

fn host_text((wild, labels): &(bool, Vec<&str>)) -> String {
    let name = labels.join(".");
    if *wild {
        format!("*.{name}")
    } else {
        name
    }
}

fn path_text((segs, prefix): &(Vec<&str>, bool)) -> String {
    let base: String = segs.iter().map(|s| format!("/{s}")).collect();
    match (prefix, base.is_empty()) {
        (true, _) => format!("{base}/*"),
        (false, true) => "/".into(),
        (false, false) => base,
    }
}

fn policy_text(scopes: &[Scope]) -> String {
    let list: Vec<String> = scopes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut m = Vec::new();
            if let Some(h) = &s.hosts {
                let v: Vec<String> = h.iter().map(|x| format!("{:?}", host_text(x))).collect();
                m.push(format!("\"hosts\":[{}]", v.join(",")));
            }
            if let Some(p) = &s.paths {
                let v: Vec<String> = p.iter().map(|x| format!("{:?}", path_text(x))).collect();
                m.push(format!("\"paths\":[{}]", v.join(",")));
            }
            if let Some(ms) = &s.methods {
                let v: Vec<String> = ms.iter().map(|x| format!("{x:?}")).collect();
                m.push(format!("\"methods\":[{}]", v.join(",")));
            }
            format!(
                r#"{{"name":"s{i}","match":{{{}}},"network":{{"rules":[],"default_access":"deny","deny":{{"status":{}}}}}}}"#,
                m.join(","),
                450 + i
            )
        })
        .collect();
    format!(
        r#"{{"name":"p","network":{{"rules":[{{"name":"all","priority":100,"access":"allow","source":["*"]}}]}},"scopes":[{}]}}"#,
        list.join(",")
    )
}

// ---- the reference ----

/// `None`: the authority cannot be read as a host with an optional port.
fn ref_host(authority: &str) -> Option<String> {
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        authority[1..end].parse::<std::net::Ipv6Addr>().ok()?;
        (&authority[..=end], &authority[end + 1..])
    } else {
        let (h, p) = match authority.rfind(':') {
            Some(i) => (&authority[..i], &authority[i..]),
            None => (authority, ""),
        };
        let reg_name = |c: char| c.is_ascii_alphanumeric() || "-._~%!$&'()*+,;=".contains(c);
        if !h.chars().all(reg_name) {
            return None;
        }
        (h, p)
    };
    if !port.is_empty() {
        let digits = port.strip_prefix(':')?;
        let fine = digits.is_empty()
            || (digits.len() <= 5
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.parse::<u32>().is_ok_and(|n| n <= 65535));
        if !fine {
            return None;
        }
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

fn ref_host_matches(pattern: &(bool, Vec<&str>), host: &str) -> bool {
    let name = pattern.1.join(".");
    if pattern.0 {
        // One or more labels, then `.name`.
        host.len() > name.len() + 1
            && host.ends_with(&format!(".{name}"))
            && !host[..host.len() - name.len() - 1].is_empty()
    } else {
        host == name
    }
}

/// `None`: ambiguous.
fn ref_path(raw: &str) -> Option<String> {
    let path = raw.split('?').next().unwrap_or("");
    let b = path.as_bytes();
    let mut decoded = String::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' || c == 0 {
            return None;
        }
        if c == b'%' {
            let hex = path.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(hex, 16).ok()?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None;
            }
            match v {
                b'/' | b'\\' | 0 => return None,
                v if v.is_ascii_alphanumeric() || b"-._~".contains(&v) => decoded.push(v as char),
                _ => decoded.push_str(&format!("%{:02X}", v)),
            }
            i += 3;
        } else {
            decoded.push(c as char);
            i += 1;
        }
    }
    // Segments: parameters (from a raw `;`) go, then empty ones (repeated
    // slashes) and `.` vanish, `..` pops.
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing = false;
    let body = decoded.strip_prefix('/').unwrap_or(&decoded);
    for seg in body.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        trailing = false;
        match seg {
            "" | "." => trailing = true,
            ".." => {
                stack.pop();
                trailing = true;
            }
            s => stack.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(&stack.join("/"));
    if trailing && !stack.is_empty() {
        out.push('/');
    }
    Some(out)
}

fn ref_path_matches(pattern: &(Vec<&str>, bool), path: &str) -> bool {
    let base: String = pattern.0.iter().map(|s| format!("/{s}")).collect();
    if pattern.1 {
        (path == base && !base.is_empty()) || path.starts_with(&format!("{base}/"))
    } else if base.is_empty() {
        path == "/"
    } else {
        path == base
    }
}

/// `Err(reason)`: refused before any scope; `Ok(None)`: the top level.
fn ref_choose(
    scopes: &[Scope],
    authority: &str,
    path: &str,
    method: &str,
) -> Result<Option<usize>, Reason> {
    let host = ref_host(authority);
    if host.is_none() && scopes.iter().any(|s| s.hosts.is_some()) {
        return Err(Reason::UnreadableAuthority);
    }
    let any_paths = scopes.iter().any(|s| s.paths.is_some());
    let norm = if any_paths {
        Some(ref_path(path).ok_or(Reason::AmbiguousPath)?)
    } else {
        None
    };
    Ok(scopes.iter().position(|s| {
        s.hosts.as_ref().is_none_or(|hs| {
            host.as_deref()
                .is_some_and(|h| hs.iter().any(|p| ref_host_matches(p, h)))
        }) && s.paths.as_ref().is_none_or(|ps| {
            norm.as_deref()
                .is_some_and(|n| ps.iter().any(|p| ref_path_matches(p, n)))
        }) && s.methods.as_ref().is_none_or(|ms| ms.contains(&method))
    }))
}

// ---- requests ----

fn authority() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(LABELS), 1..5),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(prop::sample::select(
            &[
                ":443", ":80", ":", ":x", ":8443", ":0", ":65535", ":65536", ":00443", ":000443",
                ":1:2",
            ][..],
        )),
        prop::collection::vec(any::<bool>(), 8),
        prop::sample::select(
            &[
                "", "", "", "", "user@", "u:p@", "[::1]", "[::1", "[a.b]", " ", "/",
            ][..],
        ),
    )
        .prop_map(|(labels, dot, two_dots, port, upper, odd)| {
            let mut s: String = labels
                .join(".")
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c })
                .collect();
            if dot {
                s.push('.');
                if two_dots {
                    s.push('.');
                }
            }
            // Userinfo before the host; a bracketed literal, a broken one
            // or a stray byte instead of it.
            match odd {
                "user@" | "u:p@" => s.insert_str(0, odd),
                "" => {}
                " " | "/" => s.push_str(odd),
                _ => s = odd.to_string(),
            }
            if let Some(p) = port {
                s.push_str(p);
            }
            s
        })
}

const PIECES: &[&str] = &[
    "a",
    "b",
    "orders",
    "x",
    "A",
    "ordersX",
    ".",
    "..",
    "",
    "%2e",
    "%2E%2e",
    ".%2e",
    "%61",
    "%6F%72ders",
    "%2F",
    "%2f",
    "%5C",
    "%5c",
    "\\",
    "%",
    "%4",
    "%zz",
    "%00",
    "\u{0}",
    "~",
    "%7e",
    "%41",
    "%20",
    "%252F",
    "...",
    "..a",
    "..;",
    "..;x=1",
    "a;b=c",
    ";",
    "orders;jsessionid=1",
    ".;x",
    "%3B",
    "a%3Bb",
];

fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(PIECES), 0..7),
        any::<bool>(),
        prop::option::of(prop::sample::select(&["?q=/../x", "?%2F", "?", "?a=%"][..])),
    )
        .prop_map(|(pieces, trailing, query)| {
            let mut s: String = pieces.iter().map(|p| format!("/{p}")).collect();
            if s.is_empty() || trailing {
                s.push('/');
            }
            if let Some(q) = query {
                s.push_str(q);
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn scope_choice_matches_the_reference(
        scopes in prop::collection::vec(scope(), 1..6),
        requests in prop::collection::vec(
            (authority(), path(), prop::sample::select(&["GET", "POST", "get", "PUT"][..])),
            1..8,
        ),
    ) {
        let text = policy_text(&scopes);
        let policy = Policy::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}\n{e}"));
        let none: [(&str, &str); 0] = [];
        for (authority, path, method) in &requests {
            let req = Request {
                peer: SocketAddr::from(([65, 52, 10, 20], 5000)),
                local: SocketAddr::from(([10, 0, 0, 4], 443)),
                tls: true,
                transport: Transport::Tcp,
                method: method.as_bytes(),
                authority: authority.as_bytes(),
                path: path.as_bytes(),
                headers: &none,
            };
            let d = policy.decide(&req);
            let want = ref_choose(&scopes, authority, path, method);
            let what = format!("{authority} {path:?} {method}\nreference path {:?}\n{text}", ref_path(path));
            match want {
                Err(reason) => {
                    prop_assert_eq!(d.reason, reason, "{}", what);
                    prop_assert_eq!(d.status, 400, "{}", what);
                    prop_assert_eq!(d.scope, None, "{}", what);
                }
                Ok(None) => {
                    prop_assert_eq!(d.scope, None, "{}", what);
                    prop_assert_eq!(d.reason, Reason::Passed, "{}", what);
                }
                Ok(Some(i)) => {
                    // It stays in its scope: the scope's own deny answers.
                    prop_assert_eq!(d.scope, Some(i), "{}", what);
                    prop_assert_eq!(d.reason, Reason::NetworkDenied, "{}", what);
                    prop_assert_eq!(usize::from(d.status), 450 + i, "{}", what);
                }
            }
        }
    }

    #[test]
    fn normalized_paths_match_the_reference(p in path()) {
        let core = portcullis_core::decide::scope_path(p.as_bytes())
            .ok()
            .map(|v| String::from_utf8(v).unwrap());
        prop_assert_eq!(core, ref_path(&p), "{:?}", p);
    }
}
