//! Walking the folder tree: splits, class folders, image files and what is ignored.

use crate::{Error, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{IMAGE_EXTENSIONS, MAX_CLASSES};

/// How deep sub-folders inside a class folder are followed (a guard against symbolic-link loops).
const MAX_DEPTH: usize = 16;

/// A modification time that never matches a cached one (the platform does not report modification times).
pub(crate) const UNKNOWN_MTIME: i128 = i128::MIN;

/// One image file found in the tree.
#[derive(Debug, Clone)]
pub(crate) struct FileEntry {
    /// Its path relative to the root, e.g. `train/cat/00001.png`.
    pub rel: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time in nanoseconds since the Unix epoch ([`UNKNOWN_MTIME`] when unknown).
    pub mtime_ns: i128,
    /// The index of its class in the training set's sorted class names.
    pub label: u8,
}

/// The image files of one split, class by class (classes in label order, files in path order within a class).
#[derive(Debug, Default)]
pub(crate) struct SplitFiles {
    pub files: Vec<FileEntry>,
}

/// What the walk found.
#[derive(Debug)]
pub(crate) struct Tree {
    /// The training classes, sorted by the bytes of their UTF-8 names.
    pub class_names: Vec<String>,
    pub train: SplitFiles,
    pub val: Option<SplitFiles>,
    pub test: SplitFiles,
    /// Files that are not images by their extension (or lie outside a class folder), relative to the root.
    pub ignored: Vec<PathBuf>,
}

pub(crate) fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

pub(crate) fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(OsStr::to_str)
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The non-hidden sub-folders of `dir` (links followed) and its other non-hidden entries, each sorted by name.
fn list_dir(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut dirs = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if is_hidden(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
        let is_dir = if ft.is_symlink() {
            // A dangling link is not a folder; it is reported with the other files.
            std::fs::metadata(&path).is_ok_and(|m| m.is_dir())
        } else {
            ft.is_dir()
        };
        if is_dir {
            dirs.push(path);
        } else {
            others.push(path);
        }
    }
    dirs.sort();
    others.sort();
    Ok((dirs, others))
}

/// True when `dir` is a folder holding at least one non-hidden sub-folder.
pub(crate) fn has_class_folders(dir: &Path) -> bool {
    list_dir(dir).is_ok_and(|(dirs, _)| !dirs.is_empty())
}

fn relative(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

/// The class folders of one split: `(name, path)` sorted by the name's bytes, plus the split's loose files.
/// A class's name and folder.
type ClassFolder = (String, PathBuf);

fn class_folders(root: &Path, split_dir: &Path) -> Result<(Vec<ClassFolder>, Vec<PathBuf>)> {
    let (dirs, others) = list_dir(split_dir)?;
    let mut classes = Vec::with_capacity(dirs.len());
    for d in dirs {
        let name = d.file_name().unwrap_or_default();
        let Some(name) = name.to_str() else {
            return Err(Error::Folder {
                path: d.clone(),
                message: "a class folder's name must be valid UTF-8 (it becomes the class name)"
                    .into(),
            });
        };
        classes.push((name.to_string(), d.clone()));
    }
    // Byte order of the UTF-8 names (`String`'s order), the same on every platform.
    classes.sort_by(|a, b| a.0.cmp(&b.0));
    let loose = others.iter().map(|p| relative(root, p)).collect();
    Ok((classes, loose))
}

fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    match meta.modified() {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        },
        Err(_) => UNKNOWN_MTIME,
    }
}

/// Appends the image files under `dir` (sub-folders followed, hidden entries skipped) to `files`, and the
/// other files to `ignored`.
fn walk_class(
    root: &Path,
    dir: &Path,
    label: u8,
    depth: usize,
    files: &mut Vec<FileEntry>,
    ignored: &mut Vec<PathBuf>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::Folder {
            path: dir.to_path_buf(),
            message: format!(
                "folders nested more than {MAX_DEPTH} deep inside a class folder (a symbolic-link loop?)"
            ),
        });
    }
    let (dirs, others) = list_dir(dir)?;
    // Files and sub-folders together in path order, so the order does not depend on which is which.
    let mut all: Vec<(PathBuf, bool)> = dirs
        .into_iter()
        .map(|d| (d, true))
        .chain(others.into_iter().map(|f| (f, false)))
        .collect();
    all.sort();
    for (path, is_dir) in all {
        if is_dir {
            walk_class(root, &path, label, depth + 1, files, ignored)?;
        } else if has_image_extension(&path) {
            let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            files.push(FileEntry {
                rel: relative(root, &path),
                size: meta.len(),
                mtime_ns: mtime_ns(&meta),
                label,
            });
        } else {
            ignored.push(relative(root, &path));
        }
    }
    Ok(())
}

fn list_names(names: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(", ... ({} in all)", names.len()));
    }
    s
}

/// What the root holds, for an error message: its first entries.
fn describe_root(root: &Path) -> String {
    match std::fs::read_dir(root) {
        Err(e) => format!("cannot list it ({e})"),
        Ok(rd) => {
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if e.path().is_dir() {
                        format!("{n}/")
                    } else {
                        n
                    }
                })
                .collect();
            names.sort();
            if names.is_empty() {
                "an empty folder".into()
            } else {
                format!("found {}", list_names(&names))
            }
        }
    }
}

fn split_files(
    root: &Path,
    classes: &[ClassFolder],
    class_names: &[String],
    ignored: &mut Vec<PathBuf>,
) -> Result<SplitFiles> {
    let mut files = Vec::new();
    for (name, dir) in classes {
        let Ok(label) = class_names.binary_search(name) else {
            // Checked by the caller; kept as an error rather than a panic.
            return Err(Error::Folder {
                path: dir.clone(),
                message: format!("class {name:?} is not a training class"),
            });
        };
        let label = u8::try_from(label).map_err(|_| Error::Folder {
            path: dir.clone(),
            message: format!("more than {MAX_CLASSES} classes"),
        })?;
        let before = files.len();
        let ignored_before = ignored.len();
        walk_class(root, dir, label, 0, &mut files, ignored)?;
        if files.len() == before {
            let others = ignored.len() - ignored_before;
            return Err(Error::Folder {
                path: dir.clone(),
                message: if others == 0 {
                    "the class folder is empty: every class folder needs at least one image".into()
                } else {
                    format!(
                        "the class folder holds no image file ({others} other file(s); images are recognised by \
                         their extension: {})",
                        IMAGE_EXTENSIONS.join(", ")
                    )
                },
            });
        }
    }
    Ok(SplitFiles { files })
}

/// Walks `root`: `train/<class>/...`, `test/<class>/...` and the optional `val/<class>/...`.
pub(crate) fn scan(root: &Path) -> Result<Tree> {
    let train_dir = root.join("train");
    let test_dir = root.join("test");
    let val_dir = root.join("val");
    for (dir, what) in [(&train_dir, "train"), (&test_dir, "test")] {
        if !dir.is_dir() {
            return Err(Error::Folder {
                path: root.to_path_buf(),
                message: format!(
                    "expected an image-folder data set: {what}/ (and train/, test/, optionally val/) holding one \
                     folder of images per class; {what}/ is missing ({})",
                    describe_root(root)
                ),
            });
        }
    }
    let mut ignored = Vec::new();
    let (train_classes, loose) = class_folders(root, &train_dir)?;
    ignored.extend(loose);
    if train_classes.is_empty() {
        return Err(Error::Folder {
            path: train_dir,
            message: "expected one folder of images per class, found no sub-folder".into(),
        });
    }
    if train_classes.len() > MAX_CLASSES {
        return Err(Error::Folder {
            path: train_dir,
            message: format!(
                "{} class folders: at most {MAX_CLASSES} classes are supported (labels are bytes)",
                train_classes.len()
            ),
        });
    }
    let class_names: Vec<String> = train_classes.iter().map(|(n, _)| n.clone()).collect();
    let other_split = |dir: &Path, ignored: &mut Vec<PathBuf>| -> Result<SplitFiles> {
        let (classes, loose) = class_folders(root, dir)?;
        ignored.extend(loose);
        if classes.is_empty() {
            return Err(Error::Folder {
                path: dir.to_path_buf(),
                message: "expected one folder of images per class, found no sub-folder".into(),
            });
        }
        if let Some((name, path)) = classes
            .iter()
            .find(|(n, _)| class_names.binary_search(n).is_err())
        {
            return Err(Error::Folder {
                path: path.clone(),
                message: format!(
                    "class {name:?} has no folder in {}: every class must have training images (the training \
                     classes are {})",
                    train_dir.display(),
                    list_names(&class_names)
                ),
            });
        }
        split_files(root, &classes, &class_names, ignored)
    };
    let train = split_files(root, &train_classes, &class_names, &mut ignored)?;
    let test = other_split(&test_dir, &mut ignored)?;
    let val = if val_dir.is_dir() {
        Some(other_split(&val_dir, &mut ignored)?)
    } else {
        None
    };
    Ok(Tree {
        class_names,
        train,
        val,
        test,
        ignored,
    })
}
