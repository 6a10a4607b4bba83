//! The `client_ip` section: where the client address comes from.

use alloc::collections::BTreeMap;
use alloc::string::String;

use crate::addr::AddrSet;
use crate::error::Error;
use crate::json::Value;

use super::super::{ClientFrom, ClientIp};
use super::Validator;

impl<'t> Validator<'t> {
    pub(super) fn client_ip(
        &mut self,
        v: &Value,
        groups: &BTreeMap<String, AddrSet>,
    ) -> Option<ClientIp> {
        let f = self.fields(v, "client_ip", &["from", "trusted_proxies"])?;
        let from = match f.get("from") {
            Some(x) => self.word(x, "client_ip.from")?,
            None => ClientFrom::Peer,
        };
        let trusted = match f.get("trusted_proxies") {
            Some(t) => self.specs(t, "client_ip.trusted_proxies", groups, None)?,
            None if from == ClientFrom::XForwardedFor => {
                self.err("client_ip", f.span, Error::MissingField("trusted_proxies"));
                return None;
            }
            None => AddrSet::default(),
        };
        Some(ClientIp {
            from,
            trusted_proxies: trusted,
        })
    }
}
