//! `portcullis import` and `portcullis check --service-tags`, driven as a
//! user would: real files from tests/import, policy on stdout or `-o`, the
//! report on stderr.
#![allow(clippy::unwrap_used)] // test helpers: a failure should stop the test loudly

mod common;

use std::path::PathBuf;

use common::{err, out, portcullis, root, scratch};

/// `name` in a scratch directory of its own.
fn tmp(name: &str) -> PathBuf {
    scratch(&format!("import-{name}")).join(name)
}

#[test]
fn apim_policy_to_stdout_report_to_stderr() {
    let o = portcullis(&["import", "apim", "tests/import/functions-behind-apim.xml"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let golden = std::fs::read_to_string(
        root().join("tests/import/golden/functions-behind-apim.policy.json"),
    )
    .unwrap();
    assert_eq!(out(&o), golden);
    let e = err(&o);
    assert!(e.contains("tests/import/functions-behind-apim.xml:15:71: unsupported: check-header@failed-check-error-message"), "{e}");
    assert!(
        e.contains(
            "environment variables when it is loaded: CLIENT_KEY, CLIENT_KEY_NEXT, FUNCTION_KEY"
        ),
        "{e}"
    );
    assert!(
        e.contains("14 mapped, 4 skipped, 1 unsupported, 0 errors"),
        "{e}"
    );
}

#[test]
fn nsg_import_to_a_file_that_check_accepts() {
    let p = tmp("layered.json");
    let ps = p.to_str().unwrap();
    let o = portcullis(&[
        "import",
        "nsg",
        "tests/import/layered-security.az.json",
        "--strict",
        "-o",
        ps,
        "--name",
        "layered-security",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).is_empty());
    let c = portcullis(&["check", ps]);
    assert_eq!(c.status.code(), Some(0), "{}", out(&c));
    assert!(
        out(&c).contains("ok policy \"layered-security\", 9 rules"),
        "{}",
        out(&c)
    );
    // The exact diff against the hand-written sample: no flow changes
    // its verdict; every rule keeps its priority and access and changes only its name
    // (the NSG's own spelling),
    // and the deny body is the default one.
    for kind in ["newly-allowed", "newly-denied"] {
        let d = portcullis(&[
            "diff",
            "policy-samples/layered-security.json",
            ps,
            "--fail-on",
            kind,
        ]);
        assert_eq!(d.status.code(), Some(0), "{kind}: {}", out(&d));
    }
    let d = portcullis(&[
        "diff",
        "policy-samples/layered-security.json",
        ps,
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out(&d)).unwrap();
    assert_eq!(v["network"]["status"], "exact");
    let changes = v["network"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 9, "{changes:?}");
    assert!(changes.iter().all(|c| c["kind"] == "other-rule"
        && c["old"]["priority"] == c["new"]["priority"]
        && c["old"]["access"] == c["new"]["access"]));
}

#[test]
fn json_report_and_strict_failure() {
    let o = portcullis(&[
        "import",
        "apim",
        "tests/import/apim-reported.xml",
        "--strict",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).is_empty(), "no policy on failure");
    let v: serde_json::Value = serde_json::from_str(&err(&o)).unwrap();
    assert_eq!(v["ok"], false);
    let items = v["items"].as_array().unwrap();
    let errors: Vec<(u64, &str)> = items
        .iter()
        .filter(|i| i["kind"] == "error")
        .map(|i| (i["line"].as_u64().unwrap(), i["what"].as_str().unwrap()))
        .collect();
    assert!(errors.contains(&(10, "rate-limit")), "{errors:?}");
    assert_eq!(errors.len(), 10);
    assert!(items
        .iter()
        .any(|i| i["kind"] == "skipped" && i["what"] == "base"));
}

#[test]
fn bad_inputs_are_clear_errors() {
    let x = tmp("bad.xml");
    std::fs::write(&x, "<policies>\n  <!DOCTYPE x>\n</policies>").unwrap();
    let o = portcullis(&["import", "apim", x.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("bad.xml:2:3: error: xml: a DTD"),
        "{}",
        err(&o)
    );
    let big = tmp("big.json");
    std::fs::write(&big, vec![b' '; (1 << 20) + 1]).unwrap();
    let o = portcullis(&["import", "nsg", big.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("1048577 bytes; an import input is read up to 1048576 bytes (1 MiB)"),
        "{}",
        err(&o)
    );
    let o = portcullis(&["import", "yaml", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("invalid value 'yaml'"), "{}", err(&o));
    let o = portcullis(&[
        "import",
        "nsg",
        "tests/import/gateway-nsg.rest.json",
        "--service-tags",
        "tests/import/layered-security.az.json",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("a service tags file is an object"),
        "{}",
        err(&o)
    );
}

#[test]
fn check_lists_what_each_service_tag_gained_and_lost() {
    let p = tmp("gw.json");
    let ps = p.to_str().unwrap();
    let o = portcullis(&[
        "import",
        "nsg",
        "tests/import/gateway-nsg.rest.json",
        "--service-tags",
        "tests/import/ServiceTags_Public_20261123.json",
        "-o",
        ps,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let same = portcullis(&[
        "check",
        ps,
        "--service-tags",
        "tests/import/ServiceTags_Public_20261123.json",
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", out(&same));
    assert!(out(&same).contains("every imported tag is current"));
    let newer = portcullis(&[
        "check",
        ps,
        "--service-tags",
        "tests/import/ServiceTags_Discovery_20261130.json",
    ]);
    assert_eq!(newer.status.code(), Some(1));
    let t = out(&newer);
    assert!(t.contains("ApiManagement.WestEurope changed (changeNumber 12 -> 13): 1 gained, 1 lost\n  + 20.103.252.0/28\n  - 13.69.66.144/28"), "{t}");
    assert!(t.contains("AzureFrontDoor.Backend unchanged"), "{t}");
}

#[test]
fn app_service_import_then_export_and_refusal() {
    // The ARM template: an import with reported items, then exported back.
    let p = tmp("orders-func.json");
    let ps = p.to_str().unwrap();
    let o = portcullis(&[
        "import",
        "app-service",
        "tests/import/orders-func.arm.json",
        "-o",
        ps,
        "--name",
        "orders-func",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let golden =
        std::fs::read_to_string(root().join("tests/import/golden/orders-func.arm.policy.json"))
            .unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), golden);
    let e = err(&o);
    assert!(
        e.contains("tests/import/orders-func.arm.json:50:13: unsupported: AllowOfficeDirect"),
        "{e}"
    );
    // --strict refuses what is inexact (x-forwarded-for, the ARM expression).
    let s = portcullis(&[
        "import",
        "app-service",
        "tests/import/orders-func.arm.json",
        "--strict",
    ]);
    assert_eq!(s.status.code(), Some(1), "{}", err(&s));
    assert!(out(&s).is_empty());
    // The imported policy reads X-Forwarded-For: App Service cannot, so the
    // export is refused, and listed with --approximate.
    let r = portcullis(&["export", "app-service", ps]);
    assert_eq!(r.status.code(), Some(1), "{}", err(&r));
    assert!(out(&r).is_empty());
    assert!(
        err(&r).contains(": client_ip: refused: client_ip from x-forwarded-for"),
        "{}",
        err(&r)
    );
    let a = portcullis(&["export", "app-service", ps, "--approximate"]);
    assert_eq!(a.status.code(), Some(0), "{}", err(&a));
    assert!(
        err(&a).contains(": client_ip: approximated:"),
        "{}",
        err(&a)
    );
    let config = out(&a);
    assert!(
        config.contains("\"ipSecurityRestrictionsDefaultAction\": \"Deny\""),
        "{config}"
    );
    assert!(
        config.contains("\"ipAddress\": \"198.51.100.66/32\""),
        "{config}"
    );
    // And that configuration imports again.
    let back = tmp("exported.json");
    std::fs::write(&back, &config).unwrap();
    let i = portcullis(&["import", "app-service", back.to_str().unwrap(), "--strict"]);
    assert_eq!(i.status.code(), Some(0), "{}", err(&i));
}
