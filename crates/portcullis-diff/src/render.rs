//! Intervals as address and port specs, and the report as text.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::space::{Iv, MAPPED_HI, MAPPED_LO};
use crate::{Applies, Change, Decider, FlowSet, Flows, Report, Scoped, Setting};

/// The prefix length when `[lo, hi]` is exactly one prefix of a `bits`-bit
/// family.
fn prefix(lo: u128, hi: u128, bits: u32) -> Option<u32> {
    (0..=bits).find(|&len| {
        let host = if len >= 128 {
            0
        } else {
            (u128::MAX >> len) >> (128 - bits)
        };
        lo & host == 0 && hi == lo | host
    })
}

fn addr(f: u8, v: u128) -> String {
    if f == 0 {
        alloc::format!("{}", Ipv4Addr::from(v as u32))
    } else {
        alloc::format!("{}", Ipv6Addr::from(v))
    }
}

/// One interval as the shortest address spec: an address, a CIDR, or a
/// range. An IPv6 interval that ends at the IPv4-mapped block (which holds
/// no IPv6 flow) may take the block in when that makes it one prefix.
fn spec((lo, hi): Iv) -> String {
    let (f, bits) = (lo.0, if lo.0 == 0 { 32 } else { 128 });
    let mut tries = alloc::vec![(lo.1, hi.1)];
    if f == 1 {
        let lo2 = if lo.1 == MAPPED_HI + 1 {
            MAPPED_LO
        } else {
            lo.1
        };
        let hi2 = if hi.1 == MAPPED_LO - 1 {
            MAPPED_HI
        } else {
            hi.1
        };
        tries.extend([(lo.1, hi2), (lo2, hi.1), (lo2, hi2)]);
    }
    for &(l, h) in &tries {
        match prefix(l, h, bits) {
            Some(len) if len == bits => return addr(f, l),
            Some(len) => return alloc::format!("{}/{len}", addr(f, l)),
            None => {}
        }
    }
    alloc::format!("{}-{}", addr(f, lo.1), addr(f, hi.1))
}

pub(crate) fn interval_specs(v: &[Iv]) -> Vec<String> {
    v.iter().map(|&iv| spec(iv)).collect()
}

pub(crate) fn port_specs(v: &[Iv]) -> Vec<String> {
    v.iter()
        .map(|&((_, lo), (_, hi))| {
            if lo == hi {
                alloc::format!("{lo}")
            } else {
                alloc::format!("{lo}-{hi}")
            }
        })
        .collect()
}

impl fmt::Display for Decider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.priority {
            Some(p) => write!(f, "{} (priority {p}, {})", self.rule, self.access),
            None => write!(f, "{} ({})", self.rule, self.access),
        }
    }
}

impl fmt::Display for FlowSet {
    /// `source 10.0.0.0/8 destination_ports 443 protocol tcp`: the source
    /// always, the other fields when they are not `*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "source {}", self.source.join(", "))?;
        for (name, v) in [
            ("source_ports", &self.source_ports),
            ("destination", &self.destination),
            ("destination_ports", &self.destination_ports),
        ] {
            if v.as_slice() != ["*"] {
                write!(f, "  {name} {}", v.join(", "))?;
            }
        }
        if self.protocol != "*" {
            write!(f, "  protocol {}", self.protocol)?;
        }
        Ok(())
    }
}

fn groups(f: &mut fmt::Formatter<'_>, pad: &str, changes: &[Change], flows: bool) -> fmt::Result {
    let mut kind = None;
    for c in changes {
        if kind != Some(c.kind) {
            writeln!(f, "{pad}{}:", c.kind.heading())?;
            kind = Some(c.kind);
        }
        if flows {
            writeln!(f, "{pad}  old {}, new {}:", c.old, c.new)?;
            for (i, w) in c.when.iter().enumerate() {
                let lead = if i == 0 { "when" } else { "or when" };
                writeln!(f, "{pad}    {lead} {w}:")?;
            }
            for fl in &c.flows {
                writeln!(f, "{pad}    {fl}")?;
            }
        } else {
            let s = if c.ranges == 1 { "" } else { "s" };
            writeln!(
                f,
                "{pad}  old {}, new {}: {} range{s}",
                c.old, c.new, c.ranges
            )?;
            for (i, w) in c.when.iter().enumerate() {
                let lead = if i == 0 { "when" } else { "or when" };
                writeln!(f, "{pad}    {lead} {w}")?;
            }
        }
    }
    Ok(())
}

/// The network part, each line after `pad`.
fn network(f: &mut fmt::Formatter<'_>, pad: &str, flows: &Flows) -> fmt::Result {
    match flows {
        Flows::Exact { changes } if changes.is_empty() => {
            writeln!(f, "{pad}no change in who may call")
        }
        Flows::Exact { changes } => groups(f, pad, changes, true),
        Flows::TooManyRanges {
            ranges,
            limit,
            changes,
        } => {
            writeln!(
                f,
                "{pad}too many ranges: {ranges} (the report lists at most {limit}); per group:"
            )?;
            groups(f, pad, changes, false)
        }
        Flows::TooComplex { limit } => writeln!(
            f,
            "{pad}too many ranges: the comparison stopped after {limit} cells; \
             every flow may have changed"
        ),
    }
}

fn settings(f: &mut fmt::Formatter<'_>, pad: &str, list: &[Setting]) -> fmt::Result {
    for s in list {
        writeln!(f, "{pad}{}: {} -> {}", s.field, s.old, s.new)?;
    }
    Ok(())
}

impl fmt::Display for Applies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Applies::TopLevel => f.write_str("top level"),
            Applies::Scope(n) => write!(f, "scope {n}"),
            Applies::Refused(w) => f.write_str(w),
        }
    }
}

/// Regions listed per group in the text form (JSON has them all).
const SHOWN_REGIONS: usize = 20;

fn scoped(f: &mut fmt::Formatter<'_>, s: &Scoped) -> fmt::Result {
    let list = s.scopes();
    if !list.is_empty() {
        writeln!(f, "scopes:")?;
    }
    let pos = |p: Option<usize>| p.map_or_else(|| String::from("none"), |i| alloc::format!("{i}"));
    for c in list {
        match (&c.old_match, &c.new_match) {
            (None, Some(m)) => writeln!(
                f,
                "  {}: added at position {}: {m}",
                c.name,
                pos(c.new_position)
            )?,
            (Some(m), None) => writeln!(
                f,
                "  {}: removed from position {}: {m}",
                c.name,
                pos(c.old_position)
            )?,
            (a, b) => {
                writeln!(f, "  {}:", c.name)?;
                if c.old_position != c.new_position {
                    writeln!(
                        f,
                        "    position: {} -> {}",
                        pos(c.old_position),
                        pos(c.new_position)
                    )?;
                }
                if a != b {
                    let m = |x: &Option<String>| x.clone().unwrap_or_default();
                    writeln!(f, "    match: {} -> {}", m(a), m(b))?;
                }
                settings(f, "    ", &c.settings)?;
            }
        }
    }
    match s {
        Scoped::TooManyRegions { limit, .. } => writeln!(
            f,
            "requests by scope: too many regions: the cut stopped after {limit} units of work; \
             every request may have changed"
        ),
        Scoped::Exact { groups, .. } if groups.is_empty() => {
            writeln!(f, "requests by scope: no change")
        }
        Scoped::Exact { groups, .. } => {
            writeln!(f, "requests by scope:")?;
            for g in groups {
                let moved = if g.moved { " (moved)" } else { "" };
                writeln!(f, "  old {}, new {}{moved}:", g.old, g.new)?;
                writeln!(f, "    regions:")?;
                for r in g.regions.iter().take(SHOWN_REGIONS) {
                    writeln!(f, "      {}", r.description)?;
                }
                if g.regions.len() > SHOWN_REGIONS {
                    writeln!(
                        f,
                        "      and {} more (see --format json)",
                        g.regions.len() - SHOWN_REGIONS
                    )?;
                }
                network(f, "    ", &g.network)?;
                if !g.settings.is_empty() {
                    writeln!(f, "    settings:")?;
                    settings(f, "      ", &g.settings)?;
                }
            }
            Ok(())
        }
    }
}

impl fmt::Display for Report {
    /// The text form `portcullis diff` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scopes.is_some() {
            writeln!(f, "top level:")?;
        }
        network(f, "", &self.network)?;
        if !self.settings.is_empty() {
            writeln!(f, "settings:")?;
            settings(f, "  ", &self.settings)?;
        }
        if let Some(s) = &self.scopes {
            scoped(f, s)?;
        }
        Ok(())
    }
}

/// `a, b` without allocating per item.
pub(crate) fn join<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I, sep: &str) -> String {
    let mut s = String::new();
    for (i, it) in items.into_iter().enumerate() {
        if i > 0 {
            s.push_str(sep);
        }
        let _ = s.write_str(it.as_ref());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let v4 = |a: u32, b: u32| ((0, u128::from(a)), (0, u128::from(b)));
        assert_eq!(spec(v4(0x0a00_0000, 0x0aff_ffff)), "10.0.0.0/8");
        assert_eq!(spec(v4(0x0a00_0001, 0x0a00_0001)), "10.0.0.1");
        assert_eq!(spec(v4(0x0a00_0001, 0x0a00_0005)), "10.0.0.1-10.0.0.5");
        assert_eq!(spec(v4(0, u32::MAX)), "0.0.0.0/0");
        assert_eq!(spec(((1, 0), (1, u128::MAX))), "::/0");
        // ::/80 less the mapped block it holds is still printed as ::/80.
        assert_eq!(spec(((1, 0), (1, MAPPED_LO - 1))), "::/80");
        assert_eq!(spec(((1, 1), (1, 1))), "::1");
    }
}
