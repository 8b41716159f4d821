use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{Delegations, SuccinctRoles, canonical, pattern};

#[test]
fn canonical_json_matches_securesystemslib() {
    let v = json!({"b": [1, "x\"y\\z", null, true], "a": {"é": -3, "A": "line\nbreak"}});
    assert_eq!(
        String::from_utf8(canonical::to_vec(&v).unwrap()).unwrap(),
        "{\"a\":{\"A\":\"line\nbreak\",\"é\":-3},\"b\":[1,\"x\\\"y\\\\z\",null,true]}"
    );
    assert!(canonical::to_vec(&json!({"f": 1.5})).is_err());
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|i| json!(i)),
        "\\PC*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("\\PC*", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Canonical JSON is valid JSON that parses back to the same value.
    #[test]
    fn canonical_round_trips(v in json_value()) {
        let bytes = canonical::to_vec(&v).unwrap();
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(back, v);
    }

    /// The canonical form does not depend on how the input was formatted or ordered.
    #[test]
    fn canonical_is_independent_of_formatting(v in json_value()) {
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        let reparsed: Value = serde_json::from_slice(&pretty).unwrap();
        prop_assert_eq!(canonical::to_vec(&reparsed).unwrap(), canonical::to_vec(&v).unwrap());
    }

    /// Canonical output has no whitespace outside strings.
    #[test]
    fn canonical_has_no_insignificant_whitespace(v in json_value()) {
        let bytes = canonical::to_vec(&v).unwrap();
        let mut in_string = false;
        let mut escaped = false;
        for b in bytes {
            if in_string {
                if escaped { escaped = false } else if b == b'\\' { escaped = true } else if b == b'"' { in_string = false }
            } else {
                prop_assert!(!b" \n\t\r".contains(&b));
                if b == b'"' { in_string = true }
            }
        }
    }

    /// The text canonicaliser (the client's hot path) agrees with the tree canonicaliser on any
    /// document, however it is formatted or escaped.
    #[test]
    fn text_and_tree_canonical_forms_agree(v in json_value()) {
        let tree = canonical::to_vec(&v).unwrap();
        let compact = serde_json::to_string(&v).unwrap();
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        prop_assert_eq!(&canonical::from_json_text(&compact).unwrap(), &tree);
        prop_assert_eq!(&canonical::from_json_text(&pretty).unwrap(), &tree);
        prop_assert_eq!(&canonical::from_json_text(&ascii_escaped(&compact)).unwrap(), &tree);
    }

    /// Every target lands in exactly one bin and the bin's name is recognised as a bin.
    #[test]
    fn hash_bins_cover_every_path(path in "\\PC{1,40}", bits in 1u32..=16) {
        let s = succinct(bits);
        let name = s.role_for_target(&path);
        prop_assert!(s.is_bin(&name));
    }
}

fn succinct(bit_length: u32) -> SuccinctRoles {
    SuccinctRoles {
        keyids: vec![],
        threshold: 1,
        bit_length,
        name_prefix: "bins".into(),
        unrecognized: Default::default(),
    }
}

#[test]
fn hash_bin_names_follow_tap15() {
    let s = succinct(8);
    assert_eq!(s.bin_name(0), "bins-00");
    assert_eq!(s.bin_name(255), "bins-ff");
    assert!(!s.is_bin("bins-100"));
    assert!(!s.is_bin("bins-FF"));
    assert!(!s.is_bin("other-00"));
    // python-tuf's example: bit_length 3 gives one hex digit.
    assert_eq!(succinct(3).bin_name(7), "bins-7");
    let d = Delegations {
        keys: Default::default(),
        roles: None,
        succinct_roles: Some(s),
        unrecognized: Default::default(),
    };
    let roles = d.roles_for_target("firmware/pump-1.2.bin");
    assert_eq!(roles.len(), 1);
    assert!(roles[0].1, "hash bins are terminating");
}

#[test]
fn path_patterns_match_like_fnmatch_per_segment() {
    assert!(pattern::matches("firmware/*.bin", "firmware/pump.bin"));
    assert!(!pattern::matches("firmware/*.bin", "firmware/sub/pump.bin"));
    assert!(!pattern::matches("*", "a/b"));
    assert!(pattern::matches("*/*", "a/b"));
    assert!(pattern::matches("file?.txt", "file1.txt"));
    assert!(!pattern::matches("file?.txt", "file10.txt"));
    assert!(pattern::matches("v[0-9].img", "v7.img"));
    assert!(!pattern::matches("v[!0-9].img", "v7.img"));
    assert!(pattern::matches("v[!0-9].img", "vx.img"));
    assert!(pattern::matches("a[.txt", "a[.txt"));
    assert!(pattern::matches("", ""));
    assert!(pattern::matches("*a*b*c", "xxaxxbxxc"));
    assert!(!pattern::matches("*a*b*c", "xxaxxbxx"));
    assert!(pattern::matches("a*", "a"));
    assert!(pattern::matches("[]]x", "]x"));
    assert!(pattern::matches("[!]]x", "ax"));
    // Regression (path_pattern fuzz target): many stars against a long non-matching text must
    // not take exponential time.
    let stars = "*a".repeat(40) + "b";
    let text = "a".repeat(200);
    assert!(!pattern::matches(&stars, &text));
    assert!(!pattern::matches("", "a"));
}

/// Escapes every non-ASCII character as `\uXXXX` (surrogate pairs above U+FFFF), as Python's
/// `json.dumps(ensure_ascii=True)` does.
fn ascii_escaped(json: &str) -> String {
    let mut out = String::new();
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[test]
fn text_canonicaliser_refuses_what_canonical_json_cannot_say() {
    for bad in [
        "{\"a\":1,\"a\":2}",
        "1.5",
        "1e3",
        "18446744073709551616",
        "-9223372036854775809",
        "01",
        "\"\\ud800\"",
        "\"tab\there\"",
        "[1,]",
        "{} x",
        &"[".repeat(200),
    ] {
        assert!(canonical::from_json_text(bad).is_err(), "{bad}");
    }
    // serde_json (the typed parser) reads -0 as a float; the text canonicaliser agrees and refuses
    // it (found by the metadata_parse fuzz target).
    assert!(canonical::from_json_text("-0").is_err());
    assert!(canonical::to_vec(&serde_json::from_str("-0").unwrap()).is_err());
    assert_eq!(
        canonical::from_json_text(" { \"b\" : [ 1 , -2 ] , \"a\" : \"\\u00e9\\n\\/\" } ").unwrap(),
        "{\"a\":\"é\n/\",\"b\":[1,-2]}".as_bytes()
    );
}

/// The textbook recursive matcher (exponential, fine for short inputs), as a reference.
fn reference_fnmatch(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => (0..=t.len()).any(|i| reference_fnmatch(rest, &t[i..])),
        Some(('?', rest)) => !t.is_empty() && reference_fnmatch(rest, &t[1..]),
        Some(('[', rest)) => {
            let (neg, body) = match rest.split_first() {
                Some(('!', b)) => (true, b),
                _ => (false, rest),
            };
            let start = usize::from(body.first() == Some(&']'));
            match body.iter().skip(start).position(|c| *c == ']') {
                Some(end) => {
                    let end = end + start;
                    let items = &body[..end];
                    let hit = |c: char| {
                        let mut i = 0;
                        while i < items.len() {
                            if i + 2 < items.len() && items[i + 1] == '-' {
                                if items[i] <= c && c <= items[i + 2] {
                                    return true;
                                }
                                i += 3;
                            } else {
                                if items[i] == c {
                                    return true;
                                }
                                i += 1;
                            }
                        }
                        false
                    };
                    !t.is_empty()
                        && hit(t[0]) != neg
                        && reference_fnmatch(&body[end + 1..], &t[1..])
                }
                None => t.first() == Some(&'[') && reference_fnmatch(rest, &t[1..]),
            }
        }
        Some((c, rest)) => t.first() == Some(c) && reference_fnmatch(rest, &t[1..]),
    }
}

proptest! {
    /// The linear-time matcher agrees with the textbook one.
    #[test]
    fn path_matcher_agrees_with_reference(p in "[ab*?\\[\\]!-]{0,8}", t in "[ab\\[\\]!-]{0,8}") {
        let pc: Vec<char> = p.chars().collect();
        let tc: Vec<char> = t.chars().collect();
        prop_assert_eq!(pattern::matches(&p, &t), reference_fnmatch(&pc, &tc), "{} vs {}", p, t);
    }
}
