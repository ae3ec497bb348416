//! A fault-injecting HTTP proxy for tests and benchmarks: it listens on
//! 127.0.0.1 in front of the local AWS emulator (the SDK reaches it through
//! `AWS_ENDPOINT_URL`), forwards every request, and instead answers some of
//! them with a fault:
//!
//! - **rules** match one action (and optionally one service) and answer it
//!   with a fault or a canned response (a recorded AWS answer for a state the
//!   emulator cannot produce), a given number of times or always, optionally
//!   after letting the first matching calls through;
//! - **random faults** hit a seeded share of the other signed requests with
//!   one of the given kinds.
//!
//! Faults are real: a throttling error in the service's own protocol, a bare
//! 500/503, a connection closed before the request reaches the emulator, a
//! connection closed after the emulator answered (the call happened, its
//! answer is lost), and an answer held back for seconds.
//!
//! The proxy runs on a thread of its own with its own runtime, so a plain
//! test, a `#[tokio::test]` and `cargo xtask bench` use it alike; it stops
//! when dropped. Every exchange is logged for the test to check.

mod answer;
mod call;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

pub use answer::Canned;
pub use call::Call;

/// What the proxy does instead of (or besides) forwarding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The service's own throttling error (CloudFormation/STS/IAM
    /// `Throttling` 400, S3 `SlowDown` 503, CloudWatch `Throttling`);
    /// the emulator never sees the request.
    Throttle,
    /// A bare HTTP error of this status (500, 503), without an AWS error
    /// body; the emulator never sees the request.
    ServerError(u16),
    /// The connection is closed before any response; the emulator never
    /// sees the request.
    CloseBeforeForward,
    /// The request is forwarded and answered by the emulator, then the
    /// connection is closed without the answer: the call happened, the
    /// client cannot know.
    CloseAfterForward,
    /// The emulator's answer is held back this long before it is sent.
    Slow(Duration),
}

impl Fault {
    /// How long [`Fault::all`]'s slow answers are held back.
    pub const SLOW: Duration = Duration::from_secs(3);

    /// Every kind once (500 and 503 both, the slow one held [`Fault::SLOW`]):
    /// the mix random faults draw from by default.
    pub fn all() -> Vec<Fault> {
        vec![
            Fault::Throttle,
            Fault::ServerError(500),
            Fault::ServerError(503),
            Fault::CloseBeforeForward,
            Fault::CloseAfterForward,
            Fault::Slow(Fault::SLOW),
        ]
    }

    /// The kinds that fail a request outright (no slow answers): what a
    /// sustained outage is made of.
    pub fn failing() -> Vec<Fault> {
        vec![
            Fault::Throttle,
            Fault::ServerError(500),
            Fault::ServerError(503),
            Fault::CloseBeforeForward,
            Fault::CloseAfterForward,
        ]
    }
}

/// How a rule answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A fault.
    Fault(Fault),
    /// This response, without asking the emulator.
    Canned(Canned),
    /// Forwards the call, and from then on these random faults apply (an
    /// outage that starts at a given call: [`RandomFaults::outage`]).
    ForwardThen(RandomFaults),
}

impl From<Fault> for Answer {
    fn from(fault: Fault) -> Self {
        Answer::Fault(fault)
    }
}

impl From<Canned> for Answer {
    fn from(canned: Canned) -> Self {
        Answer::Canned(canned)
    }
}

/// Answers calls of one action; the first rule that matches a call (and is
/// not used up) decides, before any random fault.
#[derive(Debug, Clone)]
pub struct Rule {
    service: Option<String>,
    action: String,
    /// Matching calls let through before the rule applies.
    skip: u32,
    /// How many more times it applies; `None`: always.
    remaining: Option<u32>,
    answer: Answer,
}

impl Rule {
    /// Answers the next call of `action` (any service) with `answer`, once.
    pub fn on(action: &str, answer: impl Into<Answer>) -> Rule {
        Rule {
            service: None,
            action: action.to_owned(),
            skip: 0,
            remaining: Some(1),
            answer: answer.into(),
        }
    }

    /// Only calls to this service (its signing name: `cloudformation`,
    /// `s3`, `sts`, `monitoring`, ...).
    pub fn service(mut self, service: &str) -> Rule {
        self.service = Some(service.to_owned());
        self
    }

    /// Applies `n` times instead of once.
    pub fn times(mut self, n: u32) -> Rule {
        self.remaining = Some(n);
        self
    }

    /// Applies to every matching call.
    pub fn always(mut self) -> Rule {
        self.remaining = None;
        self
    }

    /// Lets the first `n` matching calls through first.
    pub fn after(mut self, n: u32) -> Rule {
        self.skip = n;
        self
    }

    /// Whether the rule is about `call` and not used up.
    fn matches(&self, call: &Call) -> bool {
        call.action == self.action
            && self.service.as_ref().is_none_or(|s| *s == call.service)
            && self.remaining != Some(0)
    }

    /// Applies the rule once.
    fn apply(&mut self) -> Answer {
        if let Some(n) = &mut self.remaining {
            *n -= 1;
        }
        self.answer.clone()
    }
}

/// A seeded share of faults over every signed request no rule answered.
/// Unsigned requests (none of the SDK's) are always forwarded.
#[derive(Debug, Clone)]
pub struct RandomFaults {
    /// The share of requests faulted, 0.0 to 1.0.
    pub share: f64,
    /// The seed: the same seed and the same order of requests give the same faults.
    pub seed: u64,
    /// What a faulted request gets, drawn evenly.
    pub kinds: Vec<Fault>,
}

impl RandomFaults {
    /// `share` of the requests get one of [`Fault::all`].
    pub fn new(share: f64, seed: u64) -> RandomFaults {
        RandomFaults {
            share,
            seed,
            kinds: Fault::all(),
        }
    }

    /// Every request fails ([`Fault::failing`]): a sustained outage.
    pub fn outage(seed: u64) -> RandomFaults {
        RandomFaults {
            share: 1.0,
            seed,
            kinds: Fault::failing(),
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded; the emulator's status was passed on.
    Forwarded(u16),
    /// Faulted (with the emulator's status when it was asked, as for
    /// [`Fault::CloseAfterForward`] and [`Fault::Slow`]).
    Faulted(Fault, Option<u16>),
    /// Answered with a canned response of this status.
    Canned(u16),
    /// The emulator could not be reached: answered 502.
    Unreachable(String),
}

/// One request and what the proxy did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The call.
    pub call: Call,
    /// What happened.
    pub outcome: Outcome,
    /// When the proxy was done with it.
    pub at: Instant,
}

impl Exchange {
    /// Whether the emulator received the request (it may still have lost
    /// its answer).
    pub fn reached_emulator(&self) -> bool {
        matches!(self.outcome, Outcome::Forwarded(_) | Outcome::Faulted(_, Some(_)))
    }
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    random: Option<(RandomFaults, fastrand::Rng)>,
    log: Vec<Exchange>,
}

impl State {
    fn decide(&mut self, call: &Call) -> Option<Answer> {
        // Every rule about the call sees it (so `after(n)` counts the calls
        // earlier rules answered too); the first one due answers it.
        let mut chosen = None;
        for rule in self.rules.iter_mut().filter(|r| r.matches(call)) {
            if rule.skip > 0 {
                rule.skip -= 1;
            } else if chosen.is_none() {
                chosen = Some(rule.apply());
            }
        }
        match chosen {
            Some(Answer::ForwardThen(faults)) => {
                let rng = fastrand::Rng::with_seed(faults.seed);
                self.random = Some((faults, rng));
                return None;
            }
            Some(answer) => return Some(answer),
            None => {}
        }
        let (faults, rng) = self.random.as_mut()?;
        if call.service == "unsigned" || faults.kinds.is_empty() || rng.f64() >= faults.share {
            return None;
        }
        Some(Answer::Fault(faults.kinds[rng.usize(..faults.kinds.len())]))
    }
}

/// The proxy; stopped when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    endpoint: String,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 in front of `upstream`
    /// (`http://127.0.0.1:PORT`), forwarding everything until told otherwise.
    pub fn start(upstream: &str) -> std::io::Result<FaultProxy> {
        let authority = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/');
        let upstream: SocketAddr = authority.parse().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the fault proxy's upstream {authority} is not IP:PORT: {e}"),
            )
        })?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let shared = state.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("fault-proxy".to_owned())
            .spawn(move || runtime.block_on(serve(listener, upstream, shared, stopped)))?;
        Ok(FaultProxy {
            endpoint,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`: what `AWS_ENDPOINT_URL` is set to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Adds a rule after the existing ones.
    pub fn add_rule(&self, rule: Rule) {
        self.lock().rules.push(rule);
    }

    /// Sets (or, with `None`, stops) the random faults.
    pub fn set_random(&self, faults: Option<RandomFaults>) {
        self.lock().random = faults.map(|f| {
            let rng = fastrand::Rng::with_seed(f.seed);
            (f, rng)
        });
    }

    /// Every exchange so far, in the order they ended.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.lock().log.clone()
    }

    /// The exchanges of `action`.
    pub fn calls(&self, action: &str) -> Vec<Exchange> {
        self.lock()
            .log
            .iter()
            .filter(|e| e.call.action == action)
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the state usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, upstream, state.clone()));
            // An error here is a connection the proxy closed on purpose, or
            // one the client closed: nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Returned by the handler to make hyper close the connection without
/// answering.
#[derive(Debug)]
struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed by the fault proxy")
    }
}

impl std::error::Error for Closed {}

async fn handle(
    req: Request<Incoming>,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Closed> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Closed)?.to_bytes();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let call = Call::classify(&parts.method, &path, &parts.headers, &body);
    let answer = lock(&state).decide(&call);
    let head = parts.method == Method::HEAD;
    let (result, outcome) = match answer {
        None => match forward(upstream, &parts, &path, body).await {
            Ok(response) => {
                let status = response.status().as_u16();
                (Ok(response), Outcome::Forwarded(status))
            }
            Err(e) => (Ok(answer::server_error(502)), Outcome::Unreachable(e)),
        },
        Some(Answer::Canned(canned)) => (Ok(canned.response()), Outcome::Canned(canned.status)),
        Some(Answer::ForwardThen(_)) => unreachable!("State::decide forwards these"),
        Some(Answer::Fault(fault)) => match fault {
            Fault::Throttle => (Ok(answer::throttling(&call, head)), Outcome::Faulted(fault, None)),
            Fault::ServerError(status) => (Ok(answer::server_error(status)), Outcome::Faulted(fault, None)),
            Fault::CloseBeforeForward => (Err(Closed), Outcome::Faulted(fault, None)),
            Fault::CloseAfterForward => {
                let status = forward(upstream, &parts, &path, body)
                    .await
                    .ok()
                    .map(|r| r.status().as_u16());
                (Err(Closed), Outcome::Faulted(fault, status))
            }
            Fault::Slow(delay) => match forward(upstream, &parts, &path, body).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    tokio::time::sleep(delay).await;
                    (Ok(response), Outcome::Faulted(fault, Some(status)))
                }
                Err(e) => (Ok(answer::server_error(502)), Outcome::Unreachable(e)),
            },
        },
    };
    lock(&state).log.push(Exchange {
        call,
        outcome,
        at: Instant::now(),
    });
    result
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hop-by-hop headers: about one connection, never passed on.
const HOP_BY_HOP: [&str; 4] = ["connection", "keep-alive", "transfer-encoding", "upgrade"];

/// Sends the request to the emulator on a connection of its own and
/// returns its whole answer.
async fn forward(
    upstream: SocketAddr,
    parts: &http::request::Parts,
    path: &str,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, String> {
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| format!("connecting to {upstream}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("talking to {upstream}: {e}"))?;
    tokio::spawn(connection);
    let mut request = Request::builder().method(parts.method.clone()).uri(path);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            request = request.header(name, value);
        }
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("rebuilding the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("asking {upstream}: {e}"))?;
    let (mut head, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading {upstream}'s answer: {e}"))?
        .to_bytes();
    for name in HOP_BY_HOP {
        head.headers.remove(name);
    }
    Ok(Response::from_parts(head, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A stand-in emulator on a thread of its own: answers every request
    /// 200 `ok`, counting them.
    struct Upstream {
        endpoint: String,
        seen: Arc<AtomicUsize>,
    }

    fn upstream() -> Upstream {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            }
        });
        Upstream { endpoint, seen }
    }

    /// Sends one signed CloudFormation request and returns everything the
    /// proxy wrote back before closing.
    fn ask(proxy: &FaultProxy, action: &str) -> String {
        let body = format!("Action={action}&Version=2010-05-15");
        let mut stream =
            std::net::TcpStream::connect(proxy.endpoint().trim_start_matches("http://")).unwrap();
        write!(
            stream,
            "POST / HTTP/1.1\r\nhost: x\r\nauthorization: AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/cloudformation/aws4_request, SignedHeaders=host, Signature=0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }

    #[test]
    fn rules_answer_their_action_and_the_rest_is_forwarded() {
        let up = upstream();
        let proxy = FaultProxy::start(&up.endpoint).unwrap();
        proxy.add_rule(Rule::on("CreateChangeSet", Fault::CloseBeforeForward));
        proxy.add_rule(Rule::on("ExecuteChangeSet", Fault::CloseAfterForward).after(1));
        proxy.add_rule(Rule::on("ValidateTemplate", Fault::ServerError(503)));
        proxy.add_rule(Rule::on("ValidateTemplate", Fault::ServerError(500)).after(1));
        proxy.add_rule(Rule::on("DescribeStacks", Fault::Throttle).times(2));
        proxy.add_rule(
            Rule::on(
                "DeleteStack",
                Canned::query_error(400, "ValidationError", "recorded"),
            )
            .always(),
        );

        assert_eq!(ask(&proxy, "CreateChangeSet"), "", "closed before any answer");
        assert_eq!(up.seen.load(Ordering::SeqCst), 0, "and never forwarded");
        assert!(
            ask(&proxy, "CreateChangeSet").ends_with("ok"),
            "a rule applies once by default"
        );
        assert!(
            ask(&proxy, "ExecuteChangeSet").ends_with("ok"),
            "after(1) lets the first through"
        );
        assert!(ask(&proxy, "ValidateTemplate").starts_with("HTTP/1.1 503"));
        assert!(
            ask(&proxy, "ValidateTemplate").starts_with("HTTP/1.1 500"),
            "after(1) counts the call the first rule answered"
        );
        assert_eq!(ask(&proxy, "ExecuteChangeSet"), "", "the answer is lost");
        assert_eq!(
            up.seen.load(Ordering::SeqCst),
            3,
            "the lost answer's request was forwarded"
        );
        for _ in 0..2 {
            let throttled = ask(&proxy, "DescribeStacks");
            assert!(throttled.starts_with("HTTP/1.1 400"), "{throttled}");
            assert!(throttled.contains("<Code>Throttling</Code>"), "{throttled}");
        }
        assert!(ask(&proxy, "DescribeStacks").ends_with("ok"));
        for _ in 0..3 {
            assert!(ask(&proxy, "DeleteStack").contains("<Message>recorded</Message>"));
        }

        proxy.add_rule(Rule::on(
            "ListStacks",
            Answer::ForwardThen(RandomFaults {
                share: 1.0,
                seed: 1,
                kinds: vec![Fault::ServerError(500)],
            }),
        ));
        assert!(
            ask(&proxy, "ListStacks").ends_with("ok"),
            "the call that starts an outage goes through"
        );
        assert!(
            ask(&proxy, "DescribeStacks").starts_with("HTTP/1.1 500"),
            "and everything after fails"
        );

        let log = proxy.calls("ExecuteChangeSet");
        assert_eq!(log[0].outcome, Outcome::Forwarded(200));
        assert_eq!(
            log[1].outcome,
            Outcome::Faulted(Fault::CloseAfterForward, Some(200))
        );
        assert!(log.iter().all(Exchange::reached_emulator));
        assert!(!proxy.calls("CreateChangeSet")[0].reached_emulator());
        assert_eq!(proxy.exchanges().len(), 14);
    }

    #[test]
    fn random_faults_hit_about_their_share_the_same_way_for_a_seed() {
        let up = upstream();
        let faulted = |seed| {
            let proxy = FaultProxy::start(&up.endpoint).unwrap();
            proxy.set_random(Some(RandomFaults {
                share: 0.2,
                seed,
                kinds: vec![Fault::ServerError(503)],
            }));
            (0..200)
                .map(|_| ask(&proxy, "DescribeStacks").starts_with("HTTP/1.1 503"))
                .collect::<Vec<bool>>()
        };
        let first = faulted(7);
        assert_eq!(first, faulted(7), "one seed, one sequence");
        let share = first.iter().filter(|f| **f).count();
        assert!((20..=60).contains(&share), "about 20 % of 200: {share}");
    }
}
