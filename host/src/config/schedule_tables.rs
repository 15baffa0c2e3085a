//! The `[[app.NAME.schedule]]` tables: when the host runs an app's
//! `on-schedule` with no request asking (Tornado's `PeriodicCallback`).
//! Every bound is checked here, at load, so the scheduler never meets an
//! unbounded table: a count, a name's length, a payload's size, a shortest
//! period, and a cron line that matches at least once.

use super::values;
use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Schedules one app may have.
pub(crate) const MAX_SCHEDULES: usize = 32;
/// Longest schedule name, in bytes.
pub(crate) const MAX_SCHEDULE_NAME: usize = 64;
/// Largest payload handed to every tick, in bytes.
pub(crate) const MAX_SCHEDULE_PAYLOAD: usize = 64 << 10;
/// Shortest period of an `every` schedule (a cron line's is one second).
pub(crate) const MIN_SCHEDULE_PERIOD: Duration = Duration::from_secs(1);
/// Longest period of an `every` schedule.
const MAX_SCHEDULE_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);

/// One schedule, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScheduleConfig {
    /// What `on-schedule` is told, and what the log and metrics name.
    pub(crate) name: String,
    /// When it ticks.
    pub(crate) when: When,
    /// Handed to every tick.
    pub(crate) payload: std::sync::Arc<[u8]>,
}

/// When a schedule ticks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum When {
    /// Every period, on a grid from the Unix epoch.
    Every(Duration),
    /// At the times a cron line matches, in a time zone.
    Cron {
        line: String,
        cron: Box<croner::Cron>,
        zone: chrono_tz::Tz,
    },
}

impl When {
    /// The first tick strictly after `after`; `None` if there is none. An
    /// `every` schedule ticks on a grid from the Unix epoch (every 30 s: at
    /// :00 and :30), so every host and every restart agrees on its ticks.
    pub(crate) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            When::Every(period) => {
                let period = i64::try_from(period.as_millis()).ok()?.max(1);
                let ticks = after.timestamp_millis().div_euclid(period).checked_add(1)?;
                DateTime::from_timestamp_millis(ticks.checked_mul(period)?)
            }
            When::Cron { cron, zone, .. } => {
                // From the whole second: croner keeps a start's fraction.
                let mut from = after.with_nanosecond(0)?.with_timezone(zone);
                for _ in 0..MAX_CRON_STEPS {
                    let next = cron.find_next_occurrence(&from, false).ok()?;
                    if next.with_timezone(&Utc) > after {
                        return Some(next.with_timezone(&Utc));
                    }
                    // In an hour the clocks repeat, croner gives a local time's
                    // first instant, which may be behind `after`: look on.
                    from = next.checked_add_signed(chrono::Duration::seconds(1))?;
                }
                None
            }
        }
    }

    /// How it reads in the manifest, for `squall serve`'s list.
    pub(crate) fn describe(&self) -> String {
        match self {
            When::Every(period) => format!("every {}", humantime_like(*period)),
            When::Cron { line, zone, .. } => format!("cron {line:?} ({zone})"),
        }
    }
}

fn humantime_like(period: Duration) -> String {
    let seconds = period.as_secs();
    if period.subsec_millis() != 0 {
        format!("{}ms", period.as_millis())
    } else if seconds.is_multiple_of(3600) {
        format!("{}h", seconds / 3600)
    } else if seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    name: String,
    #[serde(default, deserialize_with = "values::optional_duration")]
    every: Option<Duration>,
    #[serde(default)]
    cron: Option<String>,
    #[serde(default)]
    tz: Option<String>,
    #[serde(default)]
    payload: Option<String>,
}

impl RawSchedule {
    fn validate(self) -> Result<ScheduleConfig, String> {
        let name = self.name;
        if name.is_empty()
            || name.len() > MAX_SCHEDULE_NAME
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "schedule name {name:?}: 1 to {MAX_SCHEDULE_NAME} letters, digits, '-', '_' or '.'"
            ));
        }
        let payload = self.payload.unwrap_or_default().into_bytes();
        if payload.len() > MAX_SCHEDULE_PAYLOAD {
            return Err(format!(
                "schedule {name:?}: payload is {} bytes, more than {MAX_SCHEDULE_PAYLOAD}",
                payload.len()
            ));
        }
        let when = match (self.every, self.cron) {
            (Some(period), None) => {
                if self.tz.is_some() {
                    return Err(format!("schedule {name:?}: tz goes with cron, not every"));
                }
                if !(MIN_SCHEDULE_PERIOD..=MAX_SCHEDULE_PERIOD).contains(&period) {
                    return Err(format!(
                        "schedule {name:?}: every must be between 1s and 366 days"
                    ));
                }
                When::Every(period)
            }
            (None, Some(line)) => cron_when(&name, line, self.tz.as_deref())?,
            _ => {
                return Err(format!(
                    "schedule {name:?}: give either every = \"30s\" or cron = \"0 */5 * * * *\""
                ));
            }
        };
        Ok(ScheduleConfig {
            name,
            when,
            payload: payload.into(),
        })
    }
}

/// Searches for one next tick at most: through a repeated hour at one a
/// second, with room to spare.
const MAX_CRON_STEPS: u32 = 2 * 3600;

/// The longest cron line accepted (a real one is a few dozen bytes).
const MAX_CRON_LINE: usize = 256;

fn cron_when(name: &str, line: String, tz: Option<&str>) -> Result<When, String> {
    if line.len() > MAX_CRON_LINE {
        return Err(format!(
            "schedule {name:?}: cron line longer than {MAX_CRON_LINE} bytes"
        ));
    }
    // No year field: a line valid today stays valid (one naming 2027 would
    // stop every later start of the host).
    let cron = croner::parser::CronParser::builder()
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(&line)
        .map_err(|err| format!("schedule {name:?}: cron {line:?}: {err}"))?;
    let zone = match tz {
        None => chrono_tz::UTC,
        Some(tz) => tz
            .parse()
            .map_err(|_| format!("schedule {name:?}: unknown time zone {tz:?}"))?,
    };
    let when = When::Cron {
        line: line.clone(),
        cron: Box::new(cron),
        zone,
    };
    // A line that never matches (February 30th) is refused now, not found
    // silent later.
    if when.next_after(Utc::now()).is_none() {
        return Err(format!("schedule {name:?}: cron {line:?} never matches"));
    }
    Ok(when)
}

/// The `schedule` array of an app table, each validated, names unique, at
/// most [`MAX_SCHEDULES`].
pub(super) fn schedules<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ScheduleConfig>, D::Error> {
    use serde::de::Error;
    let raw = Vec::<RawSchedule>::deserialize(deserializer)?;
    if raw.len() > MAX_SCHEDULES {
        return Err(D::Error::custom(format!(
            "{} schedules: an app may have at most {MAX_SCHEDULES}",
            raw.len()
        )));
    }
    let mut schedules: Vec<ScheduleConfig> = Vec::with_capacity(raw.len());
    for schedule in raw {
        let schedule = schedule.validate().map_err(D::Error::custom)?;
        if schedules.iter().any(|known| known.name == schedule.name) {
            return Err(D::Error::custom(format!(
                "two schedules are named {:?}",
                schedule.name
            )));
        }
        schedules.push(schedule);
    }
    Ok(schedules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(table: &str) -> Result<Vec<ScheduleConfig>, String> {
        #[derive(Deserialize)]
        struct Tables {
            #[serde(deserialize_with = "schedules")]
            schedule: Vec<ScheduleConfig>,
        }
        toml::from_str::<Tables>(table)
            .map(|tables| tables.schedule)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn every_ticks_on_a_grid_from_the_epoch() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .map(|time| time.with_timezone(&Utc))
                .unwrap_or_default()
        };
        let when = When::Every(Duration::from_secs(30));
        assert_eq!(
            when.next_after(at("2026-01-01T00:00:45.500Z")),
            Some(at("2026-01-01T00:01:00Z"))
        );
        assert_eq!(
            when.next_after(at("2026-01-01T00:01:00Z")),
            Some(at("2026-01-01T00:01:30Z"))
        );
    }

    #[test]
    fn cron_takes_five_or_six_fields_and_a_zone() {
        let schedules = parse(
            "[[schedule]]\nname = \"a\"\ncron = \"*/5 * * * *\"\n\
             [[schedule]]\nname = \"b\"\ncron = \"*/2 * * * * *\"\ntz = \"Europe/Paris\"\n",
        );
        let schedules = schedules.unwrap_or_default();
        assert_eq!(schedules.len(), 2);
        let now = Utc::now();
        let next = schedules[1].when.next_after(now);
        assert!(next.is_some_and(|next| next > now && next <= now + chrono::Duration::seconds(2)));
    }

    #[test]
    fn a_repeated_hour_never_gives_a_tick_in_the_past() {
        let when = parse(
            "[[schedule]]\nname = \"a\"\ncron = \"*/10 * * * * *\"\ntz = \"America/New_York\"\n",
        )
        .unwrap_or_default()
        .remove(0)
        .when;
        // 2026-11-01 06:00Z-07:00Z is New York's second 01:00-02:00.
        let mut after = DateTime::parse_from_rfc3339("2026-11-01T05:59:55Z")
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_default();
        for _ in 0..800 {
            let next = when.next_after(after);
            assert!(next.is_some_and(|next| next > after), "{after} -> {next:?}");
            after = next.unwrap_or(after);
        }
    }

    #[test]
    fn out_of_bounds_tables_are_refused_naming_why() {
        let cases = [
            ("name = \"a\"\nevery = \"10ms\"", "between 1s"),
            ("name = \"a\"", "either every"),
            (
                "name = \"a\"\nevery = \"1s\"\ncron = \"* * * * *\"",
                "either every",
            ),
            ("name = \"a b\"\nevery = \"1s\"", "letters, digits"),
            ("name = \"a\"\ncron = \"0 0 30 2 *\"", "never matches"),
            ("name = \"a\"\ncron = \"nonsense\"", "cron"),
            ("name = \"a\"\ncron = \"0 0 0 1 1 * 2099\"", "cron"),
            (
                "name = \"a\"\ncron = \"* * * * *\"\ntz = \"Mars/Olympus\"",
                "time zone",
            ),
            (
                "name = \"a\"\nevery = \"1s\"\ntz = \"UTC\"",
                "tz goes with cron",
            ),
        ];
        for (table, why) in cases {
            let refused = parse(&format!("[[schedule]]\n{table}\n"));
            assert!(
                refused.as_ref().is_err_and(|err| err.contains(why)),
                "{table}: {refused:?}"
            );
        }
        let big = format!(
            "[[schedule]]\nname = \"a\"\nevery = \"1s\"\npayload = \"{}\"\n",
            "x".repeat(MAX_SCHEDULE_PAYLOAD + 1)
        );
        assert!(parse(&big).is_err_and(|err| err.contains("payload")));
        let many = "[[schedule]]\nevery = \"1s\"\nname = \"n\"\n".repeat(MAX_SCHEDULES + 1);
        assert!(parse(&many).is_err_and(|err| err.contains("at most")));
        let twice = "[[schedule]]\nevery = \"1s\"\nname = \"n\"\n".repeat(2);
        assert!(parse(&twice).is_err_and(|err| err.contains("two schedules")));
    }
}
