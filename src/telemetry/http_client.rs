//! The OTLP exporter's HTTP client: ureq (stile's blocking client, already built), on the
//! export thread. The collector is the operator's own address, so the receivers' rules
//! (the SSRF guard, `delivery.proxy`) do not apply to it, and no proxy from the
//! environment is used.

use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

/// The most of a collector's answer read (it is a small protobuf message).
const MAX_ANSWER: u64 = 64 * 1024;

/// ureq as an [`HttpClient`].
#[derive(Debug)]
pub(super) struct UreqClient(ureq::Agent);

impl UreqClient {
    /// A client whose requests take at most `timeout`, connect to last byte.
    pub(super) fn new(timeout: Duration) -> UreqClient {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(timeout))
            .build()
            .into();
        UreqClient(agent)
    }
}

#[async_trait::async_trait]
impl HttpClient for UreqClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (head, body) = request.into_parts();
        let mut answer = self.0.run(Request::from_parts(head, body.to_vec()))?;
        let status = answer.status();
        let body = answer.body_mut().with_config().limit(MAX_ANSWER).read_to_vec()?;
        Ok(Response::builder().status(status).body(Bytes::from(body))?)
    }
}
