//! What the run directory beside the checkpoint tells the page: the test accuracy (`test_report.json`) and the
//! files it may serve (`report.html` and the charts), read-only.

use cifar_types::{TestReport, run_files};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The test accuracy shown on the page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TestAccuracy {
    /// The fraction of test images classified correctly, in `[0, 1]`, from `test_report.json`.
    pub accuracy: f64,
    /// The test-time augmentation the figure was measured with (`none`, `mirror`, `mirror+shift`).
    pub tta: String,
}

/// The run directory's files the server may send: looked up by exact name in this list, made once at start-up,
/// so no request can name another file (no `..`, no links followed out of the folder).
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// The run directory's own name (its last path component), if it has one.
    pub dir_name: Option<String>,
    /// The test accuracy from the run's `test_report.json` (None when the file is missing or unreadable).
    pub test_accuracy: Option<TestAccuracy>,
    files: BTreeMap<String, PathBuf>,
}

/// The extensions of run files served, with their content type.
const SERVED: [(&str, &str); 3] = [
    ("html", "text/html; charset=utf-8"),
    ("png", "image/png"),
    ("svg", "image/svg+xml"),
];

impl RunInfo {
    /// Reads `dir` (a missing or unreadable folder gives an empty `RunInfo`); `tta` is the served model's
    /// test-time augmentation, whose figure is preferred when the report has it.
    pub fn read(dir: &Path, tta: &str) -> Self {
        let mut info = RunInfo {
            dir_name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.is_empty()),
            ..Default::default()
        };
        let report = dir.join(run_files::TEST_REPORT);
        if report.is_file() {
            match std::fs::read(&report)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<TestReport>(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => info.test_accuracy = Some(accuracy_for(&r, tta)),
                Err(e) => tracing::warn!("{}: not shown: {e}", report.display()),
            }
        }
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                // Regular files only (file_type does not follow links).
                if !e.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                let Some(name) = e.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let ext = Path::new(&name)
                    .extension()
                    .and_then(|x| x.to_str())
                    .map(|x| x.to_ascii_lowercase());
                if ext.is_some_and(|x| SERVED.iter().any(|(s, _)| *s == x)) {
                    info.files.insert(name, e.path());
                }
            }
        }
        info
    }

    /// The URL path of the run's report, when it has one.
    pub fn report_url(&self) -> Option<String> {
        self.files
            .contains_key(run_files::REPORT_HTML)
            .then(|| format!("/run/{}", run_files::REPORT_HTML))
    }

    /// The path and content type of the run file `name`, if it is one the server may send.
    pub fn file(&self, name: &str) -> Option<(&Path, &'static str)> {
        let path = self.files.get(name)?;
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        let ty = SERVED.iter().find(|(s, _)| *s == ext)?.1;
        Some((path.as_path(), ty))
    }
}

/// The report's figure for the served TTA when it has it (the headline figure, or the one without TTA), else the
/// headline figure with its own TTA.
fn accuracy_for(r: &TestReport, tta: &str) -> TestAccuracy {
    let headline_tta = r.tta.clone().unwrap_or_else(|| "none".into());
    if headline_tta != tta
        && tta == "none"
        && let Some(a) = r.accuracy_without_tta
    {
        return TestAccuracy {
            accuracy: a,
            tta: "none".into(),
        };
    }
    TestAccuracy {
        accuracy: r.accuracy,
        tta: headline_tta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_files_are_served() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.html"), "<p>r</p>").unwrap();
        std::fs::write(dir.path().join("loss_curve.png"), b"png").unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("best.safetensors"), b"x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link.html")).unwrap();
        let info = RunInfo::read(dir.path(), "none");
        assert_eq!(info.report_url().as_deref(), Some("/run/report.html"));
        assert!(info.file("report.html").is_some());
        assert_eq!(info.file("loss_curve.png").unwrap().1, "image/png");
        for name in [
            "config.json",
            "best.safetensors",
            "link.html",
            "../report.html",
            "",
        ] {
            assert!(info.file(name).is_none(), "{name}");
        }
        assert!(info.test_accuracy.is_none());
        let empty = RunInfo::read(&dir.path().join("missing"), "none");
        assert!(empty.report_url().is_none());
    }

    #[test]
    fn the_accuracy_matches_the_served_tta_when_known() {
        let r = TestReport {
            accuracy: 0.9,
            loss: 0.3,
            tta: Some("mirror".into()),
            accuracy_without_tta: Some(0.89),
            top5_accuracy: None,
            per_class: vec![],
            confusion_matrix: vec![],
        };
        assert_eq!(accuracy_for(&r, "mirror").accuracy, 0.9);
        assert_eq!(
            accuracy_for(&r, "none"),
            TestAccuracy {
                accuracy: 0.89,
                tta: "none".into()
            }
        );
        assert_eq!(accuracy_for(&r, "mirror+shift").tta, "mirror");
    }
}
