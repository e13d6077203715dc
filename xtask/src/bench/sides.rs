//! Each model's two sides: the `cifar bench` arguments and the PyTorch script with its arguments.

use super::{AIRBENCH94, AIRBENCH94_MUON, Args, CNN_DNN, ModelSel};
use std::path::{Path, PathBuf};

/// One model's two sides: the `cifar bench` arguments and the PyTorch script with its arguments.
pub(super) struct Side {
    pub(super) model: &'static str,
    pub(super) rust_args: Vec<String>,
    pub(super) script: PathBuf,
    pub(super) torch_args: Vec<String>,
}

pub(super) fn sides(a: &Args, root: &Path, archive: &Path) -> Vec<Side> {
    let threads = a.threads.to_string();
    let compile = if a.no_compile {
        String::new()
    } else {
        a.torch_compile_layouts.clone()
    };
    // The PyTorch scripts' bench arguments; the Muon script has no torch.compile mode (`compile_flag` false).
    let script_args = |steps: usize, warmup: usize, compile_flag: bool| -> Vec<String> {
        let mut v = vec![
            "--bench".into(),
            "--threads".into(),
            threads.clone(),
            "--archive".into(),
            archive.display().to_string(),
            "--layouts".into(),
            a.torch_layouts.clone(),
        ];
        if compile_flag {
            v.extend(["--compile-layouts".into(), compile.clone()]);
        }
        v.extend([
            "--warmup".into(),
            warmup.to_string(),
            "--steps".into(),
            steps.to_string(),
        ]);
        v
    };
    let common = |steps: usize| script_args(steps, a.torch_warmup, true);
    let mut out = Vec::new();
    if a.model.has(ModelSel::CnnDnn) {
        out.push(Side {
            model: CNN_DNN,
            rust_args: vec!["--model".into(), CNN_DNN.into()],
            script: a
                .reference
                .clone()
                .unwrap_or_else(|| root.join("bench/reference_seed.py")),
            // Ours: 20 steps per repeat (`cifar bench`'s default).
            torch_args: common(20 * a.repeats.max(1)),
        });
    }
    if a.model.has(ModelSel::Airbench94Muon) {
        let steps = a.airbench_steps.max(1);
        out.push(Side {
            model: AIRBENCH94_MUON,
            rust_args: vec![
                "--preset".into(),
                AIRBENCH94_MUON.into(),
                "--train-batches".into(),
                a.muon_batch.to_string(),
                "--steps".into(),
                steps.to_string(),
            ],
            script: root.join("bench/airbench94_muon_torch.py"),
            // Its step is 3-4x airbench94's: fewer untimed steps.
            torch_args: {
                let mut v = script_args(steps * a.repeats.max(1), a.torch_warmup.min(3), false);
                v.extend(["--batch".into(), a.muon_batch.to_string()]);
                v
            },
        });
    }
    if a.model.has(ModelSel::Airbench94) {
        let steps = a.airbench_steps.max(1);
        let infer = a.airbench_infer_batch.to_string();
        let mut torch_args = common(steps * a.repeats.max(1));
        torch_args.extend([
            "--batch".into(),
            a.airbench_batches.clone(),
            "--infer-batch".into(),
            infer.clone(),
        ]);
        out.push(Side {
            model: AIRBENCH94,
            rust_args: vec![
                "--model".into(),
                AIRBENCH94.into(),
                "--train-batches".into(),
                a.airbench_batches.clone(),
                "--infer-batch".into(),
                infer,
                "--steps".into(),
                steps.to_string(),
            ],
            script: a
                .airbench_reference
                .clone()
                .unwrap_or_else(|| root.join("bench/airbench94_torch.py")),
            torch_args,
        });
    }
    out
}
