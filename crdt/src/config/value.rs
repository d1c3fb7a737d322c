//! Config values and their mapping onto an automerge document.
//!
//! Operators write config as TOML or JSON; the document stores it as nested
//! automerge maps so concurrent edits to different keys merge instead of
//! conflicting. Lists are replaced whole when they change: their order is
//! part of their meaning, and element-wise list merges of config (say, two
//! operators each appending a server) are more surprising than helpful.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutomergeError, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
use serde::{Deserialize, Serialize};

use super::limits;

/// A JSON-like config value; a TOML or JSON file deserializes straight into
/// it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// An ordered list.
    List(Vec<Value>),
    /// A map with string keys.
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// How many maps and lists nest in this value, outermost included: 0
    /// for a scalar. Counted without recursion, whatever the depth.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 0)];
        while let Some((value, above)) = stack.pop() {
            let children: Box<dyn Iterator<Item = &Value>> = match value {
                Value::List(items) => Box::new(items.iter()),
                Value::Map(map) => Box::new(map.values()),
                _ => continue,
            };
            deepest = deepest.max(above + 1);
            stack.extend(children.map(|child| (child, above + 1)));
        }
        deepest
    }
}

/// The document's root map as it was at `heads`. Nesting below
/// [`limits::VALUE_DEPTH_MAX`] reads as null: the reader recurses, and the
/// content is an author's choice.
pub(crate) fn read_root(doc: &impl ReadDoc, heads: &[ChangeHash]) -> BTreeMap<String, Value> {
    read_map(doc, &ROOT, heads, 1)
}

fn read_map(
    doc: &impl ReadDoc,
    obj: &ObjId,
    heads: &[ChangeHash],
    depth: usize,
) -> BTreeMap<String, Value> {
    doc.keys_at(obj, heads)
        .filter_map(|key| {
            let value = read_prop(doc, obj, key.as_str(), heads, depth)?;
            Some((key, value))
        })
        .collect()
}

fn read_list(doc: &impl ReadDoc, obj: &ObjId, heads: &[ChangeHash], depth: usize) -> Value {
    let items = (0..doc.length_at(obj, heads))
        .filter_map(|index| read_prop(doc, obj, index, heads, depth))
        .collect();
    Value::List(items)
}

fn read_prop(
    doc: &impl ReadDoc,
    obj: &ObjId,
    prop: impl Into<automerge::Prop>,
    heads: &[ChangeHash],
    depth: usize,
) -> Option<Value> {
    let (value, id) = doc.get_at(obj, prop, heads).ok().flatten()?;
    Some(match value {
        automerge::Value::Object(ObjType::Map | ObjType::Table | ObjType::List)
            if depth >= limits::VALUE_DEPTH_MAX =>
        {
            Value::Null
        }
        automerge::Value::Object(ObjType::Map | ObjType::Table) => {
            Value::Map(read_map(doc, &id, heads, depth + 1))
        }
        automerge::Value::Object(ObjType::List) => read_list(doc, &id, heads, depth + 1),
        automerge::Value::Object(ObjType::Text) => {
            Value::Str(doc.text_at(&id, heads).unwrap_or_default())
        }
        automerge::Value::Scalar(scalar) => from_scalar(&scalar),
    })
}

/// Scalars other writers may have used map onto the nearest config value;
/// bytes and types from future automerge versions have none and read as
/// null.
fn from_scalar(scalar: &ScalarValue) -> Value {
    match scalar {
        ScalarValue::Str(text) => Value::Str(text.to_string()),
        ScalarValue::Int(int) | ScalarValue::Timestamp(int) => Value::Int(*int),
        ScalarValue::Uint(uint) => {
            i64::try_from(*uint).map_or(Value::Float(*uint as f64), Value::Int)
        }
        ScalarValue::Counter(counter) => Value::Int(i64::from(counter)),
        ScalarValue::F64(float) => Value::Float(*float),
        ScalarValue::Boolean(flag) => Value::Bool(*flag),
        ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } | ScalarValue::Null => Value::Null,
    }
}

/// Edits map `obj`, which currently holds `current`, into `target`: removed
/// keys are deleted, changed scalars and lists are put, and nested maps are
/// edited in place so concurrent edits beneath them still merge.
pub(crate) fn write_map(
    tx: &mut impl Transactable,
    obj: &ObjId,
    current: &BTreeMap<String, Value>,
    target: &BTreeMap<String, Value>,
) -> Result<(), AutomergeError> {
    for key in current.keys().filter(|key| !target.contains_key(*key)) {
        tx.delete(obj, key.as_str())?;
    }
    for (key, value) in target {
        match (current.get(key), value) {
            (Some(old), new) if old == new => {}
            (Some(Value::Map(old)), Value::Map(new)) => {
                let child = tx.get(obj, key.as_str())?.map(|(_, id)| id);
                match child {
                    Some(child) => write_map(tx, &child, old, new)?,
                    None => put(tx, obj, key.as_str(), value)?,
                }
            }
            _ => put(tx, obj, key.as_str(), value)?,
        }
    }
    Ok(())
}

fn put(
    tx: &mut impl Transactable,
    obj: &ObjId,
    key: &str,
    value: &Value,
) -> Result<(), AutomergeError> {
    match value {
        Value::Map(map) => {
            let child = tx.put_object(obj, key, ObjType::Map)?;
            write_map(tx, &child, &BTreeMap::new(), map)
        }
        Value::List(items) => {
            let child = tx.put_object(obj, key, ObjType::List)?;
            fill_list(tx, &child, items)
        }
        scalar => tx.put(obj, key, to_scalar(scalar)),
    }
}

fn fill_list(
    tx: &mut impl Transactable,
    list: &ObjId,
    items: &[Value],
) -> Result<(), AutomergeError> {
    for (index, item) in items.iter().enumerate() {
        match item {
            Value::Map(map) => {
                let child = tx.insert_object(list, index, ObjType::Map)?;
                write_map(tx, &child, &BTreeMap::new(), map)?;
            }
            Value::List(inner) => {
                let child = tx.insert_object(list, index, ObjType::List)?;
                fill_list(tx, &child, inner)?;
            }
            scalar => tx.insert(list, index, to_scalar(scalar))?,
        }
    }
    Ok(())
}

fn to_scalar(value: &Value) -> ScalarValue {
    match value {
        Value::Bool(flag) => ScalarValue::Boolean(*flag),
        Value::Int(int) => ScalarValue::Int(*int),
        Value::Float(float) => ScalarValue::F64(*float),
        Value::Str(text) => ScalarValue::Str(text.as_str().into()),
        Value::Null | Value::List(_) | Value::Map(_) => ScalarValue::Null,
    }
}
