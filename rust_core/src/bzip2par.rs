//! BZip2 decoded on every core, in order, as one `Read` stream.
//!
//! A bzip2 stream is a header and a sequence of blocks, each starting with
//! the 48-bit magic 0x314159265359 at any bit position and decodable on its
//! own. The splitter finds the magics (and the end-of-stream magic
//! 0x177245385090, accepted only where the stream's CRC, padding and then the
//! end of input or another stream header follow) and hands each block's bits
//! to a worker ([`crate::bzip2block`]); the reader returns the workers' output
//! in block order, checks every block's CRC and each stream's combined CRC. A
//! magic can also occur by chance inside compressed bits (once in 2^48 bits);
//! such a false split shows as a block that needs bits past its segment, and
//! the reader decodes it again joined with the next segment. In flight at a
//! time: two blocks per worker, so memory stays a few tens of megabytes.
//!
//! Errors carry a [`ReadFault`] with the compressed byte offset of the block.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::bzip2block::{combine_crc, BlockDecoder, BlockError, BLOCK_MAGIC, EOS_MAGIC};
use crate::error::ReadFault;

const CHUNK: usize = 1 << 20;
/// Segments joined at most when undoing false splits.
const MAX_JOIN: usize = 4;

/// Four whole bytes of each magic at each of the 8 bit alignments: patterns
/// 0..8 are the block magic shifted by 0..8 bits, 8..16 the end-of-stream magic.
fn magic_finder() -> io::Result<AhoCorasick> {
    let mut patterns = Vec::with_capacity(16);
    for magic in [BLOCK_MAGIC, EOS_MAGIC] {
        for shift in 0..8 {
            let v = (magic << (16 - shift)).to_be_bytes();
            let first = if shift == 0 { 0 } else { 1 };
            patterns.push(v[first..first + 4].to_vec());
        }
    }
    AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .build(patterns)
        .map_err(|e| bad(format!("magic search: {e}")))
}

/// The bits of one block: `bytes` starts at absolute byte `offset` of the
/// compressed file; the block is bits `start..end` of `bytes`.
#[derive(Debug, Clone)]
struct Segment {
    bytes: Vec<u8>,
    start: u64,
    end: u64,
    offset: u64,
    level: u8,
}

impl Segment {
    fn magic_offset(&self) -> u64 {
        self.offset + self.start / 8
    }

    /// This segment followed by the next one (which starts where this ends).
    fn join(&self, next: &Segment) -> Segment {
        let keep = (next.offset - self.offset) as usize;
        let mut bytes = Vec::with_capacity(keep + next.bytes.len());
        bytes.extend_from_slice(&self.bytes[..keep]);
        bytes.extend_from_slice(&next.bytes);
        Segment {
            bytes,
            start: self.start,
            end: keep as u64 * 8 + next.end,
            offset: self.offset,
            level: self.level,
        }
    }
}

enum Piece {
    Block(Segment),
    /// The end of a stream, with the CRC it stores.
    End {
        crc: u32,
        offset: u64,
    },
}

type Decoded = Result<(Vec<u8>, u32), BlockError>;

enum Ready {
    Block(Segment, Decoded),
    End { crc: u32, offset: u64 },
}

/// Where the next block's bits come from.
struct Splitter<R> {
    inner: R,
    /// Compressed bytes not yet assigned to a finished block.
    buf: Vec<u8>,
    /// Absolute offset of `buf[0]` in the compressed file.
    origin: u64,
    /// Bit offset (in `buf`) where the current block's magic starts, if any.
    block_start: Option<u64>,
    /// Bits of `buf` already scanned for magics.
    scanned: u64,
    finder: AhoCorasick,
    level: u8,
    /// Set after an end-of-stream magic: a stream header must come next, or nothing.
    after_end: bool,
    pending: Option<Piece>,
    eof: bool,
    /// Extra bit positions treated as block magics (tests of false splits).
    #[cfg(test)]
    fake_splits: Vec<u64>,
}

pub struct ParallelBz2<R> {
    splitter: Splitter<R>,
    jobs: Option<Sender<(u64, Segment)>>,
    done: Receiver<(u64, Segment, Decoded)>,
    workers: Vec<JoinHandle<()>>,
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
    next_job: u64,
    next_out: u64,
    ready: BTreeMap<u64, Ready>,
    current: Vec<u8>,
    pos: usize,
    max_in_flight: u64,
    finished_input: bool,
    stream_crc: u32,
    /// Decodes joined segments on the reading thread.
    local: Option<BlockDecoder>,
    /// The first failure: every later read repeats it, since the bytes after a
    /// damaged block no longer line up with the members the caller counts.
    failed: Option<ReadFault>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl<R: Read> ParallelBz2<R> {
    /// Decode `inner`, a bzip2 stream (or several, concatenated) that starts at
    /// byte `base` of the file on disk, on `threads` workers.
    pub fn new(mut inner: R, threads: usize, base: u64) -> io::Result<Self> {
        let mut head = [0u8; 4];
        inner
            .read_exact(&mut head)
            .map_err(|e| ReadFault::io(base, format!("no bzip2 header: {e}")))?;
        if &head[..3] != b"BZh" || !(b'1'..=b'9').contains(&head[3]) {
            return Err(ReadFault::io(base, "not a bzip2 stream (no BZh header)"));
        }
        let threads = threads.max(1);
        let (job_tx, job_rx) = channel::<(u64, Segment)>();
        let (done_tx, done_rx) = channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let spare = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&job_rx);
                let tx = done_tx.clone();
                let spare = Arc::clone(&spare);
                std::thread::spawn(move || worker(rx, tx, spare))
            })
            .collect();
        Ok(ParallelBz2 {
            splitter: Splitter {
                inner,
                buf: Vec::with_capacity(2 * CHUNK),
                origin: base + 4,
                block_start: None,
                scanned: 0,
                finder: magic_finder()?,
                level: head[3] - b'0',
                after_end: false,
                pending: None,
                eof: false,
                #[cfg(test)]
                fake_splits: Vec::new(),
            },
            jobs: Some(job_tx),
            done: done_rx,
            workers,
            spare,
            next_job: 0,
            next_out: 0,
            ready: BTreeMap::new(),
            current: Vec::new(),
            pos: 0,
            max_in_flight: 2 * threads as u64,
            finished_input: false,
            stream_crc: 0,
            local: None,
            failed: None,
        })
    }

    /// Hand out blocks until enough are in flight or the input ends.
    fn feed(&mut self) -> io::Result<()> {
        while !self.finished_input && self.next_job - self.next_out < self.max_in_flight {
            match self.splitter.next_piece()? {
                Some(Piece::Block(seg)) => {
                    if let Some(jobs) = &self.jobs {
                        jobs.send((self.next_job, seg))
                            .map_err(|_| bad("bzip2 worker stopped"))?;
                    }
                    self.next_job += 1;
                }
                Some(Piece::End { crc, offset }) => {
                    self.ready.insert(self.next_job, Ready::End { crc, offset });
                    self.next_job += 1;
                }
                None => self.finished_input = true,
            }
        }
        Ok(())
    }

    /// The entry of sequence number `seq`, waiting for its worker if need be.
    fn take(&mut self, seq: u64) -> io::Result<Option<Ready>> {
        loop {
            if let Some(r) = self.ready.remove(&seq) {
                return Ok(Some(r));
            }
            if seq >= self.next_job {
                self.feed()?;
                if seq >= self.next_job {
                    return Ok(None);
                }
                continue;
            }
            let (s, seg, result) = self.done.recv().map_err(|_| bad("bzip2 workers stopped"))?;
            self.ready.insert(s, Ready::Block(seg, result));
        }
    }

    fn next_output(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            self.feed()?;
            let Some(entry) = self.take(self.next_out)? else {
                return Ok(None);
            };
            self.next_out += 1;
            let (seg, result) = match entry {
                Ready::End { crc, offset } => {
                    if crc != self.stream_crc {
                        return Err(ReadFault::io(
                            offset,
                            format!(
                                "bzip2 stream CRC mismatch (stored {crc:08x}, computed {:08x})",
                                self.stream_crc
                            ),
                        ));
                    }
                    self.stream_crc = 0;
                    continue;
                }
                Ready::Block(seg, result) => (seg, result),
            };
            let (data, crc) = match result {
                Ok(ok) => ok,
                Err(BlockError::Truncated) => self.rejoin(seg)?,
                Err(e) => return Err(block_fault(&seg, &e)),
            };
            self.stream_crc = combine_crc(self.stream_crc, crc);
            return Ok(Some(data));
        }
    }

    /// A block that needed bits past its segment: join the following
    /// segments to it (a false magic split it) until it decodes.
    fn rejoin(&mut self, first: Segment) -> io::Result<(Vec<u8>, u32)> {
        let mut joined = first.clone();
        for _ in 1..MAX_JOIN {
            let next = match self.take(self.next_out)? {
                Some(Ready::Block(seg, _)) => seg,
                Some(end @ Ready::End { .. }) => {
                    self.ready.insert(self.next_out, end);
                    break;
                }
                None => break,
            };
            self.next_out += 1;
            joined = joined.join(&next);
            let local = self.local.get_or_insert_with(BlockDecoder::new);
            match decode_segment(local, &joined, Vec::new()) {
                Ok(ok) => return Ok(ok),
                Err(BlockError::Truncated) => continue,
                Err(_) => break,
            }
        }
        Err(block_fault(&first, &BlockError::Truncated))
    }
}

fn block_fault(seg: &Segment, e: &BlockError) -> io::Error {
    let at = seg.magic_offset();
    let msg = match e {
        BlockError::Truncated => format!("bzip2 block at byte {at} is cut short"),
        other => format!("bzip2 block at byte {at}: {other}"),
    };
    ReadFault::io(at, msg)
}

impl<R> ParallelBz2<R> {
    /// The read failure every read now repeats, if one happened.
    pub fn failed(&self) -> Option<&ReadFault> {
        self.failed.as_ref()
    }
}

impl<R: Read> Read for ParallelBz2<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = &self.failed {
            return Err(ReadFault::io(
                f.offset,
                format!("after a damaged bzip2 block: {}", f.msg),
            ));
        }
        while self.pos == self.current.len() {
            let next = self.next_output().inspect_err(|e| {
                self.failed = Some(ReadFault::of(e).cloned().unwrap_or(ReadFault {
                    offset: 0,
                    msg: e.to_string(),
                    member_size: None,
                }));
            });
            match next? {
                Some(block) => {
                    let spent = std::mem::replace(&mut self.current, block);
                    if let Ok(mut spare) = self.spare.lock() {
                        if spare.len() < self.workers.len() * 2 {
                            spare.push(spent);
                        }
                    }
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<R> Drop for ParallelBz2<R> {
    fn drop(&mut self) {
        self.jobs = None; // closes the queue; workers finish their job and exit
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

type JobQueue = Arc<Mutex<Receiver<(u64, Segment)>>>;

fn worker(jobs: JobQueue, done: Sender<(u64, Segment, Decoded)>, spare: Arc<Mutex<Vec<Vec<u8>>>>) {
    let mut decoder = BlockDecoder::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, seg)) = job else { return };
        let out = spare
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_default();
        let result = decode_segment(&mut decoder, &seg, out);
        if done.send((seq, seg, result)).is_err() {
            return;
        }
    }
}

/// Decode one segment, which must hold exactly one block.
fn decode_segment(decoder: &mut BlockDecoder, seg: &Segment, mut out: Vec<u8>) -> Decoded {
    out.clear();
    match decoder.decode(&seg.bytes, seg.start, seg.end, seg.level, &mut out) {
        Ok(info) if info.end_bit == seg.end => Ok((out, info.crc)),
        Ok(_) => Err(BlockError::Corrupt(
            "the block ends before the next block marker".into(),
        )),
        Err(BlockError::Randomised) => decode_with_libbzip2(seg),
        Err(e) => Err(e),
    }
}

/// Old randomised blocks: wrapped as a one-block stream for libbzip2.
fn decode_with_libbzip2(seg: &Segment) -> Decoded {
    let crc = (0..32).fold(0u32, |acc, i| {
        acc << 1 | bit(&seg.bytes, seg.start + 48 + i) as u32
    });
    let mut w = BitWriter::with_capacity(((seg.end - seg.start) / 8 + 16) as usize);
    w.bytes(&[b'B', b'Z', b'h', b'0' + seg.level]);
    w.copy_bits(&seg.bytes, seg.start, seg.end);
    w.bits(EOS_MAGIC, 48);
    w.bits(u64::from(crc), 32);
    let stream = w.finish();
    let mut d = bzip2::Decompress::new(false);
    let mut out = Vec::with_capacity(usize::from(seg.level) * 100_000 + 1024);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(1 << 16));
        }
        let before = (d.total_in(), d.total_out());
        let consumed = d.total_in() as usize;
        match d.decompress_vec(&stream[consumed..], &mut out) {
            Ok(bzip2::Status::StreamEnd) => return Ok((out, crc)),
            Ok(_) => {
                if (d.total_in(), d.total_out()) == before && out.len() < out.capacity() {
                    return Err(BlockError::Truncated);
                }
            }
            Err(e) => return Err(BlockError::Corrupt(format!("{e}"))),
        }
    }
}

fn bit(buf: &[u8], i: u64) -> u64 {
    buf.get((i >> 3) as usize)
        .map_or(0, |b| u64::from(b >> (7 - (i & 7)) & 1))
}

fn bits_at(buf: &[u8], at: u64, n: u32) -> u64 {
    (0..u64::from(n)).fold(0u64, |acc, i| acc << 1 | bit(buf, at + i))
}

enum EndCheck {
    /// A real end of stream: its CRC, and the level of the stream that follows.
    Real(u32, Option<u8>),
    False,
    NeedMore,
}

impl<R: Read> Splitter<R> {
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let start = self.buf.len();
        self.buf.resize(start + CHUNK, 0);
        let n = loop {
            match self.inner.read(&mut self.buf[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(start + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    fn total_bits(&self) -> u64 {
        self.buf.len() as u64 * 8
    }

    /// The next block or stream end, or None at the end of the input.
    fn next_piece(&mut self) -> io::Result<Option<Piece>> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        loop {
            while let Some((at, is_block)) = self.find_magic() {
                if !is_block {
                    match self.check_end(at) {
                        EndCheck::NeedMore => {
                            // look at this magic again with more bytes (or at the end
                            // of input, which check_end then decides on)
                            self.fill()?;
                            self.scanned = at;
                            continue;
                        }
                        EndCheck::False => {
                            self.scanned = at + 1;
                            continue;
                        }
                        EndCheck::Real(crc, next_level) => {
                            let end = Piece::End {
                                crc,
                                offset: self.origin + at / 8,
                            };
                            let finished = self.block_start.take().map(|s| self.segment(s, at));
                            if let Some(level) = next_level {
                                self.level = level;
                            }
                            self.after_end = true;
                            self.trim_before(self.scanned);
                            return Ok(Some(match finished {
                                Some(seg) => {
                                    self.pending = Some(end);
                                    Piece::Block(seg)
                                }
                                None => end,
                            }));
                        }
                    }
                }
                if self.block_start.is_none() && !self.after_end && at != 0 {
                    return Err(ReadFault::io(
                        self.origin,
                        "bzip2 stream does not start with a block",
                    ));
                }
                self.after_end = false;
                let finished = self.block_start.map(|s| self.segment(s, at));
                self.block_start = Some(at);
                if let Some(seg) = finished {
                    self.trim_before(at);
                    return Ok(Some(Piece::Block(seg)));
                }
            }
            if !self.fill()? {
                if self.block_start.is_some() {
                    return Err(ReadFault::io(
                        self.origin + self.buf.len() as u64,
                        format!(
                            "bzip2 stream ends inside a block (after byte {})",
                            self.origin + self.buf.len() as u64
                        ),
                    ));
                }
                if !self.after_end {
                    return Err(ReadFault::io(
                        self.origin + self.buf.len() as u64,
                        "bzip2 stream ends without its end-of-stream marker",
                    ));
                }
                return Ok(None);
            }
        }
    }

    /// Is the end-of-stream magic at bit `at` real? Then its 32-bit CRC, zero
    /// padding to a byte, and the end of input or a new stream header follow.
    fn check_end(&self, at: u64) -> EndCheck {
        let total = self.total_bits();
        let crc_end = at + 48 + 32;
        let next = crc_end.div_ceil(8) * 8;
        if next > total {
            return if self.eof {
                EndCheck::False
            } else {
                EndCheck::NeedMore
            };
        }
        if bits_at(&self.buf, crc_end, (next - crc_end) as u32) != 0 {
            return EndCheck::False;
        }
        let crc = bits_at(&self.buf, at + 48, 32) as u32;
        if next == total {
            return if self.eof {
                EndCheck::Real(crc, None)
            } else {
                EndCheck::NeedMore
            };
        }
        // another stream: "BZh" + level, then a block or end magic
        if next + 80 > total {
            return if self.eof {
                EndCheck::False
            } else {
                EndCheck::NeedMore
            };
        }
        let i = (next / 8) as usize;
        let head = &self.buf[i..i + 4];
        let magic = bits_at(&self.buf, next + 32, 48);
        if &head[..3] == b"BZh"
            && (b'1'..=b'9').contains(&head[3])
            && (magic == BLOCK_MAGIC || magic == EOS_MAGIC)
        {
            EndCheck::Real(crc, Some(head[3] - b'0'))
        } else {
            EndCheck::False
        }
    }

    fn segment(&self, start: u64, end: u64) -> Segment {
        let from = (start / 8) as usize;
        let to = (end.div_ceil(8) as usize).min(self.buf.len());
        Segment {
            bytes: self.buf[from..to].to_vec(),
            start: start % 8,
            end: end - from as u64 * 8,
            offset: self.origin + from as u64,
            level: self.level,
        }
    }

    /// The next magic at or after bit `scanned`: its bit offset and whether it
    /// starts a block (else it ends the stream). A byte-level multi-pattern
    /// search finds candidates for all 8 bit alignments at once; each is then
    /// checked bit for bit.
    fn find_magic(&mut self) -> Option<(u64, bool)> {
        let total = self.total_bits();
        if self.scanned + 48 > total {
            return None;
        }
        let from = (self.scanned / 8).saturating_sub(1) as usize;
        let mut best: Option<(u64, bool)> = None;
        for m in self.finder.find_overlapping_iter(&self.buf[from..]) {
            let at = (from + m.start()) as u64;
            if let Some((b, _)) = best {
                if at * 8 > b + 16 {
                    break;
                }
            }
            let pattern = m.pattern().as_usize();
            let (is_block, shift) = (pattern < 8, pattern as u64 % 8);
            let start = if shift == 0 {
                at * 8
            } else if at == 0 {
                continue;
            } else {
                (at - 1) * 8 + shift
            };
            if start < self.scanned || start + 48 > total {
                continue;
            }
            let magic = if is_block { BLOCK_MAGIC } else { EOS_MAGIC };
            if bits_at(&self.buf, start, 48) == magic && best.is_none_or(|(b, _)| start < b) {
                best = Some((start, is_block));
            }
        }
        #[cfg(test)]
        if let Some(&fake) = self
            .fake_splits
            .iter()
            .find(|&&f| f >= self.scanned && f + 48 <= total)
        {
            if best.is_none_or(|(b, _)| fake < b) {
                best = Some((fake, true));
            }
        }
        match best {
            Some((p, is_block)) => {
                self.scanned = p + 48;
                Some((p, is_block))
            }
            None => {
                // a magic may straddle the end of what is buffered
                self.scanned = self.scanned.max(total - 47);
                None
            }
        }
    }

    /// Drop whole bytes before bit `keep`, keeping bit offsets consistent.
    fn trim_before(&mut self, keep: u64) {
        let bytes = (keep / 8) as usize;
        // amortised: drop the prefix once it is most of the buffer
        if bytes > 0 && bytes * 2 > self.buf.len() {
            self.buf.drain(..bytes);
            let shift = bytes as u64 * 8;
            self.scanned -= shift;
            self.block_start = self.block_start.map(|s| s - shift);
            self.origin += bytes as u64;
            #[cfg(test)]
            {
                self.fake_splits = self
                    .fake_splits
                    .iter()
                    .filter(|&&f| f >= shift)
                    .map(|f| f - shift)
                    .collect();
            }
        }
    }
}

struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn with_capacity(cap: usize) -> Self {
        BitWriter {
            out: Vec::with_capacity(cap),
            acc: 0,
            n: 0,
        }
    }
    fn bits(&mut self, value: u64, count: u32) {
        for i in (0..count).rev() {
            self.acc = self.acc << 1 | (value >> i & 1);
            self.n += 1;
            if self.n == 8 {
                self.out.push(self.acc as u8);
                self.acc = 0;
                self.n = 0;
            }
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.bits(u64::from(x), 8);
        }
    }
    /// Copy bits [start, end) of `src`.
    fn copy_bits(&mut self, src: &[u8], start: u64, end: u64) {
        for i in start..end {
            self.bits(bit(src, i), 1);
        }
    }
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            let pad = 8 - self.n;
            self.bits(0, pad);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn compress(data: &[u8], level: u32) -> Vec<u8> {
        let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::new(level));
        enc.write_all(data).expect("compress");
        enc.finish().expect("finish")
    }

    fn real_text() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../lima/samples/stackexchange/coffee.stackexchange.com/Posts.xml"
        );
        std::fs::read(path).expect("coffee dump")
    }

    fn decode(packed: &[u8], threads: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        ParallelBz2::new(packed, threads, 0)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn many_blocks_in_order() {
        // level 1: 100k blocks, so the coffee dump spans several
        let data = real_text();
        let packed = compress(&data, 1);
        for threads in [1, 2, 3] {
            assert!(
                decode(&packed, threads).expect("decode") == data,
                "threads={threads}"
            );
        }
    }

    #[test]
    fn concatenated_streams() {
        let data = real_text();
        let (a, b) = data.split_at(data.len() / 3);
        let mut packed = compress(a, 1);
        packed.extend(compress(b, 9));
        assert!(decode(&packed, 2).expect("decode") == data);
    }

    #[test]
    fn corruption_and_truncation_name_the_block() {
        let data = real_text();
        let packed = compress(&data, 1);
        let mut flipped = packed.clone();
        let at = packed.len() / 2;
        flipped[at] ^= 0x10;
        let err = decode(&flipped, 2).expect_err("flipped");
        let fault = ReadFault::of(&err).expect("fault");
        assert!(
            fault.offset <= at as u64 && at as u64 - fault.offset < 120_000,
            "{fault:?}"
        );
        assert!(err.to_string().contains("bzip2 block at byte"), "{err}");
        let cut = &packed[..packed.len() / 2];
        let err = decode(cut, 2).expect_err("truncated");
        assert!(err.to_string().contains("ends inside a block"), "{err}");
        assert!(decode(b"PK\x03\x04", 2).is_err());
        // a stream cut after its last block, before the end marker
        let (blocks, _) = crate::bzip2block::tests_support::markers(&packed);
        assert!(!blocks.is_empty());
    }

    #[test]
    fn a_stored_stream_crc_that_does_not_match_is_an_error() {
        let data = real_text();
        let mut packed = compress(&data, 1);
        // the stream CRC is the last 32 bits before the padding: flip one of them
        let (_, eos) = crate::bzip2block::tests_support::markers(&packed);
        let crc_bit = eos + 48 + 5;
        packed[(crc_bit / 8) as usize] ^= 0x80 >> (crc_bit % 8);
        let err = decode(&packed, 2).expect_err("stream crc");
        assert!(err.to_string().contains("stream CRC mismatch"), "{err}");
    }

    #[test]
    fn a_false_block_magic_is_joined_back() {
        let data = real_text();
        let packed = compress(&data, 1);
        let (blocks, _) = crate::bzip2block::tests_support::markers(&packed);
        let mut dec = ParallelBz2::new(&packed[..], 2, 0).expect("header");
        // pretend magics were found in the middle of the second and third blocks
        // (positions relative to the splitter's buffer, which starts after the header)
        dec.splitter.fake_splits = vec![
            (blocks[1] + blocks[2]) / 2 - 32,
            (blocks[2] + blocks[3]) / 2 - 32,
            (blocks[2] + blocks[3]) / 2 - 32 + 4000,
        ];
        let mut out = Vec::new();
        dec.read_to_end(&mut out).expect("decode");
        assert!(out == data);
    }
}
