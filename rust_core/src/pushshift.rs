//! Pushshift Reddit dumps: monthly `RS_*`/`RC_*` archives, per-subreddit
//! `*_submissions`/`*_comments` files, or plain NDJSON, one JSON object per
//! line. The schema drifted over the years (fields come and go,
//! `created_utc` is a number or a string), so every field is optional and
//! numbers are read from either form. Lines of other subreddits are dropped
//! by a byte search before any JSON parse.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{CoreError, Result};
use crate::input::{self, Progress};
use crate::jsonfields::{self, Raw};
use crate::lines::{self, Event, Part};
use crate::scan::{OnError, MAX_ERRORS_KEPT};
use crate::table;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Submissions,
    Comments,
    /// Decide per file name (`RS_`, `_submissions`; `RC_`, `_comments`), else per record.
    Auto,
}

#[derive(Debug, Clone)]
pub struct PushshiftOptions {
    /// Keep only this subreddit (case-insensitive); None keeps all.
    pub subreddit: Option<String>,
    pub kind: Kind,
    pub on_error: OnError,
    pub max_line_bytes: usize,
    pub min_submission_score: Option<i64>,
    pub min_comment_score: Option<i64>,
    /// Shortest comment body kept, in characters.
    pub min_comment_chars: usize,
    /// Keep only comments that answer the submission itself.
    pub top_level_only: bool,
    /// Threads parsing lines while one more decompresses (0: one per core).
    /// The rows and funnel are the same for any number.
    pub threads: usize,
}

impl Default for PushshiftOptions {
    fn default() -> Self {
        PushshiftOptions {
            subreddit: None,
            kind: Kind::Auto,
            on_error: OnError::Fail,
            max_line_bytes: 10 << 20,
            min_submission_score: None,
            min_comment_score: None,
            min_comment_chars: 0,
            top_level_only: false,
            threads: 0,
        }
    }
}

/// One kept submission or comment.
#[derive(Debug, Clone, PartialEq)]
pub struct RedditRow {
    pub kind: &'static str,
    pub id: String,
    pub subreddit: String,
    pub title: Option<String>,
    /// The submission's selftext or the comment's body, entities decoded.
    pub text: String,
    pub score: i64,
    pub created_utc: Option<i64>,
    pub author: Option<String>,
    pub link_id: Option<String>,
    pub parent_id: Option<String>,
    pub num_comments: Option<i64>,
    pub permalink: Option<String>,
}

/// Every line read is counted once: `lines_read = blank + malformed +
/// other_subreddit + submissions + comments`, and `submissions + comments =
/// kept + sum(dropped)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedditFunnel {
    pub lines_read: u64,
    pub blank: u64,
    pub malformed: u64,
    pub other_subreddit: u64,
    pub submissions: u64,
    pub comments: u64,
    pub dropped: BTreeMap<&'static str, u64>,
    pub kept_submissions: u64,
    pub kept_comments: u64,
    pub truncated: bool,
    /// Failed container reads and the bytes they cost (see `scan::Funnel`).
    pub archive_errors: u64,
    pub bytes_lost: u64,
    pub errors: Vec<String>,
}

pub const DROP_REASONS: [&str; 6] = [
    "deleted",
    "removed",
    "removed_by_category",
    "below_min_score",
    "too_short",
    "not_top_level",
];

/// The fields lima reads from one line.
#[derive(Debug, Default, PartialEq)]
struct Record<'a> {
    id: Option<Cow<'a, str>>,
    subreddit: Option<Cow<'a, str>>,
    title: Option<Cow<'a, str>>,
    selftext: Option<Cow<'a, str>>,
    body: Option<Cow<'a, str>>,
    author: Option<Cow<'a, str>>,
    link_id: Option<Cow<'a, str>>,
    parent_id: Option<Cow<'a, str>>,
    permalink: Option<Cow<'a, str>>,
    score: Option<i64>,
    created_utc: Option<i64>,
    num_comments: Option<i64>,
    /// `removed_by_category` is present and not null.
    removed_by_category: bool,
}

impl<'a> Record<'a> {
    /// Read the line with the flat-object scanner: only these fields are
    /// decoded, the rest are stepped over. `None` on any surprise (including
    /// a value `serde_json` would reject), for [`Record::parse_full`] to decide.
    fn parse_fast(line: &'a [u8]) -> Option<Record<'a>> {
        let mut r = Record::default();
        let mut seen = 0u16;
        jsonfields::for_each_field(line, |key, value| {
            let (bit, slot) = match key {
                b"id" => (0, &mut r.id),
                b"subreddit" => (1, &mut r.subreddit),
                b"title" => (2, &mut r.title),
                b"selftext" => (3, &mut r.selftext),
                b"body" => (4, &mut r.body),
                b"author" => (5, &mut r.author),
                b"link_id" => (6, &mut r.link_id),
                b"parent_id" => (7, &mut r.parent_id),
                b"permalink" => (8, &mut r.permalink),
                b"score" => return int_field(&mut seen, 9, value, &mut r.score),
                b"created_utc" => return int_field(&mut seen, 10, value, &mut r.created_utc),
                b"num_comments" => return int_field(&mut seen, 11, value, &mut r.num_comments),
                b"removed_by_category" => {
                    first(&mut seen, 12)?;
                    if let Raw::Num(n) = value {
                        jsonfields::is_json_number(n).then_some(())?;
                    }
                    r.removed_by_category = value != Raw::Null;
                    return Some(());
                }
                _ => return Some(()),
            };
            first(&mut seen, bit)?;
            *slot = match value {
                Raw::Str { inner, escaped } => Some(jsonfields::decode_str(inner, escaped)?),
                Raw::Null => None,
                _ => return None,
            };
            Some(())
        })?;
        Some(r)
    }

    /// The full parse, which also gives the error for a line that is not JSON.
    fn parse_full(line: &'a [u8]) -> std::result::Result<Record<'a>, String> {
        let raw: Full =
            serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
        Ok(Record {
            id: raw.id,
            subreddit: raw.subreddit,
            title: raw.title,
            selftext: raw.selftext,
            body: raw.body,
            author: raw.author,
            link_id: raw.link_id,
            parent_id: raw.parent_id,
            permalink: raw.permalink,
            score: int(&raw.score),
            created_utc: int(&raw.created_utc),
            num_comments: int(&raw.num_comments),
            removed_by_category: raw.removed_by_category.is_some_and(|v| !v.is_null()),
        })
    }
}

/// For the fuzzer: where both readers accept `line` they must read the same
/// fields. The fast reader may accept more: it does not validate the fields
/// lima never reads.
#[doc(hidden)]
pub fn readers_agree(line: &[u8]) -> std::result::Result<(), String> {
    match (Record::parse_fast(line), Record::parse_full(line)) {
        (Some(fast), Ok(full)) if fast != full => Err(format!("fast {fast:?}, serde {full:?}")),
        _ => Ok(()),
    }
}

/// Mark field `bit` seen; `None` if it was seen before: a repeated key is a
/// surprise (`serde_json` rejects it), so give up.
fn first(seen: &mut u16, bit: u16) -> Option<()> {
    if *seen & (1 << bit) != 0 {
        return None;
    }
    *seen |= 1 << bit;
    Some(())
}

/// Set a numeric field read for the first time.
fn int_field(seen: &mut u16, bit: u16, value: Raw, slot: &mut Option<i64>) -> Option<()> {
    first(seen, bit)?;
    *slot = fast_int(value)?;
    Some(())
}

/// [`int`] on a raw value; `None` (give up) where `serde_json` would reject it.
fn fast_int(value: Raw) -> Option<Option<i64>> {
    match value {
        Raw::Num(n) => {
            jsonfields::is_json_number(n).then_some(())?;
            let s = std::str::from_utf8(n).ok()?;
            Some(number(s))
        }
        Raw::Str { inner, escaped } => {
            let s = jsonfields::decode_str(inner, escaped)?;
            Some(number(s.trim()))
        }
        Raw::Bool(_) | Raw::Null | Raw::Nested => Some(None),
    }
}

/// What lima reads of a line, parsed in full by serde.
#[derive(Deserialize)]
struct Full<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    subreddit: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    title: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    selftext: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    body: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    author: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    link_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    permalink: Option<Cow<'a, str>>,
    #[serde(default)]
    score: Option<Value>,
    #[serde(default)]
    created_utc: Option<Value>,
    #[serde(default)]
    num_comments: Option<Value>,
    #[serde(default)]
    removed_by_category: Option<Value>,
}

/// A JSON number or a numeric string, as an integer.
fn int(v: &Option<Value>) -> Option<i64> {
    match v.as_ref()? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => number(s.trim()),
        _ => None,
    }
}

/// An integer, or a float cut to one.
fn number(s: &str) -> Option<i64> {
    s.parse::<i64>()
        .ok()
        .or_else(|| s.parse::<f64>().ok().map(|f| f as i64))
}

fn decode(s: &str) -> String {
    html_escape::decode_html_entities(s).into_owned()
}

fn kind_from_name(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_string_lossy().to_lowercase();
    if name.starts_with("rs_") || name.contains("submissions") {
        Some(Kind::Submissions)
    } else if name.starts_with("rc_") || name.contains("comments") {
        Some(Kind::Comments)
    } else {
        None
    }
}

/// One chunk's share of a scan: its rows and counts, and its errors with line
/// numbers counted from the chunk's first line (the merge shifts them).
struct Scanner<'o> {
    opts: &'o PushshiftOptions,
    prefilter: Option<&'o AhoCorasick>,
    file_kind: Kind,
    funnel: RedditFunnel,
    rows: Vec<RedditRow>,
    errors: Vec<CoreError>,
    /// The error that ends the scan (`OnError::Fail`, or cancelled).
    fatal: Option<CoreError>,
    lines: u64,
}

impl Scanner<'_> {
    fn dropped(&mut self, reason: &'static str) -> std::result::Result<(), String> {
        *self.funnel.dropped.entry(reason).or_insert(0) += 1;
        Ok(())
    }

    fn line(&mut self, bytes: &[u8]) -> std::result::Result<(), String> {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            self.funnel.lines_read += 1;
            self.funnel.blank += 1;
            return Ok(());
        }
        if let Some(ac) = &self.prefilter {
            if !ac.is_match(bytes) {
                self.funnel.lines_read += 1;
                self.funnel.other_subreddit += 1;
                return Ok(());
            }
        }
        let raw = match Record::parse_fast(bytes) {
            Some(r) => r,
            None => Record::parse_full(bytes)?,
        };
        let is_submission = match self.file_kind {
            Kind::Submissions => true,
            Kind::Comments => false,
            Kind::Auto => {
                if raw.title.is_some() {
                    true
                } else if raw.body.is_some() {
                    false
                } else {
                    return Err("neither a submission (title) nor a comment (body)".into());
                }
            }
        };
        let id = raw.id.as_deref().ok_or("record has no id")?.to_string();
        self.funnel.lines_read += 1;
        let subreddit = raw.subreddit.as_deref().unwrap_or("");
        if let Some(want) = &self.opts.subreddit {
            if !subreddit.eq_ignore_ascii_case(want) {
                self.funnel.other_subreddit += 1;
                return Ok(());
            }
        }
        let score = raw.score.unwrap_or(0);
        let text = if is_submission {
            self.funnel.submissions += 1;
            raw.selftext.as_deref().unwrap_or("")
        } else {
            self.funnel.comments += 1;
            raw.body.as_deref().unwrap_or("")
        };
        match text.trim() {
            "[deleted]" => return self.dropped("deleted"),
            "[removed]" => return self.dropped("removed"),
            _ => {}
        }
        if raw.removed_by_category {
            return self.dropped("removed_by_category");
        }
        let min_score = if is_submission {
            self.opts.min_submission_score
        } else {
            self.opts.min_comment_score
        };
        if min_score.is_some_and(|m| score < m) {
            return self.dropped("below_min_score");
        }
        if !is_submission {
            if self.opts.top_level_only {
                let top = match (&raw.parent_id, &raw.link_id) {
                    (Some(p), Some(l)) => p == l,
                    _ => false,
                };
                if !top {
                    return self.dropped("not_top_level");
                }
            }
            if text.chars().count() < self.opts.min_comment_chars {
                return self.dropped("too_short");
            }
        }
        if is_submission {
            self.funnel.kept_submissions += 1;
        } else {
            self.funnel.kept_comments += 1;
        }
        self.rows.push(RedditRow {
            kind: if is_submission {
                "submission"
            } else {
                "comment"
            },
            id,
            subreddit: subreddit.to_string(),
            title: raw.title.as_deref().map(decode),
            text: decode(text),
            score,
            created_utc: raw.created_utc,
            author: raw.author.map(Cow::into_owned),
            link_id: raw.link_id.map(Cow::into_owned),
            parent_id: raw.parent_id.map(Cow::into_owned),
            num_comments: raw.num_comments,
            permalink: raw.permalink.map(Cow::into_owned),
        });
        Ok(())
    }

    fn fail_or_count(&mut self, e: CoreError) -> Result<()> {
        if self.opts.on_error == OnError::Fail {
            return Err(e);
        }
        self.funnel.lines_read += 1;
        self.funnel.malformed += 1;
        if self.errors.len() < MAX_ERRORS_KEPT {
            self.errors.push(e);
        }
        Ok(())
    }

    /// Scan one chunk of whole lines starting at byte `offset`.
    fn chunk(&mut self, chunk: &[u8], offset: u64, label: &str, progress: &Progress) {
        // A chunk holds about 2,000 lines, fewer than the per-line poll's
        // stride: look once per chunk too.
        if progress.cancelled() {
            self.fatal = Some(CoreError::Interrupted);
            return;
        }
        let max = self.opts.max_line_bytes;
        let walked = lines::walk_chunk(chunk, offset, max, |event| {
            match event {
                Event::Line {
                    bytes,
                    offset,
                    line,
                } => {
                    progress.poll(line)?;
                    if let Err(msg) = self.line(bytes) {
                        let e = CoreError::Format {
                            path: label.to_string(),
                            offset,
                            line,
                            msg,
                        };
                        self.fail_or_count(e)?;
                    }
                }
                Event::TooLong { offset, line, len } => {
                    self.fail_or_count(too_long(label, offset, line, len, max))?;
                }
                Event::ReadError { .. } => unreachable!("a chunk holds whole lines only"),
            }
            Ok(true)
        });
        match walked {
            Ok(w) => self.lines = w.lines,
            Err(e) => self.fatal = Some(e),
        }
    }
}

fn too_long(label: &str, offset: u64, line: u64, len: u64, max: usize) -> CoreError {
    CoreError::Format {
        path: label.to_string(),
        offset,
        line,
        msg: format!("line of {len} bytes is longer than the limit of {max} bytes"),
    }
}

/// `e` with its line number counted from the start of the file, not of its chunk.
fn shifted(mut e: CoreError, base: u64) -> CoreError {
    if let CoreError::Format { line, .. } = &mut e {
        *line += base;
    }
    e
}

impl RedditFunnel {
    fn add(&mut self, o: &RedditFunnel) {
        self.lines_read += o.lines_read;
        self.blank += o.blank;
        self.malformed += o.malformed;
        self.other_subreddit += o.other_subreddit;
        self.submissions += o.submissions;
        self.comments += o.comments;
        for (reason, n) in &o.dropped {
            *self.dropped.entry(reason).or_insert(0) += n;
        }
        self.kept_submissions += o.kept_submissions;
        self.kept_comments += o.kept_comments;
    }

    fn keep_error(&mut self, e: CoreError) {
        if self.errors.len() < MAX_ERRORS_KEPT {
            self.errors.push(e.to_string());
        }
    }
}

/// Scan one Pushshift file (zstd with a 2 GiB window, or plain NDJSON). One
/// thread decompresses and cuts the stream into chunks of whole lines;
/// `opts.threads` parse them; the chunks' rows and counts are joined in file
/// order, so the result never depends on the thread count.
pub fn scan_pushshift(
    path: &Path,
    opts: &PushshiftOptions,
    progress: Arc<Progress>,
) -> Result<(Vec<RedditRow>, RedditFunnel)> {
    let label = path.display().to_string();
    let prefilter = match &opts.subreddit {
        Some(name) if !name.is_empty() => Some(
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build([name.as_bytes()])
                .map_err(|e| CoreError::Config(format!("subreddit {name:?}: {e}")))?,
        ),
        _ => None,
    };
    let file_kind = match opts.kind {
        Kind::Auto => kind_from_name(path).unwrap_or(Kind::Auto),
        k => k,
    };
    let mut funnel = RedditFunnel::default();
    for r in DROP_REASONS {
        funnel.dropped.insert(r, 0);
    }
    // Each chunk's rows, joined once at the end: no growing (and copying) one
    // vector of every row as the scan goes.
    let mut parts: Vec<Vec<RedditRow>> = Vec::new();
    let mut reader = input::open_stream(path, progress.clone())?;
    let mut read = table::Faults::default();
    // Lines before the chunk being merged.
    let mut base = 0u64;
    let work = |chunk: &[u8], offset: u64| {
        let mut s = Scanner {
            opts,
            prefilter: prefilter.as_ref(),
            file_kind,
            funnel: RedditFunnel::default(),
            rows: Vec::new(),
            errors: Vec::new(),
            fatal: None,
            lines: 0,
        };
        s.chunk(chunk, offset, &label, &progress);
        s
    };
    let threads = input::threads_or_all(opts.threads);
    lines::map_chunks(&mut *reader, opts.max_line_bytes, threads, work, |part| {
        match part {
            Part::Lines(s) => {
                if let Some(e) = s.fatal {
                    return Err(shifted(e, base));
                }
                funnel.add(&s.funnel);
                for e in s.errors {
                    funnel.keep_error(shifted(e, base));
                }
                parts.push(s.rows);
                base += s.lines;
            }
            Part::TooLong { offset, len } => {
                base += 1;
                let e = too_long(&label, offset, base, len, opts.max_line_bytes);
                if opts.on_error == OnError::Fail {
                    return Err(e);
                }
                funnel.lines_read += 1;
                funnel.malformed += 1;
                funnel.keep_error(e);
            }
            Part::ReadError { error, offset } => {
                read.read_failed(&label, &error, offset, &progress, opts.on_error)?;
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    funnel.truncated = read.truncated;
    funnel.archive_errors = read.archive_errors;
    funnel.bytes_lost = read.bytes_lost;
    funnel.errors.extend(read.errors);
    let mut rows = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for part in parts {
        rows.extend(part);
    }
    Ok((rows, funnel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_text(text: &str, opts: &PushshiftOptions) -> Result<(Vec<RedditRow>, RedditFunnel)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sample.ndjson");
        std::fs::write(&path, text).expect("write");
        scan_pushshift(&path, opts, Arc::new(Progress::default()))
    }

    fn real_lines() -> Vec<Vec<u8>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut lines = Vec::new();
        for file in [
            "lima/samples/reddit/AskMen_submissions.zst",
            "tests/data/pushshift/RC_2005-12.zst",
            "tests/data/pushshift/schema-samples/submissions.ndjson",
            "tests/data/pushshift/schema-samples/comments.ndjson",
        ] {
            let mut reader =
                input::open_stream(&root.join(file), Arc::new(Progress::default())).expect(file);
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut text).expect(file);
            lines.extend(
                text.split(|&c| c == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
        lines
    }

    /// Real lines repeated over several chunks, with a bad line, a blank
    /// line and two overlong lines (one inside a chunk, one longer than a
    /// read) at known line numbers.
    fn many_chunks() -> (String, Vec<u64>) {
        let real = real_lines();
        let mut text = String::new();
        let mut bad = Vec::new();
        let mut n = 0u64;
        let mut push = |text: &mut String, line: &str| {
            text.push_str(line);
            text.push('\n');
            n += 1;
            n
        };
        for (i, line) in real.iter().cycle().take(30_000).enumerate() {
            let line = std::str::from_utf8(line).expect("utf-8");
            push(&mut text, line);
            match i {
                2_000 => bad.push(push(&mut text, "{\"subreddit\":\"AskMen\", not json")),
                9_000 => {
                    push(&mut text, "  ");
                }
                15_000 => bad.push(push(
                    &mut text,
                    &format!("{{\"x\":\"{}\"}}", "y".repeat(300_000)),
                )),
                22_000 => bad.push(push(
                    &mut text,
                    &format!("{{\"x\":\"{}\"}}", "y".repeat(3_000_000)),
                )),
                _ => {}
            }
        }
        (text, bad)
    }

    #[test]
    fn any_thread_count_gives_the_same_rows_counts_and_errors() {
        let (text, bad) = many_chunks();
        assert!(
            text.len() > 3 * (4 << 20),
            "{} bytes: fewer than 4 chunks",
            text.len()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("many.ndjson");
        std::fs::write(&path, &text).expect("write");
        let scan_text = |_: &str, opts: &PushshiftOptions| {
            scan_pushshift(&path, opts, Arc::new(Progress::default()))
        };
        let opts = |threads, on_error| PushshiftOptions {
            subreddit: Some("askmen".into()),
            on_error,
            max_line_bytes: 200_000,
            threads,
            ..PushshiftOptions::default()
        };
        let (rows1, f1) = scan_text(&text, &opts(1, OnError::Skip)).expect("1 thread");
        assert!(rows1.len() > 5_000, "{}", rows1.len());
        assert_eq!((f1.malformed, f1.blank), (3, 1));
        for (err, line) in f1.errors.iter().zip(&bad) {
            assert!(
                err.contains(&format!("(line {line})")),
                "{err} is not line {line}"
            );
        }
        let lines = text.lines().count() as u64;
        assert_eq!(f1.lines_read, lines);
        for threads in [2, 3, 8] {
            let (rows, f) = scan_text(&text, &opts(threads, OnError::Skip)).expect("threads");
            assert!(rows == rows1, "{threads} threads: other rows");
            assert_eq!(f, f1, "{threads} threads");
        }
        let first = scan_text(&text, &opts(1, OnError::Fail))
            .expect_err("fail")
            .to_string();
        assert!(first.contains(&format!("(line {})", bad[0])), "{first}");
        for threads in [2, 8] {
            let e = scan_text(&text, &opts(threads, OnError::Fail)).expect_err("fail");
            assert_eq!(e.to_string(), first, "{threads} threads");
        }
    }

    #[test]
    fn a_cancelled_scan_stops_with_interrupted() {
        let (text, _) = many_chunks();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("many.ndjson");
        std::fs::write(&path, &text).expect("write");
        for threads in [1, 2] {
            let progress = Arc::new(Progress::default());
            progress
                .cancel
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let opts = PushshiftOptions {
                threads,
                max_line_bytes: 200_000,
                on_error: OnError::Skip,
                ..PushshiftOptions::default()
            };
            let r = scan_pushshift(&path, &opts, progress);
            assert!(
                matches!(r, Err(CoreError::Interrupted)),
                "{threads} threads"
            );
        }
    }

    #[test]
    fn fast_reader_agrees_with_serde_on_every_real_line() {
        let lines = real_lines();
        assert!(lines.len() > 10_000, "{}", lines.len());
        let mut escaped_titles = 0;
        for line in &lines {
            let fast = Record::parse_fast(line)
                .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(line)));
            let full = Record::parse_full(line).expect("serde");
            assert_eq!(fast, full);
            escaped_titles += usize::from(matches!(fast.title, Some(Cow::Owned(_))));
        }
        // the unescaping path ran too, not only borrowed strings
        assert!(escaped_titles > 100, "{escaped_titles}");
    }

    #[test]
    fn fast_reader_takes_top_level_fields_only_and_defers_surprises() {
        // A crosspost carries its parent's fields nested: only the top level counts.
        let line = br#"{"crosspost_parent_list":[{"subreddit":"Other","title":"theirs","score":99}],"id":"a","subreddit":"AskMen","title":"mine \u0026 \"quoted\"","score":"12","created_utc":1.5e9,"removed_by_category":null}"#;
        let r = Record::parse_fast(line).expect("flat");
        assert_eq!(r, Record::parse_full(line).expect("serde"));
        assert_eq!(
            (r.subreddit.as_deref(), r.title.as_deref()),
            (Some("AskMen"), Some("mine & \"quoted\""))
        );
        assert_eq!(
            (r.score, r.created_utc, r.removed_by_category),
            (Some(12), Some(1_500_000_000), false)
        );
        // Each of these is left to serde_json, which rejects it with its own message.
        for bad in [
            &br#"{"id":"a","id":"b"}"#[..],
            br#"{"id":"a\qb"}"#,
            br#"{"score":01}"#,
            b"{\"title\":\"tab\there\"}",
            b"{\"title\":\"\xff\"}",
            br#"{"title":5}"#,
            br#"{"id":"a"} trailing"#,
        ] {
            assert!(
                Record::parse_fast(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert!(
                Record::parse_full(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A field lima never reads is stepped over, not validated.
        let unused = b"{\"id\":\"a\",\"url\":\"\xff\",\"body\":\"ok\"}";
        assert_eq!(
            Record::parse_fast(unused).and_then(|r| r.body).as_deref(),
            Some("ok")
        );
    }

    #[test]
    fn schema_drift_and_entities() {
        let text = concat!(
            r#"{"id":"a1","subreddit":"WritingPrompts","title":"[WP] Cats &amp; dogs","selftext":"","score":"12","created_utc":"1134365188"}"#,
            "\n",
            r#"{"id":"c1","subreddit":"writingprompts","body":"Once &lt;upon&gt; a time","score":5,"created_utc":1134365188.0,"link_id":"t3_a1","parent_id":"t3_a1"}"#,
            "\n\n",
            r#"{"id":"x","subreddit":"AskMen","title":"WritingPrompts elsewhere","score":1}"#,
            "\n",
        );
        let opts = PushshiftOptions {
            subreddit: Some("WritingPrompts".into()),
            ..PushshiftOptions::default()
        };
        let (rows, f) = scan_text(text, &opts).expect("scan");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].title.as_deref(), Some("[WP] Cats & dogs"));
        assert_eq!((rows[0].score, rows[0].created_utc), (12, Some(1134365188)));
        assert_eq!(rows[1].text, "Once <upon> a time");
        assert_eq!(rows[1].kind, "comment");
        assert_eq!((f.lines_read, f.blank, f.other_subreddit), (4, 1, 1));
    }

    #[test]
    fn deleted_removed_and_filters_are_counted() {
        let text = concat!(
            r#"{"id":"1","subreddit":"s","body":"[deleted]","link_id":"t3_a","parent_id":"t3_a"}"#,
            "\n",
            r#"{"id":"2","subreddit":"s","body":"[removed]","link_id":"t3_a","parent_id":"t3_a"}"#,
            "\n",
            r#"{"id":"3","subreddit":"s","body":"a reply","link_id":"t3_a","parent_id":"t1_1","score":50}"#,
            "\n",
            r#"{"id":"4","subreddit":"s","body":"low","link_id":"t3_a","parent_id":"t3_a","score":1}"#,
            "\n",
            r#"{"id":"5","subreddit":"s","body":"short","link_id":"t3_a","parent_id":"t3_a","score":9}"#,
            "\n",
            r#"{"id":"6","subreddit":"s","title":"t","selftext":"x","removed_by_category":"moderator"}"#,
            "\n",
            r#"{"id":"7","subreddit":"s","body":"a long enough story","link_id":"t3_a","parent_id":"t3_a","score":9}"#,
            "\n",
        );
        let opts = PushshiftOptions {
            min_comment_score: Some(5),
            min_comment_chars: 10,
            top_level_only: true,
            ..PushshiftOptions::default()
        };
        let (rows, f) = scan_text(text, &opts).expect("scan");
        assert_eq!(
            rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["7"]
        );
        for (reason, n) in [
            ("deleted", 1),
            ("removed", 1),
            ("not_top_level", 1),
            ("below_min_score", 1),
            ("too_short", 1),
            ("removed_by_category", 1),
        ] {
            assert_eq!(f.dropped[reason], n, "{reason}");
        }
        assert_eq!(
            f.submissions + f.comments,
            f.kept_submissions + f.kept_comments + 6
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let text = "{\"id\":\"1\",\"body\":\"ok\"}\nnot json\n{\"id\":\"2\",\"body\":\"ok\"}\n";
        let err = scan_text(text, &PushshiftOptions::default()).expect_err("bad line");
        let msg = err.to_string();
        assert!(
            msg.contains("sample.ndjson") && msg.contains("line 2") && msg.contains("byte 23"),
            "{msg}"
        );
        let skip = PushshiftOptions {
            on_error: OnError::Skip,
            ..PushshiftOptions::default()
        };
        let (rows, f) = scan_text(text, &skip).expect("skip");
        assert_eq!((rows.len(), f.malformed, f.lines_read), (2, 1, 3));
    }
}
