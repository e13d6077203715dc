//! A checkpoint's own classes reach the page and the JSON API as they are: 100 classes, names with spaces and
//! non-ASCII letters.

mod common;

use common::{CIFAR10_NORM, TestServer, png};
use std::collections::HashMap;

fn names() -> Vec<String> {
    (0..100)
        .map(|k| match k {
            0 => "chat noir".to_string(),
            1 => "élan".to_string(),
            2 => "Ähre & \"Korn\"".to_string(),
            3 => "<b>not bold</b>".to_string(),
            _ => format!("class {k}"),
        })
        .collect()
}

/// Replaces the server's checkpoint with a 100-class LeNet-5 whose metadata names the classes above.
fn hundred_classes(dir: &std::path::Path) {
    let m = model::registry::build("lenet5", &candle_core::Device::Cpu, 1, 100).unwrap();
    let meta = HashMap::from([
        ("normalize".to_string(), CIFAR10_NORM.to_string()),
        (
            model::checkpoint::keys::CLASS_NAMES.to_string(),
            serde_json::to_string(&names()).unwrap(),
        ),
    ]);
    model::checkpoint::save_model(m.as_ref(), &dir.join("best.safetensors"), meta).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_class_checkpoint_shows_its_own_class_names() {
    let s = TestServer::start_with(cifar10_serve::Config::default(), hundred_classes);
    let client = reqwest::Client::new();

    let text = client
        .get(format!("{}/model", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&text).unwrap();
    let listed: Vec<String> = serde_json::from_value(info["class_names"].clone()).unwrap();
    assert_eq!(listed, names(), "{info}");

    let r = client
        .post(format!("{}/predict?top_k=100", s.url))
        .header("content-type", "image/png")
        .body(png(40, 40, 5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 100, "{v}");
    let mut seen: Vec<String> = preds
        .iter()
        .map(|p| p["class"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    let mut want = names();
    want.sort();
    assert_eq!(seen, want);
    let total: f64 = preds.iter().map(|p| p["p"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-3, "{total}");

    // The page is served as UTF-8 and reads the names from /model; it never embeds them as markup.
    let r = client.get(format!("{}/", s.url)).send().await.unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.contains("utf-8") || ct.contains("UTF-8"), "{ct}");
    let page = r.text().await.unwrap();
    assert!(!page.contains("<b>not bold</b>"));
}
