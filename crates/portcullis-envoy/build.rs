//! Links the module with `-z now`: every callback it references is resolved
//! when Envoy loads it, so a module that needs a callback this Envoy lacks is
//! refused at load (a configuration error) instead of aborting Envoy at the
//! first request that calls it.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,now");
    println!("cargo:rerun-if-changed=build.rs");
}
