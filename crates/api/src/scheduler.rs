//! The deadline scheduler's work: mark passed deadlines MISSED and emit reminders, as audit
//! events on the subscription, without anybody calling the API. The server runs it on an
//! interval; `advanceClock` runs it at once so a replayed timeline acts immediately.

use crate::context::ApiState;
use crate::error::ApiResult;
use rkflow_store::investigations;

/// One pass at the clock's "now"; returns how many events it wrote.
pub async fn run_tick(state: &ApiState) -> ApiResult<usize> {
    let now = state.clock.now();
    let written = investigations::tick(&state.db, now, &state.reminder_offsets).await?;
    let count = written.len();
    if count > 0 {
        tracing::info!(
            events = count,
            "scheduler: deadlines marked and reminders sent"
        );
    }
    state.events.publish(written);
    Ok(count)
}
