//! The native module at load, in real Envoy: the shipped module loads
//! (Envoy reports ABI v0.2.0 matched); a module pinned to another ABI
//! version is refused at load, before any request, unless
//! `PORTCULLIS_ENVOY_ABI_OVERRIDE=1`; a module that references a callback
//! Envoy lacks is refused at load (`-z now`). The variants are built from
//! the same crate with its test features, each in a target directory of
//! its own.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use portcullis_e2e::client::{self, ClientRequest, Version};
use portcullis_e2e::config::{AccessLog, EnvoyConfig, Filter, Listener, Upstream};
use portcullis_e2e::envoy::{Envoy, Options};
use portcullis_e2e::module::Module;
use portcullis_e2e::{net, paths};

const POLICY: &str = r#"{"name": "load", "network": {"rules": [
  {"name": "lo", "priority": 100, "access": "allow", "source": ["127.0.0.1"]}],
  "default_access": "deny"}}"#;

/// Builds the module with `feature` (dev profile, its own target dir) and
/// returns a directory holding it as `libportcullis_envoy.so`.
fn variant(feature: &str) -> PathBuf {
    let target = paths::target().join("envoy-variants").join(feature);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| String::from("cargo"));
    let out = Command::new(cargo)
        .current_dir(paths::workspace())
        .args([
            "build",
            "--quiet",
            "-p",
            "portcullis-envoy",
            "--features",
            feature,
        ])
        .arg("--target-dir")
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the {feature} variant failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = paths::scratch(feature);
    std::fs::copy(
        target.join("debug").join("libportcullis_envoy.so"),
        dir.join("libportcullis_envoy.so"),
    )
    .unwrap();
    dir
}

fn config(module_dir: &Path) -> (EnvoyConfig, SocketAddr) {
    let ip = std::net::Ipv4Addr::LOCALHOST;
    let listen = SocketAddr::from((ip, net::free_port(&[ip]).unwrap()));
    let cfg = EnvoyConfig {
        admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        listeners: vec![Listener {
            name: "plain".into(),
            address: listen,
            tls: None,
            filter: Filter::Inline {
                policy: POLICY.into(),
            },
        }],
        upstream: Upstream::Static(SocketAddr::from(([127, 0, 0, 1], 9))),
        module: Module::native(module_dir.join("libportcullis_envoy.so")),
        access_log: AccessLog::Off,
    };
    (cfg, listen)
}

fn options(module_dir: &Path, extra: &[(&str, &str)]) -> Options {
    let mut o = Options::default();
    o.env.push((
        "ENVOY_DYNAMIC_MODULES_SEARCH_PATH".into(),
        module_dir.to_string_lossy().into_owned(),
    ));
    for (k, v) in extra {
        o.env.push(((*k).into(), (*v).into()));
    }
    o
}

/// Starts Envoy on the module in `module_dir`: `Ok` when it became ready.
fn start(
    name: &str,
    module_dir: &Path,
    extra: &[(&str, &str)],
) -> Result<(Envoy, SocketAddr), String> {
    let dir = paths::scratch(name);
    let (cfg, listen) = config(module_dir);
    match Envoy::start_with(&dir, &cfg.render(), &options(module_dir, extra)) {
        Ok(e) => Ok((e, listen)),
        Err(e) => Err(format!("exit {:?}\n{}", e.exit_code, e.log)),
    }
}

fn get(to: SocketAddr) -> u16 {
    let req = ClientRequest {
        from: "127.0.0.1".parse().unwrap(),
        from_port: None,
        to,
        tls: false,
        version: Version::Http1,
        method: "GET".into(),
        authority: "example.test".into(),
        path: "/".into(),
        headers: Vec::new(),
    };
    client::send(&paths::scratch("load-client"), &req)
        .unwrap()
        .status
}

#[test]
fn the_shipped_module_loads_with_abi_v0_2_0_matched() {
    let module = paths::envoy_module().unwrap_or_else(|e| panic!("{e}"));
    let dir = module.parent().unwrap().to_path_buf();
    let (mut envoy, listen) = start("load-shipped", &dir, &[]).unwrap_or_else(|e| panic!("{e}"));
    let log = envoy.log();
    assert!(
        log.contains("Dynamic module ABI version v0.2.0 matched"),
        "{log}"
    );
    assert!(log.contains("portcullis: policy \"load\" loaded"), "{log}");
    // Loopback is allowed; the upstream (port 9) is down: Envoy's 503.
    assert_eq!(get(listen), 503);
    envoy.stop();
}

#[test]
fn a_module_pinned_to_another_abi_version_is_refused_at_load_unless_overridden() {
    let dir = variant("test-other-abi");
    let log = match start("load-other-abi", &dir, &[]) {
        Ok((mut e, _)) => {
            e.stop();
            panic!("Envoy loaded a module pinned to ABI v0.99.0:\n{}", e.log());
        }
        Err(log) => log,
    };
    assert!(
        log.contains("portcullis: refusing to load: Envoy's dynamic-module ABI is v0.2.0, this module is built for v0.99.0"),
        "{log}"
    );
    assert!(!log.contains("policy \"load\" loaded"), "{log}");
    // The override loads it (with a warning) and it serves.
    let (mut envoy, listen) = start(
        "load-other-abi-override",
        &dir,
        &[("PORTCULLIS_ENVOY_ABI_OVERRIDE", "1")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log = envoy.log();
    assert!(
        log.contains("loading anyway (PORTCULLIS_ENVOY_ABI_OVERRIDE=1)"),
        "{log}"
    );
    assert_eq!(get(listen), 503);
    envoy.stop();
}

#[test]
fn a_module_missing_a_callback_is_refused_at_load() {
    let dir = variant("test-missing-callback");
    let log = match start("load-missing-callback", &dir, &[]) {
        Ok((mut e, _)) => {
            e.stop();
            panic!(
                "Envoy loaded a module that needs a callback it lacks:\n{}",
                e.log()
            );
        }
        Err(log) => log,
    };
    assert!(
        log.contains("envoy_dynamic_module_callback_portcullis_no_such_callback"),
        "{log}"
    );
}

/// `envoy --mode validate` loads the module: the upgrade check of
/// docs/deploy.md passes with the shipped module and fails with one pinned
/// to another ABI version.
#[test]
fn validate_mode_runs_the_abi_check() {
    let shipped = paths::envoy_module().unwrap_or_else(|e| panic!("{e}"));
    let validate = |module_dir: &Path| {
        let dir = paths::scratch("load-validate");
        let (cfg, _) = config(module_dir);
        let file = dir.join("validate.yaml");
        std::fs::write(&file, cfg.render()).unwrap();
        let out = Command::new(paths::envoy_bin().unwrap())
            .args([
                "--mode",
                "validate",
                "--disable-hot-restart",
                "-l",
                "info",
                "-c",
            ])
            .arg(&file)
            .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", module_dir)
            .output()
            .unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), log)
    };
    let (ok, log) = validate(shipped.parent().unwrap());
    assert!(ok, "{log}");
    assert!(
        log.contains("Dynamic module ABI version v0.2.0 matched"),
        "{log}"
    );
    assert!(log.contains("portcullis: policy \"load\" loaded"), "{log}");
    let (ok, log) = validate(&variant("test-other-abi"));
    assert!(!ok, "{log}");
    assert!(log.contains("portcullis: refusing to load"), "{log}");
}

/// A panic in a hook is caught and fails closed: a 500 with details
/// `portcullis_panic`, nothing forwarded, Envoy still serving.
#[test]
fn a_panic_in_a_hook_fails_closed() {
    let dir = variant("test-panic");
    let backend =
        portcullis_e2e::backend::Backend::start(SocketAddr::from(([127, 0, 0, 1], 0)), None)
            .unwrap();
    let scratch = paths::scratch("load-panic");
    let (mut cfg, listen) = config(&dir);
    cfg.upstream = Upstream::Static(backend.addr());
    let log = scratch.join("access.jsonl");
    cfg.access_log = AccessLog::JsonFile(log.clone());
    let mut envoy = Envoy::start_with(&scratch, &cfg.render(), &options(&dir, &[]))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut req = ClientRequest::get(std::net::Ipv4Addr::LOCALHOST, listen, false, "a");
    req = req.header("x-portcullis-test-panic", b"1");
    let r = client::send(&scratch, &req).unwrap();
    assert_eq!(r.status, 500, "{r:?}");
    assert!(
        backend.requests().is_empty(),
        "a panicking request was forwarded"
    );
    // The upstream's response panics the response hook: a 500 instead.
    backend.answer(
        "panic-response",
        portcullis_e2e::backend::Answer {
            status: 200,
            headers: vec![("x-portcullis-test-panic".into(), b"1".to_vec())],
        },
    );
    let req = ClientRequest::get(std::net::Ipv4Addr::LOCALHOST, listen, false, "a")
        .header(portcullis_e2e::config::CASE_HEADER, b"panic-response");
    let r = client::send(&scratch, &req).unwrap();
    assert_eq!(r.status, 500, "{r:?}");
    // And Envoy still serves.
    assert_eq!(get(listen), 200);
    let text = envoy.log();
    assert!(
        text.contains("portcullis: panic in request headers; failing closed"),
        "{text}"
    );
    assert!(
        text.contains("portcullis: panic in response headers; failing closed"),
        "{text}"
    );
    let access = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(access.contains("portcullis_panic"), "{access}");
    envoy.stop();
}

/// One configuration shared by several workers: every request decided,
/// every count kept (native counters are shared by the threads).
#[test]
fn several_workers_share_one_configuration() {
    let module = paths::envoy_module().unwrap_or_else(|e| panic!("{e}"));
    let dir = module.parent().unwrap().to_path_buf();
    let backend =
        portcullis_e2e::backend::Backend::start(SocketAddr::from(([127, 0, 0, 1], 0)), None)
            .unwrap();
    let scratch = paths::scratch("load-workers");
    let (mut cfg, listen) = config(&dir);
    cfg.upstream = Upstream::Static(backend.addr());
    let mut opts = options(&dir, &[]);
    opts.concurrency = 4;
    let mut envoy =
        Envoy::start_with(&scratch, &cfg.render(), &opts).unwrap_or_else(|e| panic!("{e}"));
    let (threads, each) = (6, 25);
    std::thread::scope(|s| {
        for t in 0..threads {
            let scratch = &scratch;
            s.spawn(move || {
                // Half allowed (127.0.0.1), half denied (127.0.0.2).
                let from = std::net::Ipv4Addr::new(127, 0, 0, 1 + (t % 2) as u8);
                for _ in 0..each {
                    let r = client::send(scratch, &ClientRequest::get(from, listen, false, "a"))
                        .unwrap();
                    assert_eq!(r.status, if t % 2 == 0 { 200 } else { 403 });
                }
            });
        }
    });
    let half = (threads / 2 * each) as u64;
    assert_eq!(
        envoy
            .stat("dynamicmodulescustom.portcullis.load.allowed")
            .unwrap(),
        Some(half)
    );
    assert_eq!(
        envoy
            .stat("dynamicmodulescustom.portcullis.load.denied")
            .unwrap(),
        Some(half)
    );
    assert_eq!(backend.requests().len() as u64, half);
    envoy.stop();
}
