//! Timestamps in the one format every record and log line uses: RFC 3339, UTC.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, as RFC 3339 UTC with sub-second precision.
pub fn now_rfc3339() -> String {
    format_rfc3339(OffsetDateTime::now_utc())
}

/// `t` as RFC 3339.
pub(crate) fn format_rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Seconds between two RFC 3339 timestamps (0 when either does not parse).
pub fn seconds_between(start: &str, end: &str) -> f64 {
    seconds_between_checked(start, end).unwrap_or(0.0)
}

/// Seconds from `start` to `end` (RFC 3339), or `None` when either is not
/// such a time.
pub fn seconds_between_checked(start: &str, end: &str) -> Option<f64> {
    match (
        OffsetDateTime::parse(start, &Rfc3339),
        OffsetDateTime::parse(end, &Rfc3339),
    ) {
        (Ok(s), Ok(e)) => Some((e - s).as_seconds_f64()),
        _ => None,
    }
}
