//! A filter's JSON checked and turned into one form ([`Cond`]), whichever syntax wrote it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::{Map, Value};

use super::FilterError;

/// The deepest a filter may nest.
const MAX_DEPTH: usize = 16;

/// The most conditions one filter may hold.
const MAX_NODES: usize = 1_000;

/// The most segments one key's path may have (`data.items.0.sku` has four): evaluation
/// walks a path recursively, so a key of thousands of dots must not reach it.
const MAX_SEGMENTS: usize = 32;

/// The most a `$regex` may cost to compile (and so to run), in bytes of the `regex`
/// crate's program.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// The most `$regex` conditions one filter may hold.
const MAX_REGEXES: usize = 10;

/// The longest a `$regex` pattern may be, in bytes.
const MAX_PATTERN: usize = 1024;

/// The most compiled patterns kept for the filters stored on endpoints.
const MAX_CACHED_PATTERNS: usize = 4096;

/// The operators, for the error that names an unknown one.
const OPERATORS: &str = "$eq $neq $gt $gte $lt $lte $in $nin $exist $regex $startsWith $endsWith $and $or $not";

/// A condition on the value at hand (the event, or a value inside it).
#[derive(Debug)]
pub(super) enum Cond {
    /// Every one holds.
    All(Vec<Cond>),
    /// At least one holds.
    Any(Vec<Cond>),
    /// It does not hold.
    Not(Box<Cond>),
    /// It holds of the value at this path (of one of them, where the path meets arrays).
    At(Vec<Seg>, Box<Cond>),
    /// The value passes this test.
    Test(Test),
}

/// One step of a path.
#[derive(Debug, Clone)]
pub(super) enum Seg {
    /// An object's key (on an array of objects: each element's).
    Key(String),
    /// An array's element at this index (on an object: the key of these digits).
    Index(usize, String),
    /// Every element of an array (`$`).
    Each,
}

/// How two values compare for `$gt` and the like.
#[derive(Debug, Clone, Copy)]
pub(super) enum Order {
    /// `$gt`
    Greater,
    /// `$gte`
    GreaterOrEqual,
    /// `$lt`
    Less,
    /// `$lte`
    LessOrEqual,
}

/// A test of one value.
#[derive(Debug)]
pub(super) enum Test {
    /// Equal to it (an array: holding it).
    Eq(Value),
    /// Present and not equal to it.
    Neq(Value),
    /// Ordered so against it (a number against a number, a string against a string).
    Compare(Order, Value),
    /// One of these (an array: sharing one with them).
    In(Vec<Value>),
    /// Present and none of these.
    Nin(Vec<Value>),
    /// A string holding this text, or an array holding this string.
    Contains(String),
    /// Present and not [`Test::Contains`].
    NotContains(String),
    /// Present (true) or absent (false).
    Exist(bool),
    /// A string this expression matches (anywhere in it).
    Regex(Regex),
    /// A string starting with one of these.
    StartsWith(Vec<String>),
    /// A string ending with one of these.
    EndsWith(Vec<String>),
    /// An array holding every one of these.
    ContainsAll(Vec<Value>),
}

/// Checks `filter` and compiles it; `root` names it in errors. `stored`: it is an
/// endpoint's, read back (its regular expressions are kept compiled for the next read);
/// otherwise it is being checked and nothing of it is kept.
pub(super) fn compile(filter: &Value, root: &str, stored: bool) -> Result<Cond, FilterError> {
    let Value::Object(object) = filter else {
        return Err(FilterError { path: root.to_string(), message: "a filter is a JSON object".into() });
    };
    let mut budget = Budget { nodes: 0, regexes: 0, stored };
    budget.object(object, root, 0)
}

/// What a filter may still hold.
struct Budget {
    nodes: usize,
    regexes: usize,
    stored: bool,
}

impl Budget {
    /// Counts one condition at `path`, `depth` deep.
    fn take(&mut self, path: &str, depth: usize) -> Result<(), FilterError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(error(path, format!("a filter holds at most {MAX_NODES} conditions")));
        }
        if depth > MAX_DEPTH {
            return Err(error(path, format!("a filter nests at most {MAX_DEPTH} deep")));
        }
        Ok(())
    }

    /// An object of keys (paths) and operators, all of which must hold.
    fn object(&mut self, object: &Map<String, Value>, path: &str, depth: usize) -> Result<Cond, FilterError> {
        let mut all = Vec::with_capacity(object.len());
        for (key, value) in object {
            let here = format!("{path}.{key}");
            self.take(&here, depth)?;
            if key.starts_with('$') && key != "$" {
                all.push(self.operator(key, value, &here, depth)?);
            } else {
                let segments = segments(key, &here)?;
                all.push(at(segments, self.value(value, &here, depth + 1)?));
            }
        }
        Ok(if all.len() == 1 { all.pop().expect("one") } else { Cond::All(all) })
    }

    /// What a key's value asks of the value at its path.
    fn value(&mut self, value: &Value, path: &str, depth: usize) -> Result<Cond, FilterError> {
        match value {
            Value::Object(object) => self.object(object, path, depth),
            Value::Array(items) => Ok(Cond::Test(Test::ContainsAll(items.clone()))),
            scalar => Ok(Cond::Test(Test::Eq(scalar.clone()))),
        }
    }

    /// One operator and its operand.
    fn operator(&mut self, op: &str, operand: &Value, path: &str, depth: usize) -> Result<Cond, FilterError> {
        let test = |test| Ok(Cond::Test(test));
        match op {
            "$and" | "$or" => {
                let Value::Array(items) = operand else {
                    return Err(error(path, format!("`{op}` takes an array of filters")));
                };
                if items.is_empty() {
                    return Err(error(path, format!("`{op}` takes at least one filter")));
                }
                let conds = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.value(item, &format!("{path}[{i}]"), depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if op == "$and" { Cond::All(conds) } else { Cond::Any(conds) })
            }
            "$not" => Ok(Cond::Not(Box::new(self.value(operand, path, depth + 1)?))),
            "$eq" => test(Test::Eq(operand.clone())),
            "$neq" => test(Test::Neq(operand.clone())),
            "$gt" | "$gte" | "$lt" | "$lte" => {
                if !(operand.is_number() || operand.is_string()) {
                    return Err(error(path, format!("`{op}` compares with a number or a string")));
                }
                let order = match op {
                    "$gt" => Order::Greater,
                    "$gte" => Order::GreaterOrEqual,
                    "$lt" => Order::Less,
                    _ => Order::LessOrEqual,
                };
                test(Test::Compare(order, operand.clone()))
            }
            "$in" | "$nin" => match operand {
                Value::Array(items) if op == "$in" => test(Test::In(items.clone())),
                Value::Array(items) => test(Test::Nin(items.clone())),
                Value::String(text) if op == "$in" => test(Test::Contains(text.clone())),
                Value::String(text) => test(Test::NotContains(text.clone())),
                _ => Err(error(path, format!("`{op}` takes an array of values, or a string"))),
            },
            "$exist" => match operand {
                Value::Bool(present) => test(Test::Exist(*present)),
                _ => Err(error(path, "`$exist` takes true or false")),
            },
            "$regex" => match operand {
                Value::String(pattern) => {
                    self.regexes += 1;
                    if self.regexes > MAX_REGEXES {
                        return Err(error(path, format!("a filter holds at most {MAX_REGEXES} `$regex`")));
                    }
                    if pattern.len() > MAX_PATTERN {
                        return Err(error(path, format!("a `$regex` is at most {MAX_PATTERN} bytes long")));
                    }
                    test(Test::Regex(regex(pattern, path, self.stored)?))
                }
                _ => Err(error(path, "`$regex` takes a regular expression as a string")),
            },
            "$startsWith" | "$endsWith" => {
                let texts = match operand {
                    Value::String(text) => vec![text.clone()],
                    Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => {
                        items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
                    }
                    _ => return Err(error(path, format!("`{op}` takes a string, or an array of strings"))),
                };
                test(if op == "$startsWith" { Test::StartsWith(texts) } else { Test::EndsWith(texts) })
            }
            "$exists" => Err(error(path, "unknown operator `$exists`: did you mean `$exist`?")),
            other => Err(error(path, format!("unknown operator `{other}`; the operators are {OPERATORS}"))),
        }
    }
}

/// `cond` of the value at `path`. A negation goes outside the path, so that where the path
/// meets an array it means "no element", not "some element does not": `$not`, and
/// `$neq`/`$nin` (which also ask that the value be present).
fn at(path: Vec<Seg>, cond: Cond) -> Cond {
    let present_and_not = |path: Vec<Seg>, test: Test| {
        Cond::All(vec![
            Cond::At(path.clone(), Box::new(Cond::Test(Test::Exist(true)))),
            Cond::Not(Box::new(Cond::At(path, Box::new(Cond::Test(test))))),
        ])
    };
    match cond {
        Cond::Not(inner) => Cond::Not(Box::new(at(path, *inner))),
        Cond::Test(Test::Neq(value)) => present_and_not(path, Test::Eq(value)),
        Cond::Test(Test::Nin(values)) => present_and_not(path, Test::In(values)),
        Cond::Test(Test::NotContains(text)) => present_and_not(path, Test::Contains(text)),
        Cond::All(conds) if conds.iter().all(is_negation) => {
            Cond::All(conds.into_iter().map(|c| at(path.clone(), c)).collect())
        }
        cond => Cond::At(path, Box::new(cond)),
    }
}

/// Whether `cond` is a negation [`at`] moves outside a path.
fn is_negation(cond: &Cond) -> bool {
    matches!(cond, Cond::Not(_) | Cond::Test(Test::Neq(_) | Test::Nin(_) | Test::NotContains(_)))
}

/// A key's path: split on dots; a digit segment indexes an array, `$` is any element.
fn segments(key: &str, path: &str) -> Result<Vec<Seg>, FilterError> {
    if key.split('.').count() > MAX_SEGMENTS {
        return Err(error(path, format!("a key's path has at most {MAX_SEGMENTS} segments")));
    }
    key.split('.')
        .map(|segment| match segment {
            "" => Err(error(path, "a key's path has an empty segment")),
            "$" => Ok(Seg::Each),
            digits if digits.bytes().all(|b| b.is_ascii_digit()) => match digits.parse() {
                Ok(index) => Ok(Seg::Index(index, digits.to_string())),
                Err(_) => Ok(Seg::Key(digits.to_string())),
            },
            key => Ok(Seg::Key(key.to_string())),
        })
        .collect()
}

/// `pattern` compiled within [`REGEX_SIZE_LIMIT`]. A stored filter is compiled each time
/// its endpoint is read (each publish to it), and a regular expression is the dear part:
/// for those (`stored`), each pattern is compiled once and kept. A filter being checked
/// or tried keeps nothing, so requests cannot crowd the stored filters' patterns out.
fn regex(pattern: &str, path: &str, stored: bool) -> Result<Regex, FilterError> {
    static COMPILED: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();
    let cache = COMPILED.get_or_init(Default::default);
    if stored && let Some(found) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(pattern) {
        return Ok(found.clone());
    }
    let compiled = regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|err| error(path, format!("`$regex` does not compile: {err}")))?;
    if stored {
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: past it, start afresh (the endpoints' patterns come back on their next
        // read).
        if cache.len() >= MAX_CACHED_PATTERNS {
            cache.clear();
        }
        cache.insert(pattern.to_string(), compiled.clone());
    }
    Ok(compiled)
}

fn error(path: &str, message: impl Into<String>) -> FilterError {
    FilterError { path: path.to_string(), message: message.into() }
}
