//! Transport security: the `https_only` and `hsts` sections.

use alloc::string::ToString;
use alloc::vec::Vec;

use crate::error::Error;
use crate::json::Value;

use super::super::syntax::parse_host;
use super::super::{Hsts, HttpsAction, HttpsOnly};
use super::{index, Validator};

impl<'t> Validator<'t> {
    pub(super) fn https_only(&mut self, v: &Value) -> Option<HttpsOnly> {
        const P: &str = "https_only";
        let f = self.fields(
            v,
            P,
            &[
                "action",
                "redirect_status",
                "hosts",
                "reject_status",
                "trust_forwarded_proto",
            ],
        )?;
        let action = self
            .required(&f, P, "action")
            .and_then(|a| self.word(a, "https_only.action"));
        let redirect_status = self.status(
            f.get("redirect_status"),
            "https_only.redirect_status",
            308,
            &[301, 302, 307, 308],
            "301, 302, 307 or 308",
        );
        let reject_status = self.status(
            f.get("reject_status"),
            "https_only.reject_status",
            403,
            &[],
            "from 400 to 599",
        );
        let trust = self.or_default(f.get("trust_forwarded_proto"), false, |s, t| {
            s.boolean(t, "https_only.trust_forwarded_proto")
        });
        let mut hosts = Vec::new();
        let mut hosts_ok = true;
        match f.get("hosts") {
            Some(h) => match self.array(h, "https_only.hosts") {
                Some(items) => {
                    if items.is_empty() && action == Some(HttpsAction::Redirect) {
                        self.err("https_only.hosts", h.span, Error::RedirectWithoutHosts);
                        hosts_ok = false;
                    }
                    for (i, it) in items.iter().enumerate() {
                        let p = index("https_only.hosts", i);
                        match self.string(it, &p) {
                            Some(s) => match parse_host(s) {
                                Some(h) => hosts.push(h),
                                None => {
                                    self.err(&p, it.span, Error::BadHost(s.to_string()));
                                    hosts_ok = false;
                                }
                            },
                            None => hosts_ok = false,
                        }
                    }
                }
                None => hosts_ok = false,
            },
            None if action == Some(HttpsAction::Redirect) => {
                self.err(P, f.span, Error::RedirectWithoutHosts);
                hosts_ok = false;
            }
            None => {}
        }
        if !hosts_ok {
            return None;
        }
        Some(HttpsOnly {
            action: action?,
            redirect_status: redirect_status?,
            hosts,
            reject_status: reject_status?,
            trust_forwarded_proto: trust?,
        })
    }

    pub(super) fn hsts(&mut self, v: &Value) -> Option<Hsts> {
        let f = self.fields(v, "hsts", &["max_age", "include_subdomains", "preload"])?;
        let max_age = self
            .required(&f, "hsts", "max_age")
            .and_then(|m| self.integer(m, "hsts.max_age", 0, u64::from(u32::MAX)));
        let sub = self.or_default(f.get("include_subdomains"), false, |s, b| {
            s.boolean(b, "hsts.include_subdomains")
        });
        let preload = self.or_default(f.get("preload"), false, |s, b| s.boolean(b, "hsts.preload"));
        let (max_age, sub, preload) = (max_age?, sub?, preload?);
        if preload && (max_age < 31_536_000 || !sub) {
            let span = f.get("preload").map_or(f.span, |p| p.span);
            self.err("hsts.preload", span, Error::PreloadPrerequisites);
            return None;
        }
        let mut value = alloc::format!("max-age={max_age}");
        if sub {
            value.push_str("; includeSubDomains");
        }
        if preload {
            value.push_str("; preload");
        }
        Some(Hsts {
            max_age,
            include_subdomains: sub,
            preload,
            value,
        })
    }
}
