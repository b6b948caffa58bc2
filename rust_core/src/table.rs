//! The walk that every Stack Exchange table reader (`Posts.xml`,
//! `Comments.xml`, `Users.xml`) shares: lines in order, checked for UTF-8,
//! cancellation polled, a bad or overlong row either failing the scan or
//! counted and skipped, a failed container read ending it (with the bytes it
//! cost), and a file cut before its closing root tag reported as truncated.
//! The reader only says what each line's text is.

use std::io::BufRead;

use crate::error::{CoreError, Result};
use crate::input::{self, Progress};
use crate::lines::{self, Event};
use crate::scan::{OnError, MAX_ERRORS_KEPT};

/// What a table reader made of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The closing root tag (`</posts>`, ...).
    End,
    /// A row, or the file's frame (declaration, root tag, blank line).
    Other,
}

/// What the walk counted that the reader never sees. A funnel adds these
/// with [`absorb`]: each malformed row is also a row read.
#[derive(Debug, Default)]
pub struct Faults {
    pub malformed: u64,
    /// The scan stopped early: a failed read, or no closing root tag.
    pub truncated: bool,
    pub archive_errors: u64,
    pub bytes_lost: u64,
    /// The first `MAX_ERRORS_KEPT` row errors, then the read or truncation error.
    pub errors: Vec<String>,
}

impl Faults {
    /// A failed container read after `offset` decompressed bytes: the error under
    /// `OnError::Fail`, else counted with the bytes it cost (the scan ends there).
    pub fn read_failed(
        &mut self,
        label: &str,
        error: &std::io::Error,
        offset: u64,
        progress: &Progress,
        on_error: OnError,
    ) -> Result<()> {
        let e = input::read_error(label, error, offset, progress);
        if on_error == OnError::Fail {
            return Err(e);
        }
        self.truncated = true;
        self.archive_errors += 1;
        self.bytes_lost += input::bytes_lost(error, offset, progress);
        self.errors.push(e.to_string());
        Ok(())
    }
}

/// Where in the file a line starts, for a reader's own error messages.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub label: &'a str,
    pub offset: u64,
    pub line: u64,
}

impl At<'_> {
    pub fn err(&self, msg: String) -> CoreError {
        CoreError::Format {
            path: self.label.to_string(),
            offset: self.offset,
            line: self.line,
            msg,
        }
    }
}

/// Walk the table `root` in `reader` (named `label` in errors), handing each
/// line's text to `each`. Under `OnError::Fail` the first bad row, failed
/// read or missing end is the error; under `Skip` each is counted in the
/// returned [`Faults`].
pub fn for_each_row(
    reader: &mut dyn BufRead,
    label: &str,
    root: &str,
    max_line_bytes: usize,
    on_error: OnError,
    progress: &Progress,
    mut each: impl FnMut(&str, &At) -> Result<Seen> + Send,
) -> Result<Faults> {
    let mut faults = Faults::default();
    let mut saw_end = false;
    let mut last = (0u64, 0u64);
    let skip = |faults: &mut Faults, e: CoreError| -> Result<()> {
        if on_error == OnError::Fail {
            return Err(e);
        }
        faults.malformed += 1;
        if faults.errors.len() < MAX_ERRORS_KEPT {
            faults.errors.push(e.to_string());
        }
        Ok(())
    };
    lines::for_each_line(reader, max_line_bytes, |event| {
        match event {
            Event::Line {
                bytes,
                offset,
                line,
            } => {
                progress.poll(line)?;
                last = (offset + bytes.len() as u64, line);
                let at = At {
                    label,
                    offset,
                    line,
                };
                let seen = match std::str::from_utf8(bytes) {
                    Ok(text) => each(text, &at),
                    Err(e) => Err(At {
                        offset: offset + e.valid_up_to() as u64,
                        ..at
                    }
                    .err("invalid UTF-8".into())),
                };
                match seen {
                    Ok(Seen::End) => saw_end = true,
                    Ok(Seen::Other) => {}
                    Err(e @ CoreError::Interrupted) => return Err(e),
                    Err(e) => skip(&mut faults, e)?,
                }
            }
            Event::TooLong { offset, line, len } => {
                last = (offset + len, line);
                let at = At {
                    label,
                    offset,
                    line,
                };
                skip(
                    &mut faults,
                    at.err(format!("row longer than {max_line_bytes} bytes")),
                )?;
            }
            Event::ReadError { error, offset } => {
                faults.read_failed(label, &error, offset, progress, on_error)?;
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    if !saw_end && !faults.truncated {
        let e = At {
            label,
            offset: last.0,
            line: last.1,
        }
        .err(format!(
            "file ends before the closing </{root}> tag (truncated?)"
        ));
        if on_error == OnError::Fail {
            return Err(e);
        }
        faults.truncated = true;
        faults.errors.push(e.to_string());
    }
    Ok(faults)
}

/// Add a walk's [`Faults`] to a table funnel, whose fields share their names.
macro_rules! absorb {
    ($funnel:expr, $faults:expr) => {{
        let f: $crate::table::Faults = $faults;
        $funnel.rows_read += f.malformed;
        $funnel.malformed_rows += f.malformed;
        $funnel.truncated |= f.truncated;
        $funnel.archive_errors += f.archive_errors;
        $funnel.bytes_lost += f.bytes_lost;
        $funnel.errors.extend(f.errors);
    }};
}
pub(crate) use absorb;
