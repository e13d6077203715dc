//! The Slurm side: a job-array batch script with one task per run, and the array specifications that submit a
//! subset of the runs.

use crate::{Error, Result};
use std::path::Path;

/// What the batch script asks Slurm for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmOptions {
    /// The partition (`#SBATCH --partition`); None: the cluster's default.
    pub partition: Option<String>,
    /// The time limit of one task (`--time`, Slurm's syntax: `MM`, `HH:MM:SS`, `D-HH`); None: the partition's.
    pub time: Option<String>,
    /// CPUs of one task (`--cpus-per-task`; the kernels use that many threads).
    pub cpus_per_task: usize,
    /// Memory of one task (`--mem`, e.g. `4G`); None: the partition's default.
    pub mem: Option<String>,
    /// At most this many tasks at once (`%K` in `--array`); None: no limit.
    pub array_limit: Option<usize>,
    /// The job's name.
    pub job_name: String,
    /// Seconds before the time limit at which the task is sent SIGINT, so that it saves a resumable checkpoint
    /// (`--signal=B:INT@N`); 0: no signal.
    pub warn_secs: u32,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            partition: None,
            time: None,
            cpus_per_task: 2,
            mem: None,
            array_limit: None,
            job_name: "cifar-sweep".into(),
            warn_secs: 120,
        }
    }
}

/// A Slurm array specification of `indices` (sorted and merged: `0-3,7,9-10`); with a limit, `%K` appended.
///
/// ```
/// assert_eq!(cifar10_sweep::slurm::array_spec(&[3, 0, 1, 2, 7, 9, 10], Some(4)), "0-3,7,9-10%4");
/// ```
pub fn array_spec(indices: &[usize], limit: Option<usize>) -> String {
    let mut v = indices.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    let mut s = parts.join(",");
    if let Some(k) = limit {
        s.push_str(&format!("%{k}"));
    }
    s
}

/// A value that goes into an `#SBATCH` line: one word of letters, digits and `-_:.,+%@`.
fn check_word(setting: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_:.,+%@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Setting {
            setting: setting.into(),
            reason: format!(
                "expected one word of letters, digits and -_:.,+%@ (it goes into an #SBATCH line), found {value:?}"
            ),
        })
    }
}

/// A shell word in single quotes.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The batch script: a job array over every run (`0-(runs−1)`; a resubmission names its own subset on sbatch's
/// command line), each task `exec`-ing `task_command` (the application's command that trains run
/// `$SLURM_ARRAY_TASK_ID` of the sweep, its words already quoted for the shell) with as many kernel threads as
/// CPUs, logging to `SWEEP_DIR/logs/<index>.log` (appended, so a resubmission keeps the earlier attempt's log).
/// `sweep_dir` must be absolute: the script runs on other machines, from another directory. `about` goes into
/// the script's opening comment.
pub fn sbatch_script(
    opts: &SlurmOptions,
    task_command: &str,
    sweep_dir: &Path,
    runs: usize,
    about: &str,
) -> Result<String> {
    if runs == 0 {
        return Err(Error::Setting {
            setting: "(grid)".into(),
            reason: "no runs".into(),
        });
    }
    if !sweep_dir.is_absolute() {
        return Err(Error::Invalid {
            path: sweep_dir.to_path_buf(),
            reason: "the sweep directory must be an absolute path in a batch script".into(),
        });
    }
    if task_command.contains('\n') || task_command.trim().is_empty() {
        return Err(Error::Setting {
            setting: "(task command)".into(),
            reason: format!("expected one line, found {task_command:?}"),
        });
    }
    let Some(dir) = sweep_dir.to_str() else {
        return Err(Error::Invalid {
            path: sweep_dir.to_path_buf(),
            reason: "paths in a batch script must be UTF-8".into(),
        });
    };
    // Slurm expands %a in --output but not in the directory part; the path must not hold a '%' of its own or a
    // newline.
    if dir.contains(['%', '\n']) {
        return Err(Error::Invalid {
            path: sweep_dir.to_path_buf(),
            reason: "a sweep directory for Slurm cannot contain '%' or a newline".into(),
        });
    }
    if opts.cpus_per_task == 0 {
        return Err(Error::Setting {
            setting: "cpus_per_task".into(),
            reason: "expected at least 1, found 0".into(),
        });
    }
    if opts.array_limit == Some(0) {
        return Err(Error::Setting {
            setting: "array_limit".into(),
            reason: "expected at least 1, found 0".into(),
        });
    }
    check_word("job_name", &opts.job_name)?;
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str("# A Slurm job array: one task per run of a sweep.\n");
    for line in about.lines() {
        s.push_str(&format!("#   {line}\n"));
    }
    s.push_str(&format!("#SBATCH --job-name={}\n", opts.job_name));
    s.push_str(&format!(
        "#SBATCH --array={}\n",
        array_spec(&(0..runs).collect::<Vec<_>>(), opts.array_limit)
    ));
    s.push_str("#SBATCH --ntasks=1\n");
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", opts.cpus_per_task));
    if let Some(p) = &opts.partition {
        check_word("partition", p)?;
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if let Some(t) = &opts.time {
        check_word("time", t)?;
        s.push_str(&format!("#SBATCH --time={t}\n"));
    }
    if let Some(m) = &opts.mem {
        check_word("mem", m)?;
        s.push_str(&format!("#SBATCH --mem={m}\n"));
    }
    if opts.warn_secs > 0 {
        s.push_str(&format!("#SBATCH --signal=B:INT@{}\n", opts.warn_secs));
    }
    s.push_str(&format!("#SBATCH --output={dir}/logs/%a.log\n"));
    s.push_str("#SBATCH --open-mode=append\n");
    s.push_str("set -eu\n");
    s.push_str("# The CPU kernels use exactly the CPUs Slurm gave the task.\n");
    s.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n");
    s.push_str("echo \"task ${SLURM_ARRAY_TASK_ID} of job ${SLURM_ARRAY_JOB_ID} on $(hostname) at $(date -u +%FT%TZ)\"\n");
    s.push_str("# exec: the task itself receives Slurm's signals (SIGINT before the time limit: it saves a checkpoint).\n");
    s.push_str(&format!("exec {task_command}\n"));
    Ok(s)
}

/// The job id in `sbatch --parsable`'s answer (`1234` or `1234;cluster`).
pub fn parse_job_id(stdout: &str) -> Option<String> {
    let first = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let id = first.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_specs() {
        assert_eq!(array_spec(&[0, 1, 2, 3], None), "0-3");
        assert_eq!(array_spec(&[5], Some(2)), "5%2");
        assert_eq!(array_spec(&[2, 2, 4, 5, 9], None), "2,4-5,9");
    }

    #[test]
    fn script_asks_for_what_was_given() {
        let opts = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("00:30:00".into()),
            cpus_per_task: 8,
            mem: Some("8G".into()),
            array_limit: Some(10),
            ..SlurmOptions::default()
        };
        let task = format!(
            "{} train-run {}",
            shell_quote("/opt/cifar"),
            shell_quote("/scratch/it's")
        );
        let s = sbatch_script(
            &opts,
            &task,
            Path::new("/scratch/it's"),
            20,
            "preset fast, seeds 0..20",
        )
        .unwrap();
        for line in [
            "#SBATCH --array=0-19%10",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=00:30:00",
            "#SBATCH --mem=8G",
            "#SBATCH --signal=B:INT@120",
            "#SBATCH --output=/scratch/it's/logs/%a.log",
            "#   preset fast, seeds 0..20",
            "exec '/opt/cifar' train-run '/scratch/it'\\''s'",
            "export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"",
        ] {
            assert!(s.lines().any(|l| l == line), "no {line:?} in\n{s}");
        }
        assert!(!s.contains("--partition=\n"));
        let bad = SlurmOptions {
            partition: Some("a b".into()),
            ..SlurmOptions::default()
        };
        let e = sbatch_script(&bad, "c", Path::new("/s"), 1, "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("partition") && e.contains("a b"), "{e}");
        let e = sbatch_script(&SlurmOptions::default(), "c", Path::new("s"), 1, "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn job_ids() {
        assert_eq!(parse_job_id("1234\n").as_deref(), Some("1234"));
        assert_eq!(parse_job_id("77;cluster\n").as_deref(), Some("77"));
        assert_eq!(parse_job_id("Submitted batch job 5"), None);
    }
}
