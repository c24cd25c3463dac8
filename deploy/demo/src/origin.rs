//! The demo origin: a few pages with the cache headers a real site would send.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Serves the sample site on `address` until the process ends.
pub async fn serve(address: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| {
            anyhow::anyhow!("cannot listen on {address} for the demo origin: {error}")
        })?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request| async move {
                    Ok::<_, Infallible>(page(&request))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}

fn page(request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let (status, cache_control, content_type, body): (StatusCode, &str, &str, String) = match path {
        "/" => (
            StatusCode::OK,
            "public, max-age=30",
            "text/html; charset=utf-8",
            "<!doctype html><title>GeoCDN demo</title><h1>Served through the nearest edge</h1>\n"
                .into(),
        ),
        "/hello.txt" => (
            StatusCode::OK,
            "public, max-age=60",
            "text/plain",
            "hello from the origin\n".into(),
        ),
        "/time" => (
            StatusCode::OK,
            "no-store",
            "text/plain",
            format!(
                "{}\n",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            ),
        ),
        _ if path.starts_with("/img/") => (
            StatusCode::OK,
            "public, max-age=300, stale-while-revalidate=60",
            "application/octet-stream",
            "x".repeat(16 * 1024),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "max-age=10",
            "text/plain",
            "not found\n".into(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        "cache-control",
        hyper::header::HeaderValue::from_static(cache_control),
    );
    headers.insert(
        "content-type",
        hyper::header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        "etag",
        hyper::header::HeaderValue::from_static("\"demo-v1\""),
    );
    response
}
