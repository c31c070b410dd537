//! Properties of the plugin-configuration parser: arbitrary bytes and JSON never panic, every
//! error names a field or says why, and valid configurations survive a serialize/parse round trip
//! with the same decisions.
//!
//! Only `Config::parse` and the public `Config` fields are used; no decision logic lives here.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};

use super::arb;
use crate::auth::Credentials;
use crate::config::FIELDS;
use crate::decision::decide;
use crate::{Config, ConfigError};

/// Keys seen at any depth besides the top-level fields: their members and a few unknown ones.
const MEMBER_KEYS: &[&str] = &[
    "token",
    "basic",
    "username",
    "password",
    "shared_data_key",
    "user",
    "groups",
    "uid",
    "extra",
    "accept_host",
    "",
];

/// The fields and [`MEMBER_KEYS`].
fn keys() -> Vec<&'static str> {
    FIELDS.iter().chain(MEMBER_KEYS).copied().collect()
}

/// Strings that matter to the validation: prefixes, regexes good and bad, control characters.
const STRINGS: &[&str] = &[
    "/", "/api", "api", "/a//b", "/./", "/x?y", "/{x}", "", "^.*", "(bad", r"\p{L}", "(?x) a",
    r"\<", "(?i)é", "a{", "[a[b]]", "TOK", "a\nb", "\t", "%zz", "/k8s/%2F", "é", "\u{0}",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        select(STRINGS).prop_map(Value::from),
        "\\PC{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(select(keys()), inner, 0..4).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// An object with (mostly) known fields and arbitrary values.
fn config_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(select(keys()), json_value(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// The error names a field (its message starts with it) or says what is wrong with the input.
fn check_error(input: &[u8], e: &ConfigError) -> Result<(), String> {
    let msg = e.to_string();
    let top = |field: &str| {
        field
            .split(['.', '['])
            .next()
            .is_some_and(|f| FIELDS.contains(&f))
    };
    let object = serde_json::from_slice::<Value>(input).is_ok_and(|v| v.is_object());
    let ok = match e {
        ConfigError::Json(m) => !m.is_empty() && (!object || m.contains("duplicate field")),
        ConfigError::NotAnObject => !object,
        ConfigError::UnknownField(name) => !FIELDS.contains(&name.as_str()),
        ConfigError::Field { field, message } => top(field) && !message.is_empty(),
        ConfigError::Pattern { field, .. } => top(field),
    };
    let named = match e {
        ConfigError::UnknownField(f) | ConfigError::Field { field: f, .. } => msg.starts_with(f),
        ConfigError::Pattern { field, .. } => msg.starts_with(field),
        ConfigError::Json(_) | ConfigError::NotAnObject => true,
    };
    if ok && named {
        Ok(())
    } else {
        Err(format!("{e:?} / {msg:?}"))
    }
}

fn list(l: &crate::pattern::PatternList) -> Vec<&str> {
    l.sources().collect()
}

/// The configuration back as JSON, from the validated fields only.
fn reserialize(c: &Config) -> Value {
    let mut map = Map::new();
    map.insert("api_prefix".into(), json!(c.api_prefix));
    map.insert("static_prefix".into(), json!(c.static_prefix));
    map.insert("accept_paths".into(), json!(list(&c.accept_paths)));
    map.insert("reject_paths".into(), json!(list(&c.reject_paths)));
    map.insert("accept_hosts".into(), json!(list(&c.accept_hosts)));
    map.insert("reject_methods".into(), json!(list(&c.reject_methods)));
    map.insert("disable_filter".into(), json!(c.disable_filter));
    map.insert("server_path".into(), json!(c.server_path));
    map.insert("verbosity".into(), json!(c.verbosity));
    map.insert("service_proxy".into(), json!(c.service_proxy.as_str()));
    map.insert("cluster_domain".into(), json!(c.cluster_domain));
    map.insert(
        "service_cache_ttl_seconds".into(),
        json!(c.service_cache_ttl_seconds),
    );
    map.insert("apiserver_cluster".into(), json!(c.apiserver_cluster));
    map.insert(
        "cross_site_protection".into(),
        json!(c.cross_site_protection),
    );
    if let Some(creds) = &c.credentials {
        let mut v = match &creds.static_credentials {
            Some(Credentials::Token(t)) => json!({ "token": t }),
            Some(Credentials::Basic { username, password }) => {
                json!({"basic": {"username": username, "password": password}})
            }
            None => json!({}),
        };
        if let (Some(key), Some(obj)) = (&creds.shared_data_key, v.as_object_mut()) {
            obj.insert("shared_data_key".into(), json!(key));
        }
        map.insert("credentials".into(), v);
    }
    if let Some(imp) = &c.impersonate {
        map.insert(
            "impersonate".into(),
            json!({"user": imp.user, "groups": imp.groups, "uid": imp.uid, "extra": imp.extra}),
        );
    }
    Value::Object(map)
}

proptest! {
    #![proptest_config(super::runner(super::DEFAULT_CASES))]

    /// Arbitrary bytes, and mangled valid JSON, never panic; errors say why.
    #[test]
    fn config_parse_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        spec in arb::spec(),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let mut inputs = vec![bytes];
        let json = spec.json().into_bytes();
        inputs.push(json[..cut.index(json.len() + 1)].to_vec());
        let mut flipped = json.clone();
        let i = flip.0.index(flipped.len());
        flipped[i] ^= flip.1;
        inputs.push(flipped);
        for input in &inputs {
            if let Err(e) = Config::parse(input) {
                prop_assert!(check_error(input, &e).is_ok(), "{:?}: {:?}", String::from_utf8_lossy(input), check_error(input, &e));
            }
        }
    }

    /// Arbitrary JSON values and objects never panic; an object's error names a field.
    #[test]
    fn config_parse_arbitrary_json(value in json_value(), object in config_object()) {
        for v in [&value, &object] {
            let input = v.to_string().into_bytes();
            if let Err(e) = Config::parse(&input) {
                prop_assert!(check_error(&input, &e).is_ok(), "{}: {:?}", v, check_error(&input, &e));
            }
        }
    }

    /// A valid configuration keeps its meaning through serialize → parse.
    #[test]
    fn config_round_trip(spec in arb::spec(), heads in prop::collection::vec(arb::head(), 1..4)) {
        let first = spec.config();
        // The normalised values are the generated ones.
        prop_assert_eq!(&first.api_prefix, &spec.api_prefix());
        prop_assert_eq!(&first.static_prefix, &spec.static_prefix());
        prop_assert_eq!(&first.server_path, &spec.server_path());
        prop_assert_eq!(first.accept_paths.sources().collect::<Vec<_>>(), spec.accept_paths());
        prop_assert_eq!(first.reject_methods.sources().collect::<Vec<_>>(), spec.reject_methods());
        let json = reserialize(&first);
        let pretty = serde_json::to_string_pretty(&json).expect("serialize");
        let second = Config::parse(pretty.as_bytes());
        prop_assert!(second.is_ok(), "{}: {:?}", pretty, second.err());
        let second = second.expect("checked");
        prop_assert_eq!(reserialize(&second), json);
        for head in &heads {
            prop_assert_eq!(decide(&first, head), decide(&second, head), "{:?}", head);
        }
    }
}
