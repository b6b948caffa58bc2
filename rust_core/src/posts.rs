//! Stack Exchange `Posts.xml`: one `<row .../>` element per line, every
//! attribute optional except the few the join cannot do without. Lines are
//! split by hand (so a bad row can be skipped and the next one read); each
//! row's attributes are read by quick-xml, borrowed, and unescaped only when
//! the caller asks for a value.

use std::borrow::Cow;

use quick_xml::events::BytesStart;

/// Attributes the toolkit uses, as raw (still XML-escaped) text.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawRow<'a> {
    pub id: Option<&'a str>,
    pub post_type: Option<&'a str>,
    pub parent_id: Option<&'a str>,
    pub accepted_answer_id: Option<&'a str>,
    pub score: Option<&'a str>,
    pub title: Option<&'a str>,
    pub body: Option<&'a str>,
    pub tags: Option<&'a str>,
    pub creation_date: Option<&'a str>,
    pub owner_user_id: Option<&'a str>,
    pub owner_display_name: Option<&'a str>,
    pub content_license: Option<&'a str>,
}

/// What one line of the file is.
#[derive(Debug)]
pub enum Line<'a> {
    Row(RawRow<'a>),
    /// Blank, the XML declaration, or the root element's tags.
    Frame,
    RootEnd,
}

/// Classify and parse one line; the error is a message without position,
/// which the caller adds.
pub fn parse_line(line: &str) -> Result<Line<'_>, String> {
    parse_line_until(line, |_| false)
}

/// Like [`parse_line`], but stop reading attributes as soon as `enough` says
/// the row is decided: an answer that cannot become a top answer needs
/// nothing after its Score, and its Body is most of the bytes of a dump.
pub fn parse_line_until<'l>(
    line: &'l str,
    enough: impl Fn(&RawRow<'l>) -> bool,
) -> Result<Line<'l>, String> {
    let mut row = RawRow::default();
    let kind = for_each_attribute(line, "posts", |key, value| {
        let slot = match key {
            "Id" => &mut row.id,
            "PostTypeId" => &mut row.post_type,
            "ParentId" => &mut row.parent_id,
            "AcceptedAnswerId" => &mut row.accepted_answer_id,
            "Score" => &mut row.score,
            "Title" => &mut row.title,
            "Body" => &mut row.body,
            "Tags" => &mut row.tags,
            "CreationDate" => &mut row.creation_date,
            "OwnerUserId" => &mut row.owner_user_id,
            "OwnerDisplayName" => &mut row.owner_display_name,
            "ContentLicense" => &mut row.content_license,
            _ => return true,
        };
        *slot = Some(value);
        !enough(&row)
    })?;
    Ok(match kind {
        RowKind::Row => Line::Row(row),
        RowKind::Frame => Line::Frame,
        RowKind::RootEnd => Line::RootEnd,
    })
}

/// What a line of any Stack Exchange dump table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Row,
    Frame,
    RootEnd,
}

/// Walk the attributes of one `<row .../>` line of a dump table whose root
/// element is `root` (`posts`, `comments`, ...), handing each raw (still
/// escaped) value to `each`, which returns false to stop early.
pub fn for_each_attribute<'l>(
    line: &'l str,
    root: &str,
    mut each: impl FnMut(&str, &'l str) -> bool,
) -> Result<RowKind, String> {
    let t = line.trim_start_matches('\u{feff}').trim();
    if t.is_empty()
        || t.starts_with("<?xml")
        || t.get(..9)
            .is_some_and(|d| d.eq_ignore_ascii_case("<!DOCTYPE"))
        || t.strip_prefix('<').and_then(|r| r.strip_suffix('>')) == Some(root)
    {
        return Ok(RowKind::Frame);
    }
    if t.strip_prefix("</").and_then(|r| r.strip_suffix('>')) == Some(root) {
        return Ok(RowKind::RootEnd);
    }
    if !t.starts_with("<row") {
        return Err(format!(
            "expected a <row .../> element, found {:?}",
            preview(t)
        ));
    }
    let inner = t
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix("/>"))
        .ok_or_else(|| format!("row element is not closed with '/>': {:?}", preview(t)))?;
    let name_len = inner
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(inner.len());
    if &inner[..name_len] != "row" {
        return Err(format!(
            "expected a <row .../> element, found {:?}",
            preview(t)
        ));
    }
    let start = BytesStart::from_content(inner, name_len);
    for attr in start.attributes().with_checks(true) {
        let attr = attr.map_err(|e| format!("bad attribute: {e}"))?;
        let value = match attr.value {
            // Re-slice the line so the value outlives the attribute iterator.
            Cow::Borrowed(s) => {
                let at = (s.as_ptr() as usize).wrapping_sub(inner.as_ptr() as usize);
                inner
                    .get(at..at + s.len())
                    .ok_or("attribute value lies outside the row")?
            }
            Cow::Owned(_) => return Err("attribute value could not be borrowed".into()),
        };
        let key: &str = attr.key.as_ref();
        if !each(key, value) {
            break;
        }
    }
    Ok(RowKind::Row)
}

fn preview(s: &str) -> String {
    s.chars().take(60).collect()
}

/// XML-unescape an attribute value.
pub fn unescape(raw: &str) -> Result<Cow<'_, str>, String> {
    quick_xml::escape::unescape(raw).map_err(|e| format!("bad escape in attribute: {e}"))
}

pub fn required<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, String> {
    value.ok_or_else(|| format!("row has no {name} attribute"))
}

/// Post ids are 32-bit in every Stack Exchange schema.
pub fn parse_id(value: &str, name: &str) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{name}={value:?} is not a post id"))
}

pub fn parse_int(value: &str, name: &str) -> Result<i64, String> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("{name}={value:?} is not an integer"))
}

/// Tags come as `<a><b>` (older dumps) or `|a|b|` (newer ones).
pub fn parse_tags(unescaped: &str) -> Vec<String> {
    unescaped
        .split(['<', '>', '|'])
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per case: line, expected Id (or error fragment).
    #[test]
    fn line_table() {
        let cases: &[(&str, Result<Option<&str>, &str>)] = &[
            ("<?xml version=\"1.0\" encoding=\"utf-8\"?>", Ok(None)),
            ("<posts>", Ok(None)),
            ("\u{feff}<?xml version=\"1.0\"?>", Ok(None)),
            ("<!DOCTYPE posts>", Ok(None)),
            ("<!doctype posts SYSTEM \"posts.dtd\">", Ok(None)),
            ("  <row Id=\"7\" PostTypeId=\"1\" />", Ok(Some("7"))),
            ("  <row PostTypeId=\"2\" Id=\"8\"/>", Ok(Some("8"))),
            ("  <row Id=\"7\" Id=\"8\" />", Err("bad attribute")),
            ("  <row Id=\"7\" PostTypeId=\"1\">", Err("not closed")),
            ("  <rowx Id=\"7\" />", Err("expected a <row")),
            ("  <user Id=\"7\" />", Err("expected a <row")),
            ("  <row Id=\"7 />", Err("bad attribute")),
        ];
        for (line, want) in cases {
            match (parse_line(line), want) {
                (Ok(Line::Row(r)), Ok(Some(id))) => assert_eq!(r.id, Some(*id), "{line}"),
                (Ok(Line::Frame), Ok(None)) => {}
                (Err(e), Err(frag)) => assert!(e.contains(frag), "{line}: {e}"),
                (got, _) => panic!("{line}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn tags_both_forms() {
        assert_eq!(parse_tags("<beer><hops>"), vec!["beer", "hops"]);
        assert_eq!(parse_tags("|beer|hops|"), vec!["beer", "hops"]);
        assert!(parse_tags("").is_empty());
    }

    #[test]
    fn escapes_decode() {
        assert_eq!(
            unescape("&lt;p&gt;a &amp;amp; b&#xA;").expect("ok"),
            "<p>a &amp; b\n"
        );
        assert!(unescape("&bogus;").is_err());
    }
}
