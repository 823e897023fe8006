//! Rows of the hot reads decoded by the place of their columns, not by their names.
//!
//! sea-orm's `FromQueryResult` finds every column by its name: on PostgreSQL twice (sqlx looks
//! the name up for the type check and again for the decode), and for a joined model under a
//! prefixed name that it first formats into a new string. That was some 700–1,100 instructions
//! a column: ~11 k for an investigation row, ~12 k for a commission row with its municipality,
//! ~4 k for a user — together a sixth of a dashboard's instructions (BENCHMARKS.md). Here the
//! columns are taken in the order `Entity::find()` selects them (`Column::iter()`), which is
//! the order of the model's fields; the tests hold every model listed here to its entity. On
//! PostgreSQL a value is decoded without sea-orm's and sqlx's type checks ([`Columns::take`]).
//! Together: an investigation row (with its snapshot's format and digest, still read by name)
//! from ~11 k instructions to ~4.4 k.

use crate::entity::{commission, investigation, municipality, role_grant, session, user};
use sea_orm::sqlx::{self, Postgres, Row};
use sea_orm::{DbErr, QueryResult, TryGetable};
use uuid::Uuid;

/// The columns of one row, taken one after another from a place in the select.
pub(crate) struct Columns<'r> {
    row: &'r QueryResult,
    next: usize,
}

impl<'r> Columns<'r> {
    /// The row's columns from the first on.
    pub(crate) fn of(row: &'r QueryResult) -> Columns<'r> {
        Columns { row, next: 0 }
    }

    /// The next column's value. On PostgreSQL decoded straight from the row, without the
    /// type check sea-orm and sqlx each make (comparing the column's type with every type the
    /// value could be read from: ~200 instructions a column, twice): the type is the entity's,
    /// which the migrations give the column, and a value that does not decode is an error all
    /// the same.
    pub(crate) fn take<T>(&mut self) -> Result<T, DbErr>
    where
        T: TryGetable + for<'v> sqlx::Decode<'v, Postgres>,
    {
        let value = self.at(self.next);
        self.next += 1;
        value
    }

    fn at<T>(&self, at: usize) -> Result<T, DbErr>
    where
        T: TryGetable + for<'v> sqlx::Decode<'v, Postgres>,
    {
        match self.row.try_as_pg_row() {
            Some(row) => row
                .try_get_unchecked(at)
                .map_err(|err| DbErr::Type(format!("column {at}: {err}"))),
            None => self.row.try_get_by_index(at),
        }
    }

    /// The next columns, a model of `M` (as `Entity::find()` selects it).
    pub(crate) fn model<M: Positional>(&mut self) -> Result<M, DbErr> {
        M::take(self)
    }

    /// Passes over the columns of a model of `M`.
    pub(crate) fn skip<M: Positional>(&mut self) {
        self.next += M::COLUMNS.len();
    }

    /// The next columns, a model of `M` from a left join: `None` when its first column (its
    /// id) is null. Its columns are passed over either way.
    pub(crate) fn optional<M: Positional>(&mut self) -> Result<Option<M>, DbErr> {
        let id: Option<Uuid> = self.at(self.next)?;
        if id.is_none() {
            self.skip::<M>();
            return Ok(None);
        }
        M::take(self).map(Some)
    }
}

/// A model whose columns can be taken by their place.
pub(crate) trait Positional: Sized {
    /// Its columns' names, in the order they are taken (= the entity's `Column::iter()`).
    const COLUMNS: &'static [&'static str];

    fn take(columns: &mut Columns<'_>) -> Result<Self, DbErr>;
}

/// Implements [`Positional`] for a model from the list of its fields in column order (a field
/// left out does not compile; a list out of order fails `columns_are_in_the_entities_order`).
macro_rules! positional {
    ($($model:ty { $($field:ident),+ $(,)? })+) => {$(
        impl Positional for $model {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),+];

            fn take(columns: &mut Columns<'_>) -> Result<Self, DbErr> {
                Ok(Self { $($field: columns.take()?),+ })
            }
        }
    )+};
}

positional! {
    investigation::Model {
        id, title, phase, suspended, suspended_at, research_questions, scope_start, scope_end,
        rebuttal_mode, rebuttal_due_date, proposal_approved, published_at, created_by,
        created_at,
    }
    user::Model { id, email, name, password_hash, disabled, created_at }
    commission::Model { id, name, rebuttal_term_days, factual_check_term_days, created_at }
    municipality::Model { id, name, council_id, college_id, created_at }
    session::Model {
        id, user_id, token_hash, created_at, last_seen_at, expires_at, revoked_at, client,
    }
    role_grant::Model { id, user_id, role, commission_id, municipality_id, created_at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{EntityTrait, Iterable};

    fn names<E: EntityTrait>() -> Vec<String> {
        E::Column::iter()
            .map(|column| sea_orm::IdenStatic::as_str(&column).to_string())
            .collect()
    }

    fn listed<M: Positional>() -> Vec<String> {
        M::COLUMNS.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn columns_are_in_the_entities_order() {
        assert_eq!(
            listed::<investigation::Model>(),
            names::<investigation::Entity>()
        );
        assert_eq!(listed::<user::Model>(), names::<user::Entity>());
        assert_eq!(listed::<commission::Model>(), names::<commission::Entity>());
        assert_eq!(
            listed::<municipality::Model>(),
            names::<municipality::Entity>()
        );
        assert_eq!(listed::<session::Model>(), names::<session::Entity>());
        assert_eq!(listed::<role_grant::Model>(), names::<role_grant::Entity>());
    }
}
