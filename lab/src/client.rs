//! A keep-alive HTTP/1.1 client for one of the lab's services: JSON POSTs, one at a time.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::error::LabError;

/// One keep-alive connection to a service.
#[derive(Debug)]
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    /// Connects to `address` over plain HTTP.
    pub async fn connect(address: SocketAddr) -> Result<Self, LabError> {
        let stream =
            tokio::net::TcpStream::connect(address)
                .await
                .map_err(|e| LabError::Connect {
                    address,
                    detail: e.to_string(),
                })?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    /// POSTs `body` as JSON to `path`; returns the status and the answer's JSON (`null` when
    /// the answer is not JSON).
    pub async fn post(&mut self, path: &str, body: String) -> Result<(u16, Value), LabError> {
        self.sender.ready().await?;
        let request = hyper::Request::post(path)
            .header("host", "lab")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| LabError::Http(e.to_string()))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    /// POSTs `body` as a form (`application/x-www-form-urlencoded`) to `path`, as a browser
    /// does when its button is pressed; returns the status and the answer's body as text
    /// (lossy UTF-8).
    pub async fn post_form(&mut self, path: &str, body: &str) -> Result<(u16, String), LabError> {
        self.sender.ready().await?;
        let request = hyper::Request::post(path)
            .header("host", "lab")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body.to_owned())))
            .map_err(|e| LabError::Http(e.to_string()))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// GETs `path`; returns the status and the answer's body as text (lossy UTF-8): for
    /// `/healthz` and `/metrics`.
    pub async fn get(&mut self, path: &str) -> Result<(u16, String), LabError> {
        self.sender.ready().await?;
        let request = hyper::Request::get(path)
            .header("host", "lab")
            .body(Full::new(Bytes::new()))
            .map_err(|e| LabError::Http(e.to_string()))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
