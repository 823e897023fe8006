//! The one source of "now". With `--manual-clock` time stands still until `advanceClock`
//! moves it forward; otherwise it is the system clock. Times are truncated to microseconds so
//! that SQLite and PostgreSQL store and return the same instant.

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::{Arc, RwLock};

#[derive(Clone, Debug)]
pub enum Clock {
    System,
    Manual(Arc<RwLock<DateTime<Utc>>>),
}

impl Clock {
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock::Manual(Arc::new(RwLock::new(start.trunc_subsecs(6))))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now().trunc_subsecs(6),
            Clock::Manual(now) => *now.read().unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }

    /// Moves a manual clock forward. `None` for the system clock; `Err` with the current time
    /// when `to` lies before it.
    pub fn advance(&self, to: DateTime<Utc>) -> Option<Result<DateTime<Utc>, DateTime<Utc>>> {
        match self {
            Clock::System => None,
            Clock::Manual(now) => {
                let mut now = now.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                let to = to.trunc_subsecs(6);
                if to < *now {
                    Some(Err(*now))
                } else {
                    *now = to;
                    Some(Ok(to))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let start = DateTime::parse_from_rfc3339("2019-03-21T09:00:00+01:00")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::manual(start);
        assert_eq!(clock.now(), start);
        let later = start + chrono::Duration::days(1);
        assert_eq!(clock.advance(later), Some(Ok(later)));
        assert_eq!(clock.advance(start), Some(Err(later)));
        assert_eq!(clock.now(), later);
        assert_eq!(Clock::System.advance(later), None);
    }
}
