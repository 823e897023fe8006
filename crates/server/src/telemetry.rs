//! Logging and, when `RKFLOW_OTLP_ENDPOINT` is set (and the `otlp` feature is built), trace
//! export over OTLP (HTTP/protobuf): the tracing spans (one per request, with its request id,
//! route, status and GraphQL operation, and whatever spans run inside it) go to the collector
//! as service `rkflow`, in batches; what is left is flushed when the server stops.
//! `OTEL_EXPORTER_OTLP_HEADERS` adds headers (an API key, for instance).

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// What has to be flushed when the process ends.
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    otlp: Option<otlp::Export>,
}

impl Telemetry {
    /// Exports every finished span still buffered, then stops the export.
    pub async fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(export) = self.otlp {
            export.shutdown().await;
        }
    }
}

/// Installs the global subscriber: the log filter `RKFLOW_LOG` (default `info`), text or JSON
/// lines (`RKFLOW_LOG_FORMAT=json`) on stdout, and the trace export to `otlp_traces_url` (a
/// full `…/v1/traces` URL, see [`crate::config::otlp_traces_url`]) when given. Call within
/// the Tokio runtime.
pub fn init(otlp_traces_url: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_env("RKFLOW_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let json = std::env::var("RKFLOW_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Colours only on a terminal, not in a log collector's file.
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let lines = if json {
        lines.json().boxed()
    } else {
        lines.boxed()
    };
    let registry = tracing_subscriber::registry().with(filter).with(lines);
    #[cfg(feature = "otlp")]
    {
        let (layer, export) = match otlp_traces_url {
            Some(url) => {
                let (layer, export) = otlp::layer(url)?;
                (Some(layer), Some(export))
            }
            None => (None, None),
        };
        registry.with(layer).init();
        Ok(Telemetry { otlp: export })
    }
    #[cfg(not(feature = "otlp"))]
    {
        if otlp_traces_url.is_some() {
            anyhow::bail!("RKFLOW_OTLP_ENDPOINT: this rkflow was built without the `otlp` feature");
        }
        registry.init();
        Ok(Telemetry {})
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use http_body_util::{BodyExt as _, Full, Limited};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
    use std::time::Duration;
    use tracing::Subscriber;
    use tracing_opentelemetry::OpenTelemetryLayer;
    use tracing_subscriber::registry::LookupSpan;

    /// How long one export may take.
    const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The largest collector answer read.
    const MAX_ANSWER_BYTES: usize = 1024 * 1024;

    pub struct Export {
        provider: SdkTracerProvider,
    }

    /// The layer that turns tracing spans into OpenTelemetry spans exported to `traces_url`.
    pub fn layer<S>(traces_url: &str) -> anyhow::Result<(OpenTelemetryLayer<S, Tracer>, Export)>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = RuntimeClient {
            runtime: tokio::runtime::Handle::try_current()
                .map_err(|_| anyhow::anyhow!("trace export needs the Tokio runtime"))?,
            client: Client::builder(TokioExecutor::new()).build(https),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces_url)
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(client)
            .build()
            .map_err(|err| anyhow::anyhow!("RKFLOW_OTLP_ENDPOINT: cannot export traces: {err}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name("rkflow")
                    .with_attribute(opentelemetry::KeyValue::new(
                        "service.version",
                        env!("CARGO_PKG_VERSION"),
                    ))
                    .build(),
            )
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("rkflow"));
        Ok((layer, Export { provider }))
    }

    impl Export {
        pub async fn shutdown(self) {
            let provider = self.provider;
            // The batch processor exports on a thread of its own, whose requests run on this
            // runtime (below): wait for it off the runtime's worker threads.
            match tokio::task::spawn_blocking(move || provider.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => eprintln!("rkflow: flushing the trace export failed: {err}"),
                Err(err) => eprintln!("rkflow: flushing the trace export failed: {err}"),
            }
        }
    }

    /// The exporter's HTTP client: hyper's HTTP/1 client with rustls. The SDK's batch processor
    /// exports from a thread of its own, outside the Tokio runtime that hyper needs, so each
    /// request runs on the server's runtime and is awaited from there.
    #[derive(Debug)]
    struct RuntimeClient {
        runtime: tokio::runtime::Handle,
        client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    }

    #[async_trait::async_trait]
    impl HttpClient for RuntimeClient {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let client = self.client.clone();
            let (parts, body) = request.into_parts();
            let request = Request::from_parts(parts, Full::new(body));
            let exchange = async move {
                let response = client.request(request).await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await?;
                Ok::<_, HttpError>(Response::from_parts(parts, body.to_bytes()))
            };
            self.runtime
                .spawn(async move {
                    tokio::time::timeout(EXPORT_TIMEOUT, exchange)
                        .await
                        .map_err(|_| HttpError::from("the collector did not answer in time"))?
                })
                .await?
        }
    }
}
