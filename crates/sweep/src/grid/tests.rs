//! Unit tests of the grid: seeds, axes, run names and the grid comparison.

use super::*;

#[test]
fn seeds_parse_lists_and_ranges() {
    assert_eq!(parse_seeds("0..5").unwrap(), vec![0, 1, 2, 3, 4]);
    assert_eq!(parse_seeds("3").unwrap(), vec![3]);
    assert_eq!(parse_seeds(" 1, 4 ,2").unwrap(), vec![1, 4, 2]);
    assert_eq!(parse_seeds("0..=2,9").unwrap(), vec![0, 1, 2, 9]);
    for (bad, needle) in [
        ("5..5", "empty"),
        ("5..2", "empty"),
        ("3..=2", "empty"),
        ("", "empty item"),
        ("1,,2", "empty item"),
        ("a..3", "expected a number"),
        ("-1", "expected a number"),
        ("0..3,2", "twice"),
        ("0..1000000", "more than"),
    ] {
        let e = parse_seeds(bad).unwrap_err().to_string();
        assert!(e.contains(needle), "{bad:?}: {e}");
    }
}

#[test]
fn axes_print_as_written() {
    for (text, shown) in [
        ("lr=0.002,0.004", "lr=0.002,0.004"),
        ("precision = f32, bf16", "precision=f32,bf16"),
        ("augment.flip-prob=0.5", "augment.flip_prob=0.5"),
        ("patience=null,3", "patience=null,3"),
        ("stratified=true", "stratified=true"),
    ] {
        let a = Axis::parse(text).unwrap();
        assert_eq!(a.to_string(), shown, "{text:?}");
        assert_eq!(Axis::parse(shown).unwrap(), a, "{shown:?} parses back");
    }
}

#[test]
fn axes_parse_json_or_strings() {
    let a = Axis::parse("precision=f32,bf16").unwrap();
    assert_eq!(a.setting, "precision");
    assert_eq!(a.values, vec![Value::from("f32"), Value::from("bf16")]);
    let a = Axis::parse("limit-train=1000,null").unwrap();
    assert_eq!(a.setting, "limit_train");
    assert_eq!(a.values, vec![Value::from(1000), Value::Null]);
    assert!(
        Axis::parse("lr")
            .unwrap_err()
            .to_string()
            .contains("setting=value")
    );
    assert!(
        Axis::parse("lr=1,,2")
            .unwrap_err()
            .to_string()
            .contains("empty value")
    );
    assert!(
        Axis::parse("lr=1,1")
            .unwrap_err()
            .to_string()
            .contains("twice")
    );
}

fn fast() -> TrainConfig {
    TrainConfig::preset("fast").unwrap()
}

#[test]
fn grid_expands_seeds_slowest_with_names_and_labels() {
    let axes = vec![
        Axis::parse("lr=0.002,0.004").unwrap(),
        Axis::parse("precision=bf16,f32").unwrap(),
        Axis::parse("epochs=2").unwrap(),
    ];
    let g = Grid::new(&fast(), axes, vec![7, 8]).unwrap();
    let runs = g.runs();
    assert_eq!(runs.len(), 8);
    // The fixed setting (one value) is in every run's configuration but names nothing.
    assert_eq!(runs[0].name, "lr-0.002_precision-bf16_seed-7");
    assert_eq!(runs[1].name, "lr-0.002_precision-f32_seed-7");
    assert_eq!(runs[2].name, "lr-0.004_precision-bf16_seed-7");
    assert_eq!(runs[4].name, "lr-0.002_precision-bf16_seed-8");
    assert_eq!(runs[0].label, "lr=0.002 precision=bf16");
    assert_eq!(runs[6].index, 6);
    let cfg = g.config(6, std::path::Path::new("/data"), "cpu").unwrap();
    assert_eq!(cfg.lr, 0.004);
    assert_eq!(cfg.seed, 8);
    assert_eq!(cfg.epochs, 2);
    assert_eq!(
        serde_json::to_value(cfg.precision).unwrap(),
        Value::from("bf16")
    );
    assert_eq!(cfg.data_dir, std::path::PathBuf::from("/data"));
    assert_eq!(cfg.preset, "fast");
    let e = g.config(8, std::path::Path::new("d"), "cpu").unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    assert!(e.to_string().contains("0 to 7"), "{e}");
    // Without axes: one configuration, labelled by the preset.
    let g = Grid::new(&fast(), vec![], vec![0, 1]).unwrap();
    assert_eq!(g.runs()[1].name, "seed-1");
    assert_eq!(g.runs()[1].label, "fast");
}

#[test]
fn bad_overrides_name_the_setting() {
    let e = Grid::new(
        &fast(),
        vec![Axis::parse("learning_rate=1").unwrap()],
        vec![0],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("learning_rate") && e.contains("unknown setting") && e.contains("lr"),
        "{e}"
    );
    let e = Grid::new(
        &fast(),
        vec![Axis::parse("augment.flipp=1").unwrap()],
        vec![0],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("augment.flip_prob"), "{e}");
    let e = Grid::new(&fast(), vec![Axis::parse("lr=fast").unwrap()], vec![0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"lr\"") && e.contains("fast"), "{e}");
    let e = Grid::new(&fast(), vec![Axis::parse("lr=-1").unwrap()], vec![0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"lr\"") && e.contains("positive"), "{e}");
    let e = Grid::new(&fast(), vec![Axis::parse("seed=1,2").unwrap()], vec![0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("seeds are a list"), "{e}");
    let e = Grid::new(&fast(), vec![Axis::parse("data_dir=x").unwrap()], vec![0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("whole sweep"), "{e}");
}

#[test]
fn fractional_epochs_and_differences() {
    let g = Grid::new(&fast(), vec![Axis::parse("epochs=1,2.5").unwrap()], vec![0]).unwrap();
    let a = g.config(0, std::path::Path::new("d"), "cpu").unwrap();
    let b = g.config(1, std::path::Path::new("d"), "cpu").unwrap();
    assert_eq!((a.epochs, a.fractional_epochs), (1, None));
    assert_eq!((b.epochs, b.fractional_epochs), (3, Some(2.5)));
    let h = Grid::new(
        &fast(),
        vec![Axis::parse("epochs=1,2.5").unwrap()],
        vec![0, 1],
    )
    .unwrap();
    assert!(g.difference(&g.clone()).is_none());
    assert!(g.difference(&h).unwrap().contains("seeds"));
    let mut other = fast();
    other.lr = 0.1;
    let k = Grid::new(&other, g.axes.clone(), vec![0]).unwrap();
    assert!(
        g.difference(&k).unwrap().contains("lr"),
        "{:?}",
        g.difference(&k)
    );
    // The device and the data directory are the sweep's, not the grid's.
    let mut moved = fast();
    moved.data_dir = "elsewhere".into();
    moved.device = "cpu".into();
    let m = Grid::new(&moved, g.axes.clone(), vec![0]).unwrap();
    assert!(g.difference(&m).is_none());
}
