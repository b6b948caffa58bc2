//! One error type for the whole core. Every variant that comes from user data
//! names the file and where in it, so a message is actionable on its own.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The file could not be opened or read at all.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The bytes are readable but not what the format promises.
    #[error("{path}: byte {offset} (line {line}): {msg}")]
    Format {
        path: String,
        offset: u64,
        line: u64,
        msg: String,
    },
    /// The container (7z, zstd) is corrupt or truncated.
    #[error("{path}: byte {offset} of the compressed file: {msg}")]
    Archive {
        path: String,
        offset: u64,
        msg: String,
    },
    /// A caller asked for something inconsistent.
    #[error("{0}")]
    Config(String),
    /// The caller asked us to stop (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}

impl CoreError {
    pub fn io(path: &Path, source: io::Error) -> Self {
        CoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The kind of an I/O error, when this is one, so bindings can map it to
    /// the matching built-in exception.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            CoreError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, CoreError>;

/// The payload of an `io::Error` raised while decoding a container: where in
/// the compressed file the fault is, so the error that reaches the user names
/// the exact byte rather than how far the reader had read ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFault {
    /// Byte offset in the file on disk.
    pub offset: u64,
    pub msg: String,
    /// Decompressed size of the member being read, when the container says.
    pub member_size: Option<u64>,
}

impl std::fmt::Display for ReadFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for ReadFault {}

impl ReadFault {
    pub fn io(offset: u64, msg: impl Into<String>) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            ReadFault {
                offset,
                msg: msg.into(),
                member_size: None,
            },
        )
    }

    /// The fault inside an `io::Error`, if it carries one.
    pub fn of(e: &io::Error) -> Option<&ReadFault> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ReadFault>())
    }
}
