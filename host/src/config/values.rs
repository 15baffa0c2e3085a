//! The values a manifest spells as text: sizes, durations, routes, rules.

use crate::policy::{OutboundPolicy, OutboundRule, TcpPolicy, TopicPolicy};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::time::Duration;

/// `64MiB` as `(64, "MiB")`: leading digits, then the unit (maybe empty).
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    Some((digits.parse().ok()?, unit.trim()))
}

/// Parse a size such as `64MiB`, `512KiB`, `10MB` or a plain byte count.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = number_and_unit(text)
        .ok_or_else(|| format!("invalid size {text:?}: expected e.g. \"64MiB\""))?;
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {text:?}: use B, KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Parse a duration such as `30s`, `250ms`, `2m` or `1h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = number_and_unit(text)
        .ok_or_else(|| format!("invalid duration {text:?}: expected e.g. \"30s\" or \"250ms\""))?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    if duration.is_zero() {
        return Err(format!("duration {text:?} must be more than zero"));
    }
    Ok(duration)
}

pub(super) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(de::Error::custom)
}

pub(super) fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

pub(super) fn optional_size<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    size(deserializer).map(Some)
}

/// A size as written: `"64MiB"`, or a plain number of bytes.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

pub(super) fn outbound<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<OutboundPolicy, D::Error> {
    let patterns = Vec::<String>::deserialize(deserializer)?;
    let rules = patterns
        .iter()
        .map(|pattern| OutboundRule::parse(pattern))
        .collect::<Result<_, _>>()
        .map_err(de::Error::custom)?;
    Ok(OutboundPolicy::new(rules))
}

pub(super) fn routes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let routes = Vec::<String>::deserialize(deserializer)?;
    if routes.is_empty() {
        return Err(de::Error::custom(
            "an app needs at least one route, e.g. [\"/\"]",
        ));
    }
    for route in &routes {
        if !route.starts_with('/') {
            return Err(de::Error::custom(format!(
                "route {route:?} must be a path prefix starting with '/'"
            )));
        }
    }
    Ok(routes)
}

/// One path prefix, starting with `/`.
pub(super) fn route<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let route = String::deserialize(deserializer)?;
    if !route.starts_with('/') {
        return Err(de::Error::custom(format!(
            "prefix {route:?} must be a path starting with '/'"
        )));
    }
    Ok(route)
}

/// Parse a percentage such as `25%` or `150%` (more than one core).
pub(crate) fn parse_percent(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let number = text
        .strip_suffix('%')
        .and_then(|number| number.trim().parse::<u32>().ok())
        .ok_or_else(|| format!("invalid share {text:?}: expected a percentage, e.g. \"25%\""))?;
    if number == 0 {
        return Err(format!("share {text:?} must be more than zero"));
    }
    Ok(number)
}

pub(super) fn optional_percent<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_percent(&text).map(Some).map_err(de::Error::custom)
}

pub(super) fn hosts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let hosts = Vec::<String>::deserialize(deserializer)?;
    crate::routes::Claim::all(&hosts, &["/".to_owned()]).map_err(de::Error::custom)?;
    Ok(hosts)
}

pub(super) fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match RawSize::deserialize(deserializer)? {
        RawSize::Bytes(bytes) => Ok(bytes),
        RawSize::Text(text) => parse_size(&text).map_err(de::Error::custom),
    }
}

pub(super) fn tcp_outbound<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<TcpPolicy, D::Error> {
    let patterns = Vec::<String>::deserialize(deserializer)?;
    TcpPolicy::new(&patterns).map_err(de::Error::custom)
}

pub(super) fn topics<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TopicPolicy, D::Error> {
    let patterns = Vec::<String>::deserialize(deserializer)?;
    TopicPolicy::new(&patterns).map_err(de::Error::custom)
}
