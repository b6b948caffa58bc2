#![allow(clippy::expect_used)]
//! The question/answer join on real rows of the coffee dump (question 14 and
//! its answers 35 and 46), rearranged to pin down the tie rules, the order
//! independence and the counting; and the zstd reader on the same dump.

use std::io::{Cursor, Write};
use std::path::PathBuf;
use std::sync::Arc;

use lima_core::filters::{FilterConfig, Filters};
use lima_core::input::Progress;
use lima_core::scan::{scan_path, scan_posts, Funnel, OnError, Pair, ScanOptions};
use lima_core::CoreError;

fn coffee() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../lima/samples/stackexchange/coffee.stackexchange.com/Posts.xml")
}

fn row(id: &str) -> String {
    let text = std::fs::read_to_string(coffee()).expect("coffee dump");
    let needle = format!("<row Id=\"{id}\" ");
    text.lines()
        .find(|l| l.trim_start().starts_with(&needle))
        .expect("row present")
        .to_string()
}

fn set_attr(row: &str, name: &str, value: Option<&str>) -> String {
    let key = format!(" {name}=\"");
    let stripped = match row.find(&key) {
        Some(start) => {
            let end =
                row[start + key.len()..].find('"').expect("closing quote") + start + key.len() + 1;
            format!("{}{}", &row[..start], &row[end..])
        }
        None => row.to_string(),
    };
    match value {
        Some(v) => stripped.replacen("<row ", &format!("<row {name}=\"{v}\" "), 1),
        None => stripped,
    }
}

fn run(rows: &[String], filters: FilterConfig) -> (Vec<Pair>, Funnel) {
    let mut doc = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<posts>\n");
    for r in rows {
        doc.push_str(r);
        doc.push('\n');
    }
    doc.push_str("</posts>");
    let f = Filters::new(filters).expect("valid filters");
    let mut reader = Cursor::new(doc.into_bytes());
    scan_posts(
        &mut reader,
        "test",
        &f,
        &ScanOptions::default(),
        &Progress::default(),
    )
    .expect("scan")
}

fn unfiltered() -> FilterConfig {
    FilterConfig {
        enabled: false,
        ..FilterConfig::default()
    }
}

#[test]
fn highest_score_wins() {
    let (pairs, f) = run(&[row("14"), row("35"), row("46")], unfiltered());
    assert_eq!(pairs.len(), 1);
    assert_eq!((pairs[0].question_id, pairs[0].answer_id), (14, 46));
    assert!(pairs[0].accepted);
    assert_eq!((f.answers, f.top_answers, f.answers_not_top), (2, 1, 1));
}

#[test]
fn ties_go_to_the_accepted_answer_then_the_lowest_id() {
    let tied = set_attr(&row("35"), "Score", Some("10"));
    let (pairs, _) = run(&[row("14"), tied.clone(), row("46")], unfiltered());
    assert_eq!(pairs[0].answer_id, 46, "accepted answer wins the tie");
    let unaccepted = set_attr(&row("14"), "AcceptedAnswerId", None);
    let (pairs, _) = run(&[unaccepted, tied.clone(), row("46")], unfiltered());
    assert_eq!(pairs[0].answer_id, 35, "then the lowest id");
    assert!(!pairs[0].accepted);
    let accepted_35 = set_attr(&row("14"), "AcceptedAnswerId", Some("35"));
    let (pairs, _) = run(&[accepted_35, row("46"), tied], unfiltered());
    assert_eq!(pairs[0].answer_id, 35);
}

#[test]
fn answers_before_their_question_and_orphans_are_counted() {
    let orphan = set_attr(&row("35"), "ParentId", Some("999999"));
    let (pairs, f) = run(&[row("46"), orphan, row("14")], unfiltered());
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].answer_id, 46);
    assert_eq!(
        (
            f.answers,
            f.answers_orphaned,
            f.top_answers,
            f.answers_not_top
        ),
        (2, 1, 1, 0)
    );
}

#[test]
fn a_failing_top_answer_rejects_the_question_without_fallback() {
    // 35 (788 characters) outranks 46 but is too short: the question is rejected, not given 46.
    let higher = set_attr(&row("35"), "Score", Some("20"));
    let (pairs, f) = run(&[row("14"), higher, row("46")], FilterConfig::default());
    assert!(pairs.is_empty());
    assert_eq!(f.rejected.get("too_short"), Some(&1));
    assert_eq!(f.kept, 0);
    // below the score filter, the question counts under score_below_min
    let low = set_attr(&row("46"), "Score", Some("9"));
    let (_, f) = run(&[row("14"), row("35"), low], FilterConfig::default());
    assert_eq!(f.rejected.get("score_below_min"), Some(&1));
}

#[test]
fn duplicate_question_rows_are_counted_once() {
    let (pairs, f) = run(&[row("14"), row("14"), row("46")], unfiltered());
    assert_eq!(pairs.len(), 1);
    assert_eq!((f.rows_read, f.questions, f.duplicate_ids), (3, 1, 1));
}

#[test]
fn zstd_with_long_window_reads_like_the_plain_file() {
    let plain = std::fs::read(coffee()).expect("coffee dump");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Posts.xml.zst");
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
    enc.window_log(31).expect("window");
    enc.long_distance_matching(true).expect("ldm");
    enc.write_all(&plain).expect("compress");
    let compressed = enc.finish().expect("finish");
    std::fs::write(&path, &compressed).expect("write");
    let filters = Filters::new(FilterConfig::default()).expect("filters");
    let opts = ScanOptions::default();
    let (a, fa) =
        scan_path(&coffee(), &filters, &opts, Arc::new(Progress::default())).expect("plain");
    let (b, fb) = scan_path(&path, &filters, &opts, Arc::new(Progress::default())).expect("zstd");
    assert_eq!(a, b);
    assert_eq!(fa, fb);

    // truncated: an error naming the file, or with skip, a funnel marked truncated
    std::fs::write(&path, &compressed[..compressed.len() / 2]).expect("write");
    let err =
        scan_path(&path, &filters, &opts, Arc::new(Progress::default())).expect_err("truncated");
    assert!(
        matches!(err, CoreError::Archive { .. } | CoreError::Format { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Posts.xml.zst"), "{err}");
    let skip = ScanOptions {
        on_error: OnError::Skip,
        ..ScanOptions::default()
    };
    let (_, f) = scan_path(&path, &filters, &skip, Arc::new(Progress::default())).expect("skip");
    assert!(f.truncated);
}

/// Contenders are converted on helper threads when the scan may use more
/// than one; the pairs and every count are the same on any number. Nesting is
/// capped at one level here so that the flattened count is not zero, and the
/// filters are on, so answers are both kept and rejected.
#[test]
fn any_thread_count_converts_to_the_same_pairs_and_counts() {
    let site = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../lima/samples/stackexchange/quantumcomputing.stackexchange.com");
    let mut config = FilterConfig {
        min_score: 2,
        ..FilterConfig::default()
    };
    config.style.max_depth = 1;
    let f = Filters::new(config).expect("valid filters");
    let scan = |threads: usize| {
        let opts = ScanOptions {
            threads,
            ..ScanOptions::default()
        };
        scan_path(&site, &f, &opts, Arc::new(Progress::default())).expect("scan")
    };
    let (pairs, funnel) = scan(1);
    assert!(funnel.kept > 20, "{funnel:?}");
    assert!(funnel.rejected.values().filter(|n| **n > 0).count() >= 3);
    assert!(funnel.nesting_flattened > 0, "{funnel:?}");
    for threads in [2, 3, 8] {
        let (p, fu) = scan(threads);
        assert_eq!(fu, funnel, "{threads} threads");
        assert_eq!(p, pairs, "{threads} threads");
    }
}

/// The same bytes scanned from a plain file (kept questions read again from
/// it) and from memory (every question's fields spilled) give the same pairs
/// and funnel, on a whole dump with and without filters, and on a file with a
/// duplicate question id, a question whose title has a bad escape, and a
/// question after its answers.
#[test]
fn a_plain_posts_xml_read_again_gives_what_the_spill_gives() {
    let both = |path: &std::path::Path, config: FilterConfig, on_error: OnError| {
        let f = Filters::new(config).expect("valid filters");
        let opts = ScanOptions {
            on_error,
            ..ScanOptions::default()
        };
        let from_file = scan_path(path, &f, &opts, Arc::new(Progress::default())).expect("file");
        let bytes = std::fs::read(path).expect("read");
        let in_memory = scan_posts(
            &mut Cursor::new(bytes),
            &path.display().to_string(),
            &f,
            &opts,
            &Progress::default(),
        )
        .expect("memory");
        assert_eq!(from_file, in_memory, "{}", path.display());
        from_file
    };
    let site = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../lima/samples/stackexchange/quantumcomputing.stackexchange.com/Posts.xml");
    let (pairs, _) = both(&site, unfiltered(), OnError::Fail);
    assert!(pairs.len() > 500, "{}", pairs.len());
    assert!(pairs
        .iter()
        .any(|p| p.question_owner_name.is_some() || p.question_date.is_some()));
    let (pairs, funnel) = both(
        &site,
        FilterConfig {
            min_score: 2,
            ..FilterConfig::default()
        },
        OnError::Fail,
    );
    assert!(!pairs.is_empty() && funnel.rejected.values().sum::<u64>() > 0);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Posts.xml");
    let retitled = set_attr(&row("14"), "Title", Some("Another title"));
    let bad = set_attr(&row("14"), "Title", Some("A &bogus; title"));
    let rows = [row("35"), row("46"), row("14"), retitled, bad];
    let mut doc = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<posts>\n");
    for r in &rows {
        doc.push_str(r);
        doc.push('\n');
    }
    doc.push_str("</posts>\n");
    std::fs::write(&path, doc).expect("write");
    let (pairs, funnel) = both(&path, unfiltered(), OnError::Skip);
    assert_eq!(pairs.len(), 1);
    assert_ne!(pairs[0].title, "Another title");
    assert_eq!(
        (funnel.duplicate_ids, funnel.malformed_rows),
        (1, 1),
        "{funnel:?}"
    );
    assert!(
        funnel.errors[0].contains("unknown entity &bogus;"),
        "{funnel:?}"
    );
}
