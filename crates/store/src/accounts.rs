//! Users, role grants, sessions and login attempts.

use crate::Db;
use crate::audit::{self, Origin};
use crate::entity::{login_attempt, role_grant, session, user};
use crate::error::{StoreError, StoreResult};
use crate::positional::Columns;
use crate::statements::{self, uuid_values};
use chrono::{DateTime, Utc};
use rkflow_domain::role::StoredGrant;
use rkflow_domain::{DomainError, Grant, GrantId, Role, Scope};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, IdenStatic, Iterable, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, RelationDef,
};
use serde_json::json;
use uuid::Uuid;

/// Normalised form of an email address (trimmed, lower case).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub async fn find_user<C: ConnectionTrait>(db: &C, id: Uuid) -> StoreResult<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}

/// A user as others see them (no password hash, no dates): what an answer names an author,
/// an approver or a rapporteur by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserCard {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub disabled: bool,
}

impl From<&user::Model> for UserCard {
    fn from(user: &user::Model) -> UserCard {
        UserCard {
            id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            disabled: user.disabled,
        }
    }
}

/// The cards of the users with these ids, in one statement (a page's authors: reading whole
/// rows, with their password hashes, cost twice as much).
pub async fn find_user_cards<C: ConnectionTrait>(
    db: &C,
    ids: &[Uuid],
) -> StoreResult<Vec<UserCard>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = statements::query_all(db, "user cards by ids", uuid_values(ids), |backend| {
        user::Entity::find()
            .select_only()
            .columns([
                user::Column::Id,
                user::Column::Email,
                user::Column::Name,
                user::Column::Disabled,
            ])
            .filter(user::Column::Id.is_in(ids.iter().copied()))
            .build(backend)
    })
    .await?;
    rows.iter()
        .map(|row| {
            // By position (`positional`), in the order selected above.
            let mut columns = Columns::of(row);
            Ok(UserCard {
                id: columns.take()?,
                email: columns.take()?,
                name: columns.take()?,
                disabled: columns.take()?,
            })
        })
        .collect()
}

pub async fn find_user_by_email<C: ConnectionTrait>(
    db: &C,
    email: &str,
) -> StoreResult<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(normalize_email(email)))
        .one(db)
        .await?)
}

pub async fn list_users<C: ConnectionTrait>(db: &C) -> StoreResult<Vec<user::Model>> {
    Ok(user::Entity::find()
        .order_by_asc(user::Column::Email)
        .all(db)
        .await?)
}

pub async fn count_users<C: ConnectionTrait>(db: &C) -> StoreResult<u64> {
    Ok(user::Entity::find().count(db).await?)
}

/// Creates an account. The hash is made by the caller (argon2 runs off the async threads).
pub async fn create_user(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    email: &str,
    name: &str,
    password_hash: &str,
) -> StoreResult<user::Model> {
    let txn = db.begin_write().await?;
    let model = create_user_in(&txn, origin, now, email, name, password_hash).await?;
    txn.commit().await?;
    Ok(model)
}

async fn create_user_in(
    txn: &DatabaseTransaction,
    origin: &Origin,
    now: DateTime<Utc>,
    email: &str,
    name: &str,
    password_hash: &str,
) -> StoreResult<user::Model> {
    let email = normalize_email(email);
    if user::Entity::find()
        .filter(user::Column::Email.eq(email.clone()))
        .one(txn)
        .await?
        .is_some()
    {
        return Err(DomainError::conflict("a user with this email address exists").into());
    }
    let model = user::Model {
        id: Uuid::now_v7(),
        email: email.clone(),
        name: name.to_string(),
        password_hash: password_hash.to_string(),
        disabled: false,
        created_at: now,
    };
    let inserted = user::Entity::insert(sea_orm::IntoActiveModel::into_active_model(model.clone()))
        .exec(txn)
        .await;
    if let Err(err) = inserted {
        let err = StoreError::from(err);
        if err.is_unique_violation() {
            return Err(DomainError::conflict("a user with this email address exists").into());
        }
        return Err(err);
    }
    audit::record(
        txn,
        origin,
        now,
        "user.created",
        json!({ "user": model.id, "email": email, "name": name }),
    )
    .await?;
    Ok(model)
}

/// Disables or enables an account; disabling revokes every session at once.
pub async fn set_disabled(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    user_id: Uuid,
    disabled: bool,
) -> StoreResult<user::Model> {
    let txn = db.begin_write().await?;
    let Some(found) = user::Entity::find_by_id(user_id)
        .lock_exclusive()
        .one(&txn)
        .await?
    else {
        return Err(DomainError::NotFound.into());
    };
    let mut active: user::ActiveModel = found.into();
    active.disabled = Set(disabled);
    let updated = active.update(&txn).await?;
    let mut revoked = 0;
    if disabled {
        revoked = revoke_sessions_of(&txn, user_id, now, None).await?;
    }
    let action = if disabled {
        "user.disabled"
    } else {
        "user.enabled"
    };
    audit::record(
        &txn,
        origin,
        now,
        action,
        json!({ "user": user_id, "sessionsRevoked": revoked }),
    )
    .await?;
    txn.commit().await?;
    Ok(updated)
}

/// Replaces a stored hash (rehash on login when the parameters rose).
pub async fn replace_password_hash(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    user_id: Uuid,
    password_hash: &str,
) -> StoreResult<()> {
    let txn = db.begin_write().await?;
    set_password_hash(&txn, user_id, password_hash).await?;
    audit::record(
        &txn,
        origin,
        now,
        "user.password_rehashed",
        json!({ "user": user_id }),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

fn grant_of(model: &role_grant::Model) -> StoreResult<StoredGrant> {
    let role = Role::parse(&model.role)
        .ok_or_else(|| StoreError::corrupt(format!("unknown role {}", model.role)))?;
    let scope = match (model.commission_id, model.municipality_id) {
        (None, None) => Scope::Global,
        (Some(c), None) => Scope::Commission(c.into()),
        (None, Some(m)) => Scope::Municipality(m.into()),
        (Some(_), Some(_)) => return Err(StoreError::corrupt("grant with two scopes")),
    };
    Ok(StoredGrant {
        id: GrantId(model.id),
        grant: Grant { role, scope },
    })
}

pub async fn grants_of<C: ConnectionTrait>(db: &C, user_id: Uuid) -> StoreResult<Vec<StoredGrant>> {
    role_grant::Entity::find()
        .filter(role_grant::Column::UserId.eq(user_id))
        .order_by_asc(role_grant::Column::CreatedAt)
        .all(db)
        .await?
        .iter()
        .map(grant_of)
        .collect()
}

/// Grants of many users at once (for lists).
pub async fn grants_of_users<C: ConnectionTrait>(
    db: &C,
    users: &[Uuid],
) -> StoreResult<Vec<(Uuid, StoredGrant)>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    role_grant::Entity::find()
        .filter(role_grant::Column::UserId.is_in(users.iter().copied()))
        .order_by_asc(role_grant::Column::CreatedAt)
        .all(db)
        .await?
        .iter()
        .map(|model| Ok((model.user_id, grant_of(model)?)))
        .collect()
}

/// Records a grant; the scope must exist (the caller checked it) and the grant must be new.
pub async fn grant_role(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    user_id: Uuid,
    grant: Grant,
) -> StoreResult<StoredGrant> {
    let txn = db.begin_write().await?;
    let stored = grant_role_in(&txn, origin, now, user_id, grant).await?;
    txn.commit().await?;
    Ok(stored)
}

async fn grant_role_in(
    txn: &DatabaseTransaction,
    origin: &Origin,
    now: DateTime<Utc>,
    user_id: Uuid,
    grant: Grant,
) -> StoreResult<StoredGrant> {
    if user::Entity::find_by_id(user_id).one(txn).await?.is_none() {
        return Err(DomainError::NotFound.into());
    }
    let existing = grants_of(txn, user_id).await?;
    if existing.iter().any(|g| g.grant == grant) {
        return Err(DomainError::conflict("the user already holds this role in this scope").into());
    }
    let (commission_id, municipality_id) = match grant.scope {
        Scope::Global => (None, None),
        Scope::Commission(c) => (Some(c.0), None),
        Scope::Municipality(m) => (None, Some(m.0)),
    };
    let model = role_grant::Model {
        id: Uuid::now_v7(),
        user_id,
        role: grant.role.as_str().to_string(),
        commission_id,
        municipality_id,
        created_at: now,
    };
    role_grant::Entity::insert(sea_orm::IntoActiveModel::into_active_model(model.clone()))
        .exec(txn)
        .await?;
    audit::record(
        txn,
        origin,
        now,
        "role.granted",
        json!({
            "grant": model.id,
            "user": user_id,
            "role": model.role,
            "commission": commission_id,
            "municipality": municipality_id,
        }),
    )
    .await?;
    grant_of(&model)
}

pub async fn revoke_role(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    grant_id: Uuid,
) -> StoreResult<()> {
    let txn = db.begin_write().await?;
    let Some(model) = role_grant::Entity::find_by_id(grant_id).one(&txn).await? else {
        return Err(DomainError::NotFound.into());
    };
    role_grant::Entity::delete_by_id(grant_id)
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        origin,
        now,
        "role.revoked",
        json!({
            "grant": grant_id,
            "user": model.user_id,
            "role": model.role,
            "commission": model.commission_id,
            "municipality": model.municipality_id,
        }),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// A new session (login) with its audit event.
#[allow(clippy::too_many_arguments)]
pub async fn create_session(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    user_id: Uuid,
    token_hash: &str,
    expires_at: DateTime<Utc>,
    account_key: &str,
) -> StoreResult<session::Model> {
    let txn = db.begin_write().await?;
    let model = session::Model {
        id: Uuid::now_v7(),
        user_id,
        token_hash: token_hash.to_string(),
        created_at: now,
        last_seen_at: now,
        expires_at,
        revoked_at: None,
        client: origin.client.clone(),
    };
    session::Entity::insert(sea_orm::IntoActiveModel::into_active_model(model.clone()))
        .exec(&txn)
        .await?;
    record_attempt(&txn, account_key, origin, true, now).await?;
    audit::record(
        &txn,
        origin,
        now,
        "auth.login_succeeded",
        json!({ "user": user_id, "session": model.id }),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// Checks the throttle and, when the account and the client address are both under their
/// limits, records this attempt as a failure at once: attempts running in parallel then count
/// each other while their passwords are being verified, so a burst gets no more guesses than
/// the limits. `None` when throttled. A reservation that turns out a success is removed with
/// [`release_login_attempt`]; a failed one stays as the failed attempt
/// ([`record_failed_login`] with `Some(reservation)`).
pub async fn reserve_login_attempt(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    account_key: &str,
    since: DateTime<Utc>,
    max_failures_per_account: u64,
    max_failures_per_client: u64,
) -> StoreResult<Option<i64>> {
    // SQLite: `begin_write` is BEGIN IMMEDIATE, so reservations run one at a time. PostgreSQL:
    // this lock mode conflicts with itself (and with inserts), so two reservations never both
    // count the same state.
    let txn = db.begin_write().await?;
    if db.is_postgres() {
        txn.execute_unprepared("LOCK TABLE login_attempt IN SHARE ROW EXCLUSIVE MODE")
            .await?;
    }
    let client = origin.client.clone().unwrap_or_default();
    let (account, per_client) = recent_failures(&txn, account_key, &client, since).await?;
    if account >= max_failures_per_account || per_client >= max_failures_per_client {
        txn.rollback().await?;
        return Ok(None);
    }
    let inserted = login_attempt::Entity::insert(login_attempt::ActiveModel {
        account_key: Set(account_key.to_string()),
        client: Set(client),
        succeeded: Set(false),
        at: Set(now),
        ..Default::default()
    })
    .exec(&txn)
    .await?;
    txn.commit().await?;
    Ok(Some(inserted.last_insert_id))
}

/// Removes the reservation of an attempt that succeeded (its success is recorded with the
/// session).
pub async fn release_login_attempt<C: ConnectionTrait>(
    db: &C,
    reservation: i64,
) -> StoreResult<()> {
    login_attempt::Entity::delete_by_id(reservation)
        .exec(db)
        .await?;
    Ok(())
}

/// A failed login: counted for throttling and audited (never with the password). With the
/// reservation of [`reserve_login_attempt`] the attempt is already counted.
pub async fn record_failed_login(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    account_key: &str,
    reason: &str,
    reservation: Option<i64>,
) -> StoreResult<()> {
    let txn = db.begin_write().await?;
    if reservation.is_none() {
        record_attempt(&txn, account_key, origin, false, now).await?;
    }
    audit::record(
        &txn,
        origin,
        now,
        "auth.login_failed",
        json!({ "account": account_key, "reason": reason }),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

async fn record_attempt<C: ConnectionTrait>(
    db: &C,
    account_key: &str,
    origin: &Origin,
    succeeded: bool,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    login_attempt::Entity::insert(login_attempt::ActiveModel {
        account_key: Set(account_key.to_string()),
        client: Set(origin.client.clone().unwrap_or_default()),
        succeeded: Set(succeeded),
        at: Set(now),
        ..Default::default()
    })
    .exec(db)
    .await?;
    Ok(())
}

/// Failed attempts since `since`, for one account and for one client address. For an
/// account, a success resets the count.
pub async fn recent_failures<C: ConnectionTrait>(
    db: &C,
    account_key: &str,
    client: &str,
    since: DateTime<Utc>,
) -> StoreResult<(u64, u64)> {
    let last_success = login_attempt::Entity::find()
        .filter(login_attempt::Column::AccountKey.eq(account_key))
        .filter(login_attempt::Column::Succeeded.eq(true))
        .filter(login_attempt::Column::At.gte(since))
        .order_by_desc(login_attempt::Column::Id)
        .one(db)
        .await?;
    let mut account = login_attempt::Entity::find()
        .filter(login_attempt::Column::AccountKey.eq(account_key))
        .filter(login_attempt::Column::Succeeded.eq(false))
        .filter(login_attempt::Column::At.gte(since));
    if let Some(success) = last_success {
        account = account.filter(login_attempt::Column::Id.gt(success.id));
    }
    let account = account.count(db).await?;
    let client = login_attempt::Entity::find()
        .filter(login_attempt::Column::Client.eq(client))
        .filter(login_attempt::Column::Succeeded.eq(false))
        .filter(login_attempt::Column::At.gte(since))
        .count(db)
        .await?;
    Ok((account, client))
}

/// The session with this token hash, its owner and the owner's grants, in one statement
/// (every authenticated request starts here).
pub async fn find_session<C: ConnectionTrait>(
    db: &C,
    token_hash: &str,
) -> StoreResult<Option<(session::Model, user::Model, Vec<StoredGrant>)>> {
    const GRANT: &str = "grant_";
    let rows = statements::query_all(
        db,
        "session with owner and grants",
        vec![token_hash.into()],
        |backend| {
            let owner = session::Entity::belongs_to(user::Entity)
                .from(session::Column::UserId)
                .to(user::Column::Id)
                .into();
            let grants = role_grant::Entity::belongs_to(user::Entity)
                .from(role_grant::Column::UserId)
                .to(user::Column::Id);
            let mut query = session::Entity::find()
                .select_also(user::Entity)
                .join(sea_orm::JoinType::InnerJoin, owner)
                .join(sea_orm::JoinType::LeftJoin, RelationDef::from(grants).rev())
                .filter(session::Column::TokenHash.eq(token_hash))
                .order_by_asc(role_grant::Column::CreatedAt)
                .into_query();
            for column in role_grant::Column::iter() {
                query.expr_as(
                    Expr::col((role_grant::Entity, column)),
                    format!("{GRANT}{}", column.as_str()),
                );
            }
            backend.build(&query)
        },
    )
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    // By position (`positional`): the session's columns, the owner's, then a grant's.
    let mut columns = Columns::of(first);
    let session: session::Model = columns.model()?;
    let owner: user::Model = columns.model()?;
    let mut owner_grants = Vec::new();
    for row in &rows {
        let mut columns = Columns::of(row);
        columns.skip::<session::Model>();
        columns.skip::<user::Model>();
        if let Some(grant) = columns.optional::<role_grant::Model>()? {
            owner_grants.push(grant_of(&grant)?);
        }
    }
    Ok(Some((session, owner, owner_grants)))
}

/// Moves the idle expiry forward (the caller limits how often).
pub async fn touch_session<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    session::Entity::update(session::ActiveModel {
        id: Set(session_id),
        last_seen_at: Set(now),
        ..Default::default()
    })
    .exec(db)
    .await?;
    Ok(())
}

pub async fn revoke_session(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    session_id: Uuid,
) -> StoreResult<()> {
    let txn = db.begin_write().await?;
    session::Entity::update(session::ActiveModel {
        id: Set(session_id),
        revoked_at: Set(Some(now)),
        ..Default::default()
    })
    .exec(&txn)
    .await?;
    audit::record(
        &txn,
        origin,
        now,
        "auth.logout",
        json!({ "session": session_id }),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Revokes a user's live sessions, except `keep`; answers how many.
async fn revoke_sessions_of<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    now: DateTime<Utc>,
    keep: Option<Uuid>,
) -> StoreResult<u64> {
    let mut update = session::Entity::update_many()
        .col_expr(
            session::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        update = update.filter(session::Column::Id.ne(keep));
    }
    Ok(update.exec(db).await?.rows_affected)
}

/// Whether any ADMIN exists (for the first-admin bootstrap).
pub async fn admin_exists<C: ConnectionTrait>(db: &C) -> StoreResult<bool> {
    Ok(role_grant::Entity::find()
        .filter(role_grant::Column::Role.eq(Role::Admin.as_str()))
        .count(db)
        .await?
        > 0)
}

/// Used by `rkflow admin create`: the user and the ADMIN grant in one transaction.
pub async fn create_admin(
    db: &Db,
    now: DateTime<Utc>,
    email: &str,
    name: &str,
    password_hash: &str,
) -> StoreResult<user::Model> {
    let origin = Origin {
        actor: None,
        client: Some("cli".into()),
    };
    let txn = db.begin_write().await?;
    let created = create_user_in(&txn, &origin, now, email, name, password_hash).await?;
    grant_role_in(
        &txn,
        &origin,
        now,
        created.id,
        Grant {
            role: Role::Admin,
            scope: Scope::Global,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

async fn set_password_hash(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    password_hash: &str,
) -> StoreResult<()> {
    user::Entity::update(user::ActiveModel {
        id: Set(user_id),
        password_hash: Set(password_hash.to_string()),
        ..Default::default()
    })
    .exec(txn)
    .await?;
    Ok(())
}

/// A user's sessions that are neither revoked nor past their absolute expiry, newest first.
pub async fn live_sessions<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<Vec<session::Model>> {
    Ok(session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .order_by_desc(session::Column::CreatedAt)
        .order_by_desc(session::Column::Id)
        .all(db)
        .await?)
}

pub async fn find_session_by_id<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
) -> StoreResult<Option<session::Model>> {
    Ok(session::Entity::find_by_id(session_id).one(db).await?)
}

/// Revokes every live session of a user (optionally keeping one), with its audit event.
pub async fn revoke_all_sessions(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> StoreResult<u64> {
    let txn = db.begin_write().await?;
    let revoked = revoke_sessions_of(&txn, user_id, now, keep).await?;
    audit::record(
        &txn,
        origin,
        now,
        "auth.sessions_revoked",
        json!({ "user": user_id, "revoked": revoked, "kept": keep }),
    )
    .await?;
    txn.commit().await?;
    Ok(revoked)
}

/// Replaces a user's password hash (a password change), revoking their other sessions when
/// asked, with its audit event.
pub async fn change_password(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    user_id: Uuid,
    password_hash: &str,
    keep_session: Option<Uuid>,
    revoke_others: bool,
) -> StoreResult<u64> {
    let txn = db.begin_write().await?;
    set_password_hash(&txn, user_id, password_hash).await?;
    let mut revoked = 0;
    if revoke_others {
        revoked = revoke_sessions_of(&txn, user_id, now, keep_session).await?;
    }
    audit::record(
        &txn,
        origin,
        now,
        "user.password_changed",
        json!({ "user": user_id, "sessionsRevoked": revoked }),
    )
    .await?;
    txn.commit().await?;
    Ok(revoked)
}
