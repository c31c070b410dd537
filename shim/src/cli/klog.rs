//! klog's line header (`W1123 05:29:11.500128    7059 proxy.go:177] text`) for the warnings and
//! fatal errors kubectl prints, in UTC.
//!
//! Formatting only; the caller writes the line.

use std::time::{SystemTime, UNIX_EPOCH};

/// One klog line: severity letter (`W`, `E`, `F`, `I`), time, pid, `file:line`, text.
pub fn klog_line(severity: char, location: &str, text: &str, now: SystemTime, pid: u32) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or_default();
    let (_, month, day) = civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    let (h, m, s) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    let micros = since.subsec_micros();
    format!(
        "{severity}{month:02}{day:02} {h:02}:{m:02}:{s:02}.{micros:06} {pid:>7} {location}] {text}"
    )
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
