//! The PyO3 binding, and the only place PyO3 appears. Each function takes
//! keyword-only options, builds one core options struct, runs the core with
//! the GIL released, and maps the error once.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Int64Builder, ListBuilder, StringBuilder};
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{ArrayRef, RecordBatch, RecordBatchIterator};
use arrow_schema::ArrowError;
use pyo3::create_exception;
use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyPermissionError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};

use crate::comments::{self, Comment, CommentFunnel};
use crate::error::CoreError;
use crate::filters::{
    FilterConfig, Filters, DEFAULT_IMAGE_PHRASES, DEFAULT_NUMERAL_WORDS, DEFAULT_REFERENCE_PHRASES,
};
use crate::html::Style;
use crate::input::Progress;
use crate::pushshift::{self, Kind, PushshiftOptions, RedditFunnel, RedditRow};
use crate::scan::{self, Funnel, OnError, Pair, ScanOptions};
use crate::users::{self, UsersFunnel};

/// The extension's Rust allocations (rows, chunk buffers, Arrow arrays) go to
/// mimalloc: glibc's malloc, free and consolidation were about 7% of a dense
/// Pushshift scan. Arrow buffers handed to Python are freed through their own
/// release callbacks, so they return here too.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

create_exception!(
    _core,
    LimaError,
    PyException,
    "Base class of lima's errors."
);
create_exception!(
    _core,
    DumpFormatError,
    LimaError,
    "A dump file is malformed; the message names the file and the byte offset."
);
create_exception!(
    _core,
    ArchiveError,
    LimaError,
    "A compressed container is corrupt or truncated."
);

fn to_py(e: CoreError) -> PyErr {
    let msg = e.to_string();
    match e {
        CoreError::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
            _ => PyOSError::new_err(msg),
        },
        CoreError::Format { .. } => DumpFormatError::new_err(msg),
        CoreError::Archive { .. } => ArchiveError::new_err(msg),
        CoreError::Config(_) => PyValueError::new_err(msg),
        CoreError::Interrupted => PyKeyboardInterrupt::new_err(msg),
    }
}

/// Byte counters a scan publishes while it runs, read by a progress bar.
#[pyclass(name = "Progress", module = "lima._core", frozen)]
struct PyProgress {
    inner: Arc<Progress>,
}

#[pymethods]
impl PyProgress {
    #[new]
    fn new() -> Self {
        PyProgress {
            inner: Arc::new(Progress::default()),
        }
    }
    /// Bytes of the current file on disk read so far.
    #[getter]
    fn position(&self) -> u64 {
        self.inner.position()
    }
    /// Size of the current file on disk.
    #[getter]
    fn total(&self) -> u64 {
        self.inner.total.load(Ordering::Relaxed)
    }
    /// Ask the running scan to stop; it raises KeyboardInterrupt.
    fn cancel(&self) {
        self.inner.cancel.store(true, Ordering::Relaxed);
    }
}

/// Record batches handed to Python through the Arrow C stream interface.
#[pyclass(module = "lima._core")]
struct ArrowBatches {
    batch: Option<RecordBatch>,
}

#[pymethods]
impl ArrowBatches {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &mut self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let batch = self
            .batch
            .take()
            .ok_or_else(|| PyValueError::new_err("this stream was already consumed"))?;
        let schema = batch.schema();
        let reader = RecordBatchIterator::new([Ok::<_, ArrowError>(batch)], schema);
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }
}

/// A string column, its buffer sized once from the lengths: growing it by
/// doubling copied the kept text again at each step and faulted in fresh
/// pages (a tenth of a dense Pushshift scan).
fn text_column<R>(rows: &[R], f: &dyn Fn(&R) -> Option<&str>) -> ArrayRef {
    let bytes = rows.iter().filter_map(f).map(str::len).sum();
    let mut b = StringBuilder::with_capacity(rows.len(), bytes);
    rows.iter().for_each(|r| b.append_option(f(r)));
    Arc::new(b.finish())
}

fn pairs_to_batch(pairs: &[Pair]) -> PyResult<RecordBatch> {
    let n = pairs.len();
    let int = |f: &dyn Fn(&Pair) -> i64| {
        let mut b = Int64Builder::with_capacity(n);
        pairs.iter().for_each(|p| b.append_value(f(p)));
        Arc::new(b.finish()) as ArrayRef
    };
    let text = |f: &dyn Fn(&Pair) -> Option<&str>| text_column(pairs, f);
    let mut accepted = BooleanBuilder::with_capacity(n);
    let mut tags = ListBuilder::new(StringBuilder::new());
    for p in pairs {
        accepted.append_value(p.accepted);
        for t in &p.tags {
            tags.values().append_value(t);
        }
        tags.append(true);
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("question_id", int(&|p| i64::from(p.question_id))),
        ("answer_id", int(&|p| i64::from(p.answer_id))),
        ("question_score", int(&|p| p.question_score)),
        ("answer_score", int(&|p| p.answer_score)),
        ("accepted", Arc::new(accepted.finish())),
        ("title", text(&|p| Some(&p.title))),
        ("question", text(&|p| Some(&p.question))),
        ("answer", text(&|p| Some(&p.answer))),
        ("tags", Arc::new(tags.finish())),
        ("prompt_field", text(&|p| Some(p.prompt_field))),
        ("question_date", text(&|p| p.question_date.as_deref())),
        ("answer_date", text(&|p| p.answer_date.as_deref())),
        (
            "question_owner_id",
            text(&|p| p.question_owner_id.as_deref()),
        ),
        ("answer_owner_id", text(&|p| p.answer_owner_id.as_deref())),
        (
            "question_owner_name",
            text(&|p| p.question_owner_name.as_deref()),
        ),
        (
            "answer_owner_name",
            text(&|p| p.answer_owner_name.as_deref()),
        ),
        ("question_license", text(&|p| p.question_license.as_deref())),
        ("answer_license", text(&|p| p.answer_license.as_deref())),
    ];
    RecordBatch::try_from_iter(columns).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn funnel_to_dict<'py>(py: Python<'py>, f: &Funnel) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("rows_read", f.rows_read)?;
    d.set_item("questions", f.questions)?;
    d.set_item("answers", f.answers)?;
    d.set_item("other_post_types", f.other_post_types.clone())?;
    d.set_item("malformed_rows", f.malformed_rows)?;
    d.set_item("duplicate_ids", f.duplicate_ids)?;
    d.set_item("answers_orphaned", f.answers_orphaned)?;
    d.set_item("answers_not_top", f.answers_not_top)?;
    d.set_item("questions_unanswered", f.questions_unanswered)?;
    d.set_item("top_answers", f.top_answers)?;
    d.set_item("rejected", f.rejected.clone())?;
    d.set_item("kept", f.kept)?;
    d.set_item("nesting_flattened", f.nesting_flattened)?;
    d.set_item("truncated", f.truncated)?;
    d.set_item("archive_errors", f.archive_errors)?;
    d.set_item("bytes_lost", f.bytes_lost)?;
    d.set_item("errors", f.errors.clone())?;
    Ok(d)
}

/// Scan one Stack Exchange site dump (`.7z`, folder, or `Posts.xml`) and
/// return the (question, top answer) pairs that pass the filters as Arrow
/// batches, with the funnel that accounts for every row and answer read.
/// Owners are named from the site's `Users.xml` when `users` is set and the
/// dump has one.
#[pyfunction]
#[pyo3(signature = (
    path, *, progress=None, on_error="fail", seed=0, filters=true, min_score=10,
    min_chars=1200, max_chars=4096, first_person_words=None, numeral_words=None,
    reference_phrases=None, image_references=true, image_phrases=None,
    max_link_list_share=0.5, bullet="* ", blank_line_between_paragraphs=false,
    inline_code_backticks=true, escape_markdown=true, max_depth=8, users=true,
    max_line_bytes=67_108_864, threads=0,
))]
#[allow(clippy::too_many_arguments)]
fn scan_stackexchange<'py>(
    py: Python<'py>,
    path: PathBuf,
    progress: Option<PyRef<'py, PyProgress>>,
    on_error: &str,
    seed: u64,
    filters: bool,
    min_score: i64,
    min_chars: usize,
    max_chars: usize,
    first_person_words: Option<Vec<String>>,
    numeral_words: Option<Vec<String>>,
    reference_phrases: Option<Vec<String>>,
    image_references: bool,
    image_phrases: Option<Vec<String>>,
    max_link_list_share: f64,
    bullet: &str,
    blank_line_between_paragraphs: bool,
    inline_code_backticks: bool,
    escape_markdown: bool,
    max_depth: usize,
    users: bool,
    max_line_bytes: usize,
    threads: usize,
) -> PyResult<(ArrowBatches, Bound<'py, PyDict>)> {
    let on_error = parse_on_error(on_error)?;
    let config = filter_config(
        filters,
        min_score,
        min_chars,
        max_chars,
        first_person_words,
        numeral_words,
        reference_phrases,
        image_references,
        image_phrases,
        max_link_list_share,
        Style {
            bullet: bullet.to_string(),
            blank_line_between_paragraphs,
            inline_code_backticks,
            escape: escape_markdown,
            max_depth,
        },
    );
    let filters = Filters::new(config).map_err(to_py)?;
    let opts = ScanOptions {
        on_error,
        seed,
        max_line_bytes,
        threads,
    };
    let progress = progress
        .map(|p| p.inner.clone())
        .unwrap_or_else(|| Arc::new(Progress::default()));
    let (pairs, funnel, names) = py
        .detach(move || {
            if users {
                users::scan_site(&path, &filters, &opts, progress)
            } else {
                scan::scan_path(&path, &filters, &opts, progress)
                    .map(|(p, f)| (p, f, UsersFunnel::default()))
            }
        })
        .map_err(to_py)?;
    let batch = pairs_to_batch(&pairs)?;
    let d = funnel_to_dict(py, &funnel)?;
    let u = PyDict::new(py);
    u.set_item("found", names.found)?;
    u.set_item("rows_read", names.rows_read)?;
    u.set_item("malformed_rows", names.malformed_rows)?;
    u.set_item("named", names.named)?;
    u.set_item("not_listed", names.not_listed)?;
    u.set_item("truncated", names.truncated)?;
    u.set_item("archive_errors", names.archive_errors)?;
    u.set_item("bytes_lost", names.bytes_lost)?;
    u.set_item("errors", names.errors)?;
    d.set_item("users", u)?;
    Ok((ArrowBatches { batch: Some(batch) }, d))
}

#[allow(clippy::too_many_arguments)]
fn filter_config(
    enabled: bool,
    min_score: i64,
    min_chars: usize,
    max_chars: usize,
    first_person_words: Option<Vec<String>>,
    numeral_words: Option<Vec<String>>,
    reference_phrases: Option<Vec<String>>,
    image_references: bool,
    image_phrases: Option<Vec<String>>,
    max_link_list_share: f64,
    style: Style,
) -> FilterConfig {
    let d = FilterConfig::default();
    FilterConfig {
        enabled,
        min_score,
        min_chars,
        max_chars,
        first_person_words: first_person_words.unwrap_or(d.first_person_words),
        numeral_words: numeral_words.unwrap_or(d.numeral_words),
        reference_phrases: reference_phrases.unwrap_or(d.reference_phrases),
        image_references,
        image_phrases: image_phrases.unwrap_or(d.image_phrases),
        max_link_list_share,
        style,
    }
}

/// Convert one answer body as the scanner does and judge it with the style
/// filters (length, first person, references, images, link lists); returns
/// (markdown, reason or None). The score filter is the scanner's.
#[pyfunction]
#[pyo3(signature = (
    html, *, min_chars=1200, max_chars=4096, first_person_words=None, numeral_words=None,
    reference_phrases=None, image_references=true, image_phrases=None,
    max_link_list_share=0.5, bullet="* ", blank_line_between_paragraphs=false,
    inline_code_backticks=true, escape_markdown=true, max_depth=8,
))]
#[allow(clippy::too_many_arguments)]
fn check_answer(
    py: Python<'_>,
    html: &str,
    min_chars: usize,
    max_chars: usize,
    first_person_words: Option<Vec<String>>,
    numeral_words: Option<Vec<String>>,
    reference_phrases: Option<Vec<String>>,
    image_references: bool,
    image_phrases: Option<Vec<String>>,
    max_link_list_share: f64,
    bullet: &str,
    blank_line_between_paragraphs: bool,
    inline_code_backticks: bool,
    escape_markdown: bool,
    max_depth: usize,
) -> PyResult<(String, Option<&'static str>)> {
    let config = filter_config(
        true,
        0,
        min_chars,
        max_chars,
        first_person_words,
        numeral_words,
        reference_phrases,
        image_references,
        image_phrases,
        max_link_list_share,
        Style {
            bullet: bullet.to_string(),
            blank_line_between_paragraphs,
            inline_code_backticks,
            escape: escape_markdown,
            max_depth,
        },
    );
    let filters = Filters::new(config).map_err(to_py)?;
    let html = html.to_string();
    Ok(py.detach(move || {
        let c = crate::html::convert(&html, &filters.config.style);
        let reason = filters.check(&c).map(|r| r.as_str());
        (c.markdown, reason)
    }))
}

fn parse_on_error(on_error: &str) -> PyResult<OnError> {
    match on_error {
        "fail" => Ok(OnError::Fail),
        "skip" => Ok(OnError::Skip),
        other => Err(PyValueError::new_err(format!(
            "on_error must be 'fail' or 'skip', not {other:?}"
        ))),
    }
}

fn reddit_to_batch(rows: &[RedditRow]) -> PyResult<RecordBatch> {
    let text = |f: &dyn Fn(&RedditRow) -> Option<&str>| text_column(rows, f);
    let int = |f: &dyn Fn(&RedditRow) -> Option<i64>| {
        let mut b = Int64Builder::with_capacity(rows.len());
        rows.iter().for_each(|r| b.append_option(f(r)));
        Arc::new(b.finish()) as ArrayRef
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("kind", text(&|r| Some(r.kind))),
        ("id", text(&|r| Some(&r.id))),
        ("subreddit", text(&|r| Some(&r.subreddit))),
        ("title", text(&|r| r.title.as_deref())),
        ("text", text(&|r| Some(&r.text))),
        ("score", int(&|r| Some(r.score))),
        ("created_utc", int(&|r| r.created_utc)),
        ("author", text(&|r| r.author.as_deref())),
        ("link_id", text(&|r| r.link_id.as_deref())),
        ("parent_id", text(&|r| r.parent_id.as_deref())),
        ("num_comments", int(&|r| r.num_comments)),
        ("permalink", text(&|r| r.permalink.as_deref())),
    ];
    RecordBatch::try_from_iter(columns).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn reddit_funnel_to_dict<'py>(py: Python<'py>, f: &RedditFunnel) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("lines_read", f.lines_read)?;
    d.set_item("blank", f.blank)?;
    d.set_item("malformed", f.malformed)?;
    d.set_item("other_subreddit", f.other_subreddit)?;
    d.set_item("submissions", f.submissions)?;
    d.set_item("comments", f.comments)?;
    d.set_item("dropped", f.dropped.clone())?;
    d.set_item("kept_submissions", f.kept_submissions)?;
    d.set_item("kept_comments", f.kept_comments)?;
    d.set_item("truncated", f.truncated)?;
    d.set_item("archive_errors", f.archive_errors)?;
    d.set_item("bytes_lost", f.bytes_lost)?;
    d.set_item("errors", f.errors.clone())?;
    Ok(d)
}

/// Scan one Pushshift file (`.zst` with a 2 GiB window, or NDJSON) and return
/// the kept submissions and comments as Arrow batches with the funnel.
#[pyfunction]
#[pyo3(signature = (
    path, *, subreddit=None, kind="auto", progress=None, on_error="fail",
    min_submission_score=None, min_comment_score=None, min_comment_chars=0,
    top_level_only=false, max_line_bytes=10_485_760, threads=0,
))]
#[allow(clippy::too_many_arguments)]
fn scan_pushshift<'py>(
    py: Python<'py>,
    path: PathBuf,
    subreddit: Option<String>,
    kind: &str,
    progress: Option<PyRef<'py, PyProgress>>,
    on_error: &str,
    min_submission_score: Option<i64>,
    min_comment_score: Option<i64>,
    min_comment_chars: usize,
    top_level_only: bool,
    max_line_bytes: usize,
    threads: usize,
) -> PyResult<(ArrowBatches, Bound<'py, PyDict>)> {
    let kind = match kind {
        "auto" => Kind::Auto,
        "submissions" => Kind::Submissions,
        "comments" => Kind::Comments,
        other => {
            return Err(PyValueError::new_err(format!(
                "kind must be 'auto', 'submissions' or 'comments', not {other:?}"
            )))
        }
    };
    let opts = PushshiftOptions {
        subreddit,
        kind,
        on_error: parse_on_error(on_error)?,
        max_line_bytes,
        min_submission_score,
        min_comment_score,
        min_comment_chars,
        top_level_only,
        threads,
    };
    let progress = progress
        .map(|p| p.inner.clone())
        .unwrap_or_else(|| Arc::new(Progress::default()));
    let (rows, funnel) = py
        .detach(move || pushshift::scan_pushshift(&path, &opts, progress))
        .map_err(to_py)?;
    let batch = reddit_to_batch(&rows)?;
    Ok((
        ArrowBatches { batch: Some(batch) },
        reddit_funnel_to_dict(py, &funnel)?,
    ))
}

/// Convert one HTML fragment to Markdown as the scanners do; returns
/// (markdown, prose outside code).
fn comments_to_batch(rows: &[Comment]) -> PyResult<RecordBatch> {
    let text = |f: &dyn Fn(&Comment) -> Option<&str>| text_column(rows, f);
    let int = |f: &dyn Fn(&Comment) -> i64| {
        let mut b = Int64Builder::with_capacity(rows.len());
        rows.iter().for_each(|r| b.append_value(f(r)));
        Arc::new(b.finish()) as ArrayRef
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("comment_id", int(&|r| i64::from(r.id))),
        ("post_id", int(&|r| i64::from(r.post_id))),
        ("score", int(&|r| r.score)),
        ("text", text(&|r| Some(&r.text))),
        ("created", text(&|r| r.date.as_deref())),
        ("user_id", text(&|r| r.user_id.as_deref())),
        ("user_name", text(&|r| r.user_name.as_deref())),
    ];
    RecordBatch::try_from_iter(columns).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn comment_funnel_to_dict<'py>(py: Python<'py>, f: &CommentFunnel) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("rows_read", f.rows_read)?;
    d.set_item("kept", f.kept)?;
    d.set_item("other_posts", f.other_posts)?;
    d.set_item("malformed_rows", f.malformed_rows)?;
    d.set_item("truncated", f.truncated)?;
    d.set_item("archive_errors", f.archive_errors)?;
    d.set_item("bytes_lost", f.bytes_lost)?;
    d.set_item("errors", f.errors.clone())?;
    Ok(d)
}

/// The comments under the posts `post_ids` of one site dump (`.7z`, a folder
/// holding `Comments.xml`, or the file), sorted by post and comment id, with
/// the funnel that counts every row read.
#[pyfunction]
#[pyo3(signature = (path, post_ids, *, progress=None, on_error="fail", max_line_bytes=67_108_864))]
fn scan_comments<'py>(
    py: Python<'py>,
    path: PathBuf,
    post_ids: Vec<u32>,
    progress: Option<PyRef<'py, PyProgress>>,
    on_error: &str,
    max_line_bytes: usize,
) -> PyResult<(ArrowBatches, Bound<'py, PyDict>)> {
    let on_error = parse_on_error(on_error)?;
    let wanted = post_ids.into_iter().collect();
    let progress = progress
        .map(|p| p.inner.clone())
        .unwrap_or_else(|| Arc::new(Progress::default()));
    let (rows, funnel) = py
        .detach(move || {
            comments::scan_comments_path(&path, &wanted, on_error, max_line_bytes, progress)
        })
        .map_err(to_py)?;
    Ok((
        ArrowBatches {
            batch: Some(comments_to_batch(&rows)?),
        },
        comment_funnel_to_dict(py, &funnel)?,
    ))
}

#[pyfunction]
fn html_to_markdown(py: Python<'_>, html: &str) -> (String, String) {
    let html = html.to_string();
    let c = py.detach(move || crate::html::html_to_markdown(&html));
    (c.markdown, c.prose)
}

/// The default phrases that mark an answer as referring to other answers.
#[pyfunction]
fn default_reference_phrases() -> Vec<&'static str> {
    DEFAULT_REFERENCE_PHRASES.to_vec()
}

/// The default words after which a capital "I" is a numeral ("World War I").
#[pyfunction]
fn default_numeral_words() -> Vec<&'static str> {
    DEFAULT_NUMERAL_WORDS.to_vec()
}

/// The default phrases that point at an image or figure.
#[pyfunction]
fn default_image_phrases() -> Vec<&'static str> {
    DEFAULT_IMAGE_PHRASES.to_vec()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("LimaError", py.get_type::<LimaError>())?;
    m.add("DumpFormatError", py.get_type::<DumpFormatError>())?;
    m.add("ArchiveError", py.get_type::<ArchiveError>())?;
    m.add_class::<PyProgress>()?;
    m.add_class::<ArrowBatches>()?;
    m.add_function(wrap_pyfunction!(scan_stackexchange, m)?)?;
    m.add_function(wrap_pyfunction!(scan_pushshift, m)?)?;
    m.add_function(wrap_pyfunction!(scan_comments, m)?)?;
    m.add_function(wrap_pyfunction!(html_to_markdown, m)?)?;
    m.add_function(wrap_pyfunction!(check_answer, m)?)?;
    m.add_function(wrap_pyfunction!(default_reference_phrases, m)?)?;
    m.add_function(wrap_pyfunction!(default_numeral_words, m)?)?;
    m.add_function(wrap_pyfunction!(default_image_phrases, m)?)?;
    Ok(())
}
