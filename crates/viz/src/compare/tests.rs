//! The comparison's tests.

use super::charts::legend_layout;
use super::html::{duration, thousands};

#[test]
fn formats() {
    assert_eq!(thousands(1_738_890), "1,738,890");
    assert_eq!(thousands(999), "999");
    assert_eq!(duration(125.0), "2 min 05 s");
    assert_eq!(duration(7300.0), "2 h 01 min");
}

#[test]
fn legend_wraps_long_rows() {
    let labels: Vec<String> = (0..8)
        .map(|i| format!("a-rather-long-run-name-{i} (best 80.00%)"))
        .collect();
    crate::font::ensure_registered().unwrap();
    let (pos, rows) = legend_layout(&labels, 1000);
    assert!(rows >= 3, "{rows}");
    assert!(pos.iter().all(|&(x, _)| x < 1000));
    assert_eq!(legend_layout(&[], 1000).1, 0);
}
