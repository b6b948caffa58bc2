//! Line-oriented input, read and parsed on two threads: the calling thread
//! pulls bytes (and with them any decompression) and cuts them into chunks
//! of whole lines; a scoped worker thread walks the lines. The two overlap,
//! so a scan of a compressed dump costs about the slower of decoding and
//! parsing rather than their sum. A few chunks are in flight at most, so
//! memory stays bounded, and a line longer than the limit is skipped (and
//! reported) without ever being held. [`map_chunks`] parses the chunks on
//! several threads instead and merges their results in input order.

use std::collections::BTreeMap;
use std::io::{self, BufRead};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

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
                let base = line;
                let walked = walk_chunk(&chunk[..len], offset, max_line, |e| {
                    each(match e {
                        Event::Line {
                            bytes,
                            offset,
                            line,
                        } => Event::Line {
                            bytes,
                            offset,
                            line: base + line,
                        },
                        Event::TooLong { offset, line, len } => Event::TooLong {
                            offset,
                            line: base + line,
                            len,
                        },
                        other => other,
                    })
                })?;
                if walked.stopped {
                    return Ok(());
                }
                line += walked.lines;
                offset += len as u64;
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

/// What [`walk_chunk`] went through.
#[derive(Debug, Clone, Copy, Default)]
pub struct Walked {
    /// Lines seen (the one `each` stopped at included).
    pub lines: u64,
    /// `each` returned `Ok(false)`.
    pub stopped: bool,
}

/// The lines of `chunk` (whole lines, the first at byte `offset` of the
/// stream) to `each`, numbered from 1 within the chunk; a line longer than
/// `max_line` comes as [`Event::TooLong`].
pub fn walk_chunk<F>(chunk: &[u8], offset: u64, max_line: usize, mut each: F) -> Result<Walked>
where
    F: FnMut(Event) -> Result<bool>,
{
    let mut walked = Walked::default();
    let mut at = 0usize;
    while at < chunk.len() {
        let rest = &chunk[at..];
        let len = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        walked.lines += 1;
        let (offset, line) = (offset + at as u64, walked.lines);
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
            walked.stopped = true;
            break;
        }
        at += len;
    }
    Ok(walked)
}

/// What [`map_chunks`] hands its merger, in input order.
pub enum Part<R> {
    /// The worker's result for one chunk of whole lines.
    Lines(R),
    /// A line longer than the limit that spanned reads, skipped whole; it
    /// starts at `offset` and is one line.
    TooLong { offset: u64, len: u64 },
    /// Reading failed after `offset` bytes; nothing follows.
    ReadError { error: io::Error, offset: u64 },
}

/// Like [`for_each_line`], with the lines parsed on `workers` threads: `work`
/// gets each chunk of whole lines with its stream offset (walk it with
/// [`walk_chunk`]; line numbers start again in every chunk) and `merge` gets
/// the results one at a time in input order, so what it builds is the same
/// for any `workers`. `merge` returns `Ok(false)` to stop early. At most
/// `workers + 2` results wait to be merged, so memory stays bounded however
/// unevenly the chunks take.
pub fn map_chunks<R, W, M>(
    reader: &mut dyn BufRead,
    max_line: usize,
    workers: usize,
    work: W,
    mut merge: M,
) -> Result<()>
where
    R: Send,
    W: Fn(&[u8], u64) -> R + Sync,
    M: FnMut(Part<R>) -> Result<bool> + Send,
{
    let workers = workers.max(1);
    let (tx, rx) = sync_channel::<Msg>(IN_FLIGHT);
    let (back_tx, back_rx) = sync_channel::<Vec<u8>>(IN_FLIGHT + workers + 2);
    // A worker takes a token before a chunk and the merger gives it back once
    // that chunk's result is merged: this bounds the results held out of order.
    let (token_tx, token_rx) = sync_channel::<()>(workers + 2);
    for _ in 0..workers + 2 {
        let _ = token_tx.send(());
    }
    // A worker that panics sends `None`, so the merger stops instead of
    // waiting for that chunk for ever.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(u64, Option<Part<R>>)>();
    // (next sequence number, stream offset of the next message)
    let inbox = Arc::new(Mutex::new((rx, 0u64, 0u64)));
    let tokens = Arc::new(Mutex::new(token_rx));
    let work = &work;
    std::thread::scope(|scope| {
        let merger = scope.spawn(move || {
            let mut waiting = BTreeMap::new();
            let mut next = 0u64;
            for (seq, part) in done_rx {
                waiting.insert(seq, part);
                while let Some(part) = waiting.remove(&next) {
                    next += 1;
                    let part =
                        part.ok_or_else(|| CoreError::Config("a line worker panicked".into()))?;
                    if !merge(part)? {
                        return Ok(());
                    }
                    let _ = token_tx.send(());
                }
            }
            Ok(())
        });
        for _ in 0..workers {
            let (inbox, tokens) = (inbox.clone(), tokens.clone());
            let (done, back) = (done_tx.clone(), back_tx.clone());
            scope.spawn(move || loop {
                if tokens.lock().map_or(true, |t| t.recv().is_err()) {
                    return;
                }
                let taken = {
                    let Ok(mut inbox) = inbox.lock() else { return };
                    let (rx, seq, offset) = &mut *inbox;
                    let Ok(msg) = rx.recv() else { return };
                    let at = (*seq, *offset);
                    *seq += 1;
                    *offset += match &msg {
                        Msg::Chunk(_, len) => *len as u64,
                        Msg::TooLong(len) => *len,
                        Msg::ReadError(_) => 0,
                    };
                    (msg, at)
                };
                let (msg, (seq, offset)) = taken;
                let part = match msg {
                    Msg::Chunk(chunk, len) => {
                        let r = catch_unwind(AssertUnwindSafe(|| work(&chunk[..len], offset)));
                        let _ = back.try_send(chunk);
                        r.ok().map(Part::Lines)
                    }
                    Msg::TooLong(len) => Some(Part::TooLong { offset, len }),
                    Msg::ReadError(error) => Some(Part::ReadError { error, offset }),
                };
                if done.send((seq, part)).is_err() {
                    return;
                }
            });
        }
        drop((done_tx, back_tx, inbox, tokens));
        produce(reader, &tx, &back_rx, max_line);
        drop(tx);
        merger
            .join()
            .unwrap_or_else(|_| Err(CoreError::Config("the line merger panicked".into())))
    })
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

    fn numbered(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("{i:07}\n").into_bytes())
            .collect()
    }

    #[test]
    fn mapped_chunks_merge_in_order_and_can_stop() {
        // 1.5 M lines of 8 bytes: three chunks or so.
        let data = numbered(1_500_000);
        for workers in [1, 3] {
            let mut next = 0u64;
            let mut chunks = 0;
            map_chunks(
                &mut Cursor::new(data.clone()),
                100,
                workers,
                |chunk, offset| {
                    let mut firsts = Vec::new();
                    walk_chunk(chunk, offset, 100, |e| {
                        if let Event::Line { bytes, offset, .. } = e {
                            firsts.push((offset, bytes.to_vec()));
                        }
                        Ok(true)
                    })
                    .expect("walk");
                    firsts
                },
                |part| {
                    let Part::Lines(lines) = part else {
                        panic!("only lines")
                    };
                    for (offset, bytes) in lines {
                        assert_eq!(offset, next * 8);
                        assert_eq!(bytes, format!("{next:07}\n").into_bytes());
                        next += 1;
                    }
                    chunks += 1;
                    Ok(true)
                },
            )
            .expect("map");
            assert_eq!(next, 1_500_000, "{workers} workers");
            assert!(chunks >= 2, "{chunks} chunks");
            let mut merged = 0;
            map_chunks(
                &mut Cursor::new(data.clone()),
                100,
                workers,
                |c, _| c.len(),
                |_| {
                    merged += 1;
                    Ok(false)
                },
            )
            .expect("stop");
            assert_eq!(merged, 1);
        }
    }

    #[test]
    fn a_worker_that_panics_is_an_error_not_a_hang() {
        let data = numbered(1_500_000);
        let r = map_chunks(
            &mut Cursor::new(data),
            100,
            2,
            |_, offset| {
                assert!(offset == 0, "the second chunk panics");
            },
            |_| Ok(true),
        );
        assert!(r.is_err_and(|e| e.to_string().contains("panicked")));
    }
}
