//! The SQL texts of the reads every request makes, built once per shape.
//!
//! sea-orm builds a statement's SQL from its query tree on every call: for the four statements
//! of the benchmark's investigation query (the session, the investigation with its snapshot,
//! its commissions, the users it names) that was about a tenth of the server's instructions
//! per request (BENCHMARKS.md). Their texts depend only on the backend and on how many ids
//! they are given, so [`reuse`] keeps each text by (name, backend, number of values) and pairs
//! it with the request's own values.
//!
//! A text is kept only when building it gave exactly the values the caller passes, in the same
//! order: a statement whose values the caller does not predict is built every time, never run
//! with the wrong ones. Lists longer than [`MAX_KEPT_VALUES`] are built every time, so the texts
//! kept stay few (one per name, backend and list length).

use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, Value, Values};
use std::collections::HashMap;
use std::mem::Discriminant;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use uuid::Uuid;

/// The longest list of values whose text is kept (a page of at most 100 investigations names
/// far fewer commissions and users).
pub const MAX_KEPT_VALUES: usize = 128;

type Key = (&'static str, Discriminant<DbBackend>, usize);

static KEPT: LazyLock<Mutex<HashMap<Key, Arc<str>>>> = LazyLock::new(Mutex::default);

/// Runs the statement that `build` makes for the connection's backend and `values` ([`reuse`]).
pub(crate) async fn query_all<C: ConnectionTrait>(
    db: &C,
    name: &'static str,
    values: Vec<Value>,
    build: impl FnOnce(DbBackend) -> Statement,
) -> Result<Vec<QueryResult>, DbErr> {
    let backend = db.get_database_backend();
    db.query_all_raw(reuse(backend, name, values, || build(backend)))
        .await
}

/// The statement that `build` makes for `values`: its text the one kept for this name, backend
/// and number of values when there is one, else built now (and kept when its values are
/// `values`). `build` must make the same text for any values of the same number.
fn reuse(
    backend: DbBackend,
    name: &'static str,
    values: Vec<Value>,
    build: impl FnOnce() -> Statement,
) -> Statement {
    let key = (name, std::mem::discriminant(&backend), values.len());
    let keepable = values.len() <= MAX_KEPT_VALUES;
    if keepable && let Some(text) = lock().get(&key).cloned() {
        return Statement::from_sql_and_values(backend, text.as_ref(), values);
    }
    let built = build();
    let predicted = match &built.values {
        Some(Values(built_values)) => *built_values == values,
        None => values.is_empty(),
    };
    if keepable && predicted {
        lock().insert(key, Arc::from(built.sql.as_str()));
    }
    built
}

/// Ids as the values of an `IN` list, in their order.
pub(crate) fn uuid_values(ids: &[Uuid]) -> Vec<Value> {
    ids.iter().map(|id| Value::from(*id)).collect()
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<Key, Arc<str>>> {
    // Every entry is whole once inserted; a panic elsewhere cannot leave one half-written.
    KEPT.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::user;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryTrait};

    fn users(backend: DbBackend, ids: &[Uuid]) -> Statement {
        user::Entity::find()
            .filter(user::Column::Id.is_in(ids.iter().copied()))
            .build(backend)
    }

    fn ids(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::now_v7()).collect()
    }

    #[test]
    fn a_kept_text_runs_with_each_calls_own_values() {
        for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
            for n in [1, 2, 7] {
                let first = ids(n);
                let built = reuse(backend, "test users", uuid_values(&first), || {
                    users(backend, &first)
                });
                assert_eq!(built, users(backend, &first));
                let second = ids(n);
                let kept = reuse(backend, "test users", uuid_values(&second), || {
                    panic!("the text of {n} values on {backend:?} was not kept")
                });
                assert_eq!(kept, users(backend, &second));
            }
        }
    }

    #[test]
    fn a_statement_whose_values_were_not_predicted_is_built_every_time() {
        let backend = DbBackend::Postgres;
        let first = ids(2);
        let mut reversed = uuid_values(&first);
        reversed.reverse();
        let built = reuse(backend, "test unpredicted", reversed.clone(), || {
            users(backend, &first)
        });
        assert_eq!(
            built,
            users(backend, &first),
            "the statement built runs as built"
        );
        let second = ids(2);
        let again = reuse(backend, "test unpredicted", uuid_values(&second), || {
            users(backend, &second)
        });
        assert_eq!(again, users(backend, &second));
    }

    #[test]
    fn long_lists_are_built_every_time() {
        let backend = DbBackend::Sqlite;
        let many = ids(MAX_KEPT_VALUES + 1);
        reuse(backend, "test long", uuid_values(&many), || {
            users(backend, &many)
        });
        let mut built = false;
        reuse(backend, "test long", uuid_values(&many), || {
            built = true;
            users(backend, &many)
        });
        assert!(built);
    }
}
