//! The filter module fetched by Envoy over HTTP, verified by its SHA-256:
//! a loopback module server ([`ModuleServer`]) serves `dist/`'s module, and
//! Envoy's `vm_config.code.remote` points at it through a cluster — the
//! module and the `WasmPlugin` of one [`Deployment`], the same description
//! docs/deploy.md is rendered from. Also: the VM's environment variables
//! (`host_env_keys`, `key_values`) in a config Envoy validates.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use portcullis_e2e::artifacts::{sha256_hex, ModuleServer};
use portcullis_e2e::backend::Backend;
use portcullis_e2e::client::{send, ClientRequest};
use portcullis_e2e::config::{AccessLog, EnvoyConfig, Filter, Listener, Upstream};
use portcullis_e2e::deploy::{check_wasm_plugin, Deployment};
use portcullis_e2e::envoy::{self, Envoy};
use portcullis_e2e::module::{Code, Module, VmEnv};
use portcullis_e2e::runner::require_tools;
use portcullis_e2e::{net, paths};

const POLICY: &str = r#"{"name": "remote", "network": {"rules": [
    {"name": "allow-127-0-0-7", "priority": 100, "access": "allow", "source": ["127.0.0.7"]}
  ], "default_access": "deny"}}"#;

/// A module server with `dist/`'s module, and the deployment that fetches
/// it with digest `sha256` (`None`: the module's own).
fn serve(sha256: Option<String>) -> (ModuleServer, Deployment, String) {
    let (_, wasm) = require_tools();
    let bytes = std::fs::read(&wasm).unwrap();
    let digest = sha256_hex(&bytes);
    let server = ModuleServer::start(net::any_port(), "/portcullis_filter.wasm", bytes).unwrap();
    let d = Deployment {
        policy: serde_json::from_str(POLICY).unwrap(),
        url: server.url(),
        sha256: sha256.unwrap_or_else(|| digest.clone()),
        host_env_keys: Vec::new(),
    };
    (server, d, digest)
}

fn config(d: &Deployment, server: &ModuleServer, backend: &Backend, port: u16) -> EnvoyConfig {
    EnvoyConfig {
        admin: net::any_port(),
        listeners: vec![Listener {
            name: "plain".into(),
            address: net::localhost(port),
            tls: None,
            filter: Filter::Inline {
                policy: d.policy_text(),
            },
        }],
        upstream: Upstream::Static(backend.addr()),
        module: d.module(Some(server.addr())),
        access_log: AccessLog::Stdout,
    }
}

fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(name).unwrap().unwrap_or(0)
}

/// A filter counter, waiting for the tick that hands it to Envoy.
fn counter(envoy: &Envoy, name: &str, want: u64) -> u64 {
    envoy
        .stat_when(name, |v| v == Some(want))
        .unwrap()
        .unwrap_or(0)
}

fn status(envoy: &Envoy, from: Ipv4Addr, port: u16) -> u16 {
    send(
        &envoy.dir,
        &ClientRequest::get(from, net::localhost(port), false, "localhost"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .status
}

#[test]
fn remote_module_with_its_sha256_is_fetched_once_and_decides_requests() {
    let (server, d, digest) = serve(None);
    let backend = Backend::start(net::any_port(), None).unwrap();
    let port = net::free_port(&[net::LOCALHOST]).unwrap();
    let cfg = config(&d, &server, &backend, port);
    let yaml = cfg.render();
    assert!(yaml.contains(&format!("sha256: \"{digest}\"")), "{yaml}");
    assert!(
        !yaml.contains("local:"),
        "the module must come from the server:\n{yaml}"
    );
    let envoy =
        Envoy::start(&paths::scratch("remote-good"), &yaml).unwrap_or_else(|e| panic!("{e}"));
    // Ready means the listener's filter is loaded: the module was fetched
    // and verified before the workers started.
    assert_eq!(server.fetches(), 1);
    assert_eq!(stat(&envoy, "wasm.remote_load_fetch_successes"), 1);
    assert_eq!(stat(&envoy, "wasm.remote_load_fetch_failures"), 0);
    assert!(
        stat(&envoy, "wasm.envoy.wasm.runtime.v8.created") > 0,
        "no V8 VM"
    );
    assert_eq!(status(&envoy, Ipv4Addr::new(127, 0, 0, 7), port), 200);
    assert_eq!(status(&envoy, Ipv4Addr::new(127, 0, 0, 8), port), 403);
    assert_eq!(
        counter(&envoy, "wasmcustom.portcullis.remote.allowed", 1),
        1
    );
    assert_eq!(counter(&envoy, "wasmcustom.portcullis.remote.denied", 1), 1);
    assert_eq!(
        backend.requests().len(),
        1,
        "only the allowed request reaches the backend"
    );
    let bad = envoy.wasm_failures().unwrap();
    assert!(bad.is_empty(), "wasm failure stats: {bad:?}");
    // The Istio WasmPlugin of this same deployment pins the digest Envoy
    // just verified and carries the policy Envoy just ran.
    let plugin = d.wasm_plugin();
    assert_eq!(check_wasm_plugin(&plugin, &d), Vec::<String>::new());
    assert_eq!(plugin["spec"]["sha256"], digest.as_str());
    assert_eq!(plugin["spec"]["url"], server.url().as_str());
    assert_eq!(server.fetches(), 1, "Envoy fetched the module again");
}

#[test]
fn remote_module_with_a_wrong_sha256_never_runs_and_the_listener_fails_closed() {
    let wrong = sha256_hex(b"not the module");
    let (server, d, digest) = serve(Some(wrong.clone()));
    assert_ne!(wrong, digest);
    let backend = Backend::start(net::any_port(), None).unwrap();
    let port = net::free_port(&[net::LOCALHOST]).unwrap();
    let cfg = config(&d, &server, &backend, port);
    // Envoy itself starts (the fetch is asynchronous), but the plugin is
    // refused: the digest differs, the fetch counts as failed.
    let envoy = Envoy::start(&paths::scratch("remote-wrong"), &cfg.render())
        .unwrap_or_else(|e| panic!("{e}"));
    let end = Instant::now() + Duration::from_secs(60);
    while stat(&envoy, "wasm.remote_load_fetch_failures") == 0 {
        assert!(
            Instant::now() < end,
            "no remote fetch failure counted:\n{}",
            envoy.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Fetched once and retried `num_retries` times (each copy refused).
    let Code::Remote(r) = &cfg.module.code else {
        panic!("not a remote module")
    };
    assert_eq!(server.fetches(), u64::from(r.retries) + 1);
    assert_eq!(stat(&envoy, "wasm.remote_load_fetch_successes"), 0);
    assert_eq!(
        stat(&envoy, "wasm.envoy.wasm.runtime.v8.created"),
        0,
        "a VM ran the module"
    );
    let log = envoy.log();
    assert!(log.contains("Plugin portcullis failed to load"), "{log}");
    assert!(
        log.contains("Plugin configured to fail closed failed to load"),
        "{log}"
    );
    // FAIL_CLOSED: every request on the listener is refused, none reaches
    // the backend, not even from the caller the policy allows.
    assert_eq!(status(&envoy, Ipv4Addr::new(127, 0, 0, 7), port), 503);
    assert_eq!(status(&envoy, Ipv4Addr::new(127, 0, 0, 8), port), 503);
    assert!(
        backend.requests().is_empty(),
        "a request passed an unloaded filter"
    );
    assert_eq!(stat(&envoy, "wasmcustom.portcullis.remote.allowed"), 0);
}

#[test]
fn remote_module_with_an_invalid_policy_keeps_envoy_up_and_fails_closed() {
    // Unlike a local module (Envoy exits, see envoy_ops), a remote module is
    // configured after start-up: the policy is rejected, Envoy stays up and
    // the listener refuses every request.
    let (server, mut d, _) = serve(None);
    d.policy = serde_json::json!({"name": "remote-bad", "network": {"rules": [
        {"name": "a", "priority": 1, "access": "allow", "source": ["127.0.0.7"]}]}});
    let backend = Backend::start(net::any_port(), None).unwrap();
    let port = net::free_port(&[net::LOCALHOST]).unwrap();
    let mut envoy = Envoy::start(
        &paths::scratch("remote-bad-policy"),
        &config(&d, &server, &backend, port).render(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stat(&envoy, "wasm.remote_load_fetch_successes"), 1);
    assert_eq!(status(&envoy, Ipv4Addr::new(127, 0, 0, 7), port), 503);
    let log = envoy.log();
    assert!(
        log.contains("policy \"remote-bad\" rejected: ")
            && log.contains("network.rules[0].priority"),
        "{log}"
    );
    assert!(
        log.contains("Plugin configured to fail closed failed to load"),
        "{log}"
    );
    assert!(backend.requests().is_empty());
    assert!(envoy.running(), "Envoy exited");
}

#[test]
fn vm_environment_variables_are_carried_and_envoy_validates_them() {
    let (_, wasm) = require_tools();
    let mut cfg = EnvoyConfig {
        admin: net::any_port(),
        listeners: vec![Listener {
            name: "plain".into(),
            address: net::any_port(),
            tls: None,
            filter: Filter::Inline {
                policy: POLICY.into(),
            },
        }],
        upstream: Upstream::Static(net::localhost(9)),
        module: Module::local(&wasm),
        access_log: AccessLog::Stdout,
    };
    cfg.module.env = VmEnv {
        host_env_keys: vec!["PORTCULLIS_FUNCTION_KEY".into(), "PORTCULLIS_OTHER".into()],
        key_values: vec![("PORTCULLIS_MODE".into(), "e2e".into())],
    };
    let yaml = cfg.render();
    // Under the filter's vm_config, whatever the nesting.
    let flat: String = yaml
        .lines()
        .map(|l| format!("{}\n", l.trim_start()))
        .collect();
    let want = "vm_config:\nvm_id: portcullis\nruntime: envoy.wasm.runtime.v8\ncode:\nlocal:\n";
    assert!(flat.contains(want), "{flat}");
    let want = "environment_variables:\nhost_env_keys: [\"PORTCULLIS_FUNCTION_KEY\", \"PORTCULLIS_OTHER\"]\nkey_values:\n\"PORTCULLIS_MODE\": \"e2e\"\nconfiguration:\n";
    assert!(flat.contains(want), "{want:?} not in\n{yaml}");
    let dir = paths::scratch("vm-env");
    envoy::validate(&dir, &yaml).unwrap_or_else(|e| panic!("{e}"));
    // The ECDS resource carries them too.
    let ecds = cfg.render_ecds_resource("portcullis", POLICY);
    assert!(
        ecds.contains("host_env_keys: [\"PORTCULLIS_FUNCTION_KEY\""),
        "{ecds}"
    );
    // And the remote module of a deployment carries its host keys.
    let d = Deployment {
        policy: serde_json::from_str(POLICY).unwrap(),
        url: "http://127.0.0.1:9/portcullis_filter.wasm".into(),
        sha256: "0".repeat(64),
        host_env_keys: vec!["PORTCULLIS_FUNCTION_KEY".into()],
    };
    let m = d.module(Some(net::localhost(9)));
    assert!(matches!(m.code, Code::Remote(_)));
    assert_eq!(m.env.host_env_keys, d.host_env_keys);
    cfg.module = m;
    envoy::validate(&dir, &cfg.render()).unwrap_or_else(|e| panic!("{e}"));
    // A config Envoy cannot accept is refused by the same check.
    let broken = yaml.replace("host_env_keys:", "host_env_keyz:");
    assert!(
        envoy::validate(&dir, &broken).is_err(),
        "validate accepted an unknown field"
    );
}
