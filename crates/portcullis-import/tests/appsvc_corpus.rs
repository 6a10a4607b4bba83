//! The App Service import of a realistic `az` export decides as App Service
//! documents, case by case: `tests/import/golden/orders-func.az.tests.json`
//! (policy-tests-v1) against the golden the import produces, run by the
//! core through the shared harness. The golden is also checked to be what
//! the import gives today (the goldens test), so the cases judge the import.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers: a failure should stop the test loudly

use std::path::Path;

use portcullis_harness::native::run_suite;
use portcullis_harness::Suite;
use portcullis_import::{appsvc, tags, Options};

#[test]
fn the_imported_az_export_decides_as_app_service_documents() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/import");
    let file = dir.join("golden/orders-func.az.tests.json");
    let suite = Suite::read(&file).unwrap_or_else(|e| panic!("{e}"));
    assert!(suite.file.cases.len() >= 20, "{}", suite.file.cases.len());
    let report = run_suite(&suite);
    assert!(report.passed(), "{}", report.failures().join("\n\n"));
    // The policy the cases ran is the import of the az export, not a hand edit.
    let text = std::fs::read_to_string(dir.join("orders-func.az.json")).unwrap();
    let snap = tags::Snapshot::parse(
        &std::fs::read_to_string(dir.join("ServiceTags_Public_20261123.json")).unwrap(),
    )
    .unwrap();
    let mut o = Options::new("orders-func");
    o.service_tags = Some(&snap);
    o.source = "orders-func.az.json".to_string();
    let out = appsvc::import(&text, &o);
    let golden = std::fs::read_to_string(dir.join("golden/orders-func.az.policy.json")).unwrap();
    assert_eq!(
        out.policy.as_deref(),
        Some(golden.as_str()),
        "{}",
        out.report
    );
}
