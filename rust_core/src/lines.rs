//! Line-oriented input, read and parsed on two threads: the calling thread
//! pulls bytes (and with them any decompression) and cuts them into chunks
//! of whole lines; a scoped worker thread walks the lines. The two overlap,
//! so a scan of a compressed dump costs about the slower of decoding and
//! parsing rather than their sum. A few chunks are in flight at most, so
//! memory stays bounded, and a line longer than the limit is skipped (and
//! reported) without ever being held.

use std::io::{self, BufRead};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::error::{CoreError, Result};

const CHUNK: usize = 4 << 20;
const IN_FLIGHT: usize = 3;

/// What the line walker sees, in input order.
pub enum Event<'a> {
    /// One line, its newline included (the last line of a file may lack it).
    Line {
        bytes: &'a [u8],
        offset: u64,
        line: u64,
    },
    /// A line longer than the limit, skipped whole.
    TooLong { offset: u64, line: u64, len: u64 },
    /// Reading failed (a corrupt or truncated container) after `offset`
    /// bytes of the decompressed stream; nothing follows.
    ReadError { error: io::Error, offset: u64 },
}

enum Msg {
    /// A buffer whose first `len` bytes are whole lines.
    Chunk(Vec<u8>, usize),
    TooLong(u64),
    ReadError(io::Error),
}

/// Bytes asked of the reader at a time: at least a `BufReader`'s capacity, so
/// the reads go straight to the decoder or the file, into the chunk, with no
/// copy through the `BufReader`'s own buffer.
const READ: usize = 1 << 20;

/// Feed every line of `reader` to `each`, which returns `Ok(false)` to stop early.
pub fn for_each_line<F>(reader: &mut dyn BufRead, max_line: usize, each: F) -> Result<()>
where
    F: FnMut(Event) -> Result<bool> + Send,
{
    let (tx, rx) = sync_channel::<Msg>(IN_FLIGHT);
    // Spent chunks go back to be refilled: no fresh 5 MiB allocation (and
    // its page faults) per chunk.
    let (back_tx, back_rx) = sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
    std::thread::scope(|scope| {
        let walker = scope.spawn(move || walk(rx, back_tx, max_line, each));
        produce(reader, &tx, &back_rx, max_line);
        drop(tx);
        walker
            .join()
            .unwrap_or_else(|_| Err(CoreError::Config("the line walker panicked".into())))
    })
}

fn produce(
    reader: &mut dyn BufRead,
    tx: &SyncSender<Msg>,
    back: &Receiver<Vec<u8>>,
    max_line: usize,
) {
    let fresh = || back.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK + READ]);
    let mut chunk: Vec<u8> = fresh();
    // chunk[..used] holds bytes read; chunk[line_start..used] is an unfinished line.
    let mut used = 0usize;
    let mut line_start = 0usize;
    // Bytes of an overlong line skipped so far (chunk is empty meanwhile).
    let mut skipping: Option<u64> = None;
    loop {
        if chunk.len() < used + READ {
            chunk.resize(used + READ, 0);
        }
        let n = match reader.read(&mut chunk[used..used + READ]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // The unfinished line at the end belongs to the failed read.
                if skipping.is_none() {
                    let _ = send_whole_lines(tx, &mut chunk, line_start, used, fresh());
                }
                let _ = tx.send(Msg::ReadError(e));
                return;
            }
        };
        let mut old = used;
        if let Some(skipped) = skipping {
            match memchr::memchr(b'\n', &chunk[..n]) {
                Some(i) => {
                    skipping = None;
                    if tx.send(Msg::TooLong(skipped + i as u64 + 1)).is_err() {
                        return;
                    }
                    chunk.copy_within(i + 1..n, 0);
                    used = n - i - 1;
                    old = 0;
                    line_start = 0;
                }
                None => {
                    skipping = Some(skipped + n as u64);
                    continue;
                }
            }
        } else {
            used += n;
        }
        if let Some(j) = memchr::memrchr(b'\n', &chunk[old..used]) {
            line_start = old + j + 1;
        }
        if used - line_start > max_line {
            // Drop the overlong line's bytes and skip to its end.
            let partial = (used - line_start) as u64;
            if send_whole_lines(tx, &mut chunk, line_start, line_start, fresh()).is_err() {
                return;
            }
            (used, line_start) = (0, 0);
            skipping = Some(partial);
            continue;
        }
        if used >= CHUNK && line_start > 0 {
            match send_whole_lines(tx, &mut chunk, line_start, used, fresh()) {
                Ok(rest) => (used, line_start) = (rest, 0),
                Err(()) => return,
            }
        }
    }
    if let Some(skipped) = skipping {
        let _ = tx.send(Msg::TooLong(skipped));
    } else if used > 0 {
        let _ = tx.send(Msg::Chunk(chunk, used));
    }
}

/// Send `chunk[..end]`; `chunk[end..used]`, moved to the front of `next`,
/// becomes the chunk being filled. Returns its length.
fn send_whole_lines(
    tx: &SyncSender<Msg>,
    chunk: &mut Vec<u8>,
    end: usize,
    used: usize,
    mut next: Vec<u8>,
) -> std::result::Result<usize, ()> {
    if end == 0 {
        return Ok(used);
    }
    let rest = used - end;
    if next.len() < rest + READ {
        next.resize(rest + READ, 0);
    }
    next[..rest].copy_from_slice(&chunk[end..used]);
    let full = std::mem::replace(chunk, next);
    tx.send(Msg::Chunk(full, end)).map_err(|_| ())?;
    Ok(rest)
}

fn walk<F>(rx: Receiver<Msg>, back: SyncSender<Vec<u8>>, max_line: usize, mut each: F) -> Result<()>
where
    F: FnMut(Event) -> Result<bool>,
{
    let mut offset = 0u64;
    let mut line = 0u64;
    for msg in rx {
        match msg {
            Msg::Chunk(chunk, len) => {
                let mut rest = &chunk[..len];
                while !rest.is_empty() {
                    let len = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
                    line += 1;
                    let go = if len > max_line {
                        each(Event::TooLong {
                            offset,
                            line,
                            len: len as u64,
                        })?
                    } else {
                        each(Event::Line {
                            bytes: &rest[..len],
                            offset,
                            line,
                        })?
                    };
                    if !go {
                        return Ok(());
                    }
                    offset += len as u64;
                    rest = &rest[len..];
                }
                let _ = back.try_send(chunk);
            }
            Msg::TooLong(len) => {
                line += 1;
                if !each(Event::TooLong { offset, line, len })? {
                    return Ok(());
                }
                offset += len;
            }
            Msg::ReadError(error) => {
                each(Event::ReadError { error, offset })?;
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor, Read};

    #[derive(Debug, PartialEq)]
    enum Seen {
        Line(Vec<u8>, u64, u64),
        TooLong(u64, u64, u64),
        Error(u64),
    }

    fn collect(reader: &mut dyn BufRead, max: usize) -> Vec<Seen> {
        let mut seen = Vec::new();
        for_each_line(reader, max, |e| {
            seen.push(match e {
                Event::Line {
                    bytes,
                    offset,
                    line,
                } => Seen::Line(bytes.to_vec(), offset, line),
                Event::TooLong { offset, line, len } => Seen::TooLong(offset, line, len),
                Event::ReadError { offset, .. } => Seen::Error(offset),
            });
            Ok(true)
        })
        .expect("walk");
        seen
    }

    #[test]
    fn lines_offsets_and_overlong_lines() {
        let data = format!("ab\n{}\ncd\nlast", "x".repeat(100));
        // a tiny buffer so lines straddle reads
        let mut r = BufReader::with_capacity(7, Cursor::new(data.into_bytes()));
        let seen = collect(&mut r, 50);
        assert_eq!(
            seen,
            vec![
                Seen::Line(b"ab\n".to_vec(), 0, 1),
                Seen::TooLong(3, 2, 101),
                Seen::Line(b"cd\n".to_vec(), 104, 3),
                Seen::Line(b"last".to_vec(), 107, 4),
            ]
        );
    }

    #[test]
    fn large_input_is_chunked_without_losing_bytes() {
        let line = b"<row Id=\"1\" Body=\"some text\" />\n";
        let data: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 400_000)
            .collect();
        let mut r = BufReader::with_capacity(1 << 16, Cursor::new(data.clone()));
        let mut total = 0usize;
        let mut lines = 0u64;
        for_each_line(&mut r, 1 << 20, |e| {
            if let Event::Line {
                bytes,
                offset,
                line,
            } = e
            {
                assert_eq!(offset as usize, total);
                assert_eq!(bytes, line_of(line));
                total += bytes.len();
                lines += 1;
            }
            Ok(true)
        })
        .expect("walk");
        assert_eq!((total, lines), (data.len(), 400_000));

        fn line_of(_: u64) -> &'static [u8] {
            b"<row Id=\"1\" Body=\"some text\" />\n"
        }
    }

    struct Failing(Cursor<Vec<u8>>);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            if n == 0 {
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut"))
            } else {
                Ok(n)
            }
        }
    }

    #[test]
    fn read_errors_arrive_after_the_lines_before_them() {
        let mut r = BufReader::new(Failing(Cursor::new(b"one\ntwo\nthr".to_vec())));
        let seen = collect(&mut r, 50);
        assert_eq!(
            seen,
            vec![
                Seen::Line(b"one\n".to_vec(), 0, 1),
                Seen::Line(b"two\n".to_vec(), 4, 2),
                Seen::Error(8),
            ]
        );
    }

    #[test]
    fn the_walker_can_stop_early() {
        let mut r = Cursor::new(b"a\nb\nc\n".to_vec());
        let mut n = 0;
        for_each_line(&mut r, 10, |_| {
            n += 1;
            Ok(n < 2)
        })
        .expect("walk");
        assert_eq!(n, 2);
    }
}
