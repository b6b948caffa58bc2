//! One bzip2 block, decoded from its bits.
//!
//! The format (Seward's bzip2 1.0): after the 48-bit block magic come the
//! block CRC, a "randomised" bit, the BWT origin pointer, the bitmap of bytes
//! used, 2..6 Huffman tables with their selectors (one per 50 symbols), then
//! the symbols: move-to-front indices, with runs of the front byte written in
//! bijective base 2 (RUNA, RUNB), up to the end-of-block symbol. Undoing the
//! Burrows-Wheeler transform gives the input of the first run-length stage
//! (four equal bytes and a count byte), whose output the CRC covers.
//!
//! Written for speed on every core: Huffman codes are read through a lookup
//! table of the next [`FAST_BITS`] bits, and the inverse BWT, whose cost is a
//! chain of dependent loads into a 3.6 MB table, is cut into pieces walked
//! side by side, so dozens of cache misses are in flight instead of one. The
//! pieces must join into one cycle; that, the block CRC and every bound are
//! checked.
//!
//! Blocks of the long-obsolete randomised variant are declined
//! ([`BlockError::Randomised`]); the caller hands those to libbzip2.

use std::fmt;

pub const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
pub const EOS_MAGIC: u64 = 0x1772_4538_5090;

/// Symbols 0 (RUNA) and 1 (RUNB) write runs; the rest are MTF indices.
const RUNB: u16 = 1;
const GROUP_SIZE: u32 = 50;
const MAX_GROUPS: usize = 6;
const MAX_ALPHA: usize = 258;
const MAX_CODE_LEN: u32 = 20;
/// bzip2 1.0.8 reads at most this many selectors and ignores the rest.
const MAX_SELECTORS: usize = 18002;
/// Codes up to this long decode with one table lookup.
const FAST_BITS: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// The block needs bits past the end of the segment it was given: the
    /// segment was cut short (a false block marker inside it, or truncation).
    Truncated,
    /// An old randomised block, which this decoder does not handle.
    Randomised,
    /// The bits are not a valid block.
    Corrupt(String),
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::Truncated => write!(f, "bzip2 block ends early"),
            BlockError::Randomised => write!(f, "randomised bzip2 block"),
            BlockError::Corrupt(m) => write!(f, "bzip2 block is corrupt: {m}"),
        }
    }
}

fn corrupt<T>(msg: impl Into<String>) -> Result<T, BlockError> {
    Err(BlockError::Corrupt(msg.into()))
}

/// What a decoded block says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// The CRC stored in the block (and checked against its output).
    pub crc: u32,
    /// Bit offset, in the input slice, just past the block's last bit.
    pub end_bit: u64,
}

/// MSB-first bit reader over a byte slice. Past the end it reads zeros; the
/// caller compares the position with the segment's end.
struct Bits<'a> {
    data: &'a [u8],
    /// Index of the next byte not yet counted in `n`.
    next: usize,
    /// Valid bits, left-aligned.
    acc: u64,
    n: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], bit: u64) -> Self {
        let mut b = Bits {
            data,
            next: (bit / 8) as usize,
            acc: 0,
            n: 0,
        };
        b.refill();
        b.skip((bit % 8) as u32);
        b
    }

    #[inline(always)]
    fn refill(&mut self) {
        if let Some(w) = self.data.get(self.next..self.next + 8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(w);
            // Bits of a partly counted byte are already in `acc`: OR-ing the
            // same bits again changes nothing.
            self.acc |= u64::from_be_bytes(bytes) >> self.n;
            let k = (63 - self.n) >> 3;
            self.next += k as usize;
            self.n += k * 8;
        } else {
            while self.n <= 56 {
                let byte = self.data.get(self.next).copied().unwrap_or(0);
                self.acc |= u64::from(byte) << (56 - self.n);
                self.next += 1;
                self.n += 8;
            }
        }
    }

    #[inline(always)]
    fn peek(&self, k: u32) -> u32 {
        (self.acc >> (64 - k)) as u32
    }

    #[inline(always)]
    fn skip(&mut self, k: u32) {
        self.acc <<= k;
        self.n -= k;
    }

    #[inline]
    fn get(&mut self, k: u32) -> u32 {
        if self.n < k {
            self.refill();
        }
        let v = self.peek(k);
        self.skip(k);
        v
    }

    fn bit(&mut self) -> bool {
        self.get(1) == 1
    }

    fn position(&self) -> u64 {
        self.next as u64 * 8 - u64::from(self.n)
    }
}

/// A canonical Huffman code as bzip2 assigns it: by length, then by symbol.
struct Table {
    /// `len << 9 | symbol` for codes of at most FAST_BITS bits, else 0.
    fast: [u16; 1 << FAST_BITS],
    /// For each length: the first code, the number of codes, and where its
    /// symbols start in `perm`.
    first: [u32; MAX_CODE_LEN as usize + 1],
    count: [u32; MAX_CODE_LEN as usize + 1],
    offset: [u32; MAX_CODE_LEN as usize + 1],
    perm: [u16; MAX_ALPHA],
    max_len: u32,
}

impl Table {
    fn new() -> Self {
        Table {
            fast: [0; 1 << FAST_BITS],
            first: [0; MAX_CODE_LEN as usize + 1],
            count: [0; MAX_CODE_LEN as usize + 1],
            offset: [0; MAX_CODE_LEN as usize + 1],
            perm: [0; MAX_ALPHA],
            max_len: 0,
        }
    }

    fn build(&mut self, lens: &[u8]) -> Result<(), BlockError> {
        self.count = [0; MAX_CODE_LEN as usize + 1];
        for &l in lens {
            self.count[l as usize] += 1;
        }
        self.max_len = (1..=MAX_CODE_LEN)
            .rev()
            .find(|&l| self.count[l as usize] > 0)
            .unwrap_or(0);
        let mut code = 0u32;
        let mut at = 0u32;
        for l in 1..=MAX_CODE_LEN as usize {
            self.first[l] = code;
            self.offset[l] = at;
            code += self.count[l];
            if code > 1 << l {
                return corrupt("Huffman code lengths over-subscribe the code space");
            }
            at += self.count[l];
            code <<= 1;
        }
        let mut next = self.first;
        let mut fill = self.offset;
        self.fast = [0; 1 << FAST_BITS];
        for (sym, &l) in lens.iter().enumerate() {
            let l = u32::from(l);
            let c = next[l as usize];
            next[l as usize] += 1;
            self.perm[fill[l as usize] as usize] = sym as u16;
            fill[l as usize] += 1;
            if l <= FAST_BITS {
                let shift = FAST_BITS - l;
                let entry = (l << 9 | sym as u32) as u16;
                let lo = (c << shift) as usize;
                self.fast[lo..lo + (1 << shift)].fill(entry);
            }
        }
        Ok(())
    }

    #[inline(always)]
    fn decode(&self, bits: &mut Bits) -> Result<u16, BlockError> {
        let e = self.fast[bits.peek(FAST_BITS) as usize];
        if e != 0 {
            bits.skip(u32::from(e >> 9));
            return Ok(e & 511);
        }
        for l in FAST_BITS + 1..=self.max_len {
            let code = bits.peek(l);
            let i = l as usize;
            if code.wrapping_sub(self.first[i]) < self.count[i] {
                bits.skip(l);
                return Ok(self.perm[(self.offset[i] + code - self.first[i]) as usize]);
            }
        }
        corrupt("bad Huffman code")
    }
}

/// Decodes blocks; its buffers (about 10 MB for 900 kB blocks) are reused.
pub struct BlockDecoder {
    tables: Vec<Table>,
    selectors: Vec<u8>,
    /// The BWT's last column, as the symbols decode.
    ll: Vec<u8>,
    /// tt[j] = T(j) << 8 | L[j], the forward chain (see `unbwt`).
    tt: Vec<u32>,
    /// What each piece of the chain writes.
    chain_out: Vec<Vec<u8>>,
    /// The block before the run-length stage is undone.
    pre: Vec<u8>,
}

impl Default for BlockDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BlockDecoder {
    pub fn new() -> Self {
        BlockDecoder {
            tables: (0..MAX_GROUPS).map(|_| Table::new()).collect(),
            selectors: Vec::new(),
            ll: Vec::new(),
            tt: Vec::new(),
            chain_out: Vec::new(),
            pre: Vec::new(),
        }
    }

    /// Decode the block whose magic starts at bit `start` of `data`, into
    /// `out` (appended). `end` is the bit where the segment ends (the next
    /// marker); needing bits past it is [`BlockError::Truncated`]. `level` is
    /// the stream's block size in units of 100 kB.
    pub fn decode(
        &mut self,
        data: &[u8],
        start: u64,
        end: u64,
        level: u8,
        out: &mut Vec<u8>,
    ) -> Result<BlockInfo, BlockError> {
        let mut bits = Bits::new(data, start);
        let result = self.decode_bits(&mut bits, level, out);
        let at = bits.position();
        match result {
            // an error past the segment's end comes from reading what is not there
            Err(BlockError::Corrupt(_)) if at > end => Err(BlockError::Truncated),
            Ok(_) if at > end => Err(BlockError::Truncated),
            Ok(crc) => Ok(BlockInfo { crc, end_bit: at }),
            Err(e) => Err(e),
        }
    }

    fn decode_bits(
        &mut self,
        bits: &mut Bits,
        level: u8,
        out: &mut Vec<u8>,
    ) -> Result<u32, BlockError> {
        let magic = u64::from(bits.get(24)) << 24 | u64::from(bits.get(24));
        if magic != BLOCK_MAGIC {
            return corrupt("no block marker");
        }
        let stored_crc = bits.get(16) << 16 | bits.get(16);
        if bits.bit() {
            return Err(BlockError::Randomised);
        }
        let orig = bits.get(24) as usize;
        let max = usize::from(level) * 100_000;

        let mut used = Vec::with_capacity(256);
        let map = bits.get(16);
        for i in 0..16 {
            if map & (0x8000 >> i) != 0 {
                let word = bits.get(16);
                for j in 0..16 {
                    if word & (0x8000 >> j) != 0 {
                        used.push((i * 16 + j) as u8);
                    }
                }
            }
        }
        if used.is_empty() {
            return corrupt("no byte values in use");
        }
        let alpha = used.len() + 2;

        let groups = bits.get(3) as usize;
        if !(2..=MAX_GROUPS).contains(&groups) {
            return corrupt(format!("{groups} Huffman tables (2..6 allowed)"));
        }
        let n_selectors = bits.get(15) as usize;
        if n_selectors == 0 {
            return corrupt("no selectors");
        }
        let mut order: [u8; MAX_GROUPS] = [0, 1, 2, 3, 4, 5];
        self.selectors.clear();
        for i in 0..n_selectors {
            let mut j = 0usize;
            while bits.bit() {
                j += 1;
                if j >= groups {
                    return corrupt("selector out of range");
                }
            }
            let g = order[j];
            order.copy_within(0..j, 1);
            order[0] = g;
            if i < MAX_SELECTORS {
                self.selectors.push(g);
            }
        }

        let mut lens = [0u8; MAX_ALPHA];
        for t in 0..groups {
            let mut len = bits.get(5) as i32;
            for slot in lens.iter_mut().take(alpha) {
                loop {
                    if !(1..=MAX_CODE_LEN as i32).contains(&len) {
                        return corrupt(format!("Huffman code length {len}"));
                    }
                    if !bits.bit() {
                        break;
                    }
                    len += if bits.bit() { -1 } else { 1 };
                }
                *slot = len as u8;
            }
            self.tables[t].build(&lens[..alpha])?;
        }

        // Symbols: MTF indices and runs of the front byte, into `ll`.
        let eob = (alpha - 1) as u16;
        let mut mtf = [0u8; 256];
        mtf[..used.len()].copy_from_slice(&used);
        let mut counts = [0u32; 256];
        self.ll.resize(max, 0);
        let ll = &mut self.ll[..];
        let mut p = 0usize;
        let mut run: u64 = 0;
        let mut run_bit = 0u32;
        let mut left = 0u32;
        let mut group = 0usize;
        let mut table = &self.tables[0];
        loop {
            if left == 0 {
                let Some(&g) = self.selectors.get(group) else {
                    return corrupt("more symbols than selectors");
                };
                table = &self.tables[usize::from(g)];
                group += 1;
                left = GROUP_SIZE;
            }
            left -= 1;
            if bits.n < MAX_CODE_LEN {
                bits.refill();
            }
            let sym = table.decode(bits)?;
            if sym <= RUNB {
                if run_bit > 24 {
                    return corrupt("run longer than a block");
                }
                run += u64::from(sym + 1) << run_bit;
                run_bit += 1;
                continue;
            }
            if run > 0 {
                if p as u64 + run > max as u64 {
                    return corrupt("block longer than its declared size");
                }
                let b = mtf[0];
                let r = run as usize;
                ll[p..p + r].fill(b);
                counts[usize::from(b)] += r as u32;
                p += r;
                run = 0;
                run_bit = 0;
            }
            if sym == eob {
                break;
            }
            let idx = usize::from(sym - 1);
            let b = mtf[idx];
            if idx == 1 {
                mtf[1] = mtf[0];
            } else {
                mtf.copy_within(0..idx, 1);
            }
            mtf[0] = b;
            if p >= max {
                return corrupt("block longer than its declared size");
            }
            ll[p] = b;
            counts[usize::from(b)] += 1;
            p += 1;
        }
        let n = p;
        if orig >= n {
            return corrupt(format!(
                "origin pointer {orig} outside a block of {n} bytes"
            ));
        }
        self.unbwt(n, orig, &counts)?;
        let start = out.len();
        unrle(&self.pre[..n], out);
        let crc = crc32_bzip2(&out[start..]);
        if crc != stored_crc {
            return corrupt(format!(
                "CRC mismatch (stored {stored_crc:08x}, computed {crc:08x})"
            ));
        }
        Ok(stored_crc)
    }

    /// Undo the BWT of `ll[..n]` into `pre[..n]`.
    ///
    /// The forward chain visits every position once; cut at [`CHAINS`] start
    /// positions spread over the block, its pieces are walked side by side,
    /// each until the position after it is another piece's start (marked by
    /// [`STARTS_NEXT`] in `tt`), then put in order by those links. A block
    /// whose chain is several cycles (periodic text) or does not close falls
    /// back to the one long walk.
    fn unbwt(&mut self, n: usize, orig: usize, counts: &[u32; 256]) -> Result<(), BlockError> {
        let mut cf = [0u32; 256];
        let mut sum = 0u32;
        for (c, &k) in cf.iter_mut().zip(counts.iter()) {
            *c = sum;
            sum += k;
        }
        let pieces = (n / 4096).clamp(1, CHAINS);
        let stride = n.div_ceil(pieces);
        self.tt.resize(n, 0);
        self.pre.resize(n, 0);
        let ll = &self.ll[..n];
        let tt = &mut self.tt[..n];
        // tt[j] = T(j) << 8 | L[j], flagged when T(j) starts a piece: T(j) = i
        // exactly when j = LF(i), which is where row i lands here.
        let mut until_start = 0usize;
        for (i, &b) in ll.iter().enumerate() {
            let j = cf[usize::from(b)] as usize;
            cf[usize::from(b)] += 1;
            let flag = if until_start == 0 {
                until_start = stride;
                STARTS_NEXT
            } else {
                0
            };
            until_start -= 1;
            tt[j] = (i as u32) << 8 | u32::from(ll[j]) | flag;
        }
        // the first output position T(orig) starts the first piece
        let first = ((tt[orig] >> 8) & POS_MASK) as usize;
        tt[orig] |= STARTS_NEXT;
        let id = |pos: usize| if pos == first { 0 } else { 1 + pos / stride };
        let slots = pieces + 1;
        self.chain_out.resize_with(slots, Vec::new);
        let mut next = vec![usize::MAX; slots];
        let mut active: Vec<(u32, u8)> = Vec::with_capacity(slots);
        active.push((first as u32, 0));
        for k in 0..pieces {
            let pos = k * stride;
            if pos != first {
                active.push((pos as u32, (1 + k) as u8));
            }
        }
        for (c, out) in self.chain_out.iter_mut().enumerate() {
            out.clear();
            if active.iter().any(|&(_, a)| usize::from(a) == c) {
                out.reserve(2 * stride + 64);
            }
        }
        let mut steps = 0usize;
        while !active.is_empty() && steps <= n {
            let mut k = 0;
            while k < active.len() {
                steps += 1;
                let (s, c) = active[k];
                let e = tt[s as usize];
                self.chain_out[usize::from(c)].push(e as u8);
                let to = (e >> 8) & POS_MASK;
                if e & STARTS_NEXT != 0 {
                    next[usize::from(c)] = id(to as usize);
                    active.swap_remove(k);
                } else {
                    active[k].0 = to;
                    k += 1;
                }
            }
        }
        if active.is_empty() && stitch(&self.chain_out, &mut self.pre[..n], &next) {
            return Ok(());
        }
        // The one long walk, as libbzip2 does it: right for periodic blocks too.
        for v in tt.iter_mut() {
            *v &= !STARTS_NEXT;
        }
        let mut s = first;
        for slot in self.pre[..n].iter_mut() {
            let e = tt[s];
            *slot = e as u8;
            s = (e >> 8) as usize;
        }
        if s != first {
            return corrupt("the BWT chain does not close (bad origin pointer)");
        }
        Ok(())
    }
}

/// Put the pieces in chain order from the first into `pre`; false if they do
/// not make one cycle over all of it.
fn stitch(pieces: &[Vec<u8>], pre: &mut [u8], next: &[usize]) -> bool {
    let n = pre.len();
    {
        let mut at = 0usize;
        let mut c = 0usize;
        for _ in 0..next.len() {
            let piece = &pieces[c];
            if at + piece.len() > n {
                return false;
            }
            pre[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
            c = next[c];
            if c == 0 {
                return at == n;
            }
            if c >= next.len() {
                return false;
            }
        }
        false
    }
}

/// Pieces of the inverse BWT walked at once: enough loads in flight to hide
/// the latency of a table that does not fit the caches near the core.
const CHAINS: usize = 40;
/// Marks a `tt` entry whose successor starts a piece. Positions take 20 bits
/// (blocks are at most 900,000 bytes), bytes the low 8.
const STARTS_NEXT: u32 = 1 << 31;
const POS_MASK: u32 = (1 << 20) - 1;

/// Undo the first run-length stage: after four equal bytes comes a count of
/// further copies (0..255).
fn unrle(pre: &[u8], out: &mut Vec<u8>) {
    out.reserve(pre.len() + pre.len() / 8);
    let mut i = 0;
    while i < pre.len() {
        match find_run4(pre, i) {
            Some(j) => {
                out.extend_from_slice(&pre[i..j + 4]);
                match pre.get(j + 4) {
                    Some(&count) => {
                        let b = pre[j];
                        out.resize(out.len() + usize::from(count), b);
                        i = j + 5;
                    }
                    None => i = j + 4,
                }
            }
            None => {
                out.extend_from_slice(&pre[i..]);
                i = pre.len();
            }
        }
    }
}

/// The first `j >= from` with `pre[j..j + 4]` four equal bytes.
fn find_run4(pre: &[u8], from: usize) -> Option<usize> {
    const LO: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut k = from;
    // Eight bytes at k against eight at k + 1: a zero byte marks an equal pair,
    // three zero bytes in a row four equal bytes.
    while k + 9 <= pre.len() {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&pre[k..k + 8]);
        b.copy_from_slice(&pre[k + 1..k + 9]);
        let x = u64::from_le_bytes(a) ^ u64::from_le_bytes(b);
        let zero = !(((x & LO) + LO) | x | LO);
        let three = zero & (zero >> 8) & (zero >> 16);
        // The window holds pairs 0..=7, so runs starting at 0..=5.
        let three = three & 0x0000_8080_8080_8080;
        if three != 0 {
            return Some(k + (three.trailing_zeros() / 8) as usize);
        }
        k += 6;
    }
    while k + 4 <= pre.len() {
        if pre[k] == pre[k + 1] && pre[k] == pre[k + 2] && pre[k] == pre[k + 3] {
            return Some(k);
        }
        k += 1;
    }
    None
}

const CRC_POLY: u32 = 0x04c1_1db7;

const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ CRC_POLY
            } else {
                c << 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev << 8) ^ t[0][(prev >> 24) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

static CRC: [[u32; 256]; 8] = crc_tables();

/// bzip2's CRC-32 (MSB first, polynomial 0x04C11DB7), eight bytes a step.
pub fn crc32_bzip2(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let hi = u32::from_be_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        let lo = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
        crc = CRC[7][(hi >> 24) as usize]
            ^ CRC[6][(hi >> 16 & 255) as usize]
            ^ CRC[5][(hi >> 8 & 255) as usize]
            ^ CRC[4][(hi & 255) as usize]
            ^ CRC[3][(lo >> 24) as usize]
            ^ CRC[2][(lo >> 16 & 255) as usize]
            ^ CRC[1][(lo >> 8 & 255) as usize]
            ^ CRC[0][(lo & 255) as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc << 8) ^ CRC[0][((crc >> 24) ^ u32::from(b)) as usize];
    }
    !crc
}

/// The stream CRC: each block's CRC folded in, in order.
pub fn combine_crc(stream: u32, block: u32) -> u32 {
    stream.rotate_left(1) ^ block
}

/// Finds the markers of a whole stream bit by bit, for tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::{BLOCK_MAGIC, EOS_MAGIC};

    fn bit_at(buf: &[u8], i: u64) -> u64 {
        u64::from(buf[(i >> 3) as usize] >> (7 - (i & 7)) & 1)
    }

    /// Bit offsets of every block magic and of the end-of-stream magic.
    pub(crate) fn markers(buf: &[u8]) -> (Vec<u64>, u64) {
        let mut blocks = Vec::new();
        let total = buf.len() as u64 * 8;
        let mut i = 32;
        while i + 48 <= total {
            let v = (0..48).fold(0u64, |acc, k| acc << 1 | bit_at(buf, i + k));
            if v == BLOCK_MAGIC {
                blocks.push(i);
                i += 48;
            } else if v == EOS_MAGIC {
                return (blocks, i);
            } else {
                i += 1;
            }
        }
        panic!("no end of stream");
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

    use super::tests_support::markers;

    fn decode_all(packed: &[u8], level: u8) -> Vec<u8> {
        let (blocks, eos) = markers(packed);
        let mut d = BlockDecoder::new();
        let mut out = Vec::new();
        for (k, &s) in blocks.iter().enumerate() {
            let e = blocks.get(k + 1).copied().unwrap_or(eos);
            let info = d.decode(packed, s, e, level, &mut out).expect("block");
            assert_eq!(info.end_bit, e);
        }
        out
    }

    fn real_text() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../lima/samples/stackexchange/coffee.stackexchange.com/Posts.xml"
        );
        std::fs::read(path).expect("coffee dump")
    }

    #[test]
    fn real_blocks_roundtrip_at_every_level() {
        let data = real_text();
        for level in [1u8, 5, 9] {
            let packed = compress(&data, u32::from(level));
            assert!(decode_all(&packed, level) == data, "level {level}");
        }
    }

    #[test]
    fn runs_and_odd_shapes() {
        // long runs (the run-length stage and RUNA/RUNB), a one-byte alphabet,
        // periodic text, all 256 byte values, an odd and a one-byte block
        let mut cases: Vec<Vec<u8>> = vec![
            vec![b'a'; 100_000],
            b"abababababababababab".repeat(997),
            (0..=255u8).cycle().take(70_001).collect(),
            b"x".to_vec(),
            b"aaaab".to_vec(),
            b"aaaa".to_vec(),
        ];
        let mut mixed = Vec::new();
        for i in 0..5000u32 {
            mixed.extend(std::iter::repeat_n(
                (i % 7) as u8 + b'0',
                (i % 300) as usize,
            ));
        }
        cases.push(mixed);
        for data in cases {
            let packed = compress(&data, 1);
            assert!(decode_all(&packed, 1) == data, "len {}", data.len());
        }
    }

    #[test]
    fn corruption_is_detected() {
        let data = real_text();
        let packed = compress(&data, 1);
        let (blocks, eos) = markers(&packed);
        let (s, e) = (blocks[1], blocks.get(2).copied().unwrap_or(eos));
        let mut bad = packed.clone();
        let mid = ((s + e) / 16) as usize;
        bad[mid] ^= 0x04;
        let mut out = Vec::new();
        let err = BlockDecoder::new()
            .decode(&bad, s, e, 1, &mut out)
            .expect_err("flipped bit");
        assert!(
            matches!(err, BlockError::Corrupt(_) | BlockError::Truncated),
            "{err:?}"
        );
        // a segment cut in the middle of the block needs bits it does not have
        let cut = s + (e - s) / 2;
        let err = BlockDecoder::new()
            .decode(&packed[..(cut / 8) as usize], s, cut, 1, &mut Vec::new())
            .expect_err("cut");
        assert_eq!(err, BlockError::Truncated);
    }

    #[test]
    fn crc_matches_the_reference_check_value() {
        // CRC-32/BZIP2 of "123456789"
        assert_eq!(crc32_bzip2(b"123456789"), 0xfc89_1918);
        let data = real_text();
        let slow = data.iter().fold(!0u32, |crc, &b| {
            (crc << 8) ^ CRC[0][((crc >> 24) ^ u32::from(b)) as usize]
        });
        assert_eq!(crc32_bzip2(&data), !slow);
    }

    #[test]
    fn run_finder_agrees_with_a_plain_scan() {
        let data: Vec<u8> = (0..4000u32)
            .map(|i| [1u8, 1, 1, 2, 3, 3, 3, 3][(i * 7 % 8) as usize])
            .collect();
        for from in 0..64 {
            let plain = (from..data.len().saturating_sub(3)).find(|&j| {
                data[j] == data[j + 1] && data[j] == data[j + 2] && data[j] == data[j + 3]
            });
            assert_eq!(find_run4(&data, from), plain, "from {from}");
        }
    }
}
