//! Maintenance windows: a cron expression in a site's time zone that says when a window opens,
//! and how long it stays open. Hospitals give biomedical engineering slots such as "Sundays
//! 02:00 for three hours, Europe/Berlin"; a device outside its site's window waits.

use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest window, in minutes (one week: a longer one is "always", which needs no window).
pub const MAX_DURATION_MINUTES: u32 = 7 * 24 * 60;

/// A window as operators write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// When it opens: five-field cron (minute hour day-of-month month day-of-week), e.g.
    /// `0 2 * * SUN`.
    pub cron: String,
    /// How long it stays open, in minutes.
    pub duration_minutes: u32,
    /// IANA time zone the cron expression is read in, e.g. `Europe/Berlin`.
    pub time_zone: String,
}

impl WindowSpec {
    /// A site's window as one line, `SITE|CRON|MINUTES|TIME ZONE` (as `medsec campaign create
    /// --window` and the console's form take it), e.g. `north|0 2 * * SUN|180|Europe/Berlin`.
    /// The cron expression and time zone are checked when the campaign is planned.
    pub fn parse_line(s: &str) -> Result<(String, WindowSpec), String> {
        let parts: Vec<&str> = s.split('|').map(str::trim).collect();
        let [site, cron, minutes, tz] = parts.as_slice() else {
            return Err(format!(
                "window {s:?}: write 'SITE|CRON|MINUTES|TIME ZONE', e.g. 'north|0 2 * * SUN|180|Europe/Berlin'"
            ));
        };
        let duration_minutes = minutes
            .parse()
            .map_err(|_| format!("window {s:?}: {minutes:?} is not a number of minutes"))?;
        Ok((
            (*site).to_owned(),
            WindowSpec {
                cron: (*cron).to_owned(),
                duration_minutes,
                time_zone: (*tz).to_owned(),
            },
        ))
    }
}

/// A checked window, ready to answer "is it open now?".
#[derive(Debug, Clone)]
pub struct Window {
    cron: croner::Cron,
    duration: chrono::Duration,
    tz: jiff::tz::TimeZone,
}

impl Window {
    /// Checks the cron expression, duration and time zone; `site` names the window in errors.
    pub fn new(site: &str, spec: &WindowSpec) -> Result<Self, Error> {
        let bad = |reason: String| Error::Window {
            site: site.to_owned(),
            reason,
        };
        let cron = croner::Cron::new(&spec.cron)
            .parse()
            .map_err(|e| bad(format!("cron {:?}: {e}", spec.cron)))?;
        if !(1..=MAX_DURATION_MINUTES).contains(&spec.duration_minutes) {
            return Err(bad(format!(
                "duration of {} minutes is outside 1 to {MAX_DURATION_MINUTES}",
                spec.duration_minutes
            )));
        }
        let tz = jiff::tz::TimeZone::get(&spec.time_zone)
            .map_err(|_| bad(format!("unknown time zone {:?}", spec.time_zone)))?;
        Ok(Self {
            cron,
            duration: chrono::Duration::minutes(i64::from(spec.duration_minutes)),
            tz,
        })
    }

    /// The site's wall-clock time at `now_ms`, as a chrono value labelled UTC. croner evaluates
    /// cron expressions in chrono time zones and jiff holds the tz database; wall-clock times
    /// are the meeting point (a window is defined in wall-clock terms, so across a DST change
    /// it keeps its wall-clock length).
    fn wall_clock(&self, now_ms: i64) -> Result<chrono::DateTime<chrono::Utc>, Error> {
        let ts = jiff::Timestamp::from_millisecond(now_ms).map_err(|e| Error::Clock {
            reason: e.to_string(),
        })?;
        let dt = ts.to_zoned(self.tz.clone()).datetime();
        let date = chrono::NaiveDate::from_ymd_opt(
            i32::from(dt.year()),
            u32::try_from(dt.month()).unwrap_or(1),
            u32::try_from(dt.day()).unwrap_or(1),
        );
        let time = chrono::NaiveTime::from_hms_opt(
            u32::try_from(dt.hour()).unwrap_or(0),
            u32::try_from(dt.minute()).unwrap_or(0),
            u32::try_from(dt.second()).unwrap_or(0),
        );
        match (date, time) {
            (Some(d), Some(t)) => Ok(d.and_time(t).and_utc()),
            _ => Err(Error::Clock {
                reason: format!("{dt} has no calendar representation"),
            }),
        }
    }

    /// Whether the window is open at `now_ms`: some opening `s` has `s <= now < s + duration`.
    pub fn is_open(&self, now_ms: i64) -> Result<bool, Error> {
        let local = self.wall_clock(now_ms)?;
        let from = local - self.duration;
        match self.cron.find_next_occurrence(&from, false) {
            Ok(opening) => Ok(opening <= local),
            Err(_) => Ok(false),
        }
    }

    /// When the window next opens (`now_ms` itself when it is open), in Unix milliseconds.
    pub fn next_open(&self, now_ms: i64) -> Result<Option<i64>, Error> {
        if self.is_open(now_ms)? {
            return Ok(Some(now_ms));
        }
        let local = self.wall_clock(now_ms)?;
        let Ok(next) = self.cron.find_next_occurrence(&local, false) else {
            return Ok(None);
        };
        let n = next.naive_utc();
        let civil = jiff::civil::DateTime::new(
            i16::try_from(chrono::Datelike::year(&n)).unwrap_or(i16::MAX),
            i8::try_from(chrono::Datelike::month(&n)).unwrap_or(1),
            i8::try_from(chrono::Datelike::day(&n)).unwrap_or(1),
            i8::try_from(chrono::Timelike::hour(&n)).unwrap_or(0),
            i8::try_from(chrono::Timelike::minute(&n)).unwrap_or(0),
            i8::try_from(chrono::Timelike::second(&n)).unwrap_or(0),
            0,
        )
        .map_err(|e| Error::Clock {
            reason: e.to_string(),
        })?;
        // A wall-clock time skipped by a DST change opens at the first instant after the gap.
        let ts = self
            .tz
            .to_ambiguous_timestamp(civil)
            .compatible()
            .map_err(|e| Error::Clock {
                reason: e.to_string(),
            })?;
        Ok(Some(ts.as_millisecond()))
    }
}
