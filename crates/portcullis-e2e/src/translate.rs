//! Translating a policy and its test cases onto loopback.
//!
//! Real Envoy on this machine only sees loopback clients, on the ports its
//! listeners bind. A test case whose peer is `65.52.10.20:51000` and whose
//! local address is `10.0.0.4:443` is run as follows:
//!
//! 1. **Addresses.** Every distinct non-loopback address (IPv4 or IPv6) among the case
//!    peers and local addresses gets its own loopback stand-in `127.x.y.z`
//!    (mnemonic `127.b.c.d` for `a.b.c.d` when that is free, else from
//!    `127.100.0.0/16`). Loopback addresses stand for themselves, except
//!    `127.0.0.1` as a peer: for that exact peer Envoy appends its own
//!    address to `X-Forwarded-For` instead of the peer's, so it gets a
//!    stand-in too (a local `127.0.0.1` is still bound as is).
//! 2. **Address specs.** Every address spec `S` in the policy
//!    (`address_groups` members, `network.rules[].source` and
//!    `.destination`, `client_ip.trusted_proxies`) is rewritten so that a
//!    stand-in matches exactly when its original does: `S` is kept (so
//!    addresses that are not stand-ins, e.g. `X-Forwarded-For` entries, still
//!    match as before) and the stand-ins of the originals inside `S` are added.
//!    If `S` also covers stand-ins whose originals it does not cover (e.g.
//!    `Loopback` or `*` minus something), `S` is replaced by its explicit
//!    address ranges minus those stand-ins. Set membership comes from the
//!    core (`addr::parse_literal`, `addr::Tag`), never re-implemented here;
//!    group names are kept (their members are rewritten).
//! 3. **Ports.** Every distinct original local address gets a listener: the
//!    stand-in address and, per distinct original port (80, 443, ...), a
//!    free port. `network.rules[].destination_ports` are rewritten the same
//!    way as address specs (original port inside a spec => its listener port
//!    is added; listener ports whose original is outside are cut out).
//!    When some rule has `source_ports`, every case also gets a fresh client
//!    port standing in for its peer port, and `source_ports` are rewritten
//!    the same way (a client port is never reused: no TIME_WAIT clashes).
//! 4. **Results.** The trace's client address is mapped back to the
//!    original before comparing with the case's expectations.
//!
//! What still cannot be expressed is skipped with a reason (counted and
//! reported by the runner): UDP (HTTP/3), a
//! case sending `X-Forwarded-Proto` (Envoy, as an edge proxy, overwrites
//! it), request headers Envoy owns (hop-by-hop, `host`, `x-envoy-*`,
//! `x-request-id`, `content-length`), values with CR/LF/NUL, expectations
//! on headers Envoy rewrites on the way upstream (`x-forwarded-for`,
//! `x-forwarded-proto`, `x-request-id`, `x-envoy-*`), paths curl cannot send
//! byte for byte, and one local address used both with and without TLS.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use portcullis_core::addr::{self, AddrSet, Key, Tag};
use portcullis_core::policy::parse_port_spec;
use portcullis_core::Transport;
use portcullis_harness::Case;
use serde_json::Value;

use crate::net::free_port;

/// One listener a translated file needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The case's local address.
    pub original: SocketAddr,
    /// TLS or plain.
    pub tls: bool,
    /// Where the listener binds.
    pub bind: SocketAddr,
}

/// A policy moved onto loopback.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The rewritten policy JSON.
    pub policy: String,
    /// Original address -> loopback stand-in (identity for loopback).
    pub addrs: BTreeMap<IpAddr, Ipv4Addr>,
    /// Listeners.
    pub endpoints: Vec<Endpoint>,
    /// When the policy looks at client ports: the port the client binds for
    /// each case (by the index given to [`translate`]), a fresh port per case
    /// standing in for the case's peer port.
    pub client_ports: BTreeMap<usize, u16>,
}

impl Translation {
    /// The stand-in for an original address.
    pub fn stand_in(&self, ip: IpAddr) -> Option<Ipv4Addr> {
        self.addrs.get(&ip).copied()
    }

    /// The original behind a stand-in (or the address itself), as the core
    /// shows it (an IPv4-mapped IPv6 address as IPv4).
    pub fn original(&self, ip: IpAddr) -> IpAddr {
        let o = self
            .addrs
            .iter()
            .find(|(o, m)| IpAddr::V4(**m) == ip && **o != ip)
            .map_or(ip, |(o, _)| *o);
        addr::canonical(o)
    }

    /// The listener for a case's local address.
    pub fn endpoint(&self, local: SocketAddr, tls: bool) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| e.original == local && e.tls == tls)
    }
}

/// Request headers Envoy owns or rewrites; a case sending them is skipped.
const ENVOY_OWNED_REQUEST: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "content-length",
    "expect",
    "x-forwarded-proto",
    "x-request-id",
];

/// Upstream headers Envoy changes; a case expecting them is skipped.
const ENVOY_OWNED_UPSTREAM: &[&str] = &["x-forwarded-for", "x-forwarded-proto", "x-request-id"];

/// Why a case cannot run through Envoy on loopback, or `None` if it can.
pub fn inexpressible(case: &Case) -> Option<String> {
    let r = &case.request;
    if r.transport == Transport::Udp {
        return Some("UDP (HTTP/3) transport".into());
    }
    for (n, v) in &r.headers {
        let l = n.to_ascii_lowercase();
        if ENVOY_OWNED_REQUEST.contains(&l.as_str())
            || l.starts_with("x-envoy-")
            || l.starts_with(':')
        {
            return Some(format!("request header `{l}` is owned by Envoy"));
        }
        if l == crate::config::CASE_HEADER {
            return Some(format!("request header `{l}` is the runner's"));
        }
        if v.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Some(format!("request header `{l}` has CR, LF or NUL"));
        }
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Some(format!("request header name {n:?} cannot be sent"));
        }
    }
    for (n, _) in &case.expect.upstream_headers {
        let l = n.to_ascii_lowercase();
        if ENVOY_OWNED_UPSTREAM.contains(&l.as_str()) || l.starts_with("x-envoy-") {
            return Some(format!(
                "expectation on upstream header `{l}`, which Envoy rewrites"
            ));
        }
    }
    if !r.path.starts_with('/')
        || r.path.contains('#')
        || !r.path.bytes().all(|b| b.is_ascii_graphic())
    {
        return Some(format!(
            "path {:?} cannot be sent byte for byte by curl",
            r.path
        ));
    }
    if r.authority.is_empty() || !r.authority.bytes().all(|b| b.is_ascii_graphic()) {
        return Some(format!("authority {:?} cannot be sent", r.authority));
    }
    if !r.method.bytes().all(|b| b.is_ascii_alphabetic()) || r.method == "CONNECT" {
        return Some(format!("method {:?} cannot be sent", r.method));
    }
    for (n, v) in &case.upstream.headers {
        if v.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) || n.is_empty() {
            return Some(format!("upstream header `{n}` cannot be sent"));
        }
        let l = n.to_ascii_lowercase();
        if [
            "connection",
            "transfer-encoding",
            "content-length",
            "keep-alive",
            "upgrade",
        ]
        .contains(&l.as_str())
        {
            return Some(format!("upstream header `{l}` is hop-by-hop"));
        }
    }
    None
}

fn set_of(spec: &str) -> Option<AddrSet> {
    let mut s = if let Some(t) = Tag::from_name(spec) {
        t.set()
    } else {
        addr::parse_literal(spec).ok()?
    };
    s.normalize();
    Some(s)
}

fn subtract_points_v4(iv: &[(u32, u32)], points: &BTreeSet<u32>) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for &(lo, hi) in iv {
        let mut start = lo;
        let mut open = true;
        for &p in points.range(lo..=hi) {
            if p > start {
                out.push((start, p - 1));
            }
            match p.checked_add(1) {
                Some(n) => start = n,
                None => open = false,
            }
        }
        if open && start <= hi {
            out.push((start, hi));
        }
    }
    out
}

fn render_set(v4: &[(u32, u32)], v6: &[(u128, u128)]) -> Vec<String> {
    let mut out = Vec::new();
    for &(lo, hi) in v4 {
        let (a, b) = (Ipv4Addr::from(lo), Ipv4Addr::from(hi));
        out.push(if lo == hi {
            a.to_string()
        } else {
            format!("{a}-{b}")
        });
    }
    for &(lo, hi) in v6 {
        let (a, b) = (Ipv6Addr::from(lo), Ipv6Addr::from(hi));
        out.push(if lo == hi {
            a.to_string()
        } else {
            format!("{a}-{b}")
        });
    }
    out
}

/// Rewrites one address spec (see the module docs).
fn rewrite_spec(spec: &str, renamed: &[(IpAddr, Ipv4Addr)]) -> Vec<String> {
    let Some(set) = set_of(spec) else {
        // A group name (or something the core will reject): unchanged.
        return vec![spec.to_owned()];
    };
    let mut extra = Vec::new();
    let mut wrong = BTreeSet::new();
    for &(o, m) in renamed {
        let has_o = set.contains(addr::key(o));
        let has_m = set.contains(Key::V4(u32::from(m)));
        if has_o && !has_m {
            extra.push(m.to_string());
        } else if !has_o && has_m {
            wrong.insert(u32::from(m));
        }
    }
    let mut out = if wrong.is_empty() {
        vec![spec.to_owned()]
    } else {
        render_set(&subtract_points_v4(&set.v4, &wrong), &set.v6)
    };
    out.extend(extra);
    if out.is_empty() {
        // Nothing left: an address no case uses.
        out.push("0.0.0.0".into());
    }
    out
}

fn rewrite_spec_list(v: &mut Value, renamed: &[(IpAddr, Ipv4Addr)]) {
    if let Value::Array(items) = v {
        let mut out = Vec::new();
        for it in items.iter() {
            match it {
                Value::String(s) => {
                    out.extend(rewrite_spec(s, renamed).into_iter().map(Value::String))
                }
                other => out.push(other.clone()),
            }
        }
        *items = out;
    }
}

fn rewrite_port_list(v: &mut Value, ports: &[(u16, u16)]) {
    let Value::Array(items) = v else { return };
    let mut out = Vec::new();
    for it in items.iter() {
        let Some(spec) = it.as_str() else {
            out.push(it.clone());
            continue;
        };
        let Some((lo, hi)) = parse_port_spec(spec) else {
            out.push(it.clone());
            continue;
        };
        let inside = |p: u16| lo <= p && p <= hi;
        let mut extra = Vec::new();
        let mut wrong = BTreeSet::new();
        for &(o, m) in ports {
            if inside(o) && !inside(m) {
                extra.push(m.to_string());
            } else if !inside(o) && inside(m) {
                wrong.insert(u32::from(m));
            }
        }
        if wrong.is_empty() {
            out.push(it.clone());
        } else {
            for (a, b) in subtract_points_v4(&[(u32::from(lo), u32::from(hi))], &wrong) {
                out.push(Value::String(if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }));
            }
        }
        out.extend(extra.into_iter().map(Value::String));
    }
    if out.is_empty() {
        out.push(Value::String("0".into()));
    }
    *items = out;
}

/// Picks loopback stand-ins for `addrs`, avoiding `avoid`.
/// `127.0.0.1` is renamed only when `rename_localhost` (it is a peer).
pub fn stand_ins(
    addrs: &BTreeSet<IpAddr>,
    avoid: &BTreeSet<IpAddr>,
    rename_localhost: bool,
) -> BTreeMap<IpAddr, Ipv4Addr> {
    let mut map = BTreeMap::new();
    let mut used: BTreeSet<Ipv4Addr> = BTreeSet::new();
    used.insert(Ipv4Addr::LOCALHOST);
    for ip in addrs.iter().chain(avoid.iter()) {
        if let IpAddr::V4(a) = ip {
            if a.is_loopback() {
                used.insert(*a);
            }
        }
    }
    let mut next: u32 = u32::from(Ipv4Addr::new(127, 100, 0, 2));
    let mut sequential = |used: &BTreeSet<Ipv4Addr>| loop {
        let c = Ipv4Addr::from(next);
        next += 1;
        let last = c.octets()[3];
        if !used.contains(&c) && last != 0 && last != 255 {
            break c;
        }
    };
    for ip in addrs {
        let pick = match ip {
            // 127.0.0.1 itself gets a stand-in too: for a peer of exactly
            // 127.0.0.1 Envoy appends its own non-loopback address to
            // X-Forwarded-For instead of the peer's (see docs/deploy.md).
            IpAddr::V4(a)
                if a.is_loopback() && (*a != Ipv4Addr::LOCALHOST || !rename_localhost) =>
            {
                map.insert(*ip, *a);
                continue;
            }
            IpAddr::V4(a) => {
                let o = a.octets();
                let mnemonic = Ipv4Addr::new(127, o[1], o[2], o[3]);
                if !used.contains(&mnemonic) && o[3] != 0 && o[3] != 255 {
                    mnemonic
                } else {
                    sequential(&used)
                }
            }
            // IPv6 peers and local addresses get IPv4 stand-ins: what the
            // policy decides depends only on which specs hold the address.
            IpAddr::V6(_) => sequential(&used),
        };
        used.insert(pick);
        map.insert(*ip, pick);
    }
    map
}

/// Address literals written in a policy (kept away from stand-ins; the
/// demo gives each one a stand-in).
pub fn literals_in(v: &Value, out: &mut BTreeSet<IpAddr>) {
    match v {
        Value::String(s) => {
            if let Ok(ip) = s.parse::<IpAddr>() {
                out.insert(ip);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| literals_in(x, out)),
        Value::Object(o) => o.values().for_each(|x| literals_in(x, out)),
        _ => {}
    }
}

/// Moves `policy` onto loopback for the given peers and local endpoints.
/// `extra_addrs` are further addresses to give stand-ins (e.g. every literal
/// of the policy, for the demo).
///
/// `peer_ports`: each case's index and peer port; when the policy has
/// `source_ports` other than `*`, every case gets its own client port
/// (never reused, so no TIME_WAIT clash) and `source_ports` are rewritten
/// like `destination_ports`.
pub fn translate(
    policy: &str,
    peers: &[IpAddr],
    locals: &[(SocketAddr, bool)],
    peer_ports: &[(usize, u16)],
    avoid: &BTreeSet<IpAddr>,
) -> Result<Translation, String> {
    let mut doc: Value = serde_json::from_str(policy).map_err(|e| format!("policy JSON: {e}"))?;
    let mut avoid = avoid.clone();
    literals_in(&doc, &mut avoid);
    let mut all: BTreeSet<IpAddr> = peers.iter().copied().collect();
    all.extend(locals.iter().map(|(a, _)| a.ip()));
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let addrs = stand_ins(&all, &avoid, peers.contains(&localhost));
    // Listeners for 127.0.0.1 bind 127.0.0.1 even when that peer has a stand-in.
    let bind_ip = |ip: IpAddr| {
        if ip == localhost {
            Some(Ipv4Addr::LOCALHOST)
        } else {
            addrs.get(&ip).copied()
        }
    };
    let renamed: Vec<(IpAddr, Ipv4Addr)> = addrs
        .iter()
        .filter(|(o, m)| **o != IpAddr::V4(**m))
        .map(|(o, m)| (*o, *m))
        .collect();

    // Listeners: one port per distinct original port, free on every stand-in.
    let mut bind_ips: Vec<Ipv4Addr> = locals.iter().filter_map(|(a, _)| bind_ip(a.ip())).collect();
    bind_ips.sort();
    bind_ips.dedup();
    let mut port_map: BTreeMap<u16, u16> = BTreeMap::new();
    let mut endpoints: Vec<Endpoint> = Vec::new();
    for &(local, tls) in locals {
        let Some(ip) = bind_ip(local.ip()) else {
            continue;
        };
        if endpoints.iter().any(|e| e.original == local) {
            continue;
        }
        let port = match port_map.get(&local.port()) {
            Some(p) => *p,
            None => {
                let mut p = free_port(&bind_ips)?;
                while port_map.values().any(|q| *q == p) {
                    p = free_port(&bind_ips)?;
                }
                port_map.insert(local.port(), p);
                p
            }
        };
        endpoints.push(Endpoint {
            original: local,
            tls,
            bind: SocketAddr::from((ip, port)),
        });
    }
    let ports: Vec<(u16, u16)> = port_map.iter().map(|(o, m)| (*o, *m)).collect();

    // The top level's rules and each scope's own.
    let all_rules = |doc: &Value| -> Vec<Value> {
        let mut v: Vec<Value> = Vec::new();
        let nets = std::iter::once(doc.get("network")).chain(
            doc.get("scopes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|s| s.get("network")),
        );
        for n in nets.flatten() {
            if let Some(Value::Array(rules)) = n.get("rules") {
                v.extend(rules.iter().cloned());
            }
        }
        v
    };
    let uses_source_ports = all_rules(&doc).iter().any(|r| {
        r.get("source_ports")
            .and_then(Value::as_array)
            .is_some_and(|sp| sp.iter().any(|p| p.as_str() != Some("*")))
    });
    let mut client_ports = BTreeMap::new();
    let mut source_pairs: Vec<(u16, u16)> = Vec::new();
    if uses_source_ports {
        let client_ips: Vec<Ipv4Addr> = {
            let mut v: Vec<Ipv4Addr> = peers.iter().filter_map(|p| addrs.get(p).copied()).collect();
            v.sort();
            v.dedup();
            v
        };
        for &(case, orig) in peer_ports {
            let mut p = free_port(&client_ips)?;
            while port_map.values().any(|q| *q == p) || source_pairs.iter().any(|(_, q)| *q == p) {
                p = free_port(&client_ips)?;
            }
            client_ports.insert(case, p);
            source_pairs.push((orig, p));
        }
    }

    if let Some(Value::Object(groups)) = doc.get_mut("address_groups") {
        for (_, list) in groups.iter_mut() {
            rewrite_spec_list(list, &renamed);
        }
    }
    if let Some(tp) = doc
        .get_mut("client_ip")
        .and_then(|c| c.get_mut("trusted_proxies"))
    {
        rewrite_spec_list(tp, &renamed);
    }
    let mut networks: Vec<&mut Value> = Vec::new();
    let Value::Object(top) = &mut doc else {
        return Err("the policy is not an object".into());
    };
    for (k, v) in top.iter_mut() {
        match (k.as_str(), v) {
            ("network", n) => networks.push(n),
            ("scopes", Value::Array(scopes)) => {
                networks.extend(scopes.iter_mut().filter_map(|s| s.get_mut("network")));
            }
            _ => {}
        }
    }
    for net in networks {
        let Some(Value::Array(rules)) = net.get_mut("rules") else {
            continue;
        };
        for r in rules.iter_mut() {
            if let Some(v) = r.get_mut("source") {
                rewrite_spec_list(v, &renamed);
            }
            if let Some(v) = r.get_mut("destination") {
                rewrite_spec_list(v, &renamed);
            }
            if let Some(v) = r.get_mut("destination_ports") {
                rewrite_port_list(v, &ports);
            }
            if uses_source_ports {
                if let Some(v) = r.get_mut("source_ports") {
                    rewrite_port_list(v, &source_pairs);
                }
            }
        }
    }
    let policy = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    Ok(Translation {
        policy,
        addrs,
        endpoints,
        client_ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn specs_keep_their_meaning_for_stand_ins() {
        let renamed = vec![
            (ip("65.52.10.20"), Ipv4Addr::new(127, 52, 10, 20)),
            (ip("10.1.2.3"), Ipv4Addr::new(127, 1, 2, 3)),
        ];
        assert_eq!(
            rewrite_spec("65.52.10.20", &renamed),
            vec!["65.52.10.20", "127.52.10.20"]
        );
        assert_eq!(
            rewrite_spec("Internet", &renamed),
            vec!["Internet", "127.52.10.20"]
        );
        assert_eq!(
            rewrite_spec("Private", &renamed),
            vec!["Private", "127.1.2.3"]
        );
        assert_eq!(rewrite_spec("fe1ase", &renamed), vec!["fe1ase"]);
        // Loopback covers both stand-ins but neither original: they are cut out.
        assert_eq!(
            rewrite_spec("Loopback", &renamed),
            vec![
                "127.0.0.0-127.1.2.2",
                "127.1.2.4-127.52.10.19",
                "127.52.10.21-127.255.255.255",
                "::1"
            ]
        );
        // `*` covers everything already.
        assert_eq!(rewrite_spec("*", &renamed), vec!["*"]);
    }

    #[test]
    fn ports_follow_their_listeners() {
        let mut v = serde_json::json!(["80", "443", "454-455", "*", "40000-50000"]);
        rewrite_port_list(&mut v, &[(80, 41000), (443, 41001)]);
        assert_eq!(
            v,
            serde_json::json!([
                "80",
                "41000",
                "443",
                "41001",
                "454-455",
                "*",
                "40000-40999",
                "41002-50000"
            ])
        );
    }

    #[test]
    fn stand_ins_are_mnemonic_and_distinct() {
        let addrs: BTreeSet<IpAddr> =
            [ip("40.112.72.205"), ip("41.112.72.205"), ip("127.0.0.1")].into();
        let m = stand_ins(&addrs, &BTreeSet::new(), true);
        assert_eq!(
            m.get(&ip("40.112.72.205")),
            Some(&Ipv4Addr::new(127, 112, 72, 205))
        );
        assert_eq!(
            m.get(&ip("41.112.72.205")),
            Some(&Ipv4Addr::new(127, 100, 0, 2))
        );
        assert_eq!(
            m.get(&ip("127.0.0.1")),
            Some(&Ipv4Addr::new(127, 100, 0, 3))
        );
    }
}
