//! What a deploy reads: a directory on disk (`fazt app deploy`) or a zip body
//! (`POST /api/apps/<name>`), turned into checked [`NewFile`]s. Both follow
//! one rule: every path goes through [`FilePath::parse`]; hidden files
//! (`.env`, `.git/…`, but not `.well-known/`) are skipped; only regular files
//! are read (links, FIFOs, sockets and devices are refused); a path may
//! appear once; sizes are checked while reading, since a zip may lie about
//! them, and a zip entry may not expand more than [`MAX_RATIO`] times.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use std::collections::HashSet;

use fazt_shared::app::{is_hidden_name, AppError, FilePath};
use fazt_shared::store::apps::{DeployError, NewFile, SizeLimits};

/// Most files one app may have.
pub const MAX_FILES: usize = 10_000;

/// Most a zip entry may expand, uncompressed over compressed size; real
/// files stay far below, a zip bomb far above.
pub const MAX_RATIO: u64 = 200;

/// Entries this small are never refused for their ratio (a file of zeros).
const RATIO_FLOOR: u64 = 1024 * 1024;

/// Why deploy input was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A path is unsafe or malformed.
    #[error(transparent)]
    Path(#[from] AppError),
    /// Sizes or duplicates.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// Too many files.
    #[error("the app has more than {MAX_FILES} files")]
    TooManyFiles,
    /// A symbolic link.
    #[error("{0} is a symbolic link; deploy real files only")]
    Link(String),
    /// A FIFO, socket or device: reading it could block or never end.
    #[error("{0} is not a regular file; deploy real files only")]
    NotRegular(String),
    /// Two entries with one path (zips allow it; which one wins is unclear).
    #[error("{0} appears twice in the upload")]
    Duplicate(String),
    /// The zip's directory lists more entries than distinct names: the zip
    /// library keeps only one entry per name, so say so instead.
    #[error("the upload has several entries with the same name")]
    DuplicateEntries,
    /// A zip entry that expands too much.
    #[error("{0} expands more than {MAX_RATIO} times; refusing a possible zip bomb")]
    Ratio(String),
    /// The zip is not readable. The library's own text is not shown: it
    /// describes the parser, not the user's mistake.
    #[error("the upload is not a valid zip archive")]
    BadZip,
    /// A directory could not be read.
    #[error("{path}: {error}")]
    Io {
        /// Which path.
        path: String,
        /// Why.
        error: std::io::Error,
    },
}

/// Tracks sizes and paths while files are read.
struct Budget<'a> {
    limits: &'a SizeLimits,
    total: u64,
    files: Vec<NewFile>,
    seen: HashSet<FilePath>,
}

impl<'a> Budget<'a> {
    fn new(limits: &'a SizeLimits) -> Budget<'a> {
        Budget {
            limits,
            total: 0,
            files: Vec::new(),
            seen: HashSet::new(),
        }
    }

    fn admit_size(&self, path: &str, size: u64) -> Result<(), InputError> {
        if size > self.limits.max_file_size {
            return Err(DeployError::FileTooLarge {
                path: path.to_string(),
                size,
                max: self.limits.max_file_size,
            }
            .into());
        }
        if self.total + size > self.limits.max_site_size {
            return Err(DeployError::SiteTooLarge {
                size: self.total + size,
                max: self.limits.max_site_size,
            }
            .into());
        }
        if self.files.len() >= MAX_FILES {
            return Err(InputError::TooManyFiles);
        }
        Ok(())
    }

    /// Reads at most the file limit + 1 byte (and at most `expand_max` + 1),
    /// so a lying header cannot make us read or allocate more than allowed.
    fn push(
        &mut self,
        path: FilePath,
        reader: &mut dyn Read,
        claimed: u64,
        expand_max: Option<u64>,
    ) -> Result<(), InputError> {
        if !self.seen.insert(path.clone()) {
            return Err(InputError::Duplicate(path.to_string()));
        }
        self.admit_size(path.as_str(), claimed)?;
        let cap = (self.limits.max_file_size + 1).min(expand_max.map_or(u64::MAX, |m| m + 1));
        let mut content = Vec::with_capacity(claimed.min(1 << 20) as usize);
        reader
            .take(cap)
            .read_to_end(&mut content)
            .map_err(|error| InputError::Io {
                path: path.to_string(),
                error,
            })?;
        if expand_max.is_some_and(|m| content.len() as u64 > m) {
            return Err(InputError::Ratio(path.to_string()));
        }
        self.admit_size(path.as_str(), content.len() as u64)?;
        self.total += content.len() as u64;
        self.files.push(NewFile { path, content });
        Ok(())
    }
}

/// Files of a zip archive held in memory. Directory entries, hidden files
/// and macOS metadata (`__MACOSX/`) are skipped.
pub fn from_zip(bytes: &[u8], limits: &SizeLimits) -> Result<Vec<NewFile>, InputError> {
    let bad_zip = |e: zip::result::ZipError| {
        tracing::debug!(error = %e, "unreadable zip upload");
        InputError::BadZip
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(bad_zip)?;
    if archive.len() > MAX_FILES * 2 {
        return Err(InputError::TooManyFiles);
    }
    if central_directory_entries(bytes).is_some_and(|n| n != archive.len() as u64) {
        return Err(InputError::DuplicateEntries);
    }
    let mut budget = Budget::new(limits);
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(bad_zip)?;
        let name = entry.name().map_err(bad_zip)?.into_owned();
        if entry.is_dir() || name.starts_with("__MACOSX/") {
            continue;
        }
        if entry.is_symlink() {
            return Err(InputError::Link(name));
        }
        let path = FilePath::parse(name.strip_prefix("./").unwrap_or(&name))?;
        if path.is_hidden() {
            continue;
        }
        let claimed = entry.size();
        let expand_max = (entry.compressed_size().saturating_mul(MAX_RATIO)).max(RATIO_FLOOR);
        budget.push(path, &mut entry, claimed, Some(expand_max))?;
    }
    if budget.files.is_empty() {
        return Err(DeployError::Empty.into());
    }
    Ok(budget.files)
}

/// The entry count a zip's end-of-central-directory record declares
/// (APPNOTE.TXT 4.3.16, and 4.3.14 for zip64), read from the raw bytes:
/// the zip library collapses entries with one name into one, and the count
/// is how to notice. `None` when the record cannot be found.
fn central_directory_entries(bytes: &[u8]) -> Option<u64> {
    const EOCD: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
    const ZIP64_LOCATOR: [u8; 4] = [0x50, 0x4b, 0x06, 0x07];
    const ZIP64_EOCD: [u8; 4] = [0x50, 0x4b, 0x06, 0x06];
    // The record is 22 bytes plus a comment of at most 65535.
    let from = bytes.len().saturating_sub(22 + 65_535);
    let at = (from..=bytes.len().checked_sub(22)?)
        .rev()
        .find(|&i| bytes[i..i + 4] == EOCD)?;
    let u16_at = |i: usize| Some(u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?));
    let u64_at = |i: usize| Some(u64::from_le_bytes(bytes.get(i..i + 8)?.try_into().ok()?));
    let total = u16_at(at + 10)?;
    if total != u16::MAX {
        return Some(u64::from(total));
    }
    let locator = at.checked_sub(20)?;
    if bytes.get(locator..locator + 4)? != ZIP64_LOCATOR {
        return None;
    }
    let record = usize::try_from(u64_at(locator + 8)?).ok()?;
    if bytes.get(record..record + 4)? != ZIP64_EOCD {
        return None;
    }
    u64_at(record + 32)
}

/// Files of a directory, recursively. Hidden entries (`.git`, `.env`) are
/// skipped, except `.well-known`.
pub fn from_dir(root: &Path, limits: &SizeLimits) -> Result<Vec<NewFile>, InputError> {
    let mut budget = Budget::new(limits);
    walk(root, root, &mut budget)?;
    if budget.files.is_empty() {
        return Err(DeployError::Empty.into());
    }
    budget.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(budget.files)
}

fn walk(root: &Path, dir: &Path, budget: &mut Budget<'_>) -> Result<(), InputError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |error| InputError::Io { path, error }
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_hidden_name(&name) {
            continue;
        }
        let kind = entry.file_type().map_err(io(&path))?;
        let rel = path
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or(name);
        if kind.is_symlink() {
            return Err(InputError::Link(rel));
        }
        if kind.is_dir() {
            walk(root, &path, budget)?;
            continue;
        }
        if !kind.is_file() {
            return Err(InputError::NotRegular(rel));
        }
        let file_path = FilePath::parse(&rel)?;
        let size = entry.metadata().map_err(io(&path))?.len();
        // Opened without following a link and without blocking on a FIFO
        // swapped in since the listing, then checked again.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(io(&path))?;
        if !file.metadata().map_err(io(&path))?.is_file() {
            return Err(InputError::NotRegular(rel));
        }
        budget.push(file_path, &mut file, size, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LIMITS: SizeLimits = SizeLimits {
        max_file_size: 100,
        max_site_size: 150,
        max_vfs: 1000,
    };

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            for (name, data) in entries {
                w.start_file(*name, zip::write::SimpleFileOptions::default())
                    .expect("start");
                w.write_all(data).expect("write");
            }
            w.finish().expect("finish");
        }
        out.into_inner()
    }

    #[test]
    fn zip_files_are_read_and_junk_and_hidden_files_skipped() {
        let z = zip_of(&[
            ("index.html", b"<h1>hi</h1>"),
            ("api/main.js", b"1"),
            ("__MACOSX/._x", b"junk"),
            ("a/.DS_Store", b"junk"),
            (".env", b"SECRET=1"),
            (".git/config", b"secret"),
            ("a/.htpasswd", b"secret"),
            (".well-known/security.txt", b"hi"),
        ]);
        let files = from_zip(&z, &LIMITS).expect("zip");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["index.html", "api/main.js", ".well-known/security.txt"]
        );
    }

    #[test]
    fn duplicate_zip_entries_are_refused() {
        // Zip writers refuse duplicate names; rename the second entry in
        // the bytes (names are not covered by the CRC).
        let mut z = zip_of(&[("a.txt", b"first"), ("b.txt", b"second")]);
        for i in 0..z.len().saturating_sub(5) {
            if &z[i..i + 5] == b"b.txt" {
                z[i] = b'a';
            }
        }
        let err = from_zip(&z, &LIMITS).unwrap_err();
        assert!(matches!(err, InputError::DuplicateEntries), "{err}");
        let dotted = zip_of(&[("a.txt", b"first"), ("./a.txt", b"second")]);
        let err = from_zip(&dotted, &LIMITS).unwrap_err();
        assert!(
            matches!(err, InputError::Duplicate(ref p) if p == "a.txt"),
            "{err}"
        );
        let fine = zip_of(&[("a.txt", b"first"), ("b.txt", b"second")]);
        assert_eq!(central_directory_entries(&fine), Some(2));
    }

    #[test]
    fn zip_bombs_are_refused_without_reading_them_whole() {
        let limits = SizeLimits {
            max_file_size: 64 << 20,
            max_site_size: 64 << 20,
            max_vfs: 64 << 20,
        };
        let zeros = vec![0u8; 8 << 20];
        let mut out = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            let deflate = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            w.start_file("zeros.bin", deflate).expect("start");
            w.write_all(&zeros).expect("write");
            w.finish().expect("finish");
        }
        let z = out.into_inner();
        assert!(
            z.len() < 100_000,
            "the test zip should be small: {}",
            z.len()
        );
        let err = from_zip(&z, &limits).unwrap_err();
        assert!(matches!(err, InputError::Ratio(_)), "{err}");
        // A file of zeros under the floor is fine.
        let small = zip_of(&[("zeros.bin", &[0u8; 1000][..])]);
        assert!(from_zip(&small, &limits).is_ok());
    }

    #[test]
    fn library_text_is_not_echoed_for_a_bad_zip() {
        let err = from_zip(b"PK\x03\x04 not really", &LIMITS).unwrap_err();
        assert_eq!(err.to_string(), "the upload is not a valid zip archive");
    }

    #[test]
    fn hostile_zips_are_refused() {
        for (entries, want) in [
            (vec![("../evil.txt", &b"x"[..])], "invalid file path"),
            (vec![("/etc/passwd", &b"x"[..])], "absolute"),
            (vec![("a/../../x", &b"x"[..])], "'..'"),
            (vec![("C:/x", &b"x"[..])], "drive"),
            (vec![("a\\..\\x", &b"x"[..])], "backslash"),
            (vec![("big", &[0u8; 101][..])], "max_file_size"),
            (
                vec![("a", &[0u8; 80][..]), ("b", &[0u8; 80][..])],
                "max_site_size",
            ),
        ] {
            let z = zip_of(&entries);
            let err = from_zip(&z, &LIMITS)
                .and_then(|files| {
                    fazt_shared::store::apps::check_sizes(&files, &LIMITS)?;
                    Ok(files)
                })
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{entries:?}: {err}");
        }
        assert!(matches!(
            from_zip(b"not a zip", &LIMITS),
            Err(InputError::BadZip)
        ));
        assert!(from_zip(&zip_of(&[]), &LIMITS).is_err(), "empty");
    }

    #[test]
    fn directories_skip_hidden_and_refuse_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        std::fs::create_dir_all(p.join("api/lib")).expect("mkdir");
        std::fs::create_dir_all(p.join(".git")).expect("mkdir");
        std::fs::create_dir_all(p.join(".well-known")).expect("mkdir");
        std::fs::write(p.join("index.html"), "x").expect("write");
        std::fs::write(p.join("api/main.js"), "1").expect("write");
        std::fs::write(p.join("api/lib/a.js"), "2").expect("write");
        std::fs::write(p.join(".git/config"), "secret").expect("write");
        std::fs::write(p.join(".env"), "secret").expect("write");
        std::fs::write(p.join(".well-known/security.txt"), "hi").expect("write");
        let files = from_dir(p, &LIMITS).expect("dir");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".well-known/security.txt",
                "api/lib/a.js",
                "api/main.js",
                "index.html"
            ]
        );
        std::os::unix::fs::symlink("/etc/passwd", p.join("passwd")).expect("symlink");
        let err = from_dir(p, &LIMITS).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }

    #[test]
    fn a_fifo_in_a_folder_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("index.html"), "x").expect("write");
        nix::unistd::mkfifo(&dir.path().join("pipe"), nix::sys::stat::Mode::S_IRWXU)
            .expect("mkfifo");
        let err = from_dir(dir.path(), &LIMITS).unwrap_err();
        assert!(
            matches!(err, InputError::NotRegular(ref p) if p == "pipe"),
            "{err}"
        );
    }
}
