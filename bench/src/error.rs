//! One error type for the whole tool: a message with the chain of contexts it went through.
//!
//! Every fallible step at run time (a socket, a file under `/proc`, a child process) returns
//! [`Result`] and adds what it was doing with [`Context::context`], so a failure reads like
//! `starting nchan: waiting for 127.0.0.1:40123: connection refused`.

use std::fmt;

/// An error message, outermost context first.
#[derive(Debug)]
pub struct Error(String);

/// The tool's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error from a message.
    pub fn msg(text: impl fmt::Display) -> Self {
        Self(text.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self(err.to_string())
    }
}

/// Adds what was being done to an error (like `anyhow::Context`).
pub trait Context<T> {
    /// Prefixes the error with `what`.
    fn context(self, what: impl fmt::Display) -> Result<T>;
    /// Prefixes the error with a lazily built `what`.
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|err| Error(format!("{what}: {err}")))
    }

    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|err| Error(format!("{}: {err}", what())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| Error(what.to_string()))
    }

    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| Error(what().to_string()))
    }
}

/// Returns early with a formatted [`Error`].
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::msg(format!($($arg)*)))
    };
}
