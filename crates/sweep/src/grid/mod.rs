//! The grid of a sweep: a base configuration, settings with several values each, and seeds; expanded into
//! runs, each with its own directory name.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use train::TrainConfig;

/// Settings that belong to the sweep as a whole (where the data is, where runs train), never to one run: they are
/// kept out of the grid, so that moving a sweep or changing its device does not make it "another grid".
pub const SWEEP_WIDE: &[&str] = &["data_dir", "device"];

/// The most runs one grid may expand to (Slurm's default `MaxArraySize` is 1001).
pub const MAX_RUNS: usize = 100_000;

/// Parses a list of seeds: comma-separated items, each a number (`7`), a half-open range (`0..20`: 0 to 19) or
/// an inclusive one (`0..=19`). The result keeps the order given; an empty range or a repeated seed is an
/// error.
///
/// ```
/// assert_eq!(cifar10_sweep::parse_seeds("0..3,10,20..=21").unwrap(), vec![0, 1, 2, 10, 20, 21]);
/// assert!(cifar10_sweep::parse_seeds("5..5").is_err());
/// ```
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>> {
    let bad = |reason: String| Error::Seeds {
        spec: spec.to_string(),
        reason,
    };
    let number = |s: &str| {
        s.trim().parse::<u64>().map_err(|_| {
            bad(format!(
                "expected a number, a range A..B or A..=B, found {:?}",
                s.trim()
            ))
        })
    };
    let mut seeds = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad(
                "an empty item (two commas, or a comma at an end)".into()
            ));
        }
        let (lo, hi) = if let Some((a, b)) = item.split_once("..=") {
            let (a, b) = (number(a)?, number(b)?);
            if b < a {
                return Err(bad(format!("the range {item} is empty")));
            }
            (a, b)
        } else if let Some((a, b)) = item.split_once("..") {
            let (a, b) = (number(a)?, number(b)?);
            if b <= a {
                return Err(bad(format!(
                    "the range {item} is empty (A..B runs from A to B-1)"
                )));
            }
            (a, b - 1)
        } else {
            let n = number(item)?;
            (n, n)
        };
        if hi - lo >= MAX_RUNS as u64 || seeds.len() + (hi - lo) as usize >= MAX_RUNS {
            return Err(bad(format!("more than {MAX_RUNS} seeds")));
        }
        for s in lo..=hi {
            if seeds.contains(&s) {
                return Err(bad(format!("seed {s} is given twice")));
            }
            seeds.push(s);
        }
    }
    if seeds.is_empty() {
        return Err(bad("no seeds".into()));
    }
    Ok(seeds)
}

/// One setting swept over several values (`--set lr=0.001,0.002` on the command line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// The setting: a field of [`TrainConfig`] as in its `config.json` (`lr`, `precision`), a nested one with
    /// dots (`augment.flip_prob`); dashes are read as underscores.
    pub setting: String,
    /// The values, in JSON form (`0.002`, `"bf16"`, `true`, `null`).
    pub values: Vec<Value>,
}

impl Axis {
    /// Parses `setting=value1,value2,...`. Each value is read as JSON when it is JSON (numbers, `true`,
    /// `false`, `null`, quoted strings), else as a string (`bf16`, `onecycle`).
    pub fn parse(text: &str) -> Result<Axis> {
        let Some((key, values)) = text.split_once('=') else {
            return Err(Error::Setting {
                setting: text.to_string(),
                reason: "expected setting=value or setting=value1,value2,...".into(),
            });
        };
        let setting = key.trim().replace('-', "_");
        if setting.is_empty() {
            return Err(Error::Setting {
                setting: text.to_string(),
                reason: "no setting name before '='".into(),
            });
        }
        let mut parsed = Vec::new();
        for v in values.split(',') {
            let v = v.trim();
            if v.is_empty() {
                return Err(Error::Setting {
                    setting,
                    reason: format!("an empty value in {values:?}"),
                });
            }
            let value =
                serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.into()));
            if parsed.contains(&value) {
                return Err(Error::Setting {
                    setting,
                    reason: format!("the value {v} is given twice"),
                });
            }
            parsed.push(value);
        }
        Ok(Axis {
            setting,
            values: parsed,
        })
    }
}

/// `setting=value1,value2` as a user writes it ([`Axis::parse`]'s grammar; strings unquoted, see [`value_text`]): for
/// logs, the batch script and the report.
impl std::fmt::Display for Axis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values: Vec<String> = self.values.iter().map(value_text).collect();
        write!(f, "{}={}", self.setting, values.join(","))
    }
}

/// The grid of a sweep: every combination of the axes' values, each trained once per seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// The base configuration in JSON form (a preset or a config file, with the sweep-wide settings
    /// [`SWEEP_WIDE`] taken out).
    pub base: Value,
    /// The settings swept, in the order given.
    pub axes: Vec<Axis>,
    /// The seeds, in the order given.
    pub seeds: Vec<u64>,
}

/// One run of a grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Its position in the sweep (the Slurm array task id).
    pub index: usize,
    /// Its directory's name inside the sweep directory, from its settings and seed
    /// (`lr-0.002_precision-bf16_seed-3`, or `seed-3` without axes; axes of one value are left out).
    pub name: String,
    /// Its configuration's label, shared by every seed of it (`lr=0.002 precision=bf16`, or the preset's name
    /// without axes).
    pub label: String,
    /// The axes' values of this run, in the axes' order.
    pub settings: Vec<(String, Value)>,
    /// Its seed.
    pub seed: u64,
}

impl Grid {
    /// A grid over `base` (its [`SWEEP_WIDE`] settings are left out), checking every value of every axis: the
    /// setting must exist (the error lists the known ones), `seed` and the sweep-wide settings cannot be swept,
    /// and every combination must be a valid configuration.
    pub fn new(base: &TrainConfig, axes: Vec<Axis>, seeds: Vec<u64>) -> Result<Grid> {
        let mut base = serde_json::to_value(base).map_err(|e| Error::Setting {
            setting: "(base configuration)".into(),
            reason: e.to_string(),
        })?;
        if let Some(obj) = base.as_object_mut() {
            for k in SWEEP_WIDE {
                obj.remove(*k);
            }
        }
        if seeds.is_empty() {
            return Err(Error::Seeds {
                spec: String::new(),
                reason: "no seeds".into(),
            });
        }
        for (i, axis) in axes.iter().enumerate() {
            if axis.setting == "seed" {
                return Err(Error::Setting {
                    setting: axis.setting.clone(),
                    reason: "the seeds are a list of their own, not a setting to sweep".into(),
                });
            }
            if SWEEP_WIDE.contains(&axis.setting.as_str()) {
                return Err(Error::Setting {
                    setting: axis.setting.clone(),
                    reason: "set once for the whole sweep, not swept".into(),
                });
            }
            if axes[..i].iter().any(|a| a.setting == axis.setting) {
                return Err(Error::Setting {
                    setting: axis.setting.clone(),
                    reason: "given twice; list its values once, separated by commas".into(),
                });
            }
            if axis.values.is_empty() {
                return Err(Error::Setting {
                    setting: axis.setting.clone(),
                    reason: "no values".into(),
                });
            }
            // Each value on its own first, so that the error names the setting and the value.
            for v in &axis.values {
                apply(&base, &[(axis.setting.clone(), v.clone())])?;
            }
        }
        let grid = Grid { base, axes, seeds };
        let combos = grid.combinations();
        if combos.len().saturating_mul(grid.seeds.len()) > MAX_RUNS {
            return Err(Error::Setting {
                setting: "(grid)".into(),
                reason: format!(
                    "{} configurations x {} seeds is more than {MAX_RUNS} runs",
                    combos.len(),
                    grid.seeds.len()
                ),
            });
        }
        for c in &combos {
            let cfg = apply(&grid.base, c)?;
            cfg.validate_recipe()
                .map_err(|e| named_setting_error(e, c))?;
        }
        let runs = grid.runs();
        for (i, r) in runs.iter().enumerate() {
            if let Some(other) = runs[..i].iter().find(|o| o.name == r.name) {
                return Err(Error::Setting {
                    setting: "(grid)".into(),
                    reason: format!(
                        "runs {} and {} would share the directory name {:?}; make the values differ in letters or digits",
                        other.index, r.index, r.name
                    ),
                });
            }
        }
        Ok(grid)
    }

    /// Every combination of the axes' values (one empty combination without axes), the first axis varying
    /// slowest.
    pub fn combinations(&self) -> Vec<Vec<(String, Value)>> {
        let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
        for axis in &self.axes {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    axis.values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push((axis.setting.clone(), v.clone()));
                        c
                    })
                })
                .collect();
        }
        combos
    }

    /// The preset the base configuration came from.
    pub fn preset(&self) -> &str {
        self.base
            .get("preset")
            .and_then(Value::as_str)
            .unwrap_or("base")
    }

    /// The runs: for each seed (in order), every combination. Seeds go slowest, so a sweep stopped halfway has
    /// every configuration at its first seeds.
    pub fn runs(&self) -> Vec<RunSpec> {
        let combos = self.combinations();
        let mut runs = Vec::with_capacity(combos.len() * self.seeds.len());
        for &seed in &self.seeds {
            for c in &combos {
                runs.push(RunSpec {
                    index: runs.len(),
                    name: run_name(&self.varying(c), seed),
                    label: self.label(c),
                    settings: c.clone(),
                    seed,
                });
            }
        }
        runs
    }

    /// The settings of a combination whose axis has more than one value (an axis of one value is a fixed
    /// setting of every run, and names nothing).
    fn varying(&self, settings: &[(String, Value)]) -> Vec<(String, Value)> {
        settings
            .iter()
            .filter(|(k, _)| {
                self.axes
                    .iter()
                    .any(|a| &a.setting == k && a.values.len() > 1)
            })
            .cloned()
            .collect()
    }

    /// The label of a combination: `key=value` pairs of the axes with several values, or the preset's name when
    /// there are none.
    pub fn label(&self, settings: &[(String, Value)]) -> String {
        let varying = self.varying(settings);
        if varying.is_empty() {
            return self.preset().to_string();
        }
        varying
            .iter()
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The full configuration of run `index`, with the sweep-wide settings given (where the data is, which
    /// device), validated.
    pub fn config(
        &self,
        index: usize,
        data_dir: &std::path::Path,
        device: &str,
    ) -> Result<TrainConfig> {
        let runs = self.runs();
        let run = runs.get(index).ok_or(Error::IndexOutOfRange {
            index,
            runs: runs.len(),
        })?;
        let mut settings = run.settings.clone();
        settings.push(("seed".into(), Value::from(run.seed)));
        let mut cfg = apply(&self.base, &settings)?;
        cfg.data_dir = data_dir.to_path_buf();
        cfg.device = device.to_string();
        cfg.validate()
            .map_err(|e| named_setting_error(e, &run.settings))?;
        Ok(cfg)
    }

    /// What differs between this grid and `other` (None: the same grid), in words.
    pub fn difference(&self, other: &Grid) -> Option<String> {
        if self.base != other.base {
            let keys: Vec<String> = match (self.base.as_object(), other.base.as_object()) {
                (Some(a), Some(b)) => a
                    .keys()
                    .chain(b.keys())
                    .filter(|k| a.get(*k) != b.get(*k))
                    .cloned()
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                _ => vec![],
            };
            return Some(format!("base settings differ: {}", keys.join(", ")));
        }
        if self.axes != other.axes {
            let show = |g: &Grid| {
                g.axes
                    .iter()
                    .map(Axis::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            return Some(format!(
                "swept settings differ: [{}] there, [{}] here",
                show(self),
                show(other)
            ));
        }
        if self.seeds != other.seeds {
            return Some(format!(
                "seeds differ: {:?} there, {:?} here",
                self.seeds, other.seeds
            ));
        }
        None
    }
}

/// A train error about a swept setting, with the run's settings named.
fn named_setting_error(e: train::Error, settings: &[(String, Value)]) -> Error {
    match e {
        train::Error::Setting { setting, message } => Error::Setting {
            setting: setting.to_string(),
            reason: if settings.is_empty() {
                message
            } else {
                format!(
                    "{message} (in the combination {})",
                    settings
                        .iter()
                        .map(|(k, v)| format!("{k}={}", value_text(v)))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            },
        },
        e => Error::Train(e),
    }
}

/// A value as written on a command line: strings without quotes.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The directory name of a run: `key-value` pairs joined by `_`, then `seed-N`; characters other than letters,
/// digits, `.`, `+` and `-` become `_`.
pub fn run_name(settings: &[(String, Value)], seed: u64) -> String {
    let mut parts: Vec<String> = settings
        .iter()
        .map(|(k, v)| format!("{k}-{}", value_text(v)))
        .collect();
    parts.push(format!("seed-{seed}"));
    parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Applies settings to the base JSON and reads the result as a [`TrainConfig`]; a setting the configuration
/// does not have, or a value of the wrong type, is an error naming the setting.
pub fn apply(base: &Value, settings: &[(String, Value)]) -> Result<TrainConfig> {
    let mut v = base.clone();
    for (key, value) in settings {
        set_path(&mut v, key, value.clone())?;
        // Each setting on its own, so that a type error names it.
        serde_json::from_value::<TrainConfig>(v.clone()).map_err(|e| Error::Setting {
            setting: key.clone(),
            reason: format!("cannot take the value {}: {e}", value_text(value)),
        })?;
    }
    serde_json::from_value(v).map_err(|e| Error::Setting {
        setting: "(base configuration)".into(),
        reason: e.to_string(),
    })
}

/// Sets the dotted `key` in `v`; the key must exist. `epochs` takes a fraction too (airbench's 9.9:
/// `fractional_epochs`, with `epochs` its ceiling).
fn set_path(v: &mut Value, key: &str, value: Value) -> Result<()> {
    if key == "epochs"
        && let (Some(obj), Some(x)) = (v.as_object_mut(), value.as_f64())
    {
        if !(x.is_finite() && x > 0.0) {
            return Err(Error::Setting {
                setting: key.into(),
                reason: format!("expected a positive number, found {}", value_text(&value)),
            });
        }
        let whole = x.fract() == 0.0;
        obj.insert("epochs".into(), Value::from(x.ceil() as u64));
        obj.insert(
            "fractional_epochs".into(),
            if whole { Value::Null } else { value },
        );
        return Ok(());
    }
    let mut node = v;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let known = node
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        let Some(obj) = node.as_object_mut() else {
            return Err(Error::Setting {
                setting: key.into(),
                reason: format!("{} has no parts", parts[..i].join(".")),
            });
        };
        let Some(child) = obj.get_mut(*part) else {
            let prefix = parts[..i].join(".");
            let known: Vec<String> = known
                .into_iter()
                .filter(|k| !SWEEP_WIDE.contains(&k.as_str()) || i > 0)
                .map(|k| {
                    if prefix.is_empty() {
                        k
                    } else {
                        format!("{prefix}.{k}")
                    }
                })
                .collect();
            return Err(Error::Setting {
                setting: key.into(),
                reason: format!("unknown setting; expected one of {}", known.join(", ")),
            });
        };
        if i + 1 == parts.len() {
            *child = value;
            return Ok(());
        }
        node = child;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
