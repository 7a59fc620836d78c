//! Time windows: which period an instant falls in, its key suffix, its end.
//!
//! Periods are computed in UTC: a day runs from 00:00 to 24:00 UTC, a week is
//! an ISO 8601 week (Monday 00:00 UTC to the next Monday), a month runs from
//! the 1st at 00:00 UTC. The instant is the operation's `.at(..)` time, or the
//! client's clock when the operation is prepared.

use std::fmt;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};

/// A kind of time window a board can keep beside its all-time board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Window {
    /// One board per UTC day.
    Daily,
    /// One board per ISO 8601 week (Monday to Sunday, UTC).
    Weekly,
    /// One board per UTC calendar month.
    Monthly,
}

impl Window {
    /// `"daily"`, `"weekly"` or `"monthly"`.
    pub fn name(self) -> &'static str {
        match self {
            Window::Daily => "daily",
            Window::Weekly => "weekly",
            Window::Monthly => "monthly",
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which board of a family: the all-time board or one period of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Period {
    /// The all-time board (no expiry).
    AllTime,
    /// One UTC day.
    Day(NaiveDate),
    /// One ISO week, given by its Monday.
    Week(NaiveDate),
    /// One UTC month, given by its first day.
    Month(NaiveDate),
}

impl Period {
    /// The period of `window` that contains `at`.
    pub fn of(window: Window, at: DateTime<Utc>) -> Period {
        let day = at.date_naive();
        match window {
            Window::Daily => Period::Day(day),
            Window::Weekly => {
                let back = u64::from(day.weekday().num_days_from_monday());
                Period::Week(day.checked_sub_days(Days::new(back)).unwrap_or(day))
            }
            Window::Monthly => Period::Month(day.with_day(1).unwrap_or(day)),
        }
    }

    /// The window this period belongs to (`None` for the all-time board).
    pub fn window(self) -> Option<Window> {
        match self {
            Period::AllTime => None,
            Period::Day(_) => Some(Window::Daily),
            Period::Week(_) => Some(Window::Weekly),
            Period::Month(_) => Some(Window::Monthly),
        }
    }

    /// When the period starts (`None` for the all-time board).
    pub fn start(self) -> Option<DateTime<Utc>> {
        let day = match self {
            Period::AllTime => return None,
            Period::Day(d) | Period::Week(d) | Period::Month(d) => d,
        };
        Some(Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0)?))
    }

    /// When the period ends (exclusive; `None` for the all-time board).
    pub fn end(self) -> Option<DateTime<Utc>> {
        let next = match self {
            Period::AllTime => return None,
            Period::Day(d) => d.checked_add_days(Days::new(1))?,
            Period::Week(d) => d.checked_add_days(Days::new(7))?,
            Period::Month(d) => d.checked_add_months(Months::new(1))?,
        };
        Some(Utc.from_utc_datetime(&next.and_hms_opt(0, 0, 0)?))
    }

    /// The suffix of this period's board key: `""` for the all-time board,
    /// `:#d:2026-11-21`, `:#w:2026-W47` or `:#m:2026-11`.
    pub fn key_suffix(self) -> String {
        match self {
            Period::AllTime => String::new(),
            Period::Day(d) => format!(":#d:{}", d.format("%Y-%m-%d")),
            Period::Week(d) => {
                let w = d.iso_week();
                format!(":#w:{:04}-W{:02}", w.year(), w.week())
            }
            Period::Month(d) => format!(":#m:{}", d.format("%Y-%m")),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::AllTime => f.write_str("all-time"),
            Period::Day(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Period::Week(d) => {
                let w = d.iso_week();
                write!(f, "{:04}-W{:02}", w.year(), w.week())
            }
            Period::Month(d) => write!(f, "{}", d.format("%Y-%m")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn periods_and_suffixes() {
        let t = at("2026-11-21T23:59:59.999Z");
        let day = Period::of(Window::Daily, t);
        assert_eq!(day.key_suffix(), ":#d:2026-11-21");
        assert_eq!(day.end().unwrap(), at("2026-11-22T00:00:00Z"));
        let week = Period::of(Window::Weekly, t);
        assert_eq!(
            week,
            Period::Week(NaiveDate::from_ymd_opt(2026, 11, 16).unwrap())
        );
        assert_eq!(week.key_suffix(), ":#w:2026-W47");
        assert_eq!(week.end().unwrap(), at("2026-11-23T00:00:00Z"));
        let month = Period::of(Window::Monthly, t);
        assert_eq!(month.key_suffix(), ":#m:2026-11");
        assert_eq!(month.end().unwrap(), at("2026-12-01T00:00:00Z"));
        // ISO week-years differ from calendar years at the edges.
        let p = Period::of(Window::Weekly, at("2027-01-01T12:00:00Z"));
        assert_eq!(p.key_suffix(), ":#w:2026-W53");
        let p = Period::of(Window::Weekly, at("2024-12-30T00:00:00Z"));
        assert_eq!(p.key_suffix(), ":#w:2025-W01");
        // Midnight belongs to the new day.
        assert_eq!(
            Period::of(Window::Daily, at("2026-11-22T00:00:00Z")).key_suffix(),
            ":#d:2026-11-22"
        );
        assert_eq!(Period::AllTime.key_suffix(), "");
        assert_eq!(Period::AllTime.end(), None);
    }
}
