//! Which AWS call a request is: the service from its SigV4 credential scope
//! (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`), the action from
//! where each protocol puts it: the `Action=` field of a Query body
//! (CloudFormation, STS, IAM), the `/operation/NAME` path of RPC v2 CBOR
//! (CloudWatch), the `X-Amz-Target` header of JSON (SSM), or the method,
//! path and query of S3's REST protocol (path-style addressing).

use http::{HeaderMap, Method};

/// One AWS call as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The signing name: `cloudformation`, `s3`, `sts`, `monitoring`
    /// (CloudWatch), `iam`, `ssm`; `unsigned` for a request without SigV4.
    pub service: String,
    /// The API action, e.g. `CreateChangeSet` or `PutObject`; `unknown` when
    /// the request does not say.
    pub action: String,
}

impl Call {
    /// Classifies a request from its method, path and query, headers and body.
    pub fn classify(method: &Method, path_and_query: &str, headers: &HeaderMap, body: &[u8]) -> Call {
        let service = service_of(headers).unwrap_or_else(|| "unsigned".to_owned());
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let action = if service == "s3" {
            Some(s3_action(method, path, query))
        } else {
            query_action(body)
                .or_else(|| rpc_action(path))
                .or_else(|| json_action(headers))
        };
        Call {
            service,
            action: action.unwrap_or_else(|| "unknown".to_owned()),
        }
    }
}

/// The service of the SigV4 `Authorization` header's credential scope.
fn service_of(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    // KEY/DATE/REGION/SERVICE/aws4_request
    scope.split('/').nth(3).map(str::to_owned)
}

/// `Action=NAME` in a form-encoded Query protocol body.
fn query_action(body: &[u8]) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    body.split('&')
        .find_map(|field| field.strip_prefix("Action="))
        .map(str::to_owned)
}

/// `/service/SERVICE/operation/NAME` of the RPC v2 CBOR protocol.
fn rpc_action(path: &str) -> Option<String> {
    path.split_once("/operation/").map(|(_, name)| name.to_owned())
}

/// `X-Amz-Target: Prefix.NAME` of the JSON protocols.
fn json_action(headers: &HeaderMap) -> Option<String> {
    let target = headers.get("x-amz-target")?.to_str().ok()?;
    target.rsplit_once('.').map(|(_, name)| name.to_owned())
}

/// The S3 action of a path-style REST request.
fn s3_action(method: &Method, path: &str, query: &str) -> String {
    let has = |key: &str| {
        query
            .split('&')
            .any(|p| p == key || p.starts_with(&format!("{key}=")))
    };
    let object = path
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    let action = match (method.as_str(), object) {
        ("PUT", true) if has("partNumber") => "UploadPart",
        ("PUT", true) if has("tagging") => "PutObjectTagging",
        ("PUT", true) => "PutObject",
        ("PUT", false) => "CreateBucket",
        ("POST", true) if has("uploads") => "CreateMultipartUpload",
        ("POST", true) if has("uploadId") => "CompleteMultipartUpload",
        ("POST", false) if has("delete") => "DeleteObjects",
        ("DELETE", true) if has("uploadId") => "AbortMultipartUpload",
        ("DELETE", true) => "DeleteObject",
        ("DELETE", false) => "DeleteBucket",
        ("GET", true) if has("tagging") => "GetObjectTagging",
        ("GET", true) => "GetObject",
        ("GET", false) if has("list-type") => "ListObjectsV2",
        ("GET", false) => "ListObjects",
        ("HEAD", true) => "HeadObject",
        ("HEAD", false) => "HeadBucket",
        _ => "unknown",
    };
    action.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(service: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!(
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00"
            )
            .parse()
            .unwrap(),
        );
        headers
    }

    /// (service, method, path and query, headers, body, the action expected)
    type Case = (
        &'static str,
        Method,
        &'static str,
        HeaderMap,
        &'static [u8],
        &'static str,
    );

    #[test]
    fn each_protocol_names_its_action() {
        let cases: [Case; 9] = [
            (
                "cloudformation",
                Method::POST,
                "/",
                signed("cloudformation"),
                b"Action=CreateChangeSet&Version=2010-05-15&StackName=A",
                "CreateChangeSet",
            ),
            (
                "sts",
                Method::POST,
                "/",
                signed("sts"),
                b"Action=AssumeRole&Version=2011-06-15",
                "AssumeRole",
            ),
            (
                "monitoring",
                Method::POST,
                "/service/GraniteServiceVersion20100801/operation/PutMetricData",
                signed("monitoring"),
                b"\xa0",
                "PutMetricData",
            ),
            (
                "s3",
                Method::PUT,
                "/bucket/a/b.json?x-id=PutObject",
                signed("s3"),
                b"{}",
                "PutObject",
            ),
            (
                "s3",
                Method::PUT,
                "/bucket/a.tar.zst?partNumber=2&uploadId=u1&x-id=UploadPart",
                signed("s3"),
                b"",
                "UploadPart",
            ),
            (
                "s3",
                Method::POST,
                "/bucket/a.tar.zst?uploadId=u1",
                signed("s3"),
                b"<CompleteMultipartUpload/>",
                "CompleteMultipartUpload",
            ),
            (
                "s3",
                Method::POST,
                "/bucket/a.tar.zst?uploads",
                signed("s3"),
                b"",
                "CreateMultipartUpload",
            ),
            (
                "s3",
                Method::GET,
                "/bucket?list-type=2&prefix=p%2F",
                signed("s3"),
                b"",
                "ListObjectsV2",
            ),
            ("s3", Method::HEAD, "/bucket/key", signed("s3"), b"", "HeadObject"),
        ];
        for (service, method, path, headers, body, action) in cases {
            let call = Call::classify(&method, path, &headers, body);
            assert_eq!(call.service, service, "{path}");
            assert_eq!(call.action, action, "{path}");
        }
        let mut json = signed("ssm");
        json.insert("x-amz-target", "AmazonSSM.GetParameter".parse().unwrap());
        assert_eq!(
            Call::classify(&Method::POST, "/", &json, b"{}").action,
            "GetParameter"
        );
        let unsigned = Call::classify(&Method::GET, "/bucket/key", &HeaderMap::new(), b"");
        assert_eq!(
            (unsigned.service.as_str(), unsigned.action.as_str()),
            ("unsigned", "unknown")
        );
    }
}
