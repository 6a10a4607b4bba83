//! The diff over scopes is exact: checked against the core's `decide`.
//!
//! Random policies with scopes (exact hosts and `*.suffix` wildcards
//! sharing suffixes, exact and nested `/x/*` paths, methods, `inherit`,
//! per-scope networks, scopes without one); NEW is OLD mutated (a scope's
//! network widened or narrowed, a scope dropped, two scopes swapped, a
//! `match` changed, `inherit` flipped) or unrelated. Requests are taken at
//! the patterns' boundaries (exact names, `x.suffix`, the bare suffix,
//! `/a`, `/a/b`, `/ab`, other methods, unreadable authorities, ambiguous
//! paths) with clients at the rules' boundaries, and decided by both
//! policies with `Policy::decide`.
//!
//! Region membership is checked by a naive reference written here from
//! the spec, not by the diff's classifier: a request is in a region when
//! every host pattern (of both policies) matches it as it matches the
//! region's example, every path pattern of the scopes whose hosts hold
//! likewise, and every method of the scopes whose hosts and paths hold.
//! Then: a request is in at most one listed region; a request decided
//! differently (verdict or deciding rule) is in a listed region whose group
//! names the scopes the core chose and holds its flow in a change with the
//! right rules; a request decided alike is in no listed change; a request
//! that changes scope is in a listed (moved) region.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::net::{Ipv4Addr, SocketAddr};

use portcullis_core::addr::{parse_literal, AddrSet, Key};
use portcullis_core::decide::{scope_host, scope_path, Reason, Request, Step};
use portcullis_core::policy::{parse_port_spec, Policy, Scope};
use portcullis_core::{Flow, Transport};
use portcullis_diff::{diff, Applies, Change, Flows, Kind, Part, Region, Report, Scoped};
use proptest::prelude::*;

/// Host patterns; `x.c.net`, `other` and `X-OTHER` are the names the diff
/// tries first for its representatives (it must pick others).
const HOSTS: [&str; 9] = [
    "a.c.net",
    "b.a.c.net",
    "c.net",
    "*.c.net",
    "*.a.c.net",
    "*.b.c.net",
    "[::1]",
    "x.c.net",
    "other",
];
/// Path patterns, with some no normalized path can match (`/%61`,
/// `/a/./b`, `/a//*`) and the fresh names the diff tries first.
const PATHS: [&str; 12] = [
    "/a", "/a/b", "/a/*", "/a/b/*", "/ab", "/*", "/b/*", "/", "/%61", "/a/./b", "/a//*", "/a/x",
];
const METHODS: [&str; 4] = ["GET", "POST", "DELETE", "X-OTHER"];
const SOURCES: [&str; 5] = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.3", "192.0.2.0/24", "*"];

const AUTHORITIES: [&str; 18] = [
    "x1.c.net",
    "OTHER",
    "a.c.net",
    "A.C.NET.",
    "b.a.c.net:443",
    "q.b.a.c.net",
    "q.a.c.net",
    "c.net",
    "q.c.net",
    "b.c.net",
    "q.b.c.net",
    "other",
    "[::1]:8443",
    "a:b",
    "[::1",
    "user@a.c.net",
    "a.c.net:99999",
    "x.c.net",
];
const REQ_PATHS: [&str; 20] = [
    "/",
    "/a",
    "/a/",
    "/a/b",
    "/a/b/c",
    "/ab",
    "/a/x",
    "/b",
    "/b/x",
    "/c",
    "/a%2Fb",
    "/a/../b",
    "//a/b",
    "/%61",
    "/a\\b",
    "/a/b/../../ab",
    "/a/./b",
    "/a//x",
    "/other",
    "/a/x/y",
];
const REQ_METHODS: [&str; 5] = ["GET", "POST", "DELETE", "PUT", "X-OTHER"];
const PEERS: [[u8; 4]; 8] = [
    [10, 0, 0, 1],
    [10, 1, 0, 1],
    [10, 1, 2, 3],
    [10, 1, 2, 4],
    [192, 0, 2, 9],
    [203, 0, 113, 5],
    [9, 255, 255, 255],
    [10, 255, 255, 255],
];

#[derive(Debug, Clone)]
struct GenNet {
    default_allow: bool,
    /// (allow, source index)
    rules: Vec<(bool, usize)>,
}

#[derive(Debug, Clone)]
struct GenScope {
    name: usize,
    hosts: Vec<usize>,
    paths: Vec<usize>,
    methods: Vec<usize>,
    inherit: bool,
    network: Option<GenNet>,
}

#[derive(Debug, Clone)]
struct GenPolicy {
    network: Option<GenNet>,
    scopes: Vec<GenScope>,
}

fn net() -> impl Strategy<Value = GenNet> {
    (
        any::<bool>(),
        prop::collection::vec((any::<bool>(), 0..SOURCES.len()), 0..3),
    )
        .prop_map(|(default_allow, rules)| GenNet {
            default_allow,
            rules,
        })
}

fn subset(n: usize) -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        2 => Just(Vec::new()),
        3 => prop::collection::btree_set(0..n, 1..3).prop_map(|s| s.into_iter().collect()),
    ]
}

fn scope() -> impl Strategy<Value = GenScope> {
    (
        subset(HOSTS.len()),
        subset(PATHS.len()),
        subset(METHODS.len()),
        prop_oneof![3 => Just(true), 1 => Just(false)],
        prop_oneof![2 => net().prop_map(Some), 1 => Just(None)],
        0..REQ_METHODS.len(),
    )
        .prop_map(|(hosts, paths, methods, inherit, network, m)| {
            let methods = if hosts.is_empty() && paths.is_empty() && methods.is_empty() {
                vec![m % METHODS.len()]
            } else {
                methods
            };
            GenScope {
                name: 0,
                hosts,
                paths,
                methods,
                inherit,
                network,
            }
        })
}

fn policy() -> impl Strategy<Value = GenPolicy> {
    (
        prop_oneof![3 => net().prop_map(Some), 1 => Just(None)],
        prop::collection::vec(scope(), 1..5),
    )
        .prop_map(|(network, mut scopes)| {
            for (i, s) in scopes.iter_mut().enumerate() {
                s.name = i;
            }
            GenPolicy { network, scopes }
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    Widen(usize),
    Narrow(usize),
    Drop(usize),
    Swap(usize),
    Match(usize, GenScope),
    Inherit(usize),
    DropNetwork(usize),
    Add(GenScope),
    Top(GenNet),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..8usize).prop_map(Mutation::Widen),
        (0..8usize).prop_map(Mutation::Narrow),
        (0..8usize).prop_map(Mutation::Drop),
        (0..8usize).prop_map(Mutation::Swap),
        (0..8usize, scope()).prop_map(|(i, s)| Mutation::Match(i, s)),
        (0..8usize).prop_map(Mutation::Inherit),
        (0..8usize).prop_map(Mutation::DropNetwork),
        scope().prop_map(Mutation::Add),
        net().prop_map(Mutation::Top),
    ]
}

fn mutate(p: &GenPolicy, ms: &[Mutation]) -> GenPolicy {
    let mut p = p.clone();
    for m in ms {
        let n = p.scopes.len();
        match m.clone() {
            Mutation::Widen(i) if n > 0 => {
                let net = p.scopes[i % n].network.get_or_insert(GenNet {
                    default_allow: false,
                    rules: vec![],
                });
                net.rules.insert(0, (true, i % SOURCES.len()));
            }
            Mutation::Narrow(i) if n > 0 => {
                let net = p.scopes[i % n].network.get_or_insert(GenNet {
                    default_allow: true,
                    rules: vec![],
                });
                match net.rules.first_mut() {
                    Some(r) => r.0 ^= true,
                    None => net.default_allow = false,
                }
            }
            Mutation::Drop(i) if n > 0 => {
                p.scopes.remove(i % n);
            }
            Mutation::Swap(i) if n > 1 => p.scopes.swap(i % n, (i + 1) % n),
            Mutation::Match(i, s) if n > 0 => {
                let t = &mut p.scopes[i % n];
                (t.hosts, t.paths, t.methods) = (s.hosts, s.paths, s.methods);
            }
            Mutation::Inherit(i) if n > 0 => p.scopes[i % n].inherit ^= true,
            Mutation::DropNetwork(i) if n > 0 => p.scopes[i % n].network = None,
            Mutation::Add(mut s) => {
                s.name = 10 + n;
                p.scopes.insert(n / 2, s);
            }
            Mutation::Top(net) => p.network = Some(net),
            _ => {}
        }
    }
    p
}

fn render_net(n: &GenNet, prefix: &str) -> String {
    let rules: Vec<String> = n
        .rules
        .iter()
        .enumerate()
        .map(|(i, (allow, s))| {
            format!(
                r#"{{"name":"{prefix}{i}","priority":{},"access":"{}","source":["{}"]}}"#,
                100 + 10 * i,
                if *allow { "allow" } else { "deny" },
                SOURCES[*s]
            )
        })
        .collect();
    format!(
        r#"{{"default_access":"{}","rules":[{}]}}"#,
        if n.default_allow { "allow" } else { "deny" },
        rules.join(",")
    )
}

fn list(v: &[usize], from: &[&str]) -> String {
    v.iter()
        .map(|&i| format!("{:?}", from[i]))
        .collect::<Vec<_>>()
        .join(",")
}

fn render(p: &GenPolicy) -> String {
    let mut out = String::from(r#"{"name":"prop","response_headers":[{"remove":"Server"}]"#);
    if let Some(n) = &p.network {
        out += &format!(r#","network":{}"#, render_net(n, "t"));
    }
    let scopes: Vec<String> = p
        .scopes
        .iter()
        .map(|s| {
            let mut m = Vec::new();
            if !s.hosts.is_empty() {
                m.push(format!(r#""hosts":[{}]"#, list(&s.hosts, &HOSTS)));
            }
            if !s.paths.is_empty() {
                m.push(format!(r#""paths":[{}]"#, list(&s.paths, &PATHS)));
            }
            if !s.methods.is_empty() {
                m.push(format!(r#""methods":[{}]"#, list(&s.methods, &METHODS)));
            }
            let mut f = vec![
                format!(r#""name":"s{}""#, s.name),
                format!(r#""match":{{{}}}"#, m.join(",")),
            ];
            if !s.inherit {
                f.push(r#""inherit":false"#.into());
            }
            if let Some(n) = &s.network {
                f.push(format!(
                    r#""network":{}"#,
                    render_net(n, &format!("s{}r", s.name))
                ));
            }
            format!("{{{}}}", f.join(","))
        })
        .collect();
    if !scopes.is_empty() {
        out += &format!(r#","scopes":[{}]"#, scopes.join(","));
    }
    out + "}"
}

/// What the core does with a request: (who decides, allowed, deciding rule).
fn decide(p: &Policy, r: &Request<'_>) -> (Applies, bool, String) {
    let d = p.decide(r);
    if d.deciding_step() == Step::Scope {
        let why = if d.would.as_ref().map_or(d.reason, |w| w.reason) == Reason::AmbiguousPath {
            "400 ambiguous path"
        } else {
            "400 unreadable authority"
        };
        return (Applies::Refused(why), false, why.into());
    }
    let who = match p.scope_name(d.scope) {
        Some(n) => Applies::Scope(n.into()),
        None => Applies::TopLevel,
    };
    let eff = p.scoped(d.scope);
    let rule = match (&eff.network, d.rule) {
        (None, _) => "no network section".to_string(),
        (Some(n), Some(i)) => n.rules[i].name.clone(),
        (Some(_), None) => "default".to_string(),
    };
    (who, d.deciding_step() != Step::Network, rule)
}

fn scopes_of<'a>(ps: &'a [&'a Policy; 2]) -> impl Iterator<Item = &'a Scope> {
    ps.iter().flat_map(|p| p.scopes.iter())
}

/// The naive reference: is the request (host, path, method) in the region?
fn in_region(reg: &Region, ps: &[&Policy; 2], auth: &str, path: &str, method: &str) -> bool {
    let host = scope_host(auth.as_bytes());
    let ex_host: Option<&str> = match &reg.host {
        Part::Any => None,
        Part::Unreadable => {
            if host.is_some() {
                return false;
            }
            None
        }
        Part::Like(h) => {
            let Some(x) = host else { return false };
            for s in scopes_of(ps) {
                for p in &s.hosts {
                    if p.matches(x) != p.matches(h.as_bytes()) {
                        return false;
                    }
                }
            }
            Some(h)
        }
    };
    let host_holds = |s: &Scope| match (&reg.host, ex_host) {
        (Part::Any, _) => true,
        (_, None) => s.hosts.is_empty(),
        (_, Some(h)) => s.hosts.is_empty() || s.hosts.iter().any(|p| p.matches(h.as_bytes())),
    };
    let norm = scope_path(path.as_bytes());
    let path_holds: Box<dyn Fn(&Scope) -> bool> = match &reg.path {
        Part::Any => Box::new(|_| true),
        Part::Unreadable => {
            if norm.is_ok() {
                return false;
            }
            Box::new(|s: &Scope| s.paths.is_empty())
        }
        Part::Like(p) => {
            let Ok(x) = &norm else { return false };
            for s in scopes_of(ps).filter(|s| host_holds(s)) {
                for q in &s.paths {
                    if q.matches(x) != q.matches(p.as_bytes()) {
                        return false;
                    }
                }
            }
            let p = p.clone();
            Box::new(move |s: &Scope| {
                s.paths.is_empty() || s.paths.iter().any(|q| q.matches(p.as_bytes()))
            })
        }
    };
    match &reg.method {
        Part::Any => true,
        Part::Unreadable => false,
        Part::Like(m) => scopes_of(ps)
            .filter(|s| host_holds(s) && path_holds(s))
            .flat_map(|s| s.methods.iter())
            .all(|n| (n == method) == (n == m)),
    }
}

fn addr_set(specs: &[String]) -> AddrSet {
    let mut s = AddrSet::default();
    for t in specs {
        if t == "*" {
            s.extend(&AddrSet::any());
        } else {
            s.extend(&parse_literal(t).unwrap());
        }
    }
    s.normalize();
    s
}

fn in_change(c: &Change, f: &Flow) -> bool {
    let ports = |v: &[String], p: u16| {
        v.iter().any(|t| {
            let (lo, hi) = parse_port_spec(t).unwrap();
            lo <= p && p <= hi
        })
    };
    c.flows.iter().any(|fs| {
        addr_set(&fs.source).contains(f.src)
            && addr_set(&fs.destination).contains(f.dst)
            && ports(&fs.source_ports, f.sport)
            && ports(&fs.destination_ports, f.dport)
            && (fs.protocol == "*" || fs.protocol == "tcp")
    })
}

type Probe = (usize, usize, usize, usize);

fn check(old: &Policy, new: &Policy, report: &Report, probe: Probe) -> Result<(), String> {
    let (a, p, m, c) = probe;
    let (auth, path, method) = (AUTHORITIES[a], REQ_PATHS[p], REQ_METHODS[m]);
    let peer = SocketAddr::from((Ipv4Addr::from(PEERS[c]), 50000));
    let local: SocketAddr = "10.9.0.4:443".parse().unwrap();
    let none: [(&str, &str); 0] = [];
    let req = Request {
        peer,
        local,
        tls: true,
        transport: Transport::Tcp,
        method: method.as_bytes(),
        authority: auth.as_bytes(),
        path: path.as_bytes(),
        headers: &none,
    };
    let flow = Flow {
        src: Key::V4(u32::from(Ipv4Addr::from(PEERS[c]))),
        sport: 50000,
        dst: Key::V4(u32::from(Ipv4Addr::new(10, 9, 0, 4))),
        dport: 443,
        transport: Transport::Tcp,
    };
    let (da, db) = (decide(old, &req), decide(new, &req));
    let what = format!("{method} {auth} {path} from {peer}: old {da:?}, new {db:?}");
    let Some(Scoped::Exact { groups, .. }) = &report.scopes else {
        return Err(format!("no exact scoped part: {report}"));
    };
    let ps = [old, new];
    let hits: Vec<_> = groups
        .iter()
        .flat_map(|g| g.regions.iter().map(move |r| (g, r)))
        .filter(|(_, r)| in_region(r, &ps, auth, path, method))
        .collect();
    let changed = (da.1, &da.2) != (db.1, &db.2);
    match hits.as_slice() {
        [] => {
            if changed || da.0 != db.0 {
                return Err(format!("{what}: in no listed region"));
            }
        }
        [(g, r)] => {
            if g.old != da.0 || g.new != db.0 {
                return Err(format!(
                    "{what}: in region {:?} of group old {} new {}",
                    r.description, g.old, g.new
                ));
            }
            let Flows::Exact { changes } = &g.network else {
                return Err(format!("{what}: group not exact"));
            };
            let inside: Vec<&Change> = changes.iter().filter(|c| in_change(c, &flow)).collect();
            match (changed, inside.as_slice()) {
                (false, []) => {}
                (true, [c]) => {
                    let kind = match (da.1, db.1) {
                        (false, true) => Kind::NewlyAllowed,
                        (true, false) => Kind::NewlyDenied,
                        _ => Kind::OtherRule,
                    };
                    if c.kind != kind || c.old.rule != da.2 || c.new.rule != db.2 {
                        return Err(format!("{what}: reported as {c:?}"));
                    }
                }
                (_, found) => {
                    return Err(format!(
                        "{what}: changed {changed} but in {} changes of region {:?}",
                        found.len(),
                        r.description
                    ))
                }
            }
        }
        many => {
            let d: Vec<&str> = many.iter().map(|(_, r)| r.description.as_str()).collect();
            return Err(format!("{what}: in {} regions: {d:?}", many.len()));
        }
    }
    Ok(())
}

fn probes() -> impl Strategy<Value = Vec<Probe>> {
    prop::collection::vec(
        (
            0..AUTHORITIES.len(),
            0..REQ_PATHS.len(),
            0..REQ_METHODS.len(),
            0..PEERS.len(),
        ),
        96,
    )
}

fn run(old: &GenPolicy, new: &GenPolicy, probes: &[Probe]) -> Result<(), TestCaseError> {
    let (to, tn) = (render(old), render(new));
    let po =
        Policy::parse(to.as_bytes()).map_err(|e| TestCaseError::fail(format!("{to}: {e:?}")))?;
    let pn =
        Policy::parse(tn.as_bytes()).map_err(|e| TestCaseError::fail(format!("{tn}: {e:?}")))?;
    let report = diff(&po, &pn);
    // Every listed region is real: its example is a request of the region
    // (by the naive reference) that the core sends to the named scopes.
    let groups = report.scopes.as_ref().map_or(&[][..], |s| s.groups());
    for g in groups {
        for r in &g.regions {
            let pick = |p: &Part, any: &'static str, bad: &'static str| match p {
                Part::Any => any.to_string(),
                Part::Unreadable => bad.to_string(),
                Part::Like(x) => x.clone(),
            };
            let (h, p, m) = (
                pick(&r.host, "any.example", "a:b"),
                pick(&r.path, "/", "/a%2Fb"),
                pick(&r.method, "GET", "GET"),
            );
            let fail = |why: &str| {
                TestCaseError::fail(format!(
                    "region {:?} ({h} {p} {m}): {why}\nold {to}\nnew {tn}\n{report}",
                    r.description
                ))
            };
            if !in_region(r, &[&po, &pn], &h, &p, &m) {
                return Err(fail("the example is not in its region"));
            }
            let none: [(&str, &str); 0] = [];
            let req = Request {
                peer: "10.1.2.3:1".parse().unwrap(),
                local: "10.9.0.4:443".parse().unwrap(),
                tls: true,
                transport: Transport::Tcp,
                method: m.as_bytes(),
                authority: h.as_bytes(),
                path: p.as_bytes(),
                headers: &none,
            };
            if decide(&po, &req).0 != g.old || decide(&pn, &req).0 != g.new {
                return Err(fail("the core chooses other scopes"));
            }
        }
    }
    for &pr in probes {
        check(&po, &pn, &report, pr)
            .map_err(|e| TestCaseError::fail(format!("{e}\nold {to}\nnew {tn}\n{report}")))?;
    }
    Ok(())
}

/// Policies that `inherit: false` makes invalid (nothing to drop) never
/// arise: the top level always has a response op.
fn valid(p: &GenPolicy) -> bool {
    Policy::parse(render(p).as_bytes()).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn mutated_scoped_pairs_are_exact(
        old in policy().prop_filter("valid", valid),
        ms in prop::collection::vec(mutation(), 1..4),
        probes in probes(),
    ) {
        let new = mutate(&old, &ms);
        prop_assume!(valid(&new));
        run(&old, &new, &probes)?;
    }

    #[test]
    fn unrelated_scoped_pairs_are_exact(
        old in policy().prop_filter("valid", valid),
        new in policy().prop_filter("valid", valid),
        probes in probes(),
    ) {
        run(&old, &new, &probes)?;
    }

    #[test]
    fn a_scoped_policy_against_itself_has_no_change(p in policy().prop_filter("valid", valid)) {
        let a = Policy::parse(render(&p).as_bytes()).unwrap();
        let r = diff(&a, &a);
        prop_assert!(!r.any_change(), "{r}");
    }
}
