//! The query root.

use crate::auth;
use crate::context::{load_failed, loaders, request, session, state, view};
use crate::error::{ApiError, ApiResult};
use crate::plain::Plain;
use crate::types::{
    AuditEventConnection, AuditEventEdge, AuditEventObject, AuditVerification, CommissionObject,
    CouncilDecision, InvestigationConnection, InvestigationEdge, InvestigationObject,
    MunicipalityObject, PageInfo, Phase, RecommendationAddressee, RegisterConnection, RegisterEdge,
    RegisterEntryObject, SessionObject, UserObject, parse_id, parse_input_id,
};
use async_graphql::{Context, ID, Lookahead, Object};
use base64::Engine;
use rkflow_domain::role::{AdminAction, authorize_admin};
use rkflow_domain::visibility::{ListingFilter, listing_filter};
use rkflow_domain::{Action, Actor};
use rkflow_store::accounts;
use rkflow_store::investigations::Loaded;
use rkflow_store::investigations::RegisterFilter;
use rkflow_store::{audit, investigations, organisation};
use std::sync::Arc;
use uuid::Uuid;

/// Default and largest page sizes.
pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

pub fn encode_cursor(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

pub fn decode_cursor(field: &str, cursor: &str) -> ApiResult<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::bad_input(field, "not a cursor this server issued"))
}

/// The complexity of a page: its size (the default when not given) times one node's cost.
pub fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let size = first.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize;
    1 + size * child_complexity
}

pub fn page_size(first: Option<i32>) -> ApiResult<u64> {
    match first.unwrap_or(DEFAULT_PAGE) {
        n if (0..=MAX_PAGE).contains(&n) => Ok(n as u64),
        _ => Err(ApiError::bad_input(
            "first",
            format!("between 0 and {MAX_PAGE}"),
        )),
    }
}

/// Loads an investigation for the caller: NOT_FOUND when it does not exist or they may not
/// see it.
pub async fn visible_investigation(ctx: &Context<'_>, id: Uuid) -> ApiResult<InvestigationObject> {
    let loaded = loaders(ctx)
        .investigations
        .load_one(id)
        .await
        .map_err(load_failed)?
        .ok_or_else(ApiError::not_found)?;
    // Its commissions and their municipalities came with it: no second read when a field
    // asks for them (a deadline's or a response's college, say).
    feed_commissions(ctx, [&*loaded]);
    InvestigationObject::for_actor(loaded, &request(ctx).actor()).ok_or_else(ApiError::not_found)
}

/// Puts the users, commissions and municipalities a page of investigations refers to into the
/// request's loader caches: the users the query asks for in one batch, the commissions and
/// their municipalities as loaded with the investigations. The nested fields of the nodes are
/// then answered from the caches (plain fields at once, `crate::plain`), so a page costs the
/// same statements however long it is and however the executor interleaves its fields (a batch
/// that fires while later nodes are still being resolved would otherwise be followed by
/// another).
async fn prime_loaders<'a>(
    ctx: &Context<'_>,
    nodes: impl Iterator<Item = &'a Arc<Loaded>>,
) -> ApiResult<()> {
    let nodes: Vec<&Loaded> = nodes.map(|loaded| &**loaded).collect();
    let asked = NamedUsers::asked(ctx.look_ahead().field("edges").field("node"));
    prime_users(ctx, &asked, &nodes).await?;
    feed_commissions(ctx, nodes);
    Ok(())
}

/// Loads the users `asked` names in `nodes` in one batch, and keeps them for the plain fields
/// (an author's name is then answered at once).
async fn prime_users(ctx: &Context<'_>, asked: &NamedUsers, nodes: &[&Loaded]) -> ApiResult<()> {
    // Sorted once as integers and deduplicated (inserting them into an ordered set of UUIDs
    // took 2.4 % of the dashboard's instructions, sorting the UUIDs themselves nearly as much;
    // this half).
    let mut users: Vec<u128> = Vec::new();
    for loaded in nodes {
        asked.collect(loaded, &mut users);
    }
    users.sort_unstable();
    users.dedup();
    let users: Vec<Uuid> = users.into_iter().map(Uuid::from_u128).collect();
    loaders(ctx).read_users(&users).await
}

/// Which of the users a page's nodes name the query asks for. A dashboard asks for the latest
/// version's author alone: some 250 ids a page, where every version's author would be 1,300 ids
/// (reading those rows was a tenth of its instructions). A user asked for another way (a
/// response's version's author, or the author of a version older than the latest that the
/// caller sees as their latest) is loaded when resolved: one batch more, whatever the page's
/// length.
struct NamedUsers {
    every_author: bool,
    latest_authors: bool,
    approvers: bool,
    rapporteurs: bool,
}

impl NamedUsers {
    /// From the selection of an investigation (`node`).
    fn asked(node: Lookahead<'_>) -> NamedUsers {
        let documents = node.field("documents");
        NamedUsers {
            every_author: documents.field("versions").field("author").exists(),
            latest_authors: documents.field("latestVersion").field("author").exists(),
            approvers: node.field("approvals").field("approvedBy").exists(),
            rapporteurs: node.field("rapporteurs").field("user").exists(),
        }
    }

    fn collect(&self, loaded: &Loaded, users: &mut Vec<u128>) {
        let versions = &loaded.versions;
        if self.every_author {
            users.extend(versions.iter().map(|v| v.author_id.as_u128()));
        } else if self.latest_authors {
            // Versions come by document, then number: the last of each document's run.
            users.extend(
                versions
                    .iter()
                    .enumerate()
                    .filter(|(i, v)| {
                        versions
                            .get(i + 1)
                            .is_none_or(|next| next.document_id != v.document_id)
                    })
                    .map(|(_, v)| v.author_id.as_u128()),
            );
        }
        if self.approvers {
            users.extend(loaded.approvals.iter().map(|a| a.approved_by.as_u128()));
        }
        if self.rapporteurs {
            users.extend(loaded.rapporteurs.iter().map(|r| r.user_id.as_u128()));
        }
    }
}

/// Hands the commissions loaded with investigations, and their municipalities, to the
/// request's loaders.
fn feed_commissions<'a>(ctx: &Context<'_>, investigations: impl IntoIterator<Item = &'a Loaded>) {
    let mut commissions = Vec::new();
    let mut municipalities = Vec::new();
    for loaded in investigations {
        for c in &loaded.commissions {
            municipalities.extend(c.municipalities.iter().map(|m| (m.id, m.clone())));
            commissions.push((c.commission.id, c.clone()));
        }
    }
    loaders(ctx).feed_commissions(commissions, municipalities);
}

async fn investigation_page(
    ctx: &Context<'_>,
    filter: &ListingFilter,
    actor: &Actor,
    first: Option<i32>,
    after: Option<String>,
    phase: Option<Phase>,
) -> ApiResult<Plain<InvestigationConnection>> {
    let first = page_size(first)?;
    let after = match after {
        Some(cursor) => Some(
            Uuid::parse_str(&decode_cursor("after", &cursor)?)
                .map_err(|_| ApiError::bad_input("after", "not a cursor this server issued"))?,
        ),
        None => None,
    };
    let page = investigations::list(view(ctx), filter, phase.map(Into::into), after, first).await?;
    let found: Vec<Arc<Loaded>> = page.investigations;
    prime_loaders(ctx, found.iter()).await?;
    let edges: Vec<InvestigationEdge> = found
        .into_iter()
        .filter_map(|loaded| InvestigationObject::for_actor(loaded, actor))
        .map(|node| InvestigationEdge {
            cursor: encode_cursor(&node.loaded.row.id.to_string()),
            node: Plain(node),
        })
        .collect();
    Ok(Plain(InvestigationConnection {
        page_info: PageInfo {
            has_next_page: page.has_next,
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        },
        edges,
        total_count: i32::try_from(page.total).unwrap_or(i32::MAX),
    }))
}

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The logged-in user; null without a session.
    async fn me(&self, ctx: &Context<'_>) -> Option<UserObject> {
        request(ctx)
            .session
            .as_ref()
            .map(|s| UserObject::own(&s.user))
    }

    /// Live sessions: the caller's own, or (ADMIN) another user's.
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
    ) -> ApiResult<Vec<SessionObject>> {
        let session = session(ctx)?;
        let user = match &user_id {
            Some(id) => {
                let id = parse_input_id("userId", id)?;
                if id != session.user.id {
                    authorize_admin(&session.actor, AdminAction::ManageSessions)?;
                }
                id
            }
            None => session.user.id,
        };
        let state = state(ctx);
        let now = state.clock.now();
        Ok(accounts::live_sessions(view(ctx), user, now)
            .await?
            .into_iter()
            .map(|model| SessionObject {
                current: model.id == session.id,
                expires_at: auth::session_expiry(&state.auth, model.created_at, model.last_seen_at)
                    .min(model.expires_at),
                model,
            })
            .filter(|s| s.expires_at > now)
            .collect())
    }

    async fn municipalities(&self, ctx: &Context<'_>) -> ApiResult<Vec<MunicipalityObject>> {
        session(ctx)?;
        Ok(organisation::municipalities(view(ctx))
            .await?
            .into_iter()
            .map(MunicipalityObject)
            .collect())
    }

    async fn commissions(&self, ctx: &Context<'_>) -> ApiResult<Vec<CommissionObject>> {
        session(ctx)?;
        Ok(organisation::commissions(view(ctx))
            .await?
            .into_iter()
            .map(CommissionObject)
            .collect())
    }

    /// Null when it does not exist or the caller may not see it: the two are indistinguishable.
    async fn investigation(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<Option<Plain<InvestigationObject>>> {
        let Ok(id) = parse_id(&id) else {
            return Ok(None);
        };
        match visible_investigation(ctx, id).await {
            Ok(found) => {
                // Up front, in the batch they would otherwise load in, for the plain fields.
                prime_users(ctx, &NamedUsers::asked(ctx.look_ahead()), &[&found.loaded]).await?;
                Ok(Some(Plain(found)))
            }
            Err(err) if err.code == crate::error::Code::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Only what the caller may see, newest first.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn investigations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        phase: Option<Phase>,
    ) -> ApiResult<Plain<InvestigationConnection>> {
        let actor = request(ctx).actor();
        let filter = listing_filter(&actor);
        investigation_page(ctx, &filter, &actor, first, after, phase).await
    }

    /// No login needed: investigations whose bundle has been published.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn published_investigations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Plain<InvestigationConnection>> {
        let filter = ListingFilter {
            published: true,
            ..ListingFilter::default()
        };
        investigation_page(ctx, &filter, &Actor::anonymous(), first, after, None).await
    }

    /// The recommendations register ("aanbevelingenmonitor"): every recommendation of the
    /// submitted investigations the caller may read recommendations of, once per concerned
    /// municipality with that council's current decision, the college's position and the
    /// implementation reports; newest first. Filters: addressee, current decision,
    /// municipality.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn recommendation_register(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        addressee: Option<RecommendationAddressee>,
        decision: Option<CouncilDecision>,
        municipality_id: Option<ID>,
    ) -> ApiResult<RegisterConnection> {
        session(ctx)?;
        let actor = request(ctx).actor();
        let first = page_size(first)?;
        let after = match after {
            Some(cursor) => {
                let text = decode_cursor("after", &cursor)?;
                let parsed = text
                    .split_once(':')
                    .and_then(|(r, m)| Some((Uuid::parse_str(r).ok()?, Uuid::parse_str(m).ok()?)));
                Some(parsed.ok_or_else(|| {
                    ApiError::bad_input("after", "not a cursor this server issued")
                })?)
            }
            None => None,
        };
        let municipality = match &municipality_id {
            Some(id) => Some(parse_input_id("municipalityId", id)?),
            None => None,
        };
        // Recommendations are not public: only the roles that read them count, not the
        // public's view of published bundles.
        let listing = ListingFilter {
            published: false,
            ..listing_filter(&actor)
        };
        let filter = RegisterFilter {
            addressee: addressee.map(Into::into),
            decision: decision.map(Into::into),
            municipality,
        };
        let page = investigations::register(view(ctx), &listing, &filter, after, first).await?;
        let ids: Vec<Uuid> = page.keys.iter().map(|k| k.investigation).collect();
        let found = loaders(ctx)
            .investigations
            .load_many(ids.iter().copied())
            .await
            .map_err(load_failed)?;
        let mut edges = Vec::with_capacity(page.keys.len());
        for key in &page.keys {
            let Some(investigation) = found
                .get(&key.investigation)
                .cloned()
                .and_then(|loaded| InvestigationObject::for_actor(loaded, &actor))
            else {
                continue;
            };
            let Some(recommendation) = investigation
                .recommendation_objects()
                .into_iter()
                .find(|r| r.model.id == key.recommendation)
            else {
                continue;
            };
            edges.push(RegisterEdge {
                cursor: encode_cursor(&format!("{}:{}", key.recommendation, key.municipality)),
                node: RegisterEntryObject {
                    investigation,
                    recommendation,
                    municipality: key.municipality,
                },
            });
        }
        Ok(RegisterConnection {
            page_info: PageInfo {
                has_next_page: page.has_next,
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: i32::try_from(page.total).unwrap_or(i32::MAX),
        })
    }

    /// The audit events of one investigation, oldest first (its team only).
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<AuditEventConnection> {
        session(ctx)?;
        let id = parse_id(&investigation_id)?;
        let found = visible_investigation(ctx, id).await?;
        found
            .loaded
            .domain
            .authorize(&request(ctx).actor(), Action::ViewAuditTrail)?;
        let first = page_size(first)?;
        let after =
            match after {
                Some(cursor) => Some(decode_cursor("after", &cursor)?.parse::<i64>().map_err(
                    |_| ApiError::bad_input("after", "not a cursor this server issued"),
                )?),
                None => None,
            };
        let db = view(ctx);
        let mut events = audit::events_of(db, id, after, first + 1).await?;
        let has_next = events.len() as u64 > first;
        events.truncate(first as usize);
        let total = audit::count_of(db, id).await?;
        let edges: Vec<AuditEventEdge> = events
            .into_iter()
            .map(|event| AuditEventEdge {
                cursor: encode_cursor(&event.seq.to_string()),
                node: AuditEventObject(Arc::new(event)),
            })
            .collect();
        Ok(AuditEventConnection {
            page_info: PageInfo {
                has_next_page: has_next,
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    /// Whether the stored audit chain is intact (ADMIN or a participating chair). The chain
    /// spans the whole log, so this checks every event up to now.
    async fn verify_audit_trail(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
    ) -> ApiResult<AuditVerification> {
        session(ctx)?;
        let id = parse_id(&investigation_id)?;
        let loaded = investigations::load(view(ctx), id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        loaded
            .domain
            .authorize(&request(ctx).actor(), Action::VerifyAuditTrail)?;
        let verification = audit::verify_chain(view(ctx)).await?;
        Ok(AuditVerification {
            intact: verification.intact,
            events_checked: i32::try_from(verification.events_checked).unwrap_or(i32::MAX),
            first_broken_seq: verification
                .first_broken_seq
                .map(|seq| i32::try_from(seq).unwrap_or(i32::MAX)),
        })
    }
}
