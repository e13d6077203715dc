//! `cifar inspect`: what a checkpoint holds, from its header alone (no tensor data is read).

use anyhow::{Context, Result};
use clap::Args;
use model::checkpoint::{self, ModelMeta, keys};
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A checkpoint (best.safetensors or last.safetensors).
    pub checkpoint: PathBuf,
}

pub fn inspect_cmd(a: InspectArgs) -> Result<ExitCode> {
    let path = &a.checkpoint;
    let header = checkpoint::read_header(path).with_context(|| format!("{}", path.display()))?;
    let meta = ModelMeta::from_metadata(&header.metadata, path)?;
    predict::note_defaults(path, &meta);
    let shown = |k: &str| {
        if meta.defaulted.contains(&k) {
            " (default: not in the file)"
        } else {
            ""
        }
    };
    println!("checkpoint   {}", path.display());
    println!(
        "format       {}{}",
        header
            .metadata
            .get(keys::FORMAT)
            .map_or("cifar10-rs/1", |s| s.as_str()),
        shown(keys::FORMAT)
    );
    println!("model        {}{}", meta.model, shown(keys::MODEL));
    println!(
        "model_args   {}{}",
        meta.model_args,
        shown(keys::MODEL_ARGS)
    );
    println!(
        "normalize    mean {:?} std {:?}{}",
        meta.normalize.mean,
        meta.normalize.std,
        shown(keys::NORMALIZE)
    );
    println!(
        "class_names  {}{}",
        meta.class_names.join(", "),
        shown(keys::CLASS_NAMES)
    );
    println!(
        "input_size   {}{}",
        meta.input_size.map(|d| d.to_string()).join("x"),
        shown(keys::INPUT_SIZE)
    );
    let mut other: Vec<(&String, &String)> = header
        .metadata
        .iter()
        .filter(|(k, _)| !keys::ALL.contains(&k.as_str()))
        .collect();
    other.sort();
    for (k, v) in other {
        let v = if v.chars().count() > 80 {
            format!("({} bytes of JSON)", v.len())
        } else {
            v.clone()
        };
        println!("{k:<12} {v}");
    }
    // Which tensors are the model's parameters and buffers: the model built from the metadata says.
    let (params, buffers): (HashSet<String>, HashSet<String>) = match model::registry::build(
        &meta.model,
        &candle_core::Device::Cpu,
        0,
        meta.class_names.len(),
    ) {
        Ok(m) => (
            m.params().iter().map(|(n, _)| n.to_string()).collect(),
            m.buffers().iter().map(|(n, _)| n.to_string()).collect(),
        ),
        Err(e) => {
            tracing::warn!("cannot tell parameters from other tensors: {e}");
            Default::default()
        }
    };
    let numel = |s: &[usize]| s.iter().product::<usize>();
    let (mut n_param, mut n_buf, mut n_other) = (0usize, 0usize, 0usize);
    for (name, _, shape) in &header.tensors {
        if params.contains(name) {
            n_param += numel(shape);
        } else if buffers.contains(name) {
            n_buf += numel(shape);
        } else {
            n_other += numel(shape);
        }
    }
    println!(
        "parameters   {} ({} values in buffers, {} in other tensors such as optimizer state)",
        viz::thousands(n_param as u64),
        viz::thousands(n_buf as u64),
        viz::thousands(n_other as u64)
    );
    println!("tensors      {}", header.tensors.len());
    for (name, dtype, shape) in &header.tensors {
        let kind = if params.contains(name) {
            "param"
        } else if buffers.contains(name) {
            "buffer"
        } else {
            "other"
        };
        println!("  {name:<40} {dtype:<5} {kind:<6} {shape:?}");
    }
    Ok(ExitCode::SUCCESS)
}
