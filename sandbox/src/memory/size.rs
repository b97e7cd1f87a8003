//! Human sizes such as `400M` or `2GiB`, for `--memory-limit`.
//!
//! Units are binary whatever their spelling (`M`, `MB`, `MiB` all mean 2^20), as docker's `--memory` reads
//! them: a limit is compared with cgroup and Fargate sizes, which are binary too.

use thiserror::Error;

/// Why a size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeError {
    #[error("empty size")]
    Empty,
    #[error("invalid number in size {input:?}")]
    InvalidNumber { input: String },
    #[error("unknown unit {unit:?} in size {input:?} (use B, K, M, G or T, optionally with iB)")]
    UnknownUnit { input: String, unit: String },
    #[error("size {input:?} is too large")]
    Overflow { input: String },
    #[error("size {input:?} must be more than zero bytes")]
    Zero { input: String },
}

/// Parses `<number>[unit]`: a plain byte count (`1073741824`), or a number (decimals allowed: `1.5G`)
/// followed by `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`, `G`/`GB`/`GiB` or `T`/`TB`/`TiB` (case-insensitive,
/// spaces allowed between). The result is rounded down to whole bytes and must be positive.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(SizeError::Empty);
    }
    let split = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(input.len());
    let (number, unit) = (&input[..split], input[split..].trim());
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(SizeError::UnknownUnit {
                input: input.to_string(),
                unit: unit.to_string(),
            })
        }
    };
    let invalid = || SizeError::InvalidNumber {
        input: input.to_string(),
    };
    let overflow = || SizeError::Overflow {
        input: input.to_string(),
    };
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(invalid());
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| overflow())?
    };
    let mut bytes = whole.checked_shl(shift).ok_or_else(overflow)?;
    if !frac.is_empty() {
        // Exact decimal fraction of the unit, rounded down: digits beyond 19 cannot change a u64 result.
        let digits = &frac[..frac.len().min(19)];
        let numerator: u128 = digits.parse().map_err(|_| invalid())?;
        let denominator = 10u128.pow(digits.len() as u32);
        bytes += (numerator << shift) / denominator;
    }
    let bytes = u64::try_from(bytes).map_err(|_| overflow())?;
    if bytes == 0 {
        return Err(SizeError::Zero {
            input: input.to_string(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_binary_and_decimal_forms() {
        let cases = [
            ("1073741824", 1 << 30),
            ("400M", 400 << 20),
            ("400MiB", 400 << 20),
            ("400mb", 400 << 20),
            ("400 MiB", 400 << 20),
            ("2G", 2 << 30),
            ("2GiB", 2 << 30),
            ("2g", 2 << 30),
            ("512k", 512 << 10),
            ("1T", 1 << 40),
            ("10B", 10),
            ("1.5G", 3 << 29),
            (".5M", 1 << 19),
            ("  7  ", 7),
        ];
        for (input, want) in cases {
            assert_eq!(parse_size(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects_bad_input_with_the_right_error() {
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert_eq!(parse_size("   "), Err(SizeError::Empty));
        assert!(matches!(
            parse_size("M"),
            Err(SizeError::InvalidNumber { .. })
        ));
        assert!(matches!(
            parse_size("1.2.3G"),
            Err(SizeError::InvalidNumber { .. })
        ));
        assert!(matches!(
            parse_size("."),
            Err(SizeError::InvalidNumber { .. })
        ));
        assert!(matches!(
            parse_size("-5M"),
            Err(SizeError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_size("5 parsecs"),
            Err(SizeError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_size("5X"),
            Err(SizeError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_size("99999999999T"),
            Err(SizeError::Overflow { .. })
        ));
        assert!(matches!(
            parse_size("18446744073709551616"),
            Err(SizeError::Overflow { .. })
        ));
        assert!(matches!(
            parse_size("999999999999999999999999999999999999999999"),
            Err(SizeError::Overflow { .. })
        ));
        assert!(matches!(parse_size("0"), Err(SizeError::Zero { .. })));
        assert!(matches!(parse_size("0.1B"), Err(SizeError::Zero { .. })));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }
}
