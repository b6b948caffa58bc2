//! Readers for dump files: plain, zstd (with the 2 GiB window Pushshift needs)
//! and 7z (streamed member by member, never extracted to disk). Every reader
//! publishes how far into the file on disk it is, for progress bars and for
//! error messages about corrupt containers.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::bzip2par::ParallelBz2;
use crate::error::{CoreError, Result};

const BUF: usize = 1 << 20;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
const SEVENZ_MAGIC: [u8; 6] = [b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C];
/// 2^31 bytes: the window Pushshift archives were written with (`--long=31`).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 31;

/// Shared between a running scan and whoever draws its progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of the current file on disk consumed so far.
    pub bytes: AtomicU64,
    /// Size of the current file on disk.
    pub total: AtomicU64,
    /// Bytes of all files finished so far.
    pub done: AtomicU64,
    pub cancel: AtomicBool,
}

impl Progress {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
    pub fn position(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Plain,
    Zstd,
    SevenZ,
}

/// Decide by the file's first bytes, so a misnamed file is still read right.
pub fn detect(path: &Path) -> Result<Container> {
    let mut f = File::open(path).map_err(|e| CoreError::io(path, e))?;
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CoreError::io(path, e)),
        }
    }
    Ok(if n >= 4 && head[..4] == ZSTD_MAGIC {
        Container::Zstd
    } else if n == 6 && head == SEVENZ_MAGIC {
        Container::SevenZ
    } else {
        Container::Plain
    })
}

/// A file on disk whose position is published to a [`Progress`].
pub struct Counted {
    file: File,
    pos: u64,
    progress: Arc<Progress>,
}

impl Counted {
    pub fn open(path: &Path, progress: Arc<Progress>) -> Result<Self> {
        let file = File::open(path).map_err(|e| CoreError::io(path, e))?;
        let len = file.metadata().map_err(|e| CoreError::io(path, e))?.len();
        progress.total.store(len, Ordering::Relaxed);
        progress.bytes.store(0, Ordering::Relaxed);
        Ok(Counted {
            file,
            pos: 0,
            progress,
        })
    }
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        self.progress.bytes.store(self.pos, Ordering::Relaxed);
        Ok(n)
    }
}

impl Seek for Counted {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = self.file.seek(to)?;
        self.progress.bytes.store(self.pos, Ordering::Relaxed);
        Ok(self.pos)
    }
}

/// A plain or zstd file as one decompressed byte stream.
pub fn open_stream(path: &Path, progress: Arc<Progress>) -> Result<Box<dyn BufRead + Send>> {
    let kind = detect(path)?;
    let counted = Counted::open(path, progress)?;
    match kind {
        Container::Plain => Ok(Box::new(BufReader::with_capacity(BUF, counted))),
        Container::Zstd => {
            let mut dec =
                zstd::stream::read::Decoder::new(counted).map_err(|e| CoreError::io(path, e))?;
            dec.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| CoreError::io(path, e))?;
            Ok(Box::new(BufReader::with_capacity(BUF, dec)))
        }
        Container::SevenZ => Err(CoreError::Config(format!(
            "{}: a 7z archive holds several files; name the member to read",
            path.display()
        ))),
    }
}

/// Stream the members of a 7z archive whose name `want` accepts, in archive
/// order, without writing anything to disk. Solid archives decode the members
/// packed before the wanted one, as they must; BZip2 blocks (what the Stack
/// Exchange dumps use) are decoded on every core, and decoding stops after the
/// last wanted member.
pub fn for_each_7z_member<F>(
    path: &Path,
    progress: Arc<Progress>,
    want: &dyn Fn(&str) -> bool,
    mut each: F,
) -> Result<usize>
where
    F: FnMut(&str, &mut dyn BufRead) -> Result<()>,
{
    let label = path.display().to_string();
    let archive_err = |e: &dyn std::fmt::Display, progress: &Progress| CoreError::Archive {
        path: label.clone(),
        offset: progress.position(),
        msg: e.to_string(),
    };
    let mut counted = Counted::open(path, progress.clone())?;
    let archive = sevenz_rust2::Archive::read(&mut counted, &sevenz_rust2::Password::empty())
        .map_err(|e| archive_err(&e, &progress))?;
    if let Some(plan) = bzip2_plan(&archive, want) {
        let mut seen = 0;
        for (block, files) in plan {
            let map = &archive.stream_map;
            let pack = map.block_first_pack_stream_index()[block];
            let start = sevenz_rust2::SIGNATURE_HEADER_SIZE
                + archive.pack_pos()
                + map.pack_stream_offsets()[pack];
            let size = archive.pack_sizes()[pack];
            counted
                .seek(SeekFrom::Start(start))
                .map_err(|e| CoreError::io(path, e))?;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let mut decoder = ParallelBz2::new((&mut counted).take(size), threads)
                .map_err(|e| archive_err(&e, &progress))?;
            let last_wanted = files.iter().rposition(|&i| want(&archive.files[i].name));
            for (k, &i) in files.iter().enumerate() {
                let entry = &archive.files[i];
                let mut member = (&mut decoder).take(entry.size);
                if want(&entry.name) {
                    seen += 1;
                    let mut buffered = BufReader::with_capacity(BUF, &mut member);
                    each(&entry.name, &mut buffered)?;
                }
                if Some(k) == last_wanted {
                    break;
                }
                io::copy(&mut member, &mut io::sink()).map_err(|e| archive_err(&e, &progress))?;
            }
        }
        return Ok(seen);
    }
    counted
        .seek(SeekFrom::Start(0))
        .map_err(|e| CoreError::io(path, e))?;
    let mut reader = sevenz_rust2::ArchiveReader::new(counted, sevenz_rust2::Password::empty())
        .map_err(|e| archive_err(&e, &progress))?;
    // LZMA and LZMA2 decode on one core, like `7z x` does for them.
    reader.set_thread_count(1);
    let mut inner: Option<CoreError> = None;
    let mut seen = 0usize;
    let outcome = reader.for_each_entries(|entry, data| {
        if entry.is_directory || !want(&entry.name) {
            return Ok(true);
        }
        seen += 1;
        let mut buffered = BufReader::with_capacity(BUF, data);
        match each(&entry.name, &mut buffered) {
            Ok(()) => Ok(true),
            Err(e) => {
                inner = Some(e);
                Ok(false)
            }
        }
    });
    if let Some(e) = inner {
        return Err(e);
    }
    outcome.map_err(|e| archive_err(&e, &progress))?;
    Ok(seen)
}

/// For archives whose wanted members all sit in single-coder BZip2 blocks:
/// each such block with the indices of its files, in archive order.
fn bzip2_plan(
    archive: &sevenz_rust2::Archive,
    want: &dyn Fn(&str) -> bool,
) -> Option<Vec<(usize, Vec<usize>)>> {
    let mut plan: Vec<(usize, Vec<usize>)> = Vec::new();
    for (block, b) in archive.blocks.iter().enumerate() {
        let files: Vec<usize> = (0..archive.files.len())
            .filter(|&i| archive.stream_map.file_block_index[i] == Some(block))
            .collect();
        if !files.iter().any(|&i| want(&archive.files[i].name)) {
            continue;
        }
        let single_bzip2 = b.coders.len() == 1
            && b.coders[0].encoder_method_id() == sevenz_rust2::EncoderMethod::ID_BZIP2;
        if !single_bzip2 {
            return None;
        }
        plan.push((block, files));
    }
    Some(plan)
}

/// Read one member of a site dump (`Posts.xml`, `Comments.xml`, ...): from a
/// `.7z` archive, a folder holding it, or the file itself (plain or zstd).
/// `read` gets the stream and a label naming file (and member) for errors.
pub fn read_site_member<T>(
    path: &Path,
    member: &str,
    progress: Arc<Progress>,
    mut read: impl FnMut(&mut dyn BufRead, &str) -> Result<T>,
) -> Result<T> {
    let file = if path.is_dir() {
        find_in_dir(path, member)?
    } else {
        path.to_path_buf()
    };
    if let Container::SevenZ = detect(&file)? {
        let mut result = None;
        let wanted = |name: &str| file_name(name).eq_ignore_ascii_case(member);
        for_each_7z_member(&file, progress, &wanted, |name, reader| {
            let label = format!("{}:{}", file.display(), name);
            result = Some(read(reader, &label)?);
            Ok(())
        })?;
        return result.ok_or_else(|| {
            CoreError::Config(format!("{}: the archive holds no {member}", file.display()))
        });
    }
    let mut reader = open_stream(&file, progress)?;
    read(&mut *reader, &file.display().to_string())
}

/// The last path component, for matching member and file names.
pub fn file_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// Find `Posts.xml` (any case, optionally compressed) in a dump folder.
pub fn find_in_dir(dir: &Path, wanted: &str) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).map_err(|e| CoreError::io(dir, e))?;
    let mut found: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CoreError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_lowercase();
        let w = wanted.to_lowercase();
        if name == w || name == format!("{w}.zst") {
            found.push(entry.path());
        }
    }
    found.sort();
    found.into_iter().next().ok_or_else(|| {
        CoreError::io(
            &dir.join(wanted),
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no {wanted} in this folder"),
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn zstd_long_window_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.zst");
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        enc.long_distance_matching(true).expect("ldm");
        enc.window_log(31).expect("window");
        enc.write_all(&data).expect("write");
        std::fs::write(&path, enc.finish().expect("finish")).expect("save");
        assert_eq!(detect(&path).expect("detect"), Container::Zstd);
        let progress = Arc::new(Progress::default());
        let mut out = Vec::new();
        open_stream(&path, progress.clone())
            .expect("open")
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(out, data);
        assert_eq!(progress.position(), progress.total.load(Ordering::Relaxed));
    }

    #[test]
    fn missing_file_is_io_error_with_path() {
        let err = detect(Path::new("/nonexistent/Posts.xml")).expect_err("must fail");
        assert_eq!(err.io_kind(), Some(io::ErrorKind::NotFound));
        assert!(err.to_string().contains("/nonexistent/Posts.xml"));
    }

    #[test]
    fn member_names() {
        assert_eq!(file_name("a/b/Posts.xml"), "Posts.xml");
        assert_eq!(file_name("Posts.xml"), "Posts.xml");
    }
}
