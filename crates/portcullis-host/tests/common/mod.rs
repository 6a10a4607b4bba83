//! Shared helpers: build the fixture filter once per test process; a
//! minimal hand-written module (WAT) for the tests of misbehaving modules
//! and of the cache.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use portcullis_host::{Engine, HttpRequest, HttpResponse};

/// Builds `tests/fixture-filter` for wasm32-unknown-unknown (release) into
/// `target/portcullis-host-fixture` and returns the module bytes.
pub fn fixture_wasm() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let manifest = here.join("tests/fixture-filter/Cargo.toml");
        let target = here.join("../../target/portcullis-host-fixture");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-unknown-unknown",
                "--manifest-path",
            ])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", &target)
            // Host-specific flags (e.g. target-cpu=native) must not leak into a wasm build.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .expect("run cargo to build the fixture filter");
        assert!(status.success(), "building the fixture filter failed");
        let wasm = target.join("wasm32-unknown-unknown/release/portcullis_host_fixture.wasm");
        std::fs::read(&wasm).unwrap_or_else(|e| panic!("read {}: {e}", wasm.display()))
    })
}

/// The fixture compiled once (cranelift) per test process.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(fixture_wasm()).expect("fixture compiles"))
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// A GET request with the usual pseudo-headers first, then `extra`.
pub fn get(path: &str, extra: &[(&str, &[u8])]) -> HttpRequest {
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b":method".to_vec(), b"GET".to_vec()),
        (b":authority".to_vec(), b"api.example.com".to_vec()),
        (b":path".to_vec(), path.as_bytes().to_vec()),
        (b":scheme".to_vec(), b"https".to_vec()),
    ];
    headers.extend(
        extra
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec())),
    );
    HttpRequest {
        peer: addr("10.0.0.1:5555"),
        local: addr("10.0.0.2:8080"),
        tls: false,
        protocol: "HTTP/1.1".to_string(),
        headers,
        body: None,
    }
}

pub fn ok() -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![(b"content-type".to_vec(), b"application/json".to_vec())],
    }
}

/// First value of `name` in `headers`.
pub fn header<'a>(headers: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(k, _)| k.as_slice() == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// All values of `name`, as strings.
pub fn values(headers: &[(Vec<u8>, Vec<u8>)], name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|(k, _)| k.as_slice() == name.as_bytes())
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}

pub fn text(headers: &[(Vec<u8>, Vec<u8>)], name: &str) -> String {
    header(headers, name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_else(|| panic!("header {name} missing"))
}

/// A minimal proxy-wasm module: memory, ABI marker, bump allocator, a
/// trivial root context. `imports` and `funcs` are spliced in; `funcs`
/// usually defines `proxy_on_request_headers`.
pub fn module(imports: &str, funcs: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (data (i32.const 16) "hello\n")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param $n i32) (result i32)
    (local $p i32)
    global.get $heap
    local.set $p
    global.get $heap
    local.get $n
    i32.add
    global.set $heap
    local.get $p)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  {funcs}
)"#
    )
}
