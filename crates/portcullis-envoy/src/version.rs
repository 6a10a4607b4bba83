//! The ABI version check at load.
//!
//! Envoy does not hand its ABI version to a module, and only warns when the
//! module claims another one. The version is a string constant in Envoy's
//! read-only data (`v0.2.0` in 1.40, the only `v0.<minor>.<patch>` string
//! there), so the module reads the `.rodata` section of the executable that
//! loads it (`/proc/self/exe`, a few MB, once per process) and loads only if
//! the one version found is [`crate::abi::ABI_VERSION`]. Anything else
//! (another version, several, none, an unreadable executable) refuses the
//! module unless `PORTCULLIS_ENVOY_ABI_OVERRIDE=1` is set in Envoy's
//! environment, which loads it with a warning.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// The environment variable that loads the module despite a mismatch.
pub const OVERRIDE_ENV: &str = "PORTCULLIS_ENVOY_ABI_OVERRIDE";

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The host reports exactly the pinned version.
    Matched,
    /// Anything else, in words.
    Mismatch(String),
}

/// Checks the executable of this process against `pinned`.
pub fn check(pinned: &str) -> Check {
    match host_versions() {
        Ok(found) => judge(pinned, &found),
        Err(e) => Check::Mismatch(format!("cannot read Envoy's ABI version: {e}")),
    }
}

/// Judges the versions found in the host against `pinned`.
pub fn judge(pinned: &str, found: &[String]) -> Check {
    match found {
        [one] if one == pinned => Check::Matched,
        [] => Check::Mismatch(String::from(
            "no dynamic-module ABI version found in the Envoy binary",
        )),
        _ => Check::Mismatch(format!(
            "Envoy's dynamic-module ABI is {}, this module is built for {pinned}",
            found.join(", ")
        )),
    }
}

/// Whether the override is set.
pub fn overridden() -> bool {
    std::env::var(OVERRIDE_ENV).is_ok_and(|v| v == "1")
}

/// The `v0.N.M` strings in the `.rodata` of `/proc/self/exe`.
fn host_versions() -> Result<Vec<String>, String> {
    let mut f = File::open("/proc/self/exe").map_err(|e| format!("/proc/self/exe: {e}"))?;
    let (offset, size) = rodata(&mut f)?;
    let size = usize::try_from(size).map_err(|_| String::from(".rodata too large"))?;
    let mut data = vec![0u8; size];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut data))
        .map_err(|e| format!("reading .rodata: {e}"))?;
    Ok(versions_in(&data))
}

/// NUL-delimited strings `v0.<digits>.<digits>` in `data`, each once.
pub fn versions_in(data: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, w) in data.windows(4).enumerate() {
        if w != b"\0v0." {
            continue;
        }
        let rest = data.get(i + 1..).unwrap_or_default();
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            continue;
        };
        let s = rest.get(..end).unwrap_or_default();
        let Ok(s) = core::str::from_utf8(s) else {
            continue;
        };
        let mut parts = s.trim_start_matches('v').split('.');
        let numeric = |p: Option<&str>| {
            p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        let ok = numeric(parts.next()) && numeric(parts.next()) && numeric(parts.next());
        if ok && parts.next().is_none() && !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

fn read_at(f: &mut File, at: u64, buf: &mut [u8]) -> Result<(), String> {
    f.seek(SeekFrom::Start(at))
        .and_then(|_| f.read_exact(buf))
        .map_err(|e| format!("reading the ELF headers: {e}"))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// File offset and size of the `.rodata` section of a little-endian ELF64.
fn rodata(f: &mut File) -> Result<(u64, u64), String> {
    let mut eh = [0u8; 64];
    read_at(f, 0, &mut eh)?;
    if eh.get(..4) != Some(b"\x7fELF".as_slice()) || eh.get(4) != Some(&2) || eh.get(5) != Some(&1)
    {
        return Err(String::from("not a little-endian ELF64 executable"));
    }
    let shoff = u64_at(&eh, 0x28);
    let shentsize = usize::from(u16_at(&eh, 0x3a));
    let shnum = usize::from(u16_at(&eh, 0x3c));
    let shstrndx = usize::from(u16_at(&eh, 0x3e));
    if shentsize < 64 || shnum == 0 || shstrndx >= shnum {
        return Err(String::from("no section headers"));
    }
    let mut sh = vec![0u8; shentsize * shnum];
    read_at(f, shoff, &mut sh)?;
    let section = |i: usize| {
        sh.get(i * shentsize..(i + 1) * shentsize)
            .unwrap_or_default()
    };
    let names = section(shstrndx);
    let (names_off, names_size) = (u64_at(names, 24), u64_at(names, 32));
    let names_size = usize::try_from(names_size).map_err(|_| String::from("bad .shstrtab"))?;
    let mut strtab = vec![0u8; names_size];
    read_at(f, names_off, &mut strtab)?;
    for i in 0..shnum {
        let s = section(i);
        let name_at = usize::try_from(u32_at(s, 0)).unwrap_or(usize::MAX);
        let name = strtab.get(name_at..).unwrap_or_default();
        if name.starts_with(b".rodata\0") {
            return Ok((u64_at(s, 24), u64_at(s, 32)));
        }
    }
    Err(String::from("no .rodata section"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nul_delimited_versions_once() {
        let data = b"xx\0v0.2.0\0/rust\0v0.2.0\0av0.3.0\0\0v0.x.1\0\0v0.10.12\0";
        assert_eq!(versions_in(data), ["v0.2.0", "v0.10.12"]);
    }

    #[test]
    fn only_the_pinned_version_alone_matches() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(judge("v0.2.0", &v(&["v0.2.0"])), Check::Matched);
        assert!(matches!(
            judge("v0.2.0", &v(&["v0.3.0"])),
            Check::Mismatch(m) if m.contains("v0.3.0") && m.contains("v0.2.0")
        ));
        assert!(matches!(
            judge("v0.2.0", &v(&["v0.2.0", "v0.3.0"])),
            Check::Mismatch(_)
        ));
        assert!(matches!(judge("v0.2.0", &[]), Check::Mismatch(_)));
    }
}
