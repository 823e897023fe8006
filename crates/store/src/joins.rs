//! Reading parent rows together with the rows that refer to them, in one statement.

use crate::error::StoreResult;
use sea_orm::{ConnectionTrait, EntityTrait, JoinType, QueryOrder, QuerySelect, RelationDef};
use uuid::Uuid;

/// The join from a child table to the parent table it refers to by `foreign_key`.
pub(crate) fn to_parent<Child: EntityTrait, Parent: EntityTrait>(
    foreign_key: Child::Column,
    key: Parent::Column,
) -> RelationDef {
    RelationDef::from(
        Child::belongs_to(Parent::default())
            .from(foreign_key)
            .to(key),
    )
}

/// The join from a parent table to a child table that refers to it by `foreign_key`.
pub(crate) fn to_children<Parent: EntityTrait, Child: EntityTrait>(
    foreign_key: Child::Column,
    key: Parent::Column,
) -> RelationDef {
    to_parent::<Child, Parent>(foreign_key, key).rev()
}

/// Parents with their children in one statement: a LEFT JOIN of the children that refer to a
/// parent's `parent_key` by `foreign_key`, rows in the parents' order (which must end with
/// their key, `key` of a model), then the children's.
pub(crate) async fn with_children<C, Parent, Child>(
    db: &C,
    parents: sea_orm::Select<Parent>,
    foreign_key: Child::Column,
    parent_key: Parent::Column,
    child_order: Child::Column,
    key: impl Fn(&Parent::Model) -> Uuid,
) -> StoreResult<(Vec<Parent::Model>, Vec<Child::Model>)>
where
    C: ConnectionTrait,
    Parent: EntityTrait,
    Child: EntityTrait,
{
    let rows = parents
        .select_also(Child::default())
        .join(
            JoinType::LeftJoin,
            to_children::<Parent, Child>(foreign_key, parent_key),
        )
        .order_by_asc(child_order)
        .all(db)
        .await?;
    let mut found: Vec<Parent::Model> = Vec::new();
    let mut children = Vec::new();
    for (parent, child) in rows {
        if found.last().is_none_or(|last| key(last) != key(&parent)) {
            found.push(parent);
        }
        children.extend(child);
    }
    Ok((found, children))
}
