//! What every section of a scenario file shares while it is validated:
//! the error type, the context that turns spans into lines, and the checks
//! of durations, milliseconds and probabilities. A leaf of the scenario
//! modules.

use std::ops::Range;
use std::time::Duration;

/// Longest simulated duration, in seconds (one week).
pub const DURATION_S_MAX: f64 = 7.0 * 24.0 * 3600.0;

/// A scenario file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error(
        "{path}: cannot read the scenario file: {error}; check the path (scenarios/ holds examples)"
    )]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Not valid TOML, an unknown field, or a value of the wrong type.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line of the problem.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// Well-formed, but a value is out of range or inconsistent.
    #[error("{path}:{line}: field `{field}`: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line of the table holding the field.
        line: usize,
        /// Path of the field, e.g. `faults[2].heal_s`.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// Validation context: the file's name and text, to turn spans into lines.
pub(crate) struct Context<'a> {
    /// The file's name, as errors give it.
    pub(crate) path: &'a str,
    /// The file's text.
    pub(crate) text: &'a str,
}

impl Context<'_> {
    /// The 1-based line at which `span` starts.
    pub(crate) fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|&b| b == b'\n').count() + 1
    }

    /// The error for `field` of the table at `span`.
    pub(crate) fn invalid(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ScenarioError {
        ScenarioError::Invalid {
            path: self.path.to_string(),
            line: self.line(span),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `value` seconds as a duration of at most [`DURATION_S_MAX`].
pub(crate) fn seconds(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    value: f64,
) -> Result<Duration, ScenarioError> {
    if !value.is_finite() || !(0.0..=DURATION_S_MAX).contains(&value) {
        return Err(context.invalid(
            span,
            field,
            format!("{value} is not a duration in seconds (0 to {DURATION_S_MAX})"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

/// `value` milliseconds, 1 ms to one hour.
pub(crate) fn millis(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    value: u64,
) -> Result<Duration, ScenarioError> {
    if value == 0 || value > 3_600_000 {
        return Err(context.invalid(span, field, format!("{value} ms is outside 1 ms to 1 hour")));
    }
    Ok(Duration::from_millis(value))
}

/// `value` as a probability in `[0, 1]`.
pub(crate) fn probability(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    value: f64,
) -> Result<f64, ScenarioError> {
    if !(0.0..=1.0).contains(&value) {
        return Err(context.invalid(
            span,
            field,
            format!("{value} is not a probability in [0, 1]"),
        ));
    }
    Ok(value)
}
