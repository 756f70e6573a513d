//! Units of limit values: parsing what an operator types (`64MiB`, `5s`) and
//! showing values the same way back.
//!
//! Every limit is stored as a `u64` in its base unit (bytes, milliseconds, or a
//! plain count); the unit only changes how a value is read and shown.

use serde::Serialize;

/// One kibibyte.
pub const KIB: u64 = 1024;
/// One mebibyte.
pub const MIB: u64 = 1024 * KIB;
/// One gibibyte.
pub const GIB: u64 = 1024 * MIB;

/// The unit of a limit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    /// Bytes; accepts `B`, `KiB`/`K`, `MiB`/`M`, `GiB`/`G` (binary) and `KB`, `MB`, `GB` (decimal).
    Bytes,
    /// Milliseconds; accepts `ms`, `s`, `m`.
    Millis,
    /// CPU cores (a count).
    Cores,
    /// Requests per minute.
    PerMinute,
    /// Requests per second.
    PerSecond,
    /// Concurrent users.
    Users,
    /// A share, in percent (0–100).
    Percent,
    /// A plain count without a unit.
    Count,
}

/// Why a typed value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}")]
pub struct ParseValueError {
    /// What a valid value looks like, for the message.
    pub expected: &'static str,
}

impl Unit {
    /// The unit's name as shown in the schema, or `None` for plain counts.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Unit::Bytes => Some("bytes"),
            Unit::Millis => Some("ms"),
            Unit::Cores => Some("cores"),
            Unit::PerMinute => Some("requests/min"),
            Unit::PerSecond => Some("requests/s"),
            Unit::Users => Some("users"),
            Unit::Percent => Some("%"),
            Unit::Count => None,
        }
    }

    /// What a valid value for this unit looks like, for error messages.
    pub fn example(self) -> &'static str {
        match self {
            Unit::Bytes => "a size such as 64MiB, 512KiB or 1048576",
            Unit::Millis => "a duration such as 5s, 500ms or 5000",
            Unit::Percent => "a percentage such as 50 or 50%",
            _ => "a whole number such as 10",
        }
    }

    /// Parses an operator-typed value into the base unit.
    pub fn parse(self, input: &str) -> Result<u64, ParseValueError> {
        let err = ParseValueError {
            expected: self.example(),
        };
        let s = input.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, suffix) = s.split_at(split);
        if digits.is_empty() {
            return Err(err);
        }
        let number: u64 = digits.parse().map_err(|_| err.clone())?;
        let suffix = suffix.trim();
        let factor = match self {
            Unit::Bytes => match suffix.to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kib" => KIB,
                "m" | "mib" => MIB,
                "g" | "gib" => GIB,
                "kb" => 1000,
                "mb" => 1_000_000,
                "gb" => 1_000_000_000,
                _ => return Err(err),
            },
            Unit::Millis => match suffix {
                "" | "ms" => 1,
                "s" => 1000,
                "m" | "min" => 60_000,
                _ => return Err(err),
            },
            Unit::Percent if suffix.is_empty() || suffix == "%" => 1,
            _ if suffix.is_empty() => 1,
            _ => return Err(err),
        };
        number.checked_mul(factor).ok_or(err)
    }

    /// Shows a value the way an operator would type it (`50 MiB`, `5 s`, `8`).
    pub fn format(self, value: u64) -> String {
        match self {
            Unit::Bytes => format_bytes(value),
            Unit::Millis if value != 0 && value.is_multiple_of(1000) => {
                format!("{} s", value / 1000)
            }
            Unit::Millis => format!("{value} ms"),
            Unit::PerMinute => format!("{value}/min"),
            Unit::PerSecond => format!("{value}/s"),
            Unit::Percent => format!("{value}%"),
            Unit::Cores | Unit::Users | Unit::Count => value.to_string(),
        }
    }
}

/// Shows a byte count exactly when it is a whole number of MiB or GiB (or is
/// small), else rounded to one decimal of the largest unit that fits.
pub fn format_bytes(value: u64) -> String {
    const STEPS: [(u64, &str); 3] = [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")];
    if value == 0 {
        return "0 B".to_string();
    }
    for (size, name) in STEPS {
        if value.is_multiple_of(size) && (size >= MIB || value < MIB) {
            return format!("{} {name}", value / size);
        }
    }
    for (size, name) in STEPS {
        if value >= size {
            return format!("{:.1} {name}", value as f64 / size as f64);
        }
    }
    format!("{value} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        let cases = [
            ("1048576", 1_048_576),
            ("64MiB", 64 * MIB),
            ("64 MiB", 64 * MIB),
            ("64mib", 64 * MIB),
            ("64M", 64 * MIB),
            ("512KiB", 512 * KIB),
            ("1GiB", GIB),
            ("1GB", 1_000_000_000),
            ("10B", 10),
        ];
        for (input, want) in cases {
            assert_eq!(Unit::Bytes.parse(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn parses_durations() {
        assert_eq!(Unit::Millis.parse("5s"), Ok(5000));
        assert_eq!(Unit::Millis.parse("500ms"), Ok(500));
        assert_eq!(Unit::Millis.parse("2500"), Ok(2500));
        assert_eq!(Unit::Millis.parse("1m"), Ok(60_000));
    }

    #[test]
    fn refuses_what_is_not_a_value() {
        for input in [
            "",
            "abc",
            "-5",
            "1.5",
            "5 parsecs",
            "MiB",
            "18446744073709551616",
        ] {
            assert!(Unit::Bytes.parse(input).is_err(), "{input:?}");
        }
        assert!(Unit::Count.parse("5s").is_err());
        assert!(Unit::Count.parse("-1").is_err());
        assert!(Unit::Millis.parse("5MiB").is_err());
        // Overflow of the multiplication is an error, not a wrap.
        assert!(Unit::Bytes.parse("18446744073709551615GiB").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for (unit, value) in [
            (Unit::Bytes, 50 * MIB),
            (Unit::Bytes, GIB),
            (Unit::Bytes, 1000),
            (Unit::Millis, 5000),
            (Unit::Millis, 1500),
            (Unit::Count, 7),
        ] {
            let shown = unit.format(value);
            let plain: String = shown.chars().filter(|c| *c != ' ').collect();
            assert_eq!(unit.parse(&plain), Ok(value), "{shown}");
        }
        assert_eq!(format_bytes(1536 * KIB + 1), "1.5 MiB");
        assert_eq!(format_bytes(24_684_084 * KIB), "23.5 GiB");
        assert_eq!(format_bytes(512 * KIB), "512 KiB");
    }
}
