//! The subscription root: audit events of one investigation as they are committed, for
//! whoever may read its audit trail. Each event is checked again when it arrives, so losing
//! access ends the flow of events; shutting the server down ends it too (see `events.rs`).

use crate::context::{ApiState, request, session, state};
use crate::error::{ApiError, ApiResult};
use crate::types::{AuditEventObject, parse_id};
use async_graphql::{Context, ID, Subscription};
use futures::stream::{self, Stream, StreamExt};
use rkflow_domain::{Action, Actor};
use rkflow_store::investigations;
use uuid::Uuid;

async fn may_follow(state: &ApiState, actor: &Actor, id: Uuid) -> ApiResult<()> {
    let loaded = investigations::load(&state.db, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    loaded.domain.authorize(actor, Action::ViewAuditTrail)?;
    Ok(())
}

pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Every audit event of one investigation that the subscriber may see, as it happens.
    async fn investigation_events(
        &self,
        ctx: &Context<'_>,
        investigation_id: ID,
    ) -> Result<impl Stream<Item = AuditEventObject> + use<>, async_graphql::Error> {
        session(ctx)?;
        let id = parse_id(&investigation_id)?;
        let state = state(ctx).clone();
        let actor = request(ctx).actor();
        may_follow(&state, &actor, id).await?;
        // Ends when the server shuts down: the client is then sent `complete`.
        let subscription = state.events.subscribe();
        let events = stream::unfold(subscription, |mut subscription| async move {
            let event = subscription.next().await?;
            Some((event, subscription))
        });
        Ok(events
            .filter(move |event| {
                let matches = event.investigation_id == Some(id);
                async move { matches }
            })
            .then(move |event| {
                let state = state.clone();
                let actor = actor.clone();
                async move { may_follow(&state, &actor, id).await.ok().map(|_| event) }
            })
            .take_while(|allowed| {
                let go_on = allowed.is_some();
                async move { go_on }
            })
            .filter_map(|event| async move { event.map(AuditEventObject) }))
    }
}
