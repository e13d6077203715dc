//! The common case over [`crate::TrainerBuilder`]: a registered model built from its config ([`build_model`]),
//! the config's optimizer ([`build_optimizer`]), and whole runs ([`run`], [`run_model`]).

use crate::config::OptimizerKind;
use crate::optim::{
    Adam, AdamConfig, Chain, GroupDecay, Muon, MuonConfig, Optimizer, ParamGroup, Sgd, SgdConfig,
};
use crate::{Data, Outcome, Result, StopFlag, TrainConfig, TrainerBuilder};
use model::{Classifier, registry};

/// The registered model `cfg.model` with `num_classes` outputs on the device `cfg.device` names, with the kernel
/// settings of `cfg` (`precision`, `winograd`, `stock_ops`), initialised from `cfg.seed`; with a one-line description of the
/// device.
pub fn build_model(cfg: &TrainConfig, num_classes: usize) -> Result<(Box<dyn Classifier>, String)> {
    cfg.validate()?;
    let (device, device_desc) = model::device::select(&cfg.device)?;
    let kernels = model::device::kernels(&device, cfg.precision, cfg.stock_ops, cfg.winograd)?;
    if let Some(advice) = model::device::precision_advice(&device, cfg.precision) {
        tracing::warn!("precision {}: {advice}", cfg.precision);
    }
    let mut model = registry::build(&cfg.model, &device, cfg.seed, num_classes)?;
    model.set_kernels(kernels)?;
    Ok((model, device_desc))
}

/// Trains the registered model `cfg.model` per `cfg` into `out` (a new run directory, or an existing one with
/// `resume`), evaluates the run's model on the test set and writes every artifact. With `resume`, `cfg` must be
/// the run's own config (`RunDir::read_config`). For callbacks, another optimizer, schedule or policy, use
/// [`build_model`] and [`TrainerBuilder`].
pub fn run(
    cfg: &TrainConfig,
    data: &Data,
    out: &std::path::Path,
    stop: &StopFlag,
    resume: bool,
) -> Result<Outcome> {
    let (model, device) = build_model(cfg, data.train.num_classes())?;
    run_model(model.as_ref(), &device, cfg, data, out, stop, resume)
}

/// Trains any [`Classifier`] (one of ours or a library user's, built on the device and with the kernel settings it
/// should train with) per `cfg` into `out`, as [`run`] does; `device` describes the device in the outcome. For
/// other optimizers, schedules, policies or callbacks use [`TrainerBuilder`].
pub fn run_model(
    model: &dyn Classifier,
    device: &str,
    cfg: &TrainConfig,
    data: &Data,
    out: &std::path::Path,
    stop: &StopFlag,
    resume: bool,
) -> Result<Outcome> {
    TrainerBuilder::new(model, cfg.clone())
        .run_dir(out)
        .resume(resume)
        .stop_flag(stop.clone())
        .device_description(device)
        .build()?
        .fit(data)
}

/// The optimizer the config names, over the model's parameters (SGD: normalisation parameters in their own group;
/// Muon: see [`OptimizerKind::Muon`] for which parameters go where).
pub fn build_optimizer(cfg: &TrainConfig, model: &dyn Classifier) -> Result<Box<dyn Optimizer>> {
    Ok(match cfg.optimizer {
        OptimizerKind::Adam => Box::new(Adam::new(
            model.params().iter(),
            AdamConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
        OptimizerKind::Sgd => {
            let (norm, other): (Vec<_>, Vec<_>) = model
                .params()
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .partition(|(n, _)| model.is_norm_param(n));
            let groups = vec![
                ParamGroup {
                    params: norm,
                    lr_scale: cfg.norm_lr_scale,
                    weight_decay: cfg.weight_decay / cfg.norm_lr_scale,
                },
                ParamGroup {
                    params: other,
                    lr_scale: 1.0,
                    weight_decay: cfg.weight_decay,
                },
            ];
            Box::new(Sgd::new(
                groups,
                SgdConfig {
                    lr: cfg.lr,
                    momentum: cfg.momentum,
                    nesterov: cfg.nesterov,
                },
            )?)
        }
        OptimizerKind::Muon => muon_optimizer(cfg, model)?,
    })
}

/// [`OptimizerKind::Muon`]: Muon on the 4-dimensional parameters, SGD in three groups on the rest (normalisation
/// parameters; other vectors, with their own decay; matrices), as one [`Chain`] named `muon`.
fn muon_optimizer(cfg: &TrainConfig, model: &dyn Classifier) -> Result<Box<dyn Optimizer>> {
    let m = &cfg.muon;
    let (mut filters, mut norm, mut biases, mut matrices) = (vec![], vec![], vec![], vec![]);
    for (name, var) in model.params().iter() {
        let entry = (name.to_string(), var.clone());
        match var.rank() {
            4 => filters.push(entry),
            _ if model.is_norm_param(name) => norm.push(entry),
            0 | 1 => biases.push(entry),
            _ => matrices.push(entry),
        }
    }
    let group = |params, lr_scale: f64| ParamGroup {
        params,
        lr_scale,
        weight_decay: cfg.weight_decay / lr_scale,
    };
    let groups = vec![
        group(norm, cfg.norm_lr_scale),
        group(biases, m.bias_lr_scale),
        group(matrices, m.head_lr_scale),
    ];
    let mut sgd = Sgd::new(
        groups,
        SgdConfig {
            lr: cfg.lr,
            momentum: cfg.momentum,
            nesterov: cfg.nesterov,
        },
    )?;
    if let Some(e) = m.bias_decay_epochs {
        sgd = sgd.with_group_decay(1, GroupDecay::Epochs(e));
    }
    let muon = Muon::new(
        filters,
        MuonConfig {
            lr: cfg.lr,
            momentum: m.momentum,
            nesterov: m.nesterov,
            ns_steps: m.ns_steps,
            normalize_weights: m.normalize_weights,
        },
    )?;
    Ok(Box::new(Chain::new(
        "muon",
        vec![Box::new(muon), Box::new(sgd)],
    )))
}
