//! Plain fields, answered at once.
//!
//! async-graphql answers every field of an object through the same generic path: a boxed
//! future in a `FuturesUnordered`, a context, the generated resolver's comparison of the field
//! name with every field of the type, the field value's own `resolve` — some 4–6 k instructions
//! per field, most of a dashboard's CPU (its page of 50 investigations has ~1,700 fields, most of
//! them a document's kind or a version's number; BENCHMARKS.md). Yet most fields wait for
//! nothing and cannot fail: they copy a value out of the loaded investigation.
//!
//! A type that implements [`PlainFields`] answers such fields itself, written straight as the
//! answer's JSON text, and so do the objects nested in them whose selected fields are all plain
//! ([`object`], [`list`]). The object's answer then travels through async-graphql as one raw
//! value ([`crate::json::raw`]): no map of values to build, hash, write out and drop (those were
//! half of a dashboard's instructions after the per-field futures had gone). The other fields — those that load, or that can fail — still go through
//! async-graphql's own resolver, all of them started together as before, so loader batches and
//! errors (message, path, the field left out) are what they were. [`Plain`] makes a type answer
//! this way where a field returns it; it is the same GraphQL type (the schema does not change).
//!
//! Plain fields pass no async-graphql extension: the schema installs none (`crate::schema`
//! says why), and one that must see every field would need this path turned off.
//!
//! A plain answer must be exactly what the type's async-graphql resolver gives, written as
//! `serde_json` writes it: `plain_field` returns `None` for anything it does not answer the same
//! way, the writers below are tested against async-graphql's values, and
//! `tests/e2e/plain.rs` compares both paths on whole answers (`RKFLOW_PLAIN_FIELDS=false` turns
//! this path off).

use crate::json::{self, write_str};
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{EnumType, resolve_container};
use async_graphql::{
    Context, ContextSelectionSet, ObjectType, OutputType, Positioned, ServerResult, Value,
};
use chrono::{DateTime, Datelike, Timelike, Utc};
use futures::future::{BoxFuture, join_all};
use std::borrow::Cow;
use std::ops::Range;

/// An object type some of whose fields can be answered at once.
pub trait PlainFields: ObjectType {
    /// Writes the answer to the field `ctx` names as JSON to `out`, when it needs no waiting
    /// and cannot fail; `None` leaves the field to the type's async-graphql resolver (what was
    /// written is then cut off again). Nothing here may have an effect (an answer can be
    /// written and then dropped, when a sibling field turns out not plain).
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()>;

    /// About how long this object's answer will be, so that [`Plain`] sizes its text once (a
    /// page of investigations is ~100 KB of text, which would otherwise grow by doubling,
    /// copied at every step).
    fn answer_len_hint(&self) -> usize {
        1024
    }

    /// How long the answer [`Plain`] wrote for this object was (for [`Self::answer_len_hint`]).
    fn answer_written(&self, _len: usize) {}
}

impl<T: PlainFields + ?Sized> PlainFields for &T {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        (**self).plain_field(ctx, out)
    }
}

/// Present in a request's data when its plain fields may be answered this way: added by
/// `crate::schema::GuardedSchema` unless plain answering is off (`RKFLOW_PLAIN_FIELDS=false`,
/// to compare with) or the document names a response key twice in one selection set
/// ([`crate::documents::repeats_response_keys`]: async-graphql merges the answers of such
/// fields, which it cannot do with an answer written as text). Without it, every field goes
/// through async-graphql's own resolvers, as over the WebSocket.
#[derive(Clone, Copy, Debug)]
pub struct PlainAnswers;

/// `T`, answered through its plain fields where it can (the same GraphQL type as `T`).
pub struct Plain<T>(pub T);

/// One member of an object's answer: written (its place in the text), or left to
/// async-graphql.
enum Member<'a> {
    Written(Range<usize>),
    Slow(&'a Positioned<Field>),
}

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
        if ctx.data_opt::<PlainAnswers>().is_none() {
            return self.0.resolve(ctx, field).await;
        }
        // The members one after another; when all are written, with the braces and commas of
        // the answer, which then needs no second copy.
        let mut written = String::with_capacity(self.0.answer_len_hint());
        written.push('{');
        let mut members = Vec::new();
        let fields = |ctx: &Context<'_>, out: &mut String| self.0.plain_field(ctx, out);
        if write_fields(
            ctx,
            &T::type_name(),
            &fields,
            &mut written,
            Some(&mut members),
        )
        .is_none()
        {
            // A selection this path leaves to async-graphql (see `for_each_field`).
            return resolve_container(ctx, &self.0).await;
        }
        if members.is_empty() {
            // async-graphql answers an object without fields as null.
            return Ok(Value::Null);
        }
        self.0.answer_written(written.len());
        if members
            .iter()
            .all(|member| matches!(member, Member::Written(_)))
        {
            written.push('}');
            return Ok(json::raw(written));
        }
        // The other fields all at once, as async-graphql would (one loader batch for all).
        let mut answers = join_all(members.iter().filter_map(|member| match member {
            Member::Written(_) => None,
            Member::Slow(field) => {
                let ctx = ctx.clone();
                let object = &self.0;
                let future: BoxFuture<'_, _> =
                    Box::pin(async move { object.resolve_field(&ctx.with_field(field)).await });
                Some(future)
            }
        }))
        .await
        .into_iter();
        let mut out = String::with_capacity(written.len() + 2);
        for member in &members {
            let start = out.len();
            out.push(if start == 0 { '{' } else { ',' });
            match member {
                Member::Written(range) => out.push_str(&written[range.clone()]),
                Member::Slow(field) => match answers.next() {
                    Some(Ok(value)) => {
                        json::write_key(&mut out, &field.node.response_key().node);
                        json::write_value(&mut out, &value.unwrap_or_default());
                    }
                    // A failed field is left out of the answer, as async-graphql does.
                    Some(Err(error)) => {
                        ctx.add_error(error);
                        out.truncate(start);
                    }
                    None => out.truncate(start),
                },
            }
        }
        if out.is_empty() {
            return Ok(Value::Null);
        }
        out.push('}');
        Ok(json::raw(out))
    }
}

/// Writes the answer to an object-valued field, when every field selected of the object is
/// plain.
pub fn object<T: PlainFields>(ctx: &Context<'_>, out: &mut String, object: &T) -> Option<()> {
    object_of::<T>(ctx, out, |ctx, out| object.plain_field(ctx, out))
}

/// Writes the answer to a list-valued field, when every item's selected fields are all plain.
pub fn list<T: PlainFields>(
    ctx: &Context<'_>,
    out: &mut String,
    items: impl IntoIterator<Item = T>,
) -> Option<()> {
    list_of::<T, _>(ctx, out, items, |item, ctx, out| item.plain_field(ctx, out))
}

/// [`object`] of a value that is not itself a `T` but answers `T`'s plain fields with
/// `fields` (a row borrowed from the loaded investigation, say, where a `T` would own a copy).
pub fn object_of<T: PlainFields>(
    ctx: &Context<'_>,
    out: &mut String,
    fields: impl Fn(&Context<'_>, &mut String) -> Option<()>,
) -> Option<()> {
    let set = ctx.with_selection_set(&ctx.item.node.selection_set);
    write_object(&set, &T::type_name(), out, &fields)
}

/// [`list`] of items that answer `T`'s plain fields with `fields`, as [`object_of`].
pub fn list_of<T: PlainFields, I>(
    ctx: &Context<'_>,
    out: &mut String,
    items: impl IntoIterator<Item = I>,
    fields: impl Fn(&I, &Context<'_>, &mut String) -> Option<()>,
) -> Option<()> {
    let set = ctx.with_selection_set(&ctx.item.node.selection_set);
    let type_name = T::type_name();
    out.push('[');
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_object(&set, &type_name, out, &|ctx, out| fields(&item, ctx, out))?;
    }
    out.push(']');
    Some(())
}

/// `{…}` of the selected fields of an object of the type named `type_name`, all plain (null
/// without fields, as async-graphql answers).
fn write_object(
    set: &ContextSelectionSet<'_>,
    type_name: &str,
    out: &mut String,
    fields: &impl Fn(&Context<'_>, &mut String) -> Option<()>,
) -> Option<()> {
    let start = out.len();
    out.push('{');
    write_fields(set, type_name, fields, out, None)?;
    if out.len() == start + 1 {
        out.truncate(start);
        out.push_str("null");
    } else {
        out.push('}');
    }
    Some(())
}

/// Writes the selected fields of an object of the type named `type_name` in order as
/// `"key":value`, each answered by `fields`, separated by commas, to `out`. Without
/// `members`, all of them plain or `None`. With `members`, each written member's place
/// (without its comma) is recorded there, and the fields that are not plain are recorded as
/// slow and left out. `None` also when the selection holds what only async-graphql answers
/// correctly.
fn write_fields<'a>(
    ctx: &ContextSelectionSet<'a>,
    type_name: &str,
    fields: &impl Fn(&Context<'_>, &mut String) -> Option<()>,
    out: &mut String,
    mut members: Option<&mut Vec<Member<'a>>>,
) -> Option<()> {
    let mut written = 0;
    let complete = for_each_field(ctx, &ctx.item.node, type_name, &mut |field| {
        let before = out.len();
        if written > 0 {
            out.push(',');
        }
        let start = out.len();
        json::write_key(out, &field.node.response_key().node);
        let answered = if field.node.name.node == "__typename" {
            write_str(out, type_name);
            Some(())
        } else {
            fields(&ctx.with_field(field), out)
        };
        match (answered, members.as_deref_mut()) {
            (Some(()), members) => {
                written += 1;
                if let Some(members) = members {
                    members.push(Member::Written(start..out.len()));
                }
            }
            (None, Some(members)) => {
                out.truncate(before);
                members.push(Member::Slow(field));
            }
            (None, None) => return false,
        }
        true
    });
    complete.then_some(())
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

/// Writes an `ID` field's answer.
pub fn id(out: &mut String, id: uuid::Uuid) {
    out.push('"');
    out.push_str(
        id.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
    out.push('"');
}

/// Writes a `String` field's answer.
pub fn string(out: &mut String, text: &str) {
    write_str(out, text);
}

/// Writes a nullable `String` field's answer.
pub fn optional_string(out: &mut String, text: Option<&str>) {
    match text {
        Some(text) => write_str(out, text),
        None => out.push_str("null"),
    }
}

/// Writes a `[String!]!` field's answer.
pub fn strings<S: AsRef<str>>(out: &mut String, texts: &[S]) {
    out.push('[');
    for (index, text) in texts.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_str(out, text.as_ref());
    }
    out.push(']');
}

/// Writes a `Boolean` field's answer.
pub fn boolean(out: &mut String, value: bool) {
    out.push_str(if value { "true" } else { "false" });
}

/// Writes an `Int` field's answer.
pub fn int(out: &mut String, value: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// Writes a `DateTime` field's answer: what its `ScalarType` gives (`to_rfc3339`), written
/// directly (through `fmt`, a dashboard's 250 timestamps took ~680 instructions each).
pub fn date_time(out: &mut String, at: &DateTime<Utc>) {
    out.push('"');
    rfc3339(out, at);
    out.push('"');
}

/// Writes a nullable `DateTime` field's answer.
pub fn optional_date_time(out: &mut String, at: Option<&DateTime<Utc>>) {
    match at {
        Some(at) => date_time(out, at),
        None => out.push_str("null"),
    }
}

/// Writes an enum field's answer: the GraphQL name of `value` (`None` for a value the enum
/// does not list; the derive lists every variant).
pub fn enumeration<T: EnumType>(out: &mut String, value: T) -> Option<()> {
    let item = T::items().iter().find(|item| item.value == value)?;
    write_str(out, item.name);
    Some(())
}

/// Writes a nullable enum field's answer.
pub fn optional_enumeration<T: EnumType>(out: &mut String, value: Option<T>) -> Option<()> {
    match value {
        Some(value) => enumeration(out, value),
        None => {
            out.push_str("null");
            Some(())
        }
    }
}

/// `at.to_rfc3339()`, byte for byte: `YYYY-MM-DDTHH:MM:SS`, the fraction of a second in 3, 6
/// or 9 digits when it is not zero (as few as show every non-zero digit), `+00:00`. Years
/// outside 0–9999 and leap seconds are left to chrono.
fn rfc3339(out: &mut String, at: &DateTime<Utc>) {
    // The parts of the UTC time itself: through `DateTime`, each would add the zero offset
    // to a copy of it first.
    let utc = at.naive_utc();
    let (year, nano) = (utc.year(), utc.nanosecond());
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        out.push_str(&at.to_rfc3339());
        return;
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
    digits(&mut text, 5, utc.month(), 2);
    digits(&mut text, 8, utc.day(), 2);
    digits(&mut text, 11, utc.hour(), 2);
    digits(&mut text, 14, utc.minute(), 2);
    digits(&mut text, 17, utc.second(), 2);
    let end = match nano {
        0 => 19,
        _ if nano % 1_000_000 == 0 => digits(&mut text, 20, nano / 1_000_000, 3),
        _ if nano % 1_000 == 0 => digits(&mut text, 20, nano / 1_000, 6),
        _ => digits(&mut text, 20, nano, 9),
    };
    out.push_str(std::str::from_utf8(&text[..end]).unwrap_or_default());
    out.push_str("+00:00");
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn written(at: &DateTime<Utc>) -> String {
        let mut out = String::new();
        rfc3339(&mut out, at);
        out
    }

    /// What async-graphql's own resolver answers for `value`, as JSON.
    fn as_serde(value: impl Into<Value>) -> String {
        serde_json::to_string(&value.into()).expect("serialisable")
    }

    fn writing(write: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        write(&mut out);
        out
    }

    #[test]
    fn scalars_are_written_as_async_graphql_answers_them() {
        let uuid = uuid::Uuid::now_v7();
        assert_eq!(writing(|out| id(out, uuid)), as_serde(uuid.to_string()));
        for text in ["", "Bloemendaal", "\"quoted\"\n", "é 🙂"] {
            assert_eq!(writing(|out| string(out, text)), as_serde(text));
        }
        assert_eq!(
            writing(|out| optional_string(out, None)),
            as_serde(Value::Null)
        );
        assert_eq!(writing(|out| boolean(out, true)), as_serde(true));
        for number in [0, -1, i32::MAX, i32::MIN] {
            assert_eq!(writing(|out| int(out, number)), as_serde(number));
        }
        assert_eq!(writing(|out| int(out, i64::MAX)), as_serde(i64::MAX));
        assert_eq!(
            writing(|out| strings(out, &["a", "b\"c"])),
            as_serde(vec!["a", "b\"c"])
        );
        for phase in [
            crate::types::Phase::Proposal,
            crate::types::Phase::AdministrativeRebuttal,
        ] {
            assert_eq!(
                writing(|out| enumeration(out, phase).expect("listed")),
                as_serde(async_graphql::resolver_utils::enum_value(phase))
            );
        }
        assert_eq!(
            writing(|out| optional_enumeration::<crate::types::Phase>(out, None).expect("null")),
            "null"
        );
    }

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
            assert_eq!(written(&at), at.to_rfc3339(), "{secs} {nano}");
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
            prop_assert_eq!(written(&at), at.to_rfc3339());
        }
    }
}
