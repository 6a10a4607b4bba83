//! `portcullis package`: the filter as an OCI image layout for Istio's
//! `WasmPlugin` and Envoy Gateway (see `portcullis_cli::oci`).

use std::path::PathBuf;

use portcullis_cli::filter::Filter;
use portcullis_cli::oci::write_layout;

use crate::Outcome;

/// Write the filter as an OCI image layout (Wasm image, oci variant:
/// `application/vnd.module.wasm.content.layer.v1+wasm`), ready to copy to a
/// registry with oras or skopeo.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The module to package [default: the embedded filter].
    #[arg(long, value_name = "FILE.wasm")]
    filter: Option<PathBuf>,
    /// The layout directory to write (replaced if it is a layout already).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The tag recorded in index.json.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
}

pub(crate) fn run(args: Args) -> Outcome {
    let filter = Filter::resolve(args.filter.as_deref())?;
    let layout = write_layout(&args.out, &filter.bytes, &args.tag)?;
    println!(
        "{}: OCI image layout, tag {}, manifest {} ({} bytes), module {} ({} bytes, {})",
        args.out.display(),
        args.tag,
        layout.manifest.digest,
        layout.manifest.size,
        layout.wasm.digest,
        layout.wasm.size,
        filter.origin.describe()
    );
    Ok(true)
}
