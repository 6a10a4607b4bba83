//! The filter as an OCI image layout, in the Wasm image format Istio's
//! `WasmPlugin` and Envoy Gateway pull (the *oci* variant of the solo.io
//! "Wasm image specification"):
//!
//! ```text
//! <dir>/oci-layout             {"imageLayoutVersion":"1.0.0"}
//! <dir>/index.json             one manifest, tagged (org.opencontainers.image.ref.name)
//! <dir>/blobs/sha256/<hex>     the manifest, the runtime config, the module
//! ```
//!
//! The manifest (`application/vnd.oci.image.manifest.v1+json`) has exactly
//! two layers, which is what those pullers look for: the runtime config
//! (`application/vnd.module.wasm.config.v1+json`, `runtime-config.json`) and
//! the module itself, uncompressed
//! (`application/vnd.module.wasm.content.layer.v1+wasm`, `plugin.wasm`). The
//! manifest's config descriptor points at the same runtime-config blob. The
//! output is deterministic: no timestamps, so the same module always gives
//! the same manifest digest.
//!
//! What it does NOT do: push to a registry (copy the layout with a registry
//! tool, e.g. `oras cp --from-oci-layout DIR:TAG REGISTRY/REPO:TAG` or
//! `skopeo copy oci:DIR:TAG docker://REGISTRY/REPO:TAG`), sign, or build the
//! *compat* (tar+gzip) variant.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::filter::sha256_hex;

/// The manifest's media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The runtime config's media type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.module.wasm.config.v1+json";
/// The module layer's media type.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// The annotation that names a manifest's tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation that names a layer's file.
pub const TITLE: &str = "org.opencontainers.image.title";

/// An OCI content descriptor.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the blob.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Annotations (omitted when empty).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: &'a Descriptor,
    layers: [&'a Descriptor; 2],
    annotations: BTreeMap<&'a str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: [&'a Descriptor; 1],
}

/// The runtime config of an Envoy Wasm filter image.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    abi_versions: [&'a str; 1],
    config: RootIds<'a>,
}

#[derive(Serialize)]
struct RootIds<'a> {
    root_ids: [&'a str; 1],
}

/// What [`write_layout`] wrote.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The manifest's descriptor, as in `index.json`.
    pub manifest: Descriptor,
    /// The runtime config's descriptor.
    pub config: Descriptor,
    /// The module layer's descriptor.
    pub wasm: Descriptor,
}

fn descriptor(media_type: &str, bytes: &[u8], title: Option<&str>) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: format!("sha256:{}", sha256_hex(bytes)),
        size: bytes.len() as u64,
        annotations: title
            .map(|t| (TITLE.to_string(), t.to_string()))
            .into_iter()
            .collect(),
    }
}

fn json(v: &impl Serialize) -> Result<Vec<u8>, String> {
    serde_json::to_vec_pretty(v).map_err(|e| e.to_string())
}

/// Writes `wasm` as an OCI image layout in `dir`, tagged `tag`. An existing
/// layout in `dir` is replaced; any other non-empty directory is refused.
pub fn write_layout(dir: &Path, wasm: &[u8], tag: &str) -> Result<Layout, String> {
    let d = dir.display();
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| format!("{d}: {e}"))?
            .next()
            .is_none();
        if !empty && !dir.join("oci-layout").is_file() {
            return Err(format!(
                "{d} exists and is not an OCI image layout: refusing to replace it"
            ));
        }
        std::fs::remove_dir_all(dir).map_err(|e| format!("{d}: {e}"))?;
    }
    let config_bytes = json(&RuntimeConfig {
        kind: "envoy_proxy",
        abi_versions: ["v0.2.1"],
        config: RootIds {
            root_ids: ["portcullis"],
        },
    })?;
    let config = descriptor(
        CONFIG_MEDIA_TYPE,
        &config_bytes,
        Some("runtime-config.json"),
    );
    let wasm_desc = descriptor(WASM_LAYER_MEDIA_TYPE, wasm, Some("plugin.wasm"));
    let manifest_bytes = json(&Manifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: &config,
        layers: [&config, &wasm_desc],
        annotations: BTreeMap::from([
            ("org.opencontainers.image.title", "portcullis".to_string()),
            ("org.opencontainers.image.version", tag.to_string()),
        ]),
    })?;
    let mut manifest = descriptor(MANIFEST_MEDIA_TYPE, &manifest_bytes, None);
    manifest
        .annotations
        .insert(REF_NAME.to_string(), tag.to_string());
    let index_bytes = json(&Index {
        schema_version: 2,
        media_type: "application/vnd.oci.image.index.v1+json",
        manifests: [&manifest],
    })?;

    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| format!("{}: {e}", blobs.display()))?;
    let write = |name: &Path, bytes: &[u8]| {
        std::fs::write(name, bytes).map_err(|e| format!("{}: {e}", name.display()))
    };
    for (desc, bytes) in [
        (&config, &config_bytes[..]),
        (&wasm_desc, wasm),
        (&manifest, &manifest_bytes[..]),
    ] {
        let hex = desc.digest.trim_start_matches("sha256:");
        write(&blobs.join(hex), bytes)?;
    }
    write(
        &dir.join("oci-layout"),
        &json(&serde_json::json!({ "imageLayoutVersion": "1.0.0" }))?,
    )?;
    write(&dir.join("index.json"), &index_bytes)?;
    Ok(Layout {
        manifest,
        config,
        wasm: wasm_desc,
    })
}
