//! The one-pass question/answer join over `Posts.xml`.
//!
//! Memory is bounded by what is kept, not by the dump:
//! - questions go to an anonymous spill file on disk as they are read; only
//!   those that end up with a kept (or counted) top answer are read back. A
//!   plain `Posts.xml` is its own spill: the file gets only each question's
//!   id, score, accepted answer and where its row is, and a kept question's
//!   row is read again from the input;
//! - an answer is held only while it is the best so far for its question and
//!   could pass the score filter; a rejected one is held as a reason, not text;
//! - two sets of post ids (bits, an eighth of a byte per id, below 2^27; a
//!   hash set above, so a hostile huge id costs one entry) record which ids
//!   are questions and which have answers, so every answer read is counted.
//!
//! An answer that may become its question's top answer (a contender) is
//! converted to Markdown and judged by the style filters when it is read: on
//! the parse thread when the scan has one core, else on helper threads fed
//! through a bounded queue, each result kept under the contender's job
//! number, so the output does not depend on the thread count.
//!
//! The top answer of a question is the highest-scored one; ties go to the
//! accepted answer, then to the lowest id. Since the accepted id lives on the
//! question row, tied candidates are all kept until the merge.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use crate::error::{CoreError, Result};
use crate::filters::{Filters, Reason};
use crate::html;
use crate::input::{self, Progress};
use crate::posts::{self, Line};
use crate::table::{self, At, Seen};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Fail,
    Skip,
}

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub on_error: OnError,
    /// Chooses, per question, whether the title or the body is the prompt.
    pub seed: u64,
    /// Longest row accepted, in bytes.
    pub max_line_bytes: usize,
    /// Threads decoding a BZip2 dump, and converting contenders beside the
    /// parse thread (0: one per core); the result is the same.
    pub threads: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            on_error: OnError::Fail,
            seed: 0,
            max_line_bytes: 64 << 20,
            threads: 0,
        }
    }
}

/// One (question, top answer) pair that passed the filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub question_id: u32,
    pub answer_id: u32,
    pub question_score: i64,
    pub answer_score: i64,
    pub accepted: bool,
    pub title: String,
    pub question: String,
    pub answer: String,
    pub tags: Vec<String>,
    pub prompt_field: &'static str,
    pub question_date: Option<String>,
    pub answer_date: Option<String>,
    pub question_owner_id: Option<String>,
    pub answer_owner_id: Option<String>,
    pub question_owner_name: Option<String>,
    pub answer_owner_name: Option<String>,
    pub question_license: Option<String>,
    pub answer_license: Option<String>,
}

/// Where every row and every answer went. The invariants
/// `rows_read = questions + answers + other + malformed_rows + duplicate_ids`,
/// `answers = orphaned + not_top + top_answers` and
/// `top_answers = kept + sum(rejected)` hold for every scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Funnel {
    pub rows_read: u64,
    pub questions: u64,
    pub answers: u64,
    /// Rows of other post types (wiki, tag excerpts, ...), by PostTypeId.
    pub other_post_types: BTreeMap<String, u64>,
    pub malformed_rows: u64,
    pub duplicate_ids: u64,
    pub answers_orphaned: u64,
    pub answers_not_top: u64,
    pub questions_unanswered: u64,
    pub top_answers: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    pub kept: u64,
    /// Answers whose lists or quotes nested deeper than the cap, flattened.
    pub nesting_flattened: u64,
    /// The input ended early; with `OnError::Skip` the scan keeps what it read.
    pub truncated: bool,
    /// Reads that failed in the container (a corrupt or cut block, a member
    /// whose CRC or size is wrong); with `OnError::Skip` the scan stops there.
    pub archive_errors: u64,
    /// Bytes not read because of them: of the member (decompressed) when its
    /// size is known, else of the compressed file.
    pub bytes_lost: u64,
    /// The first skipped errors, with file and byte offset.
    pub errors: Vec<String>,
}

/// How many skipped errors a funnel lists (every one is counted).
pub(crate) const MAX_ERRORS_KEPT: usize = 20;

/// Scan a site dump: a `.7z` archive, a folder holding `Posts.xml`, or a
/// `Posts.xml` (plain or zstd).
pub fn scan_path(
    path: &Path,
    filters: &Filters,
    opts: &ScanOptions,
    progress: Arc<Progress>,
) -> Result<(Vec<Pair>, Funnel)> {
    let source = input::plain_member(path, "Posts.xml")?;
    input::read_site_member_with(
        path,
        "Posts.xml",
        opts.threads,
        progress.clone(),
        |r, label| scan_rows(r, label, source.as_deref(), filters, opts, &progress),
    )
}

struct Candidate {
    id: u32,
    score: i64,
    outcome: Outcome,
}

/// What the style filters made of a contender: the answer to keep, or the
/// reason it is not kept.
type Judged = std::result::Result<Box<KeptAnswer>, Reason>;

enum Outcome {
    Judged(Judged),
    /// Sent to the converter threads as job number `.0`; its result is
    /// looked up when the scan finishes.
    Converting(u64),
}

/// A contender's body on its way to a converter thread.
struct Job {
    seq: u64,
    body: String,
    extra: Extra,
}

/// The answer's own optional fields, unescaped.
type Extra = [Option<String>; 4];

/// A post's optional fields (date, owner id, owner name, license), unescaped.
fn optional_fields<'l>(
    row: &posts::RawRow<'l>,
) -> std::result::Result<[Option<Cow<'l, str>>; 4], String> {
    let [date, owner_id, owner_name, license] = [
        row.creation_date,
        row.owner_user_id,
        row.owner_display_name,
        row.content_license,
    ]
    .map(|v| v.map(posts::unescape).transpose());
    Ok([date?, owner_id?, owner_name?, license?])
}

/// Convert a contender's body and run the style filters on it; true in the
/// second place when its nesting was flattened.
fn judge(filters: &Filters, body: &str, extra: Extra) -> (Judged, bool) {
    let converted = html::convert(body, &filters.config.style);
    let flattened = converted.flattened > 0;
    let judged = match filters.check(&converted) {
        Some(reason) => Err(reason),
        None => {
            let [date, owner_id, owner_name, license] = extra;
            Ok(Box::new(KeptAnswer {
                markdown: converted.markdown,
                date,
                owner_id,
                owner_name,
                license,
            }))
        }
    };
    (judged, flattened)
}

/// Threads converting contenders' HTML while the parse thread reads on.
/// What they judge is filed by job number, so the results do not depend on
/// which thread took which job.
struct Converters<'s> {
    jobs: Option<Sender<Job>>,
    queued: Arc<Queued>,
    results: Arc<Mutex<Results>>,
    next: u64,
    threads: Vec<ScopedJoinHandle<'s, ()>>,
}

#[derive(Default)]
struct Results {
    /// Judged contenders still in the running, by job number.
    done: HashMap<u64, Judged>,
    /// Jobs whose contender was outscored before its result came back: the
    /// result is dropped on arrival, so memory holds only live contenders.
    dead: HashSet<u64>,
    finished: u64,
    flattened: u64,
}

/// Bytes of bodies sent and not yet converted, bounded by [`QUEUE_BYTES`] so
/// memory does not grow when the converters fall behind. Contenders come in
/// runs (a site's best-voted years); a queue of a few hundred bodies lets the
/// converters work through a run while the parse thread reads on, where a
/// queue of a few bodies stalled the parse thread (790 against 1,080 MB/s on
/// two cores).
#[derive(Default)]
struct Queued {
    state: Mutex<InFlight>,
    freed: Condvar,
}

#[derive(Default)]
struct InFlight {
    bytes: usize,
    /// A converter failed: nothing waits for room any more.
    failed: bool,
}

const QUEUE_BYTES: usize = 1 << 20;

impl Queued {
    /// Wait until `n` more bytes fit (a single larger body goes alone);
    /// false once a converter has failed.
    fn take(&self, n: usize) -> bool {
        let Ok(mut g) = self.state.lock() else {
            return false;
        };
        while !g.failed && g.bytes > 0 && g.bytes + n > QUEUE_BYTES {
            g = match self.freed.wait(g) {
                Ok(g) => g,
                Err(_) => return false,
            };
        }
        g.bytes += n;
        !g.failed
    }

    fn give(&self, n: usize, failed: bool) {
        if let Ok(mut g) = self.state.lock() {
            g.bytes = g.bytes.saturating_sub(n);
            g.failed |= failed;
        }
        self.freed.notify_all();
    }
}

impl<'s> Converters<'s> {
    fn start<'e>(scope: &'s Scope<'s, 'e>, n: usize, filters: &'e Filters) -> Self {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(Queued::default());
        let results = Arc::new(Mutex::new(Results::default()));
        let threads = (0..n)
            .map(|_| {
                let (rx, queued, results) = (rx.clone(), queued.clone(), results.clone());
                scope.spawn(move || loop {
                    // The lock is held only to take the next job.
                    let job = rx.lock().map(|r| r.recv());
                    let Ok(Ok(job)) = job else { break };
                    let len = job.body.len();
                    let judged = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        judge(filters, &job.body, job.extra)
                    }));
                    queued.give(len, judged.is_err());
                    // A failure is seen by the parse thread at its next send,
                    // or at the end, when the finished count falls short.
                    let (Ok((judged, flat)), Ok(mut r)) = (judged, results.lock()) else {
                        break;
                    };
                    r.finished += 1;
                    r.flattened += u64::from(flat);
                    if !r.dead.remove(&job.seq) {
                        r.done.insert(job.seq, judged);
                    }
                })
            })
            .collect();
        Converters {
            jobs: Some(tx),
            queued,
            results,
            next: 0,
            threads,
        }
    }

    fn send(&mut self, body: String, extra: Extra) -> std::result::Result<u64, String> {
        let seq = self.next;
        self.next += 1;
        let sent = self.queued.take(body.len())
            && self
                .jobs
                .as_ref()
                .is_some_and(|tx| tx.send(Job { seq, body, extra }).is_ok());
        if sent {
            Ok(seq)
        } else {
            Err(CONVERTER_FAILED.into())
        }
    }

    /// Job `seq`'s contender was outscored: its result is not needed.
    fn drop_result(&self, seq: u64) {
        if let Ok(mut r) = self.results.lock() {
            if r.done.remove(&seq).is_none() {
                r.dead.insert(seq);
            }
        }
    }

    /// Wait for every job; the results of live contenders, and how many
    /// bodies were flattened.
    fn finish(mut self) -> Result<(HashMap<u64, Judged>, u64)> {
        let failed = || CoreError::Config(CONVERTER_FAILED.into());
        self.jobs = None;
        for t in self.threads.drain(..) {
            t.join().map_err(|_| failed())?;
        }
        let mut r = self.results.lock().map_err(|_| failed())?;
        if r.finished != self.next {
            return Err(failed());
        }
        Ok((std::mem::take(&mut r.done), r.flattened))
    }
}

const CONVERTER_FAILED: &str =
    "an HTML converter thread failed (a bug in lima: please report the input)";

struct KeptAnswer {
    markdown: String,
    date: Option<String>,
    owner_id: Option<String>,
    owner_name: Option<String>,
    license: Option<String>,
}

/// Post ids seen: a bitset (an eighth of a byte per id) for ids below
/// [`DENSE_IDS`], a hash set above, so a hostile `Id="4294967295"` costs one
/// entry, not half a gigabyte of bits. The largest real post id (Stack
/// Overflow, 2024) is under 80 million.
#[derive(Default)]
struct IdSet {
    bits: Vec<u64>,
    sparse: HashSet<u32>,
}

/// 2^27 ids: at most 16 MiB of bits per set.
const DENSE_IDS: u32 = 1 << 27;

impl IdSet {
    /// Add `i`; true if it was already there.
    fn set(&mut self, i: u32) -> bool {
        if i >= DENSE_IDS {
            return !self.sparse.insert(i);
        }
        let (w, b) = ((i >> 6) as usize, i & 63);
        if w >= self.bits.len() {
            self.bits.resize((w + 1).next_power_of_two(), 0);
        }
        let was = self.bits[w] >> b & 1 == 1;
        self.bits[w] |= 1 << b;
        was
    }
    fn get(&self, i: u32) -> bool {
        if i >= DENSE_IDS {
            return self.sparse.contains(&i);
        }
        self.bits
            .get((i >> 6) as usize)
            .is_some_and(|w| w >> (i & 63) & 1 == 1)
    }
    /// How many ids are in both sets.
    fn count_and(&self, other: &IdSet) -> u64 {
        let dense: u64 = self
            .bits
            .iter()
            .zip(other.bits.iter())
            .map(|(a, b)| u64::from((a & b).count_ones()))
            .sum();
        let sparse = self
            .sparse
            .iter()
            .filter(|i| other.sparse.contains(i))
            .count();
        dense + sparse as u64
    }
}

struct Join<'f, 's> {
    filters: &'f Filters,
    funnel: Funnel,
    is_question: IdSet,
    answered: IdSet,
    /// Answers whose question had not been read yet when they were.
    early_answers: HashMap<u32, u64>,
    candidates: HashMap<u32, Vec<Candidate>>,
    spill: BufWriter<File>,
    /// The plain file being read, when the spill holds where each question's
    /// row is in it rather than the row's fields.
    source: Option<&'f Path>,
    /// None: contenders are converted on the parse thread.
    converters: Option<Converters<'s>>,
}

/// How many threads convert contenders' HTML beside the parse thread, for a
/// scan allowed `threads` (0: all cores): none on one core.
fn converter_threads(threads: usize) -> usize {
    input::threads_or_all(threads).saturating_sub(1)
}

/// Join the rows of `Posts.xml` in `reader` (named `label` in errors).
pub fn scan_posts(
    reader: &mut dyn BufRead,
    label: &str,
    filters: &Filters,
    opts: &ScanOptions,
    progress: &Progress,
) -> Result<(Vec<Pair>, Funnel)> {
    scan_rows(reader, label, None, filters, opts, progress)
}

/// [`scan_posts`]; with `source`, `reader` streams that plain file unchanged
/// (each byte offset is the file's), so kept questions are read again from it.
fn scan_rows(
    reader: &mut dyn BufRead,
    label: &str,
    source: Option<&Path>,
    filters: &Filters,
    opts: &ScanOptions,
    progress: &Progress,
) -> Result<(Vec<Pair>, Funnel)> {
    let spill = tempfile::tempfile().map_err(|e| CoreError::io(Path::new("<spill file>"), e))?;
    std::thread::scope(|scope| {
        let n = converter_threads(opts.threads);
        let mut join = Join {
            filters,
            funnel: Funnel::default(),
            is_question: IdSet::default(),
            answered: IdSet::default(),
            early_answers: HashMap::new(),
            candidates: HashMap::new(),
            spill: BufWriter::with_capacity(1 << 20, spill),
            source,
            converters: (n > 0).then(|| Converters::start(scope, n, filters)),
        };
        let faults = table::for_each_row(
            reader,
            label,
            "posts",
            opts.max_line_bytes,
            opts.on_error,
            progress,
            |text, at| match join.line(text, at)? {
                Some(Line::RootEnd) => Ok(Seen::End),
                _ => Ok(Seen::Other),
            },
        )?;
        table::absorb!(join.funnel, faults);
        join.finish(opts.seed)
    })
}

impl Join<'_, '_> {
    /// Handle one line. A row that fails here has changed nothing.
    fn line<'l>(&mut self, line: &'l str, at: &At) -> Result<Option<Line<'l>>> {
        let parsed =
            posts::parse_line_until(line, |r| self.answer_decided(r)).map_err(|m| at.err(m))?;
        let row = match parsed {
            Line::Row(row) => row,
            other => return Ok(Some(other)),
        };
        let id = posts::parse_id(posts::required(row.id, "Id").map_err(|m| at.err(m))?, "Id")
            .map_err(|m| at.err(m))?;
        let kind = posts::required(row.post_type, "PostTypeId").map_err(|m| at.err(m))?;
        match kind.trim() {
            "1" => self
                .question(id, &row, (at.offset, at.line, line.len()))
                .map_err(|m| at.err(m))?,
            "2" => self.answer(id, &row).map_err(|m| at.err(m))?,
            other => {
                self.funnel.rows_read += 1;
                *self
                    .funnel
                    .other_post_types
                    .entry(other.to_string())
                    .or_insert(0) += 1;
            }
        }
        Ok(None)
    }

    /// An answer whose id, parent and score are read, and which cannot
    /// become its question's top answer: nothing else of it is needed.
    fn answer_decided(&self, r: &posts::RawRow) -> bool {
        let (Some("2"), Some(_), Some(parent), Some(score)) =
            (r.post_type, r.id, r.parent_id, r.score)
        else {
            return false;
        };
        let (Ok(parent), Ok(score)) = (
            posts::parse_id(parent, "ParentId"),
            posts::parse_int(score, "Score"),
        ) else {
            return false;
        };
        !self.contender(parent, score)
    }

    fn contender(&self, parent: u32, score: i64) -> bool {
        let best = self
            .candidates
            .get(&parent)
            .and_then(|c| c.first())
            .map(|c| c.score);
        self.filters.score_ok(score) && best.is_none_or(|best| score >= best)
    }

    /// A question row at `(offset, line, len)` of the input: validated,
    /// counted, and spilled (its fields, or with a plain source where its row
    /// is).
    fn question(
        &mut self,
        id: u32,
        row: &posts::RawRow,
        (offset, line, len): (u64, u64, usize),
    ) -> std::result::Result<(), String> {
        let score = posts::parse_int(posts::required(row.score, "Score")?, "Score")?;
        let accepted = match row.accepted_answer_id {
            Some(v) => posts::parse_id(v, "AcceptedAnswerId")?,
            None => 0,
        };
        let raw = question_fields(row)?;
        // Unescaped now when spilled; else only checked, and unescaped when
        // the row is read again (the same error, in the same field order).
        let fields = match self.source {
            None => Some(unescape_fields(raw)?),
            Some(_) => {
                raw.iter()
                    .flatten()
                    .try_for_each(|v| posts::check_escapes(v))?;
                None
            }
        };
        // Everything is validated: from here on the row counts.
        self.funnel.rows_read += 1;
        if self.is_question.set(id) {
            self.funnel.duplicate_ids += 1;
            return Ok(());
        }
        self.funnel.questions += 1;
        let w = &mut self.spill;
        let mut write = || -> io::Result<()> {
            w.write_all(&id.to_le_bytes())?;
            w.write_all(&score.to_le_bytes())?;
            w.write_all(&accepted.to_le_bytes())?;
            let Some(fields) = &fields else {
                let len = u32::try_from(len).map_err(io::Error::other)?;
                w.write_all(&offset.to_le_bytes())?;
                w.write_all(&line.to_le_bytes())?;
                return w.write_all(&len.to_le_bytes());
            };
            for f in fields {
                match f {
                    Some(s) => {
                        w.write_all(&(s.len() as u32).to_le_bytes())?;
                        w.write_all(s.as_bytes())?;
                    }
                    None => w.write_all(&u32::MAX.to_le_bytes())?,
                }
            }
            Ok(())
        };
        write().map_err(|e| format!("writing the spill file: {e}"))
    }

    fn answer(&mut self, id: u32, row: &posts::RawRow) -> std::result::Result<(), String> {
        let parent = posts::parse_id(posts::required(row.parent_id, "ParentId")?, "ParentId")?;
        let score = posts::parse_int(posts::required(row.score, "Score")?, "Score")?;
        let contender = self.contender(parent, score);
        let outcome = if contender {
            let body = posts::unescape(posts::required(row.body, "Body")?)?.into_owned();
            let extra: Extra = optional_fields(row)?.map(|v| v.map(Cow::into_owned));
            match self.converters.as_mut() {
                Some(pool) => Outcome::Converting(pool.send(body, extra)?),
                None => {
                    let (judged, flattened) = judge(self.filters, &body, extra);
                    self.funnel.nesting_flattened += u64::from(flattened);
                    Outcome::Judged(judged)
                }
            }
        } else {
            Outcome::Judged(Err(Reason::ScoreBelowMin))
        };
        self.funnel.rows_read += 1;
        self.funnel.answers += 1;
        self.answered.set(parent);
        if !self.is_question.get(parent) {
            *self.early_answers.entry(parent).or_insert(0) += 1;
        }
        if contender {
            let list = self.candidates.entry(parent).or_default();
            if list.first().is_some_and(|c| score > c.score) {
                for c in list.drain(..) {
                    if let (Outcome::Converting(seq), Some(pool)) = (c.outcome, &self.converters) {
                        pool.drop_result(seq);
                    }
                }
            }
            list.push(Candidate { id, score, outcome });
        }
        Ok(())
    }

    fn finish(mut self, seed: u64) -> Result<(Vec<Pair>, Funnel)> {
        let spill_err = |e: io::Error| CoreError::io(Path::new("<spill file>"), e);
        let mut converted = match self.converters.take() {
            Some(pool) => {
                let (done, flattened) = pool.finish()?;
                self.funnel.nesting_flattened += flattened;
                done
            }
            None => HashMap::new(),
        };
        let f = &mut self.funnel;
        f.answers_orphaned = self
            .early_answers
            .iter()
            .filter(|(q, _)| !self.is_question.get(**q))
            .map(|(_, n)| n)
            .sum();
        f.top_answers = self.is_question.count_and(&self.answered);
        f.questions_unanswered = f.questions - f.top_answers;
        f.answers_not_top = f.answers - f.answers_orphaned - f.top_answers;
        for r in Reason::ALL {
            f.rejected.insert(r.as_str(), 0);
        }
        let mut file = self
            .spill
            .into_inner()
            .map_err(|e| spill_err(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(spill_err)?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut pairs = Vec::new();
        let mut judged = 0u64;
        // the plain input, opened again when a kept question is read from it
        let mut input: Option<File> = None;
        loop {
            let mut head = [0u8; 16];
            match r.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(spill_err(e)),
            }
            let qid = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let mut score_b = [0u8; 8];
            score_b.copy_from_slice(&head[4..12]);
            let qscore = i64::from_le_bytes(score_b);
            let accepted = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
            let cands = self.candidates.remove(&qid);
            let fields = match (self.source, &cands) {
                (None, None) => {
                    for _ in 0..7 {
                        skip_field(&mut r).map_err(spill_err)?;
                    }
                    continue;
                }
                (None, Some(_)) => {
                    let mut fields = Vec::with_capacity(7);
                    for _ in 0..7 {
                        fields.push(read_field(&mut r).map_err(spill_err)?);
                    }
                    fields
                }
                (Some(path), cands) => {
                    let (mut offset, mut line, mut len) = ([0u8; 8], [0u8; 8], [0u8; 4]);
                    r.read_exact(&mut offset).map_err(spill_err)?;
                    r.read_exact(&mut line).map_err(spill_err)?;
                    r.read_exact(&mut len).map_err(spill_err)?;
                    if cands.is_none() {
                        continue;
                    }
                    let (offset, line) = (u64::from_le_bytes(offset), u64::from_le_bytes(line));
                    let len = u32::from_le_bytes(len);
                    let input = match &input {
                        Some(f) => f,
                        None => input.insert(File::open(path).map_err(|e| CoreError::io(path, e))?),
                    };
                    read_question_again(input, path, (offset, line, len), qid)?
                }
            };
            let Some(cands) = cands else { continue };
            judged += 1;
            let Some(top) = cands.into_iter().min_by_key(|c| (c.id != accepted, c.id)) else {
                continue;
            };
            let judged = match top.outcome {
                Outcome::Judged(j) => j,
                Outcome::Converting(seq) => converted
                    .remove(&seq)
                    .ok_or_else(|| CoreError::Config(CONVERTER_FAILED.into()))?,
            };
            let answer = match judged {
                Err(reason) => {
                    *self.funnel.rejected.entry(reason.as_str()).or_insert(0) += 1;
                    continue;
                }
                Ok(a) => a,
            };
            self.funnel.kept += 1;
            let mut it = fields.into_iter();
            let mut next = || it.next().flatten();
            let title = next().unwrap_or_default();
            let body = next().unwrap_or_default();
            let tags = posts::parse_tags(&next().unwrap_or_default());
            pairs.push(Pair {
                question_id: qid,
                answer_id: top.id,
                question_score: qscore,
                answer_score: top.score,
                accepted: top.id == accepted,
                prompt_field: if splitmix64(seed ^ u64::from(qid)) & 1 == 0 {
                    "title"
                } else {
                    "body"
                },
                title,
                question: html::convert(&body, &self.filters.config.style).markdown,
                answer: answer.markdown,
                tags,
                question_date: next(),
                question_owner_id: next(),
                question_owner_name: next(),
                question_license: next(),
                answer_date: answer.date,
                answer_owner_id: answer.owner_id,
                answer_owner_name: answer.owner_name,
                answer_license: answer.license,
            });
        }
        // Questions whose top answer never reached the score filter.
        let f = &mut self.funnel;
        let below = f.top_answers.saturating_sub(judged);
        *f.rejected
            .entry(Reason::ScoreBelowMin.as_str())
            .or_insert(0) += below;
        Ok((pairs, self.funnel))
    }
}

fn read_field(r: &mut impl Read) -> io::Result<Option<String>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len == u32::MAX {
        return Ok(None);
    }
    let mut data = vec![0u8; len as usize];
    r.read_exact(&mut data)?;
    String::from_utf8(data)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn skip_field(r: &mut BufReader<File>) -> io::Result<()> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len != u32::MAX {
        r.seek_relative(i64::from(len))?;
    }
    Ok(())
}

/// A question's seven spilled fields, as in the row: title, body, tags (an
/// absent one is empty), then its optional fields.
fn question_fields<'l>(
    row: &posts::RawRow<'l>,
) -> std::result::Result<[Option<&'l str>; 7], String> {
    Ok([
        Some(posts::required(row.title, "Title")?),
        Some(posts::required(row.body, "Body")?),
        Some(row.tags.unwrap_or("")),
        row.creation_date,
        row.owner_user_id,
        row.owner_display_name,
        row.content_license,
    ])
}

fn unescape_fields(raw: [Option<&str>; 7]) -> std::result::Result<Vec<Option<String>>, String> {
    raw.into_iter()
        .map(|v| {
            v.map(|v| posts::unescape(v).map(Cow::into_owned))
                .transpose()
        })
        .collect()
}

/// The fields of question `qid` from its row at `(offset, line, len)` of the
/// plain input `path`, read again; an error if that is no longer the row it was.
fn read_question_again(
    input: &File,
    path: &Path,
    (offset, line, len): (u64, u64, u32),
    qid: u32,
) -> Result<Vec<Option<String>>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; len as usize];
    input
        .read_exact_at(&mut bytes, offset)
        .map_err(|e| CoreError::io(path, e))?;
    let changed = |why: String| CoreError::Format {
        path: path.display().to_string(),
        offset,
        line,
        msg: format!("the file changed while it was scanned: question {qid}'s row {why}"),
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| changed(e.to_string()))?;
    let row = match posts::parse_line(text).map_err(changed)? {
        Line::Row(row) => row,
        _ => return Err(changed("is not a row any more".into())),
    };
    let id = row.id.map(|v| posts::parse_id(v, "Id"));
    if id != Some(Ok(qid)) {
        return Err(changed(format!("now has Id {:?}", row.id)));
    }
    question_fields(&row)
        .and_then(unescape_fields)
        .map_err(changed)
}

/// A fixed, documented mixer: the same seed and id give the same choice on
/// every platform and version.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::{read_question_again, IdSet};

    #[test]
    fn a_row_that_changed_since_it_was_read_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("Posts.xml");
        let row = r#"  <row Id="7" PostTypeId="1" Score="3" Title="T &amp; U" Body="&lt;p&gt;b&lt;/p&gt;" />"#;
        std::fs::write(&path, format!("<posts>\n{row}\n</posts>\n")).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        let len = row.len() as u32;
        let fields = read_question_again(&file, &path, (8, 2, len), 7).expect("same row");
        assert_eq!(fields[0].as_deref(), Some("T & U"));
        assert_eq!(fields[1].as_deref(), Some("<p>b</p>"));
        assert_eq!(
            (fields[2].as_deref(), fields[3].as_deref()),
            (Some(""), None)
        );
        let e = read_question_again(&file, &path, (8, 2, len), 8).expect_err("another id");
        let msg = e.to_string();
        assert!(msg.contains("Posts.xml: byte 8 (line 2)"), "{msg}");
        assert!(
            msg.contains("changed while it was scanned: question 8's row now has Id"),
            "{msg}"
        );
        let e = read_question_again(&file, &path, (0, 1, 7), 7).expect_err("not a row");
        assert!(e.to_string().contains("is not a row any more"), "{e}");
    }

    #[test]
    fn huge_ids_go_to_the_map_not_the_bits() {
        let mut s = IdSet::default();
        assert!(!s.set(7));
        assert!(s.set(7));
        assert!(!s.set(u32::MAX));
        assert!(s.set(u32::MAX));
        assert!(s.get(7) && s.get(u32::MAX) && !s.get(8) && !s.get(u32::MAX - 1));
        // the 4-billion id costs a map entry: the bits cover id 7 only
        assert!(s.bits.len() <= 1);
        let mut t = IdSet::default();
        t.set(u32::MAX);
        t.set(7);
        t.set(1 << 27);
        assert_eq!(s.count_and(&t), 2);
    }
}
