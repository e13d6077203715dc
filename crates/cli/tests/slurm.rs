//! `cifar sweep --slurm --submit` on a real single-node Slurm: the test starts `munged`, `slurmctld` and `slurmd`
//! on loopback with a generated `slurm.conf` (everything under a temporary directory, ports of its own), submits
//! a 4-task array of tiny runs, kills one task mid-run, checks that `cifar sweep status` names it and that a
//! resubmission completes it, and stops every daemon it started (also when it fails).
//!
//! Ignored by default (it needs root and Debian's `slurm-wlm` and `munge`); CI installs them and runs
//! `cargo test --release -p cli --test slurm -- --ignored --nocapture`. Without them it says so and skips.
//! Data: the real archive at `<workspace>/../shared/data/cifar-10-binary.tar.gz` when present, else generated
//! records of the official layout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const SHARED_ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/cifar-10-binary.tar.gz"
);

fn on_path(program: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(PathBuf::from)
        .chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        )
        .any(|d| d.join(program).is_file())
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn check(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The daemons of one test cluster; dropping it cancels its jobs and stops every daemon it started.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    pid_files: Vec<PathBuf>,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            conf: dir.join("slurm.conf"),
            pid_files: Vec::new(),
        };
        // munged, as the munge user, with a key of its own.
        let munge = dir.join("munge");
        std::fs::create_dir_all(&munge).unwrap();
        let key = munge.join("munge.key");
        check(
            Command::new("mungekey")
                .arg("--create")
                .arg(format!("--keyfile={}", key.display())),
        );
        check(
            Command::new("chown")
                .args(["-R", "munge:munge"])
                .arg(&munge),
        );
        check(Command::new("chmod").arg("0400").arg(&key));
        check(Command::new("chmod").arg("0755").arg(&munge));
        let socket = munge.join("munge.socket");
        cluster.pid_files.push(munge.join("munged.pid"));
        check(
            Command::new("runuser")
                .args(["-u", "munge", "--", "munged", "--force"])
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--log-file={}", munge.join("munged.log").display()))
                .arg(format!("--pid-file={}", munge.join("munged.pid").display()))
                .arg(format!(
                    "--seed-file={}",
                    munge.join("munged.seed").display()
                )),
        );
        let host = check(&mut Command::new("hostname")).trim().to_string();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        for sub in ["state", "spool", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let d = dir.display();
        let conf = format!(
            "ClusterName=cifartest\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={ctld}\n\
             SlurmdPort={slurmd}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             AuthInfo=socket={socket}\n\
             CredType=cred/munge\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/log/slurmctld.log\n\
             SlurmdLogFile={d}/log/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\n\
             SchedulerType=sched/backfill\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\n\
             ReturnToService=2\n\
             MpiDefault=none\n\
             SwitchType=switch/none\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN\n\
             PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            ctld = free_port(),
            slurmd = free_port(),
            socket = socket.display(),
        );
        std::fs::write(&cluster.conf, conf).unwrap();
        // Pushed before the start, so that a half-started cluster is stopped too.
        cluster.pid_files.push(dir.join("slurmctld.pid"));
        check(
            Command::new("slurmctld")
                .arg("-f")
                .arg(&cluster.conf)
                .arg("-i"),
        );
        cluster.pid_files.push(dir.join("slurmd.pid"));
        check(Command::new("slurmd").arg("-f").arg(&cluster.conf));
        let start = Instant::now();
        loop {
            let o = run(cluster.cmd("sinfo").args(["-h", "-o", "%t"]));
            let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if state == "idle" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the node did not come up (sinfo: {state:?}, {}); logs in {}",
                String::from_utf8_lossy(&o.stderr),
                cluster.dir.display()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        cluster
    }

    /// A command that talks to this cluster.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Waits until job `id` has left the queue.
    fn wait(&self, id: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            let out = check(self.cmd("squeue").args(["-h", "-j", id, "-o", "%i %t"]));
            if out.trim().is_empty() {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "job {id} still queued after {limit:?}: {out}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Jobs first (their processes outlive slurmd), then the daemons, newest first.
        let _ = self.cmd("scancel").args(["--user", "root"]).output();
        std::thread::sleep(Duration::from_millis(500));
        for pid_file in self.pid_files.iter().rev() {
            let Some(pid) = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            else {
                continue;
            };
            let _ = Command::new("kill").arg(pid.to_string()).output();
            let proc_dir = PathBuf::from(format!("/proc/{pid}"));
            let start = Instant::now();
            while proc_dir.exists() && start.elapsed() < Duration::from_secs(10) {
                let zombie = std::fs::read_to_string(proc_dir.join("stat"))
                    .map(|s| s.contains(") Z"))
                    .unwrap_or(true);
                if zombie {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if proc_dir.exists() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
            }
        }
    }
}

/// CIFAR-10 in `data`: the real archive extracted when it is there, else generated records of the official
/// layout (5 x 10,000 training and 10,000 test records).
fn data(data: &Path) -> &'static str {
    let archive = Path::new(SHARED_ARCHIVE);
    if archive.is_file() {
        let opts = dataset::FetchOptions {
            from: Some(archive.to_path_buf()),
            ..Default::default()
        };
        dataset::fetch(data, &opts, &mut |_, _| {}).unwrap();
        return "the real archive";
    }
    let dir = data.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("batches.meta.txt"),
        "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n",
    )
    .unwrap();
    for (k, name) in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ]
    .iter()
    .enumerate()
    {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(dir.join(format!("{name}.bin"))).unwrap(),
        );
        for i in 0..10_000usize {
            let label = (i % 10) as u8;
            f.write_all(&[label]).unwrap();
            // A class-dependent brightness plus a pattern, so that there is something to learn.
            let px: Vec<u8> = (0..3072usize)
                .map(|j| ((usize::from(label) * 20 + (j * 7 + i * 13 + k) % 50) % 256) as u8)
                .collect();
            f.write_all(&px).unwrap();
        }
        f.flush().unwrap();
    }
    "generated data"
}

fn cifar(cluster: &Cluster) -> Command {
    let mut c = cluster.cmd(env!("CARGO_BIN_EXE_cifar"));
    c.env("RUST_LOG", "warn").env_remove("CIFAR10_URL");
    c
}

fn task_pid(run_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(run_dir.join("sweep_task.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    (v["state"] == "running" && !run_dir.join("test_report.json").exists())
        .then(|| v["pid"].as_u64())
        .flatten()
        .map(|p| p as u32)
}

#[test]
#[ignore = "starts a real Slurm (root, slurm-wlm and munge): cargo test -p cli --test slurm -- --ignored"]
fn sweep_array_on_a_real_single_node_slurm() {
    let missing: Vec<&str> = [
        "munged",
        "mungekey",
        "slurmctld",
        "slurmd",
        "sbatch",
        "squeue",
        "sinfo",
        "scancel",
        "runuser",
    ]
    .into_iter()
    .filter(|p| !on_path(p))
    .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED: Slurm is not installed (missing {}): apt-get install slurm-wlm munge",
            missing.join(", ")
        );
        return;
    }
    let uid = check(Command::new("id").arg("-u"));
    if uid.trim() != "0" {
        eprintln!(
            "SKIPPED: the test cluster runs its daemons as root (SlurmUser=root); this is uid {uid}"
        );
        return;
    }
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    // The munge user must reach its directory.
    check(Command::new("chmod").arg("0755").arg(tmp.path()));
    let data_dir = tmp.path().join("data");
    let source = data(&data_dir);
    let cluster = Cluster::start(&tmp.path().join("slurm"));
    eprintln!(
        "cluster up in {:.1}s ({source})",
        t0.elapsed().as_secs_f64()
    );

    let sweep = tmp.path().join("sweep");
    let submit = |cluster: &Cluster| -> String {
        let o = run(cifar(cluster)
            .args([
                "sweep",
                "--preset",
                "fast",
                "--seeds",
                "0..4",
                "--set",
                "epochs=1",
                "--set",
                "limit_train=1000",
            ])
            .args([
                "--device",
                "cpu",
                "--slurm",
                "--submit",
                "--cpus-per-task",
                "1",
                "--time",
                "10",
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--out")
            .arg(&sweep));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "cifar sweep --submit failed: {out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out.lines()
            .find_map(|l| l.strip_prefix("submitted job "))
            .and_then(|rest| rest.split(':').next())
            .unwrap_or_else(|| panic!("no job id in {out}"))
            .to_string()
    };
    let job = submit(&cluster);
    let script = std::fs::read_to_string(sweep.join("submit.sbatch")).unwrap();
    assert!(
        script.contains("#SBATCH --array=0-3") && script.contains("#SBATCH --cpus-per-task=1"),
        "{script}"
    );

    // Kill one task mid-run (as the OOM killer or a lost node would): the first seen training.
    let runs: Vec<PathBuf> = (0..4).map(|s| sweep.join(format!("seed-{s}"))).collect();
    let start = Instant::now();
    let (killed, pid) = loop {
        if let Some(found) = runs
            .iter()
            .find_map(|r| task_pid(r).map(|p| (r.clone(), p)))
        {
            break found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no task started training within 5 minutes; logs in {}",
            sweep.join("logs").display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    check(Command::new("kill").args(["-9", &pid.to_string()]));
    let killed_name = killed.file_name().unwrap().to_string_lossy().into_owned();
    eprintln!(
        "killed {killed_name} (pid {pid}) after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    cluster.wait(&job, Duration::from_secs(900));
    eprintln!("first array done after {:.1}s", t0.elapsed().as_secs_f64());

    let status = check(cifar(&cluster).args(["sweep", "status"]).arg(&sweep));
    let line = status
        .lines()
        .find(|l| l.contains(&killed_name))
        .unwrap_or_else(|| panic!("status does not name {killed_name}:\n{status}"));
    assert!(
        line.contains("failed") && line.contains("ended without a word"),
        "{status}"
    );
    assert!(
        status.contains("3 finished") && status.contains("1 failed"),
        "{status}"
    );
    assert!(
        status.contains("resubmit them: sbatch --array="),
        "{status}"
    );

    // The same command submits only the failed run.
    let job2 = submit(&cluster);
    cluster.wait(&job2, Duration::from_secs(600));
    eprintln!("resubmission done after {:.1}s", t0.elapsed().as_secs_f64());
    let status = check(cifar(&cluster).args(["sweep", "status"]).arg(&sweep));
    assert!(status.contains("4 finished"), "{status}");
    for r in &runs {
        for f in [
            "config.json",
            "history.json",
            "test_report.json",
            "best.safetensors",
            "run_summary.json",
        ] {
            assert!(r.join(f).is_file(), "{} has no {f}", r.display());
        }
    }
    for i in 0..4 {
        assert!(sweep.join(format!("logs/{i}.log")).is_file());
    }
    let killed_log = std::fs::read_to_string(sweep.join(format!(
        "logs/{}.log",
        runs.iter().position(|r| *r == killed).unwrap()
    )))
    .unwrap();
    assert_eq!(
        killed_log.matches(" of job ").count(),
        2,
        "two attempts in the killed task's log:\n{killed_log}"
    );
    let report = check(cifar(&cluster).args(["sweep", "report"]).arg(&sweep));
    assert!(report.contains("4/4"), "{report}");
    let html = std::fs::read_to_string(sweep.join("sweep.html")).unwrap();
    assert_eq!(
        html.matches("<circle").count() - 2,
        8,
        "4 runs with and without TTA (+ legend)"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sweep.join("sweep_report.json")).unwrap())
            .unwrap();
    assert_eq!(json["configs"][0]["accuracy"]["n"], 4);
    eprintln!("done in {:.1}s", t0.elapsed().as_secs_f64());
    drop(cluster);
}
