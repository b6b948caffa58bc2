//! Stack Exchange `Comments.xml`: the comments under a given set of posts,
//! for mining question → answer → follow-up comment → reply chains.
//!
//! Only comments on the wanted posts are held, so memory is bounded by what
//! is kept. Every row read is counted: kept, on another post, or malformed.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::input::{self, Progress};
use crate::posts::{self, RowKind};
use crate::scan::OnError;
use crate::table::{self, Seen};

#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub id: u32,
    pub post_id: u32,
    pub score: i64,
    pub text: String,
    pub date: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommentFunnel {
    pub rows_read: u64,
    pub kept: u64,
    pub other_posts: u64,
    pub malformed_rows: u64,
    pub truncated: bool,
    /// Failed container reads and the bytes they cost (see `scan::Funnel`).
    pub archive_errors: u64,
    pub bytes_lost: u64,
    pub errors: Vec<String>,
}

/// Comments on `wanted` posts from a site `.7z`, a folder holding
/// `Comments.xml`, or the file itself; sorted by (post, id).
pub fn scan_comments_path(
    path: &Path,
    wanted: &HashSet<u32>,
    on_error: OnError,
    max_line_bytes: usize,
    progress: Arc<Progress>,
) -> Result<(Vec<Comment>, CommentFunnel)> {
    input::read_site_member(path, "Comments.xml", progress.clone(), |reader, label| {
        scan_comments(reader, label, wanted, on_error, max_line_bytes, &progress)
    })
}

fn parse_row(line: &str, wanted: &HashSet<u32>) -> std::result::Result<Option<Row>, String> {
    let mut f: [Option<&str>; 7] = [None; 7];
    let kind = posts::for_each_attribute(line, "comments", |key, value| {
        let i = match key {
            "Id" => 0,
            "PostId" => 1,
            "Score" => 2,
            "Text" => 3,
            "CreationDate" => 4,
            "UserId" => 5,
            "UserDisplayName" => 6,
            _ => return true,
        };
        f[i] = Some(value);
        true
    })?;
    match kind {
        RowKind::Frame => return Ok(None),
        RowKind::RootEnd => return Ok(Some(Row::End)),
        RowKind::Row => {}
    }
    let id = posts::parse_id(posts::required(f[0], "Id")?, "Id")?;
    let post_id = posts::parse_id(posts::required(f[1], "PostId")?, "PostId")?;
    if !wanted.contains(&post_id) {
        return Ok(Some(Row::Other));
    }
    let score = match f[2] {
        Some(s) => posts::parse_int(s, "Score")?,
        None => 0,
    };
    let text = posts::unescape(posts::required(f[3], "Text")?)?.into_owned();
    let opt = |v: Option<&str>| -> std::result::Result<Option<String>, String> {
        v.map(|s| posts::unescape(s).map(|c| c.into_owned()))
            .transpose()
    };
    Ok(Some(Row::Kept(Comment {
        id,
        post_id,
        score,
        text,
        date: opt(f[4])?,
        user_id: opt(f[5])?,
        user_name: opt(f[6])?,
    })))
}

enum Row {
    Kept(Comment),
    Other,
    End,
}

pub fn scan_comments(
    reader: &mut dyn BufRead,
    label: &str,
    wanted: &HashSet<u32>,
    on_error: OnError,
    max_line_bytes: usize,
    progress: &Progress,
) -> Result<(Vec<Comment>, CommentFunnel)> {
    let mut funnel = CommentFunnel::default();
    let mut kept = Vec::new();
    let faults = table::for_each_row(
        reader,
        label,
        "comments",
        max_line_bytes,
        on_error,
        progress,
        |text, at| {
            match parse_row(text, wanted).map_err(|m| at.err(m))? {
                None => {}
                Some(Row::End) => return Ok(Seen::End),
                Some(Row::Other) => {
                    funnel.rows_read += 1;
                    funnel.other_posts += 1;
                }
                Some(Row::Kept(c)) => {
                    funnel.rows_read += 1;
                    funnel.kept += 1;
                    kept.push(c);
                }
            }
            Ok(Seen::Other)
        },
    )?;
    table::absorb!(funnel, faults);
    kept.sort_by_key(|c| (c.post_id, c.id));
    Ok((kept, funnel))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<comments>\n\
  <row Id=\"7\" PostId=\"3\" Score=\"2\" Text=\"Please add your research &amp; efforts.\" CreationDate=\"2018-03-12T17:14:46.030\" UserId=\"26\" />\n\
  <row Id=\"13\" PostId=\"7\" Score=\"2\" Text=\"Possible duplicate\" CreationDate=\"2018-03-12T17:28:16.097\" UserId=\"20\" />\n\
  <row Id=\"5\" PostId=\"3\" Score=\"0\" Text=\"first\" CreationDate=\"2018-03-12T17:00:00.000\" UserDisplayName=\"anon\" />\n\
</comments>\n";

    fn scan(text: &str, on_error: OnError) -> Result<(Vec<Comment>, CommentFunnel)> {
        let wanted: HashSet<u32> = [3].into_iter().collect();
        scan_comments(
            &mut text.as_bytes(),
            "Comments.xml",
            &wanted,
            on_error,
            1 << 20,
            &Progress::default(),
        )
    }

    #[test]
    fn keeps_wanted_posts_sorted_and_counts_every_row() {
        let (kept, f) = scan(DUMP, OnError::Fail).expect("scan");
        assert_eq!(kept.iter().map(|c| c.id).collect::<Vec<_>>(), vec![5, 7]);
        assert_eq!(kept[1].text, "Please add your research & efforts.");
        assert_eq!(kept[0].user_name.as_deref(), Some("anon"));
        assert_eq!((f.rows_read, f.kept, f.other_posts), (3, 2, 1));
    }

    #[test]
    fn bad_row_names_line_and_offset_or_is_counted() {
        let bad = DUMP.replace("PostId=\"7\"", "PostId=\"x\"");
        let e = scan(&bad, OnError::Fail).expect_err("bad PostId");
        let msg = e.to_string();
        assert!(
            msg.contains("Comments.xml") && msg.contains("line 4"),
            "{msg}"
        );
        let (kept, f) = scan(&bad, OnError::Skip).expect("skip");
        assert_eq!((kept.len(), f.malformed_rows, f.rows_read), (2, 1, 3));
    }

    #[test]
    fn truncated_file_is_an_error() {
        let cut = &DUMP[..DUMP.len() - 12];
        let e = scan(cut, OnError::Fail).expect_err("truncated");
        assert!(e.to_string().contains("</comments>"), "{e}");
    }
}
