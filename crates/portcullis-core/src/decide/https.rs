//! Step 3's inputs: whether a request counts as secure, and the `Location`
//! of its redirect to HTTPS.

use alloc::vec::Vec;

use crate::addr;
use crate::policy::syntax::split_host_port;
use crate::policy::Policy;

use super::entry::trim_ows;
use super::Request;

impl Policy {
    /// Whether a request counts as secure: TLS, or `X-Forwarded-Proto: https`
    /// from a trusted proxy when the policy allows it.
    pub fn is_secure(&self, req: &Request<'_>) -> bool {
        if req.tls {
            return true;
        }
        let trust = self
            .https_only
            .as_ref()
            .is_some_and(|h| h.trust_forwarded_proto);
        if !trust
            || !self
                .client_ip
                .trusted_proxies
                .contains(addr::key(req.peer.ip()))
        {
            return false;
        }
        // The rightmost value is the one the nearest (trusted) proxy added.
        let mut last: Option<bool> = None;
        req.headers.each_value("x-forwarded-proto", &mut |v| {
            if let Some(e) = v.rsplit(|&b| b == b',').next() {
                last = Some(trim_ows(e).eq_ignore_ascii_case(b"https"));
            }
        });
        last.unwrap_or(false)
    }

    /// The redirect target for a plain request, or `None` when the host is
    /// not allowed or the path is not safe to echo.
    pub(super) fn location(&self, req: &Request<'_>) -> Option<Vec<u8>> {
        let h = self.https_only.as_ref()?;
        let (host, _) = split_host_port(req.authority)?;
        let host = host.strip_suffix(b".").unwrap_or(host);
        let allowed = h
            .hosts
            .iter()
            .find(|a| a.host.as_bytes().eq_ignore_ascii_case(host))?;
        let path: &[u8] = if req.path.is_empty() { b"/" } else { req.path };
        if !path.starts_with(b"/") || path.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return None;
        }
        let mut loc = Vec::with_capacity(
            8usize
                .saturating_add(allowed.location.len())
                .saturating_add(path.len()),
        );
        loc.extend_from_slice(b"https://");
        loc.extend_from_slice(allowed.location.as_bytes());
        loc.extend_from_slice(path);
        Some(loc)
    }
}
