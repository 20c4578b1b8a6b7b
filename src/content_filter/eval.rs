//! A compiled filter run against an event.

use std::cmp::Ordering;

use serde_json::Value;

use super::compile::{Cond, Order, Seg, Test};

/// Whether `cond` holds of `value` (`None`: there is no value there).
pub(super) fn holds(cond: &Cond, value: Option<&Value>) -> bool {
    match cond {
        Cond::All(conds) => conds.iter().all(|c| holds(c, value)),
        Cond::Any(conds) => conds.iter().any(|c| holds(c, value)),
        Cond::Not(cond) => !holds(cond, value),
        Cond::At(path, cond) => {
            let mut found = Vec::new();
            if let Some(value) = value {
                resolve(value, path, &mut found);
            }
            if found.is_empty() {
                return holds(cond, None);
            }
            found.into_iter().any(|v| match v {
                // A nested filter on an array of objects: one element must match it whole.
                Value::Array(items) if !matches!(**cond, Cond::Test(_)) && is_of_objects(items) => {
                    items.iter().any(|item| holds(cond, Some(item)))
                }
                v => holds(cond, Some(v)),
            })
        }
        Cond::Test(test) => passes(test, value),
    }
}

/// Whether `items` is a non-empty array of objects.
fn is_of_objects(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(Value::is_object)
}

/// The values at `path` from `value`: where a key meets an array, each element's.
fn resolve<'v>(value: &'v Value, path: &[Seg], found: &mut Vec<&'v Value>) {
    let Some((first, rest)) = path.split_first() else {
        found.push(value);
        return;
    };
    match (first, value) {
        (Seg::Key(key) | Seg::Index(_, key), Value::Object(object)) => {
            if let Some(next) = object.get(key) {
                resolve(next, rest, found);
            }
        }
        (Seg::Index(index, _), Value::Array(items)) => {
            if let Some(next) = items.get(*index) {
                resolve(next, rest, found);
            }
        }
        (Seg::Key(_), Value::Array(items)) => {
            for item in items.iter().filter(|item| item.is_object()) {
                resolve(item, path, found);
            }
        }
        (Seg::Each, Value::Array(items)) => {
            for item in items {
                resolve(item, rest, found);
            }
        }
        _ => {}
    }
}

/// Whether `value` passes `test`.
fn passes(test: &Test, value: Option<&Value>) -> bool {
    let Some(value) = value else {
        return matches!(test, Test::Exist(false));
    };
    match test {
        Test::Eq(wanted) => equal_or_holds(value, wanted),
        Test::Neq(unwanted) => !equal_or_holds(value, unwanted),
        Test::Compare(order, bound) => compare(value, bound).is_some_and(|o| match order {
            Order::Greater => o == Ordering::Greater,
            Order::GreaterOrEqual => o != Ordering::Less,
            Order::Less => o == Ordering::Less,
            Order::LessOrEqual => o != Ordering::Greater,
        }),
        Test::In(options) => one_of(value, options),
        Test::Nin(options) => !one_of(value, options),
        Test::Contains(text) => contains(value, text),
        Test::NotContains(text) => !contains(value, text),
        Test::Exist(present) => *present,
        Test::Regex(regex) => value.as_str().is_some_and(|s| regex.is_match(s)),
        Test::StartsWith(prefixes) => {
            value.as_str().is_some_and(|s| prefixes.iter().any(|p| s.starts_with(p.as_str())))
        }
        Test::EndsWith(suffixes) => value.as_str().is_some_and(|s| suffixes.iter().any(|p| s.ends_with(p.as_str()))),
        Test::ContainsAll(wanted) => match value {
            Value::Array(items) => wanted.iter().all(|w| items.iter().any(|item| same(item, w))),
            _ => false,
        },
    }
}

/// `value` is `wanted`, or an array holding it (unless `wanted` is itself an array).
fn equal_or_holds(value: &Value, wanted: &Value) -> bool {
    same(value, wanted)
        || (!wanted.is_array() && value.as_array().is_some_and(|items| items.iter().any(|i| same(i, wanted))))
}

/// `value` is one of `options`, or an array sharing one with them.
fn one_of(value: &Value, options: &[Value]) -> bool {
    let listed = |v: &Value| options.iter().any(|o| same(v, o));
    listed(value) || value.as_array().is_some_and(|items| items.iter().any(listed))
}

/// A string holding `text`, or an array holding the string `text`.
fn contains(value: &Value, text: &str) -> bool {
    match value {
        Value::String(s) => s.contains(text),
        Value::Array(items) => items.iter().any(|i| i.as_str() == Some(text)),
        _ => false,
    }
}

/// Equality with numbers by value (`1` is `1.0`) and everything else as JSON compares.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// How `a` orders against `b`: numbers by value (integers exactly), strings by their
/// bytes; `None` for anything else, or a number against a string.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                Some(x.cmp(&y))
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                Some(x.cmp(&y))
            } else {
                x.as_f64()?.partial_cmp(&y.as_f64()?)
            }
        }
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    }
}
