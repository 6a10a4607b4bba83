//! Starting, watching and stopping a real Envoy.
//!
//! [`Envoy::start`] writes the config, runs Envoy with one worker
//! (`--concurrency 1`), waits for the admin `/ready` endpoint to answer
//! `LIVE` (polling; no fixed sleeps), and returns a guard that kills Envoy
//! when dropped. Envoy is also started with a parent-death signal, so a test
//! process killed outright does not leave it behind.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{http1, net, paths};

/// How long Envoy may take to become ready before a start counts as failed.
/// This is a failure deadline, not a wait: readiness is polled.
const READY_DEADLINE: Duration = Duration::from_secs(90);

/// The Portcullis filter keeps its counters in the VM and hands them to
/// Envoy on a 1 s tick (`FLUSH_PERIOD_MS` in the filter): a request's counts
/// show up in `/stats` within this period.
pub const COUNTER_FLUSH: Duration = Duration::from_millis(1000);

/// How long to wait for a counter before giving up: a failure deadline, the
/// value is polled.
const COUNTER_DEADLINE: Duration = Duration::from_secs(15);

/// A running Envoy; dropping it kills the process.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    /// Admin address (loopback).
    pub admin: SocketAddr,
    /// Working directory (config, logs).
    pub dir: PathBuf,
    /// Envoy's own log (stderr).
    pub log_path: PathBuf,
    /// The config file it runs.
    pub config_path: PathBuf,
}

/// Why Envoy did not start.
#[derive(Debug)]
pub struct StartError {
    /// What happened.
    pub message: String,
    /// Envoy's log up to that point.
    pub log: String,
    /// Exit status, if Envoy exited.
    pub exit_code: Option<i32>,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<&str> = self.log.lines().collect();
        let tail = lines
            .get(lines.len().saturating_sub(60)..)
            .unwrap_or_default();
        write!(
            f,
            "{}\n--- envoy log (tail) ---\n{}",
            self.message,
            tail.join("\n")
        )
    }
}

/// A GET against the admin interface: (status, body).
pub fn admin_get(admin: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let r = http1::get(admin, path, "admin")?;
    Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
}

/// How Envoy is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Worker threads (`--concurrency`).
    pub concurrency: u32,
    /// `--log-level`.
    pub log_level: String,
    /// `--component-log-level`, if any.
    pub component_log_level: Option<String>,
    /// Variables set in Envoy's environment (what `host_env_keys` hands to
    /// the VM).
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    /// One worker; warnings, plus the filter's logs at debug (the decision
    /// of every request) and config updates: what the tests read.
    fn default() -> Options {
        Options {
            concurrency: 1,
            log_level: "warning".into(),
            component_log_level: Some("wasm:debug,dynamic_modules:debug,config:info".into()),
            env: Vec::new(),
        }
    }
}

impl Envoy {
    /// Writes `config` into `dir` and starts Envoy on it with the default
    /// [`Options`], waiting until it is ready.
    ///
    /// The config's admin port should be 0: the bound address is read from
    /// `--admin-address-path`.
    pub fn start(dir: &Path, config: &str) -> Result<Envoy, StartError> {
        Envoy::start_with(dir, config, &Options::default())
    }

    /// [`Envoy::start`] with explicit [`Options`].
    pub fn start_with(dir: &Path, config: &str, options: &Options) -> Result<Envoy, StartError> {
        let fail = |message: String| StartError {
            message,
            log: String::new(),
            exit_code: None,
        };
        let bin = paths::envoy_bin().map_err(fail)?;
        fs::create_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        let config_path = dir.join("envoy.yaml");
        let log_path = dir.join("envoy.log");
        let admin_path = dir.join("admin-address");
        let _ = fs::remove_file(&admin_path);
        fs::write(&config_path, config).map_err(|e| fail(format!("writing config: {e}")))?;
        let log = fs::File::create(&log_path).map_err(|e| fail(format!("log file: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| fail(format!("log file: {e}")))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("-c")
            .arg(&config_path)
            .arg("--concurrency")
            .arg(options.concurrency.to_string())
            .arg("--disable-hot-restart")
            .arg("--log-level")
            .arg(&options.log_level);
        if let Some(c) = &options.component_log_level {
            cmd.arg("--component-log-level").arg(c);
        }
        cmd
            // Access log lines reach the file quickly (the tests poll for them).
            .args(["--file-flush-interval-msec", "20"])
            .arg("--admin-address-path")
            .arg(&admin_path);
        // The native module's directory, for configurations that load it
        // (`Options::env` may name another).
        if let Some(dir) = paths::envoy_module()
            .ok()
            .and_then(|m| m.parent().map(Path::to_path_buf))
        {
            cmd.env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", dir);
        }
        cmd.envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no
        // memory of the parent; it only asks the kernel to kill the child
        // when the thread that forked it dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", bin.display())))?;
        let mut envoy = Envoy {
            child,
            admin: net::any_port(),
            dir: dir.to_path_buf(),
            log_path,
            config_path,
        };
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                return Err(StartError {
                    message: format!("envoy exited during start-up ({status})"),
                    log: envoy.log(),
                    exit_code: status.code(),
                });
            }
            if envoy.admin.port() == 0 {
                if let Ok(text) = fs::read_to_string(&admin_path) {
                    if let Ok(a) = text.trim().parse::<SocketAddr>() {
                        envoy.admin = a;
                    }
                }
            }
            if envoy.admin.port() != 0 {
                if let Ok((200, body)) = admin_get(envoy.admin, "/ready") {
                    if body.trim() == "LIVE" {
                        return Ok(envoy);
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(StartError {
                    message: format!("envoy not ready after {READY_DEADLINE:?}"),
                    log: envoy.log(),
                    exit_code: None,
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// All stats as `name: value` text.
    pub fn stats(&self) -> Result<String, String> {
        match admin_get(self.admin, "/stats") {
            Ok((200, body)) => Ok(body),
            Ok((s, body)) => Err(format!("/stats answered {s}: {body}")),
            Err(e) => Err(format!("/stats: {e}")),
        }
    }

    /// The counters and gauges whose name contains `part`.
    pub fn stats_matching(&self, part: &str) -> Result<Vec<(String, u64)>, String> {
        let text = self.stats()?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let (n, v) = l.split_once(": ")?;
                let v = v.trim().parse::<u64>().ok()?;
                n.contains(part).then(|| (n.to_owned(), v))
            })
            .collect())
    }

    /// One counter or gauge, if Envoy has it.
    pub fn stat(&self, name: &str) -> Result<Option<u64>, String> {
        Ok(self
            .stats_matching(name)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v))
    }

    /// A filter counter once it holds what `want` says (polled, so the
    /// filter's next tick can hand it over); the last value read when that
    /// does not happen before the deadline, for the caller's assertion.
    pub fn stat_when(
        &self,
        name: &str,
        want: impl Fn(Option<u64>) -> bool,
    ) -> Result<Option<u64>, String> {
        let end = Instant::now() + COUNTER_DEADLINE;
        loop {
            let v = self.stat(name)?;
            if want(v) || Instant::now() >= end {
                return Ok(v);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the `wasmcustom.portcullis.` counters have not moved for
    /// longer than one flush period (the filter's tick has handed over every
    /// count of the requests already answered), up to a deadline.
    pub fn settle_counters(&self) -> Result<(), String> {
        let sum = || -> Result<u64, String> {
            Ok(self
                .stats_matching("wasmcustom.portcullis.")?
                .iter()
                .map(|(_, v)| v)
                .sum())
        };
        let end = Instant::now() + COUNTER_DEADLINE;
        let mut last = sum()?;
        let mut since = Instant::now();
        while since.elapsed() <= COUNTER_FLUSH + COUNTER_FLUSH / 4 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
            let now = sum()?;
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
        Ok(())
    }

    /// Wasm failure counters that are not zero: stats whose name contains
    /// `wasm` and one of `fail`, `crash`, `abort`, `error` (VM creation or
    /// reload failures, plugin crashes, remote fetch failures).
    pub fn wasm_failures(&self) -> Result<Vec<(String, u64)>, String> {
        Ok(self
            .stats_matching("wasm")?
            .into_iter()
            .filter(|(n, v)| {
                *v != 0
                    && ["fail", "crash", "abort", "error"]
                        .iter()
                        .any(|w| n.contains(w))
            })
            .collect())
    }

    /// Resident set size of the Envoy process in KiB (`VmRSS` from
    /// `/proc/<pid>/status`), if readable.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// Kills Envoy and waits for it.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Resident set size of process `pid` in KiB (`VmRSS` from
/// `/proc/<pid>/status`), if readable.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Checks `config` with `envoy --mode validate` (config parsed and
/// instantiated, no listener bound, nothing fetched): `Err` with Envoy's
/// output when it refuses.
pub fn validate(dir: &Path, config: &str) -> Result<(), String> {
    let bin = paths::envoy_bin()?;
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join("validate.yaml");
    fs::write(&file, config).map_err(|e| format!("{}: {e}", file.display()))?;
    let out = Command::new(&bin)
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "warning",
            "-c",
        ])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "envoy --mode validate refused {}:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs Envoy on a config that is expected to be refused and returns its log
/// and exit code once it has exited (failing if it becomes ready instead).
pub fn expect_refused(dir: &Path, config: &str) -> Result<StartError, String> {
    match Envoy::start(dir, config) {
        Ok(mut e) => {
            let log = e.log();
            e.stop();
            Err(format!(
                "envoy accepted a config it should have refused\n--- envoy log ---\n{log}"
            ))
        }
        Err(e) => Ok(e),
    }
}
