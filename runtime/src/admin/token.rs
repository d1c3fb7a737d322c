//! The token a TCP admin API asks for: any local user can connect to a
//! loopback port, so a request proves it may ask by carrying
//! `Authorization: Bearer TOKEN`, where TOKEN is the content of a file only
//! the agent's user reads (mode 0600).

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use subtle::ConstantTimeEq;

use crate::files::{self, Existing, Mode};

/// Random bytes in a generated token (written as twice as many hex digits).
const TOKEN_BYTES: usize = 32;

/// Fewest characters a configured token may have: 128 bits as hex.
const TOKEN_CHARS_MIN: usize = 32;

/// Longest token file read: a token is a line, not a document.
const TOKEN_FILE_BYTES_MAX: u64 = 4096;

/// A secret that admits a request; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Token(..)")
    }
}

impl Token {
    /// Draws a fresh token from the operating system and writes it to
    /// `path` crash-safely, mode 0600 from the moment it exists (replacing
    /// the previous start's).
    pub fn generate(path: &Path) -> anyhow::Result<Token> {
        let mut bytes = [0; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|error| {
            anyhow::anyhow!("the operating system gave no randomness for the admin token: {error}")
        })?;
        let token = files::hex(&bytes);
        files::write_atomic(
            path,
            format!("{token}\n").as_bytes(),
            Mode::Secret,
            Existing::Replace,
        )
        .context("cannot write the admin API's token")?;
        Ok(Token(token))
    }

    /// Reads the token an operator put in `path` (`admin_token_file`): the
    /// file must be readable by its owner only, and the token at least
    /// [`TOKEN_CHARS_MIN`] visible ASCII characters.
    pub fn read_secret(path: &Path) -> anyhow::Result<Token> {
        files::check_secret_mode(path, "admin token file")?;
        Token::read(path)
    }

    /// Reads a token file as a client does: the agent, not the client,
    /// decides who may read it.
    pub fn read(path: &Path) -> anyhow::Result<Token> {
        let unreadable = || {
            format!(
                "cannot read the admin token {}: run as the agent's user (the file is theirs, mode 0600), or pass the right --token-file",
                path.display()
            )
        };
        let metadata = std::fs::metadata(path).with_context(unreadable)?;
        if metadata.len() > TOKEN_FILE_BYTES_MAX {
            bail!(
                "admin token file {} holds {} bytes, more than a token ({TOKEN_FILE_BYTES_MAX} at most): point at the token file",
                path.display(),
                metadata.len()
            );
        }
        let text = std::fs::read_to_string(path).with_context(unreadable)?;
        let token = text.trim();
        if token.len() < TOKEN_CHARS_MIN || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
            bail!(
                "admin token file {} must hold one token of at least {TOKEN_CHARS_MIN} visible ASCII characters (make one with `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'`)",
                path.display()
            );
        }
        Ok(Token(token.to_owned()))
    }

    /// Whether `presented` is this token, compared in constant time so the
    /// answer's timing tells nothing about how much of it matched.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }

    /// The token, for the `Authorization` header of a client's request.
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_secret_and_only_itself_matches() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("admin.token");
        let token = Token::generate(&path).expect("generated");
        assert_eq!(token.expose().len(), TOKEN_BYTES * 2);
        assert_eq!(Token::read_secret(&path).expect("read back"), token);
        assert!(token.matches(token.expose().as_bytes()));
        let mut wrong = token.expose().as_bytes().to_vec();
        wrong[0] ^= 1;
        assert!(!token.matches(&wrong));
        assert!(!token.matches(&token.expose().as_bytes()[1..]));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "Token(..)");
        assert_ne!(Token::generate(&path).expect("again"), token);
    }

    #[test]
    fn a_configured_token_must_be_private_and_long_enough() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("token");
        std::fs::write(&path, "short\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = format!("{:#}", Token::read_secret(&path).unwrap_err());
        assert!(error.contains("at least 32"), "{error}");
        std::fs::write(&path, "x".repeat(40)).expect("write");
        assert!(Token::read_secret(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let error = format!("{:#}", Token::read_secret(&path).unwrap_err());
        assert!(error.contains("chmod 600"), "{error}");
    }
}
