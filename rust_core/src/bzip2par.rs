//! BZip2 decoded on every core, in order, as one `Read` stream.
//!
//! A bzip2 stream is a header and a sequence of blocks, each starting with
//! the 48-bit magic 0x314159265359 at any bit position and decodable on its
//! own. The splitter finds the magics (and the end-of-stream magic
//! 0x177245385090), wraps each block's bits into a one-block stream of its own
//! (header, block, end-of-stream magic, the block's CRC as the stream CRC) and
//! hands it to a worker; the reader returns the workers' output in block
//! order. Every block's CRC is still checked by the decoder. In flight at a
//! time: two blocks per worker, so memory stays a few megabytes.

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, MatchKind};
use std::io::{self, Read};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
const EOS_MAGIC: u64 = 0x1772_4538_5090;
const CHUNK: usize = 1 << 20;

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

type Job = (u64, Vec<u8>);
type Done = (u64, io::Result<Vec<u8>>);

/// Where the next block's bits come from.
struct Splitter<R> {
    inner: R,
    /// Compressed bytes not yet assigned to a finished block.
    buf: Vec<u8>,
    /// Bit offset (in `buf`) where the current block's magic starts, if any.
    block_start: Option<u64>,
    /// Bits of `buf` already scanned for magics.
    scanned: u64,
    finder: AhoCorasick,
    level: u8,
    seen_eos: bool,
    eof: bool,
    /// Bytes of `inner` consumed, for error offsets.
    consumed: u64,
}

pub struct ParallelBz2<R> {
    splitter: Splitter<R>,
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    next_job: u64,
    next_out: u64,
    ready: BTreeMap<u64, io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    max_in_flight: u64,
    finished_input: bool,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl<R: Read> ParallelBz2<R> {
    pub fn new(mut inner: R, threads: usize) -> io::Result<Self> {
        let mut head = [0u8; 4];
        inner.read_exact(&mut head)?;
        if &head[..3] != b"BZh" || !(b'1'..=b'9').contains(&head[3]) {
            return Err(bad("not a bzip2 stream (no BZh header)"));
        }
        let threads = threads.max(1);
        let (job_tx, job_rx) = channel::<Job>();
        let (done_tx, done_rx) = channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&job_rx);
                let tx = done_tx.clone();
                std::thread::spawn(move || worker(rx, tx))
            })
            .collect();
        Ok(ParallelBz2 {
            splitter: Splitter {
                inner,
                buf: Vec::with_capacity(2 * CHUNK),
                block_start: None,
                scanned: 0,
                finder: magic_finder()?,
                level: head[3],
                seen_eos: false,
                eof: false,
                consumed: 4,
            },
            jobs: Some(job_tx),
            done: done_rx,
            workers,
            next_job: 0,
            next_out: 0,
            ready: BTreeMap::new(),
            current: Vec::new(),
            pos: 0,
            max_in_flight: 2 * threads as u64,
            finished_input: false,
        })
    }

    /// Hand out blocks until enough are in flight or the input ends.
    fn feed(&mut self) -> io::Result<()> {
        while !self.finished_input && self.next_job - self.next_out < self.max_in_flight {
            match self.splitter.next_block()? {
                Some(stream) => {
                    if let Some(jobs) = &self.jobs {
                        jobs.send((self.next_job, stream))
                            .map_err(|_| bad("bzip2 worker stopped"))?;
                    }
                    self.next_job += 1;
                }
                None => self.finished_input = true,
            }
        }
        Ok(())
    }

    fn next_output(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.feed()?;
        if self.next_out == self.next_job {
            return Ok(None);
        }
        loop {
            if let Some(result) = self.ready.remove(&self.next_out) {
                self.next_out += 1;
                return result.map(Some);
            }
            let (seq, result) = self.done.recv().map_err(|_| bad("bzip2 workers stopped"))?;
            self.ready.insert(seq, result);
        }
    }
}

impl<R: Read> Read for ParallelBz2<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.next_output()? {
                Some(block) => {
                    self.current = block;
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

fn worker(jobs: Arc<Mutex<std::sync::mpsc::Receiver<Job>>>, done: Sender<Done>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, stream)) = job else { return };
        if done.send((seq, decode_one(&stream))).is_err() {
            return;
        }
    }
}

fn decode_one(stream: &[u8]) -> io::Result<Vec<u8>> {
    let mut d = bzip2::Decompress::new(false);
    let mut out = Vec::with_capacity(stream.len() * 6);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(1 << 16));
        }
        let before = (d.total_in(), d.total_out());
        let consumed = d.total_in() as usize;
        match d.decompress_vec(&stream[consumed..], &mut out) {
            Ok(bzip2::Status::StreamEnd) => return Ok(out),
            Ok(_) => {
                if (d.total_in(), d.total_out()) == before && out.len() < out.capacity() {
                    return Err(bad("bzip2 block ends early"));
                }
            }
            Err(e) => return Err(bad(format!("bzip2 block is corrupt: {e}"))),
        }
    }
}

fn bit(buf: &[u8], i: u64) -> u64 {
    u64::from(buf[(i >> 3) as usize] >> (7 - (i & 7)) & 1)
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
        self.consumed += n as u64;
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    /// The next block as a standalone one-block bzip2 stream, or None at the end.
    fn next_block(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            while let Some((magic_at, is_block)) = self.find_magic() {
                if is_block && self.block_start.is_none() && self.seen_eos {
                    // a concatenated stream: its header ("BZh" + level) sits right before
                    let at = (magic_at / 8) as usize;
                    if magic_at % 8 == 0 && at >= 4 && &self.buf[at - 4..at - 1] == b"BZh" {
                        self.level = self.buf[at - 1];
                    }
                }
                self.seen_eos = !is_block;
                let finished = self
                    .block_start
                    .map(|s| self.wrap(s, magic_at))
                    .transpose()?;
                self.block_start = is_block.then_some(magic_at);
                if !is_block {
                    // after the end-of-stream magic: its CRC, padding, maybe another stream
                    self.trim_before(self.scanned);
                }
                if let Some(stream) = finished {
                    if let Some(s) = self.block_start {
                        self.trim_before(s);
                    }
                    return Ok(Some(stream));
                }
            }
            if !self.fill()? {
                if self.block_start.is_some() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "bzip2 stream ends inside a block (after {} compressed bytes)",
                            self.consumed
                        ),
                    ));
                }
                return Ok(None);
            }
        }
    }

    /// The next magic at or after bit `scanned`: its bit offset and whether it
    /// starts a block (else it ends the stream). A byte-level multi-pattern
    /// search finds candidates for all 8 bit alignments at once; each is then
    /// checked bit for bit.
    fn find_magic(&mut self) -> Option<(u64, bool)> {
        let total = self.buf.len() as u64 * 8;
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
            let found = (0..48).fold(0u64, |acc, i| acc << 1 | bit(&self.buf, start + i));
            if found == magic && best.is_none_or(|(b, _)| start < b) {
                best = Some((start, is_block));
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
        }
    }

    /// Bits [start, end) of `buf` as a one-block stream.
    fn wrap(&self, start: u64, end: u64) -> io::Result<Vec<u8>> {
        if end - start < 80 {
            return Err(bad("bzip2 block too short"));
        }
        let mut w = BitWriter::with_capacity(((end - start) / 8 + 16) as usize);
        w.bytes(&[b'B', b'Z', b'h', self.level]);
        let mut crc = 0u32;
        for i in 0..32 {
            crc = crc << 1 | bit(&self.buf, start + 48 + i) as u32;
        }
        w.copy_bits(&self.buf, start, end);
        w.bits(EOS_MAGIC, 48);
        w.bits(u64::from(crc), 32);
        Ok(w.finish())
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
    /// Copy bits [start, end) of `src`; whole bytes at a time where possible.
    fn copy_bits(&mut self, src: &[u8], start: u64, end: u64) {
        let mut i = start;
        while i < end && i % 8 != 0 {
            self.bits(bit(src, i), 1);
            i += 1;
        }
        let whole = (end - i) / 8;
        let from = (i / 8) as usize;
        if self.n == 0 {
            self.out
                .extend_from_slice(&src[from..from + whole as usize]);
        } else {
            let shift = self.n;
            for &b in &src[from..from + whole as usize] {
                let v = (self.acc << 8 | u64::from(b)) as u16 as u64;
                self.out.push((v >> shift) as u8);
                self.acc = v & ((1 << shift) - 1);
            }
        }
        i += whole * 8;
        while i < end {
            self.bits(bit(src, i), 1);
            i += 1;
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

    #[test]
    fn many_blocks_in_order() {
        // level 1: 100k blocks, so the coffee dump spans several
        let data = real_text();
        let packed = compress(&data, 1);
        for threads in [1, 2, 3] {
            let mut out = Vec::new();
            ParallelBz2::new(&packed[..], threads)
                .expect("header")
                .read_to_end(&mut out)
                .expect("decode");
            assert!(out == data, "threads={threads}");
        }
    }

    #[test]
    fn concatenated_streams() {
        let data = real_text();
        let (a, b) = data.split_at(data.len() / 3);
        let mut packed = compress(a, 1);
        packed.extend(compress(b, 9));
        let mut out = Vec::new();
        ParallelBz2::new(&packed[..], 2)
            .expect("header")
            .read_to_end(&mut out)
            .expect("decode");
        assert!(out == data);
    }

    #[test]
    fn corruption_and_truncation_are_errors() {
        let data = real_text();
        let packed = compress(&data, 1);
        let mut flipped = packed.clone();
        flipped[packed.len() / 2] ^= 0x10;
        let mut out = Vec::new();
        assert!(ParallelBz2::new(&flipped[..], 2)
            .expect("header")
            .read_to_end(&mut out)
            .is_err());
        let cut = &packed[..packed.len() / 2];
        let err = ParallelBz2::new(cut, 2)
            .expect("header")
            .read_to_end(&mut Vec::new())
            .expect_err("truncated");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(ParallelBz2::new(&b"PK\x03\x04"[..], 2).is_err());
    }
}
