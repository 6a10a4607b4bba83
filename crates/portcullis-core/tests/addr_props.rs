//! The hand-written IPv4 path of `addr::parse_literal_into` against the
//! general `addr::parse_literal`: the same interval or the same problem for
//! every input, canonical or not.

use portcullis_core::addr::{parse_literal, parse_literal_into, AddrSet};
use proptest::prelude::*;

fn octet() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..=255).prop_map(|n| n.to_string()),
        Just("256".to_string()),
        Just("00".to_string()),
        Just("01".to_string()),
        Just("0255".to_string()),
        Just(String::new()),
        "[0-9]{1,4}",
    ]
}

fn literal() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just(String::new()),
        (0u32..=33).prop_map(|l| format!("/{l}")),
        Just("/08".to_string()),
        Just("/".to_string()),
        Just("/+8".to_string()),
        Just("/100".to_string()),
        "/[0-9]{1,3}",
    ];
    prop_oneof![
        (proptest::collection::vec(octet(), 3..=5), prefix)
            .prop_map(|(o, p)| format!("{}{p}", o.join("."))),
        "[0-9./:a-f%-]{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_agrees(s in literal()) {
        let mut set = AddrSet::default();
        let fast = parse_literal_into(&s, &mut set).map(|()| set);
        prop_assert_eq!(fast, parse_literal(&s), "{}", s);
    }
}

#[test]
fn masks_and_bounds() {
    for (s, lo, hi) in [
        ("0.0.0.0/0", 0, u32::MAX),
        ("255.255.255.255", u32::MAX, u32::MAX),
        ("10.0.0.0/8", 0x0a00_0000, 0x0aff_ffff),
        ("192.168.1.128/25", 0xc0a8_0180, 0xc0a8_01ff),
    ] {
        let mut set = AddrSet::default();
        parse_literal_into(s, &mut set).unwrap();
        assert_eq!(set.v4, [(lo, hi)], "{s}");
    }
    let mut set = AddrSet::default();
    assert!(parse_literal_into("10.1.0.0/8", &mut set).is_err());
    assert!(set.is_empty(), "nothing added on a problem");
}
