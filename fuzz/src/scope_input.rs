//! `scope_input`: raw bytes as a request's method, `:authority` and `:path`,
//! checked against a naive reference of the scope normalization written
//! here (not the core's code).
//!
//! The input is split on the first two `\n`: method, authority, path (a
//! missing part is empty). Invariants:
//! - `scope_path` refuses a path exactly when the reference calls it
//!   ambiguous (`\`, NUL, a malformed escape, `%2F`, `%5C`, `%00` before the
//!   first `?`), and otherwise returns the reference's normal form, which is
//!   itself normal (idempotent) and holds no `//`, no `.` or `..` segment
//!   and no escaped unreserved character;
//! - `scope_host` agrees with the reference (one trailing dot and a port
//!   of 1-5 digits up to 65535, or an empty one, dropped; a bad port, an
//!   unclosed bracket or one around a non-IPv6 address, userinfo, an empty
//!   host or a byte outside RFC 3986 `reg-name`: no host);
//! - the policy below chooses the scope the reference chooses, so no
//!   request that the reference puts into a scope (or into none) lands
//!   elsewhere, and the decision and its trace name that scope; since some
//!   scope names `hosts`, an unreadable authority is a 400, never a scope.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use portcullis_core::decide::{scope_host, scope_path};
use portcullis_core::{Policy, Request, Trace, Transport, NO_SCOPE};

/// One scope as the reference reads it: (name, hosts, paths, methods); a
/// host `*.x` is a wildcard, a path ending in `/*` a prefix.
type RefScope = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

/// The scopes of the policy under test.
const SCOPES: &[RefScope] = &[
    (
        "status",
        &["orders.example"],
        &["/status"],
        &["GET", "HEAD"],
    ),
    ("admin", &["orders.example"], &["/admin/*"], &[]),
    (
        "orders",
        &["orders.example", "*.orders.example"],
        &["/orders/*", "/v1/orders"],
        &[],
    ),
    ("caf", &[], &["/caf%C3%A9/*"], &["POST"]),
    ("root-put", &[], &["/*"], &["PUT"]),
    ("catalog", &["catalog.example", "[2001:db8::1]"], &[], &[]),
];

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let list = |v: &[&str]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let scopes: Vec<String> = SCOPES
            .iter()
            .map(|(name, hosts, paths, methods)| {
                let mut m = Vec::new();
                if !hosts.is_empty() {
                    m.push(format!(r#""hosts":[{}]"#, list(hosts)));
                }
                if !paths.is_empty() {
                    m.push(format!(r#""paths":[{}]"#, list(paths)));
                }
                if !methods.is_empty() {
                    m.push(format!(r#""methods":[{}]"#, list(methods)));
                }
                format!(r#"{{"name":"{name}","match":{{{}}}}}"#, m.join(","))
            })
            .collect();
        let doc = format!(r#"{{"name":"fz","scopes":[{}]}}"#, scopes.join(","));
        Policy::parse(doc.as_bytes()).unwrap_or_else(|e| panic!("fuzz policy: {e}"))
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The reference normal form of a path; `None`: ambiguous.
pub fn reference_path(raw: &[u8]) -> Option<Vec<u8>> {
    let path = raw.split(|&b| b == b'?').next().unwrap_or_default();
    // 1. Escapes: unreserved ones decoded, the rest upper-cased.
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'\\' | 0 => return None,
            b'%' => {
                let h = hex(*path.get(i + 1)?)?;
                let l = hex(*path.get(i + 2)?)?;
                let v = h * 16 + l;
                if matches!(v, b'/' | b'\\' | 0) {
                    return None;
                }
                if unreserved(v) {
                    decoded.push(v);
                } else {
                    decoded.extend(format!("%{v:02X}").bytes());
                }
                i += 3;
            }
            c => {
                decoded.push(c);
                i += 1;
            }
        }
    }
    // 2. Parameters: each segment loses everything from its first `;`
    // (a `;` left after step 1 was written raw: `%3B` stays encoded).
    // 3. and 4. Segments: empty ones (repeated slashes) and `.` vanish,
    // `..` removes the one before; a vanishing last segment leaves a
    // trailing slash.
    let body = decoded.strip_prefix(b"/").unwrap_or(&decoded);
    let mut stack: Vec<&[u8]> = Vec::new();
    let mut trailing = false;
    for seg in body.split(|&b| b == b'/') {
        let seg = seg.split(|&b| b == b';').next().unwrap_or_default();
        trailing = true;
        match seg {
            b"" | b"." => {}
            b".." => {
                stack.pop();
            }
            s => {
                stack.push(s);
                trailing = false;
            }
        }
    }
    let mut out = vec![b'/'];
    out.extend(stack.join(&b'/'));
    if trailing && !stack.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

/// The reference host: `None` when the authority cannot be read as a
/// host with an optional port (policy-v1 "Scopes"). Compared
/// case-insensitively.
pub fn reference_host(a: &[u8]) -> Option<Vec<u8>> {
    const REG_NAME: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;=";
    if a.contains(&b'@') {
        return None;
    }
    let (host, rest) = if a.first() == Some(&b'[') {
        let end = a.iter().position(|&b| b == b']')?;
        let inner = std::str::from_utf8(&a[1..end]).ok()?;
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        (&a[..=end], &a[end + 1..])
    } else {
        let (h, r) = match a.iter().rposition(|&b| b == b':') {
            Some(i) => (&a[..i], &a[i..]),
            None => (a, &[][..]),
        };
        if !h.iter().all(|b| REG_NAME.contains(b)) {
            return None;
        }
        (h, r)
    };
    if !rest.is_empty() {
        let digits = rest.strip_prefix(b":")?;
        let number = std::str::from_utf8(digits).ok()?;
        let fine = digits.is_empty()
            || (digits.len() <= 5
                && digits.iter().all(u8::is_ascii_digit)
                && number.parse::<u32>().is_ok_and(|n| n <= 65535));
        if !fine {
            return None;
        }
    }
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

fn host_matches(pattern: &str, host: &[u8]) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            let tail = format!(".{suffix}");
            host.len() > tail.len() && host.ends_with(tail.as_bytes())
        }
        None => host == pattern.as_bytes(),
    }
}

fn path_matches(pattern: &str, path: &[u8]) -> bool {
    match pattern.strip_suffix("/*") {
        Some(base) => {
            path == base.as_bytes()
                || (path.starts_with(base.as_bytes()) && path.get(base.len()) == Some(&b'/'))
        }
        None => path == pattern.as_bytes(),
    }
}

/// The reference choice: `Err(())` refused (an unreadable authority, since
/// some scope names `hosts`, or an ambiguous path), `Ok(None)` the top
/// level.
fn reference_scope(
    method: &[u8],
    authority: &[u8],
    path: &[u8],
) -> Result<Option<&'static str>, ()> {
    let h = reference_host(authority);
    if h.is_none() && SCOPES.iter().any(|s| !s.1.is_empty()) {
        return Err(());
    }
    let p = reference_path(path).ok_or(())?;
    Ok(SCOPES
        .iter()
        .find(|(_, hosts, paths, methods)| {
            (hosts.is_empty()
                || h.as_deref()
                    .is_some_and(|h| hosts.iter().any(|x| host_matches(x, h))))
                && (paths.is_empty() || paths.iter().any(|x| path_matches(x, &p)))
                && (methods.is_empty() || methods.iter().any(|m| m.as_bytes() == method))
        })
        .map(|s| s.0))
}

/// Runs one input.
pub fn check(data: &[u8]) -> Result<(), String> {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let method = parts.next().unwrap_or_default();
    let authority = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();

    // The path normalization.
    match (scope_path(path), reference_path(path)) {
        (Err(_), None) => {}
        (Ok(n), Some(r)) if n == r => {
            if scope_path(&n).as_deref() != Ok(&n[..]) {
                return Err(format!(
                    "{:?}: normal form {:?} is not normal",
                    show(path),
                    show(&n)
                ));
            }
            if n.windows(2).any(|w| w == b"//") {
                return Err(format!("{:?}: // in {:?}", show(path), show(&n)));
            }
            let body = n.strip_prefix(b"/").unwrap_or(&n);
            if body.split(|&b| b == b'/').any(|s| s == b"." || s == b"..") {
                return Err(format!("{:?}: dot-segment in {:?}", show(path), show(&n)));
            }
        }
        (core, reference) => {
            return Err(format!(
                "path {:?}: core {:?}, reference {:?}",
                show(path),
                core.map(|n| show(&n)),
                reference.map(|n| show(&n))
            ));
        }
    }

    // The host.
    let core_host = scope_host(authority).map(<[u8]>::to_ascii_lowercase);
    if core_host != reference_host(authority) {
        return Err(format!(
            "authority {:?}: core {:?}, reference {:?}",
            show(authority),
            core_host.as_deref().map(show),
            reference_host(authority).as_deref().map(show)
        ));
    }

    // The scope the policy chooses, and what the decision and trace say.
    let p = policy();
    let headers: Vec<(&str, &[u8])> = Vec::new();
    let req = Request {
        peer: SocketAddr::new(IpAddr::from([203, 0, 113, 9]), 4000),
        local: SocketAddr::new(IpAddr::from([10, 9, 9, 9]), 443),
        tls: true,
        transport: Transport::Tcp,
        method,
        authority,
        path,
        headers: &headers,
    };
    let want = reference_scope(method, authority, path);
    let core = p
        .choose_scope(&req)
        .map(|s| s.and_then(|i| p.scope_name(Some(i))))
        .map_err(|_| ());
    if core != want {
        return Err(format!(
            "{:?} {:?} {:?}: core chose {core:?}, reference {want:?}",
            show(method),
            show(authority),
            show(path)
        ));
    }
    let d = p.decide(&req);
    let line = p.trace(&d);
    let t = Trace::parse(&line).ok_or_else(|| format!("unreadable trace {line:?}"))?;
    let named = want.ok().flatten().unwrap_or(NO_SCOPE);
    if t.scope != named || (want.is_err() && d.status != 400) {
        return Err(format!("trace {line:?} for reference {want:?}"));
    }
    Ok(())
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Seed inputs from a test case: its method, authority and path.
pub fn seeds(case: &portcullis_harness::Case) -> Vec<Vec<u8>> {
    let r = &case.request;
    // The default request (`localhost`, `/`) says nothing about scopes.
    if r.path == "/" && (r.authority.is_empty() || r.authority == "localhost") {
        return Vec::new();
    }
    vec![format!("{}\n{}\n{}", r.method, r.authority, r.path).into_bytes()]
}
