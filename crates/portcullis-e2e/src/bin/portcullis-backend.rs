//! The stand-in Azure Functions backend as a process (for the demo).
//!
//! ```text
//! portcullis-backend [ADDR] [FUNCTION_KEY]
//! ```
//! Listens on ADDR (default `127.0.0.1:7071`), answers like an Azure
//! Functions app (IIS/ASP.NET headers) and, when FUNCTION_KEY is given,
//! `401` to requests without `x-functions-key: FUNCTION_KEY`. Prints
//! `listening on ADDR` once ready and logs one line per request; runs until
//! killed.
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use portcullis_e2e::backend::Backend;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = match args.first().map(|a| a.parse()) {
        None => SocketAddr::from(([127, 0, 0, 1], 7071)),
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            eprintln!("portcullis-backend: bad address: {e}");
            return ExitCode::FAILURE;
        }
    };
    let key = args.get(1).map(String::as_bytes);
    let backend = match Backend::start(addr, key) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("portcullis-backend: {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", backend.addr());
    let mut seen = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let reqs = backend.requests();
        for r in reqs.iter().skip(seen) {
            let key = r
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("x-functions-key"))
                .map_or("none", |_| "present");
            println!(
                "backend: {} {} (x-functions-key {key})",
                r.method,
                String::from_utf8_lossy(&r.path)
            );
        }
        seen = reqs.len();
    }
}
