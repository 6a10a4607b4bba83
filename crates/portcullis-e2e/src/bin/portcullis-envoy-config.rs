//! Renders Envoy configurations from the template in `portcullis_e2e::config`.
//!
//! ```text
//! portcullis-envoy-config deploy
//!     the operator's example (deploy/envoy/envoy.yaml) on stdout
//! portcullis-envoy-config rollout CURRENT CANDIDATE
//!     the rollout example of docs/rollout.md: a report-mode CANDIDATE
//!     beside the enforcing CURRENT policy on one listener
//! portcullis-envoy-config deploy-behind-proxy
//!     the same behind a TLS-terminating proxy
//!     (deploy/envoy/envoy-behind-proxy.yaml) on stdout
//! portcullis-envoy-config demo POLICY OUT_DIR BACKEND_ADDR
//!     the demo: POLICY moved onto loopback (every address literal of the
//!     policy gets a 127.x.y.z stand-in), a plain and a TLS listener on
//!     127.0.0.1, a self-signed certificate in OUT_DIR, the filter from
//!     dist/; writes OUT_DIR/envoy.yaml and prints `KEY=VALUE` lines
//!     (HTTP_URL, HTTPS_URL, ADMIN, and STAND_IN_<addr>) for scripts.
//! ```
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use portcullis_e2e::config::{
    deploy_behind_proxy, deploy_example, rollout_example, AccessLog, EnvoyConfig, Filter, Listener,
    Upstream, DEPLOY_BEHIND_PROXY_POLICY, DEPLOY_POLICY,
};
use portcullis_e2e::module::Module;
use portcullis_e2e::{net, paths, tls, translate};

fn demo(policy_path: &str, out: &str, backend: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(policy_path).map_err(|e| format!("{policy_path}: {e}"))?;
    // value_from reads this process's environment, as Envoy's VM will read
    // Envoy's (host_env_keys).
    let env: Vec<(String, String)> = std::env::vars().collect();
    portcullis_core::Policy::parse_with_env(text.as_bytes(), &env)
        .map_err(|p| format!("{policy_path}:\n{p}"))?;
    let backend: SocketAddr = backend
        .parse()
        .map_err(|e| format!("backend {backend}: {e}"))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut lits = BTreeSet::new();
    translate::literals_in(&doc, &mut lits);
    let peers: Vec<IpAddr> = lits.iter().copied().collect();
    let locals = [
        (SocketAddr::from(([127, 0, 0, 1], 80)), false),
        (SocketAddr::from(([127, 0, 0, 1], 443)), true),
    ];
    let t = translate::translate(&text, &peers, &locals, &[], &BTreeSet::new())?;
    let out = PathBuf::from(out);
    let cert = tls::self_signed(&out.join("tls"))?;
    let wasm = paths::filter_wasm()?;
    let listeners = t
        .endpoints
        .iter()
        .map(|e| Listener {
            name: if e.tls { "https".into() } else { "http".into() },
            address: e.bind,
            tls: e.tls.then(|| cert.clone()),
            filter: Filter::Inline {
                policy: t.policy.clone(),
            },
        })
        .collect();
    let config = EnvoyConfig {
        admin: net::any_port(),
        listeners,
        upstream: Upstream::Static(backend),
        // The sample reads the function key with value_from: the VM takes
        // FUNCTION_KEY from Envoy's own environment (scripts/demo.sh sets it).
        module: Module {
            env: portcullis_e2e::module::VmEnv {
                host_env_keys: vec![portcullis_e2e::deploy::BACKEND_KEY_ENV.into()],
                key_values: Vec::new(),
            },
            ..Module::local(wasm)
        },
        access_log: AccessLog::Stdout,
    };
    std::fs::write(out.join("envoy.yaml"), config.render()).map_err(|e| e.to_string())?;
    for e in &t.endpoints {
        let scheme = if e.tls { "HTTPS" } else { "HTTP" };
        println!("{scheme}_URL={}://{}", scheme.to_ascii_lowercase(), e.bind);
    }
    for (o, m) in &t.addrs {
        println!("STAND_IN_{}={m}", o.to_string().replace(['.', ':'], "_"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["deploy"] => {
            let p = paths::workspace().join(DEPLOY_POLICY);
            std::fs::read_to_string(&p)
                .map_err(|e| format!("{}: {e}", p.display()))
                .map(|text| print!("{}", deploy_header() + &deploy_example(&text).render()))
        }
        ["deploy-behind-proxy"] => {
            let p = paths::workspace().join(DEPLOY_BEHIND_PROXY_POLICY);
            std::fs::read_to_string(&p)
                .map_err(|e| format!("{}: {e}", p.display()))
                .map(|text| print!("{}", deploy_behind_proxy(&text)))
        }
        ["demo", policy, out, backend] => demo(policy, out, backend),
        ["rollout", current, candidate] => std::fs::read_to_string(current)
            .and_then(|c| Ok((c, std::fs::read_to_string(candidate)?)))
            .map_err(|e| format!("{current} / {candidate}: {e}"))
            .map(|(c, n)| print!("{}", rollout_example(&c, &n).render())),
        _ => Err(
            "usage: portcullis-envoy-config deploy | deploy-behind-proxy | demo POLICY OUT_DIR BACKEND_ADDR | rollout CURRENT CANDIDATE"
                .into(),
        ),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis-envoy-config: {e}");
            ExitCode::FAILURE
        }
    }
}

fn deploy_header() -> String {
    portcullis_e2e::config::DEPLOY_HEADER.to_owned()
}
