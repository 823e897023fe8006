//! The audit chain: each event's hash is SHA-256 over the previous event's hash and a
//! canonical encoding of the event, so that editing, removing or reordering any stored event
//! breaks every later hash.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

/// The hash before the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields of an audit event that the chain covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFields<'a> {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: Option<&'a str>,
    pub action: &'a str,
    pub investigation: Option<&'a str>,
    /// Canonical JSON (sorted keys, no insignificant whitespace) of the changed values.
    pub data: &'a str,
    /// Where the request came from (client address), when known.
    pub origin: Option<&'a str>,
}

/// The canonical encoding: one field per line, length-prefixed so no field can run into the
/// next.
pub fn canonical(fields: &EventFields<'_>) -> String {
    let mut out = String::new();
    let mut push = |name: &str, value: &str| {
        out.push_str(name);
        out.push(':');
        out.push_str(&value.len().to_string());
        out.push(':');
        out.push_str(value);
        out.push('\n');
    };
    push("seq", &fields.seq.to_string());
    push(
        "at",
        &fields.at.to_rfc3339_opts(SecondsFormat::Micros, true),
    );
    push("actor", fields.actor.unwrap_or(""));
    push("action", fields.action);
    push("investigation", fields.investigation.unwrap_or(""));
    push("data", fields.data);
    push("origin", fields.origin.unwrap_or(""));
    out
}

/// The hash of an event chained to its predecessor's.
pub fn chain_hash(previous_hash: &str, fields: &EventFields<'_>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical(fields).as_bytes());
    hex::encode(hasher.finalize())
}

/// Result of recomputing the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub intact: bool,
    pub events_checked: i64,
    pub first_broken_seq: Option<i64>,
}

/// Walks stored events in sequence order (`(fields, stored_hash)`) and reports the first whose
/// stored hash differs from the recomputed one, or a gap in the sequence.
pub fn verify<'a>(
    events: impl IntoIterator<Item = (EventFields<'a>, &'a str)>,
    start_previous_hash: &str,
    start_seq: i64,
) -> Verification {
    let mut previous = start_previous_hash.to_string();
    let mut expected_seq = start_seq;
    let mut checked = 0;
    #[allow(clippy::explicit_counter_loop)] // `checked` is reported, not only an index
    for (fields, stored) in events {
        checked += 1;
        let recomputed = chain_hash(&previous, &fields);
        if fields.seq != expected_seq || recomputed != stored {
            return Verification {
                intact: false,
                events_checked: checked,
                first_broken_seq: Some(fields.seq.min(expected_seq)),
            };
        }
        previous = stored.to_string();
        expected_seq += 1;
    }
    Verification {
        intact: true,
        events_checked: checked,
        first_broken_seq: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, action: &'static str) -> EventFields<'static> {
        EventFields {
            seq,
            at: DateTime::from_timestamp(1_571_911_200, 0).unwrap(),
            actor: Some("u1"),
            action,
            investigation: None,
            data: "{}",
            origin: None,
        }
    }

    #[test]
    fn an_edited_event_is_named() {
        let events = [event(1, "a"), event(2, "b"), event(3, "c")];
        let mut hashes = Vec::new();
        let mut previous = GENESIS_HASH.to_string();
        for e in &events {
            previous = chain_hash(&previous, e);
            hashes.push(previous.clone());
        }
        let ok = verify(
            events
                .iter()
                .cloned()
                .zip(hashes.iter().map(String::as_str)),
            GENESIS_HASH,
            1,
        );
        assert!(ok.intact);
        assert_eq!(ok.events_checked, 3);

        let mut tampered = events.clone();
        tampered[1].action = "x";
        let broken = verify(
            tampered
                .iter()
                .cloned()
                .zip(hashes.iter().map(String::as_str)),
            GENESIS_HASH,
            1,
        );
        assert_eq!(broken.first_broken_seq, Some(2));
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        let mut a = event(1, "ab");
        a.data = "c";
        let mut b = event(1, "a");
        b.data = "bc";
        assert_ne!(canonical(&a), canonical(&b));
    }
}
