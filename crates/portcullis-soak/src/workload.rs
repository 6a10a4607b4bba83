//! The soak's policies and request mix.
//!
//! Two policies, A and B, differ in who is allowed: callers from
//! `127.10.0.0/16` are allowed by A only, from `127.20.0.0/16` by B only,
//! from `127.30.0.0/16` by both, from `127.40.0.0/16` by neither. Both
//! redirect plain HTTP to HTTPS for [`HOST`] (301 for GET, 308 otherwise,
//! 400 for another host), require `x-functions-key: KEY`, strip the
//! backend's `Server`/`X-Powered-By`/`X-AspNet-Version`, add
//! `X-Content-Type-Options` and `X-Portcullis-Policy: <name>` (so every
//! response the filter touched names the policy that decided it), and set
//! HSTS on secure responses. Their deny bodies differ too.
//!
//! Request `i` of the run is a pure function of `(seed, i, thread)`:
//! [`build`] picks its class, variant, listener (TLS or plain) and source
//! address.

use std::net::Ipv4Addr;

use portcullis_e2e::{http1, net};

/// The host the policies redirect to.
pub const HOST: &str = "api.soak.test";
/// The function key the policies require.
pub const KEY: &[u8] = b"K-soak-7f3a9c";
/// Policy names (A, B).
pub const POLICY_NAMES: [&str; 2] = ["soak-a", "soak-b"];
/// Second octet of callers allowed by A only.
pub const ONLY_A: u8 = 10;
/// Second octet of callers allowed by B only.
pub const ONLY_B: u8 = 20;
/// Second octet of callers allowed by both.
pub const BOTH: u8 = 30;
/// Second octet of callers allowed by neither.
pub const NEITHER: u8 = 40;
/// Source addresses per caller range and thread.
pub const SOURCES_PER_RANGE: u8 = 3;

/// Total request-header bytes Envoy accepts by default
/// (`max_request_headers_kb: 60`): requests above get Envoy's own 431.
pub const ENVOY_HEADER_LIMIT: usize = 60 * 1024;
/// Header count Envoy accepts by default (`max_request_headers_count: 100`).
pub const ENVOY_HEADER_COUNT_LIMIT: usize = 100;

/// Policy A (`k` even) or B (`k` odd), as JSON.
pub fn policy_json(k: usize) -> String {
    let (name, only) = if k.is_multiple_of(2) {
        (POLICY_NAMES[0], ONLY_A)
    } else {
        (POLICY_NAMES[1], ONLY_B)
    };
    let key = String::from_utf8_lossy(KEY);
    format!(
        r#"{{
  "name": "{name}",
  "address_groups": {{ "callers": ["127.{only}.0.0/16", "127.{BOTH}.0.0/16"] }},
  "network": {{
    "rules": [
      {{ "name": "allow-callers", "priority": 100, "access": "allow", "source": ["callers"], "protocol": "tcp" }},
      {{ "name": "deny-neither", "priority": 200, "access": "deny", "source": ["127.{NEITHER}.0.0/16"] }}
    ],
    "default_access": "deny",
    "deny": {{ "status": 403, "body": "Forbidden by {name}\n" }}
  }},
  "https_only": {{ "action": "redirect", "redirect_status": 301, "hosts": ["{HOST}"] }},
  "require_headers": [ {{ "name": "x-functions-key", "values": ["{key}"], "status": 401 }} ],
  "response_headers": [
    {{ "remove": "X-Powered-By" }},
    {{ "remove": "X-AspNet-Version" }},
    {{ "remove": "Server" }},
    {{ "set": "X-Content-Type-Options", "value": "nosniff" }},
    {{ "set": "X-Portcullis-Policy", "value": "{name}" }}
  ],
  "hsts": {{ "max_age": 31536000, "include_subdomains": true }}
}}
"#
    )
}

/// The kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// A caller the policies (may) allow, over TLS: with the key (GET,
    /// POST), without it, with a wrong one.
    Allowed,
    /// A caller the policies (may) deny, over TLS.
    Denied,
    /// Plain HTTP: redirected (GET 301, POST 308), or 400 for another host.
    PlainRedirect,
    /// A denied caller claiming an allowed address in `X-Forwarded-For`.
    ForgedXff,
    /// Header values that are not UTF-8.
    NonUtf8,
    /// Headers near Envoy's size limit (decided by the policy) or over it
    /// (Envoy's own 431, decided up front).
    Oversized,
    /// Repeated headers (the key twice, many repeats of one name).
    Repeated,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 7] = [
        Class::Allowed,
        Class::Denied,
        Class::PlainRedirect,
        Class::ForgedXff,
        Class::NonUtf8,
        Class::Oversized,
        Class::Repeated,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Class::Allowed => "allowed",
            Class::Denied => "denied",
            Class::PlainRedirect => "plain_redirect",
            Class::ForgedXff => "forged_xff",
            Class::NonUtf8 => "non_utf8",
            Class::Oversized => "oversized",
            Class::Repeated => "repeated",
        }
    }

    /// Share of the mix, in percent.
    pub fn percent(self) -> u64 {
        match self {
            Class::Allowed => 30,
            Class::Denied => 12,
            Class::PlainRedirect => 15,
            Class::ForgedXff => 12,
            Class::NonUtf8 => 12,
            Class::Oversized => 4,
            Class::Repeated => 15,
        }
    }
}

/// One request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Class.
    pub class: Class,
    /// Variant within the class.
    pub variant: u8,
    /// TLS listener (else the plain one).
    pub tls: bool,
    /// Source address.
    pub source: Ipv4Addr,
    /// Method.
    pub method: &'static str,
    /// Host header.
    pub authority: String,
    /// Path and query.
    pub path: String,
    /// Other headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Envoy rejects the headers (431) before any filter runs.
    pub envoy_rejects: bool,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The `k`-th source address of caller range `range` for `thread`.
pub fn source(range: u8, thread: usize, k: u8) -> Ipv4Addr {
    let t = u8::try_from(thread % 200).unwrap_or(0);
    net::client(range, t + 1, k % SOURCES_PER_RANGE + 1)
}

fn filler(len: usize, salt: u64) -> Vec<u8> {
    (0..len)
        .map(|j| b'a' + ((j as u64 + salt) % 26) as u8)
        .collect()
}

/// Bytes that are not UTF-8 (Latin-1, lone continuation bytes, an invalid
/// two-byte sequence), none of them control characters.
pub const NOT_UTF8: &[u8] = b"caf\xe9 \xff\xfe \x80\x81 \xc3\x28 \xa0end";

/// Total header bytes as Envoy counts them (names and values).
pub fn header_bytes(spec: &Spec) -> usize {
    "host".len()
        + spec.authority.len()
        + spec
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>()
}

/// Builds request `i` of thread `thread`.
pub fn build(seed: u64, i: u64, thread: usize) -> Spec {
    let r = splitmix(seed ^ splitmix(i));
    let pick = r % 100;
    let mut acc = 0;
    let mut class = Class::Allowed;
    for c in Class::ALL {
        acc += c.percent();
        if pick < acc {
            class = c;
            break;
        }
    }
    let r2 = splitmix(r);
    let variant = ((r2 >> 8) % 64) as u8;
    let k = ((r2 >> 16) % u64::from(SOURCES_PER_RANGE)) as u8;
    let ranges: &[u8] = match class {
        Class::Allowed => &[ONLY_A, ONLY_B, BOTH],
        Class::Denied | Class::ForgedXff => &[NEITHER, ONLY_A, ONLY_B],
        _ => &[ONLY_A, ONLY_B, BOTH, NEITHER],
    };
    let range = ranges
        .get((r2 >> 24) as usize % ranges.len())
        .copied()
        .unwrap_or(BOTH);
    let mut spec = Spec {
        class,
        variant: 0,
        tls: true,
        source: source(range, thread, k),
        method: "GET",
        authority: HOST.to_owned(),
        path: format!("/api/orders/{i}?top=5&q=a%20b"),
        headers: Vec::new(),
        envoy_rejects: false,
    };
    let key = |v: &[u8]| (String::from("x-functions-key"), v.to_vec());
    let h = |n: &str, v: &[u8]| (n.to_owned(), v.to_vec());
    match class {
        Class::Allowed => {
            spec.variant = variant % 4;
            match spec.variant {
                0 => spec.headers.push(key(KEY)),
                1 => {
                    spec.method = "POST";
                    spec.headers.push(key(KEY));
                    spec.headers.push(h("content-length", b"0"));
                }
                2 => spec.headers.push(h("accept", b"application/json")),
                _ => spec.headers.push(key(b"K-soak-wrong")),
            }
        }
        Class::Denied => {
            spec.headers.push(key(KEY));
        }
        Class::PlainRedirect => {
            spec.tls = false;
            spec.variant = variant % 4;
            spec.headers.push(key(KEY));
            match spec.variant {
                0 => {}
                1 => {
                    spec.method = "POST";
                    spec.headers.push(h("content-length", b"0"));
                }
                2 => spec.authority = String::from("evil.soak.test"),
                _ => spec.authority = format!("{}:80", HOST.to_ascii_uppercase()),
            }
        }
        Class::ForgedXff => {
            spec.variant = variant % 4;
            spec.headers.push(key(KEY));
            let allowed = source(BOTH, thread, k).to_string();
            match spec.variant {
                0 => spec.headers.push(h("x-forwarded-for", allowed.as_bytes())),
                1 => spec.headers.push(h(
                    "x-forwarded-for",
                    format!("{allowed}, {}", source(ONLY_A, thread, k)).as_bytes(),
                )),
                2 => {
                    spec.headers.push(h("x-forwarded-for", b"203.0.113.9"));
                    spec.headers.push(h("x-forwarded-for", allowed.as_bytes()));
                }
                _ => spec.headers.push(h(
                    "x-forwarded-for",
                    format!("unknown, {allowed}, ::ffff:{allowed}").as_bytes(),
                )),
            }
        }
        Class::NonUtf8 => {
            spec.variant = variant % 5;
            match spec.variant {
                0 => {
                    let mut v = KEY.to_vec();
                    v.extend_from_slice(b"\xff");
                    spec.headers.push(key(&v));
                }
                1 => {
                    spec.headers.push(key(KEY));
                    spec.headers.push(h("x-blob", NOT_UTF8));
                }
                2 => {
                    spec.headers.push(key(KEY));
                    let mut v = source(BOTH, thread, k).to_string().into_bytes();
                    v.extend_from_slice(b"\xe9");
                    spec.headers.push(h("x-forwarded-for", &v));
                }
                3 => {
                    spec.headers.push(h("user-agent", b"soak/1.0 (caf\xe9)"));
                    spec.headers.push(key(NOT_UTF8));
                }
                _ => {
                    spec.tls = false;
                    spec.headers.push(key(KEY));
                    spec.headers.push(h("x-blob", NOT_UTF8));
                }
            }
        }
        Class::Oversized => {
            spec.variant = variant % 5;
            spec.headers.push(key(KEY));
            match spec.variant {
                // ~50 KiB in five headers: under Envoy's limit.
                0 => {
                    for j in 0..5 {
                        spec.headers
                            .push((format!("x-big-{j}"), filler(10 * 1024, i + j)));
                    }
                }
                // ~50 KiB in one value.
                1 => spec.headers.push(h("x-big", &filler(50 * 1024, i))),
                // ~70 KiB: over Envoy's 60 KiB.
                2 => {
                    for j in 0..7 {
                        spec.headers
                            .push((format!("x-big-{j}"), filler(10 * 1024, i + j)));
                    }
                }
                // 95 headers in all: under Envoy's count limit.
                3 => {
                    for j in 0..93 {
                        spec.headers.push((format!("x-many-{j}"), filler(16, j)));
                    }
                }
                // 110 headers: over it.
                _ => {
                    for j in 0..109 {
                        spec.headers.push((format!("x-many-{j}"), filler(16, j)));
                    }
                }
            }
            // Host counts too.
            let count = spec.headers.len() + 1;
            spec.envoy_rejects =
                header_bytes(&spec) > ENVOY_HEADER_LIMIT || count > ENVOY_HEADER_COUNT_LIMIT;
        }
        Class::Repeated => {
            spec.variant = variant % 5;
            match spec.variant {
                0 => {
                    spec.headers.push(key(KEY));
                    spec.headers.push(key(b"K-soak-wrong"));
                }
                1 => {
                    spec.headers.push(key(b"K-soak-wrong"));
                    spec.headers.push(key(KEY));
                }
                2 => {
                    spec.headers.push(key(b"K-soak-wrong"));
                    spec.headers.push(key(b"K-soak-wrong-too"));
                }
                3 => {
                    spec.headers.push(key(KEY));
                    for j in 0..40 {
                        spec.headers
                            .push(h("x-repeat", format!("value-{j}").as_bytes()));
                    }
                }
                _ => {
                    spec.headers.push(key(KEY));
                    spec.headers.push(h("cookie", b"a=1"));
                    spec.headers.push(h("cookie", b"b=2"));
                    spec.headers.push(h("accept", b"text/plain"));
                    spec.headers.push(h("accept", b"application/json"));
                }
            }
        }
    }
    spec
}

/// Whether request `i` goes over HTTP/2: its own hash (independent of the
/// class pick) falls under `share_percent`.
pub fn h2_picked(seed: u64, i: u64, share_percent: u64) -> bool {
    let r = splitmix(splitmix(seed ^ 0x4832_5f73_6861_7265) ^ i);
    r % 100 < share_percent
}

impl Spec {
    /// The request as HTTP/1.1 bytes (keep-alive).
    pub fn to_bytes(&self) -> Vec<u8> {
        http1::request(
            self.method,
            &self.path,
            self.authority.as_bytes(),
            &self.headers,
        )
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;
    use portcullis_core::Policy;

    #[test]
    fn both_policies_parse_and_differ_by_name() {
        for (k, name) in POLICY_NAMES.iter().enumerate() {
            let p = Policy::parse(policy_json(k).as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&p.name, name);
        }
    }

    #[test]
    fn the_mix_covers_every_class_and_the_envoy_limits_both_ways() {
        assert_eq!(Class::ALL.iter().map(|c| c.percent()).sum::<u64>(), 100);
        let specs: Vec<Spec> = (0..20_000).map(|i| build(7, i, 0)).collect();
        for c in Class::ALL {
            let n = specs.iter().filter(|s| s.class == c).count();
            let want = 20_000 * c.percent() as usize / 100;
            assert!(
                n > want * 8 / 10 && n < want * 12 / 10,
                "{c:?}: {n} vs {want}"
            );
        }
        let big: Vec<&Spec> = specs
            .iter()
            .filter(|s| s.class == Class::Oversized)
            .collect();
        assert!(big
            .iter()
            .any(|s| s.envoy_rejects && header_bytes(s) > ENVOY_HEADER_LIMIT));
        assert!(big
            .iter()
            .any(|s| s.envoy_rejects && s.headers.len() + 1 > 100));
        assert!(big
            .iter()
            .any(|s| !s.envoy_rejects && header_bytes(s) > 50 * 1024));
        assert!(big.iter().any(|s| !s.envoy_rejects && s.headers.len() > 90));
        assert!(specs
            .iter()
            .all(|s| s.class == Class::Oversized || !s.envoy_rejects));
        // The HTTP/2 pick: about its share, independent of the class.
        let picked: Vec<&Spec> = specs
            .iter()
            .enumerate()
            .filter(|(i, _)| h2_picked(7, *i as u64, 20))
            .map(|(_, s)| s)
            .collect();
        assert!(
            picked.len() > 3_200 && picked.len() < 4_800,
            "{}",
            picked.len()
        );
        for c in Class::ALL {
            assert!(picked.iter().any(|s| s.class == c));
        }
        assert!(picked.iter().any(|s| s.envoy_rejects));
        assert!(!(0..1000).any(|i| h2_picked(7, i, 0)));
        assert!((0..1000).all(|i| h2_picked(7, i, 100)));
        // Deterministic.
        assert_eq!(build(7, 123, 1), build(7, 123, 1));
        assert!(specs.iter().any(|s| !s.tls));
    }
}
