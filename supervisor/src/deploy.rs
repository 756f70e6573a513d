//! What a deploy reads: a directory on disk (`fazt app deploy`) or a zip body
//! (`POST /api/apps/<name>`), turned into checked [`NewFile`]s. Every path
//! goes through [`FilePath::parse`], sizes are checked while reading (a zip
//! may lie about them), and links are refused, so nothing outside the app's
//! folder is ever read or written.

use std::io::Read;
use std::path::Path;

use fazt_shared::app::{AppError, FilePath};
use fazt_shared::store::apps::{DeployError, NewFile, SizeLimits};

/// Most files one app may have.
pub const MAX_FILES: usize = 10_000;

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
    /// The zip is not readable.
    #[error("the upload is not a valid zip archive: {0}")]
    BadZip(String),
    /// A directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// Which path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Tracks sizes while files are read.
struct Budget<'a> {
    limits: &'a SizeLimits,
    total: u64,
    files: Vec<NewFile>,
}

impl Budget<'_> {
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

    /// Reads at most the file limit + 1 byte, so a lying header cannot make
    /// us read (or allocate) more than allowed.
    fn push(
        &mut self,
        path: FilePath,
        reader: &mut dyn Read,
        claimed: u64,
    ) -> Result<(), InputError> {
        self.admit_size(path.as_str(), claimed)?;
        let mut content = Vec::with_capacity(claimed.min(1 << 20) as usize);
        reader
            .take(self.limits.max_file_size + 1)
            .read_to_end(&mut content)
            .map_err(|source| InputError::Io {
                path: path.to_string(),
                source,
            })?;
        self.admit_size(path.as_str(), content.len() as u64)?;
        self.total += content.len() as u64;
        self.files.push(NewFile { path, content });
        Ok(())
    }
}

/// Files of a zip archive held in memory. Directory entries and macOS
/// metadata (`__MACOSX/`, `.DS_Store`) are skipped.
pub fn from_zip(bytes: &[u8], limits: &SizeLimits) -> Result<Vec<NewFile>, InputError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| InputError::BadZip(e.to_string()))?;
    if archive.len() > MAX_FILES * 2 {
        return Err(InputError::TooManyFiles);
    }
    let mut budget = Budget {
        limits,
        total: 0,
        files: Vec::new(),
    };
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| InputError::BadZip(e.to_string()))?;
        let name = entry
            .name()
            .map_err(|e| InputError::BadZip(e.to_string()))?
            .into_owned();
        if entry.is_dir() || name.starts_with("__MACOSX/") || name.ends_with(".DS_Store") {
            continue;
        }
        if entry.is_symlink() {
            return Err(InputError::Link(name));
        }
        let path = FilePath::parse(name.strip_prefix("./").unwrap_or(&name))?;
        let claimed = entry.size();
        budget.push(path, &mut entry, claimed)?;
    }
    if budget.files.is_empty() {
        return Err(DeployError::Empty.into());
    }
    Ok(budget.files)
}

/// Files of a directory, recursively. Hidden entries (`.git`, `.env`) are
/// skipped, except `.well-known`.
pub fn from_dir(root: &Path, limits: &SizeLimits) -> Result<Vec<NewFile>, InputError> {
    let mut budget = Budget {
        limits,
        total: 0,
        files: Vec::new(),
    };
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
        move |source| InputError::Io { path, source }
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name != ".well-known" {
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
        let file_path = FilePath::parse(&rel)?;
        let size = entry.metadata().map_err(io(&path))?.len();
        let mut file = std::fs::File::open(&path).map_err(io(&path))?;
        budget.push(file_path, &mut file, size)?;
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
    fn zip_files_are_read_and_junk_skipped() {
        let z = zip_of(&[
            ("index.html", b"<h1>hi</h1>"),
            ("api/main.js", b"1"),
            ("__MACOSX/._x", b"junk"),
            ("a/.DS_Store", b"junk"),
        ]);
        let files = from_zip(&z, &LIMITS).expect("zip");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["index.html", "api/main.js"]);
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
            Err(InputError::BadZip(_))
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
}
