//! Misbehaving modules, hand-written in WAT (wasmtime's `wat` feature is
//! enabled for tests only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{get, module, ok};
use portcullis_host::{ConfigureError, Engine, HostError, LogLevel, Options};

fn configure_ok(src: &str) -> portcullis_host::Plugin {
    let engine = Engine::new(src.as_bytes()).expect("module loads");
    engine.configure(b"").expect("configure")
}

const LOG: &str = r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#;

#[test]
fn unknown_env_import_is_rejected_at_load() {
    let src = module(
        r#"(import "env" "proxy_continue_request" (func (result i32)))"#,
        "",
    );
    let err = Engine::new(src.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        HostError::UnknownImport {
            module: "env".into(),
            name: "proxy_continue_request".into()
        }
    );
    assert!(err.to_string().contains("env.proxy_continue_request"));
}

#[test]
fn import_with_the_wrong_type_is_rejected_at_load() {
    let src = module(
        r#"(import "env" "proxy_log" (func (param i32) (result i32)))"#,
        "",
    );
    let err = Engine::new(src.as_bytes()).unwrap_err();
    assert!(
        matches!(err, HostError::Instantiate(ref m) if m.contains("proxy_log")),
        "{err}"
    );
}

#[test]
fn not_a_proxy_wasm_module() {
    assert!(matches!(
        Engine::new(b"\0asm garbage"),
        Err(HostError::Compile(_))
    ));
    let err = Engine::new(br#"(module (memory (export "memory") 1))"#).unwrap_err();
    assert!(matches!(err, HostError::NotProxyWasm(_)), "{err}");
    // ABI 0.1.0-style callback (two params) is refused.
    let src = module(
        "",
        r#"(func (export "proxy_on_request_headers") (param i32 i32) (result i32) i32.const 0)"#,
    );
    let err = Engine::new(src.as_bytes()).unwrap_err();
    assert!(
        matches!(err, HostError::NotProxyWasm(ref m) if m.contains("proxy_on_request_headers")),
        "{err}"
    );
}

#[test]
fn bad_pointer_is_a_misuse_error_naming_the_call() {
    let src = module(
        LOG,
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $log (i32.const 2) (i32.const 0xfffffff0) (i32.const 100)))
             i32.const 0)"#,
    );
    let mut plugin = configure_ok(&src);
    let err = plugin.play(&get("/", &[]), &ok()).unwrap_err();
    let HostError::Misuse { call, detail } = &err else {
        panic!("expected misuse, got {err:?}");
    };
    assert_eq!(call, "proxy_log");
    assert!(detail.contains("outside linear memory"), "{detail}");
}

#[test]
fn bad_return_pointer_is_a_misuse_error() {
    let src = module(
        r#"(import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))"#,
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $pairs (i32.const 0) (i32.const 0x7ffffff0) (i32.const 8)))
             i32.const 0)"#,
    );
    let mut plugin = configure_ok(&src);
    let err = plugin.play(&get("/", &[]), &ok()).unwrap_err();
    assert!(
        matches!(err, HostError::Misuse { ref call, .. } if call == "proxy_get_header_map_pairs"),
        "{err}"
    );
}

#[test]
fn bad_pointer_during_configure() {
    let src = module(
        LOG,
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32)
             (drop (call $log (i32.const 2) (i32.const -1) (i32.const 2)))
             i32.const 1)"#,
    );
    let engine = Engine::new(src.as_bytes()).unwrap();
    let err = engine.configure(b"").unwrap_err();
    assert!(
        matches!(err, ConfigureError::Host(HostError::Misuse { ref call, .. }) if call == "proxy_log"),
        "{err}"
    );
}

#[test]
fn unsupported_calls_trap_with_their_name() {
    let src = module(
        r#"(import "env" "proxy_grpc_cancel" (func $cancel (param i32) (result i32)))"#,
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $cancel (i32.const 1)))
             i32.const 0)"#,
    );
    let mut plugin = configure_ok(&src);
    let err = plugin.play(&get("/", &[]), &ok()).unwrap_err();
    assert_eq!(
        err,
        HostError::Unsupported {
            call: "proxy_grpc_cancel".into()
        }
    );
}

#[test]
fn malformed_serialized_map_is_a_misuse_error() {
    let src = module(
        r#"(import "env" "proxy_set_header_map_pairs" (func $set (param i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 64) "\ff\00\00\00\01\00\00\00")
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $set (i32.const 0) (i32.const 64) (i32.const 8)))
             i32.const 0)"#,
    );
    let mut plugin = configure_ok(&src);
    let err = plugin.play(&get("/", &[]), &ok()).unwrap_err();
    assert!(
        matches!(err, HostError::Misuse { ref call, .. } if call == "proxy_set_header_map_pairs"),
        "{err}"
    );
}

#[test]
fn allocator_returning_null_is_a_misuse_error() {
    let src = r#"(module
      (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 0)
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (drop (call $pairs (i32.const 0) (i32.const 0) (i32.const 8)))
        i32.const 0))"#;
    let mut plugin = configure_ok(src);
    let err = plugin.play(&get("/", &[]), &ok()).unwrap_err();
    assert!(
        matches!(err, HostError::Misuse { ref detail, .. } if detail.contains("NULL")),
        "{err}"
    );
}

const LOCAL_REPLY: &str = r#"(import "env" "proxy_send_local_response"
    (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#;

#[test]
fn second_local_reply_is_a_misuse_error() {
    let src = module(
        LOCAL_REPLY,
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $reply (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 16) (i32.const 5)
                                (i32.const 0) (i32.const 0) (i32.const -1)))
             (drop (call $reply (i32.const 401) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                                (i32.const 0) (i32.const 0) (i32.const -1)))
             i32.const 1)"#,
    );
    let mut plugin = configure_ok(&src);
    let err = plugin.play(&get("/", &[]), &ok()).unwrap_err();
    assert!(
        matches!(err, HostError::Misuse { ref detail, .. } if detail.contains("second local reply")),
        "{err}"
    );
}

#[test]
fn local_reply_details_grpc_status_and_invalid_status() {
    let src = module(
        LOCAL_REPLY,
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $reply (i32.const 200) (i32.const 16) (i32.const 5) (i32.const 0) (i32.const 0)
                                (i32.const 0) (i32.const 0) (i32.const 7)))
             i32.const 1)"#,
    );
    let mut plugin = configure_ok(&src);
    let ex = plugin.play(&get("/", &[]), &ok()).unwrap();
    let reply = ex.local_reply.unwrap();
    assert_eq!(reply.details, "hello");
    assert_eq!(reply.grpc_status, Some(7));
    assert!(reply.headers.is_empty());

    let src = module(
        LOCAL_REPLY,
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $reply (i32.const 70000) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                                (i32.const 0) (i32.const 0) (i32.const -1)))
             i32.const 1)"#,
    );
    let mut plugin = configure_ok(&src);
    let err = plugin.play(&get("/", &[]), &ok()).unwrap_err();
    assert!(
        matches!(err, HostError::Misuse { ref detail, .. } if detail.contains("70000")),
        "{err}"
    );
}

#[test]
fn local_reply_from_on_log_is_a_misuse_error() {
    let src = module(
        LOCAL_REPLY,
        r#"(func (export "proxy_on_log") (param i32)
             (drop (call $reply (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                                (i32.const 0) (i32.const 0) (i32.const -1))))"#,
    );
    let mut plugin = configure_ok(&src);
    let err = plugin.play(&get("/", &[]), &ok()).unwrap_err();
    assert!(
        matches!(err, HostError::Misuse { ref call, .. } if call == "proxy_send_local_response"),
        "{err}"
    );
}

#[test]
fn runaway_configure_runs_out_of_fuel() {
    let src = module(
        "",
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32)
             (loop $l (br $l))
             i32.const 1)"#,
    );
    let options = Options {
        fuel_limit: 5_000_000,
        ..Options::default()
    };
    let engine = Engine::with_options(src.as_bytes(), options).unwrap();
    let err = engine.configure(b"").unwrap_err();
    assert_eq!(
        err,
        ConfigureError::Host(HostError::OutOfFuel {
            callback: "proxy_on_configure".into(),
            limit: 5_000_000
        })
    );
}

#[test]
fn vm_start_rejection() {
    let src = r#"(module
      (memory (export "memory") 1)
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "malloc") (param i32) (result i32) i32.const 1024)
      (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 0))"#;
    let engine = Engine::new(src.as_bytes()).unwrap();
    assert!(matches!(
        engine.configure(b""),
        Err(ConfigureError::VmStartRejected { .. })
    ));
}

#[test]
fn module_without_callbacks_passes_requests_through() {
    let mut plugin = configure_ok(&module("", ""));
    let ex = plugin.play(&get("/x", &[("a", b"1")]), &ok()).unwrap();
    assert_eq!(ex.status, 200);
    assert_eq!(
        ex.upstream_request_headers.unwrap(),
        get("/x", &[("a", b"1")]).headers
    );
    assert_eq!(ex.host_calls, 0);
}

#[test]
fn wasi_fd_write_logs_and_unknown_wasi_calls_are_unsupported() {
    let src = module(
        r#"(import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
           (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 128) "\10\00\00\00\06\00\00\00")
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $write (i32.const 2) (i32.const 128) (i32.const 1) (i32.const 256)))
             i32.const 0)
           (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
             (drop (call $read (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
             i32.const 0)"#,
    );
    let mut plugin = configure_ok(&src);
    let err = plugin.play(&get("/", &[]), &ok()).unwrap_err();
    assert_eq!(
        err,
        HostError::Unsupported {
            call: "wasi_snapshot_preview1.fd_read".into()
        }
    );
    assert_eq!(
        plugin.last_failure_logs(),
        [(LogLevel::Error, "hello".to_string())]
    );
}

#[test]
fn trapped_instance_is_replaced_on_next_play() {
    let src = module(
        "",
        r#"(global $n (mut i32) (i32.const 0))
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             ;; trap on the first request only (per instance)
             (global.set $n (i32.add (global.get $n) (i32.const 1)))
             (if (i32.eq (global.get $n) (i32.const 1)) (then unreachable))
             i32.const 0)"#,
    );
    let mut plugin = configure_ok(&src);
    let err = plugin.play(&get("/", &[]), &ok()).unwrap_err();
    assert!(
        matches!(err, HostError::Trap { ref message, .. } if message.contains("unreachable")),
        "{err}"
    );
    // A fresh instance traps again on its first request: proves it is fresh.
    assert!(plugin.play(&get("/", &[]), &ok()).is_err());
    assert_eq!(plugin.restarts(), 1);
}

#[test]
fn memory_growth_beyond_the_limit_fails() {
    let src = module(
        "",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))
             i32.const 0)"#,
    );
    let options = Options {
        memory_limit: 1 << 20,
        ..Options::default()
    };
    let mut plugin = Engine::with_options(src.as_bytes(), options)
        .unwrap()
        .configure(b"")
        .unwrap();
    let err = plugin.play(&get("/", &[]), &ok()).unwrap_err();
    assert!(matches!(err, HostError::Trap { .. }), "{err}");
}

#[test]
fn an_impossible_upstream_status_is_the_callers_mistake() {
    let mut plugin = common::engine().configure(b"ok").unwrap();
    let req = get("/", &[]);
    let up = portcullis_host::HttpResponse {
        status: 42,
        headers: Vec::new(),
    };
    let err = plugin.play(&req, &up).unwrap_err();
    assert!(matches!(err, HostError::BadExchange(_)), "{err}");
    assert!(err.to_string().contains("upstream status 42"), "{err}");
}
