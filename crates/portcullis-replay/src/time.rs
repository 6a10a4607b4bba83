//! Timestamps: RFC 3339 in UTC (`2026-12-01T10:00:00Z`, fractions and
//! offsets read, written without) to and from seconds since the Unix epoch.
//! No clock is read.

use alloc::string::String;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |n, &b| {
        n.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (a space for `T`, a
/// lowercase `t`/`z` accepted) or a plain date `YYYY-MM-DD` (midnight UTC);
/// the fraction is dropped.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let (date, rest) = (b.get(..10)?, b.get(10..)?);
    if date.get(4) != Some(&b'-') || date.get(7) != Some(&b'-') {
        return None;
    }
    let y = digits(date.get(..4)?)?;
    let mo = digits(date.get(5..7)?)?;
    let d = digits(date.get(8..10)?)?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(i64::from(y), mo, d);
    if rest.is_empty() {
        return Some(day * 86_400);
    }
    if !matches!(rest.first(), Some(b'T' | b't' | b' ')) || rest.len() < 9 {
        return None;
    }
    let t = rest.get(1..9)?;
    if t.get(2) != Some(&b':') || t.get(5) != Some(&b':') {
        return None;
    }
    let (h, mi, sec) = (
        digits(t.get(..2)?)?,
        digits(t.get(3..5)?)?,
        digits(t.get(6..8)?)?,
    );
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut tail = rest.get(9..)?;
    if tail.first() == Some(&b'.') {
        let n = tail
            .iter()
            .skip(1)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n == 0 {
            return None;
        }
        tail = tail.get(n + 1..)?;
    }
    let offset = match tail {
        b"Z" | b"z" | b"" => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let oh = digits(&[*oh1, *oh2])?;
            let om = digits(&[*om1, *om2])?;
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    Some(day * 86_400 + i64::from(h * 3600 + mi * 60 + sec) - offset)
}

/// Reads `--since`/`--until`: RFC 3339 or seconds since the epoch.
pub fn parse_bound(s: &str) -> Option<i64> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    parse_rfc3339(t)
}

/// `2026-12-01T10:00:00Z`.
pub fn format_rfc3339(t: i64) -> String {
    let (day, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(day);
    alloc::format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for t in [0i64, 1, 86_399, 951_782_400, 1_764_583_200, 4_102_444_800] {
            let s = format_rfc3339(t);
            assert_eq!(parse_rfc3339(&s), Some(t), "{s}");
        }
        assert_eq!(format_rfc3339(1_764_583_200), "2025-12-01T10:00:00Z");
        assert_eq!(
            parse_rfc3339("2025-12-01T11:00:00.1234567+01:00"),
            Some(1_764_583_200)
        );
        assert_eq!(parse_rfc3339("2025-12-01"), Some(1_764_547_200));
        assert_eq!(parse_bound("1764583200"), Some(1_764_583_200));
        for bad in [
            "",
            "2025-13-01",
            "2025-12-01T25:00:00Z",
            "2025-12-01T10:00:00.Z",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
