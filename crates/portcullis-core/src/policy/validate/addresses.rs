//! Address groups (resolved depth first, cycles refused) and address specs:
//! tags, group names and literals.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::addr::{self, AddrSet, Tag};
use crate::error::Error;
use crate::json::{Kind, Span, Value};

use super::super::syntax::is_name;
use super::{child, index, Validator};

impl<'t> Validator<'t> {
    pub(super) fn groups(&mut self, v: &Value) -> Option<BTreeMap<String, AddrSet>> {
        let Kind::Object(members) = &v.kind else {
            self.err(
                "address_groups",
                v.span,
                Error::WrongType {
                    expected: "an object",
                    found: v.kind_name(),
                },
            );
            return None;
        };
        let before = self.problems.len();
        let mut raw: BTreeMap<&str, (&Value, String)> = BTreeMap::new();
        for m in members {
            let p = child("address_groups", &m.key);
            if raw.contains_key(m.key.as_str()) {
                self.err(&p, m.key_span, Error::DuplicateKey(m.key.clone()));
            } else if Tag::from_name(&m.key).is_some() {
                self.err(&p, m.key_span, Error::GroupShadowsTag(m.key.clone()));
            } else if !is_name(&m.key, 64) {
                self.err(
                    &p,
                    m.key_span,
                    Error::BadName {
                        pattern: "[A-Za-z0-9._-]{1,64}",
                    },
                );
            } else {
                raw.insert(&m.key, (&m.value, p));
            }
            self.declared_groups.push(m.key.clone());
        }
        // Resolve each group, depth first, refusing cycles.
        let mut done: BTreeMap<String, AddrSet> = BTreeMap::new();
        let names: Vec<&str> = raw.keys().copied().collect();
        for n in names {
            let mut stack = Vec::new();
            self.resolve_group(n, &raw, &mut done, &mut stack);
        }
        (self.problems.len() == before).then_some(done)
    }

    pub(super) fn resolve_group(
        &mut self,
        name: &str,
        raw: &BTreeMap<&str, (&Value, String)>,
        done: &mut BTreeMap<String, AddrSet>,
        stack: &mut Vec<String>,
    ) -> Option<AddrSet> {
        if let Some(s) = done.get(name) {
            return Some(s.clone());
        }
        let (v, path) = raw.get(name)?;
        if stack.iter().any(|s| s == name) || stack.len() > 32 {
            self.err(path, v.span, Error::GroupCycle(name.to_string()));
            return None;
        }
        stack.push(name.to_string());
        let mut set = AddrSet::default();
        let mut ok = true;
        if let Some(items) = self.array(v, path) {
            if items.is_empty() {
                self.err(path, v.span, Error::Empty);
                ok = false;
            }
            for (i, it) in items.iter().enumerate() {
                let p = index(path, i);
                let Some(s) = self.string(it, &p) else {
                    ok = false;
                    continue;
                };
                if Tag::from_name(s).is_none()
                    && addr::parse_literal(s).is_err()
                    && raw.contains_key(s)
                {
                    match self.resolve_group(s, raw, done, stack) {
                        Some(g) => set.extend(&g),
                        None => ok = false,
                    }
                    continue;
                }
                match self.spec(s, it.span, &p, &BTreeMap::new()) {
                    Some(g) => set.extend(&g),
                    None => ok = false,
                }
            }
        } else {
            ok = false;
        }
        stack.pop();
        set.normalize();
        if ok {
            done.insert(name.to_string(), set.clone());
            Some(set)
        } else {
            None
        }
    }

    /// One address spec: tag, group, or literal.
    pub(super) fn spec(
        &mut self,
        s: &str,
        span: Span,
        path: &str,
        groups: &BTreeMap<String, AddrSet>,
    ) -> Option<AddrSet> {
        if let Some(t) = Tag::from_name(s) {
            return Some(t.set());
        }
        if let Some(g) = groups.get(s) {
            return Some(g.clone());
        }
        match addr::parse_literal(s) {
            Ok(set) => Some(set),
            Err(addr::AddrProblem::Unrecognized) if is_name(s, 64) => {
                // A declared group that failed to resolve was reported where
                // it is defined; anything else is unknown.
                if !self.declared_groups.iter().any(|g| g == s) {
                    self.err(path, span, Error::UnknownGroup(s.to_string()));
                }
                None
            }
            Err(problem) => {
                self.err(
                    path,
                    span,
                    Error::BadAddress {
                        text: s.to_string(),
                        problem,
                    },
                );
                None
            }
        }
    }

    pub(super) fn specs(
        &mut self,
        v: &Value,
        path: &str,
        groups: &BTreeMap<String, AddrSet>,
        texts: Option<&mut Vec<String>>,
    ) -> Option<AddrSet> {
        let items = self.array(v, path)?;
        if items.is_empty() {
            self.err(path, v.span, Error::Empty);
            return None;
        }
        let mut set = AddrSet::default();
        let mut ok = true;
        let want_texts = texts.is_some();
        let mut t = Vec::new();
        for (i, it) in items.iter().enumerate() {
            // The common case first, without building the element's path
            // (a large list has 10^5 of them): a string that is an address
            // literal, not a tag or group name.
            if let Some(s) = it.as_str() {
                if want_texts {
                    t.push(s.to_string());
                }
                if Tag::from_name(s).is_none() && !groups.contains_key(s) {
                    if let Ok(g) = addr::parse_literal(s) {
                        set.extend(&g);
                        continue;
                    }
                }
            }
            let p = index(path, i);
            match self.string(it, &p) {
                Some(s) => match self.spec(s, it.span, &p, groups) {
                    Some(g) => set.extend(&g),
                    None => ok = false,
                },
                None => ok = false,
            }
        }
        if let Some(out) = texts {
            *out = t;
        }
        set.normalize();
        ok.then_some(set)
    }
}
