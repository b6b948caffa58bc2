//! Readers for dump files: plain, zstd (with the 2 GiB window Pushshift needs),
//! bzip2 and 7z (streamed member by member, never extracted to disk). Every
//! reader publishes how far into the file on disk it is, for progress bars and
//! for error messages about corrupt containers. Every 7z member read is checked
//! against its size and CRC in the archive, so a damaged or cut member is an
//! error naming the member, never a short file.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::bzip2par::ParallelBz2;
use crate::error::{CoreError, ReadFault, Result};

const BUF: usize = 1 << 20;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Skippable zstd frames: 0x184D2A50..=0x184D2A5F, little-endian.
const ZSTD_SKIPPABLE: [u8; 3] = [0x2A, 0x4D, 0x18];
const SEVENZ_MAGIC: [u8; 6] = [b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C];
/// After "BZh" and the level: a block or an end-of-stream magic.
const BZ2_BLOCK: [u8; 6] = [0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
const BZ2_END: [u8; 6] = [0x17, 0x72, 0x45, 0x38, 0x50, 0x90];
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
    /// A line walk's cancellation poll: `Interrupted` once cancelled, looked
    /// at every 4096th line.
    pub fn poll(&self, line: u64) -> Result<()> {
        if line % 4096 == 0 && self.cancelled() {
            return Err(CoreError::Interrupted);
        }
        Ok(())
    }
    pub fn position(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Plain,
    Zstd,
    Bzip2,
    SevenZ,
}

/// How many threads a reader may use (bzip2 blocks decode on all of them):
/// 0 means every core this process may run on.
pub fn threads_or_all(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Decide by the file's first bytes, so a misnamed file is still read right.
pub fn detect(path: &Path) -> Result<Container> {
    let mut f = File::open(path).map_err(|e| CoreError::io(path, e))?;
    let mut head = [0u8; 10];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CoreError::io(path, e)),
        }
    }
    let zstd_skippable = n >= 4 && (0x50..=0x5F).contains(&head[0]) && head[1..4] == ZSTD_SKIPPABLE;
    let bzip2 = n == 10
        && &head[..3] == b"BZh"
        && (b'1'..=b'9').contains(&head[3])
        && (head[4..10] == BZ2_BLOCK || head[4..10] == BZ2_END);
    Ok(if n >= 4 && (head[..4] == ZSTD_MAGIC || zstd_skippable) {
        Container::Zstd
    } else if n >= 6 && head[..6] == SEVENZ_MAGIC {
        Container::SevenZ
    } else if bzip2 {
        Container::Bzip2
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

/// A plain, zstd or bzip2 file as one decompressed byte stream.
pub fn open_stream(path: &Path, progress: Arc<Progress>) -> Result<Box<dyn BufRead + Send>> {
    open_stream_with(path, 0, progress)
}

/// [`open_stream`] on at most `threads` threads (0: all cores).
pub fn open_stream_with(
    path: &Path,
    threads: usize,
    progress: Arc<Progress>,
) -> Result<Box<dyn BufRead + Send>> {
    let kind = detect(path)?;
    let counted = Counted::open(path, progress)?;
    match kind {
        Container::Plain => Ok(Box::new(BufReader::with_capacity(BUF, counted))),
        Container::Bzip2 => {
            let label = path.display().to_string();
            let dec = ParallelBz2::new(counted, threads_or_all(threads), 0).map_err(|e| {
                CoreError::Archive {
                    path: label,
                    offset: 0,
                    msg: e.to_string(),
                }
            })?;
            Ok(Box::new(BufReader::with_capacity(BUF, dec)))
        }
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
    threads: usize,
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
            let decoder =
                ParallelBz2::new((&mut counted).take(size), threads_or_all(threads), start);
            let mut decoder = decoder.map_err(|e| CoreError::Archive {
                path: label.clone(),
                offset: start,
                msg: e.to_string(),
            })?;
            let last_wanted = files.iter().rposition(|&i| want(&archive.files[i].name));
            for (k, &i) in files.iter().enumerate() {
                let entry = &archive.files[i];
                let mut member = (&mut decoder).take(entry.size);
                if want(&entry.name) {
                    seen += 1;
                    let crc = entry.has_crc.then_some(entry.crc as u32);
                    let checked = Verified::new(&mut member, &entry.name, entry.size, crc, start);
                    let mut buffered = BufReader::with_capacity(BUF, checked);
                    each(&entry.name, &mut buffered)?;
                }
                if Some(k) == last_wanted {
                    break;
                }
                if member.get_ref().failed().is_some() {
                    // reported by the member it broke; every later read repeats it
                    continue;
                }
                io::copy(&mut member, &mut io::sink()).map_err(|e| {
                    let (offset, msg) = match ReadFault::of(&e) {
                        Some(f) => (f.offset, f.msg.clone()),
                        None => (progress.position(), e.to_string()),
                    };
                    CoreError::Archive {
                        path: label.clone(),
                        offset,
                        msg: format!("member {} (read past to the next): {msg}", entry.name),
                    }
                })?;
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
        // sevenz checks the CRC of LZMA members itself; the size is checked here
        let checked = Verified::new(data, &entry.name, entry.size, None, progress.position());
        let mut buffered = BufReader::with_capacity(BUF, checked);
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
    read: impl FnMut(&mut dyn BufRead, &str) -> Result<T>,
) -> Result<T> {
    read_site_member_with(path, member, 0, progress, read)
}

/// [`read_site_member`] on at most `threads` threads (0: all cores).
pub fn read_site_member_with<T>(
    path: &Path,
    member: &str,
    threads: usize,
    progress: Arc<Progress>,
    mut read: impl FnMut(&mut dyn BufRead, &str) -> Result<T>,
) -> Result<T> {
    let file = member_file(path, member)?;
    if let Container::SevenZ = detect(&file)? {
        let mut result = None;
        let wanted = |name: &str| file_name(name).eq_ignore_ascii_case(member);
        for_each_7z_member(&file, threads, progress, &wanted, |name, reader| {
            let label = format!("{}:{}", file.display(), name);
            result = Some(read(reader, &label)?);
            Ok(())
        })?;
        return result.ok_or_else(|| {
            CoreError::Config(format!("{}: the archive holds no {member}", file.display()))
        });
    }
    let mut reader = open_stream_with(&file, threads, progress)?;
    read(&mut *reader, &file.display().to_string())
}

/// The file [`read_site_member`] reads `member` from: the folder's member, or
/// `path` itself (which may be an archive holding it).
fn member_file(path: &Path, member: &str) -> Result<PathBuf> {
    if path.is_dir() {
        find_in_dir(path, member)
    } else {
        Ok(path.to_path_buf())
    }
}

/// The plain file [`read_site_member`] streams `member` from, if it is one:
/// then each byte offset of the stream is that of the file, and a row can be
/// read again from there.
pub fn plain_member(path: &Path, member: &str) -> Result<Option<PathBuf>> {
    let file = member_file(path, member)?;
    Ok(matches!(detect(&file)?, Container::Plain).then_some(file))
}

/// A 7z member as read: its bytes are counted and CRC'd, and a member that
/// ends short of its size or whose CRC differs from the archive's is a read
/// error. Errors passing through learn the member's size, so a scan that
/// skips them can say how many bytes were lost.
struct Verified<'n, R> {
    inner: R,
    name: &'n str,
    size: u64,
    crc: Option<u32>,
    hasher: crc32fast::Hasher,
    got: u64,
    /// Where in the archive the member's packed data starts.
    at: u64,
}

impl<'n, R: Read> Verified<'n, R> {
    fn new(inner: R, name: &'n str, size: u64, crc: Option<u32>, at: u64) -> Self {
        Verified {
            inner,
            name,
            size,
            crc,
            hasher: crc32fast::Hasher::new(),
            got: 0,
            at,
        }
    }

    fn fault(&self, msg: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            ReadFault {
                offset: self.at,
                msg,
                member_size: Some(self.size),
            },
        )
    }
}

impl<R: Read> Read for Verified<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                let (offset, msg) = match ReadFault::of(&e) {
                    Some(f) => (f.offset, f.msg.clone()),
                    None => (self.at, e.to_string()),
                };
                return Err(io::Error::new(
                    e.kind(),
                    ReadFault {
                        offset,
                        msg: format!("member {}: {msg}", self.name),
                        member_size: Some(self.size),
                    },
                ));
            }
        };
        if n == 0 && !buf.is_empty() {
            if self.got < self.size {
                return Err(self.fault(format!(
                    "member {} ends after {} of its {} bytes",
                    self.name, self.got, self.size
                )));
            }
            if let Some(want) = self.crc {
                let got = self.hasher.clone().finalize();
                if got != want {
                    return Err(self.fault(format!(
                        "member {}: CRC mismatch (archive says {want:08x}, data gives {got:08x})",
                        self.name
                    )));
                }
            }
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        self.got += n as u64;
        Ok(n)
    }
}

/// The error a scan reports for a failed read of `label` after `decompressed`
/// bytes of whole lines: at the compressed offset the fault names, else at how
/// far the reader got.
pub fn read_error(
    label: &str,
    error: &io::Error,
    decompressed: u64,
    progress: &Progress,
) -> CoreError {
    let offset = ReadFault::of(error).map_or(progress.position(), |f| f.offset);
    CoreError::Archive {
        path: label.to_string(),
        offset,
        msg: format!("{error} (after byte {decompressed} of the decompressed data)"),
    }
}

/// Bytes a scan loses by stopping at a failed read after `decompressed` bytes:
/// of the member (decompressed) when its size is known, else of the file on
/// disk (compressed) from where the reader stopped.
pub fn bytes_lost(error: &io::Error, decompressed: u64, progress: &Progress) -> u64 {
    match ReadFault::of(error).and_then(|f| f.member_size) {
        Some(size) => size.saturating_sub(decompressed),
        None => progress
            .total
            .load(Ordering::Relaxed)
            .saturating_sub(progress.position()),
    }
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

    fn coffee_rows() -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../lima/samples/stackexchange/coffee.stackexchange.com/Posts.xml");
        std::fs::read(path).expect("coffee Posts.xml")[..20_000].to_vec()
    }

    #[test]
    fn members_are_checked_against_size_and_crc() {
        let data = coffee_rows();
        let crc = crc32fast::hash(&data);
        let size = data.len() as u64;
        let read = |inner: &[u8], size: u64, crc: Option<u32>| {
            let mut out = Vec::new();
            Verified::new(inner, "Posts.xml", size, crc, 32)
                .read_to_end(&mut out)
                .map(|_| out)
        };
        assert_eq!(read(&data, size, Some(crc)).expect("good member"), data);
        let wrong = read(&data, size, Some(crc ^ 1)).expect_err("bad CRC");
        let fault = ReadFault::of(&wrong).expect("a fault");
        assert!(
            fault.msg.contains("member Posts.xml: CRC mismatch"),
            "{}",
            fault.msg
        );
        assert_eq!((fault.offset, fault.member_size), (32, Some(size)));
        let short = read(&data[..1000], size, Some(crc)).expect_err("short member");
        let fault = ReadFault::of(&short).expect("a fault");
        assert!(
            fault.msg.contains("ends after 1000 of its"),
            "{}",
            fault.msg
        );
        // an error from below keeps its offset and learns the member
        let e = read_error("a.7z:Posts.xml", &short, 1000, &Progress::default());
        assert!(e
            .to_string()
            .starts_with("a.7z:Posts.xml: byte 32 of the compressed file"));
        assert_eq!(bytes_lost(&short, 1000, &Progress::default()), size - 1000);
    }
}
