//! Stack Exchange `Users.xml`: display names for attribution. CC BY-SA asks
//! for the author's name; `Posts.xml` carries only the user id (and a name
//! only for deleted users), so the names come from this table.
//!
//! A site scan reads `Posts.xml` first and then only the names of the owners
//! of the kept pairs, in the same pass over a `.7z` (its members are stored
//! in name order, Posts before Users). Every Users row read is counted.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use crate::error::{CoreError, Result};
use crate::filters::Filters;
use crate::input::{self, Container, Progress};
use crate::posts::{self, RowKind};
use crate::scan::{self, Funnel, Pair, ScanOptions};
use crate::table::{self, Seen};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsersFunnel {
    /// A Users.xml was found next to (or inside the archive with) Posts.xml.
    pub found: bool,
    pub rows_read: u64,
    pub malformed_rows: u64,
    /// Owners of kept posts named from Users.xml.
    pub named: u64,
    /// Owners of kept posts with an id that Users.xml does not list.
    pub not_listed: u64,
    pub truncated: bool,
    /// Failed container reads and the bytes they cost (see `scan::Funnel`).
    pub archive_errors: u64,
    pub bytes_lost: u64,
    pub errors: Vec<String>,
}

/// Names of the users in `wanted` (all users when `wanted` is None).
pub fn read_names(
    reader: &mut dyn BufRead,
    label: &str,
    wanted: Option<&HashSet<i64>>,
    opts: &ScanOptions,
    progress: &Progress,
    funnel: &mut UsersFunnel,
) -> Result<HashMap<i64, String>> {
    let mut names = HashMap::new();
    let faults = table::for_each_row(
        reader,
        label,
        "users",
        opts.max_line_bytes,
        opts.on_error,
        progress,
        |text, at| {
            match parse_row(text).map_err(|m| at.err(m))? {
                Row::Frame => {}
                Row::End => return Ok(Seen::End),
                Row::User(id, name) => {
                    funnel.rows_read += 1;
                    if wanted.is_none_or(|w| w.contains(&id)) {
                        if let Some(name) = name {
                            names.insert(id, name);
                        }
                    }
                }
            }
            Ok(Seen::Other)
        },
    )?;
    table::absorb!(funnel, faults);
    Ok(names)
}

enum Row {
    Frame,
    End,
    User(i64, Option<String>),
}

fn parse_row(line: &str) -> std::result::Result<Row, String> {
    let mut id = None;
    let mut name = None;
    let kind = posts::for_each_attribute(line, "users", |key, value| {
        match key {
            "Id" => id = Some(value),
            "DisplayName" => name = Some(value),
            _ => {}
        }
        true
    })?;
    match kind {
        RowKind::Frame => return Ok(Row::Frame),
        RowKind::RootEnd => return Ok(Row::End),
        RowKind::Row => {}
    }
    let id = posts::parse_int(posts::required(id, "Id")?, "Id")?;
    let name = name
        .map(|n| posts::unescape(n).map(|c| c.trim().to_string()))
        .transpose()?
        .filter(|n| !n.is_empty());
    Ok(Row::User(id, name))
}

fn owner_ids(pairs: &[Pair]) -> HashSet<i64> {
    pairs
        .iter()
        .flat_map(|p| [&p.question_owner_id, &p.answer_owner_id])
        .filter_map(|id| id.as_deref().and_then(|s| s.trim().parse().ok()))
        .collect()
}

/// Put the names from Users.xml on the pairs; a name already on the post
/// (deleted users) stays when Users.xml does not list the id.
fn attribute(pairs: &mut [Pair], names: &HashMap<i64, String>, funnel: &mut UsersFunnel) {
    for p in pairs.iter_mut() {
        for (id, name) in [
            (&p.question_owner_id, &mut p.question_owner_name),
            (&p.answer_owner_id, &mut p.answer_owner_name),
        ] {
            let Some(id) = id.as_deref().and_then(|s| s.trim().parse::<i64>().ok()) else {
                continue;
            };
            match names.get(&id) {
                Some(n) => {
                    *name = Some(n.clone());
                    funnel.named += 1;
                }
                None => funnel.not_listed += 1,
            }
        }
    }
}

/// Scan a site dump like [`scan::scan_path`], then name the owners of the
/// kept pairs from the site's Users.xml when there is one.
pub fn scan_site(
    path: &Path,
    filters: &Filters,
    opts: &ScanOptions,
    progress: Arc<Progress>,
) -> Result<(Vec<Pair>, Funnel, UsersFunnel)> {
    let mut users = UsersFunnel::default();
    let file = if path.is_dir() {
        input::find_in_dir(path, "Posts.xml")?
    } else {
        path.to_path_buf()
    };
    if input::detect(&file)? == Container::SevenZ {
        let mut posts: Option<(Vec<Pair>, Funnel)> = None;
        let mut early: Option<HashMap<i64, String>> = None;
        let wanted = |name: &str| {
            let n = input::file_name(name);
            n.eq_ignore_ascii_case("Posts.xml") || n.eq_ignore_ascii_case("Users.xml")
        };
        input::for_each_7z_member(
            &file,
            opts.threads,
            progress.clone(),
            &wanted,
            |name, reader| {
                let label = format!("{}:{}", file.display(), name);
                if input::file_name(name).eq_ignore_ascii_case("Posts.xml") {
                    posts = Some(scan::scan_posts(reader, &label, filters, opts, &progress)?);
                } else {
                    users.found = true;
                    let ids = posts.as_ref().map(|(p, _)| owner_ids(p));
                    // Users before Posts (not how the dumps are packed): keep every name.
                    let names =
                        read_names(reader, &label, ids.as_ref(), opts, &progress, &mut users)?;
                    match posts.as_mut() {
                        Some((pairs, _)) => attribute(pairs, &names, &mut users),
                        None => early = Some(names),
                    }
                }
                Ok(())
            },
        )?;
        let Some((mut pairs, funnel)) = posts else {
            return Err(CoreError::Config(format!(
                "{}: the archive holds no Posts.xml",
                file.display()
            )));
        };
        if let Some(names) = early {
            attribute(&mut pairs, &names, &mut users);
        }
        // Stack Overflow ships one archive per table: stackoverflow.com-Users.7z.
        if let Some(sibling) = users_archive_beside(&file).filter(|_| !users.found) {
            users.found = true;
            let ids = owner_ids(&pairs);
            let names = input::read_site_member_with(
                &sibling,
                "Users.xml",
                opts.threads,
                progress.clone(),
                |r, l| read_names(r, l, Some(&ids), opts, &progress, &mut users),
            )?;
            attribute(&mut pairs, &names, &mut users);
        }
        return Ok((pairs, funnel, users));
    }
    let (mut pairs, funnel) = scan::scan_path(&file, filters, opts, progress.clone())?;
    let dir = file.parent().unwrap_or(Path::new("."));
    if let Ok(users_file) = input::find_in_dir(dir, "Users.xml") {
        users.found = true;
        let ids = owner_ids(&pairs);
        let label = users_file.display().to_string();
        let mut reader = input::open_stream_with(&users_file, opts.threads, progress.clone())?;
        let names = read_names(
            &mut *reader,
            &label,
            Some(&ids),
            opts,
            &progress,
            &mut users,
        )?;
        attribute(&mut pairs, &names, &mut users);
    }
    Ok((pairs, funnel, users))
}

/// `SITE-Users.7z` beside `SITE-Posts.7z`, when it exists.
fn users_archive_beside(posts: &Path) -> Option<std::path::PathBuf> {
    let name = posts.file_name()?.to_str()?;
    let stem = name
        .len()
        .checked_sub("-Posts.7z".len())
        .filter(|&at| name.is_char_boundary(at) && name[at..].eq_ignore_ascii_case("-Posts.7z"))
        .map(|at| &name[..at])?;
    let users = posts.with_file_name(format!("{stem}-Users.7z"));
    users.is_file().then_some(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_table() {
        type Want = std::result::Result<Option<(i64, Option<&'static str>)>, &'static str>;
        let cases: &[(&str, Want)] = &[
            ("<users>", Ok(None)),
            (
                "  <row Id=\"-1\" Reputation=\"1\" DisplayName=\"Community\" />",
                Ok(Some((-1, Some("Community")))),
            ),
            (
                "  <row Id=\"7\" DisplayName=\"Jos&#xE9; &amp; co\" />",
                Ok(Some((7, Some("José & co")))),
            ),
            ("  <row Id=\"8\" DisplayName=\"  \" />", Ok(Some((8, None)))),
            ("  <row DisplayName=\"x\" />", Err("no Id")),
            ("  <row Id=\"x\" />", Err("not an integer")),
        ];
        for (line, want) in cases {
            match (parse_row(line), want) {
                (Ok(Row::Frame), Ok(None)) => {}
                (Ok(Row::User(id, name)), Ok(Some((wid, wname)))) => {
                    assert_eq!((id, name.as_deref()), (*wid, *wname), "{line}");
                }
                (Err(e), Err(frag)) => assert!(e.contains(frag), "{line}: {e}"),
                _ => panic!("{line}: unexpected"),
            }
        }
    }
}
