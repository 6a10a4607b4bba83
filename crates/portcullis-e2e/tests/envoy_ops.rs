//! Operating the filter in real Envoy: hot policy updates through ECDS,
//! refusal of an invalid policy, a real IPv6 client, and the operator's
//! config (`deploy/envoy/envoy.yaml`) staying in step with the template.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use portcullis_e2e::backend::Backend;
use portcullis_e2e::client::{send, ClientRequest};
use portcullis_e2e::config::{
    deploy_example, AccessLog, EnvoyConfig, Filter, Listener, Upstream, DEPLOY_HEADER,
    DEPLOY_POLICY,
};
use portcullis_e2e::envoy::{expect_refused, Envoy};
use portcullis_e2e::net::{self, free_port};
use portcullis_e2e::paths;
use portcullis_e2e::runner::{require_tools, Engine};

fn config(wasm: &Path, backend: SocketAddr, listeners: Vec<Listener>) -> EnvoyConfig {
    EnvoyConfig {
        admin: net::any_port(),
        listeners,
        upstream: Upstream::Static(backend),
        module: portcullis_e2e::module::Module::local(wasm),
        access_log: AccessLog::Stdout,
    }
}

/// Writes `text` to `path` atomically (temporary file + rename), the way
/// Envoy's file-based config sources expect updates.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn policy(name: &str, access: &str, default: &str) -> String {
    format!(
        r#"{{"name": "{name}", "network": {{"rules": [
            {{"name": "{access}-127-0-0-7", "priority": 100, "access": "{access}", "source": ["127.0.0.7"]}}
          ], "default_access": "{default}"}}}}"#
    )
}

fn status(dir: &Path, from: Ipv4Addr, to: SocketAddr) -> u16 {
    send(dir, &ClientRequest::get(from, to, false, "localhost"))
        .unwrap_or_else(|e| panic!("{e}"))
        .status
}

/// Sum of the ECDS counters named `*.<what>` for the filter.
fn ecds_stat(envoy: &Envoy, what: &str) -> u64 {
    envoy
        .stats_matching("extension_config_discovery")
        .unwrap()
        .into_iter()
        .filter(|(n, _)| n.contains("portcullis") && n.ends_with(what))
        .map(|(_, v)| v)
        .sum()
}

fn wait_for(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ecds_hot_update_changes_the_decision_without_restart() {
    ecds_on(Engine::Wasm);
}

/// Live policy swaps through ECDS on the native module.
#[test]
fn ecds_hot_update_on_the_native_module() {
    ecds_on(Engine::Native);
}

fn ecds_on(engine: Engine) {
    let (_, wasm) = require_tools();
    let dir = paths::scratch("ecds");
    let backend = Backend::start(net::any_port(), None).unwrap();
    let ecds = dir.join("ecds").join("portcullis.yaml");
    std::fs::create_dir_all(ecds.parent().unwrap()).unwrap();
    let listen = net::localhost(free_port(&[net::LOCALHOST]).unwrap());
    let cfg = config(
        &wasm,
        backend.addr(),
        vec![Listener {
            name: "plain".into(),
            address: listen,
            tls: None,
            filter: Filter::Discovered {
                name: "portcullis".into(),
                path: ecds.clone(),
            },
        }],
    );
    write_atomic(
        &ecds,
        &cfg.render_ecds_resource("portcullis", &policy("ecds-v1", "allow", "deny")),
    );
    let mut cfg = cfg;
    cfg.module = engine.module();
    write_atomic(
        &ecds,
        &cfg.render_ecds_resource("portcullis", &policy("ecds-v1", "allow", "deny")),
    );
    let mut envoy = Envoy::start(&dir, &cfg.render()).unwrap_or_else(|e| panic!("{e}"));
    let pid = envoy.pid();
    let (allowed, other) = (Ipv4Addr::new(127, 0, 0, 7), Ipv4Addr::new(127, 0, 0, 8));
    assert_eq!(status(&dir, allowed, listen), 200);
    assert_eq!(status(&dir, other, listen), 403);
    let reloads = ecds_stat(&envoy, ".config_reload");
    assert!(
        reloads >= 1,
        "no ECDS load counted: {:?}",
        envoy.stats_matching("extension_config_discovery")
    );

    // Swap in a policy that denies 127.0.0.7 (and lets the rest in).
    write_atomic(
        &ecds,
        &cfg.render_ecds_resource("portcullis", &policy("ecds-v2", "deny", "allow")),
    );
    wait_for("the ECDS update", Duration::from_secs(30), || {
        ecds_stat(&envoy, ".config_reload") > reloads
    });
    assert_eq!(
        status(&dir, allowed, listen),
        403,
        "the new policy is not in force"
    );
    assert_eq!(status(&dir, other, listen), 200);
    assert!(envoy.running(), "Envoy stopped");
    assert_eq!(envoy.pid(), pid, "Envoy was restarted");
    let denied = envoy
        .stat_when(
            &format!("{}portcullis.ecds-v2.denied", engine.counter_prefix()),
            |v| v == Some(1),
        )
        .unwrap();
    assert_eq!(denied, Some(1), "the v2 policy's counter");
    println!(
        "ECDS stats: {:?}",
        envoy.stats_matching("extension_config_discovery").unwrap()
    );

    // An invalid policy is refused; the one in force stays.
    let fails = ecds_stat(&envoy, ".config_fail");
    let bad = r#"{"name": "ecds-bad", "network": {"rules": [{"name": "x", "priority": 1, "access": "allow", "source": ["10.1.2.3/8"]}]}}"#;
    write_atomic(&ecds, &cfg.render_ecds_resource("portcullis", bad));
    wait_for("the rejected ECDS update", Duration::from_secs(30), || {
        ecds_stat(&envoy, ".config_fail") > fails
    });
    assert_eq!(
        status(&dir, allowed, listen),
        403,
        "the rejected policy changed the decision"
    );
    assert_eq!(status(&dir, other, listen), 200);
    assert!(
        envoy.log().contains("network.rules[0].priority"),
        "the problems are not in Envoy's log"
    );
    assert!(envoy.running());

    // Back to v1: its counters go on from where they were (the native
    // module carries them over; Envoy dropped them with the old config).
    let reloads = ecds_stat(&envoy, ".config_reload");
    write_atomic(
        &ecds,
        &cfg.render_ecds_resource("portcullis", &policy("ecds-v1", "allow", "deny")),
    );
    wait_for(
        "the ECDS update back to v1",
        Duration::from_secs(30),
        || ecds_stat(&envoy, ".config_reload") > reloads,
    );
    assert_eq!(status(&dir, allowed, listen), 200);
    let again = envoy
        .stat_when(
            &format!("{}portcullis.ecds-v1.allowed", engine.counter_prefix()),
            |v| v == Some(2),
        )
        .unwrap();
    assert_eq!(again, Some(2), "ecds-v1.allowed across the swaps");
}

#[test]
fn invalid_policy_makes_envoy_refuse_the_configuration() {
    let (_, wasm) = require_tools();
    let bad = r#"{
      "name": "bad",
      "network": {
        "rules": [
          { "name": "a", "priority": 100, "access": "allow", "source": ["10.1.2.3/8"] },
          { "name": "a", "priority": 100, "access": "maybe", "source": ["Intranet"] }
        ]
      },
      "hsts": { "max_age": 300, "preload": true }
    }"#;
    let cfg = config(
        &wasm,
        SocketAddr::from(([127, 0, 0, 1], 9)),
        vec![Listener {
            name: "plain".into(),
            address: net::any_port(),
            tls: None,
            filter: Filter::Inline { policy: bad.into() },
        }],
    );
    let err = expect_refused(&paths::scratch("refused-bad"), &cfg.render())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(err.exit_code, Some(0));
    let problems = portcullis_core::Policy::parse(bad.as_bytes())
        .err()
        .unwrap();
    assert!(problems.0.len() >= 4, "{problems}");
    // Every problem the core finds is in Envoy's log, as the core words it.
    for p in &problems.0 {
        let line = format!("policy \"bad\" rejected: {p}");
        assert!(
            err.log.contains(&line),
            "missing in Envoy's log: {line}\n{err}"
        );
    }
}

#[test]
fn a_real_ipv6_client_is_decided_on_its_ipv6_address() {
    let (_, wasm) = require_tools();
    let dir = paths::scratch("ipv6");
    let backend = Backend::start(net::any_port(), None).unwrap();
    let port6 = free_port(&[Ipv6Addr::LOCALHOST]).unwrap();
    let port4 = free_port(&[net::LOCALHOST]).unwrap();
    let policy = r#"{"name": "v6", "network": {"rules": [
        {"name": "allow-v6-loopback", "priority": 100, "access": "allow", "source": ["::1/128"]}]}}"#;
    let listeners = vec![
        Listener {
            name: "v6".into(),
            address: SocketAddr::from((Ipv6Addr::LOCALHOST, port6)),
            tls: None,
            filter: Filter::Inline {
                policy: policy.into(),
            },
        },
        Listener {
            name: "v4".into(),
            address: net::localhost(port4),
            tls: None,
            filter: Filter::Inline {
                policy: policy.into(),
            },
        },
    ];
    let envoy = Envoy::start(&dir, &config(&wasm, backend.addr(), listeners).render())
        .unwrap_or_else(|e| panic!("{e}"));
    let r6 = send(
        &dir,
        &ClientRequest::get(
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            SocketAddr::from((Ipv6Addr::LOCALHOST, port6)),
            false,
            "localhost",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r6.status, 200, "{r6:?}");
    let r4 = send(
        &dir,
        &ClientRequest::get(
            Ipv4Addr::LOCALHOST,
            net::localhost(port4),
            false,
            "localhost",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r4.status, 403);
    // The trace on stdout (the access log) names the IPv6 client.
    wait_for("the access log", Duration::from_secs(15), || {
        envoy
            .log()
            .contains("portcullis=\"forward 0 forward peer ::1 - allow-v6-loopback\"")
    });
}

#[test]
fn deploy_config_is_current_and_valid() {
    let root = paths::workspace();
    let policy = std::fs::read_to_string(root.join(DEPLOY_POLICY)).unwrap();
    let want = format!("{DEPLOY_HEADER}{}", deploy_example(&policy).render());
    let have = std::fs::read_to_string(root.join("deploy/envoy/envoy.yaml")).unwrap_or_default();
    assert!(
        have == want,
        "deploy/envoy/envoy.yaml is stale: run\n  cargo run -q -p portcullis-e2e --bin portcullis-envoy-config -- deploy > deploy/envoy/envoy.yaml"
    );
    // Envoy accepts it (validate mode: no listeners bound, no DNS), with the
    // machine-specific paths pointed at this checkout.
    let (_, wasm) = require_tools();
    let cert = portcullis_e2e::tls::test_cert().unwrap();
    let local = have
        .replace("/etc/envoy/portcullis_filter.wasm", &wasm.to_string_lossy())
        .replace("/etc/envoy/tls/cert.pem", &cert.cert.to_string_lossy())
        .replace("/etc/envoy/tls/key.pem", &cert.key.to_string_lossy());
    // The sample's key comes from Envoy's environment (host_env_keys).
    std::env::set_var(portcullis_e2e::deploy::BACKEND_KEY_ENV, "validate-only");
    portcullis_e2e::envoy::validate(&paths::scratch("deploy"), &local)
        .unwrap_or_else(|e| panic!("{e}"));
}
