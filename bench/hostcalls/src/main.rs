//! `portcullis-bench-hostcalls FILTER.wasm EMPTY.wasm POLICY.json...`
//!
//! For the empty filter and for the Portcullis filter with each policy, plays
//! the request the Envoy bench sends (GET /bench from 127.0.0.1, plain HTTP,
//! an upstream answer with Server, X-Powered-By, X-AspNet-Version) through
//! the proxy-wasm host on wasmtime and prints one JSON line per module:
//! host calls per request, fuel (about one unit per wasm instruction) per
//! request, what the filter read and set, and the response headers the client
//! would get. Every line is checked: the exchange must be a 200 with the
//! fingerprints gone and HSTS set for a policy, untouched for the empty
//! filter (`--no-check` skips that, to attribute costs with other policies).

use std::process::ExitCode;

use portcullis_host::{bench, Engine, Exchange, LogLevel, Options};

fn has(ex: &Exchange, name: &[u8]) -> bool {
    ex.response_headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(name))
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Plays the request a few times (the first call may grow memory) and
/// reports the last exchange.
fn measure(
    label: &str,
    wasm: &[u8],
    config: &[u8],
    policy: bool,
    check: bool,
) -> Result<String, String> {
    let options = Options {
        // Envoy in the bench runs at --log-level warn: no per-request debug log.
        log_level: LogLevel::Warn,
        ..Options::default()
    };
    let engine = Engine::with_options(wasm, options).map_err(|e| format!("{label}: {e}"))?;
    let mut plugin = engine
        .configure(config)
        .map_err(|e| format!("{label}: configure: {e}"))?;
    let req = bench::request(([127, 0, 0, 1], 40000).into());
    let mut last = None;
    for _ in 0..3 {
        last = Some(
            plugin
                .play(&req, &bench::upstream())
                .map_err(|e| format!("{label}: {e}"))?,
        );
    }
    let ex = last.ok_or("no exchange")?;
    if check && (ex.status != 200 || ex.local_reply.is_some()) {
        return Err(format!(
            "{label}: status {} (want 200 from upstream)",
            ex.status
        ));
    }
    for name in [&b"server"[..], b"x-powered-by", b"x-aspnet-version"] {
        if check && has(&ex, name) == policy {
            return Err(format!(
                "{label}: {} {}",
                String::from_utf8_lossy(name),
                if policy { "not removed" } else { "missing" }
            ));
        }
    }
    if check && has(&ex, b"strict-transport-security") != policy {
        return Err(format!("{label}: HSTS presence wrong"));
    }
    let reads: Vec<String> = ex.properties_read.iter().map(|s| json_str(s)).collect();
    let sets: Vec<String> = ex.properties_set.iter().map(|(k, _)| json_str(k)).collect();
    let calls: Vec<String> = ex.calls.iter().map(|s| json_str(s)).collect();
    Ok(format!(
        "{{\"module\":{},\"host_calls\":{},\"fuel\":{},\"properties_read\":[{}],\"properties_set\":[{}],\"calls\":[{}]}}",
        json_str(label),
        ex.host_calls,
        ex.fuel_used,
        reads.join(","),
        sets.join(","),
        calls.join(",")
    ))
}

/// The smallest linear-memory limit (in 64 KiB pages, to 1/16 MiB) under
/// which the module configures and serves the request: its memory high-water
/// mark, which stays resident in every Envoy worker's VM (linear memory never
/// shrinks). Binary search over fresh engines.
fn peak_memory(wasm: &[u8], config: &[u8]) -> Result<usize, String> {
    let fits = |limit: usize| -> bool {
        let options = Options {
            log_level: LogLevel::Warn,
            memory_limit: limit,
            ..Options::default()
        };
        let Ok(engine) = Engine::with_options(wasm, options) else {
            return false;
        };
        let Ok(mut plugin) = engine.configure(config) else {
            return false;
        };
        let req = bench::request(([127, 0, 0, 1], 40000).into());
        plugin.play(&req, &bench::upstream()).is_ok()
    };
    let page = 64 << 10;
    let (mut lo, mut hi) = (1usize, 4096usize); // pages: (fails?, fits)
    if !fits(hi * page) {
        return Err("does not fit in 256 MiB".into());
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fits(mid * page) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi * page)
}

/// Load time of one policy in the filter under wasmtime: `configure`
/// (instantiate, start, `proxy_on_configure` with the policy) on a compiled
/// engine, median of 3, with the peak linear memory after it and the fuel
/// (≈ wasm instructions) it used, which a busy machine does not move.
fn load_time(wasm: &[u8], config: &[u8]) -> Result<(f64, f64, f64, usize, u64), String> {
    let options = Options {
        log_level: LogLevel::Warn,
        ..Options::default()
    };
    let engine = Engine::with_options(wasm, options).map_err(|e| e.to_string())?;
    let mut ms = Vec::new();
    let mut memory = 0;
    let mut fuel = 0;
    for _ in 0..3 {
        let t0 = std::time::Instant::now();
        let plugin = engine
            .configure(config)
            .map_err(|e| format!("configure: {e}"))?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
        memory = plugin.memory_size();
        fuel = plugin.configure_fuel_used();
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[1], ms[0], ms[2], memory, fuel))
}

fn run() -> Result<(), String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // --no-check: any policy, for attributing costs (no header checks).
    let check = args.first().map(String::as_str) != Some("--no-check");
    if !check {
        args.remove(0);
    }
    // --memory POLICY.json: also print the peak linear memory of the empty
    // filter and of the filter with that policy.
    let memory = if args.first().map(String::as_str) == Some("--memory") {
        args.remove(0);
        Some(args.remove(0))
    } else {
        None
    };
    // --load POLICY.json: also time loading that policy under wasmtime.
    let load = if args.first().map(String::as_str) == Some("--load") {
        args.remove(0);
        Some(args.remove(0))
    } else {
        None
    };
    let [filter, empty, policies @ ..] = args.as_slice() else {
        return Err(
            "usage: portcullis-bench-hostcalls [--no-check] [--memory POLICY.json] [--load POLICY.json] FILTER.wasm EMPTY.wasm POLICY.json..."
                .into(),
        );
    };
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("{p}: {e}"));
    let empty_wasm = read(empty)?;
    println!("{}", measure("empty", &empty_wasm, b"", false, check)?);
    let filter_wasm = read(filter)?;
    for p in policies {
        let label = std::path::Path::new(p)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.clone());
        println!("{}", measure(&label, &filter_wasm, &read(p)?, true, check)?);
    }
    if let Some(p) = load {
        let text = read(&p)?;
        let (median, min, max, memory, fuel) = load_time(&filter_wasm, &text)?;
        println!(
            "{{\"load\":{},\"bytes\":{},\"wasmtime_ms\":{median:.1},\"wasmtime_ms_min\":{min:.1},\"wasmtime_ms_max\":{max:.1},\"linear_bytes\":{memory},\"configure_fuel\":{fuel}}}",
            json_str(&p),
            text.len()
        );
    }
    if let Some(p) = memory {
        let empty_peak = peak_memory(&empty_wasm, b"")?;
        let peak = peak_memory(&filter_wasm, &read(&p)?)?;
        println!(
            "{{\"memory\":{},\"empty_filter_linear_bytes\":{empty_peak},\"filter_linear_bytes\":{peak}}}",
            json_str(&p)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
