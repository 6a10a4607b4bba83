//! One record decided by one policy, through the core.
//!
//! An HTTP record is handed to [`Policy::decide`] as a [`Request`]; a flow
//! (layer 4) or a trace's client goes through the network step alone
//! ([`Policy::match_rule`] on the [`Flow`]). What a record lacks is never
//! guessed: when the decision could depend on it the record is
//! [`Unjudged`]. Required headers the record does not carry are taken as
//! present (the log cannot show them; docs/replay.md).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use portcullis_core::addr::{self, Key};
use portcullis_core::policy::{Access, ClientFrom, Network, Protocol};
use portcullis_core::{Flow, Headers, Policy, Reason, Request, Step, Transport, Verdict};

use crate::{FlowSeen, HttpSeen, Observed, Record, Unjudged};

/// What decided a record in one policy: compact, for aggregation keys;
/// names come from the policy when the report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decider {
    /// Whether the record was let through (forwarded).
    pub allowed: bool,
    /// The step that decided ([`Step::index`]): the network step for a
    /// flow, whatever the verdict.
    pub step: u8,
    /// The scope that applied (index into `scopes`), `None` for the top
    /// level.
    pub scope: Option<u32>,
    /// The network rule that matched (index into the scope's
    /// `network.rules`), `None` for the default or no network section.
    pub rule: Option<u32>,
    /// The `require_headers` entry that stopped it.
    pub header: Option<u32>,
    /// The verdict enforce mode gives ([`Verdict::index`]).
    pub verdict: u8,
}

impl Decider {
    /// The step that decided.
    pub fn step(&self) -> Step {
        Step::ALL
            .get(usize::from(self.step))
            .copied()
            .unwrap_or(Step::Network)
    }
    /// The verdict.
    pub fn verdict(&self) -> Verdict {
        Verdict::ALL
            .get(usize::from(self.verdict))
            .copied()
            .unwrap_or(Verdict::Deny)
    }
}

/// A record's judgement in one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    /// What decided it.
    pub decider: Decider,
    /// The client the policy resolved (`None`: unknown).
    pub client: Option<IpAddr>,
}

/// Decides a record in a policy (enforce mode's verdict: a report-mode
/// policy is judged by what it would enforce).
pub fn judge(p: &Policy, r: &Record<'_>) -> Result<Judged, Unjudged> {
    match r.observed {
        Observed::Flow(f) => flow(p, &f),
        Observed::Client(ip) => network_only(p, &Partial::client(ip), Some(ip)),
        Observed::Http(h) => http(p, &h),
    }
}

/// A flow whose fields may be unknown.
#[derive(Debug, Clone, Copy)]
struct Partial {
    src: Key,
    sport: Option<u16>,
    dst: Option<Key>,
    dport: Option<u16>,
    transport: Option<Transport>,
}

impl Partial {
    fn client(ip: IpAddr) -> Partial {
        Partial {
            src: addr::key(ip),
            sport: None,
            dst: None,
            dport: None,
            transport: None,
        }
    }

    fn full(&self) -> Option<Flow> {
        Some(Flow {
            src: self.src,
            sport: self.sport?,
            dst: self.dst?,
            dport: self.dport?,
            transport: self.transport?,
        })
    }
}

fn flow(p: &Policy, f: &FlowSeen) -> Result<Judged, Unjudged> {
    let src = addr::canonical(f.src);
    if p.client_ip.from != ClientFrom::Peer && p.client_ip.trusted_proxies.contains(addr::key(src))
    {
        return Err(Unjudged::ClientInHeader);
    }
    let partial = Partial {
        src: addr::key(src),
        sport: Some(f.sport),
        dst: Some(addr::key(f.dst)),
        dport: Some(f.dport),
        transport: Some(f.transport),
    };
    network_only(p, &partial, Some(src))
}

/// The network step alone, for a record that cannot say which scope
/// applies: judged when the top level and every scope agree.
fn network_only(p: &Policy, f: &Partial, client: Option<IpAddr>) -> Result<Judged, Unjudged> {
    let (allowed, rule) = network(p.network.as_ref(), p, f)?;
    for i in 0..p.scopes.len() {
        let s = p.scoped(Some(i));
        if network(s.network.as_ref(), s, f)?.0 != allowed {
            return Err(Unjudged::ScopeNotRecorded);
        }
    }
    Ok(Judged {
        decider: Decider {
            allowed,
            step: step_index(Step::Network),
            scope: None,
            rule: rule.and_then(|i| u32::try_from(i).ok()),
            header: None,
            verdict: verdict_index(if allowed {
                Verdict::Forward
            } else {
                Verdict::Deny
            }),
        },
        client,
    })
}

/// Step 2 in one effective policy: whether it lets the flow through, and
/// the rule that matched. Exact flows go through the core's matcher; a
/// flow with unknown fields is matched rule by rule and refused when a rule
/// that may decide looks at an unknown field.
fn network(
    net: Option<&Network>,
    p: &Policy,
    f: &Partial,
) -> Result<(bool, Option<usize>), Unjudged> {
    let Some(net) = net else {
        return Ok((true, None));
    };
    // Rules with `headers` are matched rule by rule: a layer-4 record
    // cannot show headers.
    let headers = net.rules.iter().any(|r| !r.headers.is_empty());
    let rule = match f.full() {
        Some(flow) if !headers => p.match_rule(&flow),
        _ => match_partial(net, f)?,
    };
    let access = rule
        .and_then(|i| net.rules.get(i))
        .map_or(net.default_access, |r| r.access);
    Ok((access == Access::Allow, rule))
}

fn match_partial(net: &Network, f: &Partial) -> Result<Option<usize>, Unjudged> {
    for (i, r) in net.rules.iter().enumerate() {
        if !r.source.contains(f.src) {
            continue;
        }
        // A known field that does not match rules the rule out.
        let mismatch = f.transport.is_some_and(|t| !r.protocol.matches(t))
            || f.sport.is_some_and(|p| !r.source_ports.contains(p))
            || f.dport.is_some_and(|p| !r.destination_ports.contains(p))
            || f.dst.is_some_and(|k| !r.destination.contains(k));
        if mismatch {
            continue;
        }
        let unknown = (f.transport.is_none() && r.protocol != Protocol::Any)
            || (f.sport.is_none() && !r.source_ports.is_any())
            || (f.dport.is_none() && !r.destination_ports.is_any())
            || (f.dst.is_none() && !r.destination.is_any());
        if unknown {
            return Err(Unjudged::PortNotRecorded);
        }
        if !r.headers.is_empty() {
            return Err(Unjudged::HeadersNotRecorded);
        }
        return Ok(Some(i));
    }
    Ok(None)
}

/// The request's headers as the policy sees them: those the record holds;
/// for a name the record does not carry that the policy requires, the
/// values it requires (taken as present; never printed).
struct Seen<'a, 'b> {
    h: &'b HttpSeen<'a>,
    p: &'b Policy,
}

impl Seen<'_, '_> {
    fn carried(&self, name: &str) -> bool {
        self.h.carried.iter().any(|c| c.eq_ignore_ascii_case(name))
    }
}

impl Headers for Seen<'_, '_> {
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        if self.carried(name) {
            for (n, v) in self.h.headers {
                if n.eq_ignore_ascii_case(name) {
                    f(v);
                }
            }
            return;
        }
        let scoped = (0..self.p.scopes.len()).map(|i| self.p.scoped(Some(i)));
        for q in core::iter::once(self.p).chain(scoped) {
            for r in &q.require_headers {
                if r.name.eq_ignore_ascii_case(name) {
                    for v in &r.values {
                        f(v);
                    }
                }
            }
        }
    }

    fn each_name(&self, f: &mut dyn FnMut(&[u8])) {
        for (n, _) in self.h.headers {
            f(n.as_bytes());
        }
    }
}

fn http(p: &Policy, h: &HttpSeen<'_>) -> Result<Judged, Unjudged> {
    if h.authority.is_none() && p.scopes.iter().any(|s| !s.hosts.is_empty()) {
        return Err(Unjudged::HostNotRecorded);
    }
    if h.path.is_none() && p.scopes.iter().any(|s| !s.paths.is_empty()) {
        return Err(Unjudged::PathNotRecorded);
    }
    if h.method.is_none() && p.scopes.iter().any(|s| !s.methods.is_empty()) {
        return Err(Unjudged::MethodNotRecorded);
    }
    let peer = addr::canonical(h.peer);
    let c = &p.client_ip;
    if c.from != ClientFrom::Peer && c.trusted_proxies.contains(addr::key(peer)) {
        let name = match c.from {
            ClientFrom::Peer | ClientFrom::XForwardedFor => "x-forwarded-for",
            ClientFrom::Forwarded => "forwarded",
            ClientFrom::Header => c.header.as_deref().unwrap_or(""),
        };
        if !h.carried.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(Unjudged::ClientHeaderNotRecorded);
        }
    }
    // A rule's `headers` the record does not carry: the rule may match or
    // not, so the record is not judged (never guessed).
    let levels = || core::iter::once(p).chain((0..p.scopes.len()).map(|i| p.scoped(Some(i))));
    let unrecorded = levels().any(|q| {
        q.network.as_ref().is_some_and(|n| {
            n.rules.iter().flat_map(|r| &r.headers).any(|m| {
                !h.carried
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(m.name.as_str()))
            })
        })
    });
    if unrecorded {
        return Err(Unjudged::HeadersNotRecorded);
    }
    let seen = Seen { h, p };
    let unspecified = match h.peer {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let req = |tls: bool| Request {
        peer: SocketAddr::new(h.peer, h.peer_port.unwrap_or(0)),
        local: SocketAddr::new(h.local.unwrap_or(unspecified), h.local_port.unwrap_or(0)),
        tls,
        transport: h.transport,
        method: h.method.unwrap_or(b"GET"),
        authority: h.authority.unwrap_or(b""),
        path: h.path.unwrap_or(b"/"),
        headers: &seen,
    };
    // A plain hop from a trusted proxy may be secure by its
    // X-Forwarded-Proto: when the record does not carry it, TLS is as good
    // as not recorded.
    let forwarded_proto_unknown = h.tls != Some(true)
        && !h
            .carried
            .iter()
            .any(|n| n.eq_ignore_ascii_case("x-forwarded-proto"))
        && c.trusted_proxies.contains(addr::key(peer))
        && levels().any(|q| {
            q.https_only
                .as_ref()
                .is_some_and(|x| x.trust_forwarded_proto)
        });
    let tls = if forwarded_proto_unknown { None } else { h.tls };
    let d = p.decide(&req(tls.unwrap_or(true)));
    if tls.is_none() {
        let other = p.decide(&req(false));
        if other.enforced_verdict() != d.enforced_verdict()
            || other.rule != d.rule
            || other.deciding_step() != d.deciding_step()
        {
            return Err(Unjudged::TlsNotRecorded);
        }
    }
    let step = d.deciding_step();
    let reached_network = !matches!(step, Step::ClientIp | Step::Scope);
    let lacks = h.peer_port.is_none() || h.local.is_none() || h.local_port.is_none();
    if let (true, true, Some(ip)) = (reached_network, lacks, d.client.ip) {
        let partial = Partial {
            src: addr::key(ip),
            sport: h.peer_port,
            dst: h.local.map(addr::key),
            dport: h.local_port,
            transport: Some(h.transport),
        };
        let s = p.scoped(d.scope);
        network(s.network.as_ref(), s, &partial)?;
    }
    let reason = d.would.as_ref().map_or(d.reason, |w| w.reason);
    let verdict = d.enforced_verdict();
    Ok(Judged {
        decider: Decider {
            allowed: verdict == Verdict::Forward,
            step: step_index(step),
            scope: d.scope.and_then(|i| u32::try_from(i).ok()),
            rule: d.rule.and_then(|i| u32::try_from(i).ok()),
            header: match reason {
                Reason::RequiredHeader(i) => u32::try_from(i).ok(),
                _ => None,
            },
            verdict: verdict_index(verdict),
        },
        client: d.client.ip,
    })
}

fn step_index(s: Step) -> u8 {
    u8::try_from(s.index()).unwrap_or(u8::MAX)
}

fn verdict_index(v: Verdict) -> u8 {
    u8::try_from(v.index()).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlowSeen;

    /// A rule's `headers`: a flow log cannot show them, so a flow that such
    /// a rule may decide is not judged; one decided before it is.
    #[test]
    fn a_rule_with_headers_leaves_a_layer_4_flow_unjudged() {
        let p = Policy::parse(
            br#"{"name": "p", "network": {"rules": [
              {"name": "office", "priority": 100, "access": "allow", "source": ["10.0.0.0/8"]},
              {"name": "fd", "priority": 200, "access": "allow", "source": ["*"],
               "headers": {"x-azure-fdid": ["id"]}}]}}"#,
        )
        .unwrap();
        let flow = |src: [u8; 4]| Record {
            time: None,
            recorded: None,
            observed: Observed::Flow(FlowSeen {
                src: IpAddr::from(src),
                sport: 5000,
                dst: IpAddr::from([10, 9, 9, 9]),
                dport: 443,
                transport: Transport::Tcp,
            }),
        };
        assert_eq!(
            judge(&p, &flow([65, 52, 1, 1])).map(|j| j.decider.allowed),
            Err(Unjudged::HeadersNotRecorded)
        );
        let office = judge(&p, &flow([10, 1, 2, 3])).unwrap();
        assert!(office.decider.allowed);
        assert_eq!(office.decider.rule, Some(0));
    }
}
