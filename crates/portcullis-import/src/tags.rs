//! Azure service tags: reading a snapshot, and comparing imported groups
//! with a newer one.
//!
//! Two shapes are read, both JSON objects with a `values` list of tags:
//! - the weekly download (`ServiceTags_Public_YYYYMMDD.json`): top-level
//!   `changeNumber` (a number) and `cloud`;
//! - the Service Tag Discovery API (`.../serviceTags?api-version=...`): the
//!   same, with `changeNumber` as a string and `id`, `name`, `type`,
//!   `nextLink` beside it.
//!
//! Each tag needs `name` and `properties.addressPrefixes`; its
//! `properties.changeNumber` (number or string), `region` and
//! `systemService` are kept. Other keys are ignored (the format grows).
//! Tag names are matched case-insensitively, as Azure does.
//!
//! ```
//! let snap = portcullis_import::tags::Snapshot::parse(r#"{"changeNumber": 7, "cloud": "Public",
//!   "values": [{"name": "AzureFrontDoor.Backend", "id": "AzureFrontDoor.Backend",
//!     "properties": {"changeNumber": 3, "addressPrefixes": ["147.243.0.0/16"]}}]}"#).unwrap();
//! assert_eq!(snap.get("azurefrontdoor.backend").unwrap().prefixes, ["147.243.0.0/16"]);
//! ```

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use portcullis_core::json::{self, Kind, Value};

use crate::lines::Lines;
use crate::out::J;
use crate::MAX_SERVICE_TAGS_BYTES;

/// A service tags snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `cloud` (`Public`, `AzureGovernment`, ...), empty when absent.
    pub cloud: String,
    /// The snapshot's `changeNumber`, as text.
    pub change_number: String,
    /// The tags, in file order.
    pub tags: Vec<Tag>,
}

/// One service tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Its name (`AzureFrontDoor.Backend`, `ApiManagement.WestEurope`).
    pub name: String,
    /// Its own `changeNumber`, as text (empty when absent).
    pub change_number: String,
    /// `region` (empty for global tags).
    pub region: String,
    /// `systemService`.
    pub system_service: String,
    /// `addressPrefixes`, IPv4 and IPv6, in file order.
    pub prefixes: Vec<String>,
}

/// Why a snapshot could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagsError {
    /// 1-based line (0 for the file as a whole).
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TagsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

fn change_number(v: Option<&Value>, lines: &Lines<'_>, what: &str) -> Result<String, TagsError> {
    match v.map(|v| (&v.kind, v.span)) {
        None | Some((Kind::Null, _)) => Ok(String::new()),
        Some((Kind::Number(n), _)) if n.bytes().all(|b| b.is_ascii_digit()) => Ok(n.clone()),
        Some((Kind::String(s), _)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(s.clone())
        }
        Some((_, span)) => {
            let (line, column) = lines.at(span.start);
            Err(TagsError {
                line,
                column,
                message: format!("{what}changeNumber must be a whole number or a string of digits"),
            })
        }
    }
}

impl Snapshot {
    /// Reads a snapshot (either shape).
    pub fn parse(text: &str) -> Result<Snapshot, TagsError> {
        if text.len() > MAX_SERVICE_TAGS_BYTES {
            return Err(TagsError {
                line: 0,
                column: 0,
                message: format!(
                    "the file is {} bytes; the limit is {MAX_SERVICE_TAGS_BYTES} bytes (64 MiB)",
                    text.len()
                ),
            });
        }
        let lines = Lines::new(text);
        let at = |v: &Value, message: String| {
            let (line, column) = lines.at(v.span.start);
            TagsError {
                line,
                column,
                message,
            }
        };
        let root = json::parse(text).map_err(|e| {
            let (line, column) = lines.at(e.offset);
            TagsError {
                line,
                column,
                message: e.message.to_string(),
            }
        })?;
        let Kind::Object(_) = root.kind else {
            return Err(at(
                &root,
                "a service tags file is an object with \"values\"".to_string(),
            ));
        };
        let Some(values) = root.get("values") else {
            return Err(at(&root, "no \"values\": not a service tags file (the download or the Discovery API's answer)".to_string()));
        };
        let Kind::Array(items) = &values.kind else {
            return Err(at(values, "\"values\" must be a list of tags".to_string()));
        };
        let cloud = match root.get("cloud") {
            None => String::new(),
            Some(c) => c
                .as_str()
                .ok_or_else(|| at(c, "\"cloud\" must be a string".to_string()))?
                .to_string(),
        };
        let change = change_number(root.get("changeNumber"), &lines, "")?;
        let mut tags: Vec<Tag> = Vec::with_capacity(items.len());
        let mut names: BTreeSet<String> = BTreeSet::new();
        for it in items {
            let name = it
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| at(it, "a tag needs a \"name\" string".to_string()))?;
            if !names.insert(name.to_ascii_lowercase()) {
                return Err(at(it, format!("tag {name:?} appears twice")));
            }
            let props = it
                .get("properties")
                .ok_or_else(|| at(it, format!("tag {name:?} has no \"properties\"")))?;
            let prefixes = match props.get("addressPrefixes").map(|p| (&p.kind, p)) {
                Some((Kind::Array(ps), _)) => {
                    let mut out = Vec::with_capacity(ps.len());
                    for p in ps {
                        out.push(
                            p.as_str()
                                .ok_or_else(|| {
                                    at(p, "an address prefix must be a string".to_string())
                                })?
                                .to_string(),
                        );
                    }
                    out
                }
                Some((_, p)) => {
                    return Err(at(p, "\"addressPrefixes\" must be a list".to_string()))
                }
                None => {
                    return Err(at(
                        props,
                        format!("tag {name:?} has no \"addressPrefixes\""),
                    ))
                }
            };
            let text_of = |k: &str| -> Result<String, TagsError> {
                match props.get(k) {
                    None => Ok(String::new()),
                    Some(v) => v
                        .as_str()
                        .map(ToString::to_string)
                        .ok_or_else(|| at(v, format!("\"{k}\" must be a string"))),
                }
            };
            tags.push(Tag {
                name: name.to_string(),
                change_number: change_number(props.get("changeNumber"), &lines, "a tag's ")?,
                region: text_of("region")?,
                system_service: text_of("systemService")?,
                prefixes,
            });
        }
        Ok(Snapshot {
            cloud,
            change_number: change,
            tags,
        })
    }

    /// The tag named `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&Tag> {
        self.tags.iter().find(|t| t.name.eq_ignore_ascii_case(name))
    }
}

/// Resolves the service tag `s` into an address group of `groups` (named as
/// the snapshot spells the tag), recording where it came from in
/// `provenance`; gives the group's name, or why it cannot be resolved. Used
/// by every importer that meets service tags (NSG, App Service).
pub(crate) fn into_group(
    snap: Option<&Snapshot>,
    s: &str,
    groups: &mut BTreeMap<String, Vec<String>>,
    provenance: &mut BTreeMap<String, J>,
) -> Result<String, String> {
    let Some(snap) = snap else {
        return Err(format!(
            "the service tag {s} needs a snapshot (--service-tags FILE.json)"
        ));
    };
    let Some(tag) = snap.get(s) else {
        return Err(format!(
            "{s} is not a tag of the service tags snapshot (changeNumber {})",
            snap.change_number
        ));
    };
    if tag.prefixes.is_empty() {
        return Err(format!(
            "the service tag {} has no address prefixes in the snapshot",
            tag.name
        ));
    }
    if !groups.contains_key(&tag.name) {
        groups.insert(tag.name.clone(), tag.prefixes.clone());
        let mut st = J::obj().with("tag", J::s(&tag.name));
        if !snap.cloud.is_empty() {
            st.push("cloud", J::s(&snap.cloud));
        }
        if !tag.change_number.is_empty() {
            st.push("change_number", J::s(&tag.change_number));
        }
        if !snap.change_number.is_empty() {
            st.push("snapshot_change_number", J::s(&snap.change_number));
        }
        let or_unknown = |s: &str| {
            if s.is_empty() {
                "unknown".to_string()
            } else {
                s.to_string()
            }
        };
        let d = format!(
            "Azure service tag {} ({} prefixes), cloud {}, tag changeNumber {}, snapshot changeNumber {}",
            tag.name,
            tag.prefixes.len(),
            or_unknown(&snap.cloud),
            or_unknown(&tag.change_number),
            or_unknown(&snap.change_number),
        );
        provenance.insert(
            tag.name.clone(),
            J::obj()
                .with("description", J::Str(d))
                .with("service_tag", st),
        );
    }
    Ok(tag.name.clone())
}

/// How one imported group differs from a newer snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Drift {
    /// The address group in the policy.
    pub group: String,
    /// The service tag it was built from.
    pub tag: String,
    /// The tag's change number recorded in the policy.
    pub recorded_change_number: String,
    /// The tag's change number in the newer snapshot (empty if it is gone).
    pub snapshot_change_number: String,
    /// Prefixes in the snapshot's tag that the group lacks.
    pub gained: Vec<String>,
    /// Prefixes in the group that the snapshot's tag no longer has.
    pub lost: Vec<String>,
    /// The tag is not in the newer snapshot at all (every prefix is lost).
    pub missing: bool,
}

/// Compares every address group that `provenance` says was built from a
/// service tag with that tag in `newer`. Groups that did not change are
/// listed too, with empty `gained` and `lost`.
pub fn drift(policy_text: &str, newer: &Snapshot) -> Result<Vec<Drift>, String> {
    let doc = json::parse(policy_text).map_err(|e| {
        let (l, c) = json::line_col(policy_text, e.offset);
        format!("{l}:{c}: {}", e.message)
    })?;
    let groups = doc.get("address_groups");
    let mut out = Vec::new();
    let Some(Value {
        kind: Kind::Object(recorded),
        ..
    }) = doc.get("provenance").and_then(|p| p.get("address_groups"))
    else {
        return Ok(out);
    };
    for m in recorded {
        let Some(st) = m.value.get("service_tag") else {
            continue;
        };
        let tag = st
            .get("tag")
            .and_then(Value::as_str)
            .unwrap_or(&m.key)
            .to_string();
        let old: Vec<String> = match groups.and_then(|g| g.get(&m.key)).map(|v| &v.kind) {
            Some(Kind::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(ToString::to_string)
                .collect(),
            _ => {
                return Err(format!(
                    "provenance names group {:?}, which address_groups does not hold",
                    m.key
                ))
            }
        };
        let recorded_change_number = st
            .get("change_number")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (new, snap_change, missing) = match newer.get(&tag) {
            Some(t) => (t.prefixes.clone(), t.change_number.clone(), false),
            None => (Vec::new(), String::new(), true),
        };
        let old_set: BTreeSet<&str> = old.iter().map(String::as_str).collect();
        let new_set: BTreeSet<&str> = new.iter().map(String::as_str).collect();
        out.push(Drift {
            group: m.key.clone(),
            tag,
            recorded_change_number,
            snapshot_change_number: snap_change,
            gained: new
                .iter()
                .filter(|p| !old_set.contains(p.as_str()))
                .cloned()
                .collect(),
            lost: old
                .iter()
                .filter(|p| !new_set.contains(p.as_str()))
                .cloned()
                .collect(),
            missing,
        });
    }
    Ok(out)
}

impl fmt::Display for Drift {
    /// `group (tag T, changeNumber A -> B): +N -M` and one line per prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or = |s: &str| if s.is_empty() { "?" } else { s }.to_string();
        if self.missing {
            write!(
                f,
                "{}: service tag {} is not in the newer snapshot: all {} prefixes lost",
                self.group,
                self.tag,
                self.lost.len()
            )?;
        } else if self.gained.is_empty() && self.lost.is_empty() {
            return write!(
                f,
                "{}: service tag {} unchanged (changeNumber {} -> {})",
                self.group,
                self.tag,
                or(&self.recorded_change_number),
                or(&self.snapshot_change_number)
            );
        } else {
            write!(
                f,
                "{}: service tag {} changed (changeNumber {} -> {}): {} gained, {} lost",
                self.group,
                self.tag,
                or(&self.recorded_change_number),
                or(&self.snapshot_change_number),
                self.gained.len(),
                self.lost.len()
            )?;
        }
        for p in &self.gained {
            write!(f, "\n  + {p}")?;
        }
        for p in &self.lost {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWNLOAD: &str = r#"{"changeNumber": 330, "cloud": "Public", "values": [
      {"name": "ApiManagement.WestEurope", "id": "ApiManagement.WestEurope",
       "properties": {"changeNumber": 5, "region": "westeurope", "regionId": 18, "platform": "Azure",
         "systemService": "AzureApiManagement", "addressPrefixes": ["13.69.64.76/31", "2603:1020:206::140/123"],
         "networkFeatures": ["API", "NSG"]}}]}"#;

    #[test]
    fn reads_both_shapes() {
        let a = Snapshot::parse(DOWNLOAD).unwrap();
        assert_eq!(
            (a.cloud.as_str(), a.change_number.as_str()),
            ("Public", "330")
        );
        let t = a.get("APIMANAGEMENT.westeurope").unwrap();
        assert_eq!(
            (t.change_number.as_str(), t.region.as_str()),
            ("5", "westeurope")
        );
        assert_eq!(t.prefixes.len(), 2);
        let api = r#"{"name": "Public", "id": "/subscriptions/x/providers/Microsoft.Network/serviceTags/Public",
          "type": "Microsoft.Network/serviceTags", "changeNumber": "331", "cloud": "Public",
          "values": [{"name": "AzureFrontDoor.Backend", "id": "AzureFrontDoor.Backend", "serviceTagChangeNumber": "9",
            "properties": {"changeNumber": "9", "region": "", "state": "GA", "systemService": "AzureFrontDoor",
              "addressPrefixes": ["147.243.0.0/16"]}}], "nextLink": ""}"#;
        let b = Snapshot::parse(api).unwrap();
        assert_eq!(b.change_number, "331");
        assert_eq!(b.get("AzureFrontDoor.Backend").unwrap().change_number, "9");
    }

    #[test]
    fn bad_files_say_where() {
        for (t, line) in [
            ("{\"values\": [\n{\"name\": 1}]}", 2),
            ("{\"values\": 3}", 1),
            ("{\"changeNumber\": 1.5, \"values\": []}", 1),
            ("{\"values\": [{\"name\": \"a\", \"properties\": {}}]}", 1),
            ("{\"values\": [\n{\"name\": \"a\", \"properties\": {\"addressPrefixes\": []}},\n {\"name\": \"A\", \"properties\": {\"addressPrefixes\": []}}]}", 3),
            ("[]", 1),
            ("{\n  \"values\": [,]}", 2),
        ] {
            let e = Snapshot::parse(t).unwrap_err();
            assert_eq!(e.line, line, "{t}: {e}");
        }
    }

    #[test]
    fn drift_lists_gained_and_lost() {
        let policy = r#"{"name": "p", "address_groups": {"ApiManagement.WestEurope": ["13.69.64.76/31", "10.9.9.0/24"]},
          "provenance": {"address_groups": {"ApiManagement.WestEurope": {"service_tag": {"tag": "ApiManagement.WestEurope", "change_number": "4"}}}}}"#;
        let snap = Snapshot::parse(DOWNLOAD).unwrap();
        let d = drift(policy, &snap).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].gained, ["2603:1020:206::140/123"]);
        assert_eq!(d[0].lost, ["10.9.9.0/24"]);
        assert_eq!(
            (
                d[0].recorded_change_number.as_str(),
                d[0].snapshot_change_number.as_str()
            ),
            ("4", "5")
        );
        let empty = Snapshot::parse(r#"{"values": []}"#).unwrap();
        let d = drift(policy, &empty).unwrap();
        assert!(d[0].missing && d[0].lost.len() == 2 && d[0].gained.is_empty());
    }
}
