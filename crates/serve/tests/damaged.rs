//! A damaged image never passes silently: a JPEG cut short is answered 422 naming what is missing, unless the
//! server allows partial images (`cifar serve --allow-partial`); `/model` tells which.

mod common;
use common::*;

fn cut_jpeg() -> Vec<u8> {
    let j = encode(
        &image::DynamicImage::ImageRgb8(picture(256, 192, 4)),
        image::ImageFormat::Jpeg,
    );
    j[..j.len() / 2].to_vec()
}

async fn post(url: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "image/jpeg")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_str(&r.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_jpeg_is_refused_unless_partial_images_are_allowed() {
    let s = TestServer::start(cifar10_serve::Config::default());
    let (status, v) = post(&format!("{}/predict", s.url), cut_jpeg()).await;
    assert_eq!(status, 422, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.starts_with("truncated: ") && e.contains("of the rows missing"),
        "{e}"
    );
    let m: serde_json::Value = serde_json::from_str(
        &reqwest::get(format!("{}/model", s.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(m["limits"]["allow_partial"], false, "{m}");

    let s = TestServer::start(cifar10_serve::Config {
        limits: predict::DecodeLimits {
            allow_partial: true,
            ..predict::DecodeLimits::default()
        },
        ..cifar10_serve::Config::default()
    });
    let (status, v) = post(&format!("{}/predict", s.url), cut_jpeg()).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["predictions"].is_array(), "{v}");
}
