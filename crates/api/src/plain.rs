//! Plain fields, answered at once.
//!
//! async-graphql answers every field of an object through the same generic path: a boxed
//! future in a `FuturesUnordered`, a context, the generated resolver's comparison of the field
//! name with every field of the type, the field value's own `resolve` — some 4–6 k instructions
//! per field, most of a dashboard's CPU (its page of 50 investigations has ~1,700 fields, most of
//! them a document's kind or a version's number; BENCHMARKS.md). Yet most fields wait for
//! nothing and cannot fail: they copy a value out of the loaded investigation.
//!
//! A type that implements [`PlainFields`] answers such fields itself, straight into the answer's
//! map, and so do the objects nested in them whose selected fields are all plain ([`object`],
//! [`list`]). The other fields — those that load, or that can fail — still go through
//! async-graphql's own resolver, all of them started together as before, so loader batches and
//! errors (message, path, the field left out) are what they were. [`Plain`] makes a type answer
//! this way where a field returns it; it is the same GraphQL type (the schema does not change).
//!
//! Plain fields pass no async-graphql extension: the schema installs none (`crate::schema`
//! says why), and one that must see every field would need this path turned off.
//!
//! A plain answer must be exactly what the type's async-graphql resolver gives: `plain_field`
//! returns `None` for anything it does not answer the same way, and
//! `tests/e2e/plain.rs` compares both paths on whole answers (`RKFLOW_PLAIN_FIELDS=false` turns
//! this path off).

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::resolve_container;
use async_graphql::{
    Context, ContextSelectionSet, Name, ObjectType, OutputType, Positioned, ServerResult, Value,
};
use chrono::{DateTime, Datelike, Timelike, Utc};
use futures::future::{BoxFuture, join_all};
use std::borrow::Cow;

/// An object type some of whose fields can be answered at once.
pub trait PlainFields: ObjectType {
    /// The answer to the field `ctx` names, when it needs no waiting and cannot fail; `None`
    /// leaves the field to the type's async-graphql resolver. Nothing here may have an effect
    /// (an answer can be computed and then dropped, when a sibling field turns out not plain).
    fn plain_field(&self, ctx: &Context<'_>) -> Option<Value>;
}

/// Present in the schema's data when plain answering is off (`RKFLOW_PLAIN_FIELDS=false`):
/// every field then goes through async-graphql's resolvers, as a reference to compare with.
#[derive(Clone, Copy, Debug)]
pub struct PlainFieldsOff;

/// `T`, answered through its plain fields where it can (the same GraphQL type as `T`).
pub struct Plain<T>(pub T);

impl<T: PlainFields> OutputType for Plain<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        if ctx.data_opt::<PlainFieldsOff>().is_some() {
            return self.0.resolve(ctx, field).await;
        }
        let mut slow = Vec::new();
        let Some(mut answer) = answer_fields(ctx, &self.0, |index, field| {
            slow.push((index, field));
            true
        }) else {
            // A selection this path leaves to async-graphql (see `for_each_field`).
            return resolve_container(ctx, &self.0).await;
        };
        if slow.is_empty() {
            return Ok(finish(answer));
        }
        // The other fields all at once, as async-graphql would (one loader batch for all).
        let answers = join_all(slow.into_iter().map(|(index, field)| {
            let ctx = ctx.clone();
            let object = &self.0;
            let future: BoxFuture<'_, _> = Box::pin(async move {
                let ctx_field = ctx.with_field(field);
                (index, object.resolve_field(&ctx_field).await)
            });
            future
        }))
        .await;
        let mut failed = Vec::new();
        for (index, result) in answers {
            match result {
                Ok(value) => {
                    if let Some((_, slot)) = answer.get_index_mut(index) {
                        *slot = value.unwrap_or_default();
                    }
                }
                Err(error) => {
                    ctx.add_error(error);
                    failed.push(index);
                }
            }
        }
        // A failed field is left out of the answer, as async-graphql does.
        for index in failed.into_iter().rev() {
            answer.shift_remove_index(index);
        }
        Ok(finish(answer))
    }
}

/// async-graphql answers an object without fields as null.
fn finish(answer: IndexMap<Name, Value>) -> Value {
    if answer.is_empty() {
        Value::Null
    } else {
        Value::Object(answer)
    }
}

/// The answer to an object-valued field, when every field selected of the object is plain.
pub fn object<T: PlainFields>(ctx: &Context<'_>, object: &T) -> Option<Value> {
    let set = ctx.with_selection_set(&ctx.item.node.selection_set);
    answer_fields(&set, object, |_, _| false).map(finish)
}

/// The answer to a nullable object-valued field (null when there is no object).
pub fn optional<T: PlainFields>(ctx: &Context<'_>, value: Option<&T>) -> Option<Value> {
    match value {
        Some(value) => object(ctx, value),
        None => Some(Value::Null),
    }
}

/// The answer to a list-valued field, when every item's selected fields are all plain.
pub fn list<T: PlainFields>(
    ctx: &Context<'_>,
    items: impl IntoIterator<Item = T>,
) -> Option<Value> {
    let set = ctx.with_selection_set(&ctx.item.node.selection_set);
    items
        .into_iter()
        .map(|item| answer_fields(&set, &item, |_, _| false).map(finish))
        .collect::<Option<Vec<Value>>>()
        .map(Value::List)
}

/// The selected fields of `object` in order, each answered at once or, where `slow` agrees,
/// left null at its place for async-graphql to answer (`slow` gets the place and the field;
/// returning false gives up). `None` when given up, or when the selection holds what only
/// async-graphql answers correctly.
fn answer_fields<'a, T: PlainFields>(
    ctx: &ContextSelectionSet<'a>,
    object: &T,
    mut slow: impl FnMut(usize, &'a Positioned<Field>) -> bool,
) -> Option<IndexMap<Name, Value>> {
    let type_name = T::type_name();
    let mut answer = IndexMap::with_capacity(ctx.item.node.items.len());
    let complete = for_each_field(ctx, &ctx.item.node, &type_name, &mut |field| {
        let value = if field.node.name.node == "__typename" {
            Value::String(type_name.to_string())
        } else {
            match object.plain_field(&ctx.with_field(field)) {
                Some(value) => value,
                None if slow(answer.len(), field) => Value::Null,
                None => return false,
            }
        };
        // The same key twice gives up (async-graphql merges the two selections); hashing the
        // key once per field matters (SipHash: a tenth of a dashboard's instructions).
        let (_, earlier) = answer.insert_full(field.node.response_key().node.clone(), value);
        earlier.is_none()
    });
    complete.then_some(answer)
}

/// Calls `each` with the fields of `set` in order, with the fields of fragments on the type
/// itself in their place. False as soon as `each` is, or at a field with a directive (only
/// `@skip` and `@include` exist, and async-graphql removes them before executing) or a fragment
/// on another type (an interface).
fn for_each_field<'a>(
    ctx: &ContextSelectionSet<'a>,
    set: &'a SelectionSet,
    type_name: &str,
    each: &mut impl FnMut(&'a Positioned<Field>) -> bool,
) -> bool {
    set.items.iter().all(|selection| match &selection.node {
        Selection::Field(field) => field.node.directives.is_empty() && each(field),
        Selection::InlineFragment(fragment) => {
            fragment.node.directives.is_empty()
                && fragment
                    .node
                    .type_condition
                    .as_ref()
                    .is_none_or(|condition| condition.node.on.node.as_str() == type_name)
                && for_each_field(ctx, &fragment.node.selection_set.node, type_name, each)
        }
        Selection::FragmentSpread(spread) => {
            spread.node.directives.is_empty()
                && ctx
                    .query_env
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .is_some_and(|fragment| {
                        fragment.node.directives.is_empty()
                            && fragment.node.type_condition.node.on.node.as_str() == type_name
                            && for_each_field(
                                ctx,
                                &fragment.node.selection_set.node,
                                type_name,
                                each,
                            )
                    })
        }
    })
}

/// An `ID` field's answer.
pub fn id(id: uuid::Uuid) -> Value {
    Value::String(id.to_string())
}

/// A `String` field's answer.
pub fn string(text: &str) -> Value {
    Value::String(text.to_owned())
}

/// A nullable `String` field's answer.
pub fn optional_string(text: Option<&str>) -> Value {
    text.map_or(Value::Null, string)
}

/// A `DateTime` field's answer: what its `ScalarType` gives (`to_rfc3339`), written directly
/// (through `fmt`, a dashboard's 250 timestamps took ~680 instructions each).
pub fn date_time(at: &DateTime<Utc>) -> Value {
    Value::String(rfc3339(at))
}

/// A nullable `DateTime` field's answer.
pub fn optional_date_time(at: Option<&DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, date_time)
}

/// `at.to_rfc3339()`, byte for byte: `YYYY-MM-DDTHH:MM:SS`, the fraction of a second in 3, 6
/// or 9 digits when it is not zero (as few as show every non-zero digit), `+00:00`. Years
/// outside 0–9999 and leap seconds are left to chrono.
fn rfc3339(at: &DateTime<Utc>) -> String {
    let (year, nano) = (at.year(), at.nanosecond());
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        return at.to_rfc3339();
    }
    /// `value` in `width` decimal digits at `text[at..]`; the place after them.
    fn digits(text: &mut [u8], at: usize, mut value: u32, width: usize) -> usize {
        for place in text[at..at + width].iter_mut().rev() {
            *place = b'0' + (value % 10) as u8;
            value /= 10;
        }
        at + width
    }
    let mut text = *b"0000-00-00T00:00:00.000000000+00:00";
    digits(&mut text, 0, year.unsigned_abs(), 4);
    digits(&mut text, 5, at.month(), 2);
    digits(&mut text, 8, at.day(), 2);
    digits(&mut text, 11, at.hour(), 2);
    digits(&mut text, 14, at.minute(), 2);
    digits(&mut text, 17, at.second(), 2);
    let end = match nano {
        0 => 19,
        _ if nano % 1_000_000 == 0 => digits(&mut text, 20, nano / 1_000_000, 3),
        _ if nano % 1_000 == 0 => digits(&mut text, 20, nano / 1_000, 6),
        _ => digits(&mut text, 20, nano, 9),
    };
    let mut out = String::with_capacity(end + 6);
    out.push_str(std::str::from_utf8(&text[..end]).unwrap_or_default());
    out.push_str("+00:00");
    out
}

/// An enum field's answer.
pub fn enumeration<T: async_graphql::resolver_utils::EnumType>(value: T) -> Value {
    async_graphql::resolver_utils::enum_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        for (secs, nano) in [
            (0, 0),
            (1_764_531_801, 18_685_000),
            (1_764_531_801, 123_000_000),
            (1_764_531_801, 123_456_789),
            (1_764_531_801, 1),
            (-62_167_219_200, 0),
            (-62_167_219_201, 5),
            (253_402_300_799, 999_999_999),
            (253_402_300_800, 0),
        ] {
            let at = Utc
                .timestamp_opt(secs, nano)
                .single()
                .expect("a valid instant");
            assert_eq!(rfc3339(&at), at.to_rfc3339(), "{secs} {nano}");
        }
    }

    proptest! {
        #[test]
        fn any_timestamp_is_written_as_chrono_writes_it(
            secs in -100_000_000_000i64..300_000_000_000,
            nano in prop_oneof![
                Just(0u32),
                (0u32..1000).prop_map(|n| n * 1_000_000),
                (0u32..1_000_000).prop_map(|n| n * 1_000),
                0u32..1_000_000_000,
            ],
        ) {
            let at = Utc.timestamp_opt(secs, nano).single().expect("a valid instant");
            prop_assert_eq!(rfc3339(&at), at.to_rfc3339());
        }
    }
}
