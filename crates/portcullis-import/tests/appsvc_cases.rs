//! The App Service importer on small inputs: shapes, defaults, the scm
//! site, and what is reported (kind, line and column).
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers: a failure should stop the test loudly

use portcullis_core::Policy;
use portcullis_import::{appsvc, ItemKind, Options, Outcome};

fn import(t: &str) -> Outcome {
    appsvc::import(t, &Options::new("t"))
}

fn strict(t: &str) -> Outcome {
    let mut o = Options::new("t");
    o.strict = true;
    appsvc::import(t, &o)
}

fn items(o: &Outcome) -> Vec<(u32, u32, &'static str, String)> {
    o.report
        .items
        .iter()
        .map(|i| (i.line, i.column, i.kind.as_str(), i.what.clone()))
        .collect()
}

fn policy(o: &Outcome) -> Policy {
    let p = o.policy.as_ref().unwrap_or_else(|| panic!("{}", o.report));
    Policy::parse(p.as_bytes()).unwrap()
}

#[test]
fn no_rules_at_all_allows_everyone() {
    let o = import(r#"{"ipSecurityRestrictions": [], "scmIpSecurityRestrictionsUseMain": true}"#);
    let p = policy(&o);
    let n = p.network.as_ref().unwrap();
    assert!(n.rules.is_empty());
    assert_eq!(n.default_access.as_str(), "allow");
    assert!(p.scopes.is_empty());
}

#[test]
fn rules_without_a_default_deny_the_rest_and_ties_keep_list_order() {
    let o = strict(
        r#"{"siteConfig": {"ipSecurityRestrictions": [
  {"name": "b", "ipAddress": "10.0.0.0/8", "action": "Allow", "priority": 300},
  {"name": "a", "ipAddress": "10.1.0.0/16", "action": "Deny", "priority": 300},
  {"name": "c", "ipAddress": "10.1.2.3/8,192.0.2.1", "action": "Allow", "priority": 7}
], "scmIpSecurityRestrictionsUseMain": true}}"#,
    );
    let p = policy(&o);
    let n = p.network.as_ref().unwrap();
    let order: Vec<(&str, u16)> = n
        .rules
        .iter()
        .map(|r| (r.name.as_str(), r.priority))
        .collect();
    assert_eq!(order, [("c", 100), ("b", 110), ("a", 120)]);
    assert_eq!(n.default_access.as_str(), "deny");
    // Host bits are cleared as App Service masks them.
    assert_eq!(n.rules[0].source_text, ["10.0.0.0/8", "192.0.2.1"]);
}

#[test]
fn the_scm_rules_become_a_scope_for_the_scm_host() {
    let o = strict(
        r#"{"ipSecurityRestrictions": [{"name": "a", "ipAddress": "10.0.0.0/8", "action": "Allow", "priority": 1}],
"scmIpSecurityRestrictions": [{"name": "ops", "ipAddress": "192.0.2.0/24", "action": "Allow", "priority": 1}],
"scmIpSecurityRestrictionsDefaultAction": "Deny", "scmIpSecurityRestrictionsUseMain": false}"#,
    );
    let p = policy(&o);
    assert_eq!(p.scopes.len(), 1);
    let s = &p.scopes[0];
    assert_eq!(s.name, appsvc::SCM_SCOPE);
    assert_eq!(s.policy.network.as_ref().unwrap().rules[0].name, "ops");
    // Absent scm fields: the scm site is unrestricted, and the scope says so.
    let o = import(
        r#"{"ipSecurityRestrictions": [{"name": "a", "ipAddress": "10.0.0.0/8", "action": "Allow", "priority": 1}]}"#,
    );
    let p = policy(&o);
    let n = p.scopes[0].policy.network.as_ref().unwrap();
    assert!(n.rules.is_empty());
    assert_eq!(n.default_access.as_str(), "allow");
}

#[test]
fn an_implicit_rule_that_disagrees_with_the_default_action_is_an_error() {
    let o = import(
        r#"{"ipSecurityRestrictionsDefaultAction": "Allow", "scmIpSecurityRestrictionsUseMain": true,
"ipSecurityRestrictions": [{"ipAddress": "Any", "action": "Deny", "priority": 2147483647, "name": "Deny all"}]}"#,
    );
    assert!(o.policy.is_none());
    assert!(
        items(&o).contains(&(
            2,
            28,
            "error",
            "ipSecurityRestrictionsDefaultAction".to_string()
        )),
        "{}",
        o.report
    );
}

#[test]
fn a_subnet_is_left_out_of_an_allow_and_refused_in_a_deny() {
    let allow = r#"{"scmIpSecurityRestrictionsUseMain": true, "ipSecurityRestrictions": [
  {"name": "vnet", "vnetSubnetResourceId": "/subscriptions/x/subnets/a", "action": "Allow", "priority": 1}]}"#;
    let o = import(allow);
    assert!(
        items(&o).contains(&(2, 3, "unsupported", "vnet".to_string())),
        "{}",
        o.report
    );
    assert!(policy(&o).network.unwrap().rules.is_empty());
    assert!(strict(allow).policy.is_none());
    let deny = allow.replace("Allow", "Deny");
    let o = import(&deny);
    assert!(o.policy.is_none());
    assert!(
        items(&o).contains(&(2, 3, "error", "vnet".to_string())),
        "{}",
        o.report
    );
}

#[test]
fn x_forwarded_for_becomes_the_client_address_walk_and_is_reported() {
    let t = r#"{"scmIpSecurityRestrictionsUseMain": true, "ipSecurityRestrictions": [
  {"name": "gw", "ipAddress": "10.20.1.4/32", "action": "Allow", "priority": 1,
   "headers": {"X-Forwarded-For": ["203.0.113.0/24"]}}]}"#;
    let o = import(t);
    let p = policy(&o);
    assert_eq!(p.client_ip.from.as_str(), "x-forwarded-for");
    assert_eq!(p.network.unwrap().rules[0].source_text, ["203.0.113.0/24"]);
    assert!(items(&o)
        .iter()
        .any(|i| i.2 == "unsupported" && i.3 == "client_ip"));
    assert!(strict(t).policy.is_none());
    // From Any there is no proxy to trust: the rule is left out.
    let any = t.replace("10.20.1.4/32", "Any");
    let o = import(&any);
    assert!(policy(&o).network.unwrap().rules.is_empty());
    assert_eq!(policy(&o).client_ip.from.as_str(), "peer");
}

#[test]
fn unknown_tags_headers_and_duplicate_names_are_reported() {
    let o = import(
        r#"{"scmIpSecurityRestrictionsUseMain": true, "ipSecurityRestrictions": [
  {"name": "fd", "ipAddress": "AzureFrontDoor.Backend", "tag": "ServiceTag", "action": "Allow", "priority": 1},
  {"name": "x", "ipAddress": "192.0.2.1", "action": "Allow", "priority": 2, "headers": {"x-custom": ["1"]}},
  {"name": "dup", "ipAddress": "192.0.2.2", "action": "Allow", "priority": 3},
  {"name": "dup", "ipAddress": "192.0.2.3", "action": "Allow", "priority": 4, "color": "red"}]}"#,
    );
    let p = policy(&o);
    let names: Vec<String> = p
        .network
        .unwrap()
        .rules
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(names, ["dup", "dup (2)"]);
    let got = items(&o);
    assert!(
        got.contains(&(2, 3, "unsupported", "fd".to_string())),
        "{}",
        o.report
    );
    assert!(
        got.contains(&(3, 3, "unsupported", "x".to_string())),
        "{}",
        o.report
    );
    assert!(
        got.contains(&(5, 79, "unsupported", "dup.color".to_string())),
        "{}",
        o.report
    );
}

#[test]
fn over_512_rules_and_unreadable_documents_are_refused_with_a_position() {
    let rules: Vec<String> = (0..514)
        .map(|i| {
            format!(
                r#"{{"ipAddress": "10.0.{}.{}", "action": "Allow", "priority": {i}}}"#,
                i / 256,
                i % 256
            )
        })
        .collect();
    let o = import(&format!(
        r#"{{"ipSecurityRestrictions": [{}]}}"#,
        rules.join(",")
    ));
    assert!(o.policy.is_none());
    assert!(o
        .report
        .items
        .iter()
        .any(|i| i.reason.contains("at most 512")));
    let o = import("{\"ipSecurityRestrictions\": [\n  {\"action\": }]}");
    assert_eq!(items(&o)[0].0, 2);
    let o = import(
        r#"{"resources": [{"type": "Microsoft.Web/sites", "properties": {"siteConfig": {"ipSecurityRestrictions": []}}},
      {"type": "Microsoft.Web/sites", "properties": {"siteConfig": {"ipSecurityRestrictions": []}}}]}"#,
    );
    assert!(
        o.report.items[0]
            .reason
            .contains("import one site at a time"),
        "{}",
        o.report
    );
    let o = import(r#"{"name": "not a site"}"#);
    assert_eq!(o.report.count(ItemKind::Error), 1);
}
