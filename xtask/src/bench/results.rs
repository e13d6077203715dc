//! The bench's figures: PyTorch's and our rows read back, medians over the rounds, our best row against
//! PyTorch's best, and the printed table and JSON lines.

use std::collections::BTreeMap;

/// The fields of a PyTorch row that describe its setup rather than its result.
const CONFIG_FIELDS: &[&str] = &[
    "layout",
    "compile",
    "data",
    "warmup",
    "steps",
    "torch",
    "threads",
    "interop_threads",
    "allocator",
    "malloc_conf",
    "glibc_tunables",
    "omp_num_threads",
    "mkldnn",
];

/// (model, bench, batch, implementation)
pub(super) type Key = (String, String, usize, String);

/// One implementation's figures for one measurement, over the rounds.
#[derive(Default)]
pub(super) struct Sample {
    /// Each run's figure (a median step or repeat).
    pub(super) rates: Vec<f64>,
    /// The slowest and fastest step (PyTorch) or run (ours) seen.
    pub(super) min: f64,
    pub(super) max: f64,
    /// Seconds the first compiled step took beyond a steady one, per run.
    pub(super) compile_s: Vec<f64>,
    /// The PyTorch setup the row ran with (its JSON fields), or ours.
    pub(super) config: serde_json::Map<String, serde_json::Value>,
    /// The 1-minute load average when each run started.
    pub(super) loads: Vec<f64>,
}

/// The JSON objects of a program's output that are bench rows (they have `"bench"`).
pub(super) fn rows(stdout: &str) -> impl Iterator<Item = serde_json::Value> + '_ {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["bench"].is_string())
}

/// The implementation a row belongs to: ours `rust` (`rust-bf16` for a non-f32 precision, `rust[-bf16]-f4` for
/// Winograd tiles set other than auto); PyTorch's `torch-<layout>[-inductor]-<allocator>`.
fn impl_name(v: &serde_json::Value, side: &str) -> String {
    let name = impl_base(v, side);
    match v["winograd"].as_str() {
        Some(w) if w != "auto" => format!("{name}-{w}"),
        _ => name,
    }
}

fn impl_base(v: &serde_json::Value, side: &str) -> String {
    match (v["layout"].as_str(), v["precision"].as_str()) {
        (Some(layout), _) => {
            let mut name = format!("{side}-{layout}");
            if let Some(c) = v["compile"].as_str().filter(|c| *c != "eager") {
                name.push('-');
                name.push_str(c);
            }
            if let Some(a) = v["allocator"].as_str() {
                name.push('-');
                name.push_str(a);
            }
            name
        }
        (None, Some(p)) if p != "f32" => format!("{side}-{p}"),
        _ => side.to_string(),
    }
}

/// Reads `{"bench": ..., "batch": ..., "img_per_s": ..., "layout"?: ..., "model"?: ...}` lines; a line
/// without `"model"` belongs to `model`, the one that was asked for. A row with `"error"` (a torch.compile that
/// failed here) is reported and skipped.
pub(super) fn collect(
    stdout: &str,
    model: &str,
    side: &str,
    load: Option<f64>,
    samples: &mut BTreeMap<Key, Sample>,
) {
    for v in rows(stdout) {
        if let Some(err) = v["error"].as_str() {
            println!("# {} skipped: {err}", impl_name(&v, side));
            continue;
        }
        let (Some(bench), Some(batch), Some(rate)) = (
            v["bench"].as_str(),
            v["batch"].as_u64(),
            v["img_per_s"].as_f64(),
        ) else {
            continue;
        };
        let model = v["model"].as_str().unwrap_or(model);
        let s = samples
            .entry((
                model.to_string(),
                bench.to_string(),
                batch as usize,
                impl_name(&v, side),
            ))
            .or_insert_with(|| Sample {
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                ..Default::default()
            });
        s.rates.push(rate);
        s.loads.extend(load);
        s.min = s.min.min(v["img_per_s_min"].as_f64().unwrap_or(rate));
        s.max = s.max.max(v["img_per_s_max"].as_f64().unwrap_or(rate));
        if let Some(c) = v["compile_s"].as_f64() {
            s.compile_s.push(c);
        }
        if s.config.is_empty() {
            s.config = if v["layout"].is_string() {
                CONFIG_FIELDS
                    .iter()
                    .filter_map(|f| v.get(*f).map(|x| (f.to_string(), x.clone())))
                    .collect()
            } else {
                let mut m = serde_json::Map::new();
                m.insert(
                    "precision".into(),
                    v.get("precision").cloned().unwrap_or("f32".into()),
                );
                if let Some(w) = v.get("winograd") {
                    m.insert("winograd".into(), w.clone());
                }
                m.insert("data".into(), "random".into());
                m
            };
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Per (model, bench, batch): the best implementation of each side by median and the ratio of ours to theirs.
pub(super) fn best_pairs(samples: &BTreeMap<Key, Sample>) -> Vec<(Key, Key, f64)> {
    let mut keys: Vec<(String, String, usize)> = samples
        .keys()
        .map(|(m, b, n, _)| (m.clone(), b.clone(), *n))
        .collect();
    keys.dedup();
    let mut out = Vec::new();
    for (model, bench, batch) in keys {
        let best = |prefix: &str| {
            samples
                .iter()
                .filter(|((m, b, n, i), _)| {
                    *m == model && *b == bench && *n == batch && i.starts_with(prefix)
                })
                .map(|(k, s)| (k.clone(), median(&s.rates)))
                .max_by(|x, y| x.1.total_cmp(&y.1))
        };
        if let (Some((rk, r)), Some((tk, t))) = (best("rust"), best("torch")) {
            out.push((rk, tk, r / t));
        }
    }
    out
}

pub(super) fn report(samples: &BTreeMap<Key, Sample>) {
    println!(
        "{:<10} {:<9} {:>5}  {:<36} {:>9}  {:>19}  {:>9}  {:>9}",
        "model",
        "bench",
        "batch",
        "implementation",
        "img/s",
        "slowest-fastest",
        "compile s",
        "load"
    );
    for ((m, b, n, imp), s) in samples {
        let compile = if s.compile_s.is_empty() {
            String::new()
        } else {
            s.compile_s
                .iter()
                .map(|c| format!("{c:.0}"))
                .collect::<Vec<_>>()
                .join("/")
        };
        println!(
            "{m:<10} {b:<9} {n:>5}  {imp:<36} {:>9.1}  {:>9.1}-{:<9.1}  {compile:>9}  {:>9}",
            median(&s.rates),
            s.min,
            s.max,
            s.loads
                .iter()
                .map(|l| format!("{l:.1}"))
                .collect::<Vec<_>>()
                .join("/")
        );
    }
    let pairs = best_pairs(samples);
    println!("\nours (best) against PyTorch (best), medians:");
    for ((m, b, n, r), (_, _, _, t), ratio) in &pairs {
        println!("{m:<10} {b:<9} {n:>5}  {r} / {t}: {ratio:.2}x");
    }
    for ((m, b, n, imp), s) in samples {
        let line = serde_json::json!({
            "bench": b, "model": m, "batch": n, "impl": imp,
            "img_per_s": round1(median(&s.rates)),
            "img_per_s_min": round1(s.min), "img_per_s_max": round1(s.max),
            "runs": s.rates.len(), "compile_s": s.compile_s.iter().map(|c| round1(*c)).collect::<Vec<_>>(),
            "config": s.config, "load_avg": s.loads,
        });
        println!("{line}");
    }
    for ((m, b, n, r), (_, _, _, t), ratio) in &pairs {
        let line = serde_json::json!({
            "ratio": (ratio * 100.0).round() / 100.0, "bench": b, "model": m, "batch": n,
            "ours": r, "pytorch": t,
        });
        println!("{line}");
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
