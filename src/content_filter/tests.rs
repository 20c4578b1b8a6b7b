use serde_json::{Value, json};

use super::*;

/// An event object as delivered.
fn event() -> Value {
    json!({
        "id": "evt_1",
        "object": "event",
        "type": "invoice.paid",
        "livemode": false,
        "created": 1796600000,
        "data": {
            "id": "in_1",
            "amount": 1500,
            "currency": "eur",
            "customer": {"email": "ada@example.com", "tier": "gold", "country": null},
            "tags": ["vip", "eu"],
            "items": [{"sku": "a-1", "qty": 2}, {"sku": "b-7", "qty": 1}],
            "note": "Paid by card"
        }
    })
}

fn filter(source: Value) -> ContentFilter {
    ContentFilter::new(source.clone(), "filter").unwrap_or_else(|e| panic!("{source}: {e}"))
}

fn check(cases: &[(Value, bool)]) {
    let event = event();
    for (source, expected) in cases {
        assert_eq!(filter(source.clone()).matches(&event), *expected, "{source}");
    }
}

#[test]
fn objects_are_and_scalars_are_equality_and_paths_nest_or_dot() {
    check(&[
        (json!({}), true),
        (json!({"type": "invoice.paid"}), true),
        (json!({"type": "invoice.failed"}), false),
        (json!({"data": {"currency": "eur", "amount": 1500}}), true),
        (json!({"data": {"currency": "eur", "amount": 1}}), false),
        (json!({"data.customer.tier": "gold"}), true),
        (json!({"data": {"customer.tier": "gold"}}), true),
        (json!({"livemode": false}), true),
        (json!({"data.customer.country": null}), true),
        // Strict types: a string is not a number.
        (json!({"data.amount": "1500"}), false),
        (json!({"data.amount": 1500.0}), true),
        // Missing fails.
        (json!({"data.refund": 0}), false),
    ]);
}

#[test]
fn the_operators_compare_as_documented() {
    check(&[
        (json!({"data.amount": {"$gt": 1000}}), true),
        (json!({"data.amount": {"$gte": 1500, "$lt": 2000}}), true),
        (json!({"data.amount": {"$lte": 1499}}), false),
        (json!({"data.currency": {"$gt": "abc"}}), true),
        (json!({"data.amount": {"$gt": "1000"}}), false),
        (json!({"data.currency": {"$neq": "usd"}}), true),
        (json!({"data.refund": {"$neq": "usd"}}), false),
        (json!({"data.currency": {"$in": ["usd", "eur"]}}), true),
        (json!({"data.currency": {"$nin": ["usd", "eur"]}}), false),
        (json!({"data.note": {"$in": "card"}}), true),
        (json!({"data.refund": {"$exist": false}}), true),
        (json!({"data.customer": {"$exist": true}}), true),
        (json!({"data.customer.country": {"$exist": true}}), true),
        (json!({"data.note": {"$regex": "^Paid by (card|transfer)$"}}), true),
        (json!({"data.amount": {"$regex": "15"}}), false),
        (json!({"data.customer.email": {"$endsWith": ["@example.com", "@example.org"]}}), true),
        (json!({"type": {"$startsWith": "invoice."}}), true),
        (json!({"type": {"$startsWith": "charge."}}), false),
    ]);
}

#[test]
fn arrays_hold_contain_and_match_an_element_whole() {
    check(&[
        (json!({"data.tags": "vip"}), true),
        (json!({"data.tags": ["eu", "vip"]}), true),
        (json!({"data.tags": ["eu", "us"]}), false),
        (json!({"data.tags": {"$in": ["us", "vip"]}}), true),
        (json!({"data.tags": {"$nin": ["us", "vip"]}}), false),
        (json!({"data.tags": {"$in": "vip"}}), true),
        (json!({"data.items": {"sku": "b-7"}}), true),
        (json!({"data.items": {"sku": "b-7", "qty": 1}}), true),
        // One element must match the whole nested filter.
        (json!({"data.items": {"sku": "b-7", "qty": 2}}), false),
        (json!({"data.items.sku": "a-1"}), true),
        (json!({"data.items.1.sku": "b-7"}), true),
        (json!({"data.items.0.sku": "b-7"}), false),
        (json!({"data.items.$.qty": {"$gte": 2}}), true),
    ]);
}

#[test]
fn and_or_not_work_at_any_level() {
    check(&[
        (json!({"$or": [{"type": "invoice.failed"}, {"data.amount": {"$gt": 1000}}]}), true),
        (json!({"$and": [{"type": "invoice.paid"}, {"data.currency": "usd"}]}), false),
        (json!({"data": {"$or": [{"currency": "usd"}, {"customer.tier": "gold"}]}}), true),
        (json!({"data.currency": {"$or": ["usd", "gbp"]}}), false),
        (json!({"data.currency": {"$or": ["eur", "gbp"]}}), true),
        (json!({"$not": {"type": "invoice.failed"}}), true),
        (json!({"data.customer": {"$not": {"tier": "gold"}}}), false),
        (json!({"data.tags": {"$not": "vip"}}), false),
        (json!({"data.refund": {"$not": {"$exist": true}}}), true),
    ]);
}

#[test]
fn a_negation_over_an_array_means_no_element_and_never_agrees_with_what_it_negates() {
    check(&[
        (json!({"data.items": {"sku": "a-1"}}), true),
        (json!({"data.items": {"$not": {"sku": "a-1"}}}), false),
        (json!({"data.items": {"$not": {"sku": "z-9"}}}), true),
        (json!({"data.items.sku": {"$not": "a-1"}}), false),
        (json!({"data.items.sku": {"$neq": "a-1"}}), false),
        (json!({"data.items.sku": {"$neq": "z-9"}}), true),
        (json!({"data.items.sku": {"$nin": ["banned", "b-7"]}}), false),
        (json!({"data.items.sku": {"$nin": ["banned"]}}), true),
        (json!({"data.items.sku": {"$nin": ["banned"], "$neq": "a-1"}}), false),
        (json!({"data.tags": {"$neq": "vip"}}), false),
        (json!({"data.tags": {"$nin": "eu"}}), false),
        // Still "present": a missing value is neither equal nor unequal.
        (json!({"data.items.colour": {"$neq": "red"}}), false),
    ]);
    // Every filter and its `$not` disagree, whatever the arrays.
    let event = event();
    for source in [
        json!({"data.items": {"sku": "b-7", "qty": 1}}),
        json!({"data.items.qty": {"$gte": 2}}),
        json!({"data.tags": {"$in": ["vip"]}}),
        json!({"data.items.$.sku": {"$startsWith": "b"}}),
    ] {
        let negated = json!({"$not": source.clone()});
        assert_ne!(filter(source.clone()).matches(&event), filter(negated).matches(&event), "{source}");
    }
}

#[test]
fn convoys_and_outposts_own_examples_are_taken_unchanged() {
    // Convoy's documented body filters, with stile's event object as the root.
    check(&[
        (json!({"data": {"amount": {"$gte": 1000}, "customer.tier": {"$in": ["gold", "silver"]}}}), true),
        (json!({"$or": [{"data.currency": "eur"}, {"data.currency": "gbp"}]}), true),
        (json!({"data.note": {"$regex": "card"}}), true),
        (json!({"data.items.$.sku": "b-7"}), true),
    ]);
    // Outpost's, on `data`.
    check(&[
        (json!({"data": {"customer": {"email": {"$endsWith": "@example.com"}}}}), true),
        (json!({"data": {"tags": {"$in": ["vip"]}, "amount": {"$gt": 100}}}), true),
        (json!({"$not": {"data": {"currency": "usd"}}}), true),
        (json!({"data": {"customer": {"tier": {"$exist": true}}}}), true),
    ]);
}

#[test]
fn a_bad_filter_is_refused_with_the_path_of_what_is_wrong() {
    let refused = |source: Value| ContentFilter::new(source, "filter").unwrap_err();
    let e = refused(json!({"data": {"amount": {"$gtx": 5}}}));
    assert_eq!(e.path, "filter.data.amount.$gtx");
    assert!(e.message.contains("unknown operator `$gtx`") && e.message.contains("$startsWith"), "{e}");
    let e = refused(json!({"data.x": {"$exists": true}}));
    assert!(e.message.contains("did you mean `$exist`"), "{e}");
    assert_eq!(refused(json!({"$or": []})).path, "filter.$or");
    assert_eq!(refused(json!({"$or": [{"a": 1}, {"b": {"$in": 5}}]})).path, "filter.$or[1].b.$in");
    assert_eq!(refused(json!({"a": {"$gt": true}})).path, "filter.a.$gt");
    assert_eq!(refused(json!({"a": {"$exist": "yes"}})).path, "filter.a.$exist");
    let e = refused(json!({"a": {"$regex": "(unclosed"}}));
    assert!(e.path == "filter.a.$regex" && e.message.contains("does not compile"), "{e}");
    assert!(refused(json!({"a": {"$regex": "a{1000}{1000}"}})).message.contains("does not compile"));
    assert_eq!(refused(json!({"a..b": 1})).path, "filter.a..b");
    let long = vec!["a"; 100_000].join(".");
    assert!(refused(json!({ long: 1 })).message.contains("at most 32 segments"));
    let many: serde_json::Map<String, Value> = (0..11).map(|i| (format!("k{i}"), json!({"$regex": "x"}))).collect();
    assert!(refused(Value::Object(many)).message.contains("at most 10 `$regex`"));
    assert!(refused(json!({"a": {"$regex": "x".repeat(1025)}})).message.contains("at most 1024 bytes"));
    assert_eq!(refused(json!(["not", "an", "object"])).path, "filter");
    let mut deep = json!(1);
    for _ in 0..20 {
        deep = json!({"a": deep});
    }
    assert!(refused(deep).message.contains("nests at most"));
    let wide: serde_json::Map<String, Value> = (0..1001).map(|i| (format!("k{i}"), json!(i))).collect();
    assert!(refused(Value::Object(wide)).message.contains("at most 1000 conditions"));
}

#[test]
fn it_is_stored_as_written_and_read_back_compiled() {
    let source = json!({"data.amount": {"$gt": 1000}, "type": "invoice.paid"});
    let written = serde_json::to_string(&filter(source.clone())).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&written).unwrap(), source);
    let read: ContentFilter = serde_json::from_str(&written).unwrap();
    assert!(read.matches(&event()));
    assert_eq!(read, filter(source));
    assert!(serde_json::from_str::<ContentFilter>(r#"{"a": {"$bad": 1}}"#).is_err());
}
