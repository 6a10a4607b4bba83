//! The `client_ip` section: where the client address comes from.
//!
//! `from` is `peer` (default), `x-forwarded-for`, `forwarded` or `header`;
//! `trusted_proxies` is required with every `from` but `peer`; `header` (an
//! HTTP token) is required with `from: header` and refused with any other.

use alloc::collections::BTreeMap;
use alloc::string::String;

use crate::addr::AddrSet;
use crate::error::Error;
use crate::json::Value;

use super::super::syntax::is_token;
use super::super::{ClientFrom, ClientIp};
use super::Validator;

impl<'t> Validator<'t> {
    pub(super) fn client_ip(
        &mut self,
        v: &Value,
        groups: &BTreeMap<String, AddrSet>,
    ) -> Option<ClientIp> {
        let f = self.fields(v, "client_ip", &["from", "trusted_proxies", "header"])?;
        let from = match f.get("from") {
            Some(x) => self.word(x, "client_ip.from")?,
            None => ClientFrom::Peer,
        };
        let trusted = match f.get("trusted_proxies") {
            Some(t) => self.specs(t, "client_ip.trusted_proxies", groups, None),
            None if from != ClientFrom::Peer => {
                self.err("client_ip", f.span, Error::MissingField("trusted_proxies"));
                None
            }
            None => Some(AddrSet::default()),
        };
        let header = match (f.get("header"), from) {
            (Some(h), ClientFrom::Header) => {
                let s = self.string(h, "client_ip.header")?;
                if !is_token(s) {
                    self.err("client_ip.header", h.span, Error::BadHeaderName);
                    return None;
                }
                Some(Some(s.to_ascii_lowercase()))
            }
            (None, ClientFrom::Header) => {
                self.err("client_ip", f.span, Error::MissingField("header"));
                None
            }
            (Some(h), _) => {
                self.err(
                    "client_ip.header",
                    h.span,
                    Error::Conflict("\"header\" is only read with \"from\": \"header\""),
                );
                None
            }
            (None, _) => Some(None),
        };
        Some(ClientIp {
            from,
            trusted_proxies: trusted?,
            header: header?,
        })
    }
}
