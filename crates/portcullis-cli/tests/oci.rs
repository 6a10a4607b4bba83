//! The OCI image layout (`portcullis package`, and `dist/portcullis_filter.oci`
//! from `scripts/build-filter.sh`) read back as a registry tool would:
//! every file, digest and size checked, the module layer equal to the .wasm.
//! The reader here is written from the OCI image-layout spec, not from the
//! writer's types.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use serde_json::Value;

use common::{root, scratch, sha256, text};

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The blob a descriptor names: present, of its size and digest.
fn blob(dir: &Path, desc: &Value) -> Vec<u8> {
    let digest = desc["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    assert_eq!(hex.len(), 64, "{digest}");
    let bytes = std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(desc["size"].as_u64().unwrap(), bytes.len() as u64, "{desc}");
    assert_eq!(sha256(&bytes), hex, "{desc}");
    bytes
}

/// Checks the layout in `dir` holds exactly `wasm` under `tag`; returns the
/// manifest digest.
fn verify(dir: &Path, wasm: &[u8], tag: &str) -> String {
    assert_eq!(
        read_json(&dir.join("oci-layout")),
        serde_json::json!({ "imageLayoutVersion": "1.0.0" })
    );
    let index = read_json(&dir.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    let m = &manifests[0];
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(m["annotations"]["org.opencontainers.image.ref.name"], tag);

    let manifest: Value = serde_json::from_slice(&blob(dir, m)).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let config_desc = &manifest["config"];
    assert_eq!(
        config_desc["mediaType"],
        "application/vnd.module.wasm.config.v1+json"
    );
    let config: Value = serde_json::from_slice(&blob(dir, config_desc)).unwrap();
    assert_eq!(config["type"], "envoy_proxy", "{config}");
    assert_eq!(config["config"]["root_ids"][0], "portcullis", "{config}");

    // Istio and Envoy Gateway: exactly two layers, the config and the module.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{manifest}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.module.wasm.config.v1+json"
    );
    assert_eq!(blob(dir, &layers[0]), blob(dir, config_desc));
    assert_eq!(
        layers[1]["mediaType"],
        "application/vnd.module.wasm.content.layer.v1+wasm"
    );
    assert_eq!(
        layers[1]["annotations"]["org.opencontainers.image.title"],
        "plugin.wasm"
    );
    assert!(blob(dir, &layers[1]) == wasm, "the layer is not the module");

    // Nothing else in blobs/.
    let mut names: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut want: Vec<String> = [m, config_desc, &layers[1]]
        .iter()
        .map(|d| d["digest"].as_str().unwrap()[7..].to_string())
        .collect();
    want.sort();
    assert_eq!(names, want);
    m["digest"].as_str().unwrap().to_string()
}

#[test]
fn the_release_artefacts_are_the_module_its_sha256_and_its_oci_layout() {
    let dist = root().join("dist");
    let wasm = std::fs::read(dist.join("portcullis_filter.wasm"))
        .expect("dist/portcullis_filter.wasm: run scripts/build-filter.sh (./build.sh build)");
    let sum = std::fs::read_to_string(dist.join("portcullis_filter.wasm.sha256"))
        .expect("dist/portcullis_filter.wasm.sha256: run scripts/build-filter.sh");
    // sha256sum format: `sha256sum -c` checks it from dist/.
    assert_eq!(sum, format!("{}  portcullis_filter.wasm\n", sha256(&wasm)));
    verify(
        &dist.join("portcullis_filter.oci"),
        &wasm,
        env!("CARGO_PKG_VERSION"),
    );
}

#[test]
fn package_writes_a_deterministic_layout_and_refuses_to_clobber_other_directories() {
    let tmp = scratch("package");
    let wasm = std::fs::read(root().join("dist/portcullis_filter.wasm")).unwrap();
    let out = tmp.join("layout");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .env_remove("PORTCULLIS_FILTER")
            .output()
            .unwrap()
    };
    // The embedded filter (built from dist/) by default.
    let o = run(&["package", "--out", out.to_str().unwrap(), "--tag", "t1"]);
    assert!(o.status.success(), "{}", text(&o));
    let first = verify(&out, &wasm, "t1");
    assert!(text(&o).contains(&first), "{}", text(&o));
    // Again: replaced, same digest.
    let o = run(&["package", "--out", out.to_str().unwrap(), "--tag", "t1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(verify(&out, &wasm, "t1"), first);

    // Another module through --filter.
    let other = tmp.join("other.wasm");
    let mut bytes = wasm.clone();
    bytes.extend_from_slice(&[0, 4, 3, b'n', b'o', b't']); // a custom section "not"
    std::fs::write(&other, &bytes).unwrap();
    let o = run(&[
        "package",
        "--filter",
        other.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--tag",
        "t2",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(verify(&out, &bytes, "t2"), first);

    // A directory that is not a layout is left alone.
    let precious = tmp.join("precious");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("notes.txt"), b"keep").unwrap();
    let o = run(&["package", "--out", precious.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not an OCI image layout"), "{}", text(&o));
    assert_eq!(std::fs::read(precious.join("notes.txt")).unwrap(), b"keep");
    let _ = std::fs::remove_dir_all(&tmp);
}
