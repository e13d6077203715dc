//! A run whose checkpoint write fails (disk full, a file-size quota) stops with a clear error naming the file,
//! leaves the previous `best.safetensors` and `last.safetensors` loadable, and `resume` then continues.
//!
//! The failure is injected with the process's file-size limit (`RLIMIT_FSIZE`, as a quota or a full disk would
//! refuse the write partway; it works for root and needs no mount): from epoch 3 on, no file may grow beyond
//! 64 KiB, which the checkpoints exceed and the JSON files do not. This file holds one test, so the limit touches
//! nothing else.

#![cfg(unix)]

mod common;

use cifar10_train::{Callback, RunDir, StopFlag, TrainerBuilder, run};
use std::path::Path;

/// Lowers (or restores) the soft file-size limit of this process; the hard limit stays, so it can be raised again.
fn file_size_limit(bytes: Option<u64>) {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a live rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut l), 0);
        l.rlim_cur = bytes.map_or(l.rlim_max, |b| b as libc::rlim_t);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &l), 0);
    }
}

/// From epoch `from` on, writes of more than 64 KiB fail (EFBIG).
struct DiskFullFrom(usize);

impl Callback for DiskFullFrom {
    fn on_epoch_start(&mut self, epoch: usize, _epochs: usize, _batches: usize, _first: usize) {
        if epoch == self.0 {
            file_size_limit(Some(64 * 1024));
        }
    }
}

fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.starts_with(".tmp"), "left behind: {name}");
    }
}

#[test]
fn a_failing_checkpoint_write_stops_the_run_and_resume_continues() {
    // Writing past the limit raises SIGXFSZ, which ends the process unless ignored: the write then fails with
    // EFBIG, as on a full disk.
    // SAFETY: setting a signal's disposition to SIG_IGN.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let data = common::data();
    let cfg = common::tiny_config(4);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (net, _) = cifar10_train::build_model(&cfg, 10).unwrap();
    let err = TrainerBuilder::new(net.as_ref(), cfg.clone())
        .run_dir(&out)
        .callback(DiskFullFrom(3))
        .build()
        .unwrap()
        .fit(&data)
        .map(|_| ())
        .unwrap_err();
    file_size_limit(None);
    let msg = err.to_string();
    eprintln!("the run's error: {msg}");
    // The error names the checkpoint it could not write and what the system said.
    assert!(
        msg.contains(RunDir::BEST) || msg.contains(RunDir::LAST),
        "no checkpoint named: {msg}"
    );
    assert!(
        msg.contains("File too large") || msg.contains("os error 27"),
        "{msg}"
    );
    assert!(msg.contains("cannot write"), "{msg}");
    // The previous checkpoints are whole: epoch 2's, loadable; nothing half-written is left.
    no_temp_files(&out);
    let rd = RunDir::new(&out);
    let history = rd.read_history().unwrap();
    assert_eq!(history.epochs.len(), 2, "{history:?}");
    model::checkpoint::load_model(&out.join(RunDir::BEST), &candle_core::Device::Cpu).unwrap();
    model::checkpoint::load_model(&out.join(RunDir::LAST), &candle_core::Device::Cpu).unwrap();
    // Resuming continues from epoch 3 and finishes the run as if nothing had happened.
    let whole = run(
        &cfg,
        &data,
        &dir.path().join("whole"),
        &StopFlag::default(),
        false,
    )
    .unwrap();
    let done = run(
        &rd.read_config().unwrap(),
        &data,
        &out,
        &StopFlag::default(),
        true,
    )
    .unwrap();
    assert!(!done.interrupted);
    assert_eq!(done.history.epochs.len(), 4);
    let strip = |h: &cifar_types::History| -> Vec<(f64, f64)> {
        h.epochs.iter().map(|e| (e.train_loss, e.val_acc)).collect()
    };
    assert_eq!(strip(&whole.history), strip(&done.history));
    assert_eq!(whole.test_report, done.test_report);
    no_temp_files(&out);
}
