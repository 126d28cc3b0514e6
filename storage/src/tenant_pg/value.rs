//! Turning PostgreSQL's text output of one value into the form the export
//! formats share: ISO-8601 timestamps, shortest round-trip floats, bytes
//! from `bytea`'s hex form.
//!
//! The snapshot session fixes the settings that shape the server's text
//! (`DateStyle=ISO`, `TimeZone=UTC`, `IntervalStyle=iso_8601`,
//! `bytea_output=hex`, `extra_float_digits=1`), so these functions see one
//! format only. Every transformation here is lossless: PostgreSQL reads the
//! result back as the same value.

use std::borrow::Cow;

/// `2025-01-01 12:00:00.5+00` → `2025-01-01T12:00:00.5Z`;
/// `2025-01-01 12:00:00` → `2025-01-01T12:00:00` (`zoned` false).
///
/// `infinity`, `-infinity` and BC dates (`0044-03-15 12:00:00+00 BC`) have
/// no ISO-8601 form PostgreSQL reads back, so they are kept as the server
/// wrote them.
pub(crate) fn iso_timestamp(text: &str, zoned: bool) -> Cow<'_, str> {
    if text.ends_with(" BC") || text.ends_with("infinity") {
        return Cow::Borrowed(text);
    }
    let Some(space) = text.find(' ') else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 3);
    out.push_str(&text[..space]);
    out.push('T');
    let time = &text[space + 1..];
    if !zoned {
        out.push_str(time);
        return Cow::Owned(out);
    }
    match zone_start(time) {
        Some(z) => {
            out.push_str(&time[..z]);
            let zone = &time[z..];
            if zone == "+00" {
                out.push('Z');
            } else {
                push_offset(&mut out, zone);
            }
        }
        None => out.push_str(time),
    }
    Cow::Owned(out)
}

/// `12:34:56+05` → `12:34:56+05:00`; `+05:30` and `+05:30:15` stay.
pub(crate) fn iso_timetz(text: &str) -> Cow<'_, str> {
    match zone_start(text) {
        Some(z) if text.len() - z == 3 => {
            let mut out = String::with_capacity(text.len() + 3);
            out.push_str(&text[..z]);
            push_offset(&mut out, &text[z..]);
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(text),
    }
}

/// Where the `±HH[:MM[:SS]]` offset of a time starts.
fn zone_start(time: &str) -> Option<usize> {
    time.rfind(['+', '-'])
}

/// An offset as `±HH:MM[:SS]`.
fn push_offset(out: &mut String, zone: &str) {
    out.push_str(zone);
    if zone.len() == 3 {
        out.push_str(":00");
    }
}

/// A float as both formats write it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum FloatText {
    /// Shortest text that reads back as the same bits, always with a `.` or
    /// an exponent (`100.0`, `1e+100`, `-0.0`).
    Finite(String),
    /// `NaN`, `Infinity` or `-Infinity`.
    Special(&'static str),
}

/// Read a `real` (`single`) or `double precision` text.
pub(crate) fn float_text(text: &str, single: bool) -> Option<FloatText> {
    match text {
        "NaN" => return Some(FloatText::Special("NaN")),
        "Infinity" => return Some(FloatText::Special("Infinity")),
        "-Infinity" => return Some(FloatText::Special("-Infinity")),
        _ => {}
    }
    // serde_json prints floats with ryu: the shortest text that parses back
    // to the same bits. A `real` is printed as an f32, so `0.1` stays `0.1`
    // rather than becoming `0.10000000149011612`.
    let printed = if single {
        let f: f32 = text.parse().ok()?;
        serde_json::to_string(&f).ok()?
    } else {
        let f: f64 = text.parse().ok()?;
        serde_json::to_string(&f).ok()?
    };
    Some(FloatText::Finite(printed))
}

/// `\x00ff` → `[0x00, 0xff]`.
pub(crate) fn bytea_from_hex(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    hex::decode(hex).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_become_iso_8601() {
        assert_eq!(
            iso_timestamp("2025-01-01 00:00:00.001+00", true),
            "2025-01-01T00:00:00.001Z"
        );
        assert_eq!(
            iso_timestamp("2025-01-01 00:00:00+05:30", true),
            "2025-01-01T00:00:00+05:30"
        );
        assert_eq!(
            iso_timestamp("2025-01-01 00:00:00-08", true),
            "2025-01-01T00:00:00-08:00"
        );
        assert_eq!(
            iso_timestamp("12345-01-01 00:00:00", false),
            "12345-01-01T00:00:00"
        );
        assert_eq!(iso_timestamp("infinity", true), "infinity");
        assert_eq!(
            iso_timestamp("0044-03-15 12:00:00+00 BC", true),
            "0044-03-15 12:00:00+00 BC"
        );
        assert_eq!(iso_timetz("12:00:00+05"), "12:00:00+05:00");
        assert_eq!(iso_timetz("12:00:00.25-03:30"), "12:00:00.25-03:30");
    }

    #[test]
    fn floats_round_trip_and_specials_are_named() {
        assert_eq!(
            float_text("0.1", true),
            Some(FloatText::Finite("0.1".into()))
        );
        assert_eq!(
            float_text("100", false),
            Some(FloatText::Finite("100.0".into()))
        );
        assert_eq!(
            float_text("1e+100", false),
            Some(FloatText::Finite("1e+100".into()))
        );
        assert_eq!(
            float_text("-0", false),
            Some(FloatText::Finite("-0.0".into()))
        );
        assert_eq!(float_text("NaN", false), Some(FloatText::Special("NaN")));
        assert_eq!(
            float_text("-Infinity", true),
            Some(FloatText::Special("-Infinity"))
        );
        assert_eq!(float_text("x", false), None);
    }

    #[test]
    fn bytea_hex_decodes() {
        assert_eq!(bytea_from_hex("\\x00ff"), Some(vec![0, 255]));
        assert_eq!(bytea_from_hex("\\x"), Some(vec![]));
        assert_eq!(bytea_from_hex("00"), None);
    }
}
