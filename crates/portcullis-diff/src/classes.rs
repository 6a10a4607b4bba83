//! The classes of one field of a request (host, path) that the scopes'
//! patterns cannot tell apart, each with a representative and words.
//!
//! - hosts: each exact pattern is a class; every other host is classed by
//!   the longest `*.suffix` it matches (the wildcards a host matches are
//!   suffixes of one another, so the longest names them all), or by none.
//! - paths: each exact pattern; every other path by the longest `/p/*` it
//!   matches (those too are prefixes of one another), or none.
//!
//! Representatives are fresh names (never a pattern's own), and a path
//! representative that normalization would change is no request and is
//! left out (a pattern with `//`, a dot-segment or an escaped letter).
//!
//! What this module does *not* do: choose scopes (`scopes.rs` does).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use portcullis_core::decide::scope_path;
use portcullis_core::policy::{HostPattern, PathPattern};

use crate::render::join;

/// A class of one field: how the report shows it, and a representative
/// (`None`: unreadable / ambiguous).
#[derive(Clone)]
pub(crate) struct Class {
    pub(crate) desc: String,
    pub(crate) rep: Option<String>,
}

/// A fresh name: `base` then `base1`, `base2`, ... until `taken` is false.
pub(crate) fn fresh(base: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut s = String::from(base);
    let mut i = 0u32;
    while taken(&s) {
        i = i.saturating_add(1);
        s = alloc::format!("{base}{i}");
    }
    s
}

/// Up to three items, then how many more.
fn few(items: &[String]) -> String {
    let shown = join(items.iter().take(3), ", ");
    match items.len() {
        0..=3 => shown,
        n => alloc::format!("{shown} and {} more", n - 3),
    }
}

fn with_except(head: String, except: Vec<String>) -> String {
    if except.is_empty() {
        head
    } else {
        alloc::format!("{head} other than {}", few(&except))
    }
}

/// Host classes of all the host patterns of both policies.
pub(crate) fn host_classes(exact: &BTreeSet<String>, wild: &BTreeSet<String>) -> Vec<Class> {
    let mut out = Vec::new();
    for e in exact {
        out.push(Class {
            desc: alloc::format!("host {e}"),
            rep: Some(e.clone()),
        });
    }
    for w in wild {
        let label = fresh("x", |l| exact.contains(&alloc::format!("{l}{w}")));
        let pat = HostPattern::Wildcard(w.clone());
        let mut except: Vec<String> = wild
            .iter()
            .filter(|o| *o != w && o.ends_with(w.as_str()))
            .map(|o| alloc::format!("*{o}"))
            .collect();
        except.extend(exact.iter().filter(|e| pat.matches(e.as_bytes())).cloned());
        out.push(Class {
            desc: with_except(alloc::format!("hosts *{w}"), except),
            rep: Some(alloc::format!("{label}{w}")),
        });
    }
    out.push(Class {
        desc: String::from("any other host"),
        rep: Some(fresh("other", |l| exact.contains(l))),
    });
    out
}

/// The longest prefix pattern (by its base) matching a normalized path.
fn longest_prefix<'p>(prefixes: &'p BTreeSet<String>, path: &str) -> Option<&'p String> {
    if let Some(p) = prefixes.get(path) {
        return Some(p);
    }
    let b = path.as_bytes();
    (0..b.len())
        .rev()
        .filter(|&i| b.get(i) == Some(&b'/'))
        .find_map(|i| path.get(..i).and_then(|s| prefixes.get(s)))
}

/// Whether some request's normalized path is this one.
fn real(path: &str) -> bool {
    scope_path(path.as_bytes()).ok().as_deref() == Some(path.as_bytes())
}

/// Path classes of some path patterns (ambiguous paths not included).
pub(crate) fn path_classes(exact: &[String], prefixes: &[String]) -> Vec<Class> {
    let exact: &BTreeSet<String> = &exact.iter().cloned().collect();
    let prefixes: &BTreeSet<String> = &prefixes.iter().cloned().collect();
    let taken = |c: &str| exact.contains(c) || prefixes.contains(c);
    let mut reps: Vec<String> = exact.iter().cloned().collect();
    for p in prefixes {
        if !p.is_empty() {
            reps.push(p.clone());
        }
        let seg = fresh("x", |s| taken(&alloc::format!("{p}/{s}")));
        reps.push(alloc::format!("{p}/{seg}"));
    }
    let seg = fresh("other", |s| taken(&alloc::format!("/{s}")));
    reps.push(alloc::format!("/{seg}"));
    // One representative per (exact pattern, longest prefix) key.
    let mut keys: BTreeMap<(Option<&str>, Option<&str>), String> = BTreeMap::new();
    for r in reps {
        // A representative that normalization would change is no request.
        if !real(&r) {
            continue;
        }
        let e = exact.get(r.as_str()).map(String::as_str);
        let l = longest_prefix(prefixes, &r).map(String::as_str);
        keys.entry((e, l)).or_insert(r);
    }
    keys.into_iter()
        .map(|((e, l), rep)| {
            let desc = match (e, l) {
                (Some(e), _) => alloc::format!("path {e}"),
                (None, Some(l)) => {
                    let pat = PathPattern::Prefix(String::from(l));
                    let mut except: Vec<String> = prefixes
                        .iter()
                        .filter(|o| {
                            o.as_str() != l
                                && real(o)
                                && pat.covers(&PathPattern::Prefix((*o).clone()))
                        })
                        .map(|o| alloc::format!("{o}/*"))
                        .collect();
                    except.extend(
                        exact
                            .iter()
                            .filter(|x| real(x) && pat.matches(x.as_bytes()))
                            .cloned(),
                    );
                    with_except(alloc::format!("paths {l}/*"), except)
                }
                (None, None) => String::from("any other path"),
            };
            Class {
                desc,
                rep: Some(rep),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| String::from(*s)).collect()
    }

    #[test]
    fn host_representatives_avoid_the_patterns_names() {
        let c = host_classes(&set(&["x.c.net", "other"]), &set(&[".c.net", ".a.c.net"]));
        let reps: Vec<&str> = c.iter().filter_map(|c| c.rep.as_deref()).collect();
        assert_eq!(
            reps,
            ["other", "x.c.net", "x.a.c.net", "x1.c.net", "other1"]
        );
        assert_eq!(c[3].desc, "hosts *.c.net other than *.a.c.net, x.c.net");
    }

    #[test]
    fn path_classes_leave_out_what_no_request_is() {
        let exact = [
            String::from("/a/./b"),
            String::from("/%61"),
            String::from("/a"),
        ];
        let prefixes = [String::from("/a"), String::from("/a/")];
        let c = path_classes(&exact, &prefixes);
        let got: Vec<(&str, &str)> = c
            .iter()
            .map(|c| (c.desc.as_str(), c.rep.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            got,
            [
                ("any other path", "/other"),
                ("paths /a/* other than /a//*, /a", "/a/x"),
                ("paths /a//*", "/a/"),
                ("path /a", "/a"),
            ]
        );
    }
}
