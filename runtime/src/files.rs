//! fleetmesh's files on disk: versioned JSON envelopes, hex, crash-safe
//! writes and times, shared by the operator CLI and the agent's state
//! directory.
//!
//! Every file is a JSON object whose first two fields are `format` (what
//! the file is) and `version` (of that format), so a reader (the CLI, the
//! agent) can tell a wrong or newer file from a corrupt one and say so,
//! instead of failing on some inner field.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use fleetmesh_crdt::{Digest, Ed25519, PublicKey, Signature, SignatureCheck, Verifier};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version of every format fleetmesh writes; a reader refuses others.
pub const FORMAT_VERSION: u32 = 1;

/// A file body with its `format` and `version` fields in front.
#[derive(Serialize)]
struct Envelope<'a, T> {
    format: &'a str,
    version: u32,
    #[serde(flatten)]
    body: &'a T,
}

/// Who may read a written file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Anyone the directory lets in: public statements (trust, certificates,
    /// changes, releases).
    Public,
    /// The owner only (0600): secret keys.
    Secret,
}

/// What writing does when the target file exists.
#[derive(Clone, Copy)]
pub enum Existing {
    /// Replace it: files a command updates in place (a chain it extends,
    /// a release it signs).
    Replace,
    /// Leave it and fail; `hint` says what to do instead.
    Refuse {
        /// The way out, as the command offers it.
        hint: &'static str,
    },
}

impl Existing {
    /// For commands with a `--force` flag.
    pub fn unless_forced(force: bool) -> Existing {
        if force {
            Existing::Replace
        } else {
            Existing::Refuse {
                hint: "choose another path, or pass --force to replace it",
            }
        }
    }
}

/// Serializes `body` as the pretty JSON file of kind `format`.
pub fn to_json<T: Serialize>(format: &str, body: &T) -> anyhow::Result<Vec<u8>> {
    let envelope = Envelope {
        format,
        version: FORMAT_VERSION,
        body,
    };
    let mut bytes = serde_json::to_vec_pretty(&envelope).context("encoding JSON")?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Reads `path` as a file of kind `format` (described as `what` in errors).
pub fn read_json<T: DeserializeOwned>(path: &Path, format: &str, what: &str) -> anyhow::Result<T> {
    let text = fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {what} file {}: check the path and its permissions",
            path.display()
        )
    })?;
    parse_json(&text, format, what)
        .map_err(|error| anyhow::anyhow!("file {} {error:#}", path.display()))
}

/// Parses `text` as a file of kind `format`: checks `format` and `version`
/// first, so a wrong file is named as such rather than as a missing field.
/// Errors read as the rest of a sentence starting "file NAME ".
pub fn parse_json<T: DeserializeOwned>(text: &str, format: &str, what: &str) -> anyhow::Result<T> {
    let value: serde_json::Value = serde_json::from_str(text).with_context(|| {
        format!("is not a fleetmesh {what} (expected a JSON object with \"format\": \"{format}\"): invalid JSON")
    })?;
    let found = value.get("format").and_then(serde_json::Value::as_str);
    if found != Some(format) {
        bail!(
            "is not a fleetmesh {what} (expected \"format\": \"{format}\", found {})",
            found.map_or("no format field".to_owned(), |found| format!("\"{found}\""))
        );
    }
    let version = value.get("version").and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(FORMAT_VERSION)) {
        bail!(
            "has {what} format version {}, which this fleetmesh does not read (it reads version {FORMAT_VERSION}): use a matching fleetmesh",
            version.map_or("(missing)".to_owned(), |version| version.to_string())
        );
    }
    serde_json::from_value(value).map_err(|error| anyhow::anyhow!("is a malformed {what}: {error}"))
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or
/// the new one, never a torn mix: write a temporary file in the same
/// directory (a rename is atomic only within one file system), fsync it,
/// rename it over `path`, then fsync the directory so the rename itself is
/// durable. An existing `path` is refused unless `existing` says replace,
/// checked again at the rename (a hard link fails if the target appeared
/// meanwhile).
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: Mode,
    existing: Existing,
) -> anyhow::Result<()> {
    let overwrite = matches!(existing, Existing::Replace);
    if let Existing::Refuse { hint } = existing
        && path.exists()
    {
        bail!("{} already exists: {hint}", path.display());
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = write_temp(&temp, bytes, mode).and_then(|()| {
        if overwrite {
            fs::rename(&temp, path)
        } else {
            fs::hard_link(&temp, path).and_then(|()| fs::remove_file(&temp))
        }
    });
    if let Err(error) = written {
        let _ = fs::remove_file(&temp);
        return Err(io_failure("cannot write", path, &error));
    }
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|error| io_failure("cannot sync directory", dir, &error))
}

/// An I/O error met on `path` worded for an operator: `what` failed,
/// the cause as it is (a full disk is not a permission problem), what to
/// do about it, and the system's own words. Every state write error the
/// agent reports goes through here.
pub fn io_failure(what: &str, path: &Path, error: &std::io::Error) -> anyhow::Error {
    let path = path.display();
    let advice = match (error.raw_os_error(), error.kind()) {
        #[cfg(unix)]
        (Some(libc::EMFILE), _) => format!(
            "too many open files (this process's limit is {}): raise LimitNOFILE in the agent's systemd unit, or `ulimit -n` where it starts",
            crate::process::open_files_limit()
                .map_or_else(|| "unknown".to_owned(), |limit| limit.to_string())
        ),
        #[cfg(unix)]
        (Some(libc::ENFILE), _) => "the system's table of open files is full: raise sysctl fs.file-max, or find the process holding them".to_owned(),
        #[cfg(unix)]
        (Some(libc::ENOSPC | libc::EDQUOT), _) => format!(
            "no space left on the device (or quota) holding {path}: free space there"
        ),
        #[cfg(unix)]
        (Some(libc::EROFS), _) => format!(
            "the file system holding {path} is read-only: remount it read-write"
        ),
        #[cfg(unix)]
        (Some(libc::EIO), _) => "the disk reported an I/O error: check it (`dmesg`)".to_owned(),
        (_, std::io::ErrorKind::PermissionDenied) => format!(
            "permission denied: make {path} and its directory writable by the agent's user"
        ),
        (_, std::io::ErrorKind::NotFound) => {
            format!("{path} or its directory does not exist: create the directory")
        }
        _ => format!("check that the directory of {path} exists and is writable"),
    };
    anyhow::anyhow!("{what} {path}: {advice} ({error})")
}

/// Refuses a secret key or token file that others than its owner may
/// read (group or world bits set), with the command that fixes it.
pub fn check_secret_mode(path: &Path, what: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = fs::metadata(path).with_context(|| {
            format!(
                "cannot read {what} {}: check the path and its permissions",
                path.display()
            )
        })?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{what} {} has mode {mode:o}, readable by others than its owner: run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    Ok(())
}

fn write_temp(temp: &Path, bytes: &[u8], mode: Mode) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    // The mode is set at creation: a secret is never readable by others,
    // not even between create and chmod.
    #[cfg(unix)]
    options.mode(match mode {
        Mode::Secret => 0o600,
        Mode::Public => 0o644,
    });
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(temp)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|byte| {
            [
                DIGITS[usize::from(byte >> 4)],
                DIGITS[usize::from(byte & 15)],
            ]
        })
        .map(char::from)
        .collect()
}

/// Parses hex (either case) naming `what` in errors.
pub fn unhex(text: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        bail!(
            "{what} is not whole hex bytes ({} digits, an odd number): the value was truncated or mistyped",
            text.len()
        );
    }
    text.as_bytes()
        .chunks(2)
        .enumerate()
        .map(|(index, pair)| {
            let digit = |c: u8| char::from(c).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(high), Some(low)) => Ok((high * 16 + low) as u8),
                _ => bail!("{what} has a non-hex character at position {}", index * 2),
            }
        })
        .collect()
}

/// Parses exactly `N` hex bytes.
pub fn unhex_array<const N: usize>(text: &str, what: &str) -> anyhow::Result<[u8; N]> {
    let bytes = unhex(text, what)?;
    let found = bytes.len();
    bytes.try_into().map_err(|_| {
        anyhow::anyhow!(
            "{what} must be {} hex digits, found {}: the value was truncated or mistyped",
            N * 2,
            found * 2
        )
    })
}

/// Parses a public key given as 64 hex digits.
pub fn parse_key(text: &str, what: &str) -> anyhow::Result<PublicKey> {
    unhex_array(text, what).map(PublicKey)
}

/// Parses a digest given as 64 hex digits.
pub fn parse_digest(text: &str, what: &str) -> anyhow::Result<Digest> {
    unhex_array(text, what).map(Digest)
}

/// A signature as 128 hex digits.
pub fn signature_hex(signature: &Signature) -> String {
    hex(&signature.to_bytes())
}

/// Parses a signature given as 128 hex digits.
pub fn parse_signature(text: &str, what: &str) -> anyhow::Result<Signature> {
    unhex_array(text, what).map(Signature::from_bytes)
}

/// Signatures by key as files hold them: both halves in hex.
pub fn signatures_hex(signatures: &BTreeMap<PublicKey, Signature>) -> BTreeMap<String, String> {
    signatures
        .iter()
        .map(|(key, signature)| (key.to_hex(), signature_hex(signature)))
        .collect()
}

/// The first key whose signature over `digest` does not verify, if any.
pub fn bad_signer(
    digest: Digest,
    signatures: &BTreeMap<PublicKey, Signature>,
) -> Option<PublicKey> {
    signatures
        .iter()
        .find(|&(key, signature)| {
            let check = SignatureCheck {
                key: *key,
                digest,
                signature: *signature,
            };
            !Ed25519.verify(&check)
        })
        .map(|(key, _)| *key)
}

/// Parses signatures by key written by [`signatures_hex`].
pub fn parse_signatures(
    signatures: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<PublicKey, Signature>> {
    signatures
        .iter()
        .map(|(key, signature)| {
            Ok((
                parse_key(key, "a signing key")?,
                parse_signature(signature, "a signature")?,
            ))
        })
        .collect()
}

/// Milliseconds since the Unix epoch now: the HLC time of a fresh clock,
/// which is what certificate and release expiries are compared with.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Parses an expiry: Unix milliseconds, or an RFC 3339 time such as
/// `2027-01-31T12:00:00Z` or `2027-01-31T14:00:00.5+02:00`.
pub fn parse_time(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text
            .parse()
            .with_context(|| format!("time {text} is too large for milliseconds"));
    }
    rfc3339_millis(text).with_context(|| {
        format!(
            "time {text:?} is neither Unix milliseconds nor RFC 3339 (like 2027-01-31T12:00:00Z)"
        )
    })
}

fn rfc3339_millis(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let value = |a: u8, b: u8| i64::from(a - b'0') * 10 + i64::from(b - b'0');
            let minutes = value(digits[0], digits[1]) * 60 + value(digits[2], digits[3]);
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    u64::try_from(seconds * 1_000 + millis).ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm: eras of 400 years, years starting in March).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Formats Unix milliseconds as RFC 3339 in UTC, for people reading output.
pub fn format_time(millis: u64) -> String {
    let seconds = millis / 1_000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
    let of_day = seconds % 86_400;
    // The inverse of `days_from_civil`.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3_600,
        of_day / 60 % 60,
        of_day % 60,
        millis % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_both_forms_and_round_trip() {
        assert_eq!(parse_time("0").unwrap(), 0);
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_time("2027-01-31T14:00:00.5+02:00").unwrap(),
            parse_time("2027-01-31T12:00:00.500Z").unwrap()
        );
        let millis = parse_time("2024-02-29T23:59:59.123Z").unwrap();
        assert_eq!(format_time(millis), "2024-02-29T23:59:59.123Z");
        for bad in ["", "2027-02-30T00:00:00Z", "2027-01-01T00:00:00", "soon"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_io_failure_names_its_cause_and_what_to_do() {
        let path = Path::new("/var/lib/fleetmesh/durable.json");
        let said = |errno| {
            format!(
                "{:#}",
                io_failure(
                    "cannot write",
                    path,
                    &std::io::Error::from_raw_os_error(errno)
                )
            )
        };
        let limit = crate::process::open_files_limit()
            .expect("a limit")
            .to_string();
        let emfile = said(libc::EMFILE);
        assert!(emfile.contains("too many open files"), "{emfile}");
        assert!(emfile.contains(&format!("limit is {limit}")), "{emfile}");
        assert!(emfile.contains("LimitNOFILE"), "{emfile}");
        assert!(said(libc::ENFILE).contains("fs.file-max"));
        let full = said(libc::ENOSPC);
        assert!(full.contains("no space left"), "{full}");
        assert!(!full.contains("permission"), "{full}");
        assert!(said(libc::EDQUOT).contains("no space left"));
        assert!(said(libc::EROFS).contains("read-only"));
        assert!(said(libc::EACCES).contains("permission denied"));
        assert!(said(libc::EPERM).contains("permission denied"));
        let other = said(libc::EBUSY);
        assert!(
            other.starts_with("cannot write /var/lib/fleetmesh/durable.json: check"),
            "{other}"
        );
    }

    #[test]
    fn hex_refuses_odd_lengths_and_garbage() {
        assert_eq!(unhex(&hex(&[0, 171, 255]), "x").unwrap(), vec![0, 171, 255]);
        assert!(unhex("abc", "x").is_err());
        assert!(unhex("zz", "x").is_err());
        assert!(unhex_array::<2>("aabbcc", "x").is_err());
    }
}
