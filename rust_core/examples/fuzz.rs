//! `make fuzz`: a mutation fuzzer on stable Rust, for a bounded time.
//!
//!     cargo run --release --example fuzz -- [--seconds 60] [--seed 1] [--out fuzz-crashes]
//!
//! The corpus is the bundled dumps: rows of the three sample sites' `Posts.xml`
//! and `Comments.xml`, their answer bodies (HTML), the WritingPrompts NDJSON
//! lines, and bzip2 streams of those rows. Each exec takes a corpus entry and
//! applies a few random edits (bit flips, random bytes, tokens of the format
//! such as `&#`, `"`, `<li>`, `\u`, a cut, a repeat, a splice from another
//! entry), then runs one target:
//!
//! - `posts_row`: the Posts.xml attribute scanner and unescape, checked against
//!   quick-xml's attribute reader (the one it replaced) on every row;
//! - `posts_scan`: the whole join over a few mutated rows (skip mode);
//! - `comments_scan`: the Comments.xml reader (skip mode);
//! - `html`: the HTML to Markdown converter;
//! - `pushshift`: the Pushshift line scanner over a file of mutated lines, and
//!   its fast field reader checked against the full serde parse per line;
//! - `bzip2`: the block-parallel decoder, checked against libbzip2: when both
//!   accept a stream, the bytes must be the same; when libbzip2 rejects one,
//!   so must it.
//!
//! A crash is a panic, a disagreement, or an exec over `--slow-ms`; each is
//! saved under `--out` and the run exits 1. It prints execs and crashes per
//! target.

use std::collections::HashSet;
use std::io::{Cursor, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lima_core::bzip2par::ParallelBz2;
use lima_core::comments;
use lima_core::filters::{FilterConfig, Filters};
use lima_core::html::{self, Style};
use lima_core::input::Progress;
use lima_core::posts;
use lima_core::pushshift::{self, PushshiftOptions};
use lima_core::scan::{self, OnError, ScanOptions};

/// xorshift64*: the same edits for the same --seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&[u8]] = &[
    b"&",
    b"&#",
    b"&#x",
    b";",
    b"&amp;",
    b"&lt;",
    b"&#0;",
    b"&#x110000;",
    b"\"",
    b"'",
    b"=",
    b" ",
    b"\n",
    b"\r",
    b"\t",
    b"<",
    b">",
    b"/>",
    b"<row ",
    b" Id=\"",
    b"4294967295",
    b"-1",
    b"<ul><li>",
    b"</li></ul>",
    b"<blockquote>",
    b"<pre><code>",
    b"<ol start=\"99999999\">",
    b"<table><tr><td>",
    b"<a href=\"",
    b"<img src=\"",
    b"<h1>",
    b"\xef\xbb\xbf",
    b"\xff",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\\u",
    b"\\ud800",
    b"\"body\":",
    b"\"subreddit\":",
    b"null",
    b"1e999",
    b"BZh9",
    b"1AY&SY",
    b"\x17\x72\x45\x38\x50\x90",
];

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(d.len() + 1);
        match rng.below(8) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let times = if rng.below(8) == 0 {
                    1 + rng.below(2000)
                } else {
                    1
                };
                for _ in 0..times {
                    d.splice(at..at, t.iter().copied());
                }
            }
            3 if !d.is_empty() => {
                let end = (at + 1 + rng.below(64)).min(d.len());
                d.drain(at.min(end)..end);
            }
            4 if !d.is_empty() => {
                let from = rng.below(d.len());
                let end = (from + 1 + rng.below(256)).min(d.len());
                let chunk = d[from..end].to_vec();
                d.splice(at..at, chunk);
            }
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(512)).min(other.len());
                d.splice(at..at, other[from..end].iter().copied());
            }
            6 => d.truncate(at),
            _ => {
                let n = 1 + rng.below(8);
                for _ in 0..n {
                    d.insert(at.min(d.len()), rng.next() as u8);
                }
            }
        }
        if d.len() > max_len {
            d.truncate(max_len);
        }
    }
    d
}

/// quick-xml's reading of a row: every (key, raw value), or an error.
fn reference_attributes(line: &str) -> Option<Result<Vec<(String, String)>, ()>> {
    use quick_xml::events::BytesStart;
    let t = line.trim_start_matches('\u{feff}').trim();
    if !t.starts_with("<row") {
        return None; // frame lines and other elements: no reference verdict
    }
    let Some(inner) = t.strip_prefix('<').and_then(|s| s.strip_suffix("/>")) else {
        return Some(Err(()));
    };
    let name_len = inner
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(inner.len());
    if &inner[..name_len] != "row" {
        return Some(Err(()));
    }
    let mut out = Vec::new();
    for attr in BytesStart::from_content(inner, name_len)
        .attributes()
        .with_checks(true)
    {
        let Ok(attr) = attr else {
            return Some(Err(()));
        };
        let key: &str = attr.key.as_ref();
        let raw: &str = &attr.value;
        out.push((key.to_string(), raw.to_string()));
    }
    Some(Ok(out))
}

fn posts_row(data: &[u8]) -> Result<(), String> {
    let Ok(line) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let mut ours = Vec::new();
    let verdict = posts::for_each_attribute(line, "posts", |k, v| {
        ours.push((k.to_string(), v.to_string()));
        true
    });
    for (_, v) in &ours {
        let mine = posts::unescape(v).map(|c| c.into_owned()).ok();
        let theirs = quick_xml::escape::unescape(v).map(|c| c.into_owned()).ok();
        if mine != theirs {
            return Err(format!(
                "unescape({v:?}): ours {mine:?}, quick-xml {theirs:?}"
            ));
        }
    }
    let _ = posts::parse_line(line);
    match (reference_attributes(line), verdict) {
        (Some(Ok(reference)), Ok(posts::RowKind::Row)) if reference != ours => Err(format!(
            "attributes differ on {line:?}: ours {ours:?}, quick-xml {reference:?}"
        )),
        (Some(Ok(_)), Err(e)) => Err(format!("quick-xml accepts, ours rejects ({e}): {line:?}")),
        (Some(Err(())), Ok(posts::RowKind::Row)) => {
            Err(format!("quick-xml rejects, ours accepts: {line:?}"))
        }
        _ => Ok(()),
    }
}

fn posts_scan(data: &[u8], filters: &Filters) -> Result<(), String> {
    let mut doc = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<posts>\n".to_vec();
    doc.extend_from_slice(data);
    doc.extend_from_slice(b"\n</posts>\n");
    let opts = ScanOptions {
        on_error: OnError::Skip,
        max_line_bytes: 1 << 16,
        ..ScanOptions::default()
    };
    let _ = scan::scan_posts(
        &mut Cursor::new(doc),
        "fuzz",
        filters,
        &opts,
        &Progress::default(),
    );
    Ok(())
}

fn comments_scan(data: &[u8]) -> Result<(), String> {
    let mut doc = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<comments>\n".to_vec();
    doc.extend_from_slice(data);
    doc.extend_from_slice(b"\n</comments>\n");
    let wanted: HashSet<u32> = (0..5000).collect();
    let progress = Progress::default();
    let _ = comments::scan_comments(
        &mut Cursor::new(doc),
        "fuzz",
        &wanted,
        OnError::Skip,
        1 << 16,
        &progress,
    );
    Ok(())
}

fn html(data: &[u8], style: &Style) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let _ = html::convert(&text, style);
    Ok(())
}

fn pushshift(data: &[u8], file: &Path) -> Result<(), String> {
    for line in data.split(|&c| c == b'\n') {
        pushshift::readers_agree(line)?;
    }
    std::fs::write(file, data).map_err(|e| format!("write {}: {e}", file.display()))?;
    let opts = PushshiftOptions {
        on_error: OnError::Skip,
        ..PushshiftOptions::default()
    };
    let _ = pushshift::scan_pushshift(file, &opts, Arc::new(Progress::default()));
    Ok(())
}

fn bzip2(data: &[u8]) -> Result<(), String> {
    let mut reference = Vec::new();
    let theirs = bzip2_crate_decode(data, &mut reference);
    let mut out = Vec::new();
    let ours = ParallelBz2::new(data, 2, 0).and_then(|mut d| d.read_to_end(&mut out));
    match (ours, theirs) {
        (Ok(_), Ok(())) if out != reference => Err(format!(
            "decoded {} bytes, libbzip2 {} bytes, contents differ",
            out.len(),
            reference.len()
        )),
        (Ok(_), Err(e)) => Err(format!("libbzip2 rejects ({e}), ours accepts")),
        _ => Ok(()),
    }
}

fn bzip2_crate_decode(data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut d = ::bzip2::read::MultiBzDecoder::new(data);
    d.read_to_end(out).map(|_| ()).map_err(|e| e.to_string())
}

fn bz(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = ::bzip2::write::BzEncoder::new(Vec::new(), ::bzip2::Compression::new(level));
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

struct Corpus {
    rows: Vec<Vec<u8>>,
    comments: Vec<Vec<u8>>,
    bodies: Vec<Vec<u8>>,
    ndjson: Vec<Vec<u8>>,
    bzip2: Vec<Vec<u8>>,
}

fn lines_of(path: &Path, keep: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| keep(l))
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn corpus(root: &Path) -> Corpus {
    let se = root.join("lima/samples/stackexchange");
    let mut rows = Vec::new();
    for site in [
        "coffee.stackexchange.com",
        "quantumcomputing.stackexchange.com",
    ] {
        rows.extend(lines_of(&se.join(site).join("Posts.xml"), |l| {
            l.trim_start().starts_with("<row")
        }));
    }
    let comments = lines_of(
        &se.join("quantumcomputing.stackexchange.com/Comments.xml"),
        |l| l.trim_start().starts_with("<row"),
    );
    let bodies = rows
        .iter()
        .filter_map(|r| {
            let line = std::str::from_utf8(r).ok()?;
            let mut body = None;
            let _ = posts::for_each_attribute(line, "posts", |k, v| {
                if k == "Body" {
                    body = posts::unescape(v).ok().map(|b| b.into_owned().into_bytes());
                }
                true
            });
            body
        })
        .take(3000)
        .collect();
    let ndjson = lines_of(
        &root.join("lima/samples/reddit/WritingPrompts_comments.ndjson"),
        |l| !l.is_empty(),
    );
    let mut bzip2 = Vec::new();
    for (k, chunk) in rows.chunks(40).take(64).enumerate() {
        let text: Vec<u8> = chunk
            .iter()
            .flat_map(|r| [&r[..], b"\n"].concat())
            .collect();
        let packed = bz(&text, 1 + (k % 9) as u32);
        // two streams back to back now and then, as pbzip2 writes them
        if k % 5 == 0 {
            let mut two = packed.clone();
            two.extend_from_slice(&bz(&text[..text.len() / 2], 1));
            bzip2.push(two);
        }
        bzip2.push(packed);
    }
    Corpus {
        rows,
        comments,
        bodies,
        ndjson,
        bzip2,
    }
}

struct Args {
    seconds: f64,
    seed: u64,
    out: PathBuf,
    slow: Duration,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        seconds: 60.0,
        seed: 1,
        out: PathBuf::from("fuzz-crashes"),
        slow: Duration::from_millis(2000),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: String| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--seconds" => a.seconds = value.parse().map_err(|e| bad(format!("{e}")))?,
            "--seed" => a.seed = value.parse().map_err(|e| bad(format!("{e}")))?,
            "--out" => a.out = PathBuf::from(&value),
            "--slow-ms" => {
                a.slow = Duration::from_millis(value.parse().map_err(|e| bad(format!("{e}")))?)
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(a)
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fuzz: {e}");
            std::process::exit(2);
        }
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let c = corpus(&root);
    if c.rows.is_empty() || c.ndjson.is_empty() {
        eprintln!("fuzz: no corpus under {}", root.display());
        std::process::exit(2);
    }
    let filters = match Filters::new(FilterConfig::default()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fuzz: {e}");
            std::process::exit(2);
        }
    };
    let style = Style::default();
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fuzz: temporary folder: {e}");
            std::process::exit(2);
        }
    };
    let pushshift_file = tmp.path().join("RC_fuzz.ndjson");
    panic::set_hook(Box::new(|_| {}));
    let names = [
        "posts_row",
        "posts_scan",
        "comments_scan",
        "html",
        "pushshift",
        "bzip2",
    ];
    let mut execs = [0u64; 6];
    let mut crashes = [0u64; 6];
    let mut slowest = [Duration::ZERO; 6];
    let mut rng = Rng(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let mut turn = 0usize;
    while Instant::now() < deadline {
        let t = turn % names.len();
        turn += 1;
        // the pool a target's seeds come from, how many lines make one seed, the size cap
        let (pool, group, max): (&[Vec<u8>], usize, usize) = match t {
            0 => (&c.rows, 1, 1 << 16),
            1 => (&c.rows, 6, 1 << 18),
            2 => (&c.comments, 6, 1 << 18),
            3 => (&c.bodies, 1, 1 << 18),
            4 => (&c.ndjson, 8, 1 << 18),
            _ => (&c.bzip2, 1, 1 << 20),
        };
        let start = rng.below(pool.len());
        let seed: Vec<u8> = pool[start..(start + group).min(pool.len())].join(&b'\n');
        let other = pool[rng.below(pool.len())].clone();
        let input = mutate(&mut rng, &seed, &other, max);
        let started = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| match t {
            0 => posts_row(&input),
            1 => posts_scan(&input, &filters),
            2 => comments_scan(&input),
            3 => html(&input, &style),
            4 => pushshift(&input, &pushshift_file),
            _ => bzip2(&input),
        }));
        let took = started.elapsed();
        execs[t] += 1;
        slowest[t] = slowest[t].max(took);
        let finding = match outcome {
            Ok(Ok(())) if took > args.slow => Some(format!("slow: {took:?}")),
            Ok(Ok(())) => None,
            Ok(Err(disagreement)) => Some(disagreement),
            Err(payload) => Some(format!(
                "panic: {}",
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        };
        if let Some(what) = finding {
            crashes[t] += 1;
            let _ = std::fs::create_dir_all(&args.out);
            let file = args.out.join(format!("{}-{}.bin", names[t], execs[t]));
            let _ = std::fs::write(&file, &input);
            let shown: String = what.chars().take(300).collect();
            eprintln!("{}: {shown} (input saved to {})", names[t], file.display());
        }
    }
    println!("| target | execs | crashes | slowest exec |");
    println!("|---|---|---|---|");
    for t in 0..names.len() {
        println!(
            "| {} | {} | {} | {:.1} ms |",
            names[t],
            execs[t],
            crashes[t],
            slowest[t].as_secs_f64() * 1e3
        );
    }
    let total: u64 = execs.iter().sum();
    let bad: u64 = crashes.iter().sum();
    println!(
        "{total} execs in {:.0} s, {bad} crashes (seed {})",
        args.seconds, args.seed
    );
    if bad > 0 {
        std::process::exit(1);
    }
}
