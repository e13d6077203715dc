//! The bench's argument handling and figures.

use super::results::best_pairs;
use super::*;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

fn args(extra: &[&str]) -> Args {
    let mut v = vec!["bench"];
    v.extend_from_slice(extra);
    Cli::try_parse_from(v).unwrap().args
}

#[test]
fn collect_keys_lines_by_model_layout_compile_and_allocator() {
    let mut s = BTreeMap::new();
    let rust = "# header\n{\"bench\": \"train\", \"batch\": 64, \"img_per_s\": 100.0}\n\
                {\"bench\":\"train\",\"model\":\"airbench94\",\"batch\":1024,\"img_per_s\":50.0,\"precision\":\"bf16\"}\n\
                {\"bench\":\"train\",\"model\":\"airbench94\",\"batch\":1024,\"img_per_s\":30.0,\"precision\":\"bf16\",\"winograd\":\"f2\"}\n";
    collect(rust, CNN_DNN, "rust", Some(1.0), &mut s);
    let torch = "{\"model\": \"airbench94\", \"params_trainable\": 1}\n\
                 {\"bench\": \"train\", \"model\": \"airbench94\", \"batch\": 1024, \"layout\": \"nchw\", \"compile\": \"eager\", \"allocator\": \"jemalloc\", \"threads\": 2, \"img_per_s\": 40.0, \"img_per_s_min\": 38.0, \"img_per_s_max\": 41.0}\n\
                 {\"bench\": \"train\", \"model\": \"airbench94\", \"batch\": 1024, \"layout\": \"channels_last\", \"compile\": \"inductor\", \"allocator\": \"jemalloc\", \"img_per_s\": 45.0, \"compile_s\": 60.0}\n\
                 {\"bench\": \"infer\", \"model\": \"airbench94\", \"batch\": 256, \"layout\": \"nchw\", \"compile\": \"inductor\", \"allocator\": \"glibc\", \"error\": \"no compiler\"}\n";
    collect(torch, AIRBENCH94, "torch", None, &mut s);
    let key = |m: &str, b: &str, n, i: &str| (m.into(), b.into(), n, i.into());
    assert_eq!(s[&key(CNN_DNN, "train", 64, "rust")].rates, vec![100.0]);
    assert_eq!(
        s[&key(AIRBENCH94, "train", 1024, "rust-bf16")].rates,
        vec![50.0]
    );
    let eager = &s[&key(AIRBENCH94, "train", 1024, "torch-nchw-jemalloc")];
    assert_eq!(
        (eager.rates.clone(), eager.min, eager.max),
        (vec![40.0], 38.0, 41.0)
    );
    assert_eq!(eager.config["allocator"], "jemalloc");
    assert_eq!(eager.config["threads"], 2);
    let compiled = &s[&key(
        AIRBENCH94,
        "train",
        1024,
        "torch-channels_last-inductor-jemalloc",
    )];
    assert_eq!(compiled.compile_s, vec![60.0]);
    // Set Winograd tiles are a row of their own (`--precisions bf16+f2`), configured as such.
    let f2 = &s[&key(AIRBENCH94, "train", 1024, "rust-bf16-f2")];
    assert_eq!(
        (f2.rates.clone(), &f2.config["winograd"]),
        (vec![30.0], &serde_json::json!("f2"))
    );
    // The failed compile is not a row.
    assert_eq!(s.len(), 5);
    // Ours against their best row: 50 / 45.
    let pairs = best_pairs(&s);
    let (r, t, ratio) = pairs.iter().find(|(k, _, _)| k.0 == AIRBENCH94).unwrap();
    assert_eq!(
        (r.3.as_str(), t.3.as_str()),
        ("rust-bf16", "torch-channels_last-inductor-jemalloc")
    );
    assert!((ratio - 50.0 / 45.0).abs() < 1e-12);
}

#[test]
fn pytorch_gets_the_fair_setup_by_default() {
    let a = args(&[]);
    assert_eq!(a.torch_allocators, vec![Allocator::Auto]);
    let root = workspace_root();
    let all = sides(&a, &root, Path::new("archive.tar.gz"));
    let ab = all.iter().find(|s| s.model == AIRBENCH94).unwrap();
    let flag = |f: &str| {
        let i = ab.torch_args.iter().position(|x| x == f).unwrap();
        ab.torch_args[i + 1].clone()
    };
    assert_eq!(flag("--threads"), "2");
    assert_eq!(flag("--archive"), "archive.tar.gz");
    assert_eq!(flag("--layouts"), "nchw,channels_last");
    assert_eq!(flag("--compile-layouts"), "channels_last");
    assert_eq!(flag("--warmup"), "6");
    // As many timed steps as ours: 4 per repeat, 3 repeats.
    assert_eq!(flag("--steps"), "12");
    let a = args(&[
        "--no-compile",
        "--threads",
        "4",
        "--torch-allocators",
        "jemalloc,glibc",
    ]);
    assert_eq!(
        a.torch_allocators,
        vec![Allocator::Jemalloc, Allocator::Glibc]
    );
    let sides = sides(&a, &root, Path::new("x"));
    for s in &sides {
        // The Muon script has no torch.compile mode and gets no such flag.
        let i = s.torch_args.iter().position(|x| x == "--compile-layouts");
        match i {
            Some(i) => assert_eq!(s.torch_args[i + 1], "", "{}", s.model),
            None => assert_eq!(s.model, AIRBENCH94_MUON),
        }
        let i = s.torch_args.iter().position(|x| x == "--threads").unwrap();
        assert_eq!(s.torch_args[i + 1], "4", "{}", s.model);
    }
}

#[test]
fn workspace_root_holds_the_bench_scripts() {
    let root = workspace_root();
    assert!(root.join("Cargo.toml").is_file());
    assert!(root.join("bench/reference_seed.py").is_file());
    assert!(root.join("bench/airbench94_torch.py").is_file());
    assert!(root.join("bench/airbench94_muon_torch.py").is_file());
}

/// The Muon side times our preset's step against the Muon script at the same batch, as many steps.
#[test]
fn the_muon_side_times_the_preset_against_its_script() {
    let a = args(&["--model", "airbench94-muon", "--muon-batch", "1500"]);
    let all = sides(&a, &workspace_root(), Path::new("a.tar.gz"));
    assert_eq!(all.len(), 1);
    let s = &all[0];
    assert_eq!(s.model, AIRBENCH94_MUON);
    assert!(s.script.ends_with("bench/airbench94_muon_torch.py"));
    let flag = |args: &[String], f: &str| {
        let i = args.iter().position(|x| x == f).unwrap();
        args[i + 1].clone()
    };
    assert_eq!(flag(&s.rust_args, "--preset"), "airbench94-muon");
    assert_eq!(flag(&s.rust_args, "--train-batches"), "1500");
    assert_eq!(flag(&s.torch_args, "--batch"), "1500");
    assert_eq!(flag(&s.torch_args, "--steps"), "12");
}

/// `--isa avx2` caps PyTorch through its two variables and refuses a row that ran another ISA.
#[test]
fn the_isa_cap_reaches_pytorch_and_is_checked() {
    let mut cmd = Command::new("true");
    IsaCap::Avx2.apply_torch(&mut cmd);
    let envs: Vec<_> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    assert!(envs.contains(&("ATEN_CPU_CAPABILITY".into(), Some("avx2".into()))));
    assert!(envs.contains(&("DNNL_MAX_CPU_ISA".into(), Some("AVX2".into()))));
    let script = Path::new("s.py");
    let ok = serde_json::json!({"cpu_capability": "AVX2"});
    assert!(IsaCap::Avx2.check_torch_row(&ok, script).is_ok());
    let bad = serde_json::json!({"cpu_capability": "AVX512"});
    let e = IsaCap::Avx2
        .check_torch_row(&bad, script)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ATEN_CPU_CAPABILITY=avx2") && e.contains("AVX512"),
        "{e}"
    );
    assert!(
        IsaCap::Avx2
            .check_torch_row(&serde_json::json!({}), script)
            .is_err()
    );
}
