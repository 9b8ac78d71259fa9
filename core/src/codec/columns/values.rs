//! A document's state read by serde: a record's fields straight from its operations, as
//! `State::object_json` gives them and `serde_json::from_value` then reads them, without the
//! JSON in between. Building that JSON and reading it back was a tenth of a phone's work on a
//! first sync.
//!
//! What this reader takes, it gives as the JSON path would: each value reaches the same
//! visitor method (an integer ≥ 0 as `u64`, a negative one as `i64`, bytes and a float that is
//! not finite as null), maps and lists must be read whole, and every value is checked against
//! the bounds as `object_json` checks it, the values of keys the record skips included. What it
//! does not take (an enum written as a map, a map key that is not a string) is an error: the
//! caller then reads the document through JSON, which gives the answer or the error it always
//! gave.

use super::{ObjType, OpId, SET, Scalar, Slot, State};
use serde::de::{self, Deserialize, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use std::cell::Cell;

/// The root map of a document whose operations and history passed `check_parsed`.
pub(crate) struct Root<'s, 'a, 'o> {
    state: &'s State<'a, 'o>,
    slots: Vec<(&'s str, Slot)>,
    /// Whether a `read` went through every value, and so checked them all.
    pub(super) walked: Cell<bool>,
}

impl<'s, 'a, 'o> Root<'s, 'a, 'o> {
    pub(super) fn new(state: &'s State<'a, 'o>) -> Option<Self> {
        Some(Root {
            slots: state.map_slots(None)?,
            state,
            walked: Cell::new(false),
        })
    }

    /// The root key's one value, if it is a string: `None` if it holds none, several values
    /// (concurrent writes), or a value of another type.
    pub(crate) fn string(&self, key: &str) -> Option<&str> {
        let (_, slot) = self.slots.iter().find(|(name, _)| *name == key)?;
        match &self.state.ops[slot.winner] {
            op if op.action == SET && slot.all.more.is_empty() => match op.value {
                Scalar::Str(s) => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether a root key holds several values at once (concurrent writes, not settled).
    pub(crate) fn in_conflict(&self, key: &str) -> bool {
        self.slots
            .iter()
            .any(|(name, slot)| *name == key && !slot.all.more.is_empty())
    }

    /// Whether an entry of the map under the root key `key` holds several values at once at
    /// one of `fields` (a follow-up's situation set by two devices); unsure (a value of
    /// another shape, the map itself written twice) counts as yes, for the full reading.
    pub(crate) fn entries_in_conflict(&self, key: &str, fields: &[&str]) -> bool {
        let Some((_, slot)) = self.slots.iter().find(|(name, _)| *name == key) else {
            return false;
        };
        let map = &self.state.ops[slot.winner];
        if !slot.all.more.is_empty() || map.action != super::MAKE_MAP {
            return true;
        }
        let Some(entries) = self.state.map_slots(Some(map.id)) else {
            return true;
        };
        entries.iter().any(|(_, entry)| {
            let object = &self.state.ops[entry.winner];
            !entry.all.more.is_empty()
                || object.action != super::MAKE_MAP
                || self.state.map_slots(Some(object.id)).is_none_or(|values| {
                    values
                        .iter()
                        .any(|(name, value)| fields.contains(name) && !value.all.more.is_empty())
                })
        })
    }

    /// Whether a root key starts with `prefix`.
    pub(crate) fn has_key_starting(&self, prefix: &str) -> bool {
        self.slots.iter().any(|(name, _)| name.starts_with(prefix))
    }

    /// The root map read as a `T`, without the keys `skip` names (their values are checked all
    /// the same). `None` if it does not read as one, or holds a value over the bounds.
    pub(crate) fn read<T: DeserializeOwned>(&self, skip: &dyn Fn(&str) -> bool) -> Option<T> {
        let root = Entries::new(self.state, &self.slots, 0, Some(skip));
        let read = T::deserialize(Node {
            state: self.state,
            at: At::Root(root),
            depth: 0,
        })
        .ok()?;
        self.walked.set(true);
        Some(read)
    }
}

/// Why a value did not read: the caller reads it through JSON instead, for its own answer.
#[derive(Debug)]
pub(crate) struct Unread;

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the values do not read as the record")
    }
}

impl std::error::Error for Unread {}

impl de::Error for Unread {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Unread
    }
}

/// What a deserializer reads: the root map, a key's or an element's value, or an object.
enum At<'v, 's, 'a, 'o> {
    /// The root map's entries (some of its keys skipped).
    Root(Entries<'v, 's, 'a, 'o>),
    Value(&'v Slot),
    Object(Option<OpId>),
}

struct Node<'v, 's, 'a, 'o> {
    state: &'s State<'a, 'o>,
    at: At<'v, 's, 'a, 'o>,
    /// The depth of the object it is, or of the object holding it.
    depth: usize,
}

impl<'v, 's, 'a, 'o> Node<'v, 's, 'a, 'o> {
    /// A key's or an element's value, in an object at `depth`.
    fn value(state: &'s State<'a, 'o>, slot: &'v Slot, depth: usize) -> Self {
        Node {
            state,
            at: At::Value(slot),
            depth,
        }
    }

    /// A value's winner if that is a scalar, after every value it holds is checked; `None` for
    /// an object.
    fn scalar(&self) -> Result<Option<&Scalar<'_>>, Unread> {
        let At::Value(slot) = self.at else {
            return Ok(None);
        };
        self.state.check(slot, self.depth).ok_or(Unread)?;
        let op = &self.state.ops[slot.winner];
        Ok((op.action == SET).then_some(&op.value))
    }
}

fn is_null(scalar: &Scalar) -> bool {
    match scalar {
        Scalar::Null | Scalar::Bytes(_) => true,
        Scalar::F64(f) => !f.is_finite(),
        _ => false,
    }
}

impl<'de> de::Deserializer<'de> for Node<'_, '_, '_, '_> {
    type Error = Unread;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unread> {
        let state = self.state;
        let obj = match self.at {
            At::Root(mut entries) => return entries.visit(visitor),
            At::Object(obj) => obj,
            At::Value(slot) => {
                let Some(scalar) = self.scalar()? else {
                    let made = Node {
                        state,
                        at: At::Object(Some(state.ops[slot.winner].id)),
                        depth: self.depth + 1,
                    };
                    return made.deserialize_any(visitor);
                };
                return match *scalar {
                    Scalar::Null | Scalar::Bytes(_) => visitor.visit_unit(),
                    Scalar::Bool(b) => visitor.visit_bool(b),
                    Scalar::Uint(u) => visitor.visit_u64(u),
                    // As `serde_json::Value::from(i64)`: a number ≥ 0 is a positive integer.
                    Scalar::Int(i) | Scalar::Timestamp(i) => match u64::try_from(i) {
                        Ok(u) => visitor.visit_u64(u),
                        Err(_) => visitor.visit_i64(i),
                    },
                    Scalar::F64(f) if f.is_finite() => visitor.visit_f64(f),
                    Scalar::F64(_) => visitor.visit_unit(),
                    Scalar::Str(s) => visitor.visit_str(s),
                };
            }
        };
        if self.depth > state.limits.max_depth {
            return Err(Unread);
        }
        match state.objects.get(&obj).ok_or(Unread)?.ty {
            ObjType::Map => {
                let slots = state.map_slots(obj).ok_or(Unread)?;
                Entries::new(state, &slots, self.depth, None).visit(visitor)
            }
            ObjType::List => {
                let slots = state.list_slots(obj).ok_or(Unread)?;
                let mut elements = Elements {
                    state,
                    iter: slots.iter(),
                    depth: self.depth,
                };
                let read = visitor.visit_seq(&mut elements)?;
                // As JSON's: a list is read whole.
                match elements.iter.len() {
                    0 => Ok(read),
                    _ => Err(Unread),
                }
            }
            ObjType::Text => visitor.visit_string(state.text(obj).ok_or(Unread)?),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unread> {
        match self.scalar()? {
            Some(scalar) if is_null(scalar) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unread> {
        match self.scalar()? {
            Some(Scalar::Str(s)) => visitor.visit_enum(s.into_deserializer()),
            // A variant with its content, written as a map of one key: JSON's to read.
            _ => Err(Unread),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Unread> {
        visitor.visit_newtype_struct(self)
    }

    // A value the record ignores is still walked, and so checked against the bounds.
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// A map's keys and values.
struct Entries<'v, 's, 'a, 'o> {
    state: &'s State<'a, 'o>,
    iter: std::slice::Iter<'v, (&'v str, Slot)>,
    depth: usize,
    pending: Option<&'v Slot>,
    /// Keys left out of what the visitor sees.
    skip: Option<&'v dyn Fn(&str) -> bool>,
}

impl<'v, 's, 'a, 'o> Entries<'v, 's, 'a, 'o> {
    fn new(
        state: &'s State<'a, 'o>,
        slots: &'v [(&'v str, Slot)],
        depth: usize,
        skip: Option<&'v dyn Fn(&str) -> bool>,
    ) -> Self {
        Entries {
            state,
            iter: slots.iter(),
            depth,
            pending: None,
            skip,
        }
    }

    fn visit<'de, V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Unread> {
        let read = visitor.visit_map(&mut *self)?;
        // As JSON's: a map is read whole (the keys skipped at its end are checked here).
        match de::MapAccess::next_key::<de::IgnoredAny>(self)? {
            None => Ok(read),
            Some(_) => Err(Unread),
        }
    }
}

impl<'de> de::MapAccess<'de> for Entries<'_, '_, '_, '_> {
    type Error = Unread;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Unread> {
        for (key, slot) in self.iter.by_ref() {
            if self.skip.is_some_and(|skip| skip(key)) {
                de::IgnoredAny::deserialize(Node::value(self.state, slot, self.depth))?;
                continue;
            }
            self.pending = Some(slot);
            let key: de::value::StrDeserializer<'_, Unread> = key.into_deserializer();
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Unread> {
        let slot = self.pending.take().ok_or(Unread)?;
        seed.deserialize(Node::value(self.state, slot, self.depth))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// A list's elements.
struct Elements<'v, 's, 'a, 'o> {
    state: &'s State<'a, 'o>,
    iter: std::slice::Iter<'v, Slot>,
    depth: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, '_, '_, '_> {
    type Error = Unread;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Unread> {
        let Some(slot) = self.iter.next() else {
            return Ok(None);
        };
        seed.deserialize(Node::value(self.state, slot, self.depth))
            .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}
