//! Answers the proxy makes up instead of the emulator's: a throttling error
//! in each service's own protocol (as AWS sends it, so the SDK classifies it
//! as AWS's would be), a plain server error, and canned responses (recorded
//! API answers a test serves for states the emulator cannot produce).

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::call::Call;

/// A response given as is: status, headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canned {
    /// HTTP status.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Canned {
    /// An XML answer (the Query protocol's and S3's), e.g. a recorded
    /// `DescribeStacks` response with a status the emulator cannot reach.
    pub fn xml(status: u16, body: impl Into<String>) -> Canned {
        Canned {
            status,
            headers: vec![("content-type".to_owned(), "text/xml".to_owned())],
            body: body.into().into_bytes(),
        }
    }

    /// A Query protocol error (CloudFormation, STS, IAM): `code` and
    /// `message` in an `ErrorResponse`, as AWS sends them.
    pub fn query_error(status: u16, code: &str, message: &str) -> Canned {
        Canned::xml(
            status,
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>{REQUEST_ID}</RequestId></ErrorResponse>"
            ),
        )
    }

    pub(crate) fn response(&self) -> Response<Full<Bytes>> {
        let mut builder = Response::builder().status(self.status);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder
            .header("x-amzn-requestid", REQUEST_ID)
            .body(Full::new(Bytes::from(self.body.clone())))
            .expect("a canned response is valid HTTP")
    }
}

/// The request id of every made-up answer: says where it came from.
const REQUEST_ID: &str = "00000000-fa17-0000-0000-000000000000";

/// "Slow down" in `call`'s service's own protocol: CloudFormation, STS and
/// IAM `Throttling` (400, Query XML); S3 `SlowDown` (503, REST XML, no body
/// for HEAD); CloudWatch `Throttling` (400, RPC v2 CBOR with the Query
/// compatibility header the SDK reads the code from); JSON services
/// `ThrottlingException`; anything else a bare 503.
pub(crate) fn throttling(call: &Call, head: bool) -> Response<Full<Bytes>> {
    let canned = match call.service.as_str() {
        "cloudformation" | "sts" | "iam" => Canned::query_error(400, "Throttling", "Rate exceeded"),
        "s3" => Canned {
            status: 503,
            headers: vec![("content-type".to_owned(), "application/xml".to_owned())],
            body: if head {
                Vec::new()
            } else {
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                     <Message>Please reduce your request rate.</Message><RequestId>{REQUEST_ID}</RequestId>\
                     <HostId>fault-proxy</HostId></Error>"
                )
                .into_bytes()
            },
        },
        "monitoring" => Canned {
            status: 400,
            headers: vec![
                ("content-type".to_owned(), "application/cbor".to_owned()),
                ("smithy-protocol".to_owned(), "rpc-v2-cbor".to_owned()),
                ("x-amzn-query-error".to_owned(), "Throttling;Sender".to_owned()),
            ],
            body: cbor_error("com.amazonaws.cloudwatch#ThrottlingException", "Rate exceeded"),
        },
        "unsigned" => return server_error(503),
        _ => Canned {
            status: 400,
            headers: vec![("content-type".to_owned(), "application/x-amz-json-1.1".to_owned())],
            body: br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_vec(),
        },
    };
    canned.response()
}

/// A bare server error: no AWS error body at all, as a load balancer in
/// front of a service sends it.
pub(crate) fn server_error(status: u16) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(format!(
            "fault proxy: injected {status}\n"
        ))))
        .expect("a server error is valid HTTP")
}

/// `{"__type": type, "message": message}` in CBOR.
fn cbor_error(kind: &str, message: &str) -> Vec<u8> {
    let mut encoder = minicbor::Encoder::new(Vec::new());
    encoder
        .map(2)
        .and_then(|e| e.str("__type"))
        .and_then(|e| e.str(kind))
        .and_then(|e| e.str("message"))
        .and_then(|e| e.str(message))
        .expect("writing to a Vec cannot fail");
    encoder.into_writer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbor_error_is_a_two_entry_map() {
        let bytes = cbor_error("T", "m");
        let mut decoder = minicbor::Decoder::new(&bytes);
        assert_eq!(decoder.map().unwrap(), Some(2));
        let pairs: Vec<&str> = (0..4).map(|_| decoder.str().unwrap()).collect();
        assert_eq!(pairs, ["__type", "T", "message", "m"]);
    }
}
