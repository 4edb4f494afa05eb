//! Event times as epoch milliseconds, for outputs that need a number (EMF, OTLP).
//!
//! Lambda writes RFC 3339 UTC with milliseconds; emulators write nanoseconds, no fraction, or
//! an offset (SPEC.md §6.1). Anything else is `None` and the caller uses the receive time.

/// The wall clock in Unix epoch milliseconds, for outputs that stamp what has no time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)` into Unix epoch milliseconds.
pub fn epoch_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b.get(i) != Some(&c))
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        millis = num(start, digits.min(3))? * 10i64.pow(3 - digits.min(3) as u32);
    }
    let offset_minutes = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let minutes = num(i + 1, 2)? * 60 + num(i + 4, 2)?;
            if sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// An event's `time` as sent: RFC 3339 text or (as some senders do) a number of epoch
/// milliseconds. Every output that needs a number uses this, so they agree.
pub fn event_ms(text: &str) -> Option<i64> {
    epoch_ms(text).or_else(|| {
        text.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|n| n as i64)
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day, hour, minute, second)` in UTC of Unix epoch seconds (the inverse of
/// `days_from_civil`, by the same author), for the wire formats that stamp a date.
pub fn civil(epoch_seconds: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = i64::try_from(epoch_seconds / 86_400).unwrap_or(0) + 719_468;
    let second_of_day = (epoch_seconds % 86_400) as u32;
    let era = days.div_euclid(146_097);
    let doe = days - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_lambda_and_emulators_send() {
        let cases: &[(&str, Option<i64>)] = &[
            ("2026-03-14T09:21:07.124Z", Some(1_773_480_067_124)),
            ("2026-03-14T09:21:07Z", Some(1_773_480_067_000)),
            ("2026-03-14T09:21:07.124567891Z", Some(1_773_480_067_124)),
            ("2026-03-14T09:21:07.1Z", Some(1_773_480_067_100)),
            ("2026-03-14T10:21:07.124+01:00", Some(1_773_480_067_124)),
            ("2026-03-14T04:21:07.124-05:00", Some(1_773_480_067_124)),
            ("1970-01-01T00:00:00.000Z", Some(0)),
            ("2000-02-29T00:00:00Z", Some(951_782_400_000)),
            ("2026-03-14 09:21:07Z", Some(1_773_480_067_000)),
            ("2026-13-14T09:21:07Z", None),
            ("2026-03-14T09:21:07", None),
            ("2026-03-14T09:21:07.Z", None),
            ("yesterday", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(epoch_ms(text), *expected, "{text}");
        }
    }

    #[test]
    fn civil_inverts_days_from_civil() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        // 2000-02-29T23:59:59Z and 2026-12-01T13:46:05Z.
        assert_eq!(civil(951_868_799), (2000, 2, 29, 23, 59, 59));
        assert_eq!(civil(1_796_132_765), (2026, 12, 1, 13, 46, 5));
        for t in (0..4_102_444_800u64).step_by(86_400 * 37 + 3_607) {
            let (y, m, d, h, mi, s) = civil(t);
            let back = days_from_civil(y, i64::from(m), i64::from(d)) * 86_400
                + i64::from(h * 3600 + mi * 60 + s);
            assert_eq!(back, t as i64);
        }
    }

    #[test]
    fn event_times_may_also_be_epoch_milliseconds() {
        assert_eq!(event_ms("1773480067124"), Some(1_773_480_067_124));
        assert_eq!(
            event_ms("2026-03-14T09:21:07.124Z"),
            Some(1_773_480_067_124)
        );
        assert_eq!(event_ms("soon"), None);
    }
}
