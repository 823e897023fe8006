//! Deadline arithmetic: terms in days, due at 23:59:59 Europe/Amsterdam on the due day, and the
//! Algemene termijnenwet: a term ending on a Saturday, Sunday or generally recognised holiday
//! runs on to the next day that is none of these.

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Europe::Amsterdam;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Default term of the factual check (ambtelijk wederhoor), in days.
pub const DEFAULT_FACTUAL_CHECK_DAYS: u32 = 21;
/// Default term of the administrative rebuttal (bestuurlijk wederhoor), in days.
pub const DEFAULT_REBUTTAL_DAYS: u32 = 21;

/// The days the Algemene termijnenwet treats like a Sunday, plus days equated by decree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    /// Extra days equated to holidays (configurable; e.g. by a decree under art. 3(2)).
    pub extra_holidays: BTreeSet<NaiveDate>,
}

/// Easter Sunday of a year (Gregorian calendar; the anonymous algorithm of Meeus/Jones/Butcher).
pub fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).expect("Easter is a valid date")
}

/// Koningsdag: 27 April, or 26 April when the 27th is a Sunday.
pub fn kings_day(year: i32) -> NaiveDate {
    let date = NaiveDate::from_ymd_opt(year, 4, 27).expect("valid date");
    if date.weekday() == Weekday::Sun {
        date - Days::new(1)
    } else {
        date
    }
}

/// The generally recognised holidays (algemeen erkende feestdagen) of a year.
pub fn holidays(year: i32) -> Vec<(NaiveDate, &'static str)> {
    let easter = easter(year);
    let date = |month, day| NaiveDate::from_ymd_opt(year, month, day).expect("valid date");
    vec![
        (date(1, 1), "Nieuwjaarsdag"),
        (easter - Days::new(2), "Goede Vrijdag"),
        (easter + Days::new(1), "tweede Paasdag"),
        (kings_day(year), "Koningsdag"),
        (date(5, 5), "Bevrijdingsdag"),
        (easter + Days::new(39), "Hemelvaartsdag"),
        (easter + Days::new(50), "tweede Pinksterdag"),
        (date(12, 25), "eerste Kerstdag"),
        (date(12, 26), "tweede Kerstdag"),
    ]
}

impl Calendar {
    /// Whether a term may not end on this day.
    pub fn is_rest_day(&self, day: NaiveDate) -> bool {
        matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
            || self.extra_holidays.contains(&day)
            || holidays(day.year())
                .iter()
                .any(|(holiday, _)| *holiday == day)
    }

    /// The day itself, or the first following day that is no rest day.
    pub fn next_working_day(&self, mut day: NaiveDate) -> NaiveDate {
        while self.is_rest_day(day) {
            day = day + Days::new(1);
        }
        day
    }

    /// The due day of a term of `days` starting at `start`: the local (Amsterdam) day of the
    /// start plus the term, moved on past rest days.
    pub fn due_day(&self, start: DateTime<Utc>, days: u32) -> NaiveDate {
        let start_day = start.with_timezone(&Amsterdam).date_naive();
        self.next_working_day(start_day + Days::new(u64::from(days)))
    }

    /// A due day chosen explicitly (a set due date, a granted extension), aligned to the rule.
    pub fn align(&self, day: NaiveDate) -> NaiveDate {
        self.next_working_day(day)
    }

    /// The new due instant after a suspension of `suspended` ended: the old due instant moved
    /// by the suspended time, then to the end of its (working) day. Never earlier than the old
    /// instant plus the suspended time.
    pub fn shift(&self, due_at: DateTime<Utc>, suspended: Duration) -> DateTime<Utc> {
        let moved = due_at + suspended.max(Duration::zero());
        due_at_end_of(self.next_working_day(moved.with_timezone(&Amsterdam).date_naive()))
    }
}

/// The calendar day in Europe/Amsterdam at an instant ("today" for due dates).
pub fn local_day(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&Amsterdam).date_naive()
}

/// 23:59:59 Europe/Amsterdam on `day`, as an instant.
pub fn due_at_end_of(day: NaiveDate) -> DateTime<Utc> {
    let local = day.and_time(NaiveTime::from_hms_opt(23, 59, 59).expect("valid time"));
    // 23:59:59 is never inside a DST gap or fold in Europe/Amsterdam (changes happen at
    // 02:00/03:00), so the mapping is unique; `earliest` keeps this total anyway.
    Amsterdam
        .from_local_datetime(&local)
        .earliest()
        .expect("23:59:59 exists every day in Europe/Amsterdam")
        .with_timezone(&Utc)
}

/// The term of a joint investigation: the shortest of the participants' terms.
pub fn joint_term(terms: impl IntoIterator<Item = u32>, default: u32) -> u32 {
    terms.into_iter().min().unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn instant(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn easter_2019_to_2030() {
        let expected = [
            (2019, 4, 21),
            (2020, 4, 12),
            (2021, 4, 4),
            (2022, 4, 17),
            (2023, 4, 9),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2029, 4, 1),
            (2030, 4, 21),
        ];
        for (y, m, d) in expected {
            assert_eq!(easter(y), day(y, m, d), "Easter {y}");
        }
    }

    #[test]
    fn kings_day_moves_to_saturday_when_the_27th_is_a_sunday() {
        assert_eq!(kings_day(2025), day(2025, 4, 26));
        assert_eq!(day(2025, 4, 26).weekday(), Weekday::Sat);
        assert_eq!(kings_day(2019), day(2019, 4, 27));
        assert_eq!(kings_day(2014), day(2014, 4, 26));
    }

    #[test]
    fn holidays_of_2019() {
        let calendar = Calendar::default();
        for holiday in [
            day(2019, 1, 1),
            day(2019, 4, 19),
            day(2019, 4, 22),
            day(2019, 5, 30),
            day(2019, 6, 10),
            day(2019, 12, 25),
            day(2019, 12, 26),
        ] {
            assert!(calendar.is_rest_day(holiday), "{holiday}");
        }
        assert!(!calendar.is_rest_day(day(2019, 11, 12)));
    }

    #[test]
    fn the_2019_rebuttal_term_crosses_the_dst_change() {
        // Sent 24 October 2019 (CEST); 21 days later is Thursday 14 November (CET).
        let calendar = Calendar::default();
        let due = calendar.due_day(instant("2019-10-24T10:00:00+02:00"), 21);
        assert_eq!(due, day(2019, 11, 14));
        assert_eq!(due_at_end_of(due), instant("2019-11-14T23:59:59+01:00"));
        // The joint response of 12 November 2019 is in time.
        assert!(instant("2019-11-12T12:00:00+01:00") <= due_at_end_of(due));
    }

    #[test]
    fn due_at_is_local_end_of_day_in_summer_and_winter() {
        assert_eq!(
            due_at_end_of(day(2019, 7, 1)),
            instant("2019-07-01T21:59:59Z")
        );
        assert_eq!(
            due_at_end_of(day(2019, 12, 2)),
            instant("2019-12-02T22:59:59Z")
        );
        // The days of the DST changes themselves.
        assert_eq!(
            due_at_end_of(day(2019, 10, 27)),
            instant("2019-10-27T22:59:59Z")
        );
        assert_eq!(
            due_at_end_of(day(2019, 3, 31)),
            instant("2019-03-31T21:59:59Z")
        );
    }

    #[test]
    fn a_term_ending_on_a_weekend_or_holiday_runs_on() {
        let calendar = Calendar::default();
        // Ends Saturday 16 November 2019 → Monday 18 November.
        assert_eq!(
            calendar.due_day(instant("2019-10-26T12:00:00+02:00"), 21),
            day(2019, 11, 18)
        );
        // Ends on Christmas 2019 (Wednesday) → 27 December (Friday).
        assert_eq!(
            calendar.due_day(instant("2019-12-04T12:00:00+01:00"), 21),
            day(2019, 12, 27)
        );
        // Ends on Koningsdag 2025 (Saturday 26 April) → Monday 28 April.
        assert_eq!(
            calendar.due_day(instant("2025-04-05T12:00:00+02:00"), 21),
            day(2025, 4, 28)
        );
        // Ends Good Friday 2020 (10 April) → Tuesday 14 April (Easter Monday in between).
        assert_eq!(
            calendar.due_day(instant("2020-03-20T12:00:00+01:00"), 21),
            day(2020, 4, 14)
        );
    }

    #[test]
    fn extra_equated_days_count() {
        let mut calendar = Calendar::default();
        calendar.extra_holidays.insert(day(2019, 11, 14));
        assert_eq!(
            calendar.due_day(instant("2019-10-24T10:00:00+02:00"), 21),
            day(2019, 11, 15)
        );
    }

    #[test]
    fn a_joint_term_is_the_shortest() {
        assert_eq!(joint_term([21, 28, 14], 21), 14);
        assert_eq!(joint_term([], 21), 21);
    }

    #[test]
    fn resume_shifts_by_the_suspended_time_then_aligns() {
        let calendar = Calendar::default();
        let due = instant("2019-11-14T23:59:59+01:00");
        // Suspended for two days: Saturday 16 November → Monday 18 November, end of day.
        let shifted = calendar.shift(due, Duration::days(2));
        assert_eq!(shifted, instant("2019-11-18T23:59:59+01:00"));
        // Suspended for an hour: into Friday 15 November, end of that day.
        assert_eq!(
            calendar.shift(due, Duration::hours(1)),
            instant("2019-11-15T23:59:59+01:00")
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
            // 2015 … 2035
            (1_420_070_400i64..2_082_758_400i64)
                .prop_map(|secs| DateTime::from_timestamp(secs, 0).unwrap())
        }

        proptest! {
            #[test]
            fn a_due_day_is_never_a_weekend_or_holiday(start in any_instant(), days in 0u32..120) {
                let calendar = Calendar::default();
                let due = calendar.due_day(start, days);
                prop_assert!(!calendar.is_rest_day(due));
                let start_day = start.with_timezone(&Amsterdam).date_naive();
                prop_assert!(due >= start_day + Days::new(u64::from(days)));
                // No working day was skipped: every day between the plain end and the due day
                // is a rest day.
                let mut day = start_day + Days::new(u64::from(days));
                while day < due {
                    prop_assert!(calendar.is_rest_day(day));
                    day = day + Days::new(1);
                }
            }

            #[test]
            fn shifting_never_shortens_a_term(start in any_instant(), days in 0u32..60, hours in 0i64..2_000) {
                let calendar = Calendar::default();
                let due = due_at_end_of(calendar.due_day(start, days));
                let suspended = Duration::hours(hours);
                let shifted = calendar.shift(due, suspended);
                prop_assert!(shifted >= due + suspended);
                let local = shifted.with_timezone(&Amsterdam);
                prop_assert_eq!(local.time(), NaiveTime::from_hms_opt(23, 59, 59).unwrap());
                prop_assert!(!calendar.is_rest_day(local.date_naive()));
            }

            #[test]
            fn due_at_is_always_one_second_before_local_midnight(offset in 0u64..8_000) {
                let day = NaiveDate::from_ymd_opt(2015, 1, 1).unwrap() + Days::new(offset);
                let due = due_at_end_of(day);
                let next_midnight = Amsterdam
                    .from_local_datetime(&(day + Days::new(1)).and_hms_opt(0, 0, 0).unwrap())
                    .earliest()
                    .unwrap();
                prop_assert_eq!(due + Duration::seconds(1), next_midnight.with_timezone(&Utc));
            }
        }
    }
}
