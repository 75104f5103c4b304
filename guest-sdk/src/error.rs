//! The one error type of a model: a message the host reports to the client.

use crate::wit::lightning::model::tensors::TensorError;
use std::fmt;

/// An error a model returns; its message reaches the client unchanged.
///
/// Tensor op failures convert into it (`op: message`), so `?` works on every op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    message: String,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this message.
    ///
    /// ```
    /// use lightning_mcp_guest_sdk::{Error, Result};
    ///
    /// fn classes(n: u32) -> Result<u32> {
    ///     if n < 2 {
    ///         return Err(Error::new("num_classes must be at least 2"));
    ///     }
    ///     Ok(n)
    /// }
    /// assert_eq!(classes(1).unwrap_err().message(), "num_classes must be at least 2");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<TensorError> for Error {
    fn from(e: TensorError) -> Self {
        Self::new(format!("{}: {}", e.op, e.message))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::new(e.to_string())
    }
}
