//! What a soak runs against: one stand-in backend (recording nothing) and
//! one Envoy with two listeners on [`LISTEN_IP`] — TLS and plain — whose
//! Portcullis filter is discovered through ECDS from one file, which
//! [`Rig::write_policy`] replaces by an atomic rename.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use portcullis_e2e::backend::Backend;
use portcullis_e2e::config::{AccessLog, EnvoyConfig, Filter, Listener, Upstream};
use portcullis_e2e::envoy::{Envoy, Options};
use portcullis_e2e::http1::TlsClient;
use portcullis_e2e::module::Module;
use portcullis_e2e::{net, paths, tls};

use crate::config::Config;
use crate::workload;

/// Where Envoy's listeners bind. They get a loopback address of their own:
/// ports handed out by `net::free_port` are released before Envoy binds
/// them, and on 127.0.0.1 any process's outgoing connection could take one
/// in between.
pub const LISTEN_IP: Ipv4Addr = Ipv4Addr::new(127, 77, 0, 1);

/// The backend and Envoy of a run.
#[derive(Debug)]
pub struct Rig {
    /// The stand-in backend.
    pub backend: Backend,
    /// Envoy.
    pub envoy: Envoy,
    /// Envoy's process id at start (a restart would change it).
    pub pid: u32,
    /// The plain listener.
    pub plain: SocketAddr,
    /// The TLS listener.
    pub tls_addr: SocketAddr,
    /// A client that trusts the listener's certificate.
    pub tls: TlsClient,
    /// Scratch directory (config, logs).
    pub dir: PathBuf,
    config: EnvoyConfig,
    ecds: PathBuf,
}

/// Where Envoy lists the wasm filter's counters.
pub const WASM_COUNTERS: &str = "wasmcustom.portcullis.";
/// Where Envoy lists the native module's counters (same names after it).
pub const NATIVE_COUNTERS: &str = "dynamicmodulescustom.portcullis.";

/// What Envoy says at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct EnvoyEnd {
    /// Non-zero wasm failure stats.
    pub vm_failures: Vec<(String, u64)>,
    /// Envoy's `wasm.*` stats (VM counts, reloads, failures).
    pub wasm_stats: Vec<(String, u64)>,
    /// `wasmcustom.portcullis.*` verdict counters.
    pub filter_counters: Vec<(String, u64)>,
    /// ECDS counters.
    pub ecds: Vec<(String, u64)>,
    /// Envoy's requests per protocol on the soak's listeners
    /// (`http.<listener>.downstream_rq_http{1,2}_total`, the admin
    /// interface left out).
    pub protocol_stats: Vec<(String, u64)>,
    /// Still running, same process.
    pub alive: bool,
    /// The last lines of Envoy's log.
    pub log_tail: String,
}

fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

impl Rig {
    /// Starts the backend and Envoy with policy A in the ECDS file.
    pub fn start(cfg: &Config) -> Result<Rig, String> {
        let module = if cfg.native {
            Module::native(paths::envoy_module()?)
        } else {
            Module::local(paths::filter_wasm()?)
        };
        let dir = paths::scratch("soak");
        let backend = Backend::start_unrecorded(net::any_port(), None)
            .map_err(|e| format!("backend: {e}"))?;
        let cert = tls::test_cert()?;
        let tls = tls::pinned_client(&cert.cert)?;
        let lo = [LISTEN_IP];
        let plain = SocketAddr::from((LISTEN_IP, net::free_port(&lo)?));
        let tls_addr = SocketAddr::from((LISTEN_IP, net::free_port(&lo)?));
        let ecds = dir.join("ecds").join("portcullis.yaml");
        std::fs::create_dir_all(dir.join("ecds")).map_err(|e| e.to_string())?;
        let filter = Filter::Discovered {
            name: "portcullis".into(),
            path: ecds.clone(),
        };
        let config = EnvoyConfig {
            admin: net::any_port(),
            listeners: vec![
                Listener {
                    name: "plain".into(),
                    address: plain,
                    tls: None,
                    filter: filter.clone(),
                },
                Listener {
                    name: "tls".into(),
                    address: tls_addr,
                    tls: Some(cert.clone()),
                    filter,
                },
            ],
            upstream: Upstream::Static(backend.addr()),
            module,
            access_log: AccessLog::Off,
        };
        write_atomic(
            &ecds,
            &config.render_ecds_resource("portcullis", &workload::policy_json(0)),
        )?;
        let envoy = Envoy::start_with(
            &dir,
            &config.render(),
            &Options {
                concurrency: cfg.concurrency,
                log_level: "warning".into(),
                component_log_level: None,
                env: Vec::new(),
            },
        )
        .map_err(|e| e.to_string())?;
        let pid = envoy.pid();
        println!(
            "soak: Envoy pid {pid} (--concurrency {}), plain {plain}, tls {tls_addr}, backend {}, dir {}",
            cfg.concurrency,
            backend.addr(),
            dir.display()
        );
        Ok(Rig {
            backend,
            envoy,
            pid,
            plain,
            tls_addr,
            tls,
            dir,
            config,
            ecds,
        })
    }

    /// Renames policy `k` (A even, B odd) over the watched ECDS file.
    pub fn write_policy(&self, k: usize) -> Result<(), String> {
        write_atomic(
            &self.ecds,
            &self
                .config
                .render_ecds_resource("portcullis", &workload::policy_json(k)),
        )
    }

    /// The sum of the filter's ECDS counters named `*<suffix>`.
    pub fn ecds_counter(&self, suffix: &str) -> Result<u64, String> {
        Ok(self
            .envoy
            .stats_matching("extension_config_discovery")?
            .into_iter()
            .filter(|(n, _)| n.contains("portcullis") && n.ends_with(suffix))
            .map(|(_, v)| v)
            .sum())
    }

    /// Reads the final stats, then stops Envoy and the backend.
    pub fn finish(mut self, errors: &mut Vec<String>) -> EnvoyEnd {
        let envoy = &mut self.envoy;
        // The filter hands its counters over on a tick: let the last one pass.
        if let Err(e) = envoy.settle_counters() {
            errors.push(e);
        }
        let vm_failures = envoy.wasm_failures().unwrap_or_else(|e| {
            errors.push(e.clone());
            vec![(format!("stats unreadable: {e}"), 1)]
        });
        let matching = |part: &str, keep: &dyn Fn(&str) -> bool| -> Vec<(String, u64)> {
            envoy
                .stats_matching(part)
                .unwrap_or_default()
                .into_iter()
                .filter(|(n, _)| keep(n))
                .collect()
        };
        let wasm_stats = matching("wasm", &|n| n.starts_with("wasm."));
        let prefix = if self.config.module.is_native() {
            NATIVE_COUNTERS
        } else {
            WASM_COUNTERS
        };
        let filter_counters = matching(prefix, &|n| {
            n.ends_with(".allowed") || n.ends_with(".denied") || n.ends_with(".redirected")
        });
        let ecds = matching("extension_config_discovery", &|n| n.contains("portcullis"));
        let protocol_stats = matching("downstream_rq_http", &|n| {
            n.starts_with("http.")
                && !n.starts_with("http.admin.")
                && (n.ends_with(".downstream_rq_http1_total")
                    || n.ends_with(".downstream_rq_http2_total"))
        });
        let alive = envoy.running() && envoy.pid() == self.pid;
        let log = envoy.log();
        let lines: Vec<&str> = log.lines().collect();
        let log_tail = lines
            .get(lines.len().saturating_sub(20)..)
            .unwrap_or_default()
            .join("\n");
        envoy.stop();
        EnvoyEnd {
            vm_failures,
            wasm_stats,
            filter_counters,
            ecds,
            protocol_stats,
            alive,
            log_tail,
        }
    }
}
