//! Smoke test against the real filter, `dist/portcullis_filter.wasm`, when it
//! has been built (`./build.sh`); skipped otherwise. Only host-level facts are
//! checked here: the filter's policy semantics are tested elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::{addr, get, ok};
use portcullis_host::{ConfigureError, Engine};

fn real_filter() -> Option<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wasm = std::fs::read(root.join("dist/portcullis_filter.wasm")).ok();
    if wasm.is_none() {
        eprintln!("dist/portcullis_filter.wasm not built: skipping");
    }
    wasm
}

fn sample(name: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read(root.join("policy-samples").join(name)).unwrap()
}

#[test]
fn real_filter_loads_configures_and_plays() {
    let Some(wasm) = real_filter() else { return };
    let engine = Engine::new(&wasm).expect("the real filter loads: every import is provided");

    let err = engine.configure(b"{ not json").unwrap_err();
    assert!(matches!(err, ConfigureError::Rejected { .. }), "{err}");
    assert!(
        !err.logs().is_empty(),
        "the filter says why it rejected the policy"
    );

    let mut plugin = engine
        .configure(&sample("layered-security.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    for (peer, tls) in [("70.37.40.50:40000", false), ("[2001:db8::1]:40000", true)] {
        let mut req = get("/", &[("user-agent", b"smoke")]);
        req.peer = addr(peer);
        req.local = addr("10.0.0.2:443");
        req.tls = tls;
        let ex = plugin.play(&req, &ok()).unwrap_or_else(|e| panic!("{e}"));
        assert!(ex.status >= 100, "{ex:?}");
        assert!(ex.host_calls > 0);
        eprintln!(
            "{peer}: status {} reads {:?} sets {:?} logs {:?} calls {} fuel {}",
            ex.status,
            ex.properties_read,
            ex.properties_set
                .iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(v)))
                .collect::<Vec<_>>(),
            ex.logs,
            ex.host_calls,
            ex.fuel_used
        );
    }
}
