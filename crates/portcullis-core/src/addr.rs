//! Addresses, prefixes, ranges and tags, as sets of integer intervals.
//!
//! Every address spec compiles to inclusive intervals over `u32` (IPv4) and
//! `u128` (IPv6). IPv4-mapped IPv6 addresses are folded to IPv4 before any
//! lookup, so a spec never needs to mention both forms.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Inclusive intervals per address family, sorted and non-overlapping once
/// [`AddrSet::normalize`] has run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrSet {
    /// IPv4 intervals.
    pub v4: Vec<(u32, u32)>,
    /// IPv6 intervals (IPv4-mapped space is never needed here).
    pub v6: Vec<(u128, u128)>,
}

/// An address folded for matching: IPv4 (including IPv4-mapped IPv6) or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// An IPv4 address as an integer.
    V4(u32),
    /// An IPv6 address as an integer.
    V6(u128),
}

/// Folds an address: IPv4-mapped IPv6 becomes IPv4.
#[deny(clippy::arithmetic_side_effects)]
pub fn key(ip: IpAddr) -> Key {
    match ip {
        IpAddr::V4(a) => Key::V4(u32::from(a)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => Key::V4(u32::from(v4)),
            None => Key::V6(u128::from(a)),
        },
    }
}

/// The address as it should be shown: IPv4-mapped IPv6 as plain IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match key(ip) {
        Key::V4(a) => IpAddr::V4(Ipv4Addr::from(a)),
        Key::V6(_) => ip,
    }
}

/// Sorts and merges in place (no second vector), then gives back the room
/// the merged intervals no longer need.
fn merge<T: Copy + Ord + MaxVal>(v: &mut Vec<(T, T)>) {
    v.sort_unstable();
    let mut kept = 0usize;
    for r in 0..v.len() {
        let Some(&(lo, hi)) = v.get(r) else { break };
        if let Some(last) = kept.checked_sub(1).and_then(|k| v.get_mut(k)) {
            // Adjacent or overlapping: extend. `last.1 == MAX` means it covers
            // everything after it already.
            if last.1 == T::MAX || lo <= last.1.succ() {
                if hi > last.1 {
                    last.1 = hi;
                }
                continue;
            }
        }
        if let Some(slot) = v.get_mut(kept) {
            *slot = (lo, hi);
        }
        kept += 1;
    }
    v.truncate(kept);
    v.shrink_to_fit();
}

/// The largest value of an unsigned integer type, and a successor that cannot
/// overflow (callers check for `MAX` first).
pub trait MaxVal: Sized {
    /// Largest value.
    const MAX: Self;
    /// `self + 1`, saturating.
    fn succ(self) -> Self;
}
impl MaxVal for u32 {
    const MAX: u32 = u32::MAX;
    fn succ(self) -> u32 {
        self.saturating_add(1)
    }
}
impl MaxVal for u128 {
    const MAX: u128 = u128::MAX;
    fn succ(self) -> u128 {
        self.saturating_add(1)
    }
}

#[deny(clippy::arithmetic_side_effects)]
fn contains_sorted<T: Copy + Ord>(v: &[(T, T)], x: T) -> bool {
    // First interval whose end is >= x.
    let i = v.partition_point(|&(_, hi)| hi < x);
    matches!(v.get(i), Some(&(lo, _)) if lo <= x)
}

impl AddrSet {
    /// Every address of both families.
    pub fn any() -> Self {
        AddrSet {
            v4: alloc::vec![(0, u32::MAX)],
            v6: alloc::vec![(0, u128::MAX)],
        }
    }

    /// Sorts and merges the intervals.
    pub fn normalize(&mut self) {
        merge(&mut self.v4);
        merge(&mut self.v6);
    }

    /// Adds every interval of `other`.
    pub fn extend(&mut self, other: &AddrSet) {
        self.v4.extend_from_slice(&other.v4);
        self.v6.extend_from_slice(&other.v6);
    }

    /// Whether the (normalized) set holds the address.
    pub fn contains(&self, k: Key) -> bool {
        match k {
            Key::V4(a) => contains_sorted(&self.v4, a),
            Key::V6(a) => contains_sorted(&self.v6, a),
        }
    }

    /// Whether the set holds every address.
    pub fn is_any(&self) -> bool {
        self.v4.as_slice() == [(0, u32::MAX)] && self.v6.as_slice() == [(0, u128::MAX)]
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether every address of `other` is in `self` (both normalized).
    pub fn covers(&self, other: &AddrSet) -> bool {
        fn cov<T: Copy + Ord>(a: &[(T, T)], b: &[(T, T)]) -> bool {
            b.iter().all(|&(lo, hi)| {
                let i = a.partition_point(|&(_, h)| h < lo);
                matches!(a.get(i), Some(&(l, h)) if l <= lo && hi <= h)
            })
        }
        cov(&self.v4, &other.v4) && cov(&self.v6, &other.v6)
    }

    /// Whether the two (normalized) sets share an address.
    pub fn intersects(&self, other: &AddrSet) -> bool {
        fn int<T: Copy + Ord>(a: &[(T, T)], b: &[(T, T)]) -> bool {
            let (mut i, mut j) = (0, 0);
            while let (Some(&(al, ah)), Some(&(bl, bh))) = (a.get(i), b.get(j)) {
                if al <= bh && bl <= ah {
                    return true;
                }
                if ah < bh {
                    i += 1;
                } else {
                    j += 1;
                }
            }
            false
        }
        int(&self.v4, &other.v4) || int(&self.v6, &other.v6)
    }

    /// The addresses not in `self` (normalized input and output).
    pub fn complement(&self) -> AddrSet {
        fn comp<T: Copy + Ord + MaxVal + Default + Pred>(v: &[(T, T)]) -> Vec<(T, T)> {
            let mut out = Vec::new();
            let mut next = Some(T::default());
            for &(lo, hi) in v {
                if let Some(n) = next {
                    if lo > n {
                        out.push((n, lo.pred()));
                    }
                }
                next = if hi == T::MAX { None } else { Some(hi.succ()) };
            }
            if let Some(n) = next {
                out.push((n, T::MAX));
            }
            out
        }
        AddrSet {
            v4: comp(&self.v4),
            v6: comp(&self.v6),
        }
    }
}

/// `self - 1` for values known to be above zero.
pub trait Pred {
    /// `self - 1`, saturating.
    fn pred(self) -> Self;
}
impl Pred for u32 {
    fn pred(self) -> u32 {
        self.saturating_sub(1)
    }
}
impl Pred for u128 {
    fn pred(self) -> u128 {
        self.saturating_sub(1)
    }
}

/// Why an address spec is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrProblem {
    /// Not an address, prefix, range, tag or group.
    Unrecognized,
    /// An octet with a leading zero, which some parsers read as octal.
    LeadingZeros,
    /// `fe80::1%eth0`.
    ZoneId,
    /// `1.2.3.4:80`.
    Port,
    /// `/33` on IPv4 and the like.
    PrefixTooLong {
        /// The largest legal length.
        max: u8,
    },
    /// `10.1.2.3/8`: names the network meant.
    HostBits {
        /// The network with host bits cleared, e.g. `10.0.0.0/8`.
        network: String,
    },
    /// A range whose ends are of different families.
    MixedRange,
    /// A range whose low end is above its high end.
    ReversedRange,
}

/// [`parse_literal`] into an existing set (not normalized). The common
/// forms, `a.b.c.d` and `a.b.c.d/len` written canonically, are read by
/// hand without an allocation; anything else goes through
/// [`parse_literal`], so the result and every problem are the same.
pub fn parse_literal_into(s: &str, set: &mut AddrSet) -> Result<(), AddrProblem> {
    if let Some(range) = v4_prefix_fast(s.as_bytes()) {
        set.v4.push(range);
        return Ok(());
    }
    let one = parse_literal(s)?;
    set.extend(&one);
    Ok(())
}

/// `a.b.c.d` or `a.b.c.d/len` with no leading zeros, octets up to 255, a
/// length up to 32 and no host bits: its interval. `None` means "not
/// this form" (the general parser then decides and names the problem).
fn v4_prefix_fast(s: &[u8]) -> Option<(u32, u32)> {
    // Five numbers (four octets, the length): value and digit count each.
    let mut v = 0u32;
    let mut n = 0u32;
    let mut digits = 0u32;
    let mut dots = 0u32;
    let mut len = None;
    let mut leading_zero = false;
    for &b in s {
        match b {
            b'0'..=b'9' => {
                if leading_zero || digits == 3 {
                    return None;
                }
                leading_zero = digits == 0 && b == b'0';
                n = n * 10 + u32::from(b - b'0');
                digits += 1;
            }
            b'.' if len.is_none() && dots < 3 && digits > 0 && n <= 255 => {
                v = (v << 8) | n;
                dots += 1;
                (n, digits, leading_zero) = (0, 0, false);
            }
            b'/' if len.is_none() && dots == 3 && digits > 0 && n <= 255 => {
                len = Some((v << 8) | n);
                (n, digits, leading_zero) = (0, 0, false);
            }
            _ => return None,
        }
    }
    if digits == 0 || dots != 3 {
        return None;
    }
    let (v, len) = match len {
        Some(v) if n <= 32 && digits <= 2 => (v, n),
        None if n <= 255 => ((v << 8) | n, 32),
        _ => return None,
    };
    let host = u32::MAX.checked_shr(len).unwrap_or(0);
    (v & host == 0).then_some((v, v | host))
}

/// A parsed single address, prefix or range (tags and groups are resolved by
/// the policy compiler, which knows the groups).
pub fn parse_literal(s: &str) -> Result<AddrSet, AddrProblem> {
    if s.contains('%') {
        return Err(AddrProblem::ZoneId);
    }
    if let Some((a, b)) = s.split_once('-') {
        let a = parse_ip(a.trim())?;
        let b = parse_ip(b.trim())?;
        let mut set = AddrSet::default();
        match (key(a), key(b)) {
            (Key::V4(x), Key::V4(y)) if x <= y => set.v4.push((x, y)),
            (Key::V6(x), Key::V6(y)) if x <= y => set.v6.push((x, y)),
            (Key::V4(_), Key::V4(_)) | (Key::V6(_), Key::V6(_)) => {
                return Err(AddrProblem::ReversedRange)
            }
            _ => return Err(AddrProblem::MixedRange),
        }
        return Ok(set);
    }
    if let Some((a, len)) = s.split_once('/') {
        let ip = parse_ip(a)?;
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = match len.parse::<u8>() {
            Ok(l) if (len.len() == 1 || !len.starts_with('0')) && !len.starts_with('+') => l,
            _ => return Err(AddrProblem::Unrecognized),
        };
        if len > max {
            return Err(AddrProblem::PrefixTooLong { max });
        }
        let mut set = AddrSet::default();
        match ip {
            IpAddr::V4(a) => {
                let v = u32::from(a);
                let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                if v & host != 0 {
                    return Err(AddrProblem::HostBits {
                        network: alloc::format!("{}/{}", Ipv4Addr::from(v & !host), len),
                    });
                }
                set.v4.push((v, v | host));
            }
            IpAddr::V6(a) => {
                let v = u128::from(a);
                let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                if v & host != 0 {
                    return Err(AddrProblem::HostBits {
                        network: alloc::format!("{}/{}", Ipv6Addr::from(v & !host), len),
                    });
                }
                // A prefix inside the IPv4-mapped space matches IPv4 clients.
                let (lo, hi) = (v, v | host);
                push_v6(&mut set, lo, hi);
            }
        }
        return Ok(set);
    }
    let ip = parse_ip(s)?;
    let mut set = AddrSet::default();
    match key(ip) {
        Key::V4(a) => set.v4.push((a, a)),
        Key::V6(a) => set.v6.push((a, a)),
    }
    Ok(set)
}

const MAPPED_LO: u128 = 0xffff_0000_0000;
const MAPPED_HI: u128 = 0xffff_ffff_ffff;

/// Adds an IPv6 interval. One that lies wholly inside `::ffff:0:0/96` was
/// written as IPv4-mapped on purpose and matches those IPv4 clients; any
/// other IPv6 spec (`::/0` included) matches IPv6 clients only, since
/// IPv4-mapped clients are folded to IPv4 before matching.
fn push_v6(set: &mut AddrSet, lo: u128, hi: u128) {
    if lo >= MAPPED_LO && hi <= MAPPED_HI {
        // Both are below 2^32 after the subtraction: the mapped space is
        // exactly 2^32 long.
        let a = u32::try_from(lo.saturating_sub(MAPPED_LO)).unwrap_or(0);
        let b = u32::try_from(hi.saturating_sub(MAPPED_LO)).unwrap_or(u32::MAX);
        set.v4.push((a, b));
    } else {
        set.v6.push((lo, hi));
    }
}

/// Parses one address strictly: no leading zeros, no zone, no port.
pub fn parse_ip(s: &str) -> Result<IpAddr, AddrProblem> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip);
    }
    if s.contains('%') {
        return Err(AddrProblem::ZoneId);
    }
    // Diagnose the common mistakes.
    let v4ish = |t: &str| {
        let parts: Vec<&str> = t.split('.').collect();
        parts.len() == 4
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    if v4ish(s) && s.split('.').any(|p| p.len() > 1 && p.starts_with('0')) {
        return Err(AddrProblem::LeadingZeros);
    }
    if let Some((h, p)) = s.rsplit_once(':') {
        let h = h
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h);
        if !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && h.parse::<IpAddr>().is_ok()
            && (s.starts_with('[') || h.parse::<Ipv4Addr>().is_ok())
        {
            return Err(AddrProblem::Port);
        }
    }
    Err(AddrProblem::Unrecognized)
}

/// Parses `a.b.c.d:port` by hand: the form hosts report for nearly every
/// request, so it skips the general parsers. `None` means "not this form"
/// (the general path then decides), never "invalid".
#[deny(clippy::arithmetic_side_effects)]
fn parse_v4_socket_fast(s: &[u8]) -> Option<(IpAddr, u16)> {
    let mut parts = [0u32; 5];
    let mut n = 0usize;
    let mut digits = 0usize;
    for &b in s {
        match b {
            b'0'..=b'9' => {
                let slot = parts.get_mut(n)?;
                // A leading zero ("01") is left to the general parser.
                if digits == 1 && *slot == 0 {
                    return None;
                }
                // b is an ASCII digit, so the subtraction is exact.
                *slot = slot
                    .checked_mul(10)?
                    .checked_add(u32::from(b.wrapping_sub(b'0')))?;
                digits = digits.saturating_add(1);
                if digits > 5 {
                    return None;
                }
            }
            b'.' if n < 3 && digits > 0 => {
                n = n.saturating_add(1);
                digits = 0;
            }
            b':' if n == 3 && digits > 0 => {
                n = n.saturating_add(1);
                digits = 0;
            }
            _ => return None,
        }
    }
    let [a, b, c, d, port] = parts;
    if n != 4 || digits == 0 || a > 255 || b > 255 || c > 255 || d > 255 {
        return None;
    }
    let port = u16::try_from(port).ok()?;
    // Each octet was checked to be at most 255 above.
    let ip = Ipv4Addr::new(a as u8, b as u8, c as u8, d as u8);
    Some((IpAddr::V4(ip), port))
}

/// Parses `ip:port` or `[ipv6]:port` as hosts and test files write peers.
#[deny(clippy::arithmetic_side_effects)]
pub fn parse_socket(s: &str) -> Option<(IpAddr, u16)> {
    if let Some(v) = parse_v4_socket_fast(s.as_bytes()) {
        return Some(v);
    }
    let (h, p) = s.rsplit_once(':')?;
    let port = p.parse::<u16>().ok()?;
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ip = if let Some(v6) = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?)
    } else {
        IpAddr::V4(h.parse::<Ipv4Addr>().ok()?)
    };
    Some((ip, port))
}

/// The built-in tags (matched case-insensitively, as NSG tags are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// `*`
    Any,
    /// `Internet`: globally routable.
    Internet,
    /// `Private`: RFC 1918 and ULA.
    Private,
    /// `Loopback`.
    Loopback,
}

impl Tag {
    /// Recognizes a tag name.
    pub fn from_name(s: &str) -> Option<Tag> {
        if s == "*" {
            Some(Tag::Any)
        } else if s.eq_ignore_ascii_case("internet") {
            Some(Tag::Internet)
        } else if s.eq_ignore_ascii_case("private") {
            Some(Tag::Private)
        } else if s.eq_ignore_ascii_case("loopback") {
            Some(Tag::Loopback)
        } else {
            None
        }
    }

    /// The addresses the tag stands for.
    pub fn set(self) -> AddrSet {
        let lits: &[&str] = match self {
            Tag::Any => return AddrSet::any(),
            Tag::Internet => return non_global().complement(),
            Tag::Private => &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
            Tag::Loopback => &["127.0.0.0/8", "::1"],
        };
        from_literals(lits)
    }
}

fn from_literals(lits: &[&str]) -> AddrSet {
    let mut set = AddrSet::default();
    for l in lits {
        // The literals are constants of this module, checked by a unit test.
        if let Ok(s) = parse_literal(l) {
            set.extend(&s);
        }
    }
    set.normalize();
    set
}

/// IANA special-purpose ranges that are not globally reachable (RFC 6890 and
/// the registries' "Globally Reachable = False" rows, plus multicast and the
/// reserved 240/4), the complement of the `Internet` tag.
pub const NON_GLOBAL: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

fn non_global() -> AddrSet {
    from_literals(NON_GLOBAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Key {
        key(s.parse().unwrap())
    }

    #[test]
    fn literals_of_this_module_parse() {
        for l in NON_GLOBAL {
            parse_literal(l).unwrap();
        }
    }

    #[test]
    fn prefixes_and_ranges() {
        let s = parse_literal("10.0.0.0/8").unwrap();
        assert_eq!(s.v4, [(0x0a00_0000, 0x0aff_ffff)]);
        assert_eq!(parse_literal("0.0.0.0/0").unwrap().v4, [(0, u32::MAX)]);
        assert_eq!(parse_literal("::/0").unwrap().v6, [(0, u128::MAX)]);
        assert!(
            parse_literal("::/0").unwrap().v4.is_empty(),
            "::/0 is IPv6 only"
        );
        assert_eq!(
            parse_literal("10.1.2.3/8"),
            Err(AddrProblem::HostBits {
                network: "10.0.0.0/8".into()
            })
        );
        assert_eq!(
            parse_literal("10.0.0.0/33"),
            Err(AddrProblem::PrefixTooLong { max: 32 })
        );
        assert_eq!(parse_literal("010.0.0.1"), Err(AddrProblem::LeadingZeros));
        assert_eq!(parse_literal("fe80::1%eth0"), Err(AddrProblem::ZoneId));
        assert_eq!(parse_literal("1.2.3.4:80"), Err(AddrProblem::Port));
        assert_eq!(parse_literal("[::1]:80"), Err(AddrProblem::Port));
        assert_eq!(
            parse_literal("10.0.0.9-10.0.0.1"),
            Err(AddrProblem::ReversedRange)
        );
        assert_eq!(parse_literal("10.0.0.1-::1"), Err(AddrProblem::MixedRange));
        assert_eq!(parse_literal("10.0.0.0/08"), Err(AddrProblem::Unrecognized));
        let m = parse_literal("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(m.v4, [(0x0a00_0000, 0x0aff_ffff)]);
        assert!(m.v6.is_empty());
    }

    #[test]
    fn tags() {
        let inet = Tag::Internet.set();
        assert!(inet.contains(k("65.52.10.20")));
        assert!(inet.contains(k("2603:1000::1")));
        for a in [
            "10.1.1.1",
            "127.0.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "224.0.0.1",
            "203.0.113.5",
            "::ffff:10.0.0.1",
        ] {
            assert!(!inet.contains(k(a)), "{a}");
        }
        assert!(Tag::Private.set().contains(k("172.31.255.255")));
        assert!(!Tag::Private.set().contains(k("172.32.0.0")));
        assert!(Tag::Any.set().is_any());
    }

    #[test]
    fn set_algebra() {
        let mut a = parse_literal("10.0.0.0/8").unwrap();
        a.extend(&parse_literal("11.0.0.0/8").unwrap());
        a.normalize();
        assert_eq!(a.v4, [(0x0a00_0000, 0x0bff_ffff)]);
        let c = a.complement();
        assert!(!c.contains(k("10.5.5.5")) && c.contains(k("12.0.0.0")) && c.contains(k("::")));
        assert!(AddrSet::any().covers(&a));
        assert!(!a.covers(&AddrSet::any()));
        assert!(a.intersects(&parse_literal("11.1.1.1").unwrap()));
        assert!(!a.intersects(&parse_literal("12.1.1.1").unwrap()));
    }

    #[test]
    fn socket_fast_path_agrees_with_the_general_one() {
        for t in [
            "1.2.3.4:80",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "256.1.1.1:80",
            "1.2.3.4:65536",
            "01.2.3.4:80",
            "1.2.3.4:080",
            "1.2.3:80",
            "1.2.3.4.5:80",
            "1.2.3.4:",
            ":80",
            "1..3.4:1",
            "1.2.3.4:8a",
            "1.2.3.4",
            "[::1]:80",
            "127.0.0.1:00",
            "127.000.0.1:1",
        ] {
            let general = t.rsplit_once(':').and_then(|(h, p)| {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))?;
                Some((IpAddr::V4(h.parse::<Ipv4Addr>().ok()?), port))
            });
            if let Some(fast) = parse_v4_socket_fast(t.as_bytes()) {
                assert_eq!(Some(fast), general, "{t}");
            }
            if !(t.contains(":0") && t.len() > t.find(":0").unwrap() + 2) {
                assert_eq!(
                    parse_socket(t).filter(|(ip, _)| ip.is_ipv4()),
                    general,
                    "{t}"
                );
            }
        }
    }

    #[test]
    fn sockets() {
        assert_eq!(
            parse_socket("1.2.3.4:80"),
            Some(("1.2.3.4".parse().unwrap(), 80))
        );
        assert_eq!(
            parse_socket("[::1]:443"),
            Some(("::1".parse().unwrap(), 443))
        );
        assert_eq!(parse_socket("::1:443"), None);
        assert_eq!(parse_socket("1.2.3.4:+80"), None);
    }
}
