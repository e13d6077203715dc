//! Downloads from a loopback HTTP server started by each test (no internet needed).

mod common;

use cifar10_dataset::{
    Checksum, DownloadOptions, Error, FetchConfig, FetchOptions, FetchOutcome, download_to,
    fetch_with, part_path,
};
use common::{Reply, SMALL, hex_md5, hex_sha256, serve, tree};
use std::time::Duration;

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn fast(expected: Vec<Checksum>) -> DownloadOptions {
    DownloadOptions {
        attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        read_timeout: Duration::from_secs(5),
        expected,
    }
}

fn fast_cfg() -> FetchConfig {
    FetchConfig {
        layout: SMALL,
        retry_base_delay: Duration::from_millis(5),
        ..Default::default()
    }
}

#[test]
fn success_reports_progress_to_total_and_verifies_md5() {
    let data = body(1_000_000);
    let server = serve(data.clone(), vec![Reply::Body { ranges: true }]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    let mut calls = Vec::new();
    download_to(
        &server.url,
        &dest,
        &fast(vec![
            Checksum::Md5(hex_md5(&data)),
            Checksum::Sha256(hex_sha256(&data)),
        ]),
        &mut |d, t| calls.push((d, t)),
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(!part_path(&dest).exists());
    assert!(calls.len() >= 2, "progress called {} times", calls.len());
    assert!(
        calls.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress must not go back"
    );
    assert_eq!(
        calls.last().unwrap(),
        &(data.len() as u64, Some(data.len() as u64))
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn md5_mismatch_is_an_error_and_leaves_no_file() {
    let data = body(10_000);
    let server = serve(data, vec![Reply::Body { ranges: true }]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    let wrong = "0".repeat(32);
    let err = download_to(
        &server.url,
        &dest,
        &fast(vec![Checksum::Md5(wrong.clone())]),
        &mut |_, _| {},
    )
    .unwrap_err();
    match &err {
        Error::ChecksumMismatch {
            algorithm,
            expected,
            ..
        } => {
            assert_eq!(*algorithm, "md5");
            assert_eq!(expected, &wrong);
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("md5 mismatch"), "{err}");
    assert_eq!(tree(dir.path()), Vec::<String>::new());
}

#[test]
fn official_url_path_checks_the_injected_md5_and_leaves_nothing() {
    let archive = common::build_targz(&common::good_entries(SMALL));
    let server = serve(archive.clone(), vec![Reply::Body { ranges: true }]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = FetchConfig {
        official_url: server.url.clone(),
        official_md5: "f".repeat(32),
        ..fast_cfg()
    };
    let opts = FetchOptions {
        url: Some(server.url.clone()),
        ..Default::default()
    };
    let err = fetch_with(dir.path(), &opts, &cfg, &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ChecksumMismatch {
                algorithm: "md5",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(tree(dir.path()), Vec::<String>::new());

    // With the right md5 the same flow succeeds and keeps the archive.
    let server = serve(archive.clone(), vec![Reply::Body { ranges: true }]);
    let cfg = FetchConfig {
        official_url: server.url.clone(),
        official_md5: hex_md5(&archive),
        ..fast_cfg()
    };
    let opts = FetchOptions {
        url: Some(server.url.clone()),
        ..Default::default()
    };
    let out = fetch_with(dir.path(), &opts, &cfg, &mut |_, _| {}).unwrap();
    assert_eq!(
        out,
        FetchOutcome::Downloaded {
            url: server.url.clone()
        }
    );
    assert!(SMALL.is_present(dir.path()));
    assert_eq!(
        std::fs::read(dir.path().join(cifar10_dataset::ARCHIVE_NAME)).unwrap(),
        archive
    );
}

#[test]
fn sha256_mismatch_on_a_mirror_is_an_error_and_leaves_nothing() {
    let archive = common::build_targz(&common::good_entries(SMALL));
    let server = serve(archive, vec![Reply::Body { ranges: true }]);
    let dir = tempfile::tempdir().unwrap();
    let opts = FetchOptions {
        url: Some(server.url.clone()),
        sha256: Some("ab".repeat(32)),
        ..Default::default()
    };
    let err = fetch_with(dir.path(), &opts, &fast_cfg(), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ChecksumMismatch {
                algorithm: "sha256",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&"ab".repeat(32)), "{err}");
    assert_eq!(tree(dir.path()), Vec::<String>::new());
}

#[test]
fn dropped_connection_is_resumed_with_a_range_request() {
    let data = body(300_000);
    let cut = 120_000;
    let server = serve(
        data.clone(),
        vec![Reply::CutAfter(cut), Reply::Body { ranges: true }],
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    let mut last = (0, None);
    download_to(
        &server.url,
        &dest,
        &fast(vec![Checksum::Sha256(hex_sha256(&data))]),
        &mut |d, t| last = (d, t),
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].range_start, None);
    assert_eq!(reqs[1].range_start, Some(cut as u64), "{reqs:?}");
    assert_eq!(last, (data.len() as u64, Some(data.len() as u64)));
}

#[test]
fn server_without_range_support_restarts_from_zero() {
    let data = body(50_000);
    let server = serve(
        data.clone(),
        vec![Reply::CutAfter(20_000), Reply::Body { ranges: false }],
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    download_to(
        &server.url,
        &dest,
        &fast(vec![Checksum::Md5(hex_md5(&data))]),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(server.requests()[1].range_start, Some(20_000));
}

#[test]
fn a_stale_part_from_an_earlier_run_is_resumed() {
    let data = body(40_000);
    let server = serve(data.clone(), vec![Reply::Body { ranges: true }]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    std::fs::write(part_path(&dest), &data[..15_000]).unwrap();
    download_to(
        &server.url,
        &dest,
        &fast(vec![Checksum::Md5(hex_md5(&data))]),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(server.requests()[0].range_start, Some(15_000));
}

#[test]
fn http_404_is_not_retried_and_names_url_and_status() {
    let server = serve(Vec::new(), vec![Reply::Status(404)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    let err = download_to(&server.url, &dest, &fast(vec![]), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 404, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("404") && msg.contains(&server.url), "{msg}");
    assert_eq!(server.requests().len(), 1, "4xx must not be retried");
    assert_eq!(tree(dir.path()), Vec::<String>::new());
}

#[test]
fn http_500_is_retried_then_reported() {
    let server = serve(Vec::new(), vec![Reply::Status(500)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    let err = download_to(&server.url, &dest, &fast(vec![]), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(
            err,
            Error::HttpStatus {
                status: 500,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert_eq!(server.requests().len(), 3);
    assert!(!dest.exists());
}

#[test]
fn transient_500_then_success() {
    let data = body(5_000);
    let server = serve(
        data.clone(),
        vec![Reply::Status(503), Reply::Body { ranges: true }],
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    download_to(&server.url, &dest, &fast(vec![]), &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
}

#[test]
fn connection_refused_is_a_network_error_after_retries() {
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/x.tar.gz");
    let dir = tempfile::tempdir().unwrap();
    let err = download_to(&url, &dir.path().join("x"), &fast(vec![]), &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, Error::Network { attempts: 3, .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[test]
fn kept_archive_is_re_extracted_without_downloading() {
    let archive = common::build_targz(&common::good_entries(SMALL));
    // The server answers exactly one download; any later request gets a 404.
    let server = serve(
        archive.clone(),
        vec![Reply::Body { ranges: true }, Reply::Status(404)],
    );
    let dir = tempfile::tempdir().unwrap();
    let opts = FetchOptions {
        url: Some(server.url.clone()),
        sha256: Some(hex_sha256(&archive)),
        ..Default::default()
    };
    let cfg = fast_cfg();
    assert!(matches!(
        fetch_with(dir.path(), &opts, &cfg, &mut |_, _| {}).unwrap(),
        FetchOutcome::Downloaded { .. }
    ));
    assert_eq!(
        fetch_with(dir.path(), &opts, &cfg, &mut |_, _| {}).unwrap(),
        FetchOutcome::AlreadyPresent
    );
    std::fs::remove_dir_all(dir.path().join(cifar10_dataset::BATCH_DIR)).unwrap();
    let out = fetch_with(dir.path(), &opts, &cfg, &mut |_, _| {}).unwrap();
    assert_eq!(
        out,
        FetchOutcome::Extracted {
            from: dir.path().join(cifar10_dataset::ARCHIVE_NAME)
        }
    );
    assert_eq!(server.requests().len(), 1);
    // --force downloads again (and here meets the 404).
    let forced = FetchOptions {
        force: true,
        ..opts
    };
    let err = fetch_with(dir.path(), &forced, &cfg, &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 2);
    // The previous extraction is untouched by the failed forced fetch.
    assert!(SMALL.is_present(dir.path()));
}
